"""Helpers shared by the store tests (imported by name: ``from store_kit import ...``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from workstation.store import NewFinding, NewMap, NewResult, ResultStore, StudyRef

# Identifiers planted in results: none may appear in clear in the database files.
PATIENT_NAME = "Zyxwvut^Quentessa"
PATIENT_ID = "PID-8731-5520-QX"
STUDY_UID = "1.2.826.0.1.3680043.8.498.13579246801357924680"
FINDING_TEXT = "Left frontal lesion 14 mm, compare with prior of Quentessa"


def pseudonym(uid: str) -> str:
    """A keyed-hash pseudonym, as de-identification makes them (a test key)."""
    return "ps-" + hashlib.blake2s(uid.encode(), key=b"test-site-key").hexdigest()[:24]


def sample_result(*, maps: int = 1, map_bytes: int = 300_000, findings: int = 2) -> NewResult:
    """A result carrying the planted identifiers in every encrypted place."""
    return NewResult(
        study=StudyRef(
            pseudonym(STUDY_UID),
            {"StudyInstanceUID": STUDY_UID, "PatientID": PATIENT_ID, "PatientName": PATIENT_NAME},
        ),
        model_name="brain-lesion",
        model_version="1.2.0",
        input_hash=hashlib.sha256(b"voxels").hexdigest(),
        parameters={"threshold": 0.5, "note": f"requested for {PATIENT_NAME}"},
        findings=[
            NewFinding("lesion", FINDING_TEXT, {"volume_ml": 1.25 + i, "patient": PATIENT_ID})
            for i in range(findings)
        ],
        maps=[
            NewMap(
                "gradcam",
                (STUDY_UID.encode() * (map_bytes // len(STUDY_UID) + 1))[:map_bytes],
                {"shape": [10, 10, 10], "series": STUDY_UID},
            )
            for _ in range(maps)
        ],
    )


MakeStore = Callable[..., ResultStore]
"""``make_store(url, keys=..., **kwargs)``: the fixture's factory."""
