"""Make ``cryptography>=50`` importable, from the running Python or from the release itself.

Verifying a release needs ``cryptography`` 50 (ML-DSA-65 for the hybrid signatures). When the
running Python lacks it, the pinned wheels of cryptography and what it needs (cffi, pycparser)
are read out of the release bundle — *before* the bundle is verified, so each wheel's SHA-256
must equal the pin embedded in this installer at build time — unpacked into a temporary folder
and put first on ``sys.path``. Nothing else from an unverified bundle is ever used.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import importlib.util
import json
import pkgutil
import shutil
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

MIN_MAJOR = 50
WHEELS = "payload/wheels/"


class BootstrapError(Exception):
    """The pinned cryptography wheels are missing from the bundle or do not match."""


def pins() -> dict[str, str]:
    """``{wheel file name: sha256}`` embedded in the installer."""
    raw = pkgutil.get_data("medws_install", "data/pins.json")
    if raw is None:
        raise BootstrapError("this installer lacks its pins (data/pins.json); rebuild it")
    return dict(json.loads(raw)["wheels"])


def environment_has_cryptography() -> bool:
    """True when the running Python has ``cryptography`` >= 50 (checked without importing)."""
    if importlib.util.find_spec("cryptography") is None:
        return False
    try:
        major = int(importlib.metadata.version("cryptography").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return major >= MIN_MAJOR


def ensure_cryptography(bundle: Path) -> str:
    """Return ``"environment"`` or ``"release bundle (pinned wheels)"``; raise
    :class:`BootstrapError` when neither works."""
    if environment_has_cryptography():
        return "environment"
    load_pinned(bundle, pins())
    return "release bundle (pinned wheels)"


def load_pinned(bundle: Path, wanted: dict[str, str]) -> Path:
    """Unpack the pinned wheels from ``bundle`` into a temporary folder put first on
    ``sys.path`` (removed at exit); returns the folder."""
    from workstation.security import _zipfmt
    from workstation.security.errors import BundleError

    target = Path(tempfile.mkdtemp(prefix="medws-crypto-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        with open(bundle, "rb") as f:
            size = f.seek(0, 2)
            entries = {e.name: e for e in _zipfmt.read_directory(f, size).entries}
            for name, sha in sorted(wanted.items()):
                entry = entries.get(WHEELS + name)
                if entry is None:
                    raise BootstrapError(
                        f"the release lacks {name}, which this installer needs to verify it "
                        "(is this the installer of this release?)"
                    )
                wheel = target / name
                _copy_checked(f, entry, wheel, sha)
                with zipfile.ZipFile(wheel) as zf:
                    zf.extractall(target / "site")
                wheel.unlink()
    except OSError as error:
        raise BootstrapError(f"cannot read {bundle}: {error}") from None
    except (BundleError, zipfile.BadZipFile) as error:
        raise BootstrapError(f"{bundle} is not a readable release bundle: {error}") from None
    sys.path.insert(0, str(target / "site"))
    importlib.invalidate_caches()
    return target


def _copy_checked(f: BinaryIO, entry: Any, out: Path, want: str) -> None:
    f.seek(entry.data_offset)
    left = entry.csize
    inflater = zlib.decompressobj(-15) if entry.method == 8 else None
    sha = hashlib.sha256()
    with open(out, "wb") as dst:
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise BootstrapError(f"{out.name} is truncated in the bundle")
            left -= len(chunk)
            data = inflater.decompress(chunk) if inflater is not None else chunk
            sha.update(data)
            dst.write(data)
        if inflater is not None:
            tail = inflater.flush()
            sha.update(tail)
            dst.write(tail)
    if sha.hexdigest() != want:
        raise BootstrapError(
            f"{out.name} in the bundle does not match the SHA-256 pinned in this installer "
            f"({sha.hexdigest()} != {want}); refusing to load it"
        )
