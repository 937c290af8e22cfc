"""Build the bundled demo study (``resources/demo/brain_mr/``) from the ICBM 2009a MNI template.

The source is the skull-stripped 1 mm T1 template that ships inside the ``nilearn`` wheel
(``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``). nilearn itself is
never imported: the file is read straight out of the wheel with :mod:`zipfile`.

The same wheel's grey and white matter probability maps give a tissue label volume on exactly
the series' grid (``resources/demo/brain_tissue_labels.nii.gz``; see :func:`tissue_labels`).

Usage::

    python resources/demo/build_demo_study.py [--wheel WHEEL] [--out DIR] [--labels-out FILE]

Without ``--wheel`` the wheel is fetched with ``python -m pip download --no-deps
nilearn==0.14.1``. The output is deterministic: the same wheel gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path(__file__).resolve().parent / "brain_mr"
DEFAULT_LABELS_OUT = Path(__file__).resolve().parent / "brain_tissue_labels.nii.gz"
NILEARN_VERSION = "0.14.1"
TEMPLATE_MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
GM_MEMBER = "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"
WM_MEMBER = "nilearn/datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"
# Tissue labels: argmax of the GM/WM probabilities where that maximum is >= TISSUE_FLOOR;
# other template voxels (value > 0) are CSF/other brain; everything else is background.
BACKGROUND, GREY_MATTER, WHITE_MATTER, CSF_OTHER = 0, 1, 2, 3
TISSUE_FLOOR = 0.5
# Stored value = template value (uint8, 0..255) * SCALE, so the brain spans 0..1020 exactly.
SCALE = 4
WINDOW_CENTER = 500.0
WINDOW_WIDTH = 1000.0


def download_wheel(dest: Path) -> Path:
    """Download the pinned nilearn wheel (no dependencies) into ``dest`` with pip.

    Parameters
    ----------
    dest
        Folder for the download.

    Returns
    -------
    Path
        The downloaded ``.whl`` file.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"nilearn=={NILEARN_VERSION}",
        "-d",
        str(dest),
    ]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob(f"nilearn-{NILEARN_VERSION}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip did not produce a nilearn {NILEARN_VERSION} wheel")
    return wheels[0]


def read_member(wheel: Path, member: str, workdir: Path) -> sitk.Image:
    """Extract one NIfTI file from ``wheel`` into ``workdir`` and read it, reoriented to LPS."""
    target = workdir / Path(member).name
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return sitk.DICOMOrient(sitk.ReadImage(str(target)), "LPS")


def load_template(wheel: Path, workdir: Path) -> sitk.Image:
    """Extract the T1 template from ``wheel`` and read it, reoriented to LPS.

    Parameters
    ----------
    wheel
        A nilearn wheel containing :data:`TEMPLATE_MEMBER`.
    workdir
        Scratch folder for the extracted ``.nii.gz``.

    Returns
    -------
    SimpleITK.Image
        ``uint8`` template with identity direction (i: R→L, j: A→P, k: I→S).
    """
    image = read_member(wheel, TEMPLATE_MEMBER, workdir)
    if not np.allclose(np.asarray(image.GetDirection()), np.eye(3).ravel()):
        raise ValueError(f"unexpected direction after reorientation: {image.GetDirection()}")
    if image.GetPixelID() != sitk.sitkUInt8:
        raise ValueError(f"expected an 8-bit template, got {image.GetPixelIDTypeAsString()}")
    return image


def to_stored(image: sitk.Image) -> np.ndarray:
    """Return the stored ``uint16`` values ``[k, j, i]`` (template value times :data:`SCALE`)."""
    return sitk.GetArrayFromImage(image).astype(np.uint16) * np.uint16(SCALE)


def _on_grid(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``image`` on ``reference``'s voxel grid: as is when the grids agree, else resampled."""
    same = (
        image.GetSize() == reference.GetSize()
        and np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-6)
        and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-6)
        and np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-9)
    )
    if same:
        return image
    as_float = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.Resample(as_float, reference, sitk.Transform(), sitk.sitkLinear, 0.0)


