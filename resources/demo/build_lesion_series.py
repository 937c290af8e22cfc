"""Build the demo study's second series: the template brain with one synthetic lesion.

``resources/demo/brain_mr_lesion/`` is the demo series (``brain_mr/``) with a single focal
lesion blended in the way the demonstration models' training data were made
(:mod:`workstation.inference.synthetic`): a lumpy, soft-edged ellipsoid (semi-axes 9 × 12 × 10 mm)
in the left hemisphere's white matter, 60 % brighter than white matter, clipped to the brain.
The lesion's voxels are saved as ``brain_mr_lesion_truth.nii.gz`` on exactly the series' grid, so
``workstation analyze`` can be checked against the truth (Dice, pointing game).

It is the same study (StudyInstanceUID and FrameOfReferenceUID of ``brain_mr/``) with its own
deterministic series and instance UIDs, stored JPEG-LS lossless (the pixel values are exact).
The series is synthetic, not a patient and not a real lesion; it is not for clinical use.

Usage::

    python resources/demo/build_lesion_series.py [--out DIR] [--truth-out FILE]

Needs only the committed demo series; the output is deterministic (fixed seed).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from workstation.core.volume import Volume  # noqa: E402
from workstation.dicom import load_series  # noqa: E402
from workstation.dicom.synthetic import SeriesSpec, write_series  # noqa: E402

SOURCE = HERE / "brain_mr"
DEFAULT_OUT = HERE / "brain_mr_lesion"
DEFAULT_TRUTH = HERE / "brain_mr_lesion_truth.nii.gz"
SEED = 20261206
CENTER_KJI = (90.0, 100.0, 130.0)  # voxel (k, j, i): LPS (32, 2, 18) mm, left parietal WM
RADII_MM = (9.0, 12.0, 10.0)  # along k, j, i (1 mm voxels)
CONTRAST = 0.6  # lesion = (1 + CONTRAST) × mean white-matter value
WHITE_MATTER = 2  # label in brain_tissue_labels.nii.gz


def lesion(volume: Volume, white_matter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image with the lesion blended in (stored values) and the lesion mask."""
    image = np.asarray(volume.array, dtype=np.float32)
    brain = image > 0
    rng = np.random.default_rng(SEED)
    k, j, i = np.indices(image.shape, dtype=np.float32)
    c, r = CENTER_KJI, RADII_MM
    distance = np.sqrt(
        ((k - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((i - c[2]) / r[2]) ** 2
    )
    lumps = ndimage.gaussian_filter(rng.standard_normal(image.shape).astype(np.float32), 6.0)
    distance *= 1.0 + 0.25 * lumps / np.abs(lumps).max()  # lumpy surface
    alpha = np.clip((1.15 - distance) / 0.3, 0.0, 1.0) * brain  # soft edge, inside the brain
    target = float(image[white_matter & brain].mean()) * (1.0 + CONTRAST)
    texture = 1.0 + 0.05 * ndimage.gaussian_filter(rng.standard_normal(image.shape), 4.0)
    out = image * (1.0 - alpha) + target * texture.astype(np.float32) * alpha
    return np.rint(out).astype(np.uint16), ((alpha >= 0.5) & brain).astype(np.uint8)


def build(out: Path = DEFAULT_OUT, truth_out: Path = DEFAULT_TRUTH) -> list[Path]:
    """Write the series and its truth mask; return the DICOM files in slice order."""
    volume = load_series(SOURCE)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(HERE / "brain_tissue_labels.nii.gz")))
    stored, mask = lesion(volume, labels == WHITE_MATTER)
    first = pydicom.dcmread(sorted(SOURCE.glob("IM*.dcm"))[0], stop_before_pixels=True)
    spec = SeriesSpec(
        modality="MR",
        patient_name=str(first.PatientName),
        patient_id=str(first.PatientID),
        study_description=str(first.StudyDescription),
        series_description="T1 axial 1mm synthetic lesion (demo)",
        series_number=2,
        study_uid=str(first.StudyInstanceUID),
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        uid_prefix="medical-workstation-demo-lesion-v1",
        window_center=float(first.WindowCenter),
        window_width=float(first.WindowWidth),
        extra={
            key: first[key].value
            for key in ("MagneticFieldStrength", "RepetitionTime", "EchoTime", "FlipAngle")
            if key in first
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("IM*.dcm"):
        old.unlink()
    files = write_series(
        out,
        stored,
        spacing=volume.spacing,
        origin=volume.origin,
        direction=volume.direction,
        spec=spec,
    )
    for path in files:  # JPEG-LS lossless: exact values, a third of the size
        ds = pydicom.dcmread(path)
        ds.compress(pydicom.uid.JPEGLSLossless)
        ds.save_as(path, enforce_file_format=True)
    truth = volume.with_array(mask)
    sitk.WriteImage(truth.to_sitk(), str(truth_out), useCompression=True)
    return files


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--truth-out", type=Path, default=DEFAULT_TRUTH, help="truth mask")
    args = parser.parse_args(argv)
    files = build(args.out, args.truth_out)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(args.truth_out)))
    print(f"{len(files)} files, SHA-256 {digest.hexdigest()}")
    print(f"lesion: {int(mask.sum())} voxels = {mask.sum() / 1000:.2f} mL")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
