"""End to end: build a real release (full wheelhouse, first-party plugins) with
``packaging/build_release.py`` and install it with its ``medws-install.pyz`` into a fresh prefix
with no network at all (``unshare -rn``), then run the installed workstation.

The wheel cache is ``$MEDWS_WHEELHOUSE`` when set (filled on the first run), else a session
temporary folder. Prints the release size, build time, verify time and install time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_installer, wheel_cache
from security.bundle_kit import Publisher

from workstation.security.keystore import Argon2Params, KeyStore

SECRET = "correct horse battery"
FAST = Argon2Params(memory_kib=64, iterations=1, lanes=1)


def _offline_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _offline_works(), reason="needs `unshare -rn` (user + net namespaces)")
def test_build_and_install_a_real_release_offline(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    keys = {n: KeyStore.create(tmp_path / "keys" / n, passphrase=SECRET, kdf=FAST)
            for n in ("release-1", "release-2", "plugin")}  # fmt: skip
    pub = Publisher.make()
    pub.keys["release"][:2] = [keys["release-1"].signing_key(), keys["release-2"].signing_key()]
    pub.keys["plugin"] = [keys["plugin"].signing_key()]
    root = pub.write_root(tmp_path / "root.json")
    cache = wheel_cache() or tmp_path_factory.getbasetemp() / "wheelhouse"
    out = tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["WORKSTATION_PASSPHRASE"] = SECRET

    started = time.perf_counter()
    ks = tmp_path / "keys"
    build = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "build_release.py"), "--out", str(out),
         "--key", str(ks / "release-1"), "--key", str(ks / "release-2"),
         "--plugin-key", str(ks / "plugin"), "--trust-root", str(root),
         "--wheelhouse", str(cache)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200,
    )  # fmt: skip
    build_s = time.perf_counter() - started
    assert build.returncode == 0, build.stdout + build.stderr
    print(build.stdout)
    (bundle,) = out.glob("medical-workstation-*.release.mwb")
    pyz = out / "medws-install.pyz"
    sums = dict(
        reversed(line.split("  ")) for line in (out / "SHA256SUMS").read_text().splitlines()
    )
    for name in (bundle.name, pyz.name):
        assert sums[name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert f"installer sha256: {sums[pyz.name]}" in build.stdout

    started = time.perf_counter()
    verified = run_installer(pyz, "verify", bundle, "--json")
    verify_s = time.perf_counter() - started
    assert verified.returncode == 0, verified.stderr
    info = json.loads(verified.stdout)
    first_party = sorted(p.parent.name for p in (REPO / "plugins").glob("*/pyproject.toml"))
    plugins = info["release"]["plugins"]
    assert len(plugins) == len(first_party) >= 1
    assert info["sbom_components"] == info["release"]["counts"]["wheels"] + len(plugins)

    prefix = tmp_path / "opt" / "medws"
    home = tmp_path / "home"
    started = time.perf_counter()
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, str(pyz), "install", str(bundle), "--prefix",
         str(prefix)],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    install_s = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    receipt = json.loads((prefix / "medws-release.json").read_text())
    assert receipt["version"] == info["version"]
    assert not list(prefix.glob(".staging-*"))

    def installed(*args: str) -> str:
        run_env = {**env, "WORKSTATION_HOME": str(home)}
        run_env.pop("WORKSTATION_PASSPHRASE")
        result = subprocess.run(
            ["unshare", "-rn", str(prefix / "venv" / "bin" / "workstation"), *args],
            capture_output=True, text=True, env=run_env, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert info["release"]["app_version"] in installed("--version")
    listing = json.loads(installed("plugins", "list", "--json"))
    listed = listing["plugins"] if isinstance(listing, dict) else listing
    by_name = {p["name"]: p for p in listed}
    for plugin in plugins:
        record = by_name[plugin["name"]]
        assert record["state"] in ("ready", "loaded"), record
        assert record["trusted_by"] == "trust root"
    demo = prefix / "venv" / "share" / "medical-workstation" / "resources" / "demo" / "brain_mr"
    catalog = json.loads(installed("scan", str(demo), "--json"))
    assert catalog["counts"]["series"] >= 1 and catalog["counts"]["problems"] == 0

    size = bundle.stat().st_size
    print(
        f"\nrelease: {size / 1e6:.1f} MB ({info['release']['counts']['wheels']} wheels, "
        f"{len(plugins)} plugins); build {build_s:.1f} s; verify {verify_s:.1f} s; "
        f"offline install {install_s:.1f} s"
    )
