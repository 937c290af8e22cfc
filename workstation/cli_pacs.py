"""``workstation pacs``: search a DICOMweb server (a PACS) and fetch studies from it to files.

::

    workstation pacs search URL [--patient-name NAME] [--patient-id ID] [--date D[-D]]
                                [--modality MOD]... [--accession N] [--fuzzy] [--study UID]
                                [--limit N] [--offset N] [--json] [CONNECTION]
    workstation pacs fetch URL [--study UID] [--series UID]... --out DIR [--connections N]
                               [--json] [CONNECTION]
    CONNECTION: [--user USER] [--token-env VAR] [--ca FILE | --insecure] [--timeout S]

URL is the DICOMweb service root (``https://pacs/dicom-web``); a URL naming
``.../studies/S[/series/R]`` stands for ``--study S [--series R]``. ``fetch`` writes
``DIR/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``; a rerun skips complete files.

Secrets: a password comes from ``user:password@`` in the URL, ``$WORKSTATION_PACS_PASSWORD`` or,
when a user name is given and stdin is a terminal, a prompt; a bearer token from
``$WORKSTATION_PACS_TOKEN`` (or the variable ``--token-env`` names). They are never printed.
Exit codes: 0 ok, 1 failure (one line on stderr; no patient data), 2 usage.

``--json`` documents (schema 1; new keys may be added, existing keys keep their meaning)::

    search: {"schema": 1, "server", "level": "studies" | "series", "study_uid", "limit",
             "offset", "count", "results": [StudyRecord.to_json() | SeriesRecord.to_json()]}
    fetch:  {"schema": 1, "server", "study_uid", "out", "written", "skipped", "failed",
             "complete", "series": [{"series_uid", "folder", "instances", "written",
             "skipped", "failed": [{"sop_instance_uid", "reason"}], "error"}]}
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workstation.core.errors import WorkstationError

if TYPE_CHECKING:  # httpx loads only when the command runs
    from workstation.core.tasks import ProgressFn
    from workstation.dicom.dicomweb import DicomwebLocation, FetchReport
    from workstation.workflow.remote import PacsServer

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SCHEMA = 1
_DATE = re.compile(r"\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8}")
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@")
_STUDY_FILTERS = ("patient_name", "patient_id", "date", "accession", "fuzzy")
_MAX_FAILURES_SHOWN = 20
_EMPTY_SERIES = "the server has no instances in this series; check the SeriesInstanceUID"


class _UsageError(Exception):
    """A command line that cannot work (exit 2)."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``pacs`` command and its actions to the top-level subparsers."""
    pacs = commands.add_parser(
        "pacs",
        help="search a DICOMweb server (PACS) and fetch studies from it",
        description="Search a DICOMweb server (QIDO-RS) and fetch studies to DICOM files "
        "(WADO-RS). URL is the service root, e.g. https://pacs.example.org/dicom-web.",
    )
    actions = pacs.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    search = actions.add_parser(
        "search",
        help="list studies (or, with --study, a study's series)",
        description="List the studies matching every filter given (* and ? wildcards), or "
        "with --study (or a .../studies/UID URL) that study's series.",
    )
    add = search.add_argument
    add("url", metavar="URL", help="DICOMweb service root (or a study URL)")
    add("--patient-name", metavar="NAME", help="PatientName, e.g. 'DOE^J*'")
    add("--patient-id", metavar="ID", help="PatientID")
    add("--date", metavar="YYYYMMDD[-YYYYMMDD]", type=_date_range, help="study date or range")
    add("--modality", metavar="MOD", action="append", help="CT, MR, ... (repeat: any of them)")
    add("--accession", metavar="N", help="AccessionNumber")
    add("--fuzzy", action="store_true", help="fuzzy names (a plain name matches anywhere)")
    add("--study", metavar="UID", help="list this study's series instead")
    add("--limit", metavar="N", type=_count(1), help="at most N results")
    add("--offset", metavar="N", type=_count(0), help="skip the first N results")
    add("--json", action="store_true", help="print a JSON document (schema 1)")
    _add_connection(search)
    fetch = actions.add_parser(
        "fetch",
        help="write a study's (or some series') instances to DICOM files",
        description="Write DIR/<SeriesInstanceUID>/<SOPInstanceUID>.dcm for every instance. "
        "A rerun skips complete files; exit 1 when any instance failed.",
    )
    add = fetch.add_argument
    add("url", metavar="URL", help="service root, or a .../studies/UID[/series/UID] URL")
    add("--study", metavar="UID", help="StudyInstanceUID (unless the URL names it)")
    add("--series", metavar="UID", action="append", help="only this series (repeatable)")
    add("--out", metavar="DIR", required=True, help="the folder to write")
    add("--connections", metavar="N", type=_count(1), default=4, help="default 4")
    add("--json", action="store_true", help="print a JSON summary (schema 1)")
    _add_connection(fetch)


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--user",
        metavar="USER",
        help="user name (password: $WORKSTATION_PACS_PASSWORD, or asked on a terminal)",
    )
    group.add_argument(
        "--token-env", metavar="VAR", help="variable holding a bearer token (default: "
        "WORKSTATION_PACS_TOKEN)",
    )  # fmt: skip
    tls = group.add_mutually_exclusive_group()
    tls.add_argument("--ca", metavar="FILE", help="CA bundle (PEM) to trust for https")
    tls.add_argument("--insecure", action="store_true", help="do not verify TLS (test servers)")
    group.add_argument("--timeout", metavar="S", type=_seconds, default=30.0, help="default 30")


