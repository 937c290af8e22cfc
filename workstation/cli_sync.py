"""``workstation registry enrol`` and ``workstation sync``: send results to the central registry.

::

    workstation registry enrol URL --token-env VAR --name NAME [--force] [--json]
    workstation sync [--once] [--json] [--limit N] [--interval S] [--db URL]

``enrol`` registers this workstation (its public signing and recipient keys) with a one-time
enrolment token read from the environment variable VAR (never from the command line, which
other users can see), then writes ``<home>/sync/registry.json`` (mode 0600).

``sync`` sends the results saved for syncing (de-identified, sealed end-to-end for the site's
recipients; each exactly once). ``--once`` sends what is due now and exits; without it the
command keeps syncing every ``--interval`` seconds until interrupted. The key store is unlocked
with ``$WORKSTATION_PASSPHRASE`` or a prompt. Exit codes: 0 ok, 1 the registry is unreachable
or refused sign-in (the results stay queued and are retried later) or enrolment failed,
2 usage. ``--json`` (schema 1; keys may be added)::

    enrol: {"schema": 1, "url", "workstation_id", "site_id", "site_name"}
    sync:  {"schema": 1, "sent", "duplicates", "retried", "failed", "queued", "pending",
            "unreachable", "error"}
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workstation.core.errors import WorkstationError

if TYPE_CHECKING:
    from workstation.sync.engine import SyncReport

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SCHEMA = 1


@dataclass(frozen=True)
class _Command:
    """One top-level command (what ``cli._command_modules`` expects of a module)."""

    add_parser: Callable[[argparse._SubParsersAction], None]
    run: Callable[[argparse.Namespace], int]


def _add_registry(commands: argparse._SubParsersAction) -> None:
    registry = commands.add_parser("registry", help="enrol this workstation with a registry")
    sub = registry.add_subparsers(dest="registry_command", metavar="SUBCOMMAND", required=True)
    enrol = sub.add_parser("enrol", help="register this workstation with an enrolment token")
    enrol.add_argument("url", metavar="URL", help="the registry's base URL")
    enrol.add_argument(
        "--token-env",
        metavar="VAR",
        required=True,
        help="environment variable holding the one-time enrolment token",
    )
    enrol.add_argument("--name", metavar="NAME", help="this workstation's name (default: host)")
    enrol.add_argument("--force", action="store_true", help="replace an existing enrolment")
    enrol.add_argument("--json", action="store_true", help="print the enrolment as JSON")


def _add_sync(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser("sync", help="send queued results to the registry")
    sync.add_argument("--once", action="store_true", help="send what is due now, then exit")
    sync.add_argument("--json", action="store_true", help="print the counts as JSON")
    sync.add_argument("--limit", metavar="N", type=int, default=100, help="results per batch")
    sync.add_argument(
        "--interval", metavar="S", type=float, default=60.0, help="seconds between syncs"
    )
    sync.add_argument("--db", metavar="URL", help="SQLAlchemy URL of the store")


def _dump(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _run_registry(args: argparse.Namespace) -> int:
    from workstation.cli_audit import _open
    from workstation.store._time import format_time, utcnow
    from workstation.sync.client import RegistryClient, SyncError
    from workstation.sync.state import EnrolmentState, load_state, save_state

    token = os.environ.get(args.token_env, "").strip()
    if not token:
        sys.stderr.write(f"error: ${args.token_env} holds no enrolment token\n")
        return EXIT_USAGE
    try:
        existing = load_state()
    except ValueError as error:
        sys.stderr.write(f"warning: {error}\n")
        existing = None
    if existing is not None and not args.force:
        sys.stderr.write(
            f"error: already enrolled as workstation {existing.workstation_id} at "
            f"{existing.url}; --force replaces the enrolment\n"
        )
        return EXIT_FAILURE
    name = args.name or socket.gethostname()
    try:
        store, keys = _open(None)
        with store, RegistryClient(args.url) as client:
            enrolment = client.enrol(
                token, name, keys.signing_key().public_key, keys.recipient_key().public_key()
            )
            state = EnrolmentState(
                url=client.url,
                workstation_id=enrolment.workstation_id,
                site_id=enrolment.site_id,
                site_name=enrolment.site_name,
                enrolled=format_time(utcnow()),
            )
            path = save_state(state)
            store.audit.record(
                actor=store.actor,
                action="registry.enrol",
                object_type="workstation",
                object_id=enrolment.workstation_id,
                details={"site_id": enrolment.site_id, "url": client.url},
            )
    except (WorkstationError, SyncError) as error:
        sys.stderr.write(f"error: enrolment failed: {error}\n")
        return EXIT_FAILURE
    if args.json:
        _dump({"schema": SCHEMA, **{k: getattr(state, k) for k in _STATE_KEYS}})
    else:
        sys.stdout.write(
            f"enrolled as workstation {state.workstation_id} at site {state.site_name} "
            f"({state.site_id}); state in {path}\n"
        )
    return EXIT_OK


_STATE_KEYS = ("url", "workstation_id", "site_id", "site_name")


def _run_sync(args: argparse.Namespace) -> int:
    from workstation.cli_audit import _open
    from workstation.sync.client import RegistryClient
    from workstation.sync.engine import SyncReport, run_forever, sync_once
    from workstation.sync.state import load_state, spool_dir
    from workstation.sync.status import pending_count

    if args.limit < 1 or args.interval <= 0:
        sys.stderr.write("error: --limit and --interval must be positive\n")
        return EXIT_USAGE
    try:
        state = load_state()
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE
    if state is None:
        sys.stderr.write("error: not enrolled: run `workstation registry enrol URL ...` first\n")
        return EXIT_FAILURE
    try:
        store, keys = _open(args.db)
    except WorkstationError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE
    options: dict[str, Any] = {"keys": keys, "spool": spool_dir(), "limit": args.limit}
    client = RegistryClient(
        state.url, signing_key=keys.signing_key(), workstation_id=state.workstation_id
    )
    with store, client:
        if not args.once:
            stop = threading.Event()

            def show(report: SyncReport) -> None:
                if report.delivered or report.failed or report.error:
                    _print(report, pending_count(store), as_json=args.json)

            try:
                run_forever(
                    lambda: store,
                    client,
                    stop=stop,
                    site_id=state.site_id,
                    interval=args.interval,
                    on_report=show,
                    **options,
                )
            except KeyboardInterrupt:
                stop.set()
            return EXIT_OK
        total = SyncReport()
        while True:  # drain what is due now, batch by batch
            report = sync_once(store, client, site_id=state.site_id, **options)
            for key in ("sent", "duplicates", "retried", "failed"):
                setattr(total, key, getattr(total, key) + getattr(report, key))
            total.queued, total.unreachable, total.error = (
                report.queued,
                report.unreachable,
                report.error,
            )
            if report.error is not None or report.delivered + report.failed == 0:
                break
        pending = pending_count(store)
    _print(total, pending, as_json=args.json)
    return EXIT_FAILURE if total.error is not None else EXIT_OK


def _print(report: SyncReport, pending: int, *, as_json: bool) -> None:
    if as_json:
        keys = ("sent", "duplicates", "retried", "failed", "queued", "unreachable", "error")
        _dump({"schema": SCHEMA, **{k: getattr(report, k) for k in keys}, "pending": pending})
        return
    sys.stdout.write(
        f"sent {report.sent}, duplicates {report.duplicates}, failed {report.failed}, "
        f"queued {pending}\n"
    )
    if report.unreachable:
        sys.stderr.write(
            f"error: the registry is unreachable; {pending} result(s) stay queued and will be "
            "retried\n"
        )
    elif report.error is not None:
        sys.stderr.write(f"error: {report.error}; {pending} result(s) stay queued\n")


registry_command = _Command(_add_registry, _run_registry)
"""``workstation registry enrol ...``"""
sync_command = _Command(_add_sync, _run_sync)
"""``workstation sync ...``"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add both ``registry`` and ``sync`` (register the module once, or the two commands)."""
    _add_registry(commands)
    _add_sync(commands)


def run(args: argparse.Namespace) -> int:
    """Run ``registry`` or ``sync`` by ``args.command``."""
    return _run_registry(args) if args.command == "registry" else _run_sync(args)
