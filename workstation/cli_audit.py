"""``workstation audit`` and ``workstation results``: the audit trail and the saved results.

::

    workstation audit verify [--json] [--db URL]
    workstation audit export --since DATE [--json | --jsonl] [--db URL]
    workstation results list [--study PSEUDONYM] [--limit N] [--json] [--db URL]
    workstation results show ID [--json] [--db URL]

The store is ``<home>/store/results.db`` unless ``--db`` (or ``$WORKSTATION_STORE_URL``) names
another SQLAlchemy URL; the key store (``workstation keys init``) unlocks it, a passphrase
coming from ``$WORKSTATION_PASSPHRASE`` or a prompt. Every command is itself audited
(``audit.verify``, ``audit.export``, ``result.list``, ``result.view``).

Exit codes: 0 ok, 1 failure or (``verify``) a tampered trail, the first bad event named on
stderr, 2 usage. ``--json`` documents (schema 1; keys may be added, never change meaning)::

    verify:  {"schema": 1, "ok", "events", "last_seq", "checkpoints", "signatures_checked",
              "first_bad_seq", "problems": [{"seq", "kind", "message"}]}
    export:  {"schema": 1, "since", "events": [{"seq", "time", "actor", "action",
              "object_type", "object_id", "study", "details", "prev_hash", "hash"}]}
             (--jsonl: one event object per line)
    list:    {"schema": 1, "results": [{"id", "study", "model_name", "model_version",
              "created", "created_by", "finding_count", "map_count"}]}
    show:    {"schema": 1, "result": {... "parameters", "findings", "maps"}}
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workstation.core.errors import WorkstationError
from workstation.store.default import STORE_URL_ENV

if TYPE_CHECKING:
    from workstation.security.keystore import KeyStore
    from workstation.store import ResultStore

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SCHEMA = 1


@dataclass(frozen=True)
class _Command:
    """One top-level command (what ``cli._command_modules`` expects of a module)."""

    add_parser: Callable[[argparse._SubParsersAction], None]
    run: Callable[[argparse.Namespace], int]


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help=f"SQLAlchemy URL of the store (default: ${STORE_URL_ENV} or <home>/store/results.db)",
    )


def _add_audit(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="verify and export the tamper-evident audit trail")
    sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    verify = sub.add_parser("verify", help="check the hash chain and signed checkpoints")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    _db_option(verify)
    export = sub.add_parser("export", help="print the events since a date")
    export.add_argument(
        "--since", metavar="DATE", required=True, help="YYYY-MM-DD or an ISO time (UTC)"
    )
    form = export.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON document")
    form.add_argument("--jsonl", action="store_true", help="one JSON event per line")
    _db_option(export)


def _add_results(commands: argparse._SubParsersAction) -> None:
    results = commands.add_parser("results", help="list and show saved (encrypted) results")
    sub = results.add_subparsers(dest="results_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="the saved results, newest first")
    listing.add_argument("--study", metavar="PSEUDONYM", help="only this study's results")
    listing.add_argument("--limit", metavar="N", type=int, help="at most N results")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    _db_option(listing)
    show = sub.add_parser("show", help="one result, decrypted")
    show.add_argument("id", metavar="ID", help="the result id (from results list)")
    show.add_argument("--json", action="store_true", help="print as JSON")
    _db_option(show)


def _prompt() -> str:
    from workstation.security.errors import KeyStoreError
    from workstation.security.keystore import PASSPHRASE_ENV

    if not sys.stdin.isatty():
        raise KeyStoreError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    return getpass.getpass("Key store passphrase: ")


def _open(db: str | None) -> tuple[ResultStore, KeyStore]:
    from workstation.store.default import open_default

    return open_default(actor=f"cli:{getpass.getuser()}", url=db, prompt=_prompt)


def _dump(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _run_audit(args: argparse.Namespace) -> int:
    try:
        store, keys = _open(args.db)
        with store:
            if args.audit_command == "verify":
                return _verify(store, keys, as_json=args.json)
            form = "json" if args.json else "jsonl" if args.jsonl else "table"
            return _export(store, args.since, form=form)
    except WorkstationError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE


def _verify(store: ResultStore, keys: KeyStore, *, as_json: bool) -> int:
    report = store.audit.verify(trusted=[keys.signing_key().public_key])
    store.audit.record(
        actor=store.actor,
        action="audit.verify",
        object_type="audit",
        object_id=str(report.last_seq),
        details={"ok": report.ok, "problems": len(report.problems)},
    )
    if as_json:
        _dump({"schema": SCHEMA, **report.to_json()})
    else:
        checked = "signatures checked" if report.signatures_checked else "signatures NOT checked"
        sys.stdout.write(
            f"{report.events} events, {report.checkpoints} signed checkpoints ({checked})\n"
        )
        for problem in report.problems:
            sys.stdout.write(f"event {problem.seq}: {problem.kind}: {problem.message}\n")
    first = report.first_problem
    if first is None:
        if not as_json:
            sys.stdout.write("audit trail verified\n")
        return EXIT_OK
    sys.stderr.write(
        f"error: the audit trail was tampered with; first bad event: {first.seq} "
        f"({first.kind}: {first.message}); {len(report.problems)} problem(s) in all\n"
    )
    return EXIT_FAILURE


def _export(store: ResultStore, since_text: str, *, form: str) -> int:
    from workstation.store import format_time, parse_since

    try:
        since = parse_since(since_text)
    except ValueError as error:
        sys.stderr.write(f"error: --since: {error}\n")
        return EXIT_USAGE
    events = store.audit.export(since)
    count = 0
    if form == "json":
        listed = list(events)
        count = len(listed)
        _dump({"schema": SCHEMA, "since": format_time(since), "events": listed})
    else:
        for event in events:
            count += 1
            if form == "jsonl":
                sys.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
            else:
                study = event["study"] or "-"
                sys.stdout.write(
                    f"{event['seq']:>7} {event['time']} {event['actor']:<16} "
                    f"{event['action']:<16} {event['object_type']}:{event['object_id']} "
                    f"study={study}\n"
                )
    store.audit.record(
        actor=store.actor,
        action="audit.export",
        object_type="audit",
        object_id=format_time(since),
        details={"events": count},
    )
    return EXIT_OK


def _run_results(args: argparse.Namespace) -> int:
    try:
        store, _keys = _open(args.db)
        with store:
            if args.results_command == "list":
                summaries = store.list_results(study=args.study, limit=args.limit)
                if args.json:
                    _dump({"schema": SCHEMA, "results": [s.to_json() for s in summaries]})
                    return EXIT_OK
                for s in summaries:
                    sys.stdout.write(
                        f"{s.id}  {s.created}  {s.study}  {s.model_name} {s.model_version}  "
                        f"{s.finding_count} finding(s), {s.map_count} map(s)\n"
                    )
                if not summaries:
                    sys.stdout.write("no results\n")
                return EXIT_OK
            result = store.get_result(args.id)
    except WorkstationError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE
    if args.json:
        _dump({"schema": SCHEMA, "result": result.to_json()})
        return EXIT_OK
    lines = [
        f"result     {result.id}",
        f"study      {result.study}",
        f"model      {result.model_name} {result.model_version}",
        f"input      {result.input_hash}",
        f"created    {result.created} by {result.created_by}",
        f"parameters {json.dumps(dict(result.parameters), sort_keys=True)}",
    ]
    lines += [f"finding    {f.label}: {f.text}" for f in result.findings]
    lines += [f"map        {m.id} {m.method} ({m.size} bytes)" for m in result.maps]
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


audit_command = _Command(_add_audit, _run_audit)
"""``workstation audit ...``"""
results_command = _Command(_add_results, _run_results)
"""``workstation results ...``"""
