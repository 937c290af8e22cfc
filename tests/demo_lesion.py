"""Where the demo lesion series and its truth are (resources/demo/build_lesion_series.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"
LESION_SERIES = DEMO / "brain_mr_lesion"
LESION_TRUTH = DEMO / "brain_mr_lesion_truth.nii.gz"
LESION_CENTRE_LPS = np.array([32.0, 2.0, 18.0])  # build_lesion_series.CENTER_KJI in mm