def _date_range(text: str) -> str:
    if not _DATE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            f"not a date or range: {text!r} (YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD)"
        )
    return text.strip()


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text) if text.strip().isdigit() else -1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number ≥ {minimum}: {text!r}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0: {text!r}")
    return value


# -- running ------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Run ``workstation pacs ...``; returns the exit code."""
    import httpx

    from workstation.dicom.dicomweb import AuthenticationError, ServerUnreachableError, TlsError

    secrets = _userinfo(args.url)
    server: PacsServer | None = None
    try:
        location, server = _prepare(args)
        secrets += [s for s in (server.credentials.password, server.credentials.token) if s]
        if args.pacs_command == "search":
            return _search(args, location, server)
        return _fetch(args, location, server)
    except (_UsageError, httpx.InvalidURL) as error:
        _say(f"workstation pacs {args.pacs_command}: error: {error}", secrets)
        return EXIT_USAGE
    except AuthenticationError as error:
        _say(f"error: {error}{_auth_hint(server)}", secrets)
        return EXIT_FAILURE
    except ServerUnreachableError as error:
        plain = server is None or isinstance(error, TlsError) or "cannot reach" in str(error)
        _say(f"error: {'' if plain else f'cannot reach {server.url}: '}{error}", secrets)
        return EXIT_FAILURE
    except ssl.SSLError as error:  # before OSError: a CA bundle that is not PEM
        _say(f"error: cannot use the CA bundle {args.ca}: {error}", secrets)
        return EXIT_FAILURE
    except OSError as error:  # the output folder
        where = f"{error.filename}: " if error.filename else ""
        _say(f"error: {where}{error.strerror or error}", secrets)
        return EXIT_FAILURE
    except (WorkstationError, ValueError) as error:  # DicomwebError, Cancelled, bad values
        _say(f"error: {error}", secrets)
        return EXIT_FAILURE


def _say(line: str, secrets: Sequence[str]) -> None:
    """Write one line to stderr, secrets blanked out (a safety net: messages carry none)."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        line = line.replace(secret, "***")
    sys.stderr.write(" ".join(line.split()) + "\n")


def _userinfo(url: str) -> list[str]:
    """The secrets in a URL's ``user:password@`` (none without a password)."""
    match = _USERINFO.match(url)
    if match is None:
        return []
    password = match.group(1).partition(":")[2]
    return [match.group(1), password] if password else []


def _auth_hint(server: PacsServer | None) -> str:
    from workstation.workflow.remote import PASSWORD_ENV

    if server is None or server.credentials.token:
        return ""
    if not server.username:
        return f" (give --user USER; the password from ${PASSWORD_ENV} or a terminal prompt)"
    if not server.credentials.password:
        return f" (no password was given: set ${PASSWORD_ENV}, or run in a terminal)"
    return ""


