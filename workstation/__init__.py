"""Medical Workstation: DICOM in -> Volume -> view / infer -> explain -> store encrypted -> sync."""

__version__ = "0.1.0"
