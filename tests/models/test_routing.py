"""Analyses routed through the model lifecycle (shadow, canary, refused bundles) with real signed
classifier bundles, a throwaway trust root, the demo lesion series and a real audit trail."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from demo_lesion import LESION_SERIES
from security.bundle_kit import NOW, Publisher

from workstation.inference.catalogue import shipped_models_dir
from workstation.models import routing as routing_module
from workstation.models.lifecycle import ModelLifecycle, UnverifiedModel
from workstation.models.routing import analyze_routed, manages
from workstation.security.bundle import write_bundle
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import TrustRoots
from workstation.workflow.analyze import AnalysisRequest

NAME = "demo-lesion-cls"
REQUEST = AnalysisRequest(model=NAME, explain=None, device="cpu")


@dataclass
class Kit:
    roots: TrustRoots
    bundles: dict[str, Path]


def _bundle(tmp: Path, version: str, key: HybridSigningKey) -> Path:
    folder = tmp / f"src-{version}"
    shutil.copytree(shipped_models_dir() / NAME, folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    out = tmp / f"{NAME}-{version}.mwb"
    write_bundle(folder, out, kind="model", name=NAME, version=version, signing_keys=[key])
    return out


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    tmp = tmp_path_factory.mktemp("bundles")
    publisher = Publisher.make()
    key = publisher.key("model")
    bundles = {v: _bundle(tmp, v, key) for v in ("0.1.0", "0.2.0")}
    return Kit(publisher.roots(NOW), bundles)


@pytest.fixture(scope="module")
def volume() -> Any:
    from workstation.dicom import load_series, scan

    (series,) = scan(LESION_SERIES).series
    return load_series(LESION_SERIES, series.uid)


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
def reports() -> list[tuple[str, str, str, dict[str, Any]]]:
    return []


@pytest.fixture
def life(tmp_path: Path, kit: Kit, store: Any, reports: list[Any]) -> ModelLifecycle:
    def report(name: str, version: str, event: str, details: dict[str, Any]) -> None:
        reports.append((name, version, event, details))

    return ModelLifecycle(tmp_path / "models", trust=kit.roots, audit=store, report=report)


def _with_active_and(life: ModelLifecycle, kit: Kit) -> None:
    life.install(kit.bundles["0.1.0"], activate=True)
    life.install(kit.bundles["0.2.0"])
    life.promote(NAME, "0.2.0", "shadow")


def test_an_unmanaged_model_runs_the_shipped_one(life: ModelLifecycle, volume: Any) -> None:
    assert not manages(life, NAME)
    routed = analyze_routed(volume, REQUEST, life)
    assert (routed.role, routed.shadow, routed.canary_decision) == ("shipped", None, None)
    assert routed.shown_version == routed.analysis.model["version"] == "0.1.0"
    assert routed.summary()["role"] == "shipped"


def test_the_shadow_runs_hidden_and_its_agreement_is_audited(
    life: ModelLifecycle, kit: Kit, volume: Any, store: Any, reports: list[Any]
) -> None:
    _with_active_and(life, kit)
    assert manages(life, NAME)
    routed = analyze_routed(volume, REQUEST, life, trust=kit.roots)
    assert (routed.role, routed.shown_version) == ("active", "0.1.0")
    assert routed.analysis.model["version"] == "0.1.0"
    assert routed.shadow is not None
    assert (routed.shadow.version, routed.shadow.agree, routed.shadow.error) == (
        "0.2.0",
        True,
        None,
    )
    (event,) = [e for e in store.audit.export() if e["action"] == "model.shadow"]
    assert event["object_id"] == f"{NAME}@0.2.0"
    assert event["details"]["agree"] is True
    assert [r[2] for r in reports] == ["shadow.agreement"]
    assert routed.summary() == {
        "role": "active",
        "version": "0.1.0",
        "shadow_agree": True,
        "canary_decision": None,
    }


def test_a_canary_is_shown_and_observed(
    life: ModelLifecycle, kit: Kit, volume: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_active_and(life, kit)
    life.promote(NAME, "0.2.0", "canary", canary_share=1.0)
    observed: list[dict[str, Any]] = []
    real = life.observe_canary

    def spy(name: str, **kwargs: Any) -> Any:
        observed.append(kwargs)
        return real(name, **kwargs)

    monkeypatch.setattr(life, "observe_canary", spy)
    routed = analyze_routed(volume, REQUEST, life, trust=kit.roots)
    assert (routed.role, routed.shown_version, routed.canary_decision) == (
        "canary",
        "0.2.0",
        "continue",
    )
    assert routed.analysis.model["version"] == "0.2.0" and routed.shadow is None
    (seen,) = observed
    assert seen["agree"] is True and seen["error"] is False
    assert seen["latency_s"] > 0 and seen["active_latency_s"] > 0
    assert life.in_stage(NAME, "canary") is not None  # still the canary


def test_a_canary_bundle_changed_on_disk_processes_nothing(
    life: ModelLifecycle, kit: Kit, volume: Any, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_active_and(life, kit)
    life.promote(NAME, "0.2.0", "canary", canary_share=1.0)
    bundle = life.folder / f"{NAME}-0.2.0.mwb"
    raw = bytearray(bundle.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    bundle.write_bytes(bytes(raw))
    calls: list[Any] = []
    monkeypatch.setattr(routing_module, "analyze", lambda *a, **k: calls.append(a))
    with pytest.raises(UnverifiedModel):
        analyze_routed(volume, REQUEST, life, trust=kit.roots)
    assert calls == []
    assert "model.refuse" in [e["action"] for e in store.audit.export()]
