"""``workstation models``: the installed model versions and their lifecycle.

::

    workstation models list [--json]
    workstation models install BUNDLE [--activate] [--allow-downgrade]
    workstation models activate NAME VERSION [--reason TEXT]
    workstation models promote NAME VERSION --to shadow|canary|active [--canary-share F] [--force]
    workstation models rollback NAME [--reason TEXT]
    workstation models pull [--validation DIR] [--json]

``pull`` fetches the registry's signed model metadata, installs the verified new versions meant
for this site and moves each assigned version one stage on (see :mod:`workstation.models.update`);
gates run on the validation set the candidate's bundle carries, else on ``--validation`` (a
saved set); with neither, nothing enters shadow.

Versions live in ``<home>/models`` (see :mod:`workstation.models.lifecycle`); bundles are
verified against the trust roots before anything is installed. Every change is recorded in the
audit trail, so changes need the key store unlocked without a prompt
(``$WORKSTATION_PASSPHRASE`` or a keyring key store); ``list`` does not. Exit codes: 0 done,
1 refused or failed, 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``models`` command to the top-level subparsers."""
    models = commands.add_parser(
        "models",
        help="list, install, promote and roll back model versions",
        description="Model versions: installed → shadow → canary → active, earlier ones kept.",
    )
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    listing = sub.add_parser("list", help="the installed versions and their stages")
    listing.add_argument("--json", action="store_true", help="print JSON (schema 1)")
    install = sub.add_parser("install", help="verify a model bundle and install it")
    install.add_argument("bundle", metavar="BUNDLE", help="a signed .mwb model bundle")
    install.add_argument(
        "--activate", action="store_true", help="make it active (only with no active version)"
    )
    install.add_argument(
        "--allow-downgrade", action="store_true", help="install a version not newer than active"
    )
    activate = sub.add_parser("activate", help="make a version active now (recorded as forced)")
    activate.add_argument("name", metavar="NAME")
    activate.add_argument("version", metavar="VERSION")
    activate.add_argument("--reason", default="", help="why (kept in the history and audit)")
    promote = sub.add_parser("promote", help="move a version one stage on")
    promote.add_argument("name", metavar="NAME")
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--to", required=True, choices=("shadow", "canary", "active"))
    promote.add_argument(
        "--canary-share", type=float, default=None, help="share of studies (default 0.1)"
    )
    promote.add_argument("--force", action="store_true", help="skip stages (recorded)")
    promote.add_argument("--reason", default="", help="why (kept in the history and audit)")
    rollback = sub.add_parser("rollback", help="roll the canary, else the active version, back")
    rollback.add_argument("name", metavar="NAME")
    rollback.add_argument("--reason", default="rolled back by hand", help="why")
    pulling = sub.add_parser("pull", help="fetch signed updates from the registry and roll out")
    pulling.add_argument(
        "--validation", metavar="DIR", default=None, help="validation set for the gates"
    )
    pulling.add_argument("--json", action="store_true", help="print JSON (schema 1)")


def run(args: argparse.Namespace) -> int:
    """Run ``workstation models``; returns the exit code."""
    from workstation.config import paths
    from workstation.models.lifecycle import ModelLifecycle

    action = getattr(args, "models_command", None)
    if action is None:
        sys.stderr.write("workstation models: error: choose list, install, activate, ...\n")
        return EXIT_USAGE
    folder = paths().models
    if action == "list":
        return _list(ModelLifecycle(folder), as_json=args.json)
    if action == "pull":
        return _pull(folder, validation=args.validation, as_json=args.json)
    store = _open_store()
    if store is None:
        return EXIT_FAILURE
    try:
        lifecycle = ModelLifecycle(folder, audit=store)
        if action == "install":
            done = lifecycle.install(
                args.bundle, activate=args.activate, allow_downgrade=args.allow_downgrade
            )
        elif action == "activate":
            done = lifecycle.activate(args.name, args.version, reason=args.reason)
        elif action == "promote":
            done = lifecycle.promote(
                args.name,
                args.version,
                args.to,
                canary_share=args.canary_share,
                reason=args.reason,
                force=args.force,
            )
        else:
            done = lifecycle.rollback(args.name, reason=args.reason)
            active = lifecycle.in_stage(args.name, "active")
            took = (lifecycle.last_rollback_s or 0) * 1000
            now = f"; active: {active.version}" if active else ""
            sys.stdout.write(f"rolled back {done.name} {done.version} in {took:.1f} ms{now}\n")
            return EXIT_OK
    finally:
        store.close()
    sys.stdout.write(f"{done.name} {done.version}: {done.stage}\n")
    return EXIT_OK


