"""Plugin errors: each says which plugin and what to do."""

from __future__ import annotations

from workstation.core.errors import WorkstationError


class PluginError(WorkstationError):
    """A plugin could not be built, installed, verified, loaded or run.

    ``plugin`` names it (the distribution name) when known.
    """

    def __init__(self, message: str, *, plugin: str | None = None, path: object = None) -> None:
        super().__init__(message, path=path if path is None else str(path))
        self.plugin = plugin
