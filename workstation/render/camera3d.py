"""Where the 3D view looks from: the default oblique view, camera poses, the facing octant.

World coordinates are LPS mm (+x left, +y posterior, +z superior). No VTK here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.core.volume import Volume

__all__ = ["DEFAULT_VIEW", "CameraPose", "default_camera", "default_preset", "facing_octant"]

# (unit LPS vector from the focal point to the camera, view-up): the patient seen from the front,
# a little from the left and from above (LPS: +x left, -y anterior, +z superior).
_TO_CAMERA = np.array([0.45, -0.8, 0.4]) / np.linalg.norm([0.45, -0.8, 0.4])
DEFAULT_VIEW: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (float(_TO_CAMERA[0]), float(_TO_CAMERA[1]), float(_TO_CAMERA[2])),
    (0.0, 0.0, 1.0),
)


@dataclass(frozen=True)
class CameraPose:
    """A perspective camera: position, focal point and view-up, LPS mm."""

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    up: tuple[float, float, float]

    @property
    def to_camera(self) -> np.ndarray:
        """Unit vector from the focal point to the camera."""
        vector = np.subtract(self.position, self.focal_point)
        return vector / (np.linalg.norm(vector) or 1.0)


def default_camera(
    bounds: Any, view: tuple[Any, Any] = DEFAULT_VIEW, *, view_angle: float = 30.0
) -> CameraPose:
    """The pose looking at the centre of ``bounds`` (``xmin, xmax, ymin, ...``) from ``view``.

    The distance fits 0.7 of the bounding sphere in the view angle: the volume's corners may
    leave the frame, its contents (a head rarely fills the corners) do not.
    """
    lo, hi = np.asarray(bounds[0::2], float), np.asarray(bounds[1::2], float)
    centre = (lo + hi) / 2
    radius = 0.7 * float(np.linalg.norm(hi - lo)) / 2 or 1.0
    distance = radius / np.sin(np.radians(view_angle) / 2)
    to_camera = np.asarray(view[0], float) / np.linalg.norm(view[0])
    return CameraPose(
        tuple(centre + distance * to_camera),  # type: ignore[arg-type]
        tuple(centre),  # type: ignore[arg-type]
        tuple(float(v) for v in view[1]),  # type: ignore[arg-type]
    )


def facing_octant(volume: Volume, to_camera: Any = DEFAULT_VIEW[0]) -> tuple[int, int, int]:
    """Signs ``(si, sj, sk)`` of the octant (along the volume's i, j, k axes) facing the camera."""
    dots = np.asarray(volume.direction).T @ np.asarray(to_camera, float)
    return tuple(1 if d >= 0 else -1 for d in dots)  # type: ignore[return-value]


def default_preset(volume: Volume) -> str:
    """The volume-rendering preset for the modality: ``"CT bone"`` for CT, else ``"MR brain"``."""
    return "CT bone" if str(volume.metadata.get("modality", "")).upper() == "CT" else "MR brain"
