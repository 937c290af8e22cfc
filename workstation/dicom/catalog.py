"""The catalog a scan produces: patients → studies → series (stacks), plus the problems found.

Everything here is plain data built from headers; nothing reads pixels. ``to_json`` gives the
stable schema documented in the README (``workstation scan --json``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from workstation.dicom.errors import (
    AmbiguousSeriesError,
    SeriesNotFoundError,
    UnsupportedSeriesError,
)
from workstation.dicom.series import Stack, orientation_name

JSON_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Problem:
    """A file that could not be used, and why (no PHI: the path and a reason)."""

    path: str
    reason: str


@dataclass
class Series:
    """One loadable stack of a series (a series split into stacks gives several)."""

    stack: Stack

    @property
    def key(self) -> str:
        """The identifier to load by: the SeriesInstanceUID, or ``UID:n`` for split series."""
        return self.stack.key

    @property
    def uid(self) -> str:
        """The SeriesInstanceUID."""
        return self.stack.series_uid

    @property
    def description(self) -> str:
        """SeriesDescription."""
        return self.stack.first.series_description

    @property
    def modality(self) -> str:
        """Modality (CT, MR, ...)."""
        return self.stack.first.modality

    @property
    def number(self) -> int | None:
        """SeriesNumber."""
        return self.stack.first.series_number

    @property
    def slice_count(self) -> int:
        """Number of 2D images in the stack."""
        return len(self.stack.slices)

    @property
    def files(self) -> list[str]:
        """The files holding the stack's slices, in spatial order, each once."""
        return list(dict.fromkeys(s.path for s in self.stack.slices))

    @property
    def warnings(self) -> tuple[str, ...]:
        """Geometry warnings found by the scan."""
        return self.stack.warnings

    def to_json(self) -> dict[str, Any]:
        """The series' entry in ``scan --json``."""
        first = self.stack.first
        spacing = (
            [first.pixel_spacing[1], first.pixel_spacing[0], self.stack.slice_spacing]
            if first.pixel_spacing
            else None
        )
        return {
            "key": self.key,
            "series_uid": self.uid,
            "series_number": self.number,
            "modality": self.modality,
            "description": self.description,
            "stack": self.stack.label,
            "orientation": orientation_name(first.orientation),
            "slices": self.slice_count,
            "files": len(self.files),
            "rows": first.rows,
            "columns": first.columns,
            "spacing": spacing,
            "transfer_syntax": first.transfer_syntax,
            "loadable": self.stack.loadable,
            "problem": self.stack.problem,
            "warnings": list(self.warnings),
        }


@dataclass
class Study:
    """A study and its series."""

    uid: str
    date: str
    description: str
    series: list[Series] = field(default_factory=list)


@dataclass
class Patient:
    """A patient (as identified in the headers) and their studies."""

    patient_id: str
    name: str
    studies: list[Study] = field(default_factory=list)


@dataclass
class Catalog:
    """What a scan found under ``root``."""

    root: str
    patients: list[Patient]
    problems: list[Problem]
    files_seen: int
    dicom_files: int

    @classmethod
    def from_stacks(
        cls,
        root: str,
        stacks: list[Stack],
        problems: list[Problem],
        *,
        files_seen: int,
        dicom_files: int,
    ) -> Catalog:
        """Arrange stacks into patients and studies."""
        patients: dict[str, Patient] = {}
        studies: dict[str, Study] = {}
        for stack in stacks:
            first = stack.first
            patient = patients.get(first.patient_id)
            if patient is None:
                patient = patients[first.patient_id] = Patient(first.patient_id, first.patient_name)
            study = studies.get(first.study_uid)
            if study is None:
                study = studies[first.study_uid] = Study(
                    first.study_uid, first.study_date, first.study_description
                )
                patient.studies.append(study)
            study.series.append(Series(stack))
        return cls(root, list(patients.values()), problems, files_seen, dicom_files)

    @property
    def series(self) -> list[Series]:
        """Every series (stack), flat, in catalog order."""
        return list(self.iter_series())

    def iter_series(self) -> Iterator[Series]:
        """Iterate over every series (stack)."""
        for patient in self.patients:
            for study in patient.studies:
                yield from study.series

    def find(self, key: str | None = None) -> Series:
        """The series with ``key`` (a stack key or a SeriesInstanceUID).

        With ``key=None`` the catalog must hold exactly one loadable series.

        Raises
        ------
        SeriesNotFoundError
            No series with ``key``, or (``key=None``) no series at all.
        AmbiguousSeriesError
            Several candidates; ``choices`` lists their keys.
        UnsupportedSeriesError
            ``key=None`` and the catalog holds series, but none is loadable; or ``key`` is a
            SeriesInstanceUID whose stacks are all unloadable (the message says why for each).
        """
        candidates = self.series
        if key is None:
            loadable = [s for s in candidates if s.stack.loadable]
            if len(loadable) == 1:
                return loadable[0]
            if not loadable and candidates:
                raise UnsupportedSeriesError(
                    f"no loadable series under {self.root}: "
                    + "; ".join(f"{s.key} cannot be loaded: {s.stack.problem}" for s in candidates),
                    path=self.root,
                    uid=candidates[0].key if len(candidates) == 1 else None,
                )
            if not loadable:
                raise SeriesNotFoundError(
                    f"no loadable series under {self.root}"
                    + (f" ({len(self.problems)} file problem(s))" if self.problems else ""),
                    path=self.root,
                )
            raise AmbiguousSeriesError(
                f"{len(loadable)} series under {self.root}; choose one with its key: "
                + "; ".join(
                    f"{s.key} ({s.description or s.modality}, {s.slice_count})"
                    for s in loadable[:10]
                ),
                choices=[s.key for s in loadable],
                path=self.root,
            )
        exact = [s for s in candidates if s.key == key]
        if exact:
            return exact[0]
        same_uid = [s for s in candidates if s.uid == key]
        if len(same_uid) == 1:
            return same_uid[0]
        if same_uid and not any(s.stack.loadable for s in same_uid):
            reasons = dict.fromkeys(str(s.stack.problem) for s in same_uid)
            raise UnsupportedSeriesError(
                f"series {key} ({len(same_uid)} stacks) cannot be loaded: " + "; ".join(reasons),
                path=self.root,
                uid=key,
            )
        if same_uid:
            raise AmbiguousSeriesError(
                f"series {key} holds {len(same_uid)} stacks; choose one: "
                + "; ".join(f"{s.key} ({s.stack.label}, {s.slice_count})" for s in same_uid),
                choices=[s.key for s in same_uid],
                path=self.root,
            )
        raise SeriesNotFoundError(f"no series {key} under {self.root}", path=self.root, uid=key)

    def to_json(self) -> dict[str, Any]:
        """The ``scan --json`` document (schema version ``JSON_SCHEMA_VERSION``)."""
        return {
            "schema": JSON_SCHEMA_VERSION,
            "root": self.root,
            "counts": {
                "files": self.files_seen,
                "dicom_files": self.dicom_files,
                "series": sum(1 for _ in self.iter_series()),
                "problems": len(self.problems),
            },
            "patients": [
                {
                    "patient_id": p.patient_id,
                    "patient_name": p.name,
                    "studies": [
                        {
                            "study_uid": st.uid,
                            "study_date": st.date,
                            "description": st.description,
                            "series": [s.to_json() for s in st.series],
                        }
                        for st in p.studies
                    ],
                }
                for p in self.patients
            ],
            "problems": [{"path": pr.path, "reason": pr.reason} for pr in self.problems],
        }
