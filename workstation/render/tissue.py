"""The demo study's tissue labels (grey matter, white matter, CSF/other) as a labels layer.

``resources/demo/brain_tissue_labels.nii.gz`` is built by ``resources/demo/build_demo_study.py``
from the ICBM 2009a grey and white matter probability maps, on exactly the demo series' grid:
voxel ``[k, j, i]`` of the labels is voxel ``[k, j, i]`` of the DICOM series. It shows a labels
layer working in 2D and 3D without any model.
"""

from __future__ import annotations

from pathlib import Path

from workstation.config import demo_study_path
from workstation.core.errors import ConfigError
from workstation.core.volume import Volume
from workstation.render.grid import check_same_grid
from workstation.render.layers import RGBA, LabelsLayer

__all__ = [
    "TISSUE_COLORS",
    "TISSUE_LAYER_NAME",
    "TISSUE_NAMES",
    "demo_tissue_labels",
    "demo_tissue_labels_path",
]

TISSUE_LAYER_NAME = "Tissue (demo template)"
TISSUE_NAMES: dict[int, str] = {1: "Grey matter", 2: "White matter", 3: "CSF / other brain"}
TISSUE_COLORS: dict[int, RGBA] = {
    1: (235, 120, 60, 255),  # orange
    2: (70, 140, 255, 255),  # blue
    3: (250, 220, 50, 255),  # yellow
}
_TOLERANCE_MM = 1e-3


def demo_tissue_labels_path() -> Path:
    """Where the demo tissue labels live (beside the demo series)."""
    return demo_study_path().parent / "brain_tissue_labels.nii.gz"


def demo_tissue_labels(
    volume_like: Volume, *, path: str | Path | None = None, opacity: float = 0.5
) -> LabelsLayer:
    """Load the demo tissue labels as a layer on ``volume_like``'s grid.

    Parameters
    ----------
    volume_like
        The demo series as loaded (``load_series(demo_study_path())``), or any volume on its
        grid.
    path
        The labels file; by default :func:`demo_tissue_labels_path`.
    opacity
        Initial layer opacity.

    Returns
    -------
    LabelsLayer
        Named :data:`TISSUE_LAYER_NAME`, labels 0 (background) to 3 with :data:`TISSUE_NAMES`
        and :data:`TISSUE_COLORS`.

    Raises
    ------
    ConfigError
        The labels file is missing or unreadable.
    GeometryMismatchError
        ``volume_like`` is not on the demo series' grid (within 1e-3 mm).
    """
    import SimpleITK as sitk

    path = Path(path) if path is not None else demo_tissue_labels_path()
    if not path.is_file():
        raise ConfigError(
            f"the demo tissue labels are missing ({path}); rebuild them with "
            "resources/demo/build_demo_study.py",
            path=path,
        )
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ConfigError(
            f"cannot read the demo tissue labels {path}: {error}", path=path
        ) from error
    labels = Volume.from_sitk(
        image, metadata={"description": TISSUE_LAYER_NAME, "source": str(path)}
    )
    check_same_grid(
        labels,
        volume_like,
        what="the demo tissue labels",
        reference_name="this volume (they belong to the demo series)",
        tolerance_mm=_TOLERANCE_MM,
    )
    return LabelsLayer(
        labels,
        label_names=TISSUE_NAMES,
        colors=TISSUE_COLORS,
        name=TISSUE_LAYER_NAME,
        opacity=opacity,
    )
