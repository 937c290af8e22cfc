"""Issue 9's end state: two workstations of site a and one of site b enrol against a running
registry; their results flow sealed and exactly once; site a's results open for either of its
workstations and for nobody at site b, who can neither read nor list them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from registry_kit import enrol_workstation, login

from sync.conftest import Registry
from sync.sync_kit import SECRET_IDENTIFIERS, Clock, Keys, new_result
from workstation.core.errors import WorkstationError
from workstation.security.aead import DataKeyRing
from workstation.security.seal import RecipientKey
from workstation.security.sign import HybridSigningKey
from workstation.store import ResultStore, create_engine
from workstation.sync.client import RegistryClient
from workstation.sync.engine import sync_once
from workstation.sync.payload import open_payload


@dataclass
class Station:
    name: str
    site: str
    keys: Keys
    store: ResultStore
    client: RegistryClient
    site_id: str
    spool: Path


@pytest.fixture
def stations(registry: Registry, tmp_path: Path) -> Iterator[dict[str, Station]]:
    out: dict[str, Station] = {}
    for name, site in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        keys = Keys(DataKeyRing.generate(), HybridSigningKey.generate(), RecipientKey.generate())
        store = ResultStore(
            create_engine(f"sqlite:///{tmp_path / f'{name}.db'}"),
            keys.ring,
            actor=name,
            signer=keys.signing,
            clock=Clock(),
        )
        client = RegistryClient(registry.url, signing_key=keys.signing)
        enrolment = client.enrol(
            _fresh_token(registry, site), name, keys.signing.public_key, keys.recipient.public_key()
        )
        out[name] = Station(
            name, site, keys, store, client, enrolment.site_id, tmp_path / f"spool-{name}"
        )
    yield out
    for station in out.values():
        station.client.close()
        station.store.close()


def _sync(station: Station) -> object:
    return sync_once(
        station.store,
        station.client,
        site_id=station.site_id,
        keys=station.keys,
        spool=station.spool,
        rng=lambda: 0.5,
    )


def test_results_flow_sealed_exactly_once_and_stay_in_their_site(
    registry: Registry, stations: dict[str, Station]
) -> None:
    saved: dict[str, list[str]] = {}
    for offset, (name, station) in enumerate(stations.items()):
        saved[name] = [
            station.store.save_result(new_result(10 * offset + i), sync=True) for i in range(3)
        ]
    for station in stations.values():
        report = _sync(station)
        assert (report.sent, report.failed, report.error) == (3, 0, None)
        assert _sync(station).delivered == 0  # nothing left, nothing sent twice
    rows = registry.rows()
    keys = sorted(key for _ws, key, _sha in rows)
    assert keys == sorted(f"result:{rid}" for ids in saved.values() for rid in ids)

    with httpx.Client(base_url=registry.url, timeout=30) as http:
        clinician_a, clinician_b = login(http, "clinician-a"), login(http, "clinician-b")
        listed_a = http.get("/results", headers=clinician_a).json()["items"]
        listed_b = http.get("/results", headers=clinician_b).json()["items"]
        assert len(listed_a) == 6 and len(listed_b) == 3
        assert http.get("/results", headers=clinician_b, params={"site_id": stations["a1"].site_id}
                        ).status_code == 403  # fmt: skip
        a_ids = {item["id"] for item in listed_a}
        for item in listed_a:
            assert http.get(f"/results/{item['id']}", headers=clinician_b).status_code == 403
            assert http.get(f"/results/{item['id']}/blob", headers=clinician_b).status_code == 403
        # a workstation of site b cannot fetch site a's ciphertext either
        other = Keys(DataKeyRing.generate(), HybridSigningKey.generate(), RecipientKey.generate())
        _ws, b_headers = enrol_workstation(http, _fresh_token(registry, "b"), other, "b-extra")
        some_a = next(iter(a_ids))
        assert http.get(f"/results/{some_a}/blob", headers=b_headers).status_code == 403
        blobs = {i: http.get(f"/results/{i}/blob", headers=clinician_a).content for i in a_ids}

    # site a's results are sealed to both of its workstations, not to site b's
    a_result_ids = set(saved["a1"]) | set(saved["a2"])
    for blob in blobs.values():
        assert all(secret.encode() not in blob for secret in SECRET_IDENTIFIERS)
        for reader in ("a1", "a2"):
            document = open_payload(blob, stations[reader].keys.recipient).document
            assert document["result_id"] in a_result_ids
        with pytest.raises(WorkstationError, match="not sealed to key"):
            open_payload(blob, stations["b1"].keys.recipient)


def _fresh_token(registry: Registry, site: str) -> str:
    from workstation.registry.bootstrap import issue_enrolment_token
    from workstation.registry.db import Database

    db = Database(registry.db_url())
    try:
        with db.sessions.begin() as session:
            return issue_enrolment_token(session, registry.seeded.sites[site])
    finally:
        db.dispose()
