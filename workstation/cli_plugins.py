"""``workstation plugins ...``: write, build, install, list, run and remove plugins.

``new NAME`` writes a working plugin to start from; ``build DIR`` makes its signed bundle
(signed with this workstation's own key unless ``--key`` names key stores); ``install BUNDLE``
verifies and installs it (``--system`` for every user of this Python environment); ``list``
shows every plugin with its state and who vouches for it; ``run PLUGIN/NAME`` runs a pipeline;
``dev on|off|add DIR|remove DIR`` manages developer mode (unsigned source folders, marked);
``trust KEYFILE`` adds a publisher's key to the administrators' allow-list for plugins.

Installs and removals are recorded in the audit trail (the key store must open without a
prompt: ``$WORKSTATION_PASSPHRASE`` or a keyring store); ``--system`` installs, made by IT's
installer before any user exists, keep an install receipt instead.
``list --json`` prints ``{"api_version", "developer_mode", "plugins": [PluginRecord.to_json()]}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
import sys
from pathlib import Path
from typing import Any

from workstation.core.errors import WorkstationError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``plugins`` and its actions to the ``workstation`` command's subparsers."""
    plugins = commands.add_parser(
        "plugins", help="write, build, install, list, run and remove plugins"
    )
    actions = plugins.add_subparsers(dest="plugins_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every plugin, its state and who vouches for it")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")

    install = actions.add_parser("install", help="verify a signed plugin bundle and install it")
    install.add_argument("bundle", metavar="BUNDLE", help="a plugin bundle (.mwp)")
    install.add_argument("--system", action="store_true", help="for every user (IT)")
    install.add_argument("--allow-downgrade", action="store_true", help="install an older one")
    install.add_argument("--json", action="store_true", help="print the result as JSON")

    remove = actions.add_parser("remove", help="remove an installed plugin")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--system", action="store_true", help="from the system plugins")

    new = actions.add_parser("new", help="write a new plugin to start from")
    new.add_argument("name", metavar="NAME", help="e.g. my-plugin")
    new.add_argument("--dir", default=".", help="where to create it (default: here)")

    build = actions.add_parser("build", help="build a plugin folder into a signed bundle")
    build.add_argument("dir", metavar="DIR", help="the plugin's folder (with pyproject.toml)")
    build.add_argument("--out", metavar="FILE", help="default: DIR/dist/NAME-VERSION.mwp")
    build.add_argument(
        "--key", action="append", metavar="KEYSTORE", help="sign with this key store (repeat)"
    )
    build.add_argument("--expires", type=int, default=365, metavar="DAYS", help="default 365")

    run = actions.add_parser("run", help="run a plugin's pipeline")
    run.add_argument("pipeline", metavar="PLUGIN/NAME", help="see 'plugins list'")
    run.add_argument("--input", action="append", required=True, metavar="PATH")
    run.add_argument("--out", required=True, metavar="DIR")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")

    dev = actions.add_parser("dev", help="developer mode: load unsigned plugin folders")
    dev.add_argument("dev_action", choices=("on", "off", "add", "remove", "status"))
    dev.add_argument("folder", nargs="?", metavar="DIR")

    trust = actions.add_parser("trust", help="allow a plugin publisher's key (administrators)")
    trust.add_argument("key", metavar="KEYFILE", help="public key JSON or a key store")
    trust.add_argument("--note", default="", help="who this publisher is")
    trust.add_argument("--expires", type=int, default=365, metavar="DAYS")


