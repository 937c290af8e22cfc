"""The site secret that keys UID remapping, pseudonyms and date offsets.

Resolution order (:func:`site_secret`):

1. the environment variable the caller names (``--site-secret-env VAR``), else
   ``$WORKSTATION_DEID_SECRET``: hex (even length) or base64, at least 16 bytes once decoded.
   Every workstation of one site should share this value so that a patient's data exported from
   any of them links up; sites must not share it.
2. else the per-workstation file ``<home>/keys/deid-site-secret`` (32 random bytes, hex), created
   on first use with mode 0600 in a 0700 folder. Losing it breaks the link between what is
   exported before and after; it is not needed to read anything back.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from workstation.config import Paths, paths
from workstation.core.errors import ConfigError

__all__ = ["DEFAULT_SECRET_ENV", "MIN_SECRET_BYTES", "SECRET_FILE", "decode_secret", "site_secret"]

DEFAULT_SECRET_ENV = "WORKSTATION_DEID_SECRET"
SECRET_FILE = "deid-site-secret"
MIN_SECRET_BYTES = 16
_HEX = re.compile(r"[0-9a-fA-F]+")


def decode_secret(text: str, *, what: str = "the site secret") -> bytes:
    """Hex or base64 text -> bytes (at least :data:`MIN_SECRET_BYTES`).

    Raises
    ------
    ConfigError
        The text is neither, or too short.
    """
    text = text.strip()
    raw: bytes | None = None
    if _HEX.fullmatch(text) and len(text) % 2 == 0:
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None:
        raise ConfigError(f"{what} is neither hex nor base64")
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigError(f"{what} is {len(raw)} bytes; at least {MIN_SECRET_BYTES} are needed")
    return raw


def _from_file(folder: Path, layout: Paths) -> bytes:
    path = folder / SECRET_FILE
    if not path.exists():
        layout.ensure(folder)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the site secret file: {error}", path=path) from error
    return decode_secret(text, what=f"the site secret in {path}")


def site_secret(env_var: str | None = None, *, environ: Mapping[str, str] | None = None) -> bytes:
    """The site secret (see the module docstring for where it comes from).

    Raises
    ------
    ConfigError
        ``env_var`` is named but unset, a value is malformed, or the file cannot be read.
    """
    env = os.environ if environ is None else environ
    if env_var is not None:
        value = env.get(env_var, "")
        if not value.strip():
            raise ConfigError(f"${env_var} is not set (it should hold the site secret)")
        return decode_secret(value, what=f"${env_var}")
    value = env.get(DEFAULT_SECRET_ENV, "")
    if value.strip():
        return decode_secret(value, what=f"${DEFAULT_SECRET_ENV}")
    layout = paths(dict(env))
    return _from_file(layout.keys, layout)
