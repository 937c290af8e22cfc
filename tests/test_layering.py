"""The import structure: layers hold (import-linter) and start-up stays light."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("PySide6", "shiboken6", "torch", "pyvista", "pyvistaqt", "vtk", "vtkmodules", "SimpleITK")


def _lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(found).is_file():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return found


def _run_lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_contracts_hold() -> None:
    result = _run_lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _copy_package(tmp_path: Path) -> dict[str, str]:
    """A scratch copy of the package and its contracts; the environment that lints it."""
    shutil.copytree(
        REPO / "workstation", tmp_path / "workstation", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def _add_import(tmp_path: Path, module: str, source: str) -> None:
    path = tmp_path / module
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    path.write_text(existing + "\n" + source)


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("workstation/core/_bad.py", "import workstation.dicom\n", "Layers"),
        ("workstation/config.py", "import workstation.dicom\n", "Layers"),
        ("workstation/dicom/_bad.py", "from workstation import cli_format\n", "Layers"),
        ("workstation/workflow/__init__.py", "import workstation.cli\n", "Layers"),
        ("workstation/dicom/_bad.py", "from PySide6 import QtCore\n", "Only workstation.ui"),
        ("workstation/_bad.py", "import pyvistaqt\n", "Only workstation.ui"),
    ],
)
def test_contracts_catch_violations(
    tmp_path: Path, module: str, source: str, contract: str
) -> None:
    """The contracts are not vacuous: a copy of the package with one bad import breaks them."""
    env = _copy_package(tmp_path)
    _add_import(tmp_path, module, source)
    result = _run_lint(tmp_path, env)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_ui_may_import_qt(tmp_path: Path) -> None:
    """Once workstation.ui exists, its own imports of PySide6 / pyvistaqt are allowed."""
    env = _copy_package(tmp_path)
    _add_import(tmp_path, "workstation/ui/__init__.py", "import PySide6\n")
    _add_import(tmp_path, "workstation/ui/viewers/__init__.py", "")
    _add_import(
        tmp_path,
        "workstation/ui/viewers/slice.py",
        "import pyvistaqt\nfrom PySide6 import QtWidgets\n",
    )
    result = _run_lint(tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_startup_imports_stay_light() -> None:
    """Importing the engine and the CLI pulls in no GUI, deep learning or ITK package."""
    code = (
        "import sys, json\n"
        "import workstation, workstation.core, workstation.config, workstation.dicom\n"
        "import workstation.cli, workstation.cli_format\n"
        f"heavy = {set(HEAVY)!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_help_stays_light() -> None:
    """``workstation --help`` imports nothing heavy either (it runs the parser only)."""
    code = (
        "import sys, json\n"
        "from workstation.cli import main\n"
        "code = main(['--help'])\n"
        f"heavy = {set(HEAVY)!r}\n"
        "sys.stderr.write(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr) == []
