"""Find plugins, verify them, and resolve their contributions on first use.

:meth:`PluginRegistry.discover` reads every installed plugin's signed metadata (user and system
roots) and, in developer mode, the listed source folders; it imports nothing. A plugin that is
untrusted, tampered, expired, incompatible or missing a dependency is listed with its state and
reason, and contributes nothing. :meth:`PluginRegistry.load` puts a verified plugin on
``sys.path`` and resolves one entry point; any exception there marks the plugin ``failed`` with
its error (the app runs on) and is raised as :class:`PluginError`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import logging
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workstation.plugins import developer, installed
from workstation.plugins.api import API_VERSION, GROUPS, describe
from workstation.plugins.errors import PluginError
from workstation.plugins.metadata import PluginMetadata, from_pyproject
from workstation.security.errors import TrustError
from workstation.security.trust import TrustRoots, format_time

__all__ = ["Contribution", "PluginRecord", "PluginRegistry"]

log = logging.getLogger(__name__)

READY, LOADED, FAILED = "ready", "loaded", "failed"
REFUSED, INCOMPATIBLE, SHADOWED = "refused", "incompatible", "shadowed"


@dataclass(frozen=True)
class Contribution:
    """One entry point of one plugin: ``kind`` is a key of :data:`~.api.GROUPS`."""

    plugin: str
    kind: str
    name: str
    target: str

    @property
    def key(self) -> str:
        return f"{self.plugin}/{self.name}"


@dataclass
class PluginRecord:
    """What the workstation knows about one plugin, whether it can run or not."""

    name: str
    version: str
    source: str  # "user" | "system" | "developer"
    folder: Path
    state: str
    trusted_by: str = ""
    error: str = ""
    metadata: PluginMetadata | None = None
    import_path: Path | None = None
    signers: list[str] = field(default_factory=list)
    expires: str = ""

    @property
    def usable(self) -> bool:
        return self.state in (READY, LOADED)

    def contributions(self) -> list[Contribution]:
        if self.metadata is None:
            return []
        return [
            Contribution(self.name, kind, name, target)
            for kind, name, target in self.metadata.contributions()
        ]

    def to_json(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "source": self.source,
            "trusted_by": self.trusted_by,
            "signers": self.signers,
            "expires": self.expires,
            "error": self.error,
            "summary": meta.summary if meta else "",
            "plugin_api": meta.plugin_api if meta else "",
            "contributions": [
                {"kind": c.kind, "name": c.name, "key": c.key} for c in self.contributions()
            ],
            "folder": str(self.folder),
        }


class PluginRegistry:
    """The plugins of this workstation (see the module docstring)."""

    def __init__(self, records: list[PluginRecord], *, developer_mode: bool = False) -> None:
        self.records = records
        self.developer_mode = developer_mode
        self._objects: dict[Contribution, Any] = {}

    # -- discovery -------------------------------------------------------------------------

    @classmethod
    def discover(
        cls,
        *,
        home: Path | None = None,
        trust: TrustRoots | None = None,
        now: dt.datetime | None = None,
        system: bool = True,
    ) -> PluginRegistry:
        """Verify every installed plugin and read developer-mode folders; import nothing."""
        trust_problem = ""
        if trust is None:
            try:
                trust = TrustRoots.load_default(home=home, now=now)
            except TrustError as error:
                trust_problem = str(error)
        roots = [("user", installed.user_root(home))]
        if system:
            roots.append(("system", installed.system_root()))
        records: list[PluginRecord] = []
        for source, root in roots:
            for folder in installed.installed_folders(root):
                records.append(_installed_record(source, folder, trust, now, trust_problem))
        mode = developer.DeveloperMode.load(home)
        if mode.enabled:
            records += [_developer_record(Path(f)) for f in mode.folders]
        _shadow_duplicates(records)
        return cls(records, developer_mode=mode.enabled)

    # -- queries ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[PluginRecord]:
        return iter(self.records)

    def get(self, name: str) -> PluginRecord:
        for record in self.records:
            if record.name == name and record.state != SHADOWED:
                return record
        raise PluginError(f"there is no plugin named {name!r}", plugin=name)

    def contributions(self, kind: str) -> list[Contribution]:
        """Contributions of ``kind`` from usable plugins, by plugin then name."""
        if kind not in GROUPS:
            raise ValueError(f"unknown contribution kind {kind!r}")
        return [
            c
            for record in self.records
            if record.usable
            for c in record.contributions()
            if c.kind == kind
        ]

    def find(self, kind: str, key: str) -> Contribution:
        """The contribution ``plugin/name``, or ``name`` when only one plugin offers it."""
        offered = self.contributions(kind)
        matches = [c for c in offered if key in (c.key, c.name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise PluginError(f"{key!r} is ambiguous: use one of {[c.key for c in matches]}")
        known = ", ".join(c.key for c in offered) or "none"
        raise PluginError(f"no usable plugin offers the {kind[:-1]} {key!r} (offered: {known})")

    @property
    def unsigned_loaded(self) -> bool:
        """Whether any developer-mode (unsigned) plugin is usable: the UI must say so."""
        return any(r.source == "developer" and r.usable for r in self.records)

    # -- loading ---------------------------------------------------------------------------

    def load(self, contribution: Contribution) -> Any:
        """The contribution's object (imported on first use; a class is instantiated)."""
        if contribution in self._objects:
            return self._objects[contribution]
        record = self.get(contribution.plugin)
        if not record.usable:
            raise PluginError(
                f"{record.name} is {record.state}: {record.error}", plugin=record.name
            )
        _activate(record)
        entry = importlib.metadata.EntryPoint(
            contribution.name, contribution.target, GROUPS[contribution.kind]
        )
        try:
            found = entry.load()
            obj = found() if isinstance(found, type) else found
        except Exception as error:
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            log.error(
                "plugin %s failed to load %s:\n%s",
                record.name,
                contribution.key,
                traceback.format_exc(),
            )
            record.state, record.error = FAILED, f"{contribution.key}: {detail}"
            raise PluginError(
                f"the plugin {record.name} failed to load {contribution.key}: {detail}",
                plugin=record.name,
            ) from error
        protocol = describe(contribution.kind)
        if not isinstance(obj, protocol):
            wanted = ", ".join(sorted(getattr(protocol, "__protocol_attrs__", ()) or ()))
            record.state = FAILED
            record.error = f"{contribution.key} is not a {protocol.__name__} ({wanted})"
            raise PluginError(f"{record.name}: {record.error}", plugin=record.name)
        record.state = LOADED
        self._objects[contribution] = obj
        return obj

    def fail(self, name: str, error: str) -> None:
        """Mark ``name`` failed (the host caught its error while using a contribution)."""
        record = self.get(name)
        record.state, record.error = FAILED, error


