"""The workstation's own result store, unlocked with its key store: one way to open it for the
CLI, the GUI, analyses and sync, so they all see the same database with the same keys."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workstation.security.keystore import KeyStore
    from workstation.store.results import ResultStore

__all__ = ["STORE_URL_ENV", "open_default"]

STORE_URL_ENV = "WORKSTATION_STORE_URL"


def open_default(
    *, actor: str, url: str | None = None, prompt: Callable[[], str] | None = None
) -> tuple[ResultStore, KeyStore]:
    """The store at ``url`` (default ``$WORKSTATION_STORE_URL``, else ``<home>/store``) and the
    unlocked key store (``$WORKSTATION_PASSPHRASE``, a keyring, or ``prompt()``).

    Raises :class:`~workstation.security.errors.KeyStoreError` when the key store cannot be
    unlocked; nothing is opened then.
    """
    from workstation.security.keystore import KeyStore, default_folder
    from workstation.store.results import ResultStore

    keys = KeyStore.open(default_folder(), prompt=prompt)
    store = ResultStore.open(
        url or os.environ.get(STORE_URL_ENV) or None,
        keys=keys.data_keys,
        actor=actor,
        signer=keys.signing_key(),
    )
    return store, keys
