"""Throwaway plugins for tests: write a plugin's source, build and sign its bundle.

Each plugin's top-level module writes a marker file when imported, so a test can prove that
a refused plugin's code never ran.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from security.bundle_kit import Publisher

from workstation.plugins.build import build_plugin_bundle
from workstation.security.trust import TrustRoots

PIPELINE = """
class Doubler:
    title = "Doubler"
    description = "writes twice the number it is given"

    def run(self, inputs, out, parameters, *, progress=None, cancel=None):
        value = 2 * float(parameters.get("x", "1"))
        (out / "double.txt").write_text(str(value))
        return {"value": value, "inputs": [str(p) for p in inputs]}
"""


@dataclass
class PluginSource:
    folder: Path
    package: str
    marker: Path

    @property
    def module(self) -> Path:
        return self.folder / "src" / self.package / "__init__.py"


def write_plugin(
    root: Path,
    name: str = "mw-test-doubler",
    *,
    api: str = ">=1.0,<2",
    version: str = "0.1.0",
    dependencies: tuple[str, ...] = ("numpy",),
    body: str = PIPELINE,
    target: str = "Doubler",
    kind_group: str = "medical_workstation.pipelines",
    package: str | None = None,
) -> PluginSource:
    """A plugin source folder whose package writes ``marker`` when imported."""
    package = package or name.replace("-", "_")
    folder = root / f"{name}-{version}"
    marker = root / f"{package}-{version}.imported"
    (folder / "src" / package).mkdir(parents=True)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            description = "a test plugin"
            requires-python = ">=3.11"
            dependencies = [{deps}]

            [project.entry-points."{kind_group}"]
            main = "{package}:{target}"

            [tool.setuptools.packages.find]
            where = ["src"]

            [tool.medical-workstation]
            plugin-api = "{api}"
            """
        )
    )
    side_effect = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    (folder / "src" / package / "__init__.py").write_text(side_effect + body)
    return PluginSource(folder, package, marker)


def build(source: PluginSource, out_dir: Path, key: object) -> Path:
    """Build and sign ``source``'s plugin bundle with ``key``."""
    out = out_dir / f"{source.folder.name}.mwp"
    build_plugin_bundle(source.folder, out, signing_keys=[key])
    return out


def trust_of(publisher: Publisher) -> TrustRoots:
    return TrustRoots.from_bytes(publisher.root_bytes())
