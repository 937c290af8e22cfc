"""De-identification: the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile.

::

    policy = DeidPolicy(site_secret=site_secret())
    clean = deidentify(dataset, policy=policy)        # a new Dataset; the input is unchanged
    result = deidentify_file(src, dst, policy=policy)

What it does, per Table E.1-1 (``_deid_table``, generated from cited copies of the standard's
table: see ``resources/deid/README.md``):

* every listed attribute is removed, emptied, replaced with a dummy or remapped as the table
  says (:mod:`workstation.dicom._deid_profile` says how a "X/Z"-style choice is made), at every
  depth: sequences are walked recursively;
* options (:class:`Option`, both on by default): **Retain Longitudinal Temporal Information with
  Modified Dates** (dates shifted by a per-patient offset of 1 to ``max_date_shift_days`` days
  into the past, derived from a keyed hash of the patient's id, so all of a patient's studies
  move together; times of day are kept; a date that does not parse falls back to the Basic
  Profile action) and **Clean Descriptors** (descriptions kept, cleaned of the identifying values
  the dataset itself carries and of id-, date- and e-mail-shaped text: see
  :class:`~workstation.dicom._deid_values.Scrubber`);
* UIDs: HMAC-SHA256 of the UID under the site secret, as a ``2.25.<int>`` UID (same input, same
  output at one site; different at another); the file meta follows the new SOP Instance UID;
* Patient's Name and Patient ID: a keyed pseudonym (``ANON<16 hex>``; a valid "Z"/"D" value) so
  one patient's data stays linkable, or empty with ``pseudonymize_patient=False``;
* private attributes, overlay planes (groups 60xx) and curves (50xx) are removed; the 128-byte
  preamble is zeroed; pixel data are never touched;
* PatientIdentityRemoved = YES, DeidentificationMethod and DeidentificationMethodCodeSequence
  (CID 7050) and LongitudinalTemporalInformationModified are set.

Burned-in annotation (text in the pixels, which no header rule removes) is a policy
(:class:`BurnedIn`): a dataset with BurnedInAnnotation (or RecognizableVisualFeatures) YES, or
without the attribute for a modality or SOP class where burned-in text is common (US, SC, OT,
XC, ES, ...), is refused with :class:`BurnedInAnnotationError` by default; ``BurnedIn.FLAG``
de-identifies it anyway and reports it (:attr:`DeidResult.flag`) for a person to review.

Why not a library (all three were read): pydicom/deid is driven by recipes (its default one is
a pixel-cleaning filter list plus header rules in its own format, not Table E.1-1 with its
options) and leaves UID and date schemes to user functions; dicognito chooses its own attribute
list, invents fake names and ids, derives values from MD5(seed + value) rather than a keyed MAC,
and shifts every date of a run by one offset (in hours) rather than per patient; highdicom has no
de-identifier. None ships the profile's option columns. The table is therefore vendored as data
(from two maintained packages' copies of it) and applied here, so every action is traceable to
a row of the standard. dicognito's BurnedInAnnotationGuard ("if-yes" / "unless-no") inspired
:class:`BurnedIn`.

Errors::

    DicomError
    └── DeidError                   a dataset could not be de-identified
        └── BurnedInAnnotationError  refused: text may be burned into the pixels
"""

from __future__ import annotations

import copy
import enum
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from workstation import __version__
from workstation.dicom._deid_clean import Cleaner, patient_key
from workstation.dicom._deid_profile import BASIC_PROFILE_CODE, Option
from workstation.dicom._deid_secret import site_secret
from workstation.dicom._deid_values import date_offset_days, remap_uid
from workstation.dicom.errors import DicomError, DicomReadError, NotDicomError

__all__ = [
    "DEFAULT_OPTIONS",
    "BurnedIn",
    "BurnedInAnnotationError",
    "DeidError",
    "DeidPolicy",
    "DeidResult",
    "Option",
    "burned_in_risk",
    "deidentify",
    "deidentify_file",
    "remap_uid",
    "site_secret",
]

log = logging.getLogger(__name__)

