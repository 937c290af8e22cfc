"""Build ``medws-install.pyz``: the installer package, the verifying modules of
``workstation.security`` (their import closure within ``workstation``, found by reading the
source), the release's trust root and the SHA-256 pins of the cryptography wheels.

The archive is reproducible: sorted entries, fixed timestamps, so the same inputs give the same
SHA-256 (the number IT publishes and checks).
"""

from __future__ import annotations

import ast
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALLER_SRC = REPO / "packaging" / "installer"
ENTRY_MODULES = ("workstation.security.bundle",)
# Imported by ``workstation.core.__init__`` but not needed to verify (numpy): the pyz carries a
# stub package instead.
CORE_STUB = '"""Only what the installer needs of workstation.core (see medws-install.pyz)."""\n'
STUBS = {"workstation/core/__init__.py": CORE_STUB}
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _module_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _top_level_imports(path: Path, module: str) -> set[str]:
    """``workstation.*`` modules imported at module level (not inside functions, not under
    ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("workstation")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("workstation"):
                continue
            found.add(base)
            for alias in node.names:  # ``from pkg import submodule``
                if _module_file(f"{base}.{alias.name}") is not None:
                    found.add(f"{base}.{alias.name}")
    return found


def import_closure(entries: Iterable[str] = ENTRY_MODULES) -> dict[str, Path]:
    """``{archive path: source file}`` for the modules ``entries`` import, with their parent
    packages' ``__init__`` files."""
    todo = list(entries)
    files: dict[str, Path] = {}
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        for i in range(1, len(parts)):  # parent packages
            todo.append(".".join(parts[:i]))
        path = _module_file(module)
        if path is None:
            raise FileNotFoundError(f"cannot find the module {module} under {REPO}")
        arc = path.relative_to(REPO).as_posix()
        files[arc] = path
        if arc in STUBS:
            continue  # the stub imports nothing
        todo.extend(_top_level_imports(path, module))
    return dict(sorted(files.items()))


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def build_installer(
    out: Path, *, root: bytes, pins: dict[str, str], release: dict | None = None
) -> Path:
    """Write the zipapp ``out`` (``#!/usr/bin/env python3``)."""
    entries: dict[str, bytes] = {}
    for path in sorted(INSTALLER_SRC.rglob("*.py")):
        if "__pycache__" not in path.parts:
            entries[path.relative_to(INSTALLER_SRC).as_posix()] = path.read_bytes()
    for arc, path in import_closure().items():
        entries[arc] = STUBS[arc].encode() if arc in STUBS else path.read_bytes()
    entries["medws_install/data/root.json"] = root
    meta = {"wheels": dict(sorted(pins.items())), "release": release or {}}
    entries["medws_install/data/pins.json"] = (json.dumps(meta, indent=2) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with tmp.open("wb") as f:
        f.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(f, "w") as zf:
            for name in sorted(entries):
                _add(zf, name, entries[name])
    tmp.chmod(0o755)
    tmp.replace(out)
    return out
