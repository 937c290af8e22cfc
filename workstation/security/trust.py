"""Trust roots: which keys may sign what (TUF-like roles, thresholds, expiry, revocation).

A root document names, for each role (``root``, ``model``, ``plugin``, ``release``,
``registry``), its hybrid public keys (each with an ``expires`` date) and a threshold *k*: a
signed object of that role is trusted only when *k* distinct, unexpired, unrevoked keys of the
role verify. Key ids in ``revoked`` are refused wherever they appear. The document itself is
signed by a threshold of its ``root`` keys (context ``"trust-root"``)::

    {"signed": {"type": "medical-workstation/trust-root", "spec_version": 1, "version": 3,
                "expires": "2027-01-01T00:00:00Z", "revoked": ["<key id>", ...],
                "roles": {"release": {"threshold": 2, "keys": [
                    {"public": {<HybridPublicKey.to_json()>}, "expires": "..."}, ...]}, ...}},
     "signatures": [{<HybridSignature.to_json()>}, ...]}

Signatures cover :func:`canonical_json` of ``signed``. ``release`` needs at least 2 keys'
signatures. A newer root is accepted only when a threshold of the *previous* root's ``root``
keys and of its own sign it and its version is higher (no rollback); the installed root is
``resources/trust/root.json``, and successors accepted later are kept under
``paths().home / "trust" / "roots"``.

Local trust (:class:`LocalTrust`) adds keys that this workstation trusts on its own: its own
signing key (``workstation keys init``) for the ``model`` and ``plugin`` roles, and an
administrator's allow-list ``paths().home / "trust" / "allowed_keys.json"`` (``model``,
``plugin``, ``registry``). One valid local signature is enough for those roles, and the result
marks such signers ``source="local key"`` / ``"allow-list"`` so the UI can say so. Local trust
never satisfies ``root`` or ``release``: those need the maintainers' offline keys.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workstation.security._canonical import (
    canonical_json,
    format_time,
    now_or,
    parse_time,
    strict_json,
    utcnow,
)
from workstation.security._local import (
    ALLOW_LIST_ROLES,
    LOCAL_KEY_ROLES,
    SOURCE_ALLOW,
    SOURCE_LOCAL,
    SOURCE_ROOT,
    LocalTrust,
    TrustedKey,
    add_allowed_key,
    allow_list_path,
)
from workstation.security.errors import SignatureError, TrustError
from workstation.security.sign import HybridPublicKey, HybridSignature, HybridSigningKey

__all__ = [
    "ALLOW_LIST_ROLES",
    "LOCAL_KEY_ROLES",
    "ROLES",
    "SOURCE_ALLOW",
    "SOURCE_LOCAL",
    "SOURCE_ROOT",
    "LocalTrust",
    "Role",
    "Signer",
    "TrustRoots",
    "TrustedKey",
    "add_allowed_key",
    "allow_list_path",
    "canonical_json",
    "format_time",
    "install_root",
    "parse_time",
    "root_signed",
    "shipped_root_path",
    "sign_root",
    "strict_json",
    "utcnow",
]

ROLES = ("root", "model", "plugin", "release", "registry")
MIN_THRESHOLD = {"release": 2}
ROOT_CONTEXT = "trust-root"
ROOT_TYPE = "medical-workstation/trust-root"
SPEC_VERSION = 1

_KEY_ID = re.compile(r"[0-9a-f]{32}\Z")


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """A role's keys and how many of them must sign."""

    name: str
    threshold: int
    keys: tuple[TrustedKey, ...]


@dataclass(frozen=True)
class Signer:
    """A key whose signature verified, and why it is trusted."""

    key_id: str
    role: str
    source: str  # SOURCE_ROOT, SOURCE_LOCAL or SOURCE_ALLOW

    @property
    def local(self) -> bool:
        """True when trusted by this workstation only (its own key or the allow-list)."""
        return self.source != SOURCE_ROOT

    def to_json(self) -> dict[str, str]:
        """``{"key_id", "role", "source"}``."""
        return {"key_id": self.key_id, "role": self.role, "source": self.source}


# -- the root ------------------------------------------------------------------------------


