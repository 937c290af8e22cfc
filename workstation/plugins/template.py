"""``workstation plugins new NAME``: a working plugin to start from.

The files under ``template/`` end in ``.tmpl`` (never imported or collected); ``__package__``
in a path becomes the package name, and ``{{dist_name}}``, ``{{package}}`` and ``{{title}}``
in the text are replaced.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.utils import canonicalize_name

from workstation.plugins.errors import PluginError

__all__ = ["TEMPLATE", "new_plugin"]

TEMPLATE = Path(__file__).resolve().parent / "template"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,63}$")


def new_plugin(name: str, dest: str | Path = ".") -> Path:
    """Write a new plugin called ``name`` into ``dest/<name>/``; return that folder."""
    if not _NAME.match(name):
        raise PluginError(
            f"{name!r}: a plugin name starts with a letter and has letters, digits, '-', '_'"
        )
    dist = canonicalize_name(name)
    package = dist.replace("-", "_")
    title = re.sub(r"[-_]+", " ", name).strip().capitalize()
    target = Path(dest) / dist
    if target.exists():
        raise PluginError(f"{target} already exists; choose another name or folder", path=target)
    sources = sorted(TEMPLATE.rglob("*.tmpl"))
    if not sources:
        raise PluginError(f"the plugin template is missing ({TEMPLATE})")
    for source in sources:
        rel = source.relative_to(TEMPLATE).as_posix().replace("__package__", package)
        out = target / rel.removesuffix(".tmpl")
        out.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        for key, value in (("dist_name", dist), ("package", package), ("title", title)):
            text = text.replace("{{" + key + "}}", value)
        out.write_text(text, encoding="utf-8")
    return target
