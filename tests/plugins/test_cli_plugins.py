"""``workstation plugins`` end to end, in fresh processes, as a researcher uses it.

The first-party example plugin is built from ``plugins/measure_example`` and installed like a
third party's (signed with this workstation's own key); the processes import it only from its
verified install folder. Every change lands in the audit trail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "demo"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WORKSTATION_")}
    environ |= {
        "WORKSTATION_HOME": str(tmp_path / "home"),
        "WORKSTATION_PASSPHRASE": "a long test passphrase",
        "PYTHONPATH": str(REPO),  # the checkout, never a plugin's source
        "QT_QPA_PLATFORM": "offscreen",
    }
    _ok(environ, "keys", "init", "--kek", "passphrase")
    return environ


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workstation", *args],
        env=env,
        cwd=env["WORKSTATION_HOME"].rsplit("/", 1)[0],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _ok(env: dict[str, str], *args: str) -> str:
    done = _run(env, *args)
    assert done.returncode == 0, f"{args}: {done.stderr}\n{done.stdout}"
    return done.stdout


def _audit_actions(env: dict[str, str]) -> list[tuple[str, str]]:
    events = json.loads(_ok(env, "audit", "export", "--since", "2000-01-01", "--json"))
    rows = events["events"] if isinstance(events, dict) else events
    return [(e["action"], e["object_id"]) for e in rows if e["object_type"] == "plugin"]


def test_new_build_install_list_remove(tmp_path: Path, env: dict[str, str]) -> None:
    _ok(env, "plugins", "new", "my-plugin", "--dir", str(tmp_path))
    folder = tmp_path / "my-plugin"
    assert (folder / "pyproject.toml").is_file()
    _ok(env, "plugins", "build", str(folder))
    bundle = next((folder / "dist").glob("*.mwp"))
    assert not list(folder.glob("build")), "building leaves the source tree clean"
    assert "installed my-plugin 0.1.0 (local key)" in _ok(env, "plugins", "install", str(bundle))
    listed = json.loads(_ok(env, "plugins", "list", "--json"))
    (record,) = listed["plugins"]
    assert (record["name"], record["state"], record["trusted_by"]) == (
        "my-plugin",
        "ready",
        "local key",
    )
    assert [c["kind"] for c in record["contributions"]] == ["panels"]
    _ok(env, "plugins", "remove", "my-plugin")
    assert json.loads(_ok(env, "plugins", "list", "--json"))["plugins"] == []
    assert _audit_actions(env) == [("plugin.install", "my-plugin"), ("plugin.remove", "my-plugin")]
    _ok(env, "audit", "verify")


def test_a_refused_install_is_audited_and_explained(tmp_path: Path, env: dict[str, str]) -> None:
    bogus = tmp_path / "bogus.mwp"
    bogus.write_bytes(b"PK\x05\x06" + bytes(18))
    done = _run(env, "plugins", "install", str(bogus))
    assert done.returncode == 1 and "refused" in done.stderr
    assert _audit_actions(env) == [("plugin.refuse", "bogus.mwp")]


def test_developer_mode_is_marked(tmp_path: Path, env: dict[str, str]) -> None:
    _ok(env, "plugins", "new", "dev-thing", "--dir", str(tmp_path))
    _ok(env, "plugins", "dev", "add", str(tmp_path / "dev-thing"))
    assert json.loads(_ok(env, "plugins", "list", "--json"))["plugins"] == []
    assert "developer mode ON" in _ok(env, "plugins", "dev", "on")
    listed = json.loads(_ok(env, "plugins", "list", "--json"))
    assert listed["developer_mode"] is True
    assert listed["plugins"][0]["trusted_by"] == "unsigned (developer mode)"


@pytest.mark.slow
def test_the_example_plugin_exports_and_explains(tmp_path: Path, env: dict[str, str]) -> None:
    bundle = tmp_path / "measure.mwp"
    _ok(env, "plugins", "build", str(REPO / "plugins" / "measure_example"), "--out", str(bundle))
    _ok(env, "plugins", "install", str(bundle))

    hist = tmp_path / "demo.hist.csv"
    _ok(env, "export", str(DEMO / "brain_mr"), "--out", str(hist))
    lines = hist.read_text().splitlines()
    assert lines[0] == "bin_low,bin_high,count" and len(lines) == 65
    assert sum(int(line.split(",")[2]) for line in lines[1:]) == 197 * 233 * 189

    out = tmp_path / "analysis"
    summary = json.loads(
        _ok(
            env,
            *("analyze", str(DEMO / "brain_mr_lesion"), "--model", "demo-lesion-seg"),
            *("--explain", "plugin:mw-measure-example/gradient_x_input"),
            *("--no-store", "--out", str(out), "--json"),
        )
    )
    explanation = summary["explanation"]
    assert explanation["method"] == "plugin:mw-measure-example/gradient_x_input"
    assert explanation["faithfulness"]["deletion_auc"] is not None
    assert (out / "explanation-plugin-mw-measure-example-gradient_x_input.nii.gz").is_file()


@pytest.mark.slow
def test_the_progression_plugin_installed_recovers_the_demo_atrophy(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bundle = tmp_path / "progression.mwp"
    _ok(env, "plugins", "build", str(REPO / "plugins" / "progression"), "--out", str(bundle))
    _ok(env, "plugins", "install", str(bundle))
    out = tmp_path / "progression"
    inputs = [
        DEMO / "brain_mr_lesion",
        DEMO / "followups" / "month12",
        DEMO / "followups" / "month24",
    ]
    args = [a for path in inputs for a in ("--input", str(path))]
    summary = json.loads(
        _ok(env, "plugins", "run", "mw-progression/progression", *args, "--out", str(out), "--json")
    )
    truth = json.loads((DEMO / "followups" / "truth.json").read_text())
    true_rate = truth["nominal"]["parenchymal_atrophy_percent_per_year"]
    measured = summary["rates"]["parenchyma"]["rate_percent_per_year"]
    assert abs(measured - true_rate) <= 0.3  # the plugin README's stated tolerance
    assert {"progression.json", "change_map.nii.gz", "trend.png"} <= {p.name for p in out.iterdir()}
    assert "not for clinical use" in summary["disclaimer"]


def test_an_administrator_allows_a_publisher(tmp_path: Path, env: dict[str, str]) -> None:
    from workstation.security.sign import HybridSigningKey

    public = HybridSigningKey.generate().public_key
    key_file = tmp_path / "lab.json"
    key_file.write_text(json.dumps(public.to_json()))
    said = _ok(env, "plugins", "trust", str(key_file), "--note", "neuro lab", "--expires", "30")
    assert f"plugins signed by {public.key_id} are now allowed" in said
    allowed = json.loads(
        (Path(env["WORKSTATION_HOME"]) / "trust" / "allowed_keys.json").read_text()
    )
    assert [k["public"]["key_id"] for k in allowed["keys"]] == [public.key_id]
    assert _audit_actions(env) == [("plugin.trust_key", public.key_id)]
