"""Column encryption: ciphertext-only column types and the cipher that seals values in place.

Every sensitive value is sealed with :func:`workstation.security.aead.encrypt` under the
current data key, with ``kind = "<table>.<column>"`` and ``record_id = <row id>``: the associated
data is (table, row id, column), so a ciphertext copied to another row, another column or
another table fails loudly (:class:`~workstation.store.errors.RecordCorruptError`). Row ids are
client-generated UUIDs, known before the insert.

Why the sealing is not inside the ``TypeDecorator``: ``process_bind_param`` sees the value and
the dialect, never the row, so it cannot bind a ciphertext to its row id without global state.
:class:`EncryptedBytes` therefore only accepts an already :class:`Sealed` value (a plaintext
``bytes``/``str`` written to a sensitive column is refused, so nothing is stored in clear by
mistake) and returns :class:`Sealed` on read; :class:`Cipher` seals and opens with the row's
context. The same ``(kind, record_id, blob)`` triple is what the key store's ``rewrap_all`` and
``destroy_data_key`` expect of a ``CiphertextSource``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from workstation.security import aead
from workstation.security.errors import DecryptionError
from workstation.store.errors import RecordCorruptError

__all__ = ["Cipher", "EncryptedBytes", "EncryptedJSON", "Sealed", "kind_of"]


@dataclass(frozen=True, slots=True)
class Sealed:
    """A ciphertext as stored (the ``MWA1`` envelope); open it with :meth:`Cipher.open`."""

    blob: bytes

    def __repr__(self) -> str:
        return f"Sealed({len(self.blob)} bytes)"


class EncryptedBytes(TypeDecorator[Sealed]):
    """A binary column that holds only ciphertext: binds :class:`Sealed`, refuses plaintext."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, Sealed):
            raise TypeError(
                f"an encrypted column takes a Sealed value, not {type(value).__name__} "
                "(seal it with Cipher.seal)"
            )
        return value.blob

    def process_result_value(self, value: Any, dialect: Dialect) -> Sealed | None:
        return None if value is None else Sealed(bytes(value))

    @property
    def python_type(self) -> type[Sealed]:
        return Sealed


class EncryptedJSON(EncryptedBytes):
    """An :class:`EncryptedBytes` column whose plaintext is canonical JSON."""

    cache_ok = True


def kind_of(table: str, column: str) -> str:
    """The envelope ``kind`` of a column: ``"<table>.<column>"``."""
    return f"{table}.{column}"


def _json_bytes(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


class Cipher:
    """Seals and opens column values under a data key ring, bound to (table, row, column).

    Parameters
    ----------
    keys
        The ring, or a callable returning the current ring (``KeyStore.data_keys``), so a
        rotation in the key store is seen without re-creating the store.
    """

    encrypting = True

    def __init__(self, keys: aead.DataKeyRing | Callable[[], aead.DataKeyRing]) -> None:
        self._keys = keys

    @property
    def ring(self) -> aead.DataKeyRing:
        """The current data key ring."""
        keys = self._keys
        return keys if isinstance(keys, aead.DataKeyRing) else keys()

    def seal(self, data: bytes | memoryview, table: str, row_id: str, column: str) -> Sealed:
        """Encrypt ``data`` for ``table.column`` of row ``row_id``."""
        return Sealed(aead.encrypt(self.ring, data, kind=kind_of(table, column), record_id=row_id))

    def open(self, sealed: Sealed, table: str, row_id: str, column: str) -> bytes:
        """Decrypt a value sealed for exactly this table, row and column.

        Raises
        ------
        RecordCorruptError
            Wrong key, destroyed key version, a ciphertext moved from another row or column,
            or tampered bytes.
        """
        try:
            return aead.decrypt(
                self.ring, sealed.blob, kind=kind_of(table, column), record_id=row_id
            )
        except DecryptionError as error:
            raise RecordCorruptError(
                f"{table}.{column} of row {row_id} does not decrypt: {error}"
            ) from error

    def rewrap(self, sealed: Sealed, table: str, row_id: str, column: str) -> Sealed | None:
        """The value re-encrypted under the current key, or ``None`` when it already is."""
        ring = self.ring
        if aead.key_version(sealed.blob) == ring.current:
            self.open(sealed, table, row_id, column)  # still proves it decrypts
            return None
        try:
            blob = aead.rewrap(ring, sealed.blob, kind=kind_of(table, column), record_id=row_id)
        except DecryptionError as error:
            raise RecordCorruptError(
                f"{table}.{column} of row {row_id} does not decrypt: {error}"
            ) from error
        return Sealed(blob)

    def seal_json(self, value: Any, table: str, row_id: str, column: str) -> Sealed:
        """Seal ``value`` as canonical JSON."""
        return self.seal(_json_bytes(value), table, row_id, column)

    def open_json(self, sealed: Sealed, table: str, row_id: str, column: str) -> Any:
        """Open a value sealed by :meth:`seal_json`."""
        return json.loads(self.open(sealed, table, row_id, column))


class _Unencrypted(Cipher):
    """Stores plaintext. Only for the benchmark's "encryption off" reference and tests; never
    reachable from settings or the command line."""

    encrypting = False

    def __init__(self) -> None:
        super().__init__(aead.DataKeyRing.generate())

    def seal(self, data: bytes | memoryview, table: str, row_id: str, column: str) -> Sealed:
        return Sealed(bytes(data))

    def open(self, sealed: Sealed, table: str, row_id: str, column: str) -> bytes:
        return sealed.blob

    def rewrap(self, sealed: Sealed, table: str, row_id: str, column: str) -> Sealed | None:
        return None