def _prepare(args: argparse.Namespace) -> tuple[DicomwebLocation, PacsServer]:
    """The URL's parts and the server with its credentials (usage errors raise)."""
    from workstation.dicom.dicomweb import parse_dicomweb_url
    from workstation.workflow.remote import PASSWORD_ENV, TOKEN_ENV, Credentials, server_from_url

    try:
        location = parse_dicomweb_url(args.url)
    except ValueError as error:
        raise _UsageError(str(error)) from None
    if args.ca is not None and not Path(args.ca).is_file():
        raise _UsageError(f"no such CA bundle: {args.ca}")
    verify: bool | str = False if args.insecure else (args.ca or True)
    server = server_from_url(args.url, verify=verify, timeout=args.timeout)
    if args.user:
        server = replace(server, username=args.user)
    token = os.environ.get(args.token_env or TOKEN_ENV) or None
    if args.token_env and token is None:
        raise _UsageError(f"--token-env: ${args.token_env} is not set or empty")
    password = server.credentials.password or os.environ.get(PASSWORD_ENV) or None
    if server.username and not password and not token and sys.stdin.isatty():
        host = location.base_url.split("/")[2]
        try:
            password = getpass.getpass(f"Password for {server.username} at {host}: ")
        except EOFError:
            password = None
    if args.insecure:
        sys.stderr.write("warning: TLS certificates are not verified (--insecure)\n")
    return location, server.with_credentials(Credentials(password=password, token=token))


# -- search -------------------------------------------------------------------------------------
def _search(args: argparse.Namespace, location: DicomwebLocation, server: PacsServer) -> int:
    from workstation.workflow.remote import connect

    study = _one_study(args.study, location)
    given = [f"--{name.replace('_', '-')}" for name in _STUDY_FILTERS if getattr(args, name)]
    if study is not None and given:
        raise _UsageError(f"{', '.join(given)} filter studies, not a study's series")
    modalities = args.modality or None
    records: Sequence[Any]
    with connect(server) as client:
        if study is not None:
            found = client.search_series(
                study,
                modality=",".join(modalities) if modalities else None,
                series_uid=location.series_uid,
                limit=args.limit,
                offset=args.offset,
            )
            records = sorted(found, key=_by_number)
            if not records and not args.offset:
                raise _no_series(study, server)
        else:
            filters: dict[str, Any] = {
                "patient_name": args.patient_name,
                "patient_id": args.patient_id,
                "study_date": args.date,
                "modalities": modalities,
                "accession_number": args.accession,
                "fuzzy": args.fuzzy,
            }
            if args.limit is None and args.offset is None:
                records = list(client.iter_studies(**filters))  # every page
            else:
                records = client.search_studies(limit=args.limit, offset=args.offset, **filters)
    if args.json:
        level = "studies" if study is None else "series"
        _print_json(
            {
                "schema": SCHEMA,
                "server": server.url,
                "level": level,
                "study_uid": study,
                "limit": args.limit,
                "offset": args.offset,
                "count": len(records),
                "results": [record.to_json() for record in records],
            }
        )
        return EXIT_OK
    sys.stdout.write(_table(records, _STUDY_COLUMNS if study is None else _SERIES_COLUMNS))
    more = args.limit is not None and len(records) == args.limit
    hint = f"; more may match: --offset {(args.offset or 0) + len(records)}" if more else ""
    noun = "study(ies)" if study is None else "series"
    sys.stdout.write(f"{len(records)} {noun} on {_host(server)}{hint}\n")
    return EXIT_OK


def _one_study(given: str | None, location: DicomwebLocation) -> str | None:
    if given and location.study_uid and given != location.study_uid:
        raise _UsageError("--study differs from the study in the URL; give one of them")
    return given or location.study_uid


def _by_number(record: Any) -> tuple[bool, int]:
    return record.series_number is None, record.series_number or 0


# (header, value, widest shown; 0: never clipped)
_Column = tuple[str, Callable[[Any], object], int]
_STUDY_COLUMNS: tuple[_Column, ...] = (
    ("DATE", lambda r: _date(r.study_date), 0),
    ("PATIENT", lambda r: r.patient_name, 28),
    ("ID", lambda r: r.patient_id, 16),
    ("MODALITIES", lambda r: ",".join(r.modalities), 0),
    ("DESCRIPTION", lambda r: r.description, 32),
    ("SERIES", lambda r: r.series_count, 0),
    ("STUDY UID", lambda r: r.study_uid, 0),
)
_RIGHT = {"#", "SERIES", "INSTANCES"}
_SERIES_COLUMNS: tuple[_Column, ...] = (
    ("#", lambda r: r.series_number, 0),
    ("MODALITY", lambda r: r.modality, 0),
    ("DESCRIPTION", lambda r: r.description, 40),
    ("INSTANCES", lambda r: r.instance_count, 0),
    ("SERIES UID", lambda r: r.series_uid, 0),
)


