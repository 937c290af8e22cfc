"""An example Medical Workstation plugin (plugin API 1.x).

- :mod:`.stats`: sphere ROI statistics, plain numpy (no Qt), easy to test.
- :mod:`.panel`: the "ROI statistics" dock panel that calls :mod:`.stats`.
- :mod:`.explainer`: a gradient × input attribution method.
- :mod:`.exporter`: writes a volume's intensity histogram as CSV.
"""

__version__ = "0.1.0"
