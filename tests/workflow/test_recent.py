"""The recent studies list: order, de-duplication, cap, persistence, atomic writes, bad files."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workstation.core.errors import WorkstationError
from workstation.workflow.recent import (
    MAX_ENTRIES,
    RecentStudies,
    RecentStudiesError,
    normalise_source,
)

PATIENT = "DOE^JANE"  # stands for a patient's name inside a path or a corrupt file


class Clock:
    """A clock that moves one minute per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "home" / "recent.json"


def _folders(tmp_path: Path, count: int) -> list[str]:
    made = []
    for index in range(count):
        folder = tmp_path / f"study{index}"
        folder.mkdir()
        made.append(str(folder))
    return made


def test_most_recent_first_with_times(store: Path, tmp_path: Path) -> None:
    first, second = _folders(tmp_path, 2)
    recent = RecentStudies(store, clock=Clock())
    assert recent.entries() == []
    recent.add(first)
    added = recent.add(second)
    entries = recent.entries()
    assert [e.source for e in entries] == [second, first]
    assert entries[0] == added
    assert [e.opened_at for e in entries] == [
        "2026-01-01T12:02:00+00:00",
        "2026-01-01T12:01:00+00:00",
    ]
    assert all(e.exists and not e.is_url for e in entries)


def test_reopening_moves_up_without_duplicates(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _folders(tmp_path, 2)
    recent = RecentStudies(store, clock=Clock())
    recent.add(first)
    recent.add(second)
    monkeypatch.chdir(tmp_path)
    recent.add("study0/")  # the same folder, relative, with a trailing separator
    recent.add(Path(tmp_path / "study1" / ".." / "study0"))
    assert [e.source for e in recent.entries()] == [first, second]


def test_urls_are_normalised_and_not_checked(store: Path) -> None:
    recent = RecentStudies(store)
    recent.add("HTTPS://PACS.example.org/dicom-web/studies/1.2.3/")
    recent.add("https://pacs.example.org/dicom-web/studies/1.2.3")
    [entry] = recent.entries()
    assert entry.source == "https://pacs.example.org/dicom-web/studies/1.2.3"
    assert entry.is_url and entry.exists
    # The path keeps its case (servers may tell UIDs or names apart by it).
    assert normalise_source("http://h/Studies/AbC") == "http://h/Studies/AbC"


def test_file_url_is_a_local_path(tmp_path: Path) -> None:
    [folder] = _folders(tmp_path, 1)
    assert normalise_source(Path(folder).as_uri()) == folder


def test_capped_at_ten_dropping_the_oldest(store: Path, tmp_path: Path) -> None:
    folders = _folders(tmp_path, MAX_ENTRIES + 2)
    recent = RecentStudies(store)
    for folder in folders:
        recent.add(folder)
    assert [e.source for e in recent.entries()] == folders[::-1][:MAX_ENTRIES]


def test_missing_paths_are_flagged(store: Path, tmp_path: Path) -> None:
    [folder] = _folders(tmp_path, 1)
    recent = RecentStudies(store)
    recent.add(folder)
    os.rmdir(folder)
    [entry] = recent.entries()
    assert entry.source == folder and not entry.exists


def test_remove_and_clear(store: Path, tmp_path: Path) -> None:
    first, second = _folders(tmp_path, 2)
    recent = RecentStudies(store)
    recent.add(first)
    recent.add(second)
    assert recent.remove(first + os.sep)
    assert not recent.remove(first)
    assert [e.source for e in recent.entries()] == [second]
    recent.clear()
    assert recent.entries() == []
    assert RecentStudies(store).entries() == []


def test_persisted_privately_with_only_source_and_time(store: Path, tmp_path: Path) -> None:
    [folder] = _folders(tmp_path, 1)
    RecentStudies(store, clock=Clock()).add(folder)
    assert [e.source for e in RecentStudies(store).entries()] == [folder]  # another instance
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    document = json.loads(store.read_text(encoding="utf-8"))
    assert document == {
        "version": 1,
        "entries": [{"source": folder, "opened_at": "2026-01-01T12:01:00+00:00"}],
    }
    assert sorted(p.name for p in store.parent.iterdir()) == ["recent.json"]  # no temp files


def test_default_file_is_in_the_workstation_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "wshome"))
    recent = RecentStudies()
    assert recent.path == (tmp_path / "wshome").resolve() / "recent.json"
    recent.add("https://example.org/studies/1")
    assert recent.path.is_file()


