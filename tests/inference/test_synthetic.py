"""Synthetic lesions in the MNI152 template: determinism, placement, sizes and the present flag."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from workstation.config import demo_study_path
from workstation.core.volume import Volume
from workstation.dicom import load_series
from workstation.inference.synthetic import (
    PATCH_SIZE,
    SyntheticConfig,
    TemplateBrain,
    case_for_seed,
    make_case,
    prepare_template,
    zscore_in_brain,
)


@pytest.fixture(scope="module")
def template() -> TemplateBrain:
    series = demo_study_path()
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(series.parent / "brain_tissue_labels.nii.gz"))
    )
    return prepare_template(load_series(series), labels)


def test_template_at_training_resolution(template: TemplateBrain) -> None:
    assert template.spacing_mm == 2.0
    assert template.image.shape == (94, 116, 98)  # 189 × 233 × 197 at 1 mm
    assert template.white_matter.any()
    assert not (template.white_matter & ~template.brain).any()
    assert template.image[template.brain].mean() == pytest.approx(1.0, abs=1e-5)


def test_same_seed_same_case(template: TemplateBrain) -> None:
    a, b = case_for_seed(template, 7), case_for_seed(template, 7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.lesions == b.lesions and a.seed == 7
    c = case_for_seed(template, 8)
    assert not np.array_equal(a.image, c.image)


def test_cases_have_the_patch_shape_and_types(template: TemplateBrain) -> None:
    case = case_for_seed(template, 1)
    assert case.image.shape == case.mask.shape == (PATCH_SIZE,) * 3
    assert case.image.dtype == np.float32 and case.mask.dtype == np.uint8
    assert np.isfinite(case.image).all()


@pytest.mark.parametrize("seed", range(12))
def test_lesions_inside_brain_with_requested_radii(template: TemplateBrain, seed: int) -> None:
    config = SyntheticConfig(radius_mm=(4.0, 10.0))
    case = make_case(template, np.random.default_rng(seed), config, n_lesions=2)
    assert case.present == bool(case.mask.any())
    assert case.lesions, "two lesions were asked for"
    assert not (case.mask.astype(bool) & ~case.brain).any()
    for lesion in case.lesions:
        assert all(4.0 <= r <= 10.0 for r in lesion.radii_mm)
        assert case.brain[tuple(int(c) for c in lesion.center)]
        assert abs(lesion.contrast) >= config.contrast[0]
    biggest = max(max(lesion.radii_mm) for lesion in case.lesions)
    # the mask never reaches beyond the largest (lumpy, soft-edged) ellipsoid
    assert case.mask.sum() * 8.0 <= len(case.lesions) * 4 / 3 * np.pi * (1.5 * biggest) ** 3


def test_present_flag_matches_mask(template: TemplateBrain) -> None:
    flags = []
    for seed in range(30):
        case = case_for_seed(template, seed)
        assert case.present == bool(case.mask.any())
        flags.append(case.present)
    assert 5 < sum(flags) < 25  # both kinds occur with the default p_lesion = 0.5
    empty = make_case(template, np.random.default_rng(0), n_lesions=0)
    assert not empty.present and not empty.lesions and not empty.mask.any()


def test_lesions_change_the_image_where_the_mask_is(template: TemplateBrain) -> None:
    with_lesion = make_case(template, np.random.default_rng(3), n_lesions=1)
    without = make_case(template, np.random.default_rng(3), n_lesions=0)
    inside = with_lesion.mask.astype(bool)
    assert inside.any()
    difference = np.abs(with_lesion.image - without.image)
    assert difference[inside].mean() > 3 * difference[~inside].mean()


def test_prepare_template_without_labels_and_zscore() -> None:
    rng = np.random.default_rng(0)
    array = np.zeros((20, 20, 20), dtype=np.uint16)
    array[4:16, 4:16, 4:16] = rng.integers(100, 1000, size=(12, 12, 12))
    template = prepare_template(Volume(array, spacing=(1.0, 1.0, 1.0)))
    assert template.image.shape == (10, 10, 10)
    assert template.white_matter.any() and not (template.white_matter & ~template.brain).any()
    z = zscore_in_brain(array)
    assert z[array > 0].mean() == pytest.approx(0.0, abs=1e-4)
    assert z[array > 0].std() == pytest.approx(1.0, abs=1e-4)