def tissue_labels(template: sitk.Image, grey: sitk.Image, white: sitk.Image) -> sitk.Image:
    """Tissue labels on the template's grid, from the GM and WM probability maps.

    The maps (``uint8``, 0..255 = probability 0..1) are brought onto the template's grid
    (they share it in the nilearn wheel, so nothing is interpolated). Then, inside the template
    (value > 0): :data:`GREY_MATTER` or :data:`WHITE_MATTER` by the larger probability when it
    is at least :data:`TISSUE_FLOOR` (ties go to grey matter), else :data:`CSF_OTHER`
    (ventricles, sulcal CSF, partial-volume rims); outside it :data:`BACKGROUND`.

    Returns
    -------
    SimpleITK.Image
        ``uint8`` labels with the template's geometry.
    """
    brain = sitk.GetArrayFromImage(template) > 0
    p_grey, p_white = (
        sitk.GetArrayFromImage(_on_grid(image, template)).astype(np.float32) / np.float32(255.0)
        for image in (grey, white)
    )
    labels = np.full(brain.shape, BACKGROUND, dtype=np.uint8)
    labels[brain] = CSF_OTHER
    tissue = brain & (np.maximum(p_grey, p_white) >= TISSUE_FLOOR)
    labels[tissue] = np.where(p_white[tissue] > p_grey[tissue], WHITE_MATTER, GREY_MATTER)
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(template)
    return image


def mr_header_extras() -> dict[str, object]:
    """Fake but plausible MR acquisition values (the template is not a single acquisition)."""
    return {
        "ImageType": ["DERIVED", "SECONDARY", "AXIAL"],
        "DerivationDescription": (
            "ICBM 2009a nonlinear symmetric T1 template (nilearn copy), reoriented to LPS, "
            f"values x{SCALE}"
        ),
        "ImageComments": "Demo data built from a population-average template; not a patient scan",
        "PatientPosition": "HFS",
        "ScanningSequence": "GR",
        "SequenceVariant": "SP",
        "ScanOptions": "",
        "MRAcquisitionType": "3D",
        "SequenceName": "T1_3D_SPGR",
        "MagneticFieldStrength": "1.5",
        "ImagingFrequency": "63.87",
        "ImagedNucleus": "1H",
        "RepetitionTime": "18",
        "EchoTime": "10",
        "FlipAngle": "30",
        "NumberOfAverages": "1",
        "EchoNumbers": "1",
        "SpacingBetweenSlices": "1",
        "ManufacturerModelName": "Demo MR",
        "ProtocolName": "T1 3D 1mm",
    }


def build(
    wheel: Path | None, out: Path, labels_out: Path | None = DEFAULT_LABELS_OUT
) -> list[Path]:
    """Write the demo series into ``out`` (existing ``IM*.dcm`` files there are removed).

    Parameters
    ----------
    wheel
        nilearn wheel; downloaded with pip when ``None``.
    out
        Output folder.
    labels_out
        Where to write the tissue labels (``.nii.gz``, same grid as the series); ``None``
        skips them.

    Returns
    -------
    list of Path
        The written DICOM files, in slice order (inferior to superior).
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from workstation.dicom.synthetic import SeriesSpec, write_series

    with tempfile.TemporaryDirectory(prefix="demo-study-") as tmp:
        workdir = Path(tmp)
        if wheel is None:
            wheel = download_wheel(workdir)
        image = load_template(wheel, workdir)
        if labels_out is not None:
            grey, white = (read_member(wheel, m, workdir) for m in (GM_MEMBER, WM_MEMBER))
            labels_out.parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(tissue_labels(image, grey, white), str(labels_out), True)
    stored = to_stored(image)
    spec = SeriesSpec(
        modality="MR",
        patient_name="DEMO^BRAIN",
        patient_id="DEMO0001",
        study_description="Demo brain MR (ICBM 2009a template)",
        series_description="T1 axial 1mm (template)",
        uid_prefix="medical-workstation-demo-v1",
        window_center=WINDOW_CENTER,
        window_width=WINDOW_WIDTH,
        extra=mr_header_extras(),
    )
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("IM*.dcm"):
        old.unlink()
    return write_series(
        out,
        stored,
        spacing=image.GetSpacing(),
        origin=image.GetOrigin(),
        direction=np.eye(3),
        spec=spec,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="nilearn wheel (default: pip download)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--labels-out", type=Path, default=DEFAULT_LABELS_OUT, help="tissue labels (.nii.gz)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = build(args.wheel, args.out, args.labels_out)
    elapsed = time.perf_counter() - start
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    size = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} files ({paths[0].name} .. {paths[-1].name}) to {args.out}")
    print(f"total {size / 2**20:.1f} MiB in {elapsed:.1f} s")
    print(f"sha256 of all files in order: {digest.hexdigest()}")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(args.labels_out)))
    counts = np.bincount(labels.ravel(), minlength=4)
    brain = counts[1:].sum()
    print(
        f"wrote {args.labels_out} (sha256 "
        f"{hashlib.sha256(args.labels_out.read_bytes()).hexdigest()})"
    )
    print(
        "labels: "
        + ", ".join(
            f"{name} {counts[n]} voxels ({counts[n] / brain:.1%} of brain)"
            for n, name in ((1, "grey matter"), (2, "white matter"), (3, "CSF/other"))
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