DEFAULT_OPTIONS = frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.CLEAN_DESCRIPTORS})
# Modalities whose images often carry burned-in text (PS3.3 C.7.6.1.1.2 / common practice).
AT_RISK_MODALITIES = frozenset({"US", "IVUS", "SC", "OT", "XC", "ES", "GM", "SM", "DOC", "TG"})
# SOP classes likewise: Secondary Capture (…1.7*), US (…1.6*, …1.3*), VL (…1.77*), PDF (…104*).
AT_RISK_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.6",
    "1.2.840.10008.5.1.4.1.1.3.",
    "1.2.840.10008.5.1.4.1.1.77",
    "1.2.840.10008.5.1.4.1.1.104",
)


class DeidError(DicomError):
    """A dataset could not be de-identified (the message says why; it holds no PHI)."""


class BurnedInAnnotationError(DeidError):
    """Refused: identifying text may be burned into the pixels (``reason`` says why)."""

    def __init__(self, reason: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(
            f"refused: {reason}; pixel text cannot be removed by header de-identification "
            "(review the images, then use BurnedIn.FLAG / --burned-in flag)",
            path=None if path is None else Path(path),
        )
        self.reason = reason


class BurnedIn(enum.Enum):
    """What to do with images that may have text burned into the pixels."""

    REFUSE = "refuse"  # raise BurnedInAnnotationError
    FLAG = "flag"  # de-identify the header anyway; DeidResult.flag says why it needs review


@dataclass(frozen=True)
class DeidPolicy:
    """How to de-identify.

    Parameters
    ----------
    site_secret
        Keys every hash (UIDs, pseudonyms, date offsets); at least 16 bytes. One per site,
        never shared across sites (see :func:`site_secret`).
    options
        Profile options; both supported ones by default.
    burned_in
        :class:`BurnedIn` policy for images that may carry burned-in text.
    at_risk_modalities, at_risk_sop_prefixes
        Where a missing BurnedInAnnotation counts as "may be YES".
    pseudonymize_patient
        Patient's Name and ID become a keyed pseudonym (else empty).
    max_date_shift_days
        Dates move 1 to this many days into the past.
    """

    site_secret: bytes = field(repr=False)
    options: frozenset[Option] = DEFAULT_OPTIONS
    burned_in: BurnedIn = BurnedIn.REFUSE
    at_risk_modalities: frozenset[str] = AT_RISK_MODALITIES
    at_risk_sop_prefixes: tuple[str, ...] = AT_RISK_SOP_PREFIXES
    pseudonymize_patient: bool = True
    max_date_shift_days: int = 3650

    def __post_init__(self) -> None:
        if len(self.site_secret) < 16:
            raise ValueError("site_secret must be at least 16 bytes")
        if self.max_date_shift_days < 1:
            raise ValueError("max_date_shift_days must be at least 1")
        object.__setattr__(self, "options", frozenset(self.options))

    def map_uid(self, uid: str) -> str:
        """The replacement this policy gives ``uid``."""
        return remap_uid(uid, self.site_secret)

    def date_offset(self, dataset: Dataset) -> int:
        """Days this dataset's dates move (the same for every dataset of one patient)."""
        return date_offset_days(patient_key(dataset), self.site_secret, self.max_date_shift_days)


@dataclass(frozen=True)
class DeidResult:
    """One file written by :func:`deidentify_file` (new UIDs only; nothing identifying)."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    flag: str | None = None  # why the file needs review (burned-in, BurnedIn.FLAG)


def burned_in_risk(dataset: Dataset, policy: DeidPolicy) -> str | None:
    """Why ``dataset``'s pixels may carry identifying text, or ``None``."""
    for keyword in ("BurnedInAnnotation", "RecognizableVisualFeatures"):
        if str(dataset.get(keyword, "") or "").strip().upper() == "YES":
            return f"{keyword} is YES"
    if str(dataset.get("BurnedInAnnotation", "") or "").strip():
        return None  # NO (or another explicit value): trust the modality
    modality = str(dataset.get("Modality", "") or "").strip().upper()
    if modality in policy.at_risk_modalities:
        return f"BurnedInAnnotation is not stated for a {modality} image"
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    if sop_class.startswith(policy.at_risk_sop_prefixes):
        return f"BurnedInAnnotation is not stated for SOP class {sop_class}"
    return None


def _mark(dataset: Dataset, policy: DeidPolicy) -> None:
    """The attributes that say how the dataset was de-identified (PS3.15 E.1.1 step 5)."""
    dataset.PatientIdentityRemoved = "YES"
    codes = [BASIC_PROFILE_CODE, *sorted(o.code for o in policy.options)]
    dataset.DeidentificationMethod = [meaning[:64] for _, meaning in codes] + [
        f"medical-workstation {__version__}"
    ]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        items.append(item)
    dataset.DeidentificationMethodCodeSequence = Sequence(items)
    dataset.LongitudinalTemporalInformationModified = (
        "MODIFIED" if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in policy.options else "REMOVED"
    )


def _transfer_syntax(dataset: Dataset) -> str | None:
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    encoding = getattr(dataset, "original_encoding", None) or (None, None)
    implicit, little = encoding
    if implicit is None:
        return None
    if implicit:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def deidentify(dataset: Dataset, *, policy: DeidPolicy) -> Dataset:
    """A de-identified copy of ``dataset`` (see the module docstring); the input is unchanged.

    Raises
    ------
    BurnedInAnnotationError
        The pixels may carry identifying text and ``policy.burned_in`` is REFUSE.
    """
    reason = burned_in_risk(dataset, policy)
    if reason is not None and policy.burned_in is BurnedIn.REFUSE:
        raise BurnedInAnnotationError(reason)
    out = copy.deepcopy(dataset)
    cleaner = Cleaner(policy, dataset)
    cleaner.clean(out)
    _mark(out, policy)
    syntax = _transfer_syntax(dataset)
    meta = FileMetaDataset()
    old_meta = getattr(dataset, "file_meta", None) or FileMetaDataset()
    sop_class = out.get("SOPClassUID") or old_meta.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    if "SOPInstanceUID" in out:
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    elif old_meta.get("MediaStorageSOPInstanceUID"):  # (0002,0003) is "U" in the table too
        meta.MediaStorageSOPInstanceUID = policy.map_uid(str(old_meta.MediaStorageSOPInstanceUID))
    if syntax is not None:
        meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out.file_meta = meta
    if getattr(out, "preamble", None) is not None:
        out.preamble = b"\0" * 128  # a TIFF/DICOM dual file keeps PHI there
    if hasattr(out, "filename"):
        out.filename = None
    if reason is not None:
        log.warning("de-identified an image flagged for review: %s", reason)
    return out


def deidentify_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    policy: DeidPolicy,
) -> DeidResult:
    """Read ``src``, de-identify it and write ``dst`` (parent folders are created).

    Raises
    ------
    NotDicomError, DicomReadError
        ``src`` is not DICOM or cannot be read.
    BurnedInAnnotationError
        Refused by the burned-in policy (nothing is written).
    DeidError
        The de-identified dataset could not be written.
    """
    try:
        dataset = pydicom.dcmread(src)
    except InvalidDicomError as error:
        raise NotDicomError("not a DICOM file", path=src) from error
    except (OSError, ValueError, EOFError) as error:
        raise DicomReadError(f"cannot read the DICOM file: {error}", path=src) from error
    try:
        out = deidentify(dataset, policy=policy)
    except BurnedInAnnotationError as error:
        raise BurnedInAnnotationError(error.reason, path=src) from None
    dst = Path(dst)
    partial = dst.with_name(f".{dst.name}.partial")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        out.save_as(partial, enforce_file_format=True)
        os.replace(partial, dst)  # never a half-written file under the final name
    except (OSError, ValueError, AttributeError) as error:
        partial.unlink(missing_ok=True)
        raise DeidError(f"cannot write the de-identified file: {error}", path=dst) from error
    return DeidResult(
        path=dst,
        sop_instance_uid=str(out.get("SOPInstanceUID", "")),
        series_instance_uid=str(out.get("SeriesInstanceUID", "")),
        flag=burned_in_risk(dataset, policy),
    )
