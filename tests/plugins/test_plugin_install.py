"""Installing, verifying and loading plugins: only verified code ever runs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from plugin_kit import build, trust_of, write_plugin
from security.bundle_kit import Publisher

from workstation.plugins import PluginError, PluginRegistry
from workstation.plugins.installed import install_bundle, remove_plugin, user_root
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import LocalTrust, add_allowed_key, utcnow


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _discover(home: Path, publisher: Publisher) -> PluginRegistry:
    return PluginRegistry.discover(home=home, trust=trust_of(publisher), system=False)


def _unique(tmp_path: Path) -> str:
    return "mw-test-" + tmp_path.name.replace("_", "-").lower()[-24:].strip("-")


def test_install_verify_and_run_a_pipeline(tmp_path, home, publisher):
    source = write_plugin(tmp_path, _unique(tmp_path))
    bundle = build(source, tmp_path, publisher.key("plugin"))
    installed = install_bundle(bundle, root=user_root(home), trust=trust_of(publisher))
    assert installed.trusted_by == "trust root"
    assert not source.marker.exists(), "installing must not import the plugin"

    registry = _discover(home, publisher)
    record = registry.get(installed.metadata.name)
    assert record.state == "ready" and record.metadata is not None
    assert [c.kind for c in record.contributions()] == ["pipelines"]
    assert not source.marker.exists(), "discovery must not import the plugin"

    pipeline = registry.load(registry.find("pipelines", f"{record.name}/main"))
    assert source.marker.exists()
    out = tmp_path / "out"
    out.mkdir()
    assert pipeline.run([tmp_path], out, {"x": "21"})["value"] == 42.0
    assert (out / "double.txt").read_text() == "42.0"
    assert registry.get(record.name).state == "loaded"


def test_a_tampered_bundle_is_refused_before_any_code_runs(tmp_path, home, publisher):
    source = write_plugin(tmp_path, _unique(tmp_path))
    bundle = build(source, tmp_path, publisher.key("plugin"))
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as archive:
        info = archive.getinfo(f"payload/{source.package}/__init__.py")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 5
    data[offset] ^= 0x01
    tampered = tmp_path / "tampered.mwp"
    tampered.write_bytes(bytes(data))
    with pytest.raises(PluginError, match="refused"):
        install_bundle(tampered, root=user_root(home), trust=trust_of(publisher))
    assert not (user_root(home) / source.folder.name).exists()
    assert [p.name for p in user_root(home).iterdir()] == []  # no staging left behind
    assert not source.marker.exists()


@pytest.mark.parametrize("change", ["edit", "extra module", "pth file", "planted bytecode"])
def test_an_installed_plugin_changed_on_disk_is_refused_before_import(
    tmp_path, home, publisher, change
):
    source = write_plugin(tmp_path, _unique(tmp_path))
    plugin = install_bundle(
        build(source, tmp_path, publisher.key("plugin")),
        root=user_root(home),
        trust=trust_of(publisher),
    )
    package = plugin.site / source.package
    evil = f"from pathlib import Path\nPath({str(source.marker)!r}).write_text('evil')\n"
    if change == "edit":
        (package / "__init__.py").write_text(evil)
    elif change == "extra module":
        (package / "extra.py").write_text(evil)
    elif change == "pth file":
        (plugin.site / "zz.pth").write_text("import os\n")
    else:  # a .pyc standing in for the checked source is deleted, then the source verifies
        cache = package / "__pycache__"
        cache.mkdir()
        (cache / "__init__.cpython-311.pyc").write_bytes(b"not python")
    registry = _discover(home, publisher)
    record = registry.get(plugin.metadata.name)
    if change == "planted bytecode":
        assert record.state == "ready"
        assert not (package / "__pycache__").exists()
        return
    assert record.state == "refused"
    assert "changed after installation" in record.error
    with pytest.raises(PluginError):
        registry.load(registry.find("pipelines", "main"))
    assert not source.marker.exists(), "a refused plugin's code must never run"


def test_an_unknown_publisher_is_refused_and_an_allowed_one_accepted(tmp_path, home, publisher):
    stranger = HybridSigningKey.generate()
    source = write_plugin(tmp_path, _unique(tmp_path))
    bundle = build(source, tmp_path, stranger)
    with pytest.raises(PluginError, match="not trusted for the plugin role"):
        install_bundle(bundle, root=user_root(home), trust=trust_of(publisher))

    add_allowed_key(stranger.public_key, ["plugin"], home=home, note="the neuro lab")
    trust = trust_of(publisher).with_local(LocalTrust.load(home))
    plugin = install_bundle(bundle, root=user_root(home), trust=trust)
    assert plugin.trusted_by == "allow-list"
    registry = PluginRegistry.discover(home=home, trust=trust, system=False)
    assert registry.get(plugin.metadata.name).trusted_by == "allow-list"
    assert not source.marker.exists()


def test_a_plugin_for_another_api_is_refused_with_both_versions(tmp_path, home, publisher):
    source = write_plugin(tmp_path, _unique(tmp_path), api=">=2.0,<3")
    with pytest.raises(PluginError, match=r"needs plugin API >=2.0,<3; this workstation provides"):
        build(source, tmp_path, publisher.key("plugin"))


def test_missing_dependencies_are_refused(tmp_path, home, publisher):
    source = write_plugin(tmp_path, _unique(tmp_path), dependencies=("no-such-package-xyz>=1",))
    bundle = build(source, tmp_path, publisher.key("plugin"))
    with pytest.raises(PluginError, match="no-such-package-xyz>=1 \\(not installed\\)"):
        install_bundle(bundle, root=user_root(home), trust=trust_of(publisher))


def test_upgrade_downgrade_and_remove(tmp_path, home, publisher):
    name = _unique(tmp_path)
    trust, root = trust_of(publisher), user_root(home)
    old = build(write_plugin(tmp_path, name, version="0.1.0"), tmp_path, publisher.key("plugin"))
    new = build(write_plugin(tmp_path, name, version="0.2.0"), tmp_path, publisher.key("plugin"))
    install_bundle(old, root=root, trust=trust)
    assert install_bundle(new, root=root, trust=trust).metadata.version == "0.2.0"
    with pytest.raises(PluginError, match="rollback refused"):
        install_bundle(old, root=root, trust=trust)
    assert _discover(home, publisher).get(name).version == "0.2.0"
    assert install_bundle(old, root=root, trust=trust, allow_downgrade=True).metadata.version == (
        "0.1.0"
    )
    assert remove_plugin(name, root=root)["version"] == "0.1.0"
    assert _discover(home, publisher).records == []


def test_a_plugin_that_would_shadow_a_module_is_refused(tmp_path, home, publisher):
    source = write_plugin(tmp_path, "mw-test-shadow", package="json")
    bundle = build(source, tmp_path, publisher.key("plugin"))
    with pytest.raises(PluginError, match="provides json"):
        install_bundle(bundle, root=user_root(home), trust=trust_of(publisher))


def test_an_expired_plugin_is_refused_at_load(tmp_path, home, publisher):
    import datetime as dt

    source = write_plugin(tmp_path, _unique(tmp_path))
    plugin = install_bundle(
        build(source, tmp_path, publisher.key("plugin")),
        root=user_root(home),
        trust=trust_of(publisher),
    )
    later = utcnow() + dt.timedelta(days=400)
    trust = trust_of(publisher)
    registry = PluginRegistry.discover(home=home, trust=trust, now=later, system=False)
    record = registry.get(plugin.metadata.name)
    assert record.state == "refused" and "expired" in record.error