def _table(records: Sequence[Any], columns: Sequence[_Column]) -> str:
    if not records:
        return ""
    rows = [[header for header, _, _ in columns]]
    for record in records:
        values = [(value(record), width) for _, value, width in columns]
        rows.append([_clip("" if v is None else str(v), width) for v, width in values])
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    align = [str.rjust if header in _RIGHT else str.ljust for header, _, _ in columns]
    return "".join(
        "  ".join(a(c, w) for c, w, a in zip(row, widths, align, strict=True)).rstrip() + "\n"
        for row in rows
    )


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def _clip(text: str, width: int) -> str:
    return text if not width or len(text) <= width else text[: width - 1] + "…"


# -- fetch --------------------------------------------------------------------------------------
def _fetch(args: argparse.Namespace, location: DicomwebLocation, server: PacsServer) -> int:
    from workstation.cli_format import ProgressBar
    from workstation.dicom.dicomweb import fetch_series
    from workstation.workflow.remote import connect

    study = _one_study(args.study, location)
    if study is None:
        raise _UsageError("fetch needs --study UID (or a URL naming .../studies/UID)")
    series = list(dict.fromkeys(u for u in (location.series_uid, *(args.series or [])) if u))
    out, bar = Path(args.out), ProgressBar()
    out.mkdir(parents=True, exist_ok=True)  # a bad folder fails before any download
    reports: list[dict[str, Any]] = []
    with connect(server) as client:
        if not series:
            found = sorted(client.search_series(study), key=_by_number)
            if not found:
                raise _no_series(study, server)
            series = [record.series_uid for record in found]
        for index, uid in enumerate(series, 1):
            label = f"series {index}/{len(series)}"
            progress = partial(_labelled, bar, label)
            report = fetch_series(
                client, study, uid, out / uid, progress=progress, connections=args.connections
            )
            reports.append(_series_json(uid, report))
    return _fetch_summary(args, server, study, out, reports)


def _series_json(uid: str, report: FetchReport) -> dict[str, Any]:
    instances = report.written + report.skipped + len(report.failed)
    return {
        "series_uid": uid,
        "folder": str(report.folder),
        "instances": instances,
        "written": report.written,
        "skipped": report.skipped,
        "failed": [{"sop_instance_uid": sop, "reason": why} for sop, why in report.failed],
        "error": None if instances else _EMPTY_SERIES,
    }


def _fetch_summary(
    args: argparse.Namespace, server: PacsServer, study: str, out: Path, series: list[dict]
) -> int:
    written, skipped = (sum(entry[key] for entry in series) for key in ("written", "skipped"))
    failed = sum(len(entry["failed"]) for entry in series)
    problems = [f"series {e['series_uid']}: {e['error']}" for e in series if e["error"]]
    problems += [
        f"series {e['series_uid']} instance {f['sop_instance_uid']}: {f['reason']}"
        for e in series
        for f in e["failed"]
    ]
    if args.json:
        _print_json(
            {
                "schema": SCHEMA,
                "server": server.url,
                "study_uid": study,
                "out": str(out),
                "written": written,
                "skipped": skipped,
                "failed": failed,
                "complete": not problems,
                "series": series,
            }
        )
    else:
        for e in series:
            sys.stdout.write(
                f"series {e['series_uid']}: {e['instances']} instance(s), {e['written']} "
                f"written, {e['skipped']} skipped, {len(e['failed'])} failed\n"
            )
        sys.stdout.write(
            f"{out}: {written} written, {skipped} skipped (already complete), {failed} failed\n"
        )
    for problem in problems[:_MAX_FAILURES_SHOWN]:
        sys.stderr.write(f"failed: {problem}\n")
    if len(problems) > _MAX_FAILURES_SHOWN:
        sys.stderr.write(f"failed: ... and {len(problems) - _MAX_FAILURES_SHOWN} more\n")
    if problems:
        sys.stderr.write("error: the fetch is incomplete; rerun the same command to retry\n")
        return EXIT_FAILURE
    return EXIT_OK


def _labelled(bar: ProgressFn, label: str, done: int, total: int, _message: str) -> None:
    bar(done, total, label)


# -- helpers ------------------------------------------------------------------------------------
def _host(server: PacsServer) -> str:
    return server.url.split("/")[2]


def _no_series(study: str, server: PacsServer) -> WorkstationError:
    from workstation.dicom.dicomweb import DicomwebNotFoundError

    return DicomwebNotFoundError(
        f"study {study} has no series on {_host(server)}; check the StudyInstanceUID", uid=study
    )


def _print_json(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
