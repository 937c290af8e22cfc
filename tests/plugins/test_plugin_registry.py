"""Broken plugins are isolated; developer mode is explicit and marked; metadata is static."""

from __future__ import annotations

import pytest
from plugin_kit import build, trust_of, write_plugin
from security.bundle_kit import Publisher

from workstation.plugins import PluginError, PluginRegistry
from workstation.plugins.developer import UNSIGNED, DeveloperMode
from workstation.plugins.installed import install_bundle, user_root
from workstation.plugins.metadata import from_pyproject


def test_a_broken_plugin_is_isolated_and_the_others_run(tmp_path, publisher):
    home, trust = tmp_path / "home", trust_of(publisher)
    good = write_plugin(tmp_path, "mw-test-good")
    bad = write_plugin(tmp_path, "mw-test-bad", body="raise RuntimeError('boom at import')\n")
    wrong = write_plugin(tmp_path, "mw-test-wrong", body="class Doubler:\n    pass\n")
    for source in (good, bad, wrong):
        install_bundle(
            build(source, tmp_path, publisher.key("plugin")), root=user_root(home), trust=trust
        )
    registry = PluginRegistry.discover(home=home, trust=trust, system=False)
    assert {r.name: r.state for r in registry} == {
        "mw-test-bad": "ready",
        "mw-test-good": "ready",
        "mw-test-wrong": "ready",
    }
    with pytest.raises(PluginError, match="boom at import"):
        registry.load(registry.find("pipelines", "mw-test-bad/main"))
    with pytest.raises(PluginError, match="is not a Pipeline"):
        registry.load(registry.find("pipelines", "mw-test-wrong/main"))
    assert registry.get("mw-test-bad").state == "failed"
    assert "RuntimeError: boom at import" in registry.get("mw-test-bad").error
    # the failed ones contribute nothing more; the good one still runs
    assert [c.key for c in registry.contributions("pipelines")] == ["mw-test-good/main"]
    pipeline = registry.load(registry.find("pipelines", "main"))
    out = tmp_path / "out"
    out.mkdir()
    assert pipeline.run([], out, {"x": "2"})["value"] == 4.0


def test_developer_mode_is_off_until_turned_on_and_marks_its_plugins(tmp_path, publisher):
    home = tmp_path / "home"
    source = write_plugin(tmp_path, "mw-test-dev")
    mode = DeveloperMode.load(home)
    assert mode.add(source.folder) == "mw-test-dev"
    mode.save()
    registry = PluginRegistry.discover(home=home, trust=trust_of(publisher), system=False)
    assert registry.records == [] and not registry.unsigned_loaded

    mode.enabled = True
    mode.save()
    registry = PluginRegistry.discover(home=home, trust=trust_of(publisher), system=False)
    record = registry.get("mw-test-dev")
    assert (record.source, record.trusted_by, record.state) == ("developer", UNSIGNED, "ready")
    assert registry.developer_mode and registry.unsigned_loaded
    pipeline = registry.load(registry.find("pipelines", "main"))
    assert source.marker.exists() and pipeline.title == "Doubler"


def test_metadata_is_read_without_importing(tmp_path):
    source = write_plugin(tmp_path, "mw-test-static")
    meta = from_pyproject(source.folder)
    assert meta.name == "mw-test-static" and meta.plugin_api == ">=1.0,<2"
    assert meta.contributions() == [("pipelines", "main", "mw_test_static:Doubler")]
    assert meta.incompatibility("1.7") is None
    assert "needs plugin API >=1.0,<2; this workstation provides 2.0" in meta.incompatibility("2.0")
    assert not source.marker.exists()


def test_a_plugin_without_contributions_or_api_is_explained(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.0.0"\n')
    with pytest.raises(PluginError, match="contributes nothing"):
        from_pyproject(folder)
    with pytest.raises(PluginError, match=r"has no pyproject\.toml"):
        from_pyproject(tmp_path)


def test_an_untrusted_root_leaves_plugins_listed_but_refused(tmp_path, publisher):
    home = tmp_path / "home"
    source = write_plugin(tmp_path, "mw-test-other-root")
    install_bundle(
        build(source, tmp_path, publisher.key("plugin")),
        root=user_root(home),
        trust=trust_of(publisher),
    )
    other = Publisher.make()
    registry = PluginRegistry.discover(home=home, trust=trust_of(other), system=False)
    record = registry.get("mw-test-other-root")
    assert record.state == "refused" and "not trusted" in record.error
    assert registry.contributions("pipelines") == []
    assert not source.marker.exists()


def test_find_explains_what_is_offered():
    registry = PluginRegistry([], developer_mode=False)
    with pytest.raises(PluginError, match="offered: none"):
        registry.find("panels", "nothing")