def shipped_root_path() -> Path:
    """The trust root installed with the workstation (``resources/trust/root.json``)."""
    from workstation.config import resources_dir

    return resources_dir() / "trust" / "root.json"


@dataclass(frozen=True)
class TrustRoots:
    """A verified root document, optionally with :class:`LocalTrust`. See the module doc."""

    version: int
    expires: dt.datetime
    roles: dict[str, Role]
    revoked: frozenset[str]
    local: LocalTrust = field(default_factory=LocalTrust)
    path: Path | None = None

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        now: dt.datetime | None = None,
        previous: TrustRoots | None = None,
        allow_expired: bool = False,
    ) -> TrustRoots:
        """Read and verify the root at ``path`` (a successor of ``previous`` when given)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise TrustError(f"cannot read the trust root {path}: {error}", path=path) from None
        return cls.from_bytes(
            raw, now=now, previous=previous, path=path, allow_expired=allow_expired
        )

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        *,
        now: dt.datetime | None = None,
        previous: TrustRoots | None = None,
        path: Path | None = None,
        allow_expired: bool = False,
    ) -> TrustRoots:
        """Verify a root document: its schema, its own root threshold, expiry, and, with
        ``previous``, a higher version signed by a threshold of ``previous``'s root keys.

        ``allow_expired`` is for walking a chain of roots (TUF 5.3): an intermediate root may
        have expired; the last one must not.
        """
        now = now_or(now)
        where = f"the trust root {path}" if path else "the trust root"
        doc = strict_json(raw, where, TrustError)
        try:
            if set(doc) != {"signed", "signatures"}:
                raise ValueError("expected exactly the fields 'signed' and 'signatures'")
            signed = doc["signed"]
            roots = cls._parse(signed)
            signatures = [HybridSignature.from_json(s) for s in doc["signatures"]]
        except (AttributeError, KeyError, TypeError, ValueError, SignatureError) as error:
            raise TrustError(f"{where} is malformed: {error}", path=path) from None
        roots = replace(roots, path=path)
        message = canonical_json(signed)
        if now >= roots.expires and not allow_expired:
            raise TrustError(
                f"{where} (version {roots.version}) expired on {format_time(roots.expires)}; "
                "install a newer workstation release or trust root",
                path=path,
            )
        try:
            roots._verify("root", signatures, message, ROOT_CONTEXT, now, any_age=True)
            if previous is not None:
                if roots.version <= previous.version:
                    raise TrustError(
                        f"rollback: version {roots.version} is not newer than the trusted "
                        f"version {previous.version}"
                    )
                previous._verify("root", signatures, message, ROOT_CONTEXT, now, any_age=True)
        except TrustError as error:
            raise TrustError(f"{where} is not trusted: {error}", path=path) from None
        return roots

    @classmethod
    def _parse(cls, signed: Any) -> TrustRoots:
        expected = {"type", "spec_version", "version", "expires", "roles", "revoked"}
        if not isinstance(signed, dict) or set(signed) != expected:
            raise ValueError(f"'signed' must have exactly the fields {sorted(expected)}")
        if signed["type"] != ROOT_TYPE or signed["spec_version"] != SPEC_VERSION:
            raise ValueError(f"not a {ROOT_TYPE} document of spec version {SPEC_VERSION}")
        version = signed["version"]
        if type(version) is not int or version < 1:
            raise ValueError("version must be a positive integer")
        revoked = signed["revoked"]
        if not isinstance(revoked, list) or not all(
            isinstance(k, str) and _KEY_ID.match(k) for k in revoked
        ):
            raise ValueError("revoked must be a list of key ids")
        if set(signed["roles"]) != set(ROLES):
            raise ValueError(f"roles must be exactly {list(ROLES)}")
        roles = {}
        for name in ROLES:
            spec = signed["roles"][name]
            if set(spec) != {"threshold", "keys"}:
                raise ValueError(f"role {name!r} must have exactly 'threshold' and 'keys'")
            keys = []
            for item in spec["keys"]:
                if set(item) != {"public", "expires"}:
                    raise ValueError(f"a key of role {name!r} must have 'public' and 'expires'")
                public = HybridPublicKey.from_json(item["public"])
                if "key_id" not in item["public"]:
                    raise ValueError(f"a key of role {name!r} lacks its key_id")
                keys.append(TrustedKey(public, parse_time(item["expires"], "expires")))
            if len({k.key_id for k in keys}) != len(keys):
                raise ValueError(f"role {name!r} lists a key twice")
            threshold = spec["threshold"]
            low = MIN_THRESHOLD.get(name, 1)
            if type(threshold) is not int or not low <= threshold <= len(keys):
                raise ValueError(
                    f"role {name!r} has threshold {threshold!r} with {len(keys)} key(s); it "
                    f"must be between {low} and the number of keys"
                )
            roles[name] = Role(name, threshold, tuple(keys))
        return cls(
            version=version,
            expires=parse_time(signed["expires"], "expires"),
            roles=roles,
            revoked=frozenset(revoked),
        )

    @classmethod
    def load_default(
        cls,
        *,
        now: dt.datetime | None = None,
        home: Path | None = None,
        local: LocalTrust | None = None,
    ) -> TrustRoots:
        """The shipped root, advanced through newer roots accepted under ``home/trust/roots``,
        with :class:`LocalTrust` (loaded from ``home`` unless given)."""
        now = now_or(now)
        if home is None:
            from workstation.config import paths

            home = paths().home
        roots = cls.load(shipped_root_path(), now=now, allow_expired=True)
        for version, path in _stored_roots(home):
            if version > roots.version:
                roots = cls.load(path, now=now, previous=roots, allow_expired=True)
        if now >= roots.expires:
            raise TrustError(
                f"the trust root (version {roots.version}, {roots.path}) expired on "
                f"{format_time(roots.expires)}; install a newer workstation release or trust root"
            )
        return roots.with_local(LocalTrust.load(home) if local is None else local)

    def with_local(self, local: LocalTrust) -> TrustRoots:
        """The same root with ``local`` trust added."""
        return replace(self, local=local)

    # -- checking --------------------------------------------------------------------------

    def trusted_keys(self, role: str, now: dt.datetime | None = None) -> list[TrustedKey]:
        """The role's unexpired, unrevoked keys, from the root and from local trust."""
        now = now_or(now)
        keys = list(self._role(role).keys) + list(self.local.for_role(role).values())
        return [
            k
            for k in keys
            if k.key_id not in self.revoked and (k.expires is None or now < k.expires)
        ]

    def check(
        self,
        role: str,
        signatures: Sequence[HybridSignature],
        data: bytes,
        *,
        context: str,
        now: dt.datetime | None = None,
    ) -> list[str]:
        """Key ids of the trusted signers; see :meth:`signers`."""
        return [s.key_id for s in self.signers(role, signatures, data, context=context, now=now)]

    def signers(
        self,
        role: str,
        signatures: Sequence[HybridSignature],
        data: bytes,
        *,
        context: str,
        now: dt.datetime | None = None,
    ) -> list[Signer]:
        """The trusted keys whose signatures over ``data`` verify, root keys first.

        Raises :class:`TrustError` unless at least the role's threshold of distinct,
        unexpired, unrevoked root keys verify, or (for local roles) one local key does; the
        message says what happened to every signature.
        """
        return self._verify(role, signatures, data, context, now_or(now), any_age=False)

    def _verify(
        self,
        role: str,
        signatures: Sequence[HybridSignature],
        data: bytes,
        context: str,
        now: dt.datetime,
        *,
        any_age: bool,
    ) -> list[Signer]:
        spec = self._role(role)
        if now >= self.expires and not any_age:
            raise TrustError(
                f"the trust root (version {self.version}) expired on {format_time(self.expires)}"
            )
        by_root = {k.key_id: k for k in spec.keys}
        by_local = self.local.for_role(role) if role not in ("root", "release") else {}
        trusted: list[Signer] = []
        local: list[Signer] = []
        notes: list[str] = []
        seen: set[str] = set()
        for signature in signatures:
            key_id = signature.key_id
            if key_id in seen:
                notes.append(f"key {key_id}: signed twice (counted once)")
                continue
            seen.add(key_id)
            key = by_root.get(key_id) or by_local.get(key_id)
            problem = self._problem(role, key_id, key, now)
            if problem is None and key is not None:
                try:
                    key.public.verify(signature, data, context=context)
                except SignatureError as error:
                    problem = f"signature does not verify ({error})"
            if problem is not None:
                notes.append(f"key {key_id}: {problem}")
                continue
            assert key is not None
            (trusted if key_id in by_root else local).append(Signer(key_id, role, key.source))
            notes.append(f"key {key_id}: ok ({key.source})")
        if len(trusted) >= spec.threshold:
            return trusted + local
        if local:
            return local + trusted
        detail = "; ".join(notes) if notes else "there are no signatures"
        raise TrustError(
            f"not trusted for the {role} role: threshold {len(trusted)} of {spec.threshold} "
            f"valid signature(s) from its keys ({detail})"
        )

    def _problem(
        self, role: str, key_id: str, key: TrustedKey | None, now: dt.datetime
    ) -> str | None:
        if key_id in self.revoked:
            return "revoked"
        if key is None:
            others = [r.name for r in self.roles.values() if key_id in {k.key_id for k in r.keys}]
            others += [r for lk in self.local.keys if lk.key_id == key_id for r in lk.roles]
            if others:
                return f"wrong role: a key of role(s) {', '.join(sorted(set(others)))}, not {role}"
            return "unknown key"
        if key.expires is not None and now >= key.expires:
            return f"expired on {format_time(key.expires)}"
        return None

    def _role(self, role: str) -> Role:
        if role not in self.roles:
            raise TrustError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return self.roles[role]

    def summary(self) -> dict[str, Any]:
        """What the UI shows: version, expiry, and each role's threshold and key ids."""
        return {
            "version": self.version,
            "expires": format_time(self.expires),
            "roles": {
                name: {"threshold": r.threshold, "keys": [k.key_id for k in r.keys]}
                for name, r in self.roles.items()
            },
            "revoked": sorted(self.revoked),
            "local_keys": [
                {"key_id": k.key_id, "roles": sorted(k.roles), "source": k.source}
                for k in self.local.keys
            ],
        }


