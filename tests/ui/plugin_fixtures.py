"""Shared by the plugin host and manager tests: signed bundles of real and broken plugins."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from security.bundle_kit import Publisher

from workstation.plugins import PluginRegistry
from workstation.plugins.build import build_plugin_bundle
from workstation.plugins.installed import install_bundle, user_root
from workstation.security.trust import TrustRoots

REPO = Path(__file__).resolve().parents[2]
MEASURE = REPO / "plugins" / "measure_example"
MEASURE_NAME = "mw-measure-example"
ROI_KEY = f"{MEASURE_NAME}/roi"
BROKEN_NAME = "mw-test-broken-panel"
BROKEN_KEY = f"{BROKEN_NAME}/broken"
BROKEN_BODY = """
class BrokenPanel:
    title = "Broken panel"

    def create(self, context):
        raise RuntimeError("the broken panel always fails")
"""


@dataclass
class Bundles:
    publisher: Publisher
    measure: Path
    broken: Path
    stranger: Path  # the measure plugin signed by a publisher nobody trusts

    def trust(self) -> TrustRoots:
        return TrustRoots.from_bytes(self.publisher.root_bytes())  # real time: not NOW (2030)


def write_broken_plugin(root: Path) -> Path:
    """A plugin whose panel's ``create`` raises."""
    folder = root / BROKEN_NAME
    package = folder / "src" / "mw_test_broken_panel"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(BROKEN_BODY)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{BROKEN_NAME}"
            version = "0.1.0"
            requires-python = ">=3.11"
            dependencies = []

            [project.entry-points."medical_workstation.panels"]
            broken = "mw_test_broken_panel:BrokenPanel"

            [tool.setuptools.packages.find]
            where = ["src"]

            [tool.medical-workstation]
            plugin-api = ">=1.0,<2"
            """
        )
    )
    return folder


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    """Signed bundles, built once (a build takes seconds)."""
    out = tmp_path_factory.mktemp("bundles")
    publisher, stranger = Publisher.make(), Publisher.make()
    measure, broken, untrusted = out / "measure.mwp", out / "broken.mwp", out / "untrusted.mwp"
    build_plugin_bundle(MEASURE, measure, signing_keys=[publisher.key("plugin")])
    build_plugin_bundle(write_broken_plugin(out), broken, signing_keys=[publisher.key("plugin")])
    build_plugin_bundle(MEASURE, untrusted, signing_keys=[stranger.key("plugin")])
    return Bundles(publisher, measure, broken, untrusted)


_PLUGIN_MODULES = ("mw_measure_example", "mw_test_broken_panel")


@pytest.fixture(autouse=True)
def _clean_imports() -> Iterator[None]:
    """Each test imports its plugins from its own home only, as in a real environment: the
    example plugin's own tests (same pytest run) put its source folder on sys.path and import
    it, which an install would rightly refuse as a clash; hide both for the test's duration."""
    before = list(sys.path)
    hidden = {n: m for n, m in sys.modules.items() if n.startswith(_PLUGIN_MODULES)}
    for name in hidden:
        del sys.modules[name]
    sys.path[:] = [p for p in before if not p.startswith(str(REPO / "plugins"))]
    yield
    sys.path[:] = before
    for name in [n for n in sys.modules if n.startswith(_PLUGIN_MODULES)]:
        del sys.modules[name]
    sys.modules.update(hidden)


def install(bundles: Bundles, *paths: Path) -> None:
    for path in paths:
        install_bundle(path, root=user_root(), trust=bundles.trust(), actor="test")


@pytest.fixture
def make_window(qtbot: Any, bundles: Bundles) -> Callable[..., Any]:
    """Factory: a shown main window (1×3, no 3D) whose plugins are verified with the
    test publisher's root, after its plugins were discovered."""
    from workstation.ui.main_window import MainWindow

    def make() -> Any:
        def discover() -> PluginRegistry:
            return PluginRegistry.discover(trust=bundles.trust(), system=False)

        window = MainWindow(layout="1x3", plugin_registry_factory=discover)
        window.plugins.trust_factory = bundles.trust
        qtbot.addWidget(window)
        window.resize(1200, 600)
        window.show()
        qtbot.waitExposed(window)
        qtbot.waitUntil(lambda: window.plugins.discovered > 0, timeout=5000)
        return window

    return make
