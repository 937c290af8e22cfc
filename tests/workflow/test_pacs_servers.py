"""The saved PACS servers: JSON round trip, no secrets on disk, atomic writes, tolerant reads."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from workstation.workflow.pacs_servers import PacsServers, PacsServersError
from workstation.workflow.remote import Credentials, PacsServer

SECRET = "s3cret-pw"
TOKEN = "tok-123456"


@pytest.fixture
def store(tmp_path: Path) -> PacsServers:
    return PacsServers(tmp_path / "pacs_servers.json")


def _server(url: str = "https://pacs.example/dicom-web", **fields: object) -> PacsServer:
    return PacsServer(url, **fields)  # type: ignore[arg-type]


def test_missing_file_is_an_empty_list(store: PacsServers) -> None:
    assert store.servers() == []
    assert not store.path.exists()


def test_default_path_is_in_the_workstation_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "home"))
    saved = PacsServers()
    assert saved.path == (tmp_path / "home").resolve() / "pacs_servers.json"
    saved.add(_server())
    assert saved.path.exists()


def test_add_round_trips_every_field(store: PacsServers) -> None:
    first = _server(name="Main PACS", username="alice", verify="/etc/ca.pem", timeout=12.5)
    second = _server("http://127.0.0.1:8042/dicom-web/", name="", verify=False)
    store.add(first)
    store.add(second)
    assert store.servers() == [first, _server("http://127.0.0.1:8042/dicom-web", verify=False)]
    loaded = PacsServers(store.path).servers()[0]
    assert (loaded.url, loaded.name, loaded.username, loaded.verify, loaded.timeout) == (
        first.url,
        "Main PACS",
        "alice",
        "/etc/ca.pem",
        12.5,
    )


def test_passwords_tokens_and_url_userinfo_never_reach_the_file(store: PacsServers) -> None:
    server = _server(
        f"https://bob:{SECRET}@pacs.example/dicom-web?x=1", username="bob"
    ).with_credentials(Credentials(password=SECRET, token=TOKEN))
    saved = store.add(server)
    text = store.path.read_text()
    assert SECRET not in text and TOKEN not in text
    assert saved.url == "https://pacs.example/dicom-web"
    assert saved.credentials == Credentials()
    assert json.loads(text)["servers"] == [
        {
            "url": "https://pacs.example/dicom-web",
            "name": "",
            "username": "bob",
            "verify": True,
            "timeout": 30.0,
        }
    ]
    assert store.servers()[0].credentials.password is None


def test_add_replaces_the_same_url_and_user_in_place(store: PacsServers) -> None:
    store.add(_server(name="one", username="alice"))
    store.add(_server("http://other/dicom-web", name="two"))
    store.add(_server("HTTPS://PACS.example/dicom-web/", name="renamed", username="alice"))
    store.add(_server(name="as bob", username="bob"))
    assert [s.name for s in store.servers()] == ["renamed", "two", "as bob"]


def test_update_replaces_in_place_and_drops_duplicates(store: PacsServers) -> None:
    a, b, c = (_server(f"http://h{i}/dicom-web", name=f"n{i}") for i in range(3))
    for server in (a, b, c):
        store.add(server)
    store.update(b, _server("http://h1/dicom-web", name="bee", timeout=5.0))
    assert [s.name for s in store.servers()] == ["n0", "bee", "n2"]
    store.update(a, _server("http://h2/dicom-web", name="moved"))  # now duplicates c
    assert [(s.url, s.name) for s in store.servers()] == [
        ("http://h2/dicom-web", "moved"),
        ("http://h1/dicom-web", "bee"),
    ]
    with pytest.raises(KeyError):
        store.update(_server("http://nowhere/dicom-web"), a)


def test_remove(store: PacsServers) -> None:
    store.add(_server(username="alice"))
    store.add(_server(username="bob"))
    assert store.remove(_server(username="alice", name="whatever"))
    assert not store.remove(_server(username="alice"))
    assert [s.username for s in store.servers()] == ["bob"]


def test_not_a_url_is_refused(store: PacsServers) -> None:
    with pytest.raises(ValueError, match="http"):
        store.add(_server("pacs.example/dicom-web"))
    assert store.servers() == []


def test_writes_are_private_and_leave_no_temporary_files(store: PacsServers) -> None:
    store.add(_server())
    store.add(_server("http://second/dicom-web"))
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["pacs_servers.json"]


def test_an_unwritable_folder_raises_a_workstation_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = PacsServers(blocker / "pacs_servers.json")
    with pytest.raises(PacsServersError, match="cannot save"):
        store.add(_server())


@pytest.mark.parametrize(
    "content",
    [
        '{"servers": [{"url": "https://patient-DOE/dicom-web", ',  # truncated JSON
        '["https://patient-DOE/dicom-web"]',  # not our layout
        b"\xff\xfe patient-DOE",  # not UTF-8
    ],
)
def test_a_corrupt_file_is_an_empty_list_and_a_warning_without_its_contents(
    store: PacsServers, caplog: pytest.LogCaptureFixture, content: str | bytes
) -> None:
    if isinstance(content, bytes):
        store.path.write_bytes(content)
    else:
        store.path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="workstation.workflow.pacs_servers"):
        assert store.servers() == []
    assert caplog.records, "a warning is logged"
    assert "DOE" not in caplog.text
    store.add(_server())  # a corrupt file is replaced by the next save
    assert len(store.servers()) == 1


def test_malformed_entries_are_skipped(
    store: PacsServers, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"url": "http://good/dicom-web", "name": "g", "username": None, "verify": True}
    bad = [
        {"url": 5},
        {"url": "ftp://x/y"},
        {"url": "http://x", "verify": 3},
        {"url": "http://x", "timeout": -1},
        "http://DOE",
    ]
    store.path.write_text(json.dumps({"version": 1, "servers": [*bad, good]}))
    with caplog.at_level(logging.WARNING, logger="workstation.workflow.pacs_servers"):
        assert store.servers() == [_server("http://good/dicom-web", name="g")]
    assert "5 malformed" in caplog.text
    assert "DOE" not in caplog.text