def run(args: argparse.Namespace) -> int:
    """Run ``workstation plugins ACTION``; returns the exit code."""
    action = args.plugins_command
    try:
        handler = {
            "list": _list,
            "install": _install,
            "remove": _remove,
            "new": _new,
            "build": _build,
            "run": _run_pipeline,
            "dev": _dev,
            "trust": _trust,
        }[action]
        return handler(args)
    except WorkstationError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _list(args: argparse.Namespace) -> int:
    from workstation.plugins import API_VERSION, PluginRegistry

    registry = PluginRegistry.discover()
    if args.json:
        doc = {
            "api_version": API_VERSION,
            "developer_mode": registry.developer_mode,
            "plugins": [r.to_json() for r in registry],
        }
        _say(json.dumps(doc, indent=2))
        return EXIT_OK
    _say(
        f"plugin API {API_VERSION}" + ("; DEVELOPER MODE is on" if registry.developer_mode else "")
    )
    if not registry.records:
        _say("no plugins (workstation plugins install BUNDLE, or plugins new NAME)")
    for record in registry:
        kinds = ", ".join(f"{c.kind[:-1]} {c.key}" for c in record.contributions())
        _say(
            f"{record.name} {record.version} [{record.state}] {record.source}; {record.trusted_by}"
        )
        if kinds:
            _say(f"    {kinds}")
        if record.error:
            _say(f"    {record.error}")
    return EXIT_OK


def _open_audit(system: bool) -> Any:
    """The audit trail plugin changes go to, opened once per command (``None`` for
    ``--system``, whose installs keep a receipt); without an unlocked store, refused."""
    if system:
        return None
    from workstation.security.errors import KeyStoreError
    from workstation.workflow.analysis_store import open_default_store

    try:
        return open_default_store(actor=f"cli:{getpass.getuser()}")
    except KeyStoreError as error:
        raise WorkstationError(
            f"{error}\nplugin changes are recorded in the audit trail: unlock the key store "
            "without a prompt ($WORKSTATION_PASSPHRASE or a keyring key store)"
        ) from None


def _record(store: Any, action: str, name: str, details: dict[str, Any]) -> None:
    if store is not None:
        store.audit.record(
            actor=store.actor, action=action, object_type="plugin", object_id=name, details=details
        )


def _install(args: argparse.Namespace) -> int:
    from workstation.plugins import installed
    from workstation.security.trust import TrustRoots

    root = installed.system_root() if args.system else installed.user_root()
    actor = f"{'system' if args.system else 'cli'}:{getpass.getuser()}"
    store = _open_audit(args.system)
    try:
        try:
            plugin = installed.install_bundle(
                args.bundle,
                root=root,
                trust=TrustRoots.load_default(),
                actor=actor,
                allow_downgrade=args.allow_downgrade,
            )
        except WorkstationError as error:
            _record(store, "plugin.refuse", Path(args.bundle).name, {"reason": str(error)[:500]})
            raise
        meta = plugin.metadata
        signers = ",".join(s.key_id for s in plugin.signers)
        details = {"version": meta.version, "trusted_by": plugin.trusted_by, "signers": signers}
        _record(store, "plugin.install", meta.name, details)
    finally:
        if store is not None:
            store.close()
    if args.json:
        done = {"ok": True, "name": meta.name, "version": meta.version}
        _say(json.dumps(done | {"trusted_by": plugin.trusted_by, "folder": str(plugin.folder)}))
    else:
        points = ", ".join(f"{k[:-1]} {n}" for k, n, _ in meta.contributions())
        _say(f"installed {meta.name} {meta.version} ({plugin.trusted_by}): {points}")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    from workstation.plugins import installed

    root = installed.system_root() if args.system else installed.user_root()
    store = _open_audit(args.system)
    try:
        receipt = installed.remove_plugin(args.name, root=root)
        _record(store, "plugin.remove", args.name, {"version": str(receipt.get("version", "?"))})
    finally:
        if store is not None:
            store.close()
    _say(f"removed {args.name} {receipt.get('version', '')}".rstrip())
    return EXIT_OK


