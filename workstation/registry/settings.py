"""The registry's settings: where its database and files live, and its security limits."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RegistrySettings"]


@dataclass(frozen=True)
class RegistrySettings:
    """Everything the service is configured with (the CLI builds it from its options).

    Parameters
    ----------
    data_dir
        Sealed result blobs, model bundles, the JWT signing secret (``jwt-secret``, mode 0600).
    db_url
        SQLAlchemy URL; default SQLite ``<data_dir>/registry.db`` (WAL).
    token_ttl_s
        Lifetime of an access token (users and workstations).
    lockout_attempts, lockout_s
        Failed password attempts before a user is locked out, and for how long.
    rate_per_minute
        Requests per identity (or per client address before signing in) per minute.
    max_upload_bytes
        Largest sealed result accepted.
    trust_root
        The trust root model bundles are verified against on publish (default: the shipped one).
    registry_key
        The registry role's private signing key (raw ``HybridSigningKey.private_bytes()``): it
        signs the model snapshot and timestamp metadata. Without it targets cannot be published.
    """

    data_dir: Path
    db_url: str | None = None
    token_ttl_s: int = 900
    lockout_attempts: int = 5
    lockout_s: int = 900
    rate_per_minute: int = 1200
    max_upload_bytes: int = 64 * 1024 * 1024
    trust_root: Path | None = None
    registry_key: Path | None = None
    challenge_ttl_s: int = 120
    webhook_attempts: int = 5
    jwt_secret: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'registry.db'}"

    @property
    def blobs(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def bundles(self) -> Path:
        return self.data_dir / "bundles"

    def prepared(self) -> RegistrySettings:
        """Create the folders and load (or create) the JWT secret; returns the full settings."""
        for folder in (self.data_dir, self.blobs, self.bundles):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.jwt_secret:
            return self
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        from dataclasses import replace

        return replace(self, jwt_secret=path.read_bytes())
