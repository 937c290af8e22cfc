"""Sync test helpers (importable without pytest, also by the kill test's child): the
workstation's keys, a settable clock, and results that carry fake identifiers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from workstation.security.aead import DataKeyRing
from workstation.security.seal import RecipientKey
from workstation.security.sign import HybridSigningKey
from workstation.store import NewFinding, NewMap, NewResult, StudyRef

PATIENT_NAME = "Doe^Janet-Zzyzx"
PATIENT_ID = "MRN-99887766"
STUDY_UID = "1.2.826.0.1.3680043.99.1234567.42"
SECRET_IDENTIFIERS = (PATIENT_NAME, PATIENT_ID, STUDY_UID, "Zzyzx", "99887766", "3680043.99")


@dataclass
class Keys:
    """The workstation's keys (what ``KeyStore`` holds) for tests."""

    ring: DataKeyRing
    signing: HybridSigningKey
    recipient: RecipientKey

    def signing_key(self) -> HybridSigningKey:
        return self.signing

    def recipient_key(self) -> RecipientKey:
        return self.recipient

    def private_bytes(self) -> bytes:
        """signing (64) || recipient (32) || ring: what the kill test's child reads."""
        return (
            self.signing.private_bytes()
            + self.recipient.private_bytes()
            + self.ring.private_bytes()
        )

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Keys:
        return cls(
            DataKeyRing.from_private_bytes(raw[96:]),
            HybridSigningKey.from_private_bytes(raw[:64]),
            RecipientKey.from_private_bytes(raw[64:96]),
        )


class Clock:
    """A settable UTC clock for the store (the outbox's backoff runs on it)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def new_result(i: int = 0, *, map_size: int = 4096) -> NewResult:
    """A result whose study carries fake identifiers (which must never leave)."""
    return NewResult(
        study=StudyRef(
            f"ps-{i:04d}",
            {
                "PatientName": PATIENT_NAME,
                "PatientID": PATIENT_ID,
                "StudyInstanceUID": STUDY_UID,
            },
        ),
        model_name="brain-lesion",
        model_version="1.2.0",
        input_hash=f"{i:064x}",
        parameters={"threshold": 0.5, "summary": {"provenance": {"device": "cpu"}}},
        findings=[NewFinding("lesion", "left frontal, 12 mm", {"volume_ml": 1.5, "i": i})],
        maps=[NewMap("gradcam", bytes([i % 251]) * map_size, {"shape": [16, 16, 16]})],
    )
