"""The shipped demonstration models verify as signed model bundles against the shipped trust
root, carry exactly the files beside them, and say they are not for clinical use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workstation.security.bundle import open_bundle
from workstation.security.trust import TrustRoots, shipped_root_path

MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"


@pytest.mark.parametrize("name", ["demo-lesion-seg", "demo-lesion-cls"])
def test_shipped_bundle_verifies_and_matches_the_folder(name: str, tmp_path: Path) -> None:
    with open_bundle(
        MODELS / f"{name}-0.1.0.mwb", trust=TrustRoots.load(shipped_root_path()), kind="model"
    ) as bundle:
        assert (bundle.name, str(bundle.version)) == (name, "0.1.0")
        assert bundle.trusted_by == "trust root"
        out = bundle.extract(tmp_path / "x")
    for file in (MODELS / name).iterdir():
        assert (out / file.name).read_bytes() == file.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "demonstration model — not for clinical use" in manifest["disclaimer"]


def test_a_tampered_bundle_is_refused(tmp_path: Path) -> None:
    from workstation.core.errors import WorkstationError

    raw = bytearray((MODELS / "demo-lesion-seg-0.1.0.mwb").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    tampered = tmp_path / "tampered.mwb"
    tampered.write_bytes(bytes(raw))
    trust = TrustRoots.load(shipped_root_path())
    with (
        pytest.raises(WorkstationError),
        open_bundle(tampered, trust=trust, kind="model") as bundle,
    ):
        bundle.extract(tmp_path / "y")
