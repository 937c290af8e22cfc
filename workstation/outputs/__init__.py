"""Results written in exchange formats: DICOM SEG/SR/parametric map, NIfTI, FHIR."""