def _new(args: argparse.Namespace) -> int:
    from workstation.plugins.template import new_plugin

    folder = new_plugin(args.name, args.dir)
    _say(
        f"wrote {folder}\nnext: workstation plugins dev add {folder} && workstation plugins dev on"
        f"\n  or: workstation plugins build {folder} && workstation plugins install "
        f"{folder}/dist/*.mwp"
    )
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    from workstation.cli_bundle import _signing_keys
    from workstation.plugins.build import BUNDLE_SUFFIX, build_plugin_bundle, build_plugin_wheel
    from workstation.plugins.metadata import from_pyproject

    src = Path(args.dir)
    meta = from_pyproject(src)
    out = (
        Path(args.out) if args.out else src / "dist" / f"{meta.name}-{meta.version}{BUNDLE_SUFFIX}"
    )
    keys = _signing_keys(args.key)
    wheel = build_plugin_wheel(src, out.parent)
    manifest = build_plugin_bundle(
        src, out, signing_keys=keys, expires=dt.timedelta(days=args.expires), wheel=wheel
    )
    _say(
        f"wrote {out}: plugin {manifest.name} {manifest.version}, {len(manifest.files)} files, "
        f"{out.stat().st_size:,} bytes; signed by {', '.join(k.key_id for k in keys)}"
    )
    return EXIT_OK


def _run_pipeline(args: argparse.Namespace) -> int:
    from workstation.cli_format import ProgressBar
    from workstation.plugins import PluginRegistry

    parameters = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.stderr.write(f"error: --param {item!r} is not KEY=VALUE\n")
            return EXIT_USAGE
        parameters[key] = value
    registry = PluginRegistry.discover()
    pipeline = registry.load(registry.find("pipelines", args.pipeline))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        summary = pipeline.run(
            [Path(p) for p in args.input], out, parameters, progress=ProgressBar(), cancel=None
        )
    except Exception as error:  # the plugin boundary: report its error, exit 1
        logging.getLogger(__name__).exception("plugin pipeline %s failed", args.pipeline)
        sys.stderr.write(f"error: {args.pipeline} failed: {type(error).__name__}: {error}\n")
        return EXIT_FAILURE
    if args.json:
        _say(json.dumps(summary, indent=2, default=str))
    else:
        _say(f"{args.pipeline}: wrote {', '.join(sorted(p.name for p in out.iterdir()))} in {out}")
    return EXIT_OK


def _dev(args: argparse.Namespace) -> int:
    from workstation.plugins.developer import DeveloperMode

    mode = DeveloperMode.load()
    action = args.dev_action
    if action in ("add", "remove") and not args.folder:
        sys.stderr.write(f"error: plugins dev {action} needs a folder\n")
        return EXIT_USAGE
    if action == "on":
        mode.enabled = True
    elif action == "off":
        mode.enabled = False
    elif action == "add":
        name = mode.add(args.folder)
        _say(f"added {name} from {Path(args.folder).resolve()}")
    elif action == "remove":
        mode.remove(args.folder)
    if action != "status":
        mode.save()
    state = "ON: unsigned plugins from these folders load" if mode.enabled else "off"
    _say(f"developer mode {state}")
    for folder in mode.folders:
        _say(f"    {folder}")
    return EXIT_OK


def _trust(args: argparse.Namespace) -> int:
    from workstation.security.keystore import FILE_NAME
    from workstation.security.sign import HybridPublicKey
    from workstation.security.trust import add_allowed_key, utcnow

    path = Path(args.key)
    store = path / FILE_NAME if path.is_dir() else path
    doc = json.loads(store.read_text(encoding="utf-8"))
    public = doc["signing"]["public"] if "signing" in doc else doc
    key = HybridPublicKey.from_json(public)
    expires = utcnow() + dt.timedelta(days=args.expires)
    store = _open_audit(False)
    try:
        add_allowed_key(key, roles=["plugin"], expires=expires, note=args.note)
        _record(store, "plugin.trust_key", key.key_id, {"note": args.note[:200], "role": "plugin"})
    finally:
        store.close()
    _say(f"plugins signed by {key.key_id} are now allowed until {expires:%Y-%m-%d}")
    return EXIT_OK
