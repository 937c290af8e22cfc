"""Build two synthetic follow-ups of the demo lesion series, with a known change.

``resources/demo/followups/month12/`` and ``month24/`` are new studies of the same fake patient
(StudyDate baseline + 1 and + 2 years) made from the demo template and its tissue labels:

- **Atrophy.** A smooth, divergence-controlled deformation expands the CSF / other class
  (ventricles, sulci) and contracts grey and white matter by a nominal 1.5 % of parenchymal
  volume per year. It is the gradient of a potential obtained by solving a Poisson equation
  (FFT) whose source is +a in CSF and −0.015 in parenchyma (balanced, smoothed 1.5 mm), scaled
  so that one year removes 1.5 % of the (partial-volume) parenchyma, and linearly with time.
- **Lesion growth.** The demo lesion (same recipe and seed as ``build_lesion_series.py``) is
  blended into the warped template with its semi-axes scaled by ``(1 + 0.4 t)^(1/3)``: a
  nominal +40 % of the baseline lesion volume per year.
- **Repositioning and noise.** A random rigid motion (up to 4° per axis, up to 4 mm) and fresh
  Gaussian noise (σ = 15 stored units, inside the head) make registration necessary. The
  template is resampled once (rigid + warp composed, cubic B-spline interpolation).

The exact volumes per timepoint (the truth labels' indicators warped by the same field and
summed, so sub-voxel change counts; the warped lesion mask counted) and the nominal rates go
to ``followups/truth.json``. Deterministic (fixed seed and UIDs); JPEG-LS lossless.
The data are synthetic, not a patient, and not for clinical use.

Usage::

    python resources/demo/build_followups.py [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import build_lesion_series as lesion_recipe  # noqa: E402

from workstation.core.volume import Volume  # noqa: E402
from workstation.dicom import load_series  # noqa: E402
from workstation.dicom.synthetic import SeriesSpec, write_series  # noqa: E402

TEMPLATE = HERE / "brain_mr"
BASELINE = HERE / "brain_mr_lesion"
LABELS = HERE / "brain_tissue_labels.nii.gz"
DEFAULT_OUT = HERE / "followups"
SEED = 20261207
ATROPHY_PER_YEAR = 0.015  # fraction of parenchymal volume lost per year (nominal)
LESION_GROWTH_PER_YEAR = 0.40  # fraction of the baseline lesion volume gained per year (nominal)
NOISE_SIGMA = 15.0  # stored units (white matter is about 860)
MAX_ROTATION_DEG = 4.0
MAX_TRANSLATION_MM = 4.0
FOLLOWUPS = (("month12", 1), ("month24", 2))  # folder, years after the baseline date
GM, WM, CSF = 1, 2, 3


def grow_lesion(image: np.ndarray, white_matter: np.ndarray, scale: float) -> tuple:
    """``build_lesion_series.lesion`` with its semi-axes multiplied by ``scale``."""
    alpha, overlay = lesion_layers(image, white_matter, scale)
    out = image * (1.0 - alpha) + overlay * alpha
    return out.astype(np.float32), (alpha >= 0.5) & (image > 0)


def lesion_layers(image: np.ndarray, white_matter: np.ndarray, scale: float) -> tuple:
    """The lesion's blending weight and its intensity (the recipe, semi-axes × ``scale``)."""
    brain = image > 0
    rng = np.random.default_rng(lesion_recipe.SEED)
    k, j, i = np.indices(image.shape, dtype=np.float32)
    c = lesion_recipe.CENTER_KJI
    r = [radius * scale for radius in lesion_recipe.RADII_MM]
    distance = np.sqrt(
        ((k - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((i - c[2]) / r[2]) ** 2
    )
    lumps = ndimage.gaussian_filter(rng.standard_normal(image.shape).astype(np.float32), 6.0)
    distance *= 1.0 + 0.25 * lumps / np.abs(lumps).max()
    alpha = np.clip((1.15 - distance) / 0.3, 0.0, 1.0) * brain
    target = float(image[white_matter & brain].mean()) * (1.0 + lesion_recipe.CONTRAST)
    texture = 1.0 + 0.05 * ndimage.gaussian_filter(rng.standard_normal(image.shape), 4.0)
    return alpha.astype(np.float32), (target * texture).astype(np.float32)


def atrophy_field(labels: np.ndarray) -> np.ndarray:
    """Pull-back displacement (mm, ``[k, j, i, (x, y, z)]``) for one year of atrophy.

    ``v = grad(phi)`` with ``laplace(phi) = -s``: the forward map's Jacobian is about ``1 + s``,
    with ``s = -ATROPHY_PER_YEAR`` in parenchyma and a balancing expansion in CSF / other.
    """
    parenchyma = (labels == GM) | (labels == WM)
    csf = labels == CSF
    source = np.where(parenchyma, -ATROPHY_PER_YEAR, 0.0)
    source[csf] = ATROPHY_PER_YEAR * parenchyma.sum() / csf.sum()
    source = ndimage.gaussian_filter(source, 1.5)
    pad = 32
    padded = np.pad(source, pad)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) * 2 * np.pi for n in padded.shape], indexing="ij")
    k2 = sum(f**2 for f in freqs)
    k2[0, 0, 0] = 1.0
    spectrum = np.fft.fftn(padded) / k2
    spectrum[0, 0, 0] = 0.0
    phi = np.real(np.fft.ifftn(spectrum))[pad:-pad, pad:-pad, pad:-pad]
    gk, gj, gi = np.gradient(phi)
    return np.stack([gi, gj, gk], axis=-1)  # identity direction, 1 mm: (x, y, z) = (i, j, k)


