"""The model lifecycle with real signed bundles, a throwaway trust root and a real audit trail."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from security.bundle_kit import NOW, Publisher

from workstation.core.errors import WorkstationError
from workstation.inference.catalogue import shipped_models_dir
from workstation.models.lifecycle import (
    LifecycleError,
    ModelLifecycle,
    PromotionBlocked,
    UnverifiedModel,
)
from workstation.security.bundle import write_bundle
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import TrustRoots

NAME = "demo-lesion-seg"
VERSIONS = ("0.1.0", "0.2.0", "0.3.0")


@dataclass
class Kit:
    roots: TrustRoots
    bundles: dict[str, Path]
    untrusted: Path


def _bundle(tmp: Path, version: str, key: HybridSigningKey, out: Path) -> Path:
    folder = tmp / f"src-{version}-{key.key_id[:6]}"
    shutil.copytree(shipped_models_dir() / NAME, folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    write_bundle(folder, out, kind="model", name=NAME, version=version, signing_keys=[key])
    return out


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    tmp = tmp_path_factory.mktemp("bundles")
    publisher = Publisher.make()
    model_key = publisher.key("model")
    bundles = {v: _bundle(tmp, v, model_key, tmp / f"{NAME}-{v}.mwb") for v in VERSIONS}
    untrusted = _bundle(tmp, "0.4.0", HybridSigningKey.generate(), tmp / "untrusted.mwb")
    return Kit(publisher.roots(NOW), bundles, untrusted)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from workstation.security.aead import DataKeyRing
    from workstation.store import ResultStore, create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    opened = ResultStore(
        engine, DataKeyRing.generate(), actor="tester", signer=HybridSigningKey.generate()
    )
    yield opened
    opened.close()


@pytest.fixture
def life(tmp_path: Path, kit: Kit, store: Any) -> ModelLifecycle:
    return ModelLifecycle(tmp_path / "models", trust=kit.roots, audit=store)


def _actions(store: Any) -> list[tuple[str, str]]:
    return [(e["action"], e["object_id"]) for e in store.audit.export()]


def _with_active(life: ModelLifecycle, kit: Kit, *newer: str) -> None:
    life.install(kit.bundles["0.1.0"], activate=True)
    for version in newer:
        life.install(kit.bundles[version])


def test_install_verifies_and_keeps_a_copy(life: ModelLifecycle, kit: Kit) -> None:
    installed = life.install(kit.bundles["0.1.0"])
    assert (installed.stage, installed.version, installed.trusted_by) == (
        "installed",
        "0.1.0",
        "trust root",
    )
    kept = life.folder / f"{NAME}-0.1.0.mwb"
    assert kept.read_bytes() == kit.bundles["0.1.0"].read_bytes()
    assert [p.name for p in life.folder.glob("*.partial")] == []
    (row,) = life.list()
    assert row["stage"] == "installed" and row["history"] == 1 and row["gates"] is None


def test_tampered_and_untrusted_bundles_are_refused(
    life: ModelLifecycle, kit: Kit, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered.mwb"
    raw = bytearray(kit.bundles["0.2.0"].read_bytes())
    raw[len(raw) // 2] ^= 0x01  # inside the weights
    tampered.write_bytes(bytes(raw))
    with pytest.raises(WorkstationError):
        life.install(tampered)
    with pytest.raises(WorkstationError, match=r"(?i)trust|sign"):
        life.install(kit.untrusted)
    assert life.list() == []
    assert sorted(p.name for p in life.folder.iterdir() if p.suffix == ".mwb") == []
    assert not list(life.folder.glob(".install-*"))


def test_the_metadata_check_can_refuse(life: ModelLifecycle, kit: Kit) -> None:
    seen: list[tuple[str, str]] = []

    def verify_target(path: Path, name: str, version: str) -> None:
        seen.append((name, version))
        raise LifecycleError("not in the signed targets")

    with pytest.raises(LifecycleError, match="signed targets"):
        life.install(kit.bundles["0.2.0"], verify_target=verify_target)
    assert seen == [(NAME, "0.2.0")] and life.list() == []


def test_a_downgrade_or_reinstall_is_refused(life: ModelLifecycle, kit: Kit) -> None:
    life.install(kit.bundles["0.2.0"], activate=True)
    with pytest.raises(LifecycleError, match="downgrade"):
        life.install(kit.bundles["0.1.0"])
    with pytest.raises(LifecycleError, match="downgrade"):
        life.install(kit.bundles["0.2.0"])
    assert life.install(kit.bundles["0.1.0"], allow_downgrade=True).stage == "installed"
    with pytest.raises(LifecycleError, match="already installed"):
        life.install(kit.bundles["0.1.0"], allow_downgrade=True)
    with pytest.raises(LifecycleError, match="is active"):
        life.install(kit.bundles["0.3.0"], activate=True)


def test_promotion_goes_step_by_step(life: ModelLifecycle, kit: Kit, store: Any) -> None:
    _with_active(life, kit, "0.2.0")
    with pytest.raises(LifecycleError, match="step by step"):
        life.promote(NAME, "0.2.0", "canary")
    assert life.promote(NAME, "0.2.0", "shadow").stage == "shadow"
    assert life.promote(NAME, "0.2.0", "canary", canary_share=0.2).stage == "canary"
    assert life.canary_share(NAME) == 0.2
    assert life.promote(NAME, "0.2.0", "active").stage == "active"
    assert life.get(NAME, "0.1.0").stage == "retired"
    assert [s["to"] for s in life.get(NAME, "0.2.0").history] == [
        "installed",
        "shadow",
        "canary",
        "active",
    ]
    life.install(kit.bundles["0.3.0"])
    forced = life.promote(NAME, "0.3.0", "active", force=True, reason="hotfix")
    assert forced.history[-1]["forced"] is True and "forced" in forced.history[-1]["reason"]
    assert [v.stage for v in life.versions(NAME)] == ["retired", "retired", "active"]
    assert all((life.folder / v.bundle).is_file() for v in life.versions(NAME))
    actions = [a for a, _ in _actions(store)]
    assert actions.count("model.install") == 3 and actions.count("model.promote") == 2
    assert actions.count("model.activate") == 3  # at install, 0.2.0, 0.3.0
    store.audit.verify()


@dataclass
class FakeResult:
    name: str
    passed: bool


@dataclass
class FakeReport:
    results: tuple[FakeResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"gates": [{"name": r.name, "passed": r.passed} for r in self.results]}


def test_a_failed_gate_blocks_promotion(life: ModelLifecycle, kit: Kit, store: Any) -> None:
    _with_active(life, kit, "0.2.0")
    failing = FakeReport((FakeResult("accuracy", True), FakeResult("fairness", False)))
    with pytest.raises(PromotionBlocked, match="fairness") as caught:
        life.promote(NAME, "0.2.0", "shadow", gates=lambda n, v: failing)
    assert caught.value.failed == ["fairness"]
    blocked = life.get(NAME, "0.2.0")
    assert blocked.stage == "blocked" and blocked.gates_passed is False
    assert life.list()[1]["gates"] == "failed"
    with pytest.raises(LifecycleError, match="gates"):
        life.promote(NAME, "0.2.0", "shadow")
    passing = FakeReport((FakeResult("accuracy", True),))
    assert life.promote(NAME, "0.2.0", "shadow", gates=lambda n, v: passing).stage == "shadow"
    assert life.get(NAME, "0.2.0").gates_passed is True
    assert ("model.block", f"{NAME}@0.2.0") in _actions(store)


def test_the_real_gate_report_blocks_too(life: ModelLifecycle, kit: Kit) -> None:
    gates = pytest.importorskip("workstation.models.gates")
    result = gates.GateResult(name="latency", passed=False, value=3.0, threshold=1.5, detail="")
    report = gates.GateReport(results=(result,))
    _with_active(life, kit, "0.2.0")
    with pytest.raises(PromotionBlocked) as caught:
        life.promote(NAME, "0.2.0", "shadow", gates=lambda n, v: report)
    assert caught.value.failed == ["latency"]
    assert life.get(NAME, "0.2.0").gates["passed"] is False


def test_canary_and_shadow_routing(life: ModelLifecycle, kit: Kit) -> None:
    _with_active(life, kit, "0.2.0", "0.3.0")
    life.promote(NAME, "0.2.0", "shadow")
    life.promote(NAME, "0.2.0", "canary", canary_share=0.1)
    life.promote(NAME, "0.3.0", "shadow")
    keys = [f"study-{i}" for i in range(1000)]
    routes = [life.route(NAME, k) for k in keys]
    canary = [r for r in routes if r.canary]
    assert 70 <= len(canary) <= 130
    assert all(r.shown.version == "0.2.0" for r in canary)
    assert all(r.shown.version == "0.1.0" for r in routes if not r.canary)
    assert all([v.version for v in r.hidden] == ["0.3.0"] for r in routes)
    again = [life.route(NAME, k).canary for k in keys[:200]]
    assert again == [r.canary for r in routes[:200]]
    assert routes[0].path(routes[0].shown).is_file()


class TinyMonitor:
    """Rolls back after three disagreements (used only when the real monitor is missing)."""

    def __init__(self) -> None:
        self.disagreed = 0

    def record(self, agree: bool, latency_s: float, active_latency_s: float, error: bool) -> Any:
        self.disagreed += not agree
        action = "rollback" if self.disagreed >= 3 else "continue"
        return type("Decision", (), {"action": action, "reason": "disagreement"})()


def _monitor(name: str, version: str) -> Any:
    try:
        from workstation.models.gates import CanaryMonitor
    except ImportError:
        return TinyMonitor()
    return CanaryMonitor(
        window=10, max_disagreement=0.3, max_latency_ratio=2.0, max_error_rate=0.5, min_samples=5
    )


def test_a_degrading_canary_rolls_back_by_itself(tmp_path: Path, kit: Kit, store: Any) -> None:
    reports: list[tuple[str, str, str, dict[str, Any]]] = []
    life = ModelLifecycle(
        tmp_path / "models", trust=kit.roots, audit=store, report=lambda *a: reports.append(a)
    )
    _with_active(life, kit, "0.2.0")
    life.promote(NAME, "0.2.0", "shadow")
    life.promote(NAME, "0.2.0", "canary")
    observe = {"latency_s": 1.0, "active_latency_s": 1.0, "monitor_factory": _monitor}
    decision = life.observe_canary(NAME, agree=True, error=False, **observe)
    assert decision.action == "continue"
    for _ in range(10):
        decision = life.observe_canary(NAME, agree=False, error=False, **observe)
        if decision.action == "rollback":
            break
    assert decision.action == "rollback"
    assert life.get(NAME, "0.2.0").stage == "rolled-back"
    assert life.in_stage(NAME, "active").version == "0.1.0"
    assert life.in_stage(NAME, "canary") is None
    assert life.last_rollback_s is not None and life.last_rollback_s < 1.0
    assert life.get(NAME, "0.2.0").history[-1]["took_ms"] < 1000
    ((name, version, event, details),) = reports
    assert (name, version, event) == (NAME, "0.2.0", "canary.rollback")
    assert "canary degraded" in details["reason"]
    (event,) = [e for e in store.audit.export() if e["action"] == "model.rollback"]
    assert event["actor"] == "canary-monitor" and event["details"]["took_us"] < 1_000_000
    with pytest.raises(LifecycleError, match="no canary"):
        life.observe_canary(NAME, agree=True, error=False, **observe)


def test_rolling_back_the_active_restores_the_previous(life: ModelLifecycle, kit: Kit) -> None:
    _with_active(life, kit, "0.2.0")
    with pytest.raises(LifecycleError, match="no earlier version"):
        life.rollback(NAME, reason="test")
    life.activate(NAME, "0.2.0", reason="test")
    rolled = life.rollback(NAME, reason="bad results")
    assert (rolled.version, rolled.stage) == ("0.2.0", "rolled-back")
    assert life.in_stage(NAME, "active").version == "0.1.0"
    assert life.last_rollback_s is not None and life.last_rollback_s < 1.0
    assert life.route(NAME, "any").shown.version == "0.1.0"


def test_the_state_survives_a_restart_and_corruption_is_an_error(
    life: ModelLifecycle, kit: Kit
) -> None:
    _with_active(life, kit, "0.2.0")
    life.promote(NAME, "0.2.0", "shadow")
    again = ModelLifecycle(life.folder, trust=kit.roots)
    assert again.list() == life.list()
    assert again.in_stage(NAME, "shadow").version == "0.2.0"
    state = life.folder / "lifecycle.json"
    state.write_text(state.read_text()[:-40])
    with pytest.raises(LifecycleError, match="corrupt"):
        ModelLifecycle(life.folder, trust=kit.roots)
    with pytest.raises(LifecycleError, match="corrupt"):
        life.list()
    state.write_text(json.dumps({"schema": 99, "models": {}}))
    with pytest.raises(LifecycleError, match="schema"):
        life.list()


def test_a_bundle_changed_on_disk_processes_no_study(
    life: ModelLifecycle, kit: Kit, store: Any
) -> None:
    _with_active(life, kit, "0.2.0")
    life.promote(NAME, "0.2.0", "shadow")
    assert life.route(NAME, "study-1").hidden[0].version == "0.2.0"
    with (life.folder / f"{NAME}-0.2.0.mwb").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(UnverifiedModel, match="no longer matches"):
        life.route(NAME, "study-1")
    assert ("model.refuse", f"{NAME}@0.2.0") in _actions(store)
    (life.folder / f"{NAME}-0.1.0.mwb").unlink()
    with pytest.raises(UnverifiedModel):
        life.route(NAME, "study-2")
