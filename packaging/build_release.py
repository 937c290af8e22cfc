"""Build a signed, offline-installable Medical Workstation release.

Run from the repository root (passphrases from ``$WORKSTATION_PASSPHRASE``)::

    python packaging/build_release.py --out DIR --key RELEASE_KEY_1 --key RELEASE_KEY_2 \\
        [--plugin-key PLUGIN_KEY] [--trust-root FILE] [--version V] [--expires-days N] \\
        [--wheelhouse CACHE]

Writes into DIR:

- ``medical-workstation-<V>.release.mwb``: one signed bundle (kind ``release``, stored), holding
  ``wheels/`` (the app's wheel and its whole binary dependency closure, pinned to the versions
  of the running environment, torch==2.13.0 CPU), ``requirements.lock`` (``--hash=sha256:`` for
  every wheel), ``plugins/*.mwp`` (each first-party plugin, a signed plugin bundle),
  ``sbom.cdx.json`` (CycloneDX), ``trust/root.json`` and ``release.json``;
- ``medws-install.pyz``: the installer, which embeds the trust root (IT checks it by SHA-256);
- ``SHA256SUMS``.

See "Releases: build, verify, install offline (IT)" in ``packaging/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import _release_wheelhouse as wh  # noqa: E402
from _release_installer import build_installer  # noqa: E402
from _release_sbom import SBOM_NAME, write_sbom  # noqa: E402

from workstation.security.bundle import write_bundle  # noqa: E402
from workstation.security.sign import HybridSigningKey  # noqa: E402
from workstation.security.trust import TrustRoots, format_time  # noqa: E402

APP_NAME = "medical-workstation"
RELEASE_EXTRAS = ("cohort",)  # optional dependency groups every release includes
ROOT_IN_TREE = Path("resources/trust/root.json")
INSTALLER = "medws-install.pyz"
SUMS = "SHA256SUMS"


def bundle_name(version: str) -> str:
    return f"{APP_NAME}-{version}.release.mwb"


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- the source tree ---------------------------------------------------------------------------


def source_files(repo: Path = REPO) -> list[str]:
    """The files git tracks here (a release is built from what is committed), minus deleted
    ones."""
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached"],
        capture_output=True,
        check=True,
    ).stdout
    names = sorted({n for n in out.decode().split("\0") if n})
    return [n for n in names if (repo / n).is_file() and not (repo / n).is_symlink()]


def stage_source(dest: Path, *, trust_root: bytes | None, version: str | None) -> Path:
    """Copy the source tree into ``dest``; put ``trust_root`` in place of the shipped root;
    with ``version``, set the app's version (pyproject and ``workstation.__version__``)."""
    for name in source_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    if trust_root is not None:
        (dest / ROOT_IN_TREE).parent.mkdir(parents=True, exist_ok=True)
        (dest / ROOT_IN_TREE).write_bytes(trust_root)
    if version is not None:
        _set_version(dest, version)
    return dest


def _set_version(tree: Path, version: str) -> None:
    pyproject = tree / "pyproject.toml"
    text, n = re.subn(r'(?m)^version = "[^"]*"', f'version = "{version}"', pyproject.read_text(),
                      count=1)  # fmt: skip
    if n != 1:
        raise SystemExit("cannot find the [project] version in pyproject.toml")
    pyproject.write_text(text)
    init = tree / "workstation" / "__init__.py"
    text, n = re.subn(r'(?m)^__version__ = "[^"]*"', f'__version__ = "{version}"',
                      init.read_text())  # fmt: skip
    if n != 1:
        raise SystemExit("cannot find __version__ in workstation/__init__.py")
    init.write_text(text)


def project_version(tree: Path = REPO) -> str:
    import tomllib

    return tomllib.loads((tree / "pyproject.toml").read_text())["project"]["version"]


def requires_python(tree: Path = REPO) -> str:
    import tomllib

    return tomllib.loads((tree / "pyproject.toml").read_text())["project"].get(
        "requires-python", ""
    )