def _field_transform(field: np.ndarray, reference: sitk.Image) -> sitk.Transform:
    image = sitk.GetImageFromArray(field.astype(np.float64), isVector=True)
    image.CopyInformation(reference)
    return sitk.DisplacementFieldTransform(image)


def _resample(image: sitk.Image, transform: sitk.Transform, nearest: bool = False) -> np.ndarray:
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(image, image, transform, interpolator, 0.0)
    return sitk.GetArrayFromImage(out)


def _indicators(labels: np.ndarray) -> tuple[sitk.Image, sitk.Image]:
    """Parenchyma (GM + WM) and CSF / other indicators as float images (warped linearly)."""
    images = []
    for mask in ((labels == GM) | (labels == WM), labels == CSF):
        images.append(sitk.GetImageFromArray(mask.astype(np.float32)))
    return images[0], images[1]


def _volumes(parenchyma: np.ndarray, csf: np.ndarray, lesion: np.ndarray, voxel_ml: float):
    """Partial-volume truth in mL: warped indicators summed; lesion voxels count as tissue."""
    return {
        "parenchyma_ml": round(float(np.maximum(parenchyma, lesion).sum()) * voxel_ml, 3),
        "csf_other_ml": round(float((csf * ~lesion).sum()) * voxel_ml, 3),
        "lesion_ml": round(float(lesion.sum()) * voxel_ml, 3),
    }