def _stored_roots(home: Path) -> list[tuple[int, Path]]:
    folder = home / "trust" / "roots"
    found = []
    for path in folder.glob("*.root.json") if folder.is_dir() else ():
        stem = path.name.removesuffix(".root.json")
        if stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def install_root(raw: bytes, *, now: dt.datetime | None = None, home: Path | None = None) -> Path:
    """Verify ``raw`` as a successor of the current root and keep it under the home."""
    if home is None:
        from workstation.config import paths

        home = paths().home
    current = TrustRoots.load_default(now=now, home=home, local=LocalTrust())
    new = TrustRoots.from_bytes(raw, now=now, previous=current)
    path = home / "trust" / "roots" / f"{new.version}.root.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


# -- writing (the maintainers' script and the tests) ---------------------------------------


def root_signed(
    roles: dict[str, tuple[int, Sequence[tuple[HybridPublicKey, dt.datetime]]]],
    *,
    version: int,
    expires: dt.datetime,
    revoked: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``signed`` part of a root: ``roles`` maps each role to (threshold, [(key, expires)])."""
    return {
        "type": ROOT_TYPE,
        "spec_version": SPEC_VERSION,
        "version": version,
        "expires": format_time(expires),
        "revoked": sorted(set(revoked)),
        "roles": {
            name: {
                "threshold": threshold,
                "keys": [{"public": k.to_json(), "expires": format_time(e)} for k, e in keys],
            }
            for name, (threshold, keys) in roles.items()
        },
    }


def sign_root(signed: dict[str, Any], keys: Iterable[HybridSigningKey]) -> bytes:
    """The root document file: ``signed`` and each key's signature, as indented JSON."""
    message = canonical_json(signed)
    signatures = [k.sign(message, context=ROOT_CONTEXT).to_json() for k in keys]
    text = json.dumps({"signed": signed, "signatures": signatures}, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")
