"""Create, update and sign the workstation's trust root (``resources/trust/root.json``).

Run from the repository root::

    python packaging/make_trust_root.py generate KEYDIR --name release --count 3
    python packaging/make_trust_root.py new --out root.json \\
        --role root=KEYDIR/root-1,KEYDIR/root-2,KEYDIR/root-3 --threshold root=2 \\
        --role release=... --threshold release=2 --role model=... --role plugin=... \\
        --role registry=... --sign KEYDIR/root-1 --sign KEYDIR/root-2
    python packaging/make_trust_root.py update resources/trust/root.json --out new.json \\
        [--add ROLE=KEY] [--remove KEY_ID] [--revoke KEY_ID] [--threshold ROLE=K] \\
        --sign OLD_ROOT_KEY ... --sign NEW_ROOT_KEY ...
    python packaging/make_trust_root.py bootstrap KEYDIR --out resources/trust/root.json

A KEY is a publisher's public key: a ``*.json`` file holding ``HybridPublicKey.to_json()``, or a
key store (``keystore.json`` or its folder; only its public half is read). ``--sign`` takes key
stores (passphrase from ``$WORKSTATION_PASSPHRASE`` or a prompt). ``update`` bumps the version;
the result must be signed by a threshold of the old root's root keys and of its own (TUF's
rotation rule), which the script checks before writing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from workstation.core.errors import WorkstationError  # noqa: E402
from workstation.security import keystore, trust  # noqa: E402
from workstation.security.sign import HybridPublicKey, HybridSigningKey  # noqa: E402

LAYOUT = {"root": (3, 2), "release": (3, 2), "model": (1, 1), "plugin": (1, 1), "registry": (1, 1)}


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _public(spec: str) -> HybridPublicKey:
    path = Path(spec)
    if path.is_dir() or path.name == keystore.FILE_NAME:
        store = path / keystore.FILE_NAME if path.is_dir() else path
        return HybridPublicKey.from_json(json.loads(store.read_text())["signing"]["public"])
    return HybridPublicKey.from_json(json.loads(path.read_text()))


def _signer(spec: str) -> HybridSigningKey:
    path = Path(spec)
    folder = path if path.is_dir() else path.parent

    def prompt() -> str:
        import getpass

        return getpass.getpass(f"passphrase for {folder}: ")

    return keystore.KeyStore.open(folder, prompt=prompt).signing_key()


def _pairs(values: list[str] | None, what: str) -> list[tuple[str, str]]:
    out = []
    for value in values or []:
        role, sep, rest = value.partition("=")
        if not sep or role not in trust.ROLES:
            raise SystemExit(f"{what} {value!r}: expected ROLE=..., ROLE one of {trust.ROLES}")
        out.append((role, rest))
    return out


def _write(path: Path, raw: bytes, previous: trust.TrustRoots | None) -> None:
    roots = trust.TrustRoots.from_bytes(raw, previous=previous)  # refuse to write a bad root
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    _say(f"wrote {path}: version {roots.version}, expires {trust.format_time(roots.expires)}")
    for name, role in roots.roles.items():
        ids = ", ".join(k.key_id for k in role.keys)
        _say(f"  {name:<8} {role.threshold} of {len(role.keys)}: {ids}")


def generate(folder: Path, name: str, count: int, passphrase: str | None) -> list[Path]:
    """``count`` new key stores ``folder/name-i`` (Argon2id-wrapped), each with public.json."""
    made = []
    for i in range(1, count + 1):
        target = folder / (f"{name}-{i}" if count > 1 else name)
        store = keystore.KeyStore.create(target, passphrase=passphrase, use_keyring=False)
        public = store.signing_key().public_key
        (target / "public.json").write_text(json.dumps(public.to_json(), indent=2) + "\n")
        _say(f"{target}: key {public.key_id}")
        made.append(target)
    return made


def _new(args: argparse.Namespace) -> None:
    now = trust.utcnow()
    key_expires = now + dt.timedelta(days=args.key_expires)
    keys: dict[str, list[tuple[HybridPublicKey, dt.datetime]]] = {r: [] for r in trust.ROLES}
    for role, specs in _pairs(args.role, "--role"):
        keys[role] += [(_public(s), key_expires) for s in specs.split(",") if s]
    thresholds = {role: int(k) for role, k in _pairs(args.threshold, "--threshold")}
    roles = {r: (thresholds.get(r, trust.MIN_THRESHOLD.get(r, 1)), keys[r]) for r in trust.ROLES}
    signed = trust.root_signed(
        roles, version=args.version, expires=now + dt.timedelta(days=args.expires)
    )
    _write(Path(args.out), trust.sign_root(signed, [_signer(s) for s in args.sign]), None)


def _update(args: argparse.Namespace) -> None:
    now = trust.utcnow()
    old = trust.TrustRoots.load(args.root, now=now, allow_expired=True)
    key_expires = now + dt.timedelta(days=args.key_expires)
    roles = {
        n: (r.threshold, [(k.public, k.expires) for k in r.keys]) for n, r in old.roles.items()
    }
    for role, spec in _pairs(args.add, "--add"):
        roles[role][1].append((_public(spec), key_expires))
    for key_id in args.remove or []:
        roles = {
            n: (t, [(k, e) for k, e in ks if k.key_id != key_id]) for n, (t, ks) in roles.items()
        }
    for role, k in _pairs(args.threshold, "--threshold"):
        roles[role] = (int(k), roles[role][1])
    expires = now + dt.timedelta(days=args.expires) if args.expires else old.expires
    signed = trust.root_signed(
        roles,
        version=old.version + 1,
        expires=expires,
        revoked=old.revoked | set(args.revoke or []),
    )
    _write(Path(args.out), trust.sign_root(signed, [_signer(s) for s in args.sign]), old)


def _bootstrap(args: argparse.Namespace) -> None:
    folder = Path(args.keydir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret_file = folder / "PASSPHRASE"
    if not secret_file.exists():
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    passphrase = secret_file.read_text().strip()
    now = trust.utcnow()
    key_expires = now + dt.timedelta(days=args.key_expires)
    roles, root_signers = {}, []
    for role, (count, threshold) in LAYOUT.items():
        stores = generate(folder, role, count, passphrase)
        publics = [keystore.KeyStore.open(s, passphrase=passphrase).signing_key() for s in stores]
        if role == "root":
            root_signers = publics
        roles[role] = (threshold, [(k.public_key, key_expires) for k in publics])
    signed = trust.root_signed(roles, version=1, expires=now + dt.timedelta(days=args.expires))
    _write(Path(args.out), trust.sign_root(signed, root_signers), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="new offline signing key stores")
    gen.add_argument("keydir")
    gen.add_argument("--name", required=True)
    gen.add_argument("--count", type=int, default=1)
    new = sub.add_parser("new", help="a first root (version 1 unless --version)")
    new.add_argument("--out", required=True)
    new.add_argument("--role", action="append", metavar="ROLE=KEY[,KEY...]", required=True)
    new.add_argument("--version", type=int, default=1)
    upd = sub.add_parser("update", help="the next version of an existing root")
    upd.add_argument("root")
    upd.add_argument("--out", required=True)
    upd.add_argument("--add", action="append", metavar="ROLE=KEY")
    upd.add_argument("--remove", action="append", metavar="KEY_ID")
    upd.add_argument("--revoke", action="append", metavar="KEY_ID")
    for p in (new, upd):
        p.add_argument("--threshold", action="append", metavar="ROLE=K")
        p.add_argument("--sign", action="append", metavar="KEYSTORE", required=True)
    boot = sub.add_parser("bootstrap", help="generate the project's keys and its first root")
    boot.add_argument("keydir")
    boot.add_argument("--out", required=True)
    for p in (new, upd, boot):
        p.add_argument("--expires", type=int, default=730 if p is not upd else 0, metavar="DAYS")
        p.add_argument("--key-expires", type=int, default=1095, metavar="DAYS")
    args = parser.parse_args(argv)
    try:
        if args.action == "generate":
            generate(Path(args.keydir), args.name, args.count, None)
        elif args.action == "new":
            _new(args)
        elif args.action == "update":
            _update(args)
        else:
            _bootstrap(args)
    except (WorkstationError, OSError, ValueError, KeyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
