"""Where the workstation keeps its state: one home directory for everything.

The home is the platform's user data directory (``platformdirs``) unless the ``WORKSTATION_HOME``
environment variable names another, so a user, a test or an administrator can point the whole
application somewhere else. Sub-folders are created on first use, never at import.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from workstation.core.errors import ConfigError

HOME_ENV = "WORKSTATION_HOME"
APP_NAME = "medical-workstation"


@dataclass(frozen=True)
class Paths:
    """The directory layout under the workstation home."""

    home: Path

    @property
    def cache(self) -> Path:
        """Re-creatable data (DICOMweb cache, thumbnails)."""
        return self.home / "cache"

    @property
    def logs(self) -> Path:
        """Structured logs (no PHI)."""
        return self.home / "logs"

    @property
    def models(self) -> Path:
        """Installed model bundles."""
        return self.home / "models"

    @property
    def plugins(self) -> Path:
        """Installed plugin bundles."""
        return self.home / "plugins"

    @property
    def keys(self) -> Path:
        """Wrapped private keys."""
        return self.home / "keys"

    def ensure(self, folder: Path) -> Path:
        """Create ``folder`` (under the home) with private permissions and return it."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder


def home_dir(environ: dict[str, str] | None = None) -> Path:
    """The workstation home: ``$WORKSTATION_HOME`` or the platform's user data directory."""
    env = os.environ if environ is None else environ
    override = env.get(HOME_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{HOME_ENV} points at a file, not a folder: {path}", path=path)
        return path.resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def paths(environ: dict[str, str] | None = None) -> Paths:
    """The directory layout for the current environment."""
    return Paths(home_dir(environ))


RESOURCES_ENV = "WORKSTATION_RESOURCES"


def resources_dir() -> Path:
    """The workstation's read-only resources: trust root, demo studies, models, tables.

    ``$WORKSTATION_RESOURCES`` when set; else ``resources/`` beside the package (a source
    checkout or editable install); else ``<sys.prefix>/share/medical-workstation/resources``,
    where the wheel installs them (``[tool.setuptools.data-files]`` in ``pyproject.toml``).
    """
    override = os.environ.get(RESOURCES_ENV)
    if override:
        return Path(override)
    beside = Path(__file__).resolve().parent.parent / "resources"
    if (beside / "trust" / "root.json").is_file():
        return beside
    return Path(sys.prefix) / "share" / APP_NAME / "resources"


def demo_study_path() -> Path:
    """The bundled demo study (a brain MR series built by ``resources/demo/build_demo_study.py``).

    Raises
    ------
    ConfigError
        When the resources are not installed beside the package (install from the repository).
    """
    path = resources_dir() / "demo" / "brain_mr"
    if not path.is_dir():
        raise ConfigError(
            f"the demo study is missing ({path}); install the workstation from its repository "
            "(pip install -e .) or pass a folder to open",
            path=path,
        )
    return path