def test_two_instances_later_write_wins(store: Path, tmp_path: Path) -> None:
    first, second, third = _folders(tmp_path, 3)
    a, b = RecentStudies(store), RecentStudies(store)
    a.add(first)
    b.add(second)  # b reads a's write first: nothing is lost
    assert [e.source for e in a.entries()] == [second, first]
    a.clear()
    b.add(third)
    assert [e.source for e in a.entries()] == [third]


def test_concurrent_writers_never_corrupt_the_file(store: Path, tmp_path: Path) -> None:
    folders = _folders(tmp_path, 12)
    instances = [RecentStudies(store), RecentStudies(store)]
    errors: list[Exception] = []
    start = threading.Barrier(4)

    def hammer(recent: RecentStudies, offset: int) -> None:
        start.wait()
        try:
            for round_ in range(20):
                recent.add(folders[(offset + round_) % len(folders)])
                json.loads(store.read_text(encoding="utf-8"))  # always a whole document
        except (OSError, ValueError, WorkstationError) as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=hammer, args=(instances[n % 2], n * 3)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sources = [e.source for e in RecentStudies(store).entries()]
    assert 1 <= len(sources) <= MAX_ENTRIES and len(set(sources)) == len(sources)
    assert set(sources) <= set(folders)
    assert sorted(p.name for p in store.parent.iterdir()) == ["recent.json"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "entries": [{"source": "/data/' + PATIENT.encode() + b'", "open',
        b"\xff\xfe" + PATIENT.encode() + b"\x00\x81",
        b'["/data/' + PATIENT.encode() + b'"]',
        b"",
    ],
    ids=["truncated", "not-utf8", "wrong-layout", "empty"],
)
def test_corrupt_file_gives_an_empty_list_and_a_warning_without_its_contents(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    store.parent.mkdir(parents=True)
    store.write_bytes(content)
    recent = RecentStudies(store)
    with caplog.at_level(logging.WARNING, logger="workstation.workflow.recent"):
        assert recent.entries() == []
    assert caplog.records and str(store) in caplog.text
    assert PATIENT not in caplog.text and "DOE" not in caplog.text
    [folder] = _folders(tmp_path, 1)
    recent.add(folder)  # a new, valid file replaces the corrupt one
    assert [e.source for e in RecentStudies(store).entries()] == [folder]


def test_malformed_entries_are_skipped(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [folder] = _folders(tmp_path, 1)
    store.parent.mkdir(parents=True)
    entries = [
        {"source": folder, "opened_at": "2026-01-01T12:00:00+00:00"},
        {"source": f"/data/{PATIENT}"},
        "junk",
    ]
    store.write_text(json.dumps({"version": 1, "entries": entries}), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="workstation.workflow.recent"):
        assert [e.source for e in RecentStudies(store).entries()] == [folder]
    assert "2 malformed" in caplog.text and PATIENT not in caplog.text


def test_unreadable_file_and_failed_save(store: Path, caplog: pytest.LogCaptureFixture) -> None:
    store.mkdir(parents=True)  # a folder where the file should be: unreadable, unwritable
    recent = RecentStudies(store)
    with caplog.at_level(logging.WARNING, logger="workstation.workflow.recent"):
        assert recent.entries() == []
    assert caplog.records
    with pytest.raises(RecentStudiesError) as caught:
        recent.add("https://example.org/studies/1")
    assert caught.value.path == store
    assert sorted(p.name for p in store.parent.iterdir()) == ["recent.json"]  # temp removed


def test_empty_source_is_refused(store: Path) -> None:
    with pytest.raises(ValueError):
        RecentStudies(store).add("  ")