def build_app_wheel(tree: Path, wheel_dir: Path) -> Path:
    """``pip wheel --no-deps --no-build-isolation`` of the staged tree."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    before = set(wheel_dir.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-cache-dir", "-q", "-w", str(wheel_dir), str(tree)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building the app wheel failed:\n{done.stdout}{done.stderr}")
    new = sorted(set(wheel_dir.glob("*.whl")) - before)
    if len(new) != 1:
        raise SystemExit(f"expected one app wheel, found {new}")
    return new[0]


# -- plugins -----------------------------------------------------------------------------------


@dataclass
class BuiltPlugin:
    name: str
    version: str
    wheel: wh.Wheel
    bundle: Path
    bundle_sha256: str


def plugin_sources(tree: Path) -> list[Path]:
    return sorted(p.parent for p in (tree / "plugins").glob("*/pyproject.toml"))


def build_plugins(
    tree: Path, bundle_dir: Path, wheel_dir: Path, *, key: HybridSigningKey, expires: dt.timedelta
) -> list[BuiltPlugin]:
    """Each first-party plugin: its wheel and its signed ``.mwp`` bundle."""
    from workstation.plugins.build import build_plugin_bundle, build_plugin_wheel

    built = []
    bundle_dir.mkdir(parents=True, exist_ok=True)
    for src in plugin_sources(tree):
        wheel = wh.Wheel.of(build_plugin_wheel(src, wheel_dir))
        out = bundle_dir / f"{wheel.name}-{wheel.version}.mwp"
        manifest = build_plugin_bundle(
            src, out, signing_keys=[key], expires=expires, wheel=wheel.path
        )
        name, version = manifest.name, str(manifest.version)
        built.append(BuiltPlugin(name, version, wheel, out, wh.sha256_of(out)))
    return built


# -- release.json and the bundle ---------------------------------------------------------------


def release_info(
    *,
    version: str,
    app: wh.Wheel,
    wheels: Sequence[wh.Wheel],
    plugins: Sequence[BuiltPlugin],
    sbom_components: int,
    created: dt.datetime,
    requires: str,
) -> dict[str, Any]:
    """What ``release.json`` says (the installer checks ``python``/``platform``)."""
    tags = sorted({w.path.name.rsplit("-", 1)[-1].removesuffix(".whl") for w in wheels})
    return {
        "name": APP_NAME,
        "version": version,
        "app_version": app.version,
        "created": format_time(created),
        "python": {
            "requires": requires,
            "version": f"{sys.version_info.major}.{sys.version_info.minor}",
            "implementation": sys.implementation.name,
            "built_with": sys.version.split()[0],
        },
        "platform": sysconfig.get_platform(),
        "platform_tags": tags,
        "counts": {
            "wheels": len(wheels),
            "plugins": len(plugins),
            "sbom_components": sbom_components,
        },
        "sizes": {
            "wheels": sum(w.size for w in wheels),
            "plugins": sum(p.bundle.stat().st_size for p in plugins),
        },
        "app": {"wheel": app.path.name, "sha256": app.sha256},
        "plugins": [
            {
                "name": p.name,
                "version": p.version,
                "bundle": p.bundle.name,
                "sha256": p.bundle_sha256,
            }
            for p in plugins
        ],
    }


def seal(
    payload: Path,
    out_dir: Path,
    *,
    version: str,
    keys: Sequence[HybridSigningKey],
    expires: dt.timedelta | dt.datetime,
    created: dt.datetime | None = None,
) -> Path:
    """Sign ``payload`` as the release bundle in ``out_dir``."""
    out = out_dir / bundle_name(version)
    write_bundle(
        payload, out, kind="release", name=APP_NAME, version=version, signing_keys=keys,
        expires=expires, created=created, compression="stored",
    )  # fmt: skip
    return out


def write_sums(out_dir: Path, names: Sequence[str]) -> Path:
    lines = [f"{wh.sha256_of(out_dir / n)}  {n}" for n in names]
    (out_dir / SUMS).write_text("\n".join(lines) + "\n")
    return out_dir / SUMS


# -- the whole build ---------------------------------------------------------------------------


@dataclass
class Result:
    bundle: Path
    installer: Path
    installer_sha256: str
    info: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def _open_key(path: str, passphrase: str | None) -> HybridSigningKey:
    from workstation.security.keystore import KeyStore

    p = Path(path)
    folder = p.parent if p.is_file() else p
    return KeyStore.open(folder, passphrase=passphrase).signing_key()


def _check_keys(root: TrustRoots, role: str, keys: Sequence[HybridSigningKey]) -> None:
    theirs = {k.key_id for k in root.trusted_keys(role)}
    mine = {k.key_id for k in keys}
    if len(mine) != len(keys):
        raise SystemExit(f"--key: the same {role} key is given twice")
    usable = mine & theirs
    need = root.roles[role].threshold
    if len(usable) < need:
        raise SystemExit(
            f"the {role} role of the trust root (version {root.version}) needs {need} of its "
            f"keys; only {len(usable)} of the given key(s) are among them"
        )


def build(
    out_dir: Path,
    *,
    release_keys: Sequence[HybridSigningKey],
    plugin_key: HybridSigningKey | None,
    trust_root: Path | None = None,
    version: str | None = None,
    expires_days: int = 365,
    wheelhouse: Path | None = None,
) -> Result:
    """Build the release (see the module docstring)."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 2)
        return now

    root_bytes = (trust_root or REPO / ROOT_IN_TREE).read_bytes()
    roots = TrustRoots.from_bytes(root_bytes)
    _check_keys(roots, "release", release_keys)
    if plugin_key is not None:
        _check_keys(roots, "plugin", [plugin_key])
    out_dir.mkdir(parents=True, exist_ok=True)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires = dt.timedelta(days=expires_days)
    with tempfile.TemporaryDirectory(prefix=".medws-release-", dir=out_dir) as work_name:
        work = Path(work_name)
        payload = work / "payload"
        wheels_dir = payload / "wheels"
        tree = stage_source(
            work / "src", trust_root=root_bytes if trust_root else None, version=version
        )
        version = version or project_version(tree)
        t = lap("stage", t0)
        app = wh.Wheel.of(build_app_wheel(tree, work / "app-wheel"))
        t = lap("app wheel", t)
        plugins: list[BuiltPlugin] = []
        if plugin_key is not None:
            plugins = build_plugins(
                tree, payload / "plugins", work / "plugin-wheels", key=plugin_key, expires=expires
            )
        elif plugin_sources(tree):
            _say("warning: no --plugin-key: the release carries no plugins")
        t = lap("plugins", t)
        exclude = [APP_NAME, *(p.wheel.name for p in plugins)]
        # The app with the optional features a workstation ships with (cohorts on Dask).
        with_extras = f"{app.path}[{','.join(RELEASE_EXTRAS)}]"
        requirements = [with_extras, *(p.wheel.path for p in plugins)]
        wh.download(
            requirements,
            wheels_dir,
            constraints=wh.installed_constraints(exclude),
            cache=wheelhouse,
            log=work / "pip-download.log",
        )
        for p in plugins:  # they ship inside their signed bundles
            (wheels_dir / p.wheel.path.name).unlink(missing_ok=True)
        wheels = wh.wheels_in(wheels_dir)
        app = next(w for w in wheels if w.name == app.name)
        t = lap("wheelhouse", t)
        wh.write_lock(wheels, payload / wh.LOCK_NAME)
        pins = wh.bootstrap_pins(wheels)
        count = write_sbom(
            payload / SBOM_NAME,
            app=app,
            wheels=wheels,
            plugins=[(p.wheel, p.bundle, p.bundle_sha256) for p in plugins],
            created=created,
        )
        (payload / "trust").mkdir()
        (payload / "trust" / "root.json").write_bytes(root_bytes)
        info = release_info(
            version=version, app=app, wheels=wheels, plugins=plugins, sbom_components=count,
            created=created, requires=requires_python(tree),
        )  # fmt: skip
        (payload / "release.json").write_text(json.dumps(info, indent=2) + "\n")
        t = lap("lock, sbom", t)
        bundle = seal(
            payload, out_dir, version=version, keys=release_keys, expires=expires, created=created
        )
        t = lap("sign", t)
    installer = build_installer(
        out_dir / INSTALLER, root=root_bytes, pins=pins, release={"version": version}
    )
    write_sums(out_dir, [bundle.name, installer.name])
    lap("installer", t)
    timings["total"] = round(time.perf_counter() - t0, 2)
    return Result(bundle, installer, wh.sha256_of(installer), info, timings)


