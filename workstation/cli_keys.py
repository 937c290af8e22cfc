"""``workstation keys``: create, show and rotate the workstation's keys.

::

    workstation keys init [--force] [--kek {auto,keyring,passphrase}]
    workstation keys show [--json]
    workstation keys rotate
    workstation keys retire VERSION [--yes]

The store lives in ``paths().keys`` (``$WORKSTATION_HOME/keys``). A passphrase comes from
``$WORKSTATION_PASSPHRASE`` or, on a terminal, a prompt (asked twice on ``init``); a store
unlocked by the OS keyring needs none. ``rotate`` adds a data key version (old ciphertexts stay
readable); the encrypted store re-wraps its ciphertexts under it, and ``retire VERSION`` then
destroys the old version, refusing while a registered ciphertext source still holds data under
it. Exit codes: 0 ok, 1 failure (message on stderr), 2 usage. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workstation.core.errors import WorkstationError

if TYPE_CHECKING:
    from workstation.security.keystore import CiphertextSource, KeyStore
    from workstation.store import ResultStore

EXIT_OK, EXIT_FAILURE = 0, 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``keys`` command and its subcommands to the top-level subparsers."""
    keys = commands.add_parser("keys", help="create, show and rotate the workstation's keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)

    init = sub.add_parser("init", help="create the signing, sealing and data keys")
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing store: its keys, and all data encrypted under them, are lost",
    )
    init.add_argument(
        "--kek",
        choices=("auto", "keyring", "passphrase"),
        default="auto",
        help="what protects the keys: the OS keyring or a passphrase (auto: the keyring if "
        "one is available and WORKSTATION_PASSPHRASE is unset)",
    )

    show = sub.add_parser("show", help="print key fingerprints and data key versions")
    show.add_argument("--json", action="store_true", help="print as JSON")

    sub.add_parser("rotate", help="add a new data key version (old ciphertexts stay readable)")

    retire = sub.add_parser(
        "retire", help="destroy an old data key version once its ciphertexts are re-wrapped"
    )
    retire.add_argument("version", metavar="VERSION", type=int, help="data key version")
    retire.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def run(args: argparse.Namespace) -> int:
    """Run ``workstation keys ...``; returns the exit code."""
    try:
        if args.keys_command == "init":
            return _init(force=args.force, kek=args.kek)
        if args.keys_command == "show":
            return _show(as_json=args.json)
        if args.keys_command == "rotate":
            return _rotate()
        if args.keys_command == "retire":
            return _retire(args.version, yes=args.yes)
    except WorkstationError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE
    raise ValueError(f"unknown keys subcommand {args.keys_command!r}")


def _folder() -> Path:
    from workstation.security.keystore import default_folder

    return default_folder()


def _ask(label: str) -> str:
    from workstation.security.errors import KeyStoreError
    from workstation.security.keystore import PASSPHRASE_ENV

    if not sys.stdin.isatty():
        raise KeyStoreError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    try:
        return getpass.getpass(label)
    except EOFError:
        raise KeyStoreError("no passphrase given") from None


def _prompt_new() -> str:
    from workstation.security.errors import KeyStoreError

    first = _ask("New key store passphrase: ")
    if _ask("Repeat the passphrase: ") != first:
        raise KeyStoreError("the passphrases do not match")
    return first


def _prompt_existing() -> str:
    return _ask("Key store passphrase: ")


def _open() -> KeyStore:
    from workstation.security.keystore import KeyStore

    return KeyStore.open(_folder(), prompt=_prompt_existing)


def _init(*, force: bool, kek: str) -> int:
    from workstation.security.keystore import KeyStore, exists

    folder = _folder()
    replaced = exists(folder)
    use_keyring = {"auto": None, "keyring": True, "passphrase": False}[kek]
    store = KeyStore.create(folder, use_keyring=use_keyring, force=force, prompt=_prompt_new)
    if replaced:
        sys.stderr.write(
            "warning: the previous key store was replaced; its keys are destroyed and data "
            "encrypted under them can no longer be decrypted\n"
        )
    sys.stdout.write(f"created the key store at {store.path}\n\n")
    sys.stdout.write(_format(store.public_info()))
    return EXIT_OK


def _show(*, as_json: bool) -> int:
    info = _open().public_info()
    if as_json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_format(info))
    return EXIT_OK


def _rotate() -> int:
    store = _open()
    version = store.rotate_data_key()
    versions = ", ".join(str(v) for v in sorted(store.data_keys().keys))
    rewrapped = 0
    for results in _result_stores(store):
        with results:
            rewrapped += results.rewrap()
    sys.stdout.write(
        f"data key version {version} is now current (kept: {versions}); {rewrapped} stored "
        "ciphertexts re-wrapped under it; retire the old versions once nothing uses them\n"
    )
    return EXIT_OK


def _result_stores(keys: KeyStore) -> list[ResultStore]:
    """The encrypted result store, when one exists (``$WORKSTATION_STORE_URL`` or the default
    SQLite file under the home): the data-key ciphertexts that rotate and retire must handle."""
    from workstation.config import paths
    from workstation.store import ResultStore

    url = os.environ.get("WORKSTATION_STORE_URL")
    if url is None and not (paths().home / "store" / "results.db").exists():
        return []
    return [ResultStore.open(url, keys=keys.data_keys, actor="keys")]


def _ciphertext_sources(keys: KeyStore) -> tuple[CiphertextSource, ...]:
    """The stores holding data-key ciphertexts: ``retire`` refuses while any of them still
    holds ciphertexts under the version (re-wrap them with ``keys rotate`` first)."""
    return tuple(_result_stores(keys))


def _retire(version: int, *, yes: bool) -> int:
    store = _open()
    if not yes:
        if not sys.stdin.isatty():
            sys.stderr.write("error: retiring a data key is permanent; pass --yes to confirm\n")
            return EXIT_FAILURE
        answer = input(
            f"Destroy data key version {version}? Data still under it becomes unreadable. [y/N] "
        )
        if answer.strip().lower() not in {"y", "yes"}:
            sys.stderr.write("not retired\n")
            return EXIT_FAILURE
    sources = _ciphertext_sources(store)
    try:
        store.destroy_data_key(version, sources=sources)
    finally:
        for source in sources:
            source.close()  # type: ignore[attr-defined]
    sys.stdout.write(f"data key version {version} destroyed\n")
    return EXIT_OK


def _format(info: dict[str, Any]) -> str:
    kek = info["kek"]
    if kek["source"] == "passphrase":
        kib = kek["memory_kib"]
        memory = f"{kib // 1024} MiB" if kib % 1024 == 0 else f"{kib} KiB"
        unlock = (
            f"passphrase (Argon2id, {memory}, {kek['iterations']} passes, {kek['lanes']} lanes)"
        )
    else:
        unlock = f"OS keyring (service {kek['service']})"
    data = info["data_keys"]
    lines = [
        ("key store", info["path"]),
        ("created", info["created"]),
        ("unlocked by", unlock),
        ("signing key", f"{info['signing_key']['key_id']} ({info['signing_key']['alg']})"),
        ("recipient key", info["recipient_key"]["key_id"]),
        (
            "data keys",
            f"versions {', '.join(str(v) for v in data['versions'])} (current {data['current']})",
        ),
    ]
    return "".join(f"{label:<14} {value}\n" for label, value in lines)
