"""Signed model metadata: the TUF-style client workflow with real keys and real signatures."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from security.bundle_kit import DAY, NOW, Publisher

from workstation.security.model_metadata import (
    MetadataError,
    ModelMetadataStore,
    UpdateResult,
    sign_metadata,
    snapshot_signed,
    targets_signed,
    timestamp_signed,
)
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import TrustRoots

WEIGHTS = b"model weights v1" * 64


def entry(data: bytes = WEIGHTS, channel: str = "stable") -> dict:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "channel": channel,
        "sites": None,
    }


@dataclass
class Release:
    """One published set of metadata files."""

    timestamp: bytes
    snapshot: bytes
    targets: bytes


def publish(
    pub: Publisher,
    targets: dict[str, dict],
    version: int,
    *,
    ts_version: int | None = None,
    targets_expires: dt.datetime = NOW + 30 * DAY,
    snapshot_expires: dt.datetime = NOW + 7 * DAY,
    timestamp_expires: dt.datetime = NOW + DAY,
    targets_keys: list[HybridSigningKey] | None = None,
) -> Release:
    """Targets, snapshot and timestamp of ``version`` (timestamp ``ts_version``, if given)."""
    keys = pub.keys["model"] if targets_keys is None else targets_keys
    registry = pub.keys["registry"]
    t = sign_metadata(targets_signed(targets, version=version, expires=targets_expires), keys)
    s = sign_metadata(snapshot_signed(t, version=version, expires=snapshot_expires), registry)
    ts = timestamp_signed(s, version=ts_version or version, expires=timestamp_expires)
    return Release(sign_metadata(ts, registry), s, t)


def apply(store: ModelMetadataStore, release: Release, now: dt.datetime = NOW) -> UpdateResult:
    return store.update(release.timestamp, release.snapshot, release.targets, now=now)


@pytest.fixture(scope="module")
def pub() -> Publisher:
    return Publisher.make()


@pytest.fixture(scope="module")
def roots(pub: Publisher) -> TrustRoots:
    return pub.roots()


@pytest.fixture(scope="module")
def first(pub: Publisher) -> Release:
    """Version 2: demo 1.0.0 and 2.0.0 (ML-DSA signs randomly: keep the very bytes)."""
    return publish(pub, {"demo/1.0.0": entry(), "demo/2.0.0": entry(b"v2")}, 2)


@pytest.fixture
def store(tmp_path: Path, roots: TrustRoots, first: Release) -> ModelMetadataStore:
    """A store that already trusts :func:`first`."""
    s = ModelMetadataStore(tmp_path / "meta", roots)
    apply(s, first)
    return s


def refused(
    store: ModelMetadataStore, kind: str, release: Release, now: dt.datetime = NOW
) -> MetadataError:
    """Apply ``release``, expect a ``kind`` refusal, and check the old set is still in use."""
    before = (store.versions(), store.trusted_targets(now), store.path.read_bytes())
    with pytest.raises(MetadataError) as info:
        apply(store, release, now)
    assert info.value.kind == kind and str(info.value).startswith(f"{kind}: ")
    assert (store.versions(), store.trusted_targets(now), store.path.read_bytes()) == before
    return info.value


# -- accepted updates --------------------------------------------------------------------------


def test_good_update_is_accepted_and_persisted(tmp_path: Path, roots, pub) -> None:
    store = ModelMetadataStore(tmp_path / "meta", roots)
    assert store.trusted_targets(NOW)["targets"] == {} and store.versions()["targets"] == 0
    result = apply(store, publish(pub, {"demo/1.0.0": entry()}, 1))
    assert (result.timestamp_version, result.targets_version, result.changed) == (1, 1, True)
    assert result.added == ["demo/1.0.0"] and result.removed == []
    result = apply(store, publish(pub, {"demo/1.1.0": entry(b"x", "canary")}, 2), NOW + DAY / 2)
    assert result.added == ["demo/1.1.0"] and result.removed == ["demo/1.0.0"]

    reopened = ModelMetadataStore(tmp_path / "meta", roots)
    assert reopened.dropped is None
    assert reopened.versions() == {"timestamp": 2, "snapshot": 2, "targets": 2}
    got = reopened.trusted_targets(NOW)
    assert got["expired"] is False and got["targets"] == {"demo/1.1.0": entry(b"x", "canary")}


def test_timestamp_only_refresh_reuses_trusted_snapshot_and_targets(store, pub, first) -> None:
    ts = sign_metadata(
        timestamp_signed(first.snapshot, version=5, expires=NOW + 3 * DAY), pub.keys["registry"]
    )
    result = store.update(ts, now=NOW + 2 * DAY)  # the old timestamp has expired by then
    assert (result.timestamp_version, result.snapshot_version, result.changed) == (5, 2, False)
    # the same timestamp again is fine (nothing new); a new snapshot that is not supplied is not
    assert store.update(ts, now=NOW + 2 * DAY).timestamp_version == 5
    new = publish(
        pub, {"demo/2.0.0": entry(b"v2")}, 3, ts_version=6, timestamp_expires=NOW + 3 * DAY
    )
    error = refused(store, "mix-and-match", Release(new.timestamp, None, None), NOW + 2 * DAY)  # type: ignore[arg-type]
    assert "snapshot version 3, which is neither supplied" in str(error)


# -- refusals: the last good set stays ----------------------------------------------------------


def test_tampered_targets_fail_the_signature(store, pub) -> None:
    release = publish(pub, {"demo/2.0.0": entry(b"v2"), "demo/3.0.0": entry(b"v3")}, 3)
    i = release.targets.index(b'"size": ') + len(b'"size": ')
    tampered = release.targets[:i] + bytes([release.targets[i] ^ 1]) + release.targets[i + 1 :]
    error = refused(store, "signature", Release(release.timestamp, release.snapshot, tampered))
    assert "targets metadata (version 3)" in str(error)


def test_targets_signed_by_the_registry_key_are_refused(store, pub) -> None:
    release = publish(pub, {"demo/3.0.0": entry()}, 3, targets_keys=pub.keys["registry"])
    error = refused(store, "signature", release)
    assert "wrong role: a key of role(s) registry, not model" in str(error)


@pytest.mark.parametrize("which", ["timestamp", "snapshot", "targets"])
def test_expired_metadata_is_refused_as_a_freeze(store, pub, which: str) -> None:
    release = publish(pub, {"demo/3.0.0": entry()}, 3, **{f"{which}_expires": NOW + DAY / 4})
    error = refused(store, "expired", release, NOW + DAY / 2)
    assert f"the {which} metadata (version 3) expired" in str(error) and "freeze" in str(error)


def test_lower_or_rewritten_timestamp_is_a_rollback(store, pub) -> None:
    targets = {"demo/1.0.0": entry(), "demo/2.0.0": entry(b"v2")}
    error = refused(store, "rollback", publish(pub, targets, 1))
    assert "timestamp version 1 is older than the trusted version 2" in str(error)
    other = publish(pub, targets, 2, timestamp_expires=NOW + 2 * DAY)  # same version, new bytes
    assert "differs from the trusted document" in str(refused(store, "rollback", other))


def test_snapshot_and_targets_of_different_versions_are_mix_and_match(store, pub) -> None:
    v3 = publish(pub, {"demo/3.0.0": entry(b"v3")}, 3)
    v2 = publish(pub, {"demo/1.0.0": entry(), "demo/2.0.0": entry(b"v2")}, 2)
    error = refused(store, "mix-and-match", Release(v3.timestamp, v3.snapshot, v2.targets))
    assert "the snapshot names targets version 3" in str(error)
    error = refused(store, "mix-and-match", Release(v3.timestamp, v2.snapshot, v3.targets))
    assert "the timestamp names snapshot version 3" in str(error)


def test_a_models_newest_version_must_not_go_back(store, pub) -> None:
    error = refused(store, "rollback", publish(pub, {"demo/1.0.0": entry()}, 3))
    assert "model 'demo': the newest listed version went back from 2.0.0 to 1.0.0" in str(error)
    # withdrawing a model altogether, or an old version of it, is allowed
    assert apply(store, publish(pub, {"demo/2.0.0": entry(b"v2")}, 3)).removed == ["demo/1.0.0"]
    assert apply(store, publish(pub, {"other/0.1.0": entry()}, 4)).removed == ["demo/2.0.0"]


def test_model_threshold_two_of_two(tmp_path: Path) -> None:
    pub = Publisher.make()
    pub.keys["model"].append(HybridSigningKey.generate())
    pub.thresholds["model"] = 2
    store = ModelMetadataStore(tmp_path, pub.roots())
    one = publish(pub, {"demo/1.0.0": entry()}, 1, targets_keys=pub.keys["model"][:1])
    with pytest.raises(MetadataError, match=r"threshold 1 of 2") as info:
        apply(store, one)
    assert info.value.kind == "signature" and store.versions()["targets"] == 0
    assert not store.path.exists()
    assert apply(store, publish(pub, {"demo/1.0.0": entry()}, 1)).targets_version == 1


def test_malformed_metadata(store, pub) -> None:
    release = publish(pub, {"demo/3.0.0": entry()}, 3)
    refused(store, "malformed", Release(b"{not json", release.snapshot, release.targets))
    bad = publish(pub, {"demo/not-semver": entry()}, 3)
    assert "not a semantic version" in str(refused(store, "malformed", bad))
    bad = publish(pub, {"demo/3.0.0": {**entry(), "channel": "beta"}}, 3)
    assert "channel must be one of" in str(refused(store, "malformed", bad))


# -- offline, reopening, bundles ---------------------------------------------------------------


def test_offline_keeps_the_last_good_set(store, roots) -> None:
    later = NOW + 10 * DAY  # everything but the targets has expired by now
    reopened = ModelMetadataStore(store.folder, roots)
    got = reopened.trusted_targets(later)
    assert got["expired"] is True and got["expired_metadata"] == ["timestamp", "snapshot"]
    assert sorted(got["targets"]) == ["demo/1.0.0", "demo/2.0.0"]


def test_verify_bundle_against_targets(store, tmp_path: Path) -> None:
    bundle = tmp_path / "demo-1.0.0.zip"
    bundle.write_bytes(WEIGHTS)
    store.verify_bundle_against_targets(bundle, "demo", "1.0.0", now=NOW)
    with pytest.raises(MetadataError) as info:
        store.verify_bundle_against_targets(bundle, "demo", "9.0.0", now=NOW)
    assert info.value.kind == "unknown-target"
    # expired metadata approves no new install, but may re-check an installed model
    with pytest.raises(MetadataError, match="expired"):
        store.verify_bundle_against_targets(bundle, "demo", "1.0.0", now=NOW + 10 * DAY)
    store.verify_bundle_against_targets(
        bundle, "demo", "1.0.0", now=NOW + 10 * DAY, allow_expired=True
    )
    for changed in (WEIGHTS[:-1] + b"X", WEIGHTS + b"\0"):
        bundle.write_bytes(changed)
        with pytest.raises(MetadataError) as info:
            store.verify_bundle_against_targets(bundle, "demo", "1.0.0", now=NOW)
        assert info.value.kind == "hash"


def test_reopening_checks_the_stored_set(store, pub, tmp_path: Path) -> None:
    doc = json.loads(store.path.read_text())
    doc["targets"] = "!not base64!"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / store.path.name).write_text(json.dumps(doc))
    with pytest.raises(MetadataError) as info:
        ModelMetadataStore(broken, pub.roots())
    assert info.value.kind == "malformed"
    # a rotated registry key: the stored set is dropped (TUF), not trusted
    rotated = Publisher(dict(pub.keys), dict(pub.thresholds))
    rotated.keys["registry"] = [HybridSigningKey.generate()]
    reopened = ModelMetadataStore(store.folder, rotated.roots())
    assert reopened.versions()["timestamp"] == 0 and "registry" in (reopened.dropped or "")
