"""What goes into the store and what comes out: frozen dataclasses, no ORM objects.

Inputs (``New*``) carry plaintext; the store seals every sensitive part before it reaches the
database. Outputs are decrypted copies; maps' voxels are read separately
(:meth:`ResultStore.read_map`) so listing or viewing a result never loads megabytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StudyRef:
    """The study a result belongs to.

    Parameters
    ----------
    pseudonym
        A stable pseudonymous id (the de-identification's keyed hash of the StudyInstanceUID):
        the only study identifier stored in clear and written to the audit trail.
    identifiers
        The real identifiers (StudyInstanceUID, PatientID, ...), stored encrypted so the study
        can be found again; optional.
    """

    pseudonym: str
    identifiers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NewFinding:
    """A finding to save: a label, free text and structured values (all encrypted)."""

    label: str
    text: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewMap:
    """An explanation map to save: its bytes and metadata (shape, dtype, geometry, provenance)."""

    method: str
    data: bytes | bytearray | memoryview
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewResult:
    """One analysis of one study, saved atomically with its findings and maps."""

    study: StudyRef
    model_name: str
    model_version: str
    input_hash: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    findings: Sequence[NewFinding] = ()
    maps: Sequence[NewMap] = ()


@dataclass(frozen=True)
class StoredFinding:
    """A decrypted finding."""

    id: str
    label: str
    text: str
    values: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"id": self.id, "label": self.label, "text": self.text, "values": dict(self.values)}


@dataclass(frozen=True)
class StoredMap:
    """A map's header (its bytes: :meth:`ResultStore.read_map`)."""

    id: str
    method: str
    size: int
    meta: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"id": self.id, "method": self.method, "size": self.size, "meta": dict(self.meta)}


@dataclass(frozen=True)
class ResultSummary:
    """A result as listed: nothing decrypted."""

    id: str
    study: str
    model_name: str
    model_version: str
    created: str
    created_by: str
    finding_count: int
    map_count: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Result:
    """A whole decrypted result (map headers only)."""

    id: str
    study: str
    model_name: str
    model_version: str
    input_hash: str
    parameters: Mapping[str, Any]
    created: str
    created_by: str
    findings: tuple[StoredFinding, ...]
    maps: tuple[StoredMap, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "id": self.id,
            "study": self.study,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "input_hash": self.input_hash,
            "parameters": dict(self.parameters),
            "created": self.created,
            "created_by": self.created_by,
            "findings": [finding.to_json() for finding in self.findings],
            "maps": [m.to_json() for m in self.maps],
        }
