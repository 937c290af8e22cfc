"""``workstation deid``: write de-identified copies of DICOM files (PS3.15 Basic Profile).

::

    workstation deid SRC --out DIR [--site-secret-env VAR] [--burned-in refuse|flag] [--json]

SRC is a DICOM file or a folder (searched recursively; files under DIR are left out). Each DICOM
file is written as ``DIR/<new SeriesInstanceUID>/<new SOPInstanceUID>.dcm``: the names carry no
PHI, and a series stays one folder because UIDs map consistently. See
:mod:`workstation.dicom.deid` for what is removed, replaced and kept.

Site secret (keys UID remapping, pseudonyms and date offsets): ``$VAR`` when ``--site-secret-env
VAR`` is given, else ``$WORKSTATION_DEID_SECRET``, hex or base64 (at least 16 bytes); else the
per-workstation file ``<home>/keys/deid-site-secret``, created (mode 0600) on first use. Give every
workstation of a site the same secret so that their exports link up; never share it across sites.

Images that may carry burned-in text (BurnedInAnnotation YES, or unstated for US, SC, OT ...)
are refused by default and listed; ``--burned-in flag`` writes them and lists them for review.
Files that are not DICOM (and DICOMDIR indexes) are skipped. The report names files by their
path under SRC, which may itself name a patient: keep it local. Exit codes: 0 ok (refusals are
reported, not failures), 1 when any file failed or nothing was DICOM, 2 usage.

``--json`` (schema 1; new keys may be added)::

    {"schema": 1, "out", "written", "series": {new_series_uid: files},
     "refused": [{"path", "reason"}], "flagged": [{"path", "reason"}],
     "failed": [{"path", "reason"}], "skipped": [{"path", "reason"}]}
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SCHEMA = 1
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``deid`` command to the top-level subparsers."""
    deid = commands.add_parser(
        "deid",
        help="write de-identified copies of DICOM files (PS3.15 Basic Profile)",
        description="De-identify every DICOM file under SRC (Basic Profile with shifted dates "
        "and cleaned descriptors; UIDs remapped with the site secret) into "
        "DIR/<series>/<instance>.dcm.",
    )
    add = deid.add_argument
    add("src", metavar="SRC", help="a DICOM file or a folder (searched recursively)")
    add("--out", metavar="DIR", required=True, help="the folder to write")
    add(
        "--site-secret-env",
        metavar="VAR",
        help="environment variable holding the site secret (hex or base64); default "
        "$WORKSTATION_DEID_SECRET, else <home>/keys/deid-site-secret",
    )
    add(
        "--burned-in",
        choices=("refuse", "flag"),
        default="refuse",
        help="images that may carry burned-in text: refuse them (default) or write and list them",
    )
    add("--json", action="store_true", help="print a JSON summary (schema 1)")


def _files(src: Path, out: Path) -> Iterator[Path]:
    if src.is_file():
        yield src
        return
    out = out.resolve()
    for path in sorted(src.rglob("*")):
        if not path.is_file() or any(p.startswith(".") for p in path.relative_to(src).parts):
            continue
        if path.resolve().is_relative_to(out):
            continue
        yield path


def _target(path: Path, out: Path, policy: Any) -> Path | str:
    """Where the copy goes, or why the file is skipped (not DICOM, a DICOMDIR)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID"],
        )
    except InvalidDicomError:
        return "not DICOM"
    except (OSError, ValueError, EOFError):  # DICOM-looking but unreadable: deidentify_file
        return out / "no-series" / f"{policy.map_uid(f'file:{path.resolve()}')}.dcm"  # says why
    meta = getattr(header, "file_meta", None)
    sop_class = str(header.get("SOPClassUID") or (meta or {}).get("MediaStorageSOPClassUID", ""))
    if sop_class == _DICOMDIR_CLASS:
        return "DICOMDIR (an index, not an image)"
    sop = str(header.get("SOPInstanceUID") or (meta or {}).get("MediaStorageSOPInstanceUID", ""))
    series = str(header.get("SeriesInstanceUID") or "")
    folder = policy.map_uid(series) if series else "no-series"
    name = policy.map_uid(sop or f"file:{path.resolve()}")
    return out / folder / f"{name}.dcm"


def run(args: argparse.Namespace) -> int:
    """Run ``workstation deid``; returns the exit code."""
    from workstation.cli_format import ProgressBar
    from workstation.dicom.deid import (
        BurnedIn,
        BurnedInAnnotationError,
        DeidPolicy,
        deidentify_file,
        site_secret,
    )
    from workstation.dicom.errors import DicomError

    src, out = Path(args.src), Path(args.out)
    if not src.exists():
        sys.stderr.write(f"workstation deid: error: {src} does not exist\n")
        return EXIT_USAGE
    policy = DeidPolicy(
        site_secret=site_secret(args.site_secret_env),  # ConfigError -> exit 1 in cli.main
        burned_in=BurnedIn(args.burned_in),
    )
    files = list(_files(src, out))
    report: dict[str, list[dict[str, str]]] = {
        "refused": [],
        "flagged": [],
        "failed": [],
        "skipped": [],
    }
    series: Counter[str] = Counter()
    progress = ProgressBar()
    for done, path in enumerate(files, 1):
        shown = str(path.relative_to(src)) if path != src else path.name
        target = _target(path, out, policy)
        if isinstance(target, str):
            report["skipped"].append({"path": shown, "reason": target})
            continue
        try:
            result = deidentify_file(path, target, policy=policy)
        except BurnedInAnnotationError as error:
            report["refused"].append({"path": shown, "reason": error.reason})
        except DicomError as error:
            report["failed"].append({"path": shown, "reason": error.message})
        else:
            series[result.series_instance_uid or "no-series"] += 1
            if result.flag:
                report["flagged"].append({"path": shown, "reason": result.flag})
        progress(done, len(files), "de-identifying")
    written = sum(series.values())
    document = {"schema": SCHEMA, "out": str(out), "written": written, "series": series, **report}
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(document)
    if report["failed"] or not (written or report["refused"]):
        if not files or len(report["skipped"]) == len(files):
            sys.stderr.write(f"error: no DICOM files under {src}\n")
        return EXIT_FAILURE
    return EXIT_OK


def _print_text(document: dict[str, Any]) -> None:
    series = document["series"]
    sys.stdout.write(
        f"de-identified {document['written']} file(s) in {len(series)} series into "
        f"{document['out']}\n"
    )
    labels = {
        "flagged": "flagged for review (burned-in text?)",
        "refused": "refused (burned-in text)",
        "failed": "failed",
        "skipped": "skipped",
    }
    for key, label in labels.items():
        entries = document[key]
        if not entries:
            continue
        stream = sys.stdout if key == "skipped" else sys.stderr
        stream.write(f"{len(entries)} {label}:\n")
        for entry in entries[:20]:
            stream.write(f"  {entry['path']}: {entry['reason']}\n")
        if len(entries) > 20:
            stream.write(f"  ... and {len(entries) - 20} more (see --json)\n")
