"""The studies of a cohort, streamed: never listed all at once, so 100 000 studies cost nothing.

A source is one of:

- a **folder tree**: every folder that directly holds DICOM files (one series) is one study,
  found by a lazy depth-first walk (:func:`os.scandir`, entries of one folder sorted so the order
  is stable); hidden folders are skipped;
- a **list file** (``.txt``): one folder or file per line, read line by line (blank lines and
  ``#`` comments skipped; relative paths are relative to the list file);
- a **DICOMweb QIDO URL** ``http(s)://server/dicom-web/studies?ModalitiesInStudy=MR&...``:
  the search's query parameters are the filters, paged with ``limit``/``offset``; each study is
  retrieved on the worker that analyses it.

Every item has a ``study_key``: the first 32 hex digits of the SHA-256 of the item's identity
(``folder:`` + the path relative to the source root, ``path:`` + the absolute path of a listed
entry, ``dicomweb:`` + service root and StudyInstanceUID). Keys name the row and thumbnail files;
they carry no patient name and do not change when the cohort is run again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workstation.workflow.remote import PacsServer

__all__ = ["StudyItem", "iter_source", "looks_like_dicom", "split_qido_url", "study_key"]

_DICM_OFFSET = 128
_PROBE_FILES = 16
_PAGE_SIZE = 100


def study_key(identity: str) -> str:
    """The stable, non-identifying key of a source item (see the module docstring)."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class StudyItem:
    """One study of the cohort: where it is and its key (picklable: it travels to workers)."""

    key: str
    source: str  # what the rows show: a relative path, a listed path or the study's URL
    path: str | None = None  # a local folder or file
    server: PacsServer | None = None  # a DICOMweb server (``study_uid`` on it)
    study_uid: str | None = None

    def __repr__(self) -> str:  # the server's secrets stay out of logs
        return f"StudyItem({self.key}, {self.source!r})"


def looks_like_dicom(entry: os.DirEntry[str] | Path) -> bool:
    """A ``.dcm`` name (even an empty or truncated file), or the ``DICM`` magic at 128."""
    name = entry.name
    if name.lower().endswith(".dcm"):
        return True
    if name.startswith("."):
        return False
    try:
        with open(entry, "rb") as f:
            f.seek(_DICM_OFFSET)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _holds_dicom(files: list[os.DirEntry[str]]) -> bool:
    return any(looks_like_dicom(f) for f in files[:_PROBE_FILES]) or any(
        f.name.lower().endswith(".dcm") for f in files
    )


def _walk(root: Path) -> Iterator[StudyItem]:
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        files = [e for e in entries if e.is_file(follow_symlinks=False)]
        dirs = [e for e in entries if e.is_dir(follow_symlinks=False) and e.name[0] != "."]
        if files and _holds_dicom(files):
            relative = Path(folder).relative_to(root).as_posix()
            yield StudyItem(study_key(f"folder:{relative}"), relative, path=folder)
        stack.extend(e.path for e in reversed(dirs))  # depth first, in name order


def _listed(list_file: Path) -> Iterator[StudyItem]:
    with open(list_file, encoding="utf-8") as lines:
        for line in lines:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            path = Path(text).expanduser()
            if not path.is_absolute():
                path = list_file.parent / path
            absolute = os.path.abspath(path)
            yield StudyItem(study_key(f"path:{absolute}"), absolute, path=absolute)


def split_qido_url(url: str) -> tuple[str, dict[str, str]]:
    """``.../dicom-web/studies?A=B`` → (``.../dicom-web`` with its userinfo, ``{A: B}``)."""
    import httpx

    parsed = httpx.URL(url)
    filters = {k: v for k, v in parsed.params.multi_items() if k not in ("limit", "offset")}
    root = str(parsed.copy_with(query=None, fragment=None)).rstrip("/")
    if not root.endswith("/studies"):
        raise ValueError(
            "a DICOMweb cohort URL ends with /studies (then ?filters), e.g. "
            "https://pacs/dicom-web/studies?ModalitiesInStudy=MR"
        )
    return root[: -len("/studies")], filters


def _dicomweb(url: str, page_size: int) -> Iterator[StudyItem]:
    from workstation.workflow.remote import connect, server_from_url

    root, filters = split_qido_url(url)
    server = server_from_url(root)
    with connect(server) as client:
        offset = 0
        while True:
            # Raw QIDO filters: the search URL's own parameters, as the user wrote them.
            page = client.search_studies(limit=page_size, offset=offset, filters=filters)
            for record in page:
                identity = f"{server.url}/studies/{record.study_uid}"
                yield StudyItem(
                    study_key(f"dicomweb:{identity}"),
                    identity,
                    server=server,
                    study_uid=record.study_uid,
                )
            if len(page) < page_size:
                return
            offset += len(page)


def iter_source(source: str, *, page_size: int = _PAGE_SIZE) -> Iterator[StudyItem]:
    """The studies of ``source`` (a folder, a ``.txt`` list or a DICOMweb URL), lazily.

    Raises
    ------
    FileNotFoundError
        A local source that does not exist (raised at the first ``next``).
    ValueError
        A URL that is not a DICOMweb studies search.
    """
    if source.startswith(("http://", "https://")):
        yield from _dicomweb(source, page_size)
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{source} does not exist")
    if path.is_dir():
        yield from _walk(path.resolve())
    elif path.suffix.lower() == ".txt":
        yield from _listed(path.resolve())
    else:  # one file: a study of its own
        absolute = str(path.resolve())
        yield StudyItem(study_key(f"path:{absolute}"), absolute, path=absolute)
