"""Export: geometry survives each format, NIfTI is RAS (nibabel agrees), failures are clean."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from workstation.core import Volume, WorkstationError
from workstation.dicom import EXPORT_SUFFIXES, DicomError, export_volume
from workstation.dicom.export import ExportError, check_export_path


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _oblique(seed: int, dtype: type = np.int16, *, flip: bool = False) -> Volume:
    rng = np.random.default_rng(seed)
    direction = _random_rotation(rng)
    if flip:  # slices stacked against the right-hand rule (det -1), as DICOM allows
        direction[:, 2] = -direction[:, 2]
    array = rng.integers(-1024, 3000, size=(5, 7, 9)).astype(dtype)
    return Volume(
        array,
        spacing=tuple(rng.uniform(0.3, 3.0, size=3)),
        origin=tuple(rng.uniform(-150, 150, size=3)),
        direction=direction,
    )


def _assert_same_image(image: sitk.Image, volume: Volume) -> None:
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-5)
    np.testing.assert_allclose(
        np.reshape(image.GetDirection(), (3, 3)), volume.direction, atol=1e-5
    )


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha", ".nii", ".mhd", ".nhdr"])
@pytest.mark.parametrize("seed", [1, 2])
def test_geometry_and_voxels_survive(tmp_path: Path, suffix: str, seed: int) -> None:
    volume = _oblique(seed, flip=seed == 2)
    out = export_volume(volume, tmp_path / f"vol{suffix}")
    assert out == tmp_path / f"vol{suffix}"
    _assert_same_image(sitk.ReadImage(str(out)), volume)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_dtypes_survive(tmp_path: Path, dtype: type) -> None:
    volume = _oblique(3, dtype=np.int16)
    volume = volume.with_array(np.abs(volume.array).astype(dtype))
    image = sitk.ReadImage(str(export_volume(volume, tmp_path / "v.nrrd")))
    assert sitk.GetArrayFromImage(image).dtype == np.dtype(dtype)
    _assert_same_image(image, volume)


@pytest.mark.parametrize("flip", [False, True])
def test_nifti_affine_is_ras(tmp_path: Path, flip: bool) -> None:
    """nibabel (an independent reader) sees the RAS affine: proves the LPS -> RAS flip."""
    volume = _oblique(4, flip=flip)
    out = export_volume(volume, tmp_path / "v.nii.gz")
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, volume.ras_affine, atol=1e-4)
    # nibabel's array is indexed [i, j, k]
    np.testing.assert_array_equal(np.asarray(img.dataobj), volume.array.transpose(2, 1, 0))


def test_detached_header_names_its_own_data_file(tmp_path: Path) -> None:
    volume = _oblique(5)
    export_volume(volume, tmp_path / "v.mhd")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "v.mhd"
    assert len(names) == 2
    assert names[1].startswith("v.")
    assert f"ElementDataFile = {names[1]}" in (tmp_path / "v.mhd").read_text()


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    volume = _oblique(6)
    out = export_volume(volume, tmp_path / "V.NII.GZ")
    _assert_same_image(sitk.ReadImage(str(out)), volume)


def test_overwrites_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "v.mha"
    out.write_bytes(b"old")
    volume = _oblique(7)
    export_volume(volume, out)
    _assert_same_image(sitk.ReadImage(str(out)), volume)


@pytest.mark.parametrize("name", ["v.png", "v", "v.nii.zip", ".nii.gz"])
def test_unknown_suffix_names_the_allowed_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(ExportError) as caught:
        export_volume(_oblique(8), tmp_path / name)
    for suffix in EXPORT_SUFFIXES:
        assert suffix in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="folder does not exist") as caught:
        export_volume(_oblique(9), tmp_path / "absent" / "v.nii.gz")
    assert caught.value.path == tmp_path / "absent"
    assert list(tmp_path.iterdir()) == []


def test_check_export_path(tmp_path: Path) -> None:
    assert check_export_path(tmp_path / "a.nii.gz") == ".nii.gz"
    assert check_export_path(tmp_path / "a.nii") == ".nii"
    with pytest.raises(ExportError):
        check_export_path(tmp_path / "a.dcm")


def test_export_error_is_a_dicom_error() -> None:
    assert issubclass(ExportError, DicomError)
    assert issubclass(ExportError, WorkstationError)


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that dies half-way leaves neither a partial file nor a temporary folder."""
    out = tmp_path / "v.nii.gz"
    out.write_bytes(b"previous export")

    def broken_write(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_write)
    with pytest.raises(ExportError, match="disk full") as caught:
        export_volume(_oblique(10), out)
    assert caught.value.path == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nii.gz"]
    assert out.read_bytes() == b"previous export"


def test_destination_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "v.nrrd").mkdir()
    with pytest.raises(ExportError):
        export_volume(_oblique(11), tmp_path / "v.nrrd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]
    assert (tmp_path / "v.nrrd").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ExportError):
            export_volume(_oblique(12), folder / "v.mha")
    finally:
        folder.chmod(0o700)
