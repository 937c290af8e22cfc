"""Registration recovers a known rigid motion; regional volumes are deterministic."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from workstation.core.volume import Volume


def test_registration_recovers_a_known_rigid_transform(demo_volumes):
    from mw_progression.registration import register

    baseline, _ = demo_volumes["baseline"]
    fixed = sitk.BinShrink(sitk.Cast(baseline.to_sitk(), sitk.sitkFloat32), [2, 2, 2])
    known = sitk.Euler3DTransform()
    known.SetCenter((0.0, 10.0, 20.0))
    known.SetRotation(*np.deg2rad([4.0, -3.0, 5.0]).tolist())
    known.SetTranslation((3.0, -2.0, 4.0))
    moving = sitk.Resample(fixed, fixed, known, sitk.sitkLinear, 0.0)
    result = register(
        Volume.from_sitk(fixed), Volume.from_sitk(moving), affine=False, sampling=0.05
    )
    # register() maps baseline points to follow-up points: the inverse of ``known`` here.
    points = [(x, y, z) for x in (-40, 0, 40) for y in (-50, 0, 40) for z in (-30, 0, 40)]
    errors = [
        np.linalg.norm(np.subtract(known.TransformPoint(result.transform.TransformPoint(p)), p))
        for p in points
    ]
    assert max(errors) < 1.0  # mm, on a 2 mm grid
    assert result.stages[0]["stage"] == "rigid"
    assert result.resampled.shape == Volume.from_sitk(fixed).shape


def test_regions_are_deterministic_and_find_the_demo_lesion(small_demo):
    from mw_progression.regions import measure

    volume, _ = small_demo["baseline"]
    first, second = measure(volume), measure(volume)
    assert first == second
    assert first.lesion_components == 1
    assert 2.5 < first.lesion_ml < 6.5  # 4.30 mL true, on a 3 mm grid
    assert first.ventricles_ml > 5.0
    assert 1200 < first.parenchyma_ml < 1900


def test_bspline_option_and_log_jacobian(small_demo):
    from mw_progression.change import log_jacobian
    from mw_progression.registration import register

    baseline, _ = small_demo["baseline"]
    followup, _ = small_demo["month24"]
    result = register(baseline, followup, bspline=True)
    assert [s["stage"] for s in result.stages] == ["rigid", "affine", "bspline"]
    jacobian = log_jacobian(result.transform, baseline)
    assert jacobian.shape == baseline.shape
    assert np.isfinite(jacobian.array).all()
    brain = np.asarray(baseline.array) > 100
    assert abs(float(jacobian.array[brain].mean())) < 0.05  # about 1.5 %/yr of shrinkage
