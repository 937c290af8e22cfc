"""Put the plugin's ``src`` on ``sys.path``; choose an offscreen Qt platform when none is set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "src"
REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "resources" / "demo"
sys.path.insert(0, str(PLUGIN_SRC))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SERIES = {
    "baseline": DEMO / "brain_mr_lesion",
    "month12": DEMO / "followups" / "month12",
    "month24": DEMO / "followups" / "month24",
}


@pytest.fixture(scope="session")
def demo_volumes():
    """The demo baseline and follow-ups at full resolution, with their StudyDates."""
    from mw_progression.pipeline import load_timepoint

    return {name: load_timepoint(path) for name, path in SERIES.items()}


@pytest.fixture(scope="session")
def small_demo(demo_volumes):
    """The same three volumes shrunk 3× (3 mm voxels), for quick tests."""
    from workstation.core.volume import Volume

    out = {}
    for name, (volume, date) in demo_volumes.items():
        image = sitk.Cast(volume.to_sitk(), sitk.sitkFloat32)
        small = sitk.BinShrink(image, [3, 3, 3])
        out[name] = (Volume.from_sitk(small, metadata=dict(volume.metadata)), date)
    return out


def as_float(volume) -> np.ndarray:
    """The voxels as float32."""
    return np.asarray(volume.array, dtype=np.float32)
