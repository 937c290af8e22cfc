"""The action PS3.15 Table E.1-1 prescribes for each tag, under the chosen profile options.

The table itself is data (:mod:`workstation.dicom._deid_table`, generated from cited sources);
this module turns a row into one concrete :class:`Action`:

* An enabled option's column wins over the Basic Profile column where it has an entry.
* A Basic Profile choice ("X/Z", "X/D", "Z/D", "X/Z/D") depends on the IOD's attribute type,
  which a generic de-identifier does not know; the choice that keeps any IOD valid is taken:
  ``X/Z`` -> ``Z`` (a type 2 attribute must stay present), ``X/D``, ``Z/D``, ``X/Z/D`` -> ``D``
  (a type 1 attribute needs a value). ``X/Z/U*`` -> ``U*`` (keep the sequence, remap the UIDs
  in it).
* Tags not in the table are kept (sequences among them are still walked); private tags are
  removed (the profile's ``(gggg,eeee) odd group`` row; Retain Safe Private is not offered).
"""

from __future__ import annotations

import enum
from functools import lru_cache

from workstation.dicom._deid_table import OPTION_COLUMNS, ROWS

__all__ = ["Action", "Option", "Profile", "profile"]


class Option(enum.Enum):
    """Profile options of PS3.15 E.3 that :func:`~workstation.dicom.deid.deidentify` offers.

    The value is the option's column in Table E.1-1; :attr:`code` its CID 7050 code.
    """

    RETAIN_LONGITUDINAL_MODIFIED_DATES = "rtnLongModifDatesOpt"
    CLEAN_DESCRIPTORS = "cleanDescOpt"

    @property
    def code(self) -> tuple[str, str]:
        """(CodeValue, CodeMeaning) in DCM (PS3.16 CID 7050)."""
        return _CODES[self]


_CODES = {
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")


class Action(enum.Enum):
    """One concrete action of Table E.1-1 (PS3.15 E.1.1 names the letters)."""

    KEEP = "K"
    REMOVE = "X"
    EMPTY = "Z"  # zero length (an empty sequence for SQ)
    DUMMY = "D"  # a dummy value consistent with the VR
    UID = "U"  # a new UID, consistent within the set (keyed hash of the old one)
    UID_IN_SEQUENCE = "U*"  # keep the sequence; its items' UIDs are remapped
    CLEAN = "C"  # dates shifted / descriptors cleaned, per the option


_CHOICES = {
    "X": Action.REMOVE,
    "Z": Action.EMPTY,
    "D": Action.DUMMY,
    "U": Action.UID,
    "K": Action.KEEP,
    "C": Action.CLEAN,
    "X/Z": Action.EMPTY,
    "X/D": Action.DUMMY,
    "Z/D": Action.DUMMY,
    "X/Z/D": Action.DUMMY,
    "X/Z/U*": Action.UID_IN_SEQUENCE,
}


class Profile:
    """The resolved table: :meth:`action` for any tag; :attr:`basic` without options."""

    def __init__(self, options: frozenset[Option]) -> None:
        self.options = options
        self._exact: dict[int, Action] = {}
        self._basic: dict[int, Action] = {}
        self._patterns: list[tuple[int, int, Action]] = []
        self.names: dict[int, str] = {}
        columns = [OPTION_COLUMNS.index(o.value) for o in options]
        for row in ROWS:
            tag, basic, opts, _source, name = row[:5]
            chosen = basic
            for column in columns:
                if opts[column] != "-":
                    chosen = opts[column]
            action = _CHOICES[chosen]
            if len(row) > 5:
                self._patterns.append((tag, row[5], action))
            else:
                self._exact[tag] = action
                self._basic[tag] = _CHOICES[basic]
                self.names[tag] = name

    def action(self, tag: int) -> Action | None:
        """The action for ``tag``; ``None`` when the table does not list it (keep it)."""
        if tag >> 16 & 1:  # private (odd group)
            return Action.REMOVE
        found = self._exact.get(tag)
        if found is not None:
            return found
        for value, mask, action in self._patterns:
            if tag & mask == value:
                return action
        return None

    def basic(self, tag: int) -> Action | None:
        """The Basic Profile action alone (the fallback when an option's action cannot apply,
        e.g. a date that does not parse)."""
        return self._basic.get(tag)

    @property
    def tags(self) -> frozenset[int]:
        """Every exact tag the table lists (patterns excluded)."""
        return frozenset(self._exact)


@lru_cache(maxsize=8)
def profile(options: frozenset[Option]) -> Profile:
    """The resolved table for ``options`` (cached)."""
    return Profile(options)
