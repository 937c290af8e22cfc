"""Developer mode: unsigned plugins from source folders, for the researcher writing them.

Off unless turned on (``workstation plugins dev on``); the folders it loads are listed in
``<home>/plugins/developer.json``. Plugins loaded this way are marked "unsigned (developer
mode)" everywhere, and the main window says DEVELOPER MODE in its title while any is loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from workstation.config import paths
from workstation.plugins.errors import PluginError
from workstation.plugins.metadata import from_pyproject

__all__ = ["UNSIGNED", "DeveloperMode"]

UNSIGNED = "unsigned (developer mode)"
_FILE = "developer.json"


@dataclass
class DeveloperMode:
    """Whether developer mode is on and which source folders it loads."""

    enabled: bool = False
    folders: list[str] = field(default_factory=list)
    home: Path | None = None

    @classmethod
    def load(cls, home: Path | None = None) -> DeveloperMode:
        home = home or paths().home
        try:
            doc = json.loads((home / "plugins" / _FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(home=home)
        except (OSError, ValueError) as error:
            raise PluginError(f"cannot read the developer-mode settings: {error}") from None
        return cls(bool(doc.get("enabled")), [str(f) for f in doc.get("folders", [])], home)

    def save(self) -> None:
        folder = (self.home or paths().home) / "plugins"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_FILE}.{os.getpid()}"
        doc = {"enabled": self.enabled, "folders": self.folders}
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, folder / _FILE)

    def add(self, folder: str | Path) -> str:
        """Add a plugin's source folder (checked: a pyproject with plugin entry points)."""
        path = Path(folder).resolve()
        meta = from_pyproject(path)
        if str(path) not in self.folders:
            self.folders.append(str(path))
        return meta.name

    def remove(self, folder: str | Path) -> None:
        path = str(Path(folder).resolve())
        if path not in self.folders:
            raise PluginError(f"{folder} is not a developer-mode folder")
        self.folders.remove(path)


def import_path(folder: Path) -> Path:
    """Where a source folder's packages are importable from (``src/`` layout or flat)."""
    return folder / "src" if (folder / "src").is_dir() else folder
