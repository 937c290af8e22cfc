"""Model updates end to end: a real registry on loopback (throwaway trust root and registry key),
an enrolled site-a workstation, signed bundles and metadata, the real validation gates.

v0.1.0 is active locally; v0.2.0 is pulled, gated, and rolled out shadow → canary → active one
stage per pull; v0.3.0 (perturbed weights) fails its gates and is blocked; v0.4.0 degrades as a
canary and is rolled back automatically (< 1 s, measured); tampered metadata on the registry
installs nothing; a bundle changed on disk processes no study.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import torch
from registry_kit import RunningRegistry, login, seed, start_registry
from security.bundle_kit import DAY, Publisher
from sync.sync_kit import Keys

from workstation.inference.catalogue import shipped_models_dir
from workstation.models.lifecycle import ModelLifecycle, UnverifiedModel
from workstation.models.update import (
    ModelRegistryClient,
    PullReport,
    evaluation_gates,
    pull,
    registry_reporter,
)
from workstation.security.aead import DataKeyRing
from workstation.security.bundle import write_bundle
from workstation.security.model_metadata import ModelMetadataStore, sign_metadata, targets_signed
from workstation.security.seal import RecipientKey
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import now_or

NAME = "demo-lesion-seg"


@dataclass
class World:
    registry: RunningRegistry
    pub: Publisher
    admin: httpx.Client
    site_a: str
    client: ModelRegistryClient
    life: ModelLifecycle
    metadata: ModelMetadataStore
    bundles: dict[str, Path]
    gates: Any
    rollbacks: list[tuple[float, str]]  # (perf_counter when reported, stage persisted by then)
    targets_version: int = 0

    def publish(self, version: str) -> None:
        raw = self.bundles[version].read_bytes()
        response = self.admin.post(
            "/models",
            params={"channel": "stable", "site_id": self.site_a},
            content=raw,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text

    def sign_targets(self, versions: list[str]) -> None:
        self.targets_version += 1
        targets = {}
        for version in versions:
            raw = self.bundles[version].read_bytes()
            targets[f"{NAME}/{version}"] = {
                "sha256": hashlib.sha256(raw).hexdigest(),
                "size": len(raw),
                "channel": "stable",
                "sites": [self.site_a],
            }
        signed = targets_signed(
            targets, version=self.targets_version, expires=now_or(None) + 30 * DAY
        )
        body = sign_metadata(signed, [self.pub.key("model")])
        response = self.admin.put("/models/metadata/targets", content=body)
        assert response.status_code == 201, response.text

    def assign(self, version: str, stage: str, share: float = 0.5) -> None:
        body = {"name": NAME, "version": version, "site_id": self.site_a, "stage": stage}
        response = self.admin.put("/admin/models/assignments", json=body | {"share": share})
        assert response.status_code in (200, 201), response.text

    def pull(self) -> PullReport:
        return pull(self.client, self.metadata, self.life, site_id=self.site_a, gates=self.gates)

    def metrics(self, version: str) -> dict[str, Any]:
        response = self.admin.get("/admin/models/metrics", params={"name": NAME})
        assert response.status_code == 200, response.text
        rows = [r for r in response.json()["items"] if r["version"] == version]
        assert len(rows) == 1, response.json()
        return rows[0]

    def events(self, version: str) -> list[str]:
        engine = sa.create_engine(f"sqlite:///{self.registry.data / 'registry.db'}")
        try:
            with engine.connect() as connection:
                query = sa.text(
                    "SELECT event FROM model_reports WHERE version = :v ORDER BY time, id"
                )
                return [row[0] for row in connection.execute(query, {"v": version})]
        finally:
            engine.dispose()


def _bundle(tmp: Path, version: str, key: HybridSigningKey, *, perturb: bool = False) -> Path:
    folder = tmp / f"src-{version}"
    shutil.copytree(shipped_models_dir() / NAME, folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    if perturb:  # a "worse" model: every weight tensor gets noise of its own size
        generator = torch.Generator().manual_seed(7)
        state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
        for tensor in state.values():
            if tensor.is_floating_point() and tensor.numel() > 1:
                noise = torch.randn(tensor.shape, generator=generator) * tensor.std()
                tensor.add_(noise)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        (folder / "weights.pt").write_bytes(buffer.getvalue())
        manifest["weights"]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    out = tmp / f"{NAME}-{version}.mwb"
    write_bundle(folder, out, kind="model", name=NAME, version=version, signing_keys=[key])
    return out


def _validation() -> Any:
    import SimpleITK as sitk

    from workstation.config import demo_study_path
    from workstation.dicom import load_series
    from workstation.inference.synthetic import prepare_template
    from workstation.models.validation_set import make_validation_set

    series = demo_study_path()
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(series.parent / "brain_tissue_labels.nii.gz"))
    )
    return make_validation_set(prepare_template(load_series(series), labels), n_per_stratum=6)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from workstation.registry.asgi import ENV_REGISTRY_KEY, ENV_TRUST_ROOT
    from workstation.registry.db import Database

    tmp = tmp_path_factory.mktemp("update")
    pub = Publisher.make()
    root_file = pub.write_root(tmp / "root.json")
    key_file = tmp / "registry.key"
    key_file.write_bytes(pub.key("registry").private_bytes())
    bundles = {v: _bundle(tmp, v, pub.key("model")) for v in ("0.1.0", "0.2.0", "0.4.0", "0.5.0")}
    bundles["0.3.0"] = _bundle(tmp, "0.3.0", pub.key("model"), perturb=True)
    data = tmp / "registry-data"
    data.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_TRUST_ROOT, str(root_file))
        env.setenv(ENV_REGISTRY_KEY, str(key_file))
        registry = start_registry(data)
    try:
        db = Database(f"sqlite:///{data / 'registry.db'}")
        try:
            seeded = seed(db)
        finally:
            db.dispose()
        admin = httpx.Client(base_url=registry.url, timeout=30)
        admin.headers.update(login(admin, "admin"))
        keys = Keys(DataKeyRing.generate(), HybridSigningKey.generate(), RecipientKey.generate())
        client = ModelRegistryClient(registry.url, signing_key=keys.signing)
        enrolment = client.enrol(
            seeded.tokens["a"], "ws-a", keys.signing.public_key, keys.recipient.public_key()
        )
        assert enrolment.site_id == seeded.sites["a"]
        roots = pub.roots(now_or(None))
        rollbacks: list[tuple[float, str]] = []
        post = registry_reporter(client)

        def report(name: str, version: str, event: str, details: dict[str, Any]) -> None:
            if event == "canary.rollback":
                rollbacks.append((time.perf_counter(), life.get(name, version).stage))
            post(name, version, event, details)

        life = ModelLifecycle(tmp / "models", trust=roots, report=report)
        life.install(bundles["0.1.0"], activate=True)
        gates = evaluation_gates(life, _validation(), trust=roots, max_ratio=5.0)
        metadata = ModelMetadataStore(tmp / "metadata", roots)
        yield World(
            registry, pub, admin, seeded.sites["a"], client, life, metadata, bundles, gates,
            rollbacks,
        )  # fmt: skip
        client.close()
        admin.close()
    finally:
        registry.stop()


def test_rollout_block_rollback_and_refusals(world: World) -> None:
    w, life = world, world.life
    # v0.2.0: published, listed for site a, assigned active (via canary at 50 %)
    w.publish("0.2.0")
    w.sign_targets(["0.2.0"])
    w.assign("0.2.0", "active", share=0.5)
    first = w.pull()
    assert first.errors == [] and first.updated_metadata
    assert first.installed == [f"{NAME}/0.2.0"] and first.promoted == [f"{NAME}/0.2.0→shadow"]
    gates = life.get(NAME, "0.2.0").gates
    assert gates is not None and gates["passed"] is True
    assert w.pull().promoted == [f"{NAME}/0.2.0→canary"]
    assert life.canary_share(NAME) == 0.5
    for _ in range(20):  # healthy canary results
        decision = life.observe_canary(NAME, agree=True, latency_s=0.01, active_latency_s=0.01)
        assert decision.action == "continue"
    assert w.pull().promoted == [f"{NAME}/0.2.0→active"]
    assert life.get(NAME, "0.1.0").stage == "retired"
    assert w.pull().promoted == []  # there: nothing more to do
    assert w.events("0.2.0") == ["installed", "gates.passed", "canary.promoted"]

    # v0.3.0: perturbed weights, correctly signed: the gates block it, the registry hears it
    w.publish("0.3.0")
    w.sign_targets(["0.2.0", "0.3.0"])
    w.assign("0.3.0", "active")
    blocked = w.pull()
    assert blocked.installed == [f"{NAME}/0.3.0"] and blocked.blocked == [f"{NAME}/0.3.0"]
    assert life.get(NAME, "0.3.0").stage == "blocked" and blocked.promoted == []
    assert w.metrics("0.3.0")["last_event"] == "gates.failed"
    assert "gates.failed" in w.events("0.3.0")
    assert w.pull().blocked == []  # stays blocked; a person decides

    # v0.4.0: a canary that degrades is rolled back by the monitor, within a second
    w.publish("0.4.0")
    w.sign_targets(["0.2.0", "0.3.0", "0.4.0"])
    w.assign("0.4.0", "canary", share=0.5)
    assert w.pull().promoted == [f"{NAME}/0.4.0→shadow"]
    assert w.pull().promoted == [f"{NAME}/0.4.0→canary"]
    took = None
    for i in range(50):
        started = time.perf_counter()
        decision = life.observe_canary(
            NAME, agree=i % 2 == 0, latency_s=0.01, active_latency_s=0.01
        )
        if decision.action == "rollback":
            reported_at, stage = w.rollbacks[-1]
            took = reported_at - started
            break
    assert took is not None and stage == "rolled-back"
    assert took < 1.0, f"rollback took {took:.3f} s"
    print(f"\nfailing observation → rollback persisted: {took * 1000:.1f} ms "
          f"(lifecycle: {(life.last_rollback_s or 0) * 1000:.1f} ms)")  # fmt: skip
    assert life.get(NAME, "0.4.0").stage == "rolled-back"
    assert life.in_stage(NAME, "active").version == "0.2.0"  # type: ignore[union-attr]
    assert w.metrics("0.4.0")["rollbacks"] == 1

    # tampered metadata on the registry: refused, nothing installed, the last good set kept
    w.publish("0.5.0")
    before = w.metadata.versions(), w.metadata.trusted_targets()["targets"]
    _tamper_targets(w, "0.5.0")
    refused = w.pull()
    assert refused.installed == [] and not refused.updated_metadata
    assert any("metadata refused" in e for e in refused.errors), refused.errors
    assert (w.metadata.versions(), w.metadata.trusted_targets()["targets"]) == before
    assert "0.5.0" not in {v.version for v in life.versions(NAME)}

    # no study reaches a bundle that changed on disk since it was verified
    life.route(NAME, "study-1")
    active = life.folder / life.get(NAME, "0.2.0").bundle
    raw = bytearray(active.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    active.write_bytes(bytes(raw))
    with pytest.raises(UnverifiedModel):
        life.route(NAME, "study-1")


def _tamper_targets(w: World, version: str) -> None:
    """Add ``version`` to the stored targets' signed part, keeping the old signatures."""
    engine = sa.create_engine(f"sqlite:///{w.registry.data / 'registry.db'}")
    try:
        with engine.begin() as connection:
            query = sa.text("SELECT raw FROM model_metadata WHERE role = 'targets'")
            doc = json.loads(connection.execute(query).scalar_one())
            raw = w.bundles[version].read_bytes()
            doc["signed"]["targets"][f"{NAME}/{version}"] = {
                "sha256": hashlib.sha256(raw).hexdigest(),
                "size": len(raw),
                "channel": "stable",
                "sites": None,
            }
            tampered = json.dumps(doc, indent=2).encode() + b"\n"
            update = sa.text("UPDATE model_metadata SET raw = :raw WHERE role = 'targets'")
            connection.execute(update, {"raw": tampered})
    finally:
        engine.dispose()


def test_offline_keeps_everything(world: World, tmp_path: Path) -> None:
    """The registry unreachable: the last good metadata and installed models stay."""
    offline = ModelRegistryClient("http://127.0.0.1:9", signing_key=HybridSigningKey.generate(),
                                  workstation_id="ws")  # fmt: skip
    before = world.metadata.path.read_bytes() if world.metadata.path.exists() else None
    installed = world.life.list()
    report = pull(offline, world.metadata, world.life, site_id=world.site_a, gates=world.gates)
    assert not report.ok and "unreachable" in report.errors[0]
    assert (report.installed, report.promoted, report.blocked) == ([], [], [])
    after = world.metadata.path.read_bytes() if world.metadata.path.exists() else None
    assert after == before and world.life.list() == installed
