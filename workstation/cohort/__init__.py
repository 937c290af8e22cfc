"""Cohort analysis: one model over thousands of studies, on one machine or a Dask cluster.

- :mod:`.sources`: the studies of a cohort, streamed (a folder tree, a list file, a DICOMweb
  QIDO search), each with a stable, non-identifying ``study_key``;
- :mod:`.task`: what a worker does with one study (load, QC features, analysis, thumbnail,
  encrypted store) and the flat row it returns, failures included;
- :mod:`.runner`: the driver (a bounded window of Dask futures: flat memory), resumable;
- :mod:`.results`: the per-study row files, ``summary.csv`` and ``cohort.json``;
- :mod:`.synthetic`: a generated demonstration cohort with broken studies and planted outliers;
- :mod:`.qc` and :mod:`.report`: QC features, outlier flags and the HTML report.
"""