def _installed_record(
    source: str,
    folder: Path,
    trust: TrustRoots | None,
    now: dt.datetime | None,
    trust_problem: str,
) -> PluginRecord:
    record = PluginRecord(folder.name, "?", source, folder, REFUSED)
    if trust is None:
        record.error = f"cannot verify installed plugins: {trust_problem}"
        return record
    try:
        plugin = installed.verify_installed(folder, trust=trust, now=now)
    except PluginError as error:
        record.error = str(error)
        return record
    meta = plugin.metadata
    record.version, record.metadata, record.trusted_by = meta.version, meta, plugin.trusted_by
    record.import_path = plugin.site
    record.signers = [s.key_id for s in plugin.signers]
    record.expires = format_time(plugin.expires)
    _check_usable(record, meta)
    return record


def _developer_record(folder: Path) -> PluginRecord:
    record = PluginRecord(folder.name, "?", "developer", folder, REFUSED, developer.UNSIGNED)
    try:
        meta = from_pyproject(folder)
    except PluginError as error:
        record.error = str(error)
        return record
    record.name, record.version, record.metadata = meta.name, meta.version, meta
    record.import_path = developer.import_path(folder)
    _check_usable(record, meta)
    return record


def _check_usable(record: PluginRecord, meta: PluginMetadata) -> None:
    problem = meta.incompatibility(API_VERSION)
    missing = meta.missing_dependencies()
    if problem or missing:
        record.state = INCOMPATIBLE
        record.error = problem or f"missing dependencies: {'; '.join(missing)}"
    else:
        record.state = READY


def _shadow_duplicates(records: list[PluginRecord]) -> None:
    """Of several usable plugins with one name, developer mode wins, then the newest."""
    from packaging.version import InvalidVersion, Version

    def rank(record: PluginRecord) -> tuple[int, Any]:
        try:
            version: Any = Version(record.version)
        except InvalidVersion:
            version = Version("0")
        return (record.source == "developer", version)

    by_name: dict[str, list[PluginRecord]] = {}
    for record in records:
        if record.usable:
            by_name.setdefault(record.name, []).append(record)
    for group in by_name.values():
        for loser in sorted(group, key=rank)[:-1]:
            loser.state, loser.error = SHADOWED, "another copy of this plugin is used"


def _activate(record: PluginRecord) -> None:
    """Make a verified plugin importable (once), refusing names something else provides."""
    path = record.import_path
    if path is None or str(path) in sys.path:
        return
    top = installed.top_level_names(path, packages_only=record.source == "developer")
    clash = installed.clashes(top, path)
    if clash:
        record.state = FAILED
        record.error = f"provides {', '.join(clash)}, which is already importable elsewhere"
        raise PluginError(f"{record.name} {record.error}", plugin=record.name)
    sys.path.append(str(path))
    importlib.invalidate_caches()
