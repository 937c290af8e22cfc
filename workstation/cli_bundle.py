"""``workstation bundle sign | verify``: make and check signed bundles (models, plugins, releases).

``sign`` signs with each ``--key`` (a key store: ``keystore.json`` or its folder, as written by
``workstation keys init`` or ``packaging/make_trust_root.py``; passphrase from
``$WORKSTATION_PASSPHRASE`` or a prompt), or with this workstation's own key by default.

``verify`` checks everything, payload hashes included, against the installed trust root (or
``--trust-root FILE``) plus this workstation's local trust. Exit 0 when the bundle verifies,
1 when it is refused (the reason on stderr), 2 on a usage error. ``--json`` prints one object:

- verified: ``{"ok": true, "path", "kind", "name", "version", "created", "expires", "files"
  (count), "bytes", "trusted_by" ("trust root" | "local key" | "allow-list"), "signers":
  [{"key_id", "role", "source"}], "requirements", "warnings": [...], "trust_root_version"}``
- refused: ``{"ok": false, "path", "error" (the reason), "error_type" ("BundleError" |
  "TrustError" | "SignatureError" | ...)}``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from workstation.core.errors import WorkstationError

EXIT_OK, EXIT_FAILURE = 0, 1
_KINDS = ("model", "plugin", "release")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``bundle`` and its actions to the ``workstation`` command's subparsers."""
    bundle = commands.add_parser(
        "bundle",
        help="sign or verify a signed bundle (model, plugin, release)",
        description="Make and check signed bundles: one zip format for models, plugins and "
        "releases, verified against the trust root before anything is extracted.",
    )
    actions = bundle.add_subparsers(dest="bundle_command", metavar="ACTION", required=True)

    sign = actions.add_parser(
        "sign",
        help="bundle a folder and sign it",
        description="Bundle every file under DIR (sorted; symbolic links and special files "
        "are refused) and sign the manifest.",
    )
    sign.add_argument("dir", metavar="DIR", help="the folder to bundle")
    sign.add_argument("--kind", required=True, choices=_KINDS, help="what the bundle holds")
    sign.add_argument("--out", metavar="FILE", required=True, help="the bundle to write")
    sign.add_argument(
        "--key",
        metavar="KEYFILE",
        action="append",
        help="a key store (keystore.json or its folder) to sign with; repeat for each signer "
        "(a release needs 2); default: this workstation's own key",
    )
    sign.add_argument("--name", metavar="N", help="bundle name (default: DIR's name)")
    sign.add_argument(
        "--version", metavar="V", default="0.1.0", help="semantic version (default 0.1.0)"
    )
    sign.add_argument(
        "--expires", metavar="DAYS", type=_days, default=365, help="valid for DAYS (default 365)"
    )

    verify = actions.add_parser(
        "verify",
        help="verify a bundle: signatures, trust, expiry, version, every file's hash",
        description="Verify FILE completely without extracting it. Exit 0: verified; 1: "
        "refused, with the reason on stderr.",
    )
    verify.add_argument("file", metavar="FILE", help="the bundle")
    verify.add_argument("--kind", choices=_KINDS, help="refuse a bundle of another kind")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument(
        "--installed", metavar="V", help="the installed version: refuse an older bundle"
    )
    verify.add_argument(
        "--allow-downgrade", action="store_true", help="accept a version older than --installed"
    )
    verify.add_argument(
        "--allow-expired", action="store_true", help="accept a bundle past its expiry date"
    )
    verify.add_argument(
        "--trust-root",
        metavar="FILE",
        help="verify against this trust root instead of the installed one",
    )


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of days, not {text!r}")
    return days


def run(args: argparse.Namespace) -> int:
    """Run ``workstation bundle ACTION``; returns the exit code."""
    if args.bundle_command == "sign":
        try:
            return _sign(args)
        except WorkstationError as error:
            sys.stderr.write(f"error: {error}\n")
            return EXIT_FAILURE
    return _verify(args)


def _prompt_for(path: Path) -> Any:
    if not sys.stdin.isatty():
        return None
    import getpass

    return lambda: getpass.getpass(f"passphrase for the key store {path}: ")


def _signing_keys(key_files: list[str] | None) -> list[Any]:
    from workstation.security.keystore import KeyStore

    if not key_files:
        from workstation.config import paths

        folder = paths().keys
        return [KeyStore.open(folder, prompt=_prompt_for(folder)).signing_key()]
    keys = []
    for name in key_files:
        path = Path(name)
        folder = path.parent if path.is_file() else path
        keys.append(KeyStore.open(folder, prompt=_prompt_for(folder)).signing_key())
    return keys


def _sign(args: argparse.Namespace) -> int:
    from workstation.security.bundle import write_bundle

    source = Path(args.dir)
    keys = _signing_keys(args.key)
    manifest = write_bundle(
        source,
        args.out,
        kind=args.kind,
        name=args.name or source.resolve().name,
        version=args.version,
        signing_keys=keys,
        expires=dt.timedelta(days=args.expires),
    )
    if args.kind == "release" and len(keys) < 2:
        sys.stderr.write("warning: a release needs 2 signatures (--key twice) to verify\n")
    signers = ", ".join(k.key_id for k in keys)
    sys.stdout.write(
        f"wrote {args.out}: {manifest.kind} {manifest.name} {manifest.version}, "
        f"{len(manifest.files)} file(s), {manifest.total_size:,} bytes, expires "
        f"{manifest.expires:%Y-%m-%d}; signed by {signers}\n"
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from workstation.security.bundle import open_bundle
    from workstation.security.trust import LocalTrust, TrustRoots, utcnow

    now = utcnow()
    local = LocalTrust()
    try:
        local = LocalTrust.load()
        if args.trust_root:
            trust = TrustRoots.load(args.trust_root, now=now).with_local(local)
        else:
            trust = TrustRoots.load_default(now=now, local=local)
        with open_bundle(
            args.file,
            trust=trust,
            kind=args.kind,
            now=now,
            installed_version=args.installed,
            allow_downgrade=args.allow_downgrade,
            allow_expired=args.allow_expired,
        ) as bundle:
            bundle.verify_payload(progress=_progress())
            result = {"ok": True, **bundle.to_json(), "trust_root_version": trust.version}
    except WorkstationError as error:
        sys.stderr.write(f"error: {args.file} refused: {error}\n")
        for note in local.notes:
            sys.stderr.write(f"note: {note}\n")
        if args.json:
            failure = {
                "ok": False,
                "path": args.file,
                "error": str(error),
                "error_type": type(error).__name__,
            }
            json.dump(failure, sys.stdout, indent=2)
            sys.stdout.write("\n")
        return EXIT_FAILURE
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_describe(result))
    for warning in result["warnings"]:
        sys.stderr.write(f"warning: {warning}\n")
    return EXIT_OK


def _describe(result: dict[str, Any]) -> str:
    trusted = result["trusted_by"]
    if trusted != "trust root":
        trusted += " (trusted on this workstation only, not by a publisher's signature)"
    signers = ", ".join(f"{s['key_id']} ({s['source']})" for s in result["signers"])
    return (
        f"verified: {result['kind']} {result['name']} {result['version']}\n"
        f"  files:      {result['files']} ({result['bytes']:,} bytes), every hash checked\n"
        f"  trusted by: {trusted}\n"
        f"  signed by:  {signers}\n"
        f"  created:    {result['created']}   expires: {result['expires']}\n"
    )


def _progress() -> Any:
    from workstation.cli_format import ProgressBar

    return ProgressBar()