def build(out: Path = DEFAULT_OUT) -> dict:
    """Write the follow-up series and ``truth.json``; return the truth."""
    template = load_series(TEMPLATE)
    baseline_first = pydicom.dcmread(sorted(BASELINE.glob("IM*.dcm"))[0], stop_before_pixels=True)
    labels_image = sitk.ReadImage(str(LABELS))
    labels = sitk.GetArrayFromImage(labels_image)
    reference = template.to_sitk()
    image0 = sitk.Cast(reference, sitk.sitkFloat32)
    voxel_ml = float(np.prod(template.spacing)) / 1000.0
    soft_p, soft_c = _indicators(labels)
    for image in (soft_p, soft_c):
        image.CopyInformation(reference)
    field = atrophy_field(labels)
    # Calibrate: scale the field so that one year removes ATROPHY_PER_YEAR of the parenchyma.
    p0 = float(sitk.GetArrayViewFromImage(soft_p).sum())
    p1 = float(_resample(soft_p, _field_transform(field, reference)).sum())
    field *= ATROPHY_PER_YEAR / ((p0 - p1) / p0)
    base_date = dt.datetime.strptime(str(baseline_first.StudyDate), "%Y%m%d").date()
    rng = np.random.default_rng(SEED)
    _, lesion0 = grow_lesion(template.array.astype(np.float32), labels == WM, 1.0)
    timepoints = [{"name": "baseline", "study_date": base_date.strftime("%Y%m%d"), "years": 0.0}]
    timepoints[0].update(
        _volumes(sitk.GetArrayFromImage(soft_p), sitk.GetArrayFromImage(soft_c), lesion0, voxel_ml)
    )
    for name, years_after in FOLLOWUPS:
        date = base_date.replace(year=base_date.year + years_after)
        t = (date - base_date).days / 365.25
        warp = _field_transform(field * t, reference)
        warped = _resample(image0, warp)  # for the lesion's brain mask and WM mean only
        warped_labels = _resample(labels_image, warp, nearest=True)
        scale = (1.0 + LESION_GROWTH_PER_YEAR * t) ** (1.0 / 3.0)
        alpha, overlay = lesion_layers(warped, warped_labels == WM, scale)
        lesion = (alpha >= 0.5) & (warped > 0)
        angles = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3))
        shift = rng.uniform(-MAX_TRANSLATION_MM, MAX_TRANSLATION_MM, 3)
        rigid = sitk.Euler3DTransform()
        rigid.SetCenter(template.index_to_lps(np.asarray(template.size) / 2.0 - 0.5).tolist())
        rigid.SetRotation(*angles.tolist())
        rigid.SetTranslation(shift.tolist())
        # One cubic B-spline resampling of the template (rigid, then the atrophy warp), so the
        # follow-up is not blurred by repeated linear interpolation; the lesion layers are smooth.
        both = sitk.CompositeTransform([_field_transform(field * t, reference), rigid])
        anatomy = sitk.GetArrayFromImage(
            sitk.Resample(image0, image0, both, sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
        )
        anatomy = np.where(_resample(image0, both) > 0, np.maximum(anatomy, 0.0), 0.0)
        layers = []
        for array in (alpha, overlay):
            layer = sitk.GetImageFromArray(array)
            layer.CopyInformation(reference)
            layers.append(_resample(layer, rigid))
        moved = anatomy * (1.0 - layers[0]) + layers[1] * layers[0]
        head = moved > 0.5
        noisy = moved + rng.normal(0.0, NOISE_SIGMA, moved.shape) * head
        stored = np.where(head, np.clip(np.rint(noisy), 1, 4095), 0).astype(np.uint16)
        _write(out / name, stored, template, baseline_first, date, years_after)
        entry = {"name": name, "study_date": date.strftime("%Y%m%d"), "years": round(t, 6)}
        entry.update(_volumes(_resample(soft_p, warp), _resample(soft_c, warp), lesion, voxel_ml))
        entry["rigid_misalignment"] = {
            "rotation_deg": np.rad2deg(angles).round(3).tolist(),
            "translation_mm": shift.round(3).tolist(),
            "note": "pull-back Euler3D about the grid centre (follow-up point -> anatomy point)",
        }
        timepoints.append(entry)
    truth = _truth(timepoints)
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def _truth(timepoints: list[dict]) -> dict:
    years = np.array([tp["years"] for tp in timepoints])
    rates = {}
    for key in ("parenchyma_ml", "lesion_ml", "csf_other_ml"):
        values = np.array([tp[key] for tp in timepoints])
        slope = float(np.polyfit(years, values, 1)[0])
        region = key.removesuffix("_ml")
        rates[region] = {
            "ml_per_year": round(slope, 3),
            "percent_per_year": round(100.0 * slope / values[0], 3),
        }
    return {
        "description": "Synthetic follow-ups of the demo lesion series (not a patient; "
        "not for clinical use). Volumes: warped truth-label indicators summed (partial "
        "volume); parenchyma = grey + white matter + lesion; rates are least-squares "
        "slopes over the timepoints, percent of the baseline volume.",
        "nominal": {
            "parenchymal_atrophy_percent_per_year": -100.0 * ATROPHY_PER_YEAR,
            "lesion_growth_percent_of_baseline_per_year": 100.0 * LESION_GROWTH_PER_YEAR,
            "noise_sigma": NOISE_SIGMA,
        },
        "timepoints": timepoints,
        "realised_rates": rates,
    }


def _write(folder: Path, stored: np.ndarray, template: Volume, first, date, years: int) -> None:
    prefix = f"medical-workstation-demo-followup-v1/{folder.name}"
    spec = SeriesSpec(
        modality="MR",
        patient_name=str(first.PatientName),
        patient_id=str(first.PatientID),
        study_date=date.strftime("%Y%m%d"),
        study_description=f"Demo brain MR follow-up {12 * years} months (synthetic)",
        series_description=f"T1 axial 1mm follow-up {12 * years} months (synthetic demo)",
        series_number=1,
        accession_number=f"DEMO-ACC-FU{12 * years}",
        uid_prefix=prefix,
        window_center=float(first.WindowCenter),
        window_width=float(first.WindowWidth),
        extra={
            key: first[key].value
            for key in ("MagneticFieldStrength", "RepetitionTime", "EchoTime", "FlipAngle")
            if key in first
        },
    )
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("IM*.dcm"):
        old.unlink()
    files = write_series(
        folder,
        stored,
        spacing=template.spacing,
        origin=template.origin,
        direction=template.direction,
        spec=spec,
    )
    for path in files:  # JPEG-LS lossless: exact values, a third of the size
        ds = pydicom.dcmread(path)
        ds.compress(pydicom.uid.JPEGLSLossless)
        ds.save_as(path, enforce_file_format=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    truth = build(args.out)
    for tp in truth["timepoints"]:
        print(tp["name"], tp["years"], tp["parenchyma_ml"], tp["lesion_ml"], tp["csf_other_ml"])
    print(json.dumps(truth["realised_rates"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