def print_table(result: Result) -> None:
    info = result.info
    rows = [
        ("release bundle", result.bundle.name, f"{result.bundle.stat().st_size / 1e6:.1f} MB"),
        ("installer", result.installer.name, f"{result.installer.stat().st_size / 1e3:.0f} kB"),
        ("wheels", str(info["counts"]["wheels"]), f"{info['sizes']['wheels'] / 1e6:.1f} MB"),
        ("plugins", str(info["counts"]["plugins"]), f"{info['sizes']['plugins'] / 1e3:.0f} kB"),
        ("SBOM components", str(info["counts"]["sbom_components"]), ""),
    ]
    rows += [(f"time: {k}", "", f"{v:.1f} s") for k, v in result.timings.items()]
    width = max(len(r[0]) for r in rows)
    mid = max(len(r[1]) for r in rows)
    for a, b, c in rows:
        _say(f"{a:<{width}}  {b:<{mid}}  {c:>10}")
    _say()
    _say(f"{info['name']} {info['version']} -> {result.bundle.parent}")
    _say(f"installer sha256: {result.installer_sha256}  {result.installer.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", metavar="DIR", type=Path, required=True)
    parser.add_argument(
        "--key", metavar="KEYSTORE", action="append", required=True,
        help="a release key store (keystore.json or its folder); give the threshold (2)",
    )  # fmt: skip
    parser.add_argument("--plugin-key", metavar="KEYSTORE", help="signs the plugin bundles")
    parser.add_argument(
        "--trust-root", metavar="FILE", type=Path,
        help="the root the release's app and installer trust (default: resources/trust/root.json)",
    )  # fmt: skip
    parser.add_argument("--version", metavar="V", help="the release's (and app's) version")
    parser.add_argument("--expires-days", metavar="N", type=int, default=365)
    parser.add_argument(
        "--wheelhouse", metavar="DIR", type=Path,
        help="a wheel cache: used first, filled with what had to be downloaded",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.expires_days < 1:
        parser.error("--expires-days must be positive")
    passphrase = os.environ.get("WORKSTATION_PASSPHRASE")
    release_keys = [_open_key(k, passphrase) for k in args.key]
    plugin_key = _open_key(args.plugin_key, passphrase) if args.plugin_key else None
    result = build(
        args.out,
        release_keys=release_keys,
        plugin_key=plugin_key,
        trust_root=args.trust_root,
        version=args.version,
        expires_days=args.expires_days,
        wheelhouse=args.wheelhouse,
    )
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
