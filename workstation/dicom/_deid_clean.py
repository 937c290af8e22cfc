"""The walk that applies the resolved profile to one dataset tree (see :mod:`.deid`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from workstation.dicom._deid_profile import Action, Option, Profile, profile
from workstation.dicom._deid_values import (
    Scrubber,
    dummy_value,
    pseudonym,
    shift_date,
    shift_datetime,
)

if TYPE_CHECKING:
    from workstation.dicom.deid import DeidPolicy

__all__ = ["Cleaner", "patient_key"]

_PATIENT_NAME, _PATIENT_ID, _ISSUER = 0x00100010, 0x00100020, 0x00100021
_DATE_VRS, _TEXT_VRS = {"DA", "DT"}, {"LO", "LT", "SH", "ST", "UT", "UC", "PN", "CS"}
_NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "IS", "DS", "AT"}


def _text(dataset: Dataset, tag: int) -> str:
    element = dataset.get(tag)
    return "" if element is None or element.value is None else str(element.value).strip()


def patient_key(dataset: Dataset) -> str:
    """Who the dataset belongs to: Patient ID (with its issuer), else name, else the study."""
    patient_id = _text(dataset, _PATIENT_ID)
    if patient_id:
        return f"id:{_text(dataset, _ISSUER)}:{patient_id}"
    name = _text(dataset, _PATIENT_NAME)
    if name:
        return f"name:{name.upper()}"
    return f"study:{_text(dataset, 0x0020000D)}"


class Cleaner:
    """Applies the resolved profile to one dataset tree, in place."""

    def __init__(self, policy: DeidPolicy, original: Dataset) -> None:
        self.policy = policy
        self.profile: Profile = profile(policy.options)
        self.offset = policy.date_offset(original)
        self.pseudonym = pseudonym(patient_key(original), policy.site_secret)
        self.scrubber = (
            Scrubber(self._identifying_values(original))
            if Option.CLEAN_DESCRIPTORS in policy.options
            else None
        )

    def _identifying_values(self, dataset: Dataset) -> list[str]:
        """String values of every attribute the profile removes or replaces (for the scrubber)."""
        found: list[str] = []
        for tag in dataset.keys():  # noqa: SIM118 (iterating a Dataset converts every element)
            if tag.is_private:  # removed anyway; may not even parse
                continue
            element = dataset[tag]
            if element.VR == "SQ":
                for item in element.value or ():
                    found += self._identifying_values(item)
                continue
            action = self.profile.action(int(tag))
            if action in (None, Action.KEEP, Action.CLEAN, Action.UID, Action.UID_IN_SEQUENCE):
                continue
            values = element.value if element.VM > 1 else [element.value]
            found += [str(v) for v in values if isinstance(v, str | PersonName)]
        return found

    def clean(self, dataset: Dataset) -> None:
        """Apply the profile to ``dataset`` and, recursively, to its sequences' items."""
        for tag in list(dataset.keys()):
            if tag.is_private or tag.element == 0 or tag.group & 0xFF00 == 0x6000:
                del dataset[tag]  # private, group lengths, overlay planes
                continue
            action = self.profile.action(int(tag))
            element = dataset[tag]
            if action is None or action is Action.KEEP or action is Action.UID_IN_SEQUENCE:
                if element.VR == "SQ":
                    self._items(element.value)
                elif action is Action.UID_IN_SEQUENCE:
                    self._apply(dataset, element, Action.UID)
                continue
            self._apply(dataset, element, action)

    def _items(self, items: Any) -> None:
        for item in items or ():
            self.clean(item)

    def _apply(self, dataset: Dataset, element: Any, action: Action) -> None:
        tag, vr = int(element.tag), element.VR
        if action is Action.REMOVE:
            del dataset[tag]
        elif action is Action.CLEAN:
            self._clean_value(dataset, element)
        elif vr == "SQ":
            element.value = Sequence([])  # Z and D on a sequence: no items
        elif self.policy.pseudonymize_patient and tag in (_PATIENT_NAME, _PATIENT_ID):
            element.value = self.pseudonym
        elif action is Action.EMPTY:
            element.value = None
        elif action is Action.UID or vr == "UI":
            element.value = self._uids(element)
        else:  # DUMMY
            element.value = dummy_value(vr)

    def _uids(self, element: Any) -> Any:
        if element.value is None:
            return None
        if element.VM > 1:
            return [self.policy.map_uid(str(v)) for v in element.value]
        return self.policy.map_uid(str(element.value))

    def _clean_value(self, dataset: Dataset, element: Any) -> None:
        vr = element.VR
        if vr == "SQ":
            self._items(element.value)
            return
        if element.value in (None, ""):
            return
        if vr == "TM":
            return  # whole-day shifts keep the time of day
        if vr in _DATE_VRS:
            shift = shift_date if vr == "DA" else shift_datetime
            values = element.value if element.VM > 1 else [element.value]
            shifted = [shift(str(v), self.offset) for v in values]
            if all(s is not None for s in shifted):
                element.value = shifted if element.VM > 1 else shifted[0]
                return
        elif vr in _TEXT_VRS and self.scrubber is not None:
            values = element.value if element.VM > 1 else [element.value]
            cleaned = [self.scrubber.clean(str(v)) for v in values]
            element.value = cleaned if element.VM > 1 else cleaned[0]
            return
        elif vr in _NUMBER_VRS:
            return  # nothing textual to clean
        fallback = self.profile.basic(int(element.tag)) or Action.REMOVE
        self._apply(dataset, element, fallback if fallback is not Action.CLEAN else Action.REMOVE)
