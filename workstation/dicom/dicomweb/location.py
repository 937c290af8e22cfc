"""DICOMweb URLs as users paste them: the service root plus a study, series or instance."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

_LEVELS = ("studies", "series", "instances")


@dataclass(frozen=True)
class DicomwebLocation:
    """A service root and, as far as the URL goes, a study, a series and an instance."""

    base_url: str
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None

    @property
    def url(self) -> str:
        """The URL back (credentials are not part of a location)."""
        parts = [self.base_url]
        for level, uid in zip(
            _LEVELS, (self.study_uid, self.series_uid, self.sop_uid), strict=True
        ):
            if uid is None:
                break
            parts += [level, uid]
        return "/".join(parts)


def parse_dicomweb_url(url: str) -> DicomwebLocation:
    """Split ``https://pacs/dicom-web/studies/S[/series/R[/instances/I]]`` into its parts.

    A URL without ``/studies/`` is a service root. Credentials and query strings are dropped.

    Raises
    ------
    ValueError
        Not an http(s) URL, or a malformed path after ``/studies/``.
    """
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("a DICOMweb URL starts with http:// or https:// and names a server")
    clean = str(parsed.copy_with(userinfo=b"", query=None, fragment=None)).rstrip("/")
    segments = clean.split("/")
    try:
        start = segments.index("studies", 3)
    except ValueError:
        return DicomwebLocation(clean)
    base = "/".join(segments[:start])
    rest = segments[start:]
    uids: list[str] = []
    for index, level in enumerate(_LEVELS):
        if len(rest) <= 2 * index:
            break
        if rest[2 * index] != level or len(rest) < 2 * index + 2 or not rest[2 * index + 1]:
            raise ValueError(f"expected /{level}/UID in the DICOMweb URL path")
        uids.append(rest[2 * index + 1])
    if len(rest) > 2 * len(uids):
        raise ValueError("unexpected segments after the UIDs in the DICOMweb URL path")
    return DicomwebLocation(base, *uids)
