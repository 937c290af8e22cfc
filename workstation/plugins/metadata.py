"""A plugin's static metadata, read without importing any of its code.

Three sources give the same :class:`PluginMetadata`:

- a built wheel's ``*.dist-info`` (``METADATA``, ``entry_points.txt``) plus the plugin API
  requirement from the source's ``pyproject.toml`` (:func:`from_dist_info`), when a bundle is
  built;
- a signed bundle's manifest, whose ``requirements`` carry it (:func:`from_manifest`), when a
  bundle is installed or an installed plugin is loaded;
- ``pyproject.toml`` of a source folder (:func:`from_pyproject`), for developer mode.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from workstation.plugins.api import API_VERSION, GROUPS
from workstation.plugins.errors import PluginError

__all__ = ["PluginMetadata", "from_dist_info", "from_manifest", "from_pyproject"]

_GROUP_KINDS = {group: kind for kind, group in GROUPS.items()}


@dataclass(frozen=True)
class PluginMetadata:
    """Name, version, what it contributes and what it needs."""

    name: str  # the canonical distribution name (PEP 503): "mw-progression"
    version: str
    summary: str = ""
    plugin_api: str = ""  # a PEP 440 specifier: ">=1.0,<2"
    requires_python: str = ""
    dependencies: tuple[str, ...] = ()
    #: kind ("panels", ...) → {entry point name: "module:attribute"}
    entry_points: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def requirements(self) -> dict[str, Any]:
        """What a bundle manifest's ``requirements`` carries (see :func:`from_manifest`)."""
        return {
            "plugin_api": self.plugin_api,
            "python": self.requires_python,
            "dependencies": list(self.dependencies),
            "entry_points": {k: dict(v) for k, v in sorted(self.entry_points.items())},
            "summary": self.summary,
        }

    def api_problem(self, api_version: str = API_VERSION) -> str | None:
        """Why the plugin API this plugin asks for excludes ``api_version`` (or ``None``)."""
        if not self.plugin_api:
            return (
                f"{self.name} does not say which plugin API it needs; add "
                '[tool.medical-workstation] plugin-api = ">=1.0,<2" to its pyproject.toml'
            )
        try:
            if Version(api_version) in SpecifierSet(self.plugin_api):
                return None
        except (InvalidSpecifier, InvalidVersion):
            return f"{self.name}: plugin-api {self.plugin_api!r} is not a version specifier"
        return (
            f"{self.name} {self.version} needs plugin API {self.plugin_api}; this workstation "
            f"provides {api_version}: install a version of the plugin made for it (or a "
            "workstation that provides that API)"
        )

    def incompatibility(self, api_version: str = API_VERSION) -> str | None:
        """Why this plugin cannot run here (API, Python), or ``None`` when it can."""
        problem = self.api_problem(api_version)
        if problem:
            return problem
        here = ".".join(map(str, sys.version_info[:3]))
        try:
            if self.requires_python and Version(here) not in SpecifierSet(self.requires_python):
                return f"{self.name} needs Python {self.requires_python}; this is Python {here}"
        except InvalidSpecifier:
            return f"{self.name}: requires-python {self.requires_python!r} is not a specifier"
        return None

    def missing_dependencies(self) -> list[str]:
        """Requirements not met by this environment (plugins never install packages)."""
        missing = []
        for text in self.dependencies:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                installed = importlib.metadata.version(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(f"{text} (not installed)")
                continue
            if requirement.specifier and not requirement.specifier.contains(
                installed, prereleases=True
            ):
                missing.append(f"{text} (installed: {installed})")
        return missing

    def contributions(self) -> list[tuple[str, str, str]]:
        """``(kind, name, target)`` for every entry point, sorted."""
        return sorted(
            (kind, name, target)
            for kind, names in self.entry_points.items()
            for name, target in names.items()
        )


def _entry_points(groups: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Keep the workstation's groups, keyed by kind; check each target's form."""
    found: dict[str, dict[str, str]] = {}
    for group, names in groups.items():
        kind = _GROUP_KINDS.get(group)
        if kind is None:
            continue
        for name, target in names.items():
            module, _, attribute = str(target).partition(":")
            if not module or not attribute or " " in target:
                raise PluginError(
                    f"entry point {group} {name} = {target!r} must be 'package.module:Object'"
                )
            found.setdefault(kind, {})[str(name)] = str(target)
    return found


def _checked(meta: PluginMetadata) -> PluginMetadata:
    if not meta.entry_points:
        raise PluginError(
            f"{meta.name} contributes nothing: declare entry points in one of the groups "
            + ", ".join(GROUPS.values()),
            plugin=meta.name,
        )
    for text in meta.dependencies:
        try:
            Requirement(text)
        except InvalidRequirement as error:
            raise PluginError(f"{meta.name}: dependency {text!r}: {error}") from None
    return meta


def _api_from_pyproject(doc: Mapping[str, Any]) -> str:
    tool = doc.get("tool", {}).get("medical-workstation", {})
    return str(tool.get("plugin-api", "")).strip()


def read_pyproject(folder: Path) -> dict[str, Any]:
    """``folder/pyproject.toml`` parsed, or a :class:`PluginError` saying what is wrong."""
    path = Path(folder) / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PluginError(f"{folder} has no pyproject.toml: is it a plugin's folder?") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PluginError(f"cannot read {path}: {error}", path=path) from None


def from_pyproject(folder: Path) -> PluginMetadata:
    """The metadata of a plugin's source folder (developer mode; nothing is imported)."""
    doc = read_pyproject(folder)
    project = doc.get("project", {})
    name = project.get("name")
    if not name or "version" not in project:
        raise PluginError(f"{folder}/pyproject.toml needs [project] name and a static version")
    return _checked(
        PluginMetadata(
            name=canonicalize_name(name),
            version=str(project["version"]),
            summary=str(project.get("description", "")),
            plugin_api=_api_from_pyproject(doc),
            requires_python=str(project.get("requires-python", "")),
            dependencies=tuple(project.get("dependencies", ())),
            entry_points=_entry_points(project.get("entry-points", {})),
        )
    )


def from_dist_info(dist_info: Path, plugin_api: str) -> PluginMetadata:
    """The metadata of an unpacked wheel's ``*.dist-info`` folder."""
    dist = importlib.metadata.PathDistribution(Path(dist_info))
    meta = dist.metadata
    groups: dict[str, dict[str, str]] = {}
    for ep in dist.entry_points:
        groups.setdefault(ep.group, {})[ep.name] = ep.value
    return _checked(
        PluginMetadata(
            name=canonicalize_name(meta["Name"]),
            version=str(meta["Version"]),
            summary=str(meta.get("Summary") or ""),
            plugin_api=plugin_api,
            requires_python=str(meta.get("Requires-Python") or ""),
            dependencies=tuple(dist.requires or ()),
            entry_points=_entry_points(groups),
        )
    )


def from_manifest(name: str, version: str, requirements: Mapping[str, Any]) -> PluginMetadata:
    """The metadata a verified plugin bundle's manifest carries."""
    points = requirements.get("entry_points", {})
    if not isinstance(points, Mapping):
        raise PluginError(f"{name}: the manifest's entry_points are not a mapping")
    groups = {GROUPS[k]: v for k, v in points.items() if k in GROUPS}
    return _checked(
        PluginMetadata(
            name=name,
            version=version,
            summary=str(requirements.get("summary", "")),
            plugin_api=str(requirements.get("plugin_api", "")),
            requires_python=str(requirements.get("python", "")),
            dependencies=tuple(str(d) for d in requirements.get("dependencies", ())),
            entry_points=_entry_points(groups),
        )
    )
