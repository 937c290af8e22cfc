"""Build the bundled demo study (``resources/demo/brain_mr/``) from the ICBM 2009a MNI template.

The source is the skull-stripped 1 mm T1 template that ships inside the ``nilearn`` wheel
(``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``). nilearn itself is
never imported: the file is read straight out of the wheel with :mod:`zipfile`.

Usage::

    python resources/demo/build_demo_study.py [--wheel WHEEL] [--out DIR]

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
NILEARN_VERSION = "0.14.1"
TEMPLATE_MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
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
    target = workdir / Path(TEMPLATE_MEMBER).name
    with zipfile.ZipFile(wheel) as zf, zf.open(TEMPLATE_MEMBER) as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    image = sitk.DICOMOrient(sitk.ReadImage(str(target)), "LPS")
    if not np.allclose(np.asarray(image.GetDirection()), np.eye(3).ravel()):
        raise ValueError(f"unexpected direction after reorientation: {image.GetDirection()}")
    if image.GetPixelID() != sitk.sitkUInt8:
        raise ValueError(f"expected an 8-bit template, got {image.GetPixelIDTypeAsString()}")
    return image


def to_stored(image: sitk.Image) -> np.ndarray:
    """Return the stored ``uint16`` values ``[k, j, i]`` (template value times :data:`SCALE`)."""
    return sitk.GetArrayFromImage(image).astype(np.uint16) * np.uint16(SCALE)


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


def build(wheel: Path | None, out: Path) -> list[Path]:
    """Write the demo series into ``out`` (existing ``IM*.dcm`` files there are removed).

    Parameters
    ----------
    wheel
        nilearn wheel; downloaded with pip when ``None``.
    out
        Output folder.

    Returns
    -------
    list of Path
        The written files, in slice order (inferior to superior).
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from workstation.dicom.synthetic import SeriesSpec, write_series

    with tempfile.TemporaryDirectory(prefix="demo-study-") as tmp:
        workdir = Path(tmp)
        if wheel is None:
            wheel = download_wheel(workdir)
        image = load_template(wheel, workdir)
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
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = build(args.wheel, args.out)
    elapsed = time.perf_counter() - start
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    size = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} files ({paths[0].name} .. {paths[-1].name}) to {args.out}")
    print(f"total {size / 2**20:.1f} MiB in {elapsed:.1f} s")
    print(f"sha256 of all files in order: {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
