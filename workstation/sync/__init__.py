"""Sending results to the central registry: sealed, de-identified, exactly once.

- :class:`RegistryClient` (:mod:`.client`): enrolment, challenge/response sign-in, uploads,
  errors as :class:`SyncError` / :class:`RetryableError` / :class:`PermanentError`.
- :mod:`.payload`: the de-identified result document and its sealed container.
- :func:`sync_once` / :func:`run_forever` (:mod:`.engine`): drain the store's outbox.
- :mod:`.state`: the enrolment state file ``<home>/sync/registry.json``.
"""

from __future__ import annotations

from workstation.sync.client import (
    AuthenticationError,
    Enrolment,
    PermanentError,
    RegistryClient,
    RegistryUnavailable,
    RetryableError,
    SyncError,
    Upload,
)
from workstation.sync.engine import SyncReport, backoff, run_forever, sync_loop, sync_once
from workstation.sync.payload import PURPOSE, ResultPayload, build_document, open_payload
from workstation.sync.state import EnrolmentState, load_state, save_state, state_path

__all__ = [
    "PURPOSE",
    "AuthenticationError",
    "Enrolment",
    "EnrolmentState",
    "PermanentError",
    "RegistryClient",
    "RegistryUnavailable",
    "ResultPayload",
    "RetryableError",
    "SyncError",
    "SyncReport",
    "Upload",
    "backoff",
    "build_document",
    "load_state",
    "open_payload",
    "run_forever",
    "save_state",
    "state_path",
    "sync_loop",
    "sync_once",
]
