"""Shared, expensive analyses: each runs once per test session (about 20 s on two CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from demo_lesion import LESION_SERIES, LESION_TRUTH

from workstation.core.volume import Volume


@pytest.fixture(scope="session")
def lesion_volume() -> Volume:
    from workstation.dicom import load_series

    return load_series(LESION_SERIES)


@pytest.fixture(scope="session")
def lesion_truth() -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(LESION_TRUTH))) > 0


@pytest.fixture(scope="session")
def lesion_analysis(lesion_volume: Volume, lesion_truth: np.ndarray):
    """demo-lesion-seg confirmed by demo-lesion-cls, Grad-CAM, on the demo lesion series."""
    from workstation.workflow.analyze import AnalysisRequest, analyze

    request = AnalysisRequest(
        model="demo-lesion-seg",
        explain="gradcam",
        confirm_with="demo-lesion-cls",
        truth=lesion_truth,
    )
    return analyze(lesion_volume, request)
