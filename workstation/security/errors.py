"""Errors of the security core (see :mod:`workstation.core.errors` for the whole tree).

::

    WorkstationError
    └── SecurityError
        ├── DecryptionError     ciphertext, key, recipient or associated data do not match
        ├── SignatureError      a signature does not verify (either half of a hybrid signature)
        ├── KeyStoreError       keys missing, locked, or the passphrase / keyring is wrong
        ├── TrustError          no trusted key for the role, expired, revoked, below threshold
        └── BundleError         a signed bundle is malformed, tampered, unsafe or a rollback

Messages say what was refused and why, never key material or plaintext.
"""

from __future__ import annotations

from workstation.core.errors import WorkstationError


class SecurityError(WorkstationError):
    """Base of the security core's errors."""


class DecryptionError(SecurityError):
    """Decryption failed: wrong key, wrong recipient, wrong context, or tampered bytes."""


class SignatureError(SecurityError):
    """A signature does not verify."""


class KeyStoreError(SecurityError):
    """The key store cannot provide the key (missing, locked, wrong passphrase)."""


class TrustError(SecurityError):
    """The signer is not trusted for this role (unknown, expired, revoked, threshold not met)."""


class BundleError(SecurityError):
    """A signed bundle is refused (malformed, tampered, unsafe content, rollback, expired)."""
