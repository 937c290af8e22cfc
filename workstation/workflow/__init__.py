"""Qt-free use cases that the CLI and the GUI both call.

Each is one function ``f(inputs, *, progress, cancel) -> result`` (see
:mod:`workstation.core.tasks`); the GUI runs them on a worker through ``ui.tasks.TaskRunner``.

- :mod:`~workstation.workflow.open_study`: stream a series (local or DICOMweb), handing batches
  of landed slices to the caller as they arrive (:func:`load_progressively`).
- :mod:`~workstation.workflow.remote`: PACS servers (no stored secrets), remote series, URLs.
- :mod:`~workstation.workflow.pacs_search`, :mod:`~workstation.workflow.pacs_servers`: the
  PACS dialog's queries and saved servers.
- :mod:`~workstation.workflow.recent`, :mod:`~workstation.workflow.thumbnails`: recent studies
  and series thumbnails for the browser.
"""

from __future__ import annotations

from workstation.workflow.open_study import LoadUpdate, load_progressively

__all__ = ["LoadUpdate", "load_progressively"]