def _open_store() -> Any:
    """The audited result store, or ``None`` after saying why (changes must be audited)."""
    from workstation.security.errors import KeyStoreError
    from workstation.workflow.analysis_store import open_default_store

    try:
        return open_default_store(actor=f"cli:{getpass.getuser()}")
    except KeyStoreError as error:
        sys.stderr.write(
            f"error: {error}\nmodel changes are recorded in the audit trail: unlock the key "
            "store without a prompt ($WORKSTATION_PASSPHRASE or a keyring key store)\n"
        )
        return None


def _list(lifecycle: Any, *, as_json: bool) -> int:
    rows = lifecycle.list()
    if as_json:
        json.dump({"schema": 1, "models": rows}, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return EXIT_OK
    if not rows:
        sys.stdout.write(f"no model versions installed in {lifecycle.folder}\n")
        return EXIT_OK
    sys.stdout.write(f"{'NAME':<24} {'VERSION':<12} {'STAGE':<12} {'GATES':<7} INSTALLED\n")
    for row in rows:
        share = f" ({row['canary_share']:.0%})" if "canary_share" in row else ""
        gates = row["gates"] or "-"
        sys.stdout.write(
            f"{row['name']:<24} {row['version']:<12} {row['stage'] + share:<12} {gates:<7} "
            f"{row['installed']}\n"
        )
    return EXIT_OK


def _pull(folder: Any, *, validation: str | None, as_json: bool) -> int:
    """``workstation models pull``: one update round against the enrolled registry."""
    from workstation.cli_audit import _open
    from workstation.core.errors import WorkstationError
    from workstation.models.lifecycle import ModelLifecycle
    from workstation.models.update import (
        ModelRegistryClient,
        evaluation_gates,
        pull,
        registry_reporter,
    )
    from workstation.models.validation_set import ValidationSet
    from workstation.security.model_metadata import MetadataError, ModelMetadataStore
    from workstation.security.trust import TrustRoots
    from workstation.sync.state import load_state

    try:
        state = load_state()
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE
    if state is None:
        sys.stderr.write("error: not enrolled: run `workstation registry enrol URL ...` first\n")
        return EXIT_FAILURE
    try:
        store, keys = _open(None)
    except WorkstationError as error:
        sys.stderr.write(f"error: {error}\nmodel changes are recorded in the audit trail\n")
        return EXIT_FAILURE
    client = ModelRegistryClient(
        state.url, signing_key=keys.signing_key(), workstation_id=state.workstation_id
    )
    with store, client:
        try:
            trust = TrustRoots.load_default()
            metadata = ModelMetadataStore(folder / "metadata", trust)
            lifecycle = ModelLifecycle(
                folder, trust=trust, audit=store, report=registry_reporter(client)
            )
            fallback = ValidationSet.load(validation) if validation is not None else None
            gates = evaluation_gates(lifecycle, fallback, trust=trust)
            report = pull(client, metadata, lifecycle, site_id=state.site_id, gates=gates)
        except (WorkstationError, MetadataError, ValueError) as error:
            sys.stderr.write(f"error: {error}\n")
            return EXIT_FAILURE
    if as_json:
        json.dump(report.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        lines = [f"metadata: {'updated' if report.updated_metadata else 'unchanged'}"]
        lines += [f"installed {k}" for k in report.installed]
        lines += [f"promoted {k}" for k in report.promoted]
        lines += [f"blocked {k} (gates failed)" for k in report.blocked]
        lines += [f"error: {e}" for e in report.errors]
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK if report.ok else EXIT_FAILURE
