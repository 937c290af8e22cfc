"""Group slice headers into stacks, sort them in space and check the geometry.

A DICOM series (one SeriesInstanceUID) may hold several stacks: localizers beside the axial
images, several orientations or matrix sizes, several volumes over time or echoes at the same
positions. Like Slicer and dcm2niix we split them, each stack becoming one loadable volume, and
we never stack repeated positions into one wrong volume. Within a stack slices are sorted by
their position along the slice normal (never by file name or InstanceNumber), duplicates (same
SOPInstanceUID and frame) are dropped, and uneven spacing, missing slices and gantry tilt become
warnings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from workstation.dicom.header import SliceHeader

# Direction cosines closer than this (each component) are one orientation. A tolerance, not
# rounding: rounding splits values that jitter across a rounding boundary (0.123449/0.123451).
_ORIENTATION_TOLERANCE = 1e-4
_POSITION_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Stack:
    """Slices that form one volume: sorted, de-duplicated, with geometry and warnings."""

    key: str
    series_uid: str
    label: str
    slices: tuple[SliceHeader, ...]
    normal: tuple[float, float, float] | None
    slice_spacing: float
    warnings: tuple[str, ...] = ()
    problem: str | None = None  # set when the stack cannot be loaded as a volume

    @property
    def first(self) -> SliceHeader:
        """The first slice in spatial order."""
        return self.slices[0]

    @property
    def loadable(self) -> bool:
        """True when :func:`workstation.dicom.load_series` can assemble this stack."""
        return self.problem is None


@dataclass
class _Group:
    slices: list[SliceHeader]
    label: list[str] = field(default_factory=list)


def orientation_name(orientation: Sequence[float] | None) -> str:
    """'axial', 'coronal', 'sagittal' or 'oblique' from ImageOrientationPatient."""
    if orientation is None:
        return "unknown"
    normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:6]))
    axis = int(np.argmax(np.abs(normal)))
    if abs(normal[axis]) < 0.999:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def build_stacks(slices: Iterable[SliceHeader]) -> tuple[list[Stack], list[tuple[str, str]]]:
    """Group slices by series and split each series into stacks.

    Returns the stacks (ordered by series number, then stack) and the dropped duplicates as
    ``(path, reason)`` pairs.
    """
    by_series: dict[tuple[str, str], list[SliceHeader]] = defaultdict(list)
    for header in slices:
        by_series[(header.study_uid, header.series_uid)].append(header)
    stacks: list[Stack] = []
    dropped: list[tuple[str, str]] = []
    for (_, series_uid), members in by_series.items():
        members, duplicates = _drop_duplicates(members)
        dropped.extend(duplicates)
        groups = _split(members)
        groups.sort(key=lambda g: (min((s.instance_number or 0) for s in g.slices), g.label))
        for number, group in enumerate(groups, start=1):
            key = series_uid if len(groups) == 1 else f"{series_uid}:{number}"
            stacks.append(_make_stack(key, series_uid, group))
    stacks.sort(key=lambda s: (s.first.study_uid, s.first.series_number or 0, s.key))
    return stacks, dropped


def _drop_duplicates(
    members: list[SliceHeader],
) -> tuple[list[SliceHeader], list[tuple[str, str]]]:
    seen: dict[tuple[str, int], SliceHeader] = {}
    dropped: list[tuple[str, str]] = []
    for header in sorted(members, key=lambda h: (h.path, h.frame)):
        identity = (header.sop_instance_uid, header.frame)
        if header.sop_instance_uid and identity in seen:
            if header.frame == 0:
                kept = seen[identity].path
                dropped.append((header.path, f"duplicate of {kept} (same SOPInstanceUID), dropped"))
            continue
        seen[identity] = header
    return list(seen.values()), dropped


def _split(members: list[SliceHeader]) -> list[_Group]:
    """Split one series into groups that each have one geometry and unique positions."""
    by_layout: dict[tuple[object, ...], list[SliceHeader]] = defaultdict(list)
    orientations: list[tuple[float, ...]] = []  # one representative per orientation seen
    for header in members:
        orientation = _same_orientation(header.orientation, orientations)
        layout = (
            header.mosaic,
            header.position is None,
            orientation,
            header.rows,
            header.columns,
            header.samples_per_pixel,
            header.stack_id,
            header.path if header.position is None and header.number_of_frames > 1 else "",
        )
        by_layout[layout].append(header)
    groups: list[_Group] = []
    for layout_members in by_layout.values():
        label = [_layout_label(layout_members[0], len(layout_members))]
        groups.extend(_split_repeats(_Group(layout_members, label)))
    return groups


def _same_orientation(
    orientation: Sequence[float] | None, seen: list[tuple[float, ...]]
) -> tuple[float, ...] | None:
    """The representative in ``seen`` within tolerance of ``orientation`` (added if none is)."""
    if orientation is None:
        return None
    for candidate in seen:
        if max(abs(a - b) for a, b in zip(candidate, orientation, strict=True)) <= (
            _ORIENTATION_TOLERANCE
        ):
            return candidate
    seen.append(tuple(orientation))
    return seen[-1]


_SPLITTERS: list[tuple[str, Callable[[SliceHeader], object]]] = [
    ("time", lambda h: h.temporal_position),
    ("echo", lambda h: h.echo_number),
    ("acquisition", lambda h: h.acquisition_number),
    ("type", lambda h: "\\".join(h.image_type)),
    ("file", lambda h: h.path if h.number_of_frames > 1 else ""),
]


def _split_repeats(group: _Group) -> list[_Group]:
    """Split a group whose positions repeat by time, echo, acquisition or image type."""
    if not _positions_repeat(group.slices):
        return [group]
    for name, attribute in _SPLITTERS:
        values: dict[object, list[SliceHeader]] = defaultdict(list)
        for header in group.slices:
            values[attribute(header)].append(header)
        if len(values) < 2:
            continue
        parts = [
            _Group(part, [*group.label, f"{name} {_short(value)}"])
            for value, part in sorted(values.items(), key=lambda kv: str(kv[0]))
        ]
        return [piece for part in parts for piece in _split_repeats(part)]
    return [group]


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 24 else "…" + text[-20:]


def _positions_repeat(slices: Sequence[SliceHeader]) -> bool:
    positions = [s.position for s in slices if s.position is not None]
    if len(positions) < 2:
        return False
    return len({_position_key(p) for p in positions}) < len(positions)


def _position_key(position: Sequence[float]) -> tuple[int, ...]:
    return tuple(np.round(np.asarray(position) / _POSITION_TOLERANCE_MM).astype(np.int64))


def _layout_label(header: SliceHeader, count: int) -> str:
    return f"{orientation_name(header.orientation)} {header.columns}×{header.rows}"


def _make_stack(key: str, series_uid: str, group: _Group) -> Stack:
    slices = group.slices
    label = ", ".join(group.label)
    first = slices[0]
    if first.mosaic:
        return Stack(
            key, series_uid, label, tuple(slices), None, 1.0,
            problem="Siemens mosaic images are not unpacked yet: convert the series with "
            "dcm2niix, or export it from the scanner as single slices",
        )  # fmt: skip
    if first.samples_per_pixel != 1:
        return Stack(
            key, series_uid, label, tuple(slices), None, 1.0,
            problem=f"colour images ({first.photometric}) are not loaded as volumes",
        )  # fmt: skip
    if not first.has_pixels:
        return Stack(key, series_uid, label, tuple(slices), None, 1.0, problem="no pixel data")
    if first.position is None or first.orientation is None:
        ordered = sorted(slices, key=lambda h: (h.instance_number or 0, h.path, h.frame))
        warning = (
            "no image position/orientation: pixels loaded in InstanceNumber order with "
            "unit geometry; distances and orientation labels are not reliable"
        )
        spacing = first.spacing_between_slices or first.slice_thickness or 1.0
        return Stack(key, series_uid, label, tuple(ordered), None, float(spacing), (warning,))
    if _positions_repeat(slices):
        count = len(slices)
        unique = count - _repeat_count(slices)
        return Stack(
            key, series_uid, label, tuple(slices), None, 1.0,
            problem=f"positions repeat ({count} images at {unique} positions) and no time, "
            "echo, acquisition or image-type attribute tells the volumes apart; "
            "refusing to stack them into one wrong volume",
        )  # fmt: skip
    row = np.asarray(first.orientation[:3])
    column = np.asarray(first.orientation[3:6])
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    distances = np.array([np.dot(normal, s.position) for s in slices])
    order = np.argsort(distances, kind="stable")
    ordered = tuple(slices[i] for i in order)
    distances = distances[order]
    spacing, warnings = _check_geometry(ordered, distances, normal)
    return Stack(key, series_uid, label, ordered, tuple(float(v) for v in normal), spacing,
                 tuple(warnings))  # fmt: skip


def _repeat_count(slices: Sequence[SliceHeader]) -> int:
    keys = [_position_key(s.position) for s in slices if s.position is not None]
    return len(keys) - len(set(keys))


def _check_geometry(
    ordered: Sequence[SliceHeader], distances: np.ndarray, normal: np.ndarray
) -> tuple[float, list[str]]:
    """Slice spacing (mm) and warnings about gaps, uneven spacing and tilt."""
    warnings: list[str] = []
    first = ordered[0]
    if len(ordered) == 1:
        spacing = first.spacing_between_slices or first.slice_thickness or 1.0
        return float(spacing), warnings
    steps = np.diff(distances)
    spacing = float(np.median(steps))
    tolerance = max(0.01 * spacing, _POSITION_TOLERANCE_MM)
    gaps = np.nonzero(steps > 1.5 * spacing)[0]
    if gaps.size:
        missing = int(sum(round(steps[i] / spacing) - 1 for i in gaps))
        where = ", ".join(f"{distances[i]:.1f}–{distances[i + 1]:.1f} mm" for i in gaps[:3])
        warnings.append(
            f"about {missing} slice(s) missing (gaps at {where}); spacing {spacing:.3g} mm is "
            "used, so positions beyond a gap are off by the gap"
        )
    elif np.max(np.abs(steps - spacing)) > tolerance:
        warnings.append(
            f"uneven slice spacing ({steps.min():.3g}–{steps.max():.3g} mm); the volume uses "
            f"{spacing:.3g} mm"
        )
    run = np.asarray(ordered[-1].position) - np.asarray(first.position)
    length = float(np.linalg.norm(run))
    if length > 0:
        cosine = abs(float(np.dot(run / length, normal)))
        angle = float(np.degrees(np.arccos(min(1.0, cosine))))
        if angle > 0.05:
            warnings.append(
                f"gantry tilt or sheared stack ({angle:.2f}°): slices do not run along their "
                "normal; the volume is shown unsheared, so distances along the slice axis are "
                "approximate"
            )
    return spacing, warnings
