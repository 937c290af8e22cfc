"""Geometry helpers shared by the tests (importable as ``geometry``: tests/ is on the path)."""

from __future__ import annotations

import numpy as np


def quaternion_rotation(
    q: np.ndarray, *, fallback: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
) -> np.ndarray:
    """Rotation matrix of quaternion ``q`` (w, x, y, z), normalised; near zero → ``fallback``."""
    q = np.asarray(q, dtype=float)
    if np.linalg.norm(q) < 0.1:
        q = np.asarray(fallback, dtype=float)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
