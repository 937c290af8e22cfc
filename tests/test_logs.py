"""Structured JSON logs and the PHI-masking filter: planted PHI never reaches the file."""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from workstation.logs import MASK, Phi, PhiFilter, configure_logging, mask_text, phi

PLANTED = [
    "DOE^JOHN",
    "SMITH^JANE^Q",
    "19610415",
    "1961-04-15",
    "15/04/1961",
    "john.doe@example.org",
    "+1 555 123 4567",
    "555-123-4567",
    "123-45-6789",
    "MRN99887766",
    "Jane Smith",
]


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[tuple[logging.Logger, Path, PhiFilter]]:
    """A logger whose records go through configure_logging's handlers into a file."""
    path = tmp_path / "logs" / "test.jsonl"
    with configure_logging(level=logging.DEBUG, json_path=path) as setup:
        yield logging.getLogger("workstation.test"), path, setup.phi_filter


def _lines(path: Path) -> list[dict]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _assert_clean(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for value in PLANTED:
        assert value not in text, value


def test_lines_are_json_with_the_standard_fields(log_file) -> None:
    log, path, _ = log_file
    log.info("opened %d series", 3, extra={"series": "1.2.3", "count": 3, "ok": True})
    log.warning("second")
    lines = _lines(path)
    assert [line["message"] for line in lines] == ["opened 3 series", "second"]
    first = lines[0]
    assert first["level"] == "INFO" and first["logger"] == "workstation.test"
    assert first["time"].endswith("+00:00")
    assert first["series"] == "1.2.3" and first["count"] == 3 and first["ok"] is True


def test_phi_in_messages_is_masked(log_file) -> None:
    log, path, _ = log_file
    log.info("patient DOE^JOHN born 19610415 (1961-04-15, 15/04/1961)")
    log.info("mail john.doe@example.org, phone +1 555 123 4567 / 555-123-4567, ssn 123-45-6789")
    _assert_clean(path)
    assert MASK in _lines(path)[0]["message"]


def test_phi_in_args_is_masked(log_file) -> None:
    log, path, _ = log_file
    log.info("loading %s for %s", "SMITH^JANE^Q", phi("MRN99887766"))
    log.info("dict args %(name)s", {"name": "DOE^JOHN"})
    _assert_clean(path)
    assert _lines(path)[0]["message"] == f"loading {MASK} for {MASK}"


def test_identifying_extras_are_masked_whatever_their_value(log_file) -> None:
    log, path, _ = log_file
    log.info(
        "opened",
        extra={
            "patient_id": "MRN99887766",
            "PatientName": "Jane Smith",
            "birth-date": "whatever",
            "context": {"patient_name": "Jane Smith", "nested": ["DOE^JOHN", 19610415]},
            "note": phi("anything"),
            "series_uid": "1.2.840.113619.2.55.3",
        },
    )
    _assert_clean(path)
    line = _lines(path)[0]
    assert line["patient_id"] == line["PatientName"] == line["birth-date"] == MASK
    assert line["context"]["patient_name"] == MASK
    assert line["context"]["nested"][0] == MASK
    assert line["note"] == MASK
    assert line["series_uid"] == "1.2.840.113619.2.55.3"  # UIDs kept unless asked


def test_uids_are_masked_when_configured(tmp_path: Path) -> None:
    path = tmp_path / "uids.jsonl"
    with configure_logging(json_path=path, mask_uids=True):
        logging.getLogger("workstation.test").info(
            "study 1.2.840.113619.2.55.3.604688", extra={"uid": "1.2.840.10008.5.1.4.1.1.2"}
        )
    line = _lines_of(path)[0]
    assert "1.2.840" not in json.dumps(line)


def _lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_known_values_are_masked_only_inside_the_block(log_file) -> None:
    log, path, phi_filter = log_file
    with phi_filter.known(["Jane Smith", "MRN99887766"]):
        log.info("report for jane smith, id MRN99887766")
    log.info("report for Jane Smith")  # outside: a plain-text name is not recognisable
    lines = _lines(path)
    assert lines[0]["message"] == f"report for {MASK}, id {MASK}"
    assert lines[1]["message"] == "report for Jane Smith"


def test_exceptions_and_stacks_are_masked(log_file) -> None:
    log, path, _ = log_file
    try:
        raise KeyError("DOE^JOHN 19610415")
    except KeyError:
        log.exception("lookup failed")
    log.info("where", stack_info=True, extra={"who": "SMITH^JANE^Q"})
    _assert_clean(path)
    lines = _lines(path)
    assert "KeyError" in lines[0]["exception"] and MASK in lines[0]["exception"]
    assert "stack" in lines[1]


def test_third_party_loggers_and_warnings_are_filtered(log_file) -> None:
    _, path, _ = log_file
    logging.getLogger("pydicom").warning("Invalid value for PN: 'DOE^JOHN'")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("value 'SMITH^JANE^Q' is too long", UserWarning, stacklevel=1)
    _assert_clean(path)
    assert {line["logger"] for line in _lines(path)} == {"pydicom", "py.warnings"}


def test_stream_output(tmp_path: Path) -> None:
    stream = io.StringIO()
    with configure_logging(json_path=None, stream=stream) as setup:
        assert setup.path is None
        log = logging.getLogger("workstation.test")
        log.info("%s items for %s", 3, "DOE^JOHN")
        log.info("plain DOE^JOHN")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "DOE^JOHN" not in stream.getvalue()
    assert lines[-1]["message"] == f"plain {MASK}"


def test_default_path_is_under_the_workstation_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path))
    with configure_logging() as setup:
        logging.getLogger("workstation.test").info("hello")
        assert setup.path == tmp_path / "logs" / "workstation.jsonl"
    assert _lines_of(tmp_path / "logs" / "workstation.jsonl")[0]["message"] == "hello"


def test_reconfiguring_replaces_the_handlers(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    first = configure_logging(json_path=tmp_path / "a.jsonl")
    second = configure_logging(json_path=tmp_path / "b.jsonl")
    try:
        assert len(root.handlers) == before + 1
    finally:
        second.close()
        first.close()
    assert len(root.handlers) == before


def test_rotation_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "rot.jsonl"
    with configure_logging(json_path=path, max_bytes=2000, backup_count=2):
        log = logging.getLogger("workstation.test")
        for i in range(200):
            log.info("line %d for DOE^JOHN", i)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rot.jsonl", "rot.jsonl.1", "rot.jsonl.2"]
    for name in files:
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "DOE^JOHN" not in text
        assert all(json.loads(line) for line in text.splitlines())
        assert os.path.getsize(tmp_path / name) <= 2000 + 200


def test_phi_wrapper_hides_the_value_everywhere() -> None:
    value = phi("DOE^JOHN")
    assert str(value) == repr(value) == f"{value}" == f"{value:>20}" == MASK
    assert phi(value) is value and isinstance(value, Phi)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("shape 512 512 176", True),
        ("version 1.2.3", True),
        ("x ^ y", True),
        ("took 12.5 s, 3 files", True),
        ("DOE^JOHN", False),
        ("2024-01-31", False),
    ],
)
def test_mask_text_leaves_ordinary_text_alone(text: str, kept: bool) -> None:
    assert (mask_text(text) == text) is kept
