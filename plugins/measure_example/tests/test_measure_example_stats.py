"""Sphere statistics against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from workstation.core.volume import Volume

from mw_measure_example.stats import CSV_HEADER, sphere_mask, sphere_stats, to_csv


def brute_force_count(shape_kji, spacing, origin, center, radius):
    """Voxel centres within ``radius`` of ``center``, counted one by one (axis-aligned)."""
    count = 0
    for k in range(shape_kji[0]):
        for j in range(shape_kji[1]):
            for i in range(shape_kji[2]):
                p = [origin[a] + (i, j, k)[a] * spacing[a] for a in range(3)]
                if sum((p[a] - center[a]) ** 2 for a in range(3)) <= radius**2:
                    count += 1
    return count


def test_constant_volume_anisotropic_spacing():
    # Spacing (di, dj, dk) = (1, 1, 2.5) mm; a 5 mm sphere centred on voxel (i, j, k) = (10, 10, 6).
    volume = Volume(np.full((12, 21, 21), 7.0), spacing=(1.0, 1.0, 2.5), origin=(-10, -10, 0))
    center = (0.0, 0.0, 15.0)  # voxel (10, 10, 6)
    stats = sphere_stats(volume, center, 5.0)

    # Slices k = 4..8 lie at dz = -5, -2.5, 0, 2.5, 5 mm; each holds the in-plane disc of radius
    # sqrt(25 - dz²): dz = ±5 → 1 voxel; dz = ±2.5 → r² = 18.75 → 61 voxels; dz = 0 → 81 voxels.
    # Lattice points with x² + y² ≤ 18.75: 61; ≤ 25: 81 (Gauss circle counts).
    assert stats.voxels == 1 + 61 + 81 + 61 + 1 == 205
    assert stats.voxels == brute_force_count((12, 21, 21), (1, 1, 2.5), (-10, -10, 0), center, 5)
    assert stats.volume_ml == pytest.approx(205 * 2.5 / 1000)
    assert (stats.mean, stats.sd, stats.min, stats.max) == (7.0, 0.0, 7.0, 7.0)


def test_volume_approaches_the_sphere_volume_for_fine_voxels():
    volume = Volume(np.zeros((60, 80, 80), np.int16), spacing=(0.5, 0.5, 1.0))
    center = volume.index_to_lps([40, 40, 30]) + 0.25  # off the lattice
    stats = sphere_stats(volume, tuple(center), 12.0)
    assert stats.volume_ml == pytest.approx(4 / 3 * math.pi * 12.0**3 / 1000, rel=0.01)


def test_intensities_and_oblique_geometry():
    # Voxel value = its k index; direction swaps axes and flips one, so the helper must be used.
    array = np.broadcast_to(np.arange(9.0)[:, None, None], (9, 9, 9)).copy()
    direction = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    volume = Volume(array, spacing=(2.0, 2.0, 2.0), origin=(5.0, -3.0, 1.0), direction=direction)
    center = tuple(volume.index_to_lps([4, 4, 4]))
    stats = sphere_stats(volume, center, 2.0)  # the centre voxel and its 6 neighbours
    assert stats.voxels == 7
    assert stats.mean == pytest.approx(4.0)
    assert stats.min == 3.0 and stats.max == 5.0
    assert stats.sd == pytest.approx(math.sqrt(2 / 7))
    mask = sphere_mask(volume, center, 2.0)
    assert mask[4, 4, 4] and mask[3, 4, 4] and mask[4, 3, 4] and not mask[3, 3, 4]


def test_sphere_outside_the_volume_and_csv():
    volume = Volume(np.ones((4, 4, 4)))
    stats = sphere_stats(volume, (100.0, 100.0, 100.0), 3.0)
    assert stats.voxels == 0 and stats.volume_ml == 0.0 and math.isnan(stats.mean)
    header, row = to_csv(stats).splitlines()
    assert header.split(",") == list(CSV_HEADER)
    assert row.split(",")[4:] == ["0", "0", "", "", "", ""]
    with pytest.raises(ValueError):
        sphere_stats(volume, (0.0, 0.0, 0.0), 0.0)
