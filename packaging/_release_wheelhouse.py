"""The release's pinned wheelhouse: constraints, ``pip download``, the hash lock, bootstrap pins.

Used by ``packaging/build_release.py`` (and its tests). Everything here runs on the build
machine; the installer only reads what it writes.
"""

from __future__ import annotations

import email.parser
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

# The CPU build; any other torch spec may pull a multi-GB CUDA build.
TORCH_PIN = "torch==2.13.0"
# What the installer needs to verify a release when the running Python lacks it.
BOOTSTRAP_ROOTS = ("cryptography",)
LOCK_NAME = "requirements.lock"


class WheelhouseError(RuntimeError):
    """pip could not produce the wheelhouse (its output is in the message)."""


@dataclass(frozen=True)
class Wheel:
    """One wheel file of the wheelhouse."""

    path: Path
    name: str  # canonical project name
    version: str
    sha256: str
    size: int

    @classmethod
    def of(cls, path: Path) -> Wheel:
        name, version, _, _ = parse_wheel_filename(path.name)
        return cls(path, str(name), str(version), sha256_of(path), path.stat().st_size)


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def wheels_in(folder: Path) -> list[Wheel]:
    """The wheels in ``folder``, sorted by file name."""
    return [Wheel.of(p) for p in sorted(folder.glob("*.whl"))]


def installed_constraints(exclude: Iterable[str] = ()) -> list[str]:
    """``name==version`` for every distribution of the running environment (first one found
    per name wins, as for imports), with torch pinned to :data:`TORCH_PIN`."""
    skip = {canonicalize_name(n) for n in exclude} | {"torch"}
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        raw = dist.metadata["Name"]
        if not raw:
            continue
        name = canonicalize_name(raw)
        if name in skip or name in pins:
            continue
        pins[name] = dist.version
    return [f"{n}=={v}" for n, v in sorted(pins.items())] + [TORCH_PIN]


def _pip_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


def download(
    requirements: Sequence[str | Path],
    dest: Path,
    *,
    constraints: Sequence[str],
    cache: Path | None = None,
    log: Path | None = None,
) -> list[Wheel]:
    """``pip download`` the binary closure of ``requirements`` into ``dest``.

    With ``cache``, pip first tries the cache alone (``--no-index``); only when that cannot
    satisfy everything does it consult the indexes, and new wheels are copied into the cache.
    """
    dest.mkdir(parents=True, exist_ok=True)
    cfile = dest.parent / f".{dest.name}.constraints.txt"
    cfile.write_text("\n".join(constraints) + "\n")
    base = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-input"]
    base += ["-d", str(dest), "-c", str(cfile), *map(str, requirements)]
    attempts = []
    if cache is not None and cache.is_dir():
        attempts.append([*base, "--no-index", "--find-links", str(cache)])
        attempts.append([*base, "--find-links", str(cache)])
    else:
        attempts.append(base)
    output = ""
    try:
        for cmd in attempts:
            done = subprocess.run(cmd, capture_output=True, text=True, env=_pip_env())
            output += f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n"
            if done.returncode == 0:
                break
        else:
            raise WheelhouseError(f"pip download failed:\n{output[-6000:]}")
    finally:
        cfile.unlink(missing_ok=True)
        if log is not None:
            log.write_text(output)
    wheels = wheels_in(dest)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for wheel in wheels:
            target = cache / wheel.path.name
            if not target.exists() and os.access(cache, os.W_OK):
                shutil.copy2(wheel.path, target)
    return wheels


def write_lock(wheels: Sequence[Wheel], path: Path) -> Path:
    """``requirements.lock``: ``name==version --hash=sha256:...`` for every wheel (one per
    project; ``pip install --require-hashes`` then installs exactly these files)."""
    seen: dict[str, Wheel] = {}
    for wheel in wheels:
        if wheel.name in seen:
            raise WheelhouseError(f"two wheels of {wheel.name}: {seen[wheel.name].path.name}, "
                                  f"{wheel.path.name}")  # fmt: skip
        seen[wheel.name] = wheel
    lines = ["# Generated by packaging/build_release.py: the exact wheels of this release."]
    lines += [
        f"{w.name}=={w.version} --hash=sha256:{w.sha256}" for w in sorted(seen.values(), key=_key)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _key(wheel: Wheel) -> str:
    return wheel.name


def wheel_metadata(path: Path) -> email.message.Message:
    """The ``METADATA`` of a wheel, parsed."""
    with zipfile.ZipFile(path) as zf:
        name = next(
            n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n) is not None
        )
        text = zf.read(name).decode("utf-8", "replace")
    return email.parser.Parser().parsestr(text, headersonly=True)


def requirements_of(wheel: Wheel) -> list[str]:
    """The canonical names a wheel requires here (markers evaluated, extras ignored)."""
    env = default_environment()
    env["extra"] = ""
    names = []
    for spec in wheel_metadata(wheel.path).get_all("Requires-Dist") or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate(env):
            names.append(str(canonicalize_name(req.name)))
    return names


def closure(wheels: Sequence[Wheel], roots: Iterable[str]) -> list[Wheel]:
    """The wheels that ``roots`` need at run time here (Requires-Dist, markers evaluated for
    this interpreter, extras ignored)."""
    by_name = {w.name: w for w in wheels}
    todo = [canonicalize_name(r) for r in roots]
    found: dict[str, Wheel] = {}
    while todo:
        name = todo.pop()
        if name in found:
            continue
        if name not in by_name:
            raise WheelhouseError(f"the wheelhouse lacks {name}, which the installer needs")
        found[name] = by_name[name]
        todo.extend(requirements_of(by_name[name]))
    return sorted(found.values(), key=_key)


def bootstrap_pins(wheels: Sequence[Wheel]) -> dict[str, str]:
    """``{wheel file name: sha256}`` of cryptography and what it needs: the installer embeds
    these and loads only wheels that match them."""
    return {w.path.name: w.sha256 for w in closure(wheels, BOOTSTRAP_ROOTS)}
