"""The PACS dialog against a real Orthanc: search, expand, choose, page, errors, saved servers.

A module-scoped Orthanc (``tests/orthanc.py``) holds four small synthetic studies; a second one
requires a user name and password. Without Orthanc the tests that need it skip, unless
``MEDWS_REQUIRE_ORTHANC=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from orthanc import Orthanc, OrthancInstallation, find_orthanc, free_port, orthanc_required
from PySide6.QtCore import Qt

from workstation.config import paths
from workstation.dicom.synthetic import SeriesSpec, write_series
from workstation.ui.pacs_dialog import PacsDialog
from workstation.workflow.remote import RemoteSeries

WAIT_MS = 30_000  # a bound for a hung worker, not a timing requirement
PASSWORD = "correct horse"
WRONG = "wrong-pw-4711"


@dataclass
class Uploaded:
    """The synthetic studies and series written for Orthanc, by name."""

    studies: dict[str, str] = field(default_factory=dict)  # name -> StudyInstanceUID
    series: dict[str, str] = field(default_factory=dict)  # name -> SeriesInstanceUID
    files: dict[str, list[Path]] = field(default_factory=dict)  # study name -> its files


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory: pytest.TempPathFactory) -> Uploaded:
    from pydicom.uid import generate_uid

    folder = tmp_path_factory.mktemp("pacs-dialog-data")
    data = Uploaded()
    plan = [  # study, patient, date, [(series, modality, number, slices)]
        ("alpha", "PACSUI^ALPHA", "20230105", [("alpha_ct", "CT", 1, 3), ("alpha_mr", "MR", 2, 2)]),
        ("beta", "PACSUI^BETA", "20240615", [("beta_mr", "MR", 1, 2)]),
        ("gamma", "PACSUI^GAMMA", "20250301", [("gamma_ct", "CT", 1, 2)]),
        ("delta", "OTHER^DELTA", "20220101", [("delta_ct", "CT", 1, 2)]),
    ]  # fmt: skip
    for study, patient, date, series in plan:
        data.studies[study] = generate_uid()
        data.files[study] = []
        for name, modality, number, slices in series:
            data.series[name] = generate_uid()
            stored = np.arange(slices * 8 * 8, dtype=np.uint16).reshape(slices, 8, 8)
            spec = SeriesSpec(
                modality=modality,
                patient_name=patient,
                patient_id=f"ID-{study.upper()}",
                study_date=date,
                study_description=f"{study} study",
                series_description=name.replace("_", " "),
                series_number=number,
                study_uid=data.studies[study],
                series_uid=data.series[name],
            )
            data.files[study] += write_series(folder / name, stored, spec=spec)
    return data


@pytest.fixture(scope="module")
def orthanc_install() -> OrthancInstallation:
    install = find_orthanc()
    if install is None:
        message = "Orthanc with the DICOMweb plugin is not installed"
        if orthanc_required():
            pytest.fail(f"{message}; MEDWS_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    return install


@pytest.fixture(scope="module")
def orthanc(orthanc_install: OrthancInstallation, uploaded: Uploaded) -> Iterator[Orthanc]:
    with Orthanc(orthanc_install) as server:
        server.upload(path for files in uploaded.files.values() for path in files)
        yield server


@pytest.fixture(scope="module")
def orthanc_auth(orthanc_install: OrthancInstallation, uploaded: Uploaded) -> Iterator[Orthanc]:
    with Orthanc(orthanc_install, users={"alice": PASSWORD}) as server:
        server.upload(uploaded.files["beta"])
        yield server


@pytest.fixture
def make_dialog(qtbot: Any) -> Iterator[Any]:
    made: list[PacsDialog] = []

    def make(**kwargs: Any) -> PacsDialog:
        dialog = PacsDialog(**kwargs)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        made.append(dialog)
        return dialog

    yield make
    for dialog in made:
        dialog.shutdown()


@pytest.fixture
def dialog(make_dialog: Any) -> PacsDialog:
    return make_dialog()


def set_server(
    dialog: PacsDialog, url: str, user: str = "", password: str = "", name: str = ""
) -> None:
    form = dialog.server_form
    form.choose_new()
    form.url.setText(url)
    form.name.setText(name)
    form.username.setText(user)
    form.password.setText(password)


def search(qtbot: Any, dialog: PacsDialog, **filters: str) -> None:
    """Fill the search form and click Search; wait for the page."""
    dialog.patient_name.setText(filters.get("name", ""))
    dialog.patient_id.setText(filters.get("patient_id", ""))
    dialog.date_from.setText(filters.get("date_from", ""))
    dialog.date_to.setText(filters.get("date_to", ""))
    dialog.modality.setCurrentText(filters.get("modality", ""))
    dialog.fuzzy.setChecked(bool(filters.get("fuzzy")))
    with qtbot.waitSignal(dialog.search_finished, timeout=WAIT_MS):
        dialog.search_button.click()


def fail_search(qtbot: Any, dialog: PacsDialog) -> str:
    """Click Search and wait for the failure; the status line's text."""
    with qtbot.waitSignal(dialog.search_failed, timeout=WAIT_MS) as blocker:
        dialog.search_button.click()
    assert blocker.args[0] == dialog.status.text()
    assert dialog.status.property("error") is True
    assert "c62828" in dialog.status.styleSheet()  # red
    return dialog.status.text()


def expand(qtbot: Any, dialog: PacsDialog, study_uid: str) -> None:
    item = dialog.results.study_item(study_uid)
    assert item is not None
    with qtbot.waitSignal(
        dialog.series_listed, timeout=WAIT_MS, check_params_cb=lambda uid: uid == study_uid
    ):
        item.setExpanded(True)


def shown_studies(dialog: PacsDialog) -> list[str]:
    return [s.study_uid for s in dialog.results.studies()]


# -- searching -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"name": "PACSUI^*"}, {"alpha", "beta", "gamma"}),
        ({"name": "PACSUI^?ETA"}, {"beta"}),
        ({"name": "gamm", "fuzzy": "yes"}, {"gamma"}),
        ({"name": "PACSUI^*", "modality": "ct"}, {"alpha", "gamma"}),
        ({"date_from": "2023-01-01", "date_to": "20240701"}, {"alpha", "beta"}),
        ({"patient_id": "ID-DELTA"}, {"delta"}),
        ({"name": "NOBODY^*"}, set()),
    ],
)
def test_search_lists_the_matching_studies(
    qtbot: Any,
    dialog: PacsDialog,
    orthanc: Orthanc,
    uploaded: Uploaded,
    filters: dict[str, str],
    expected: set[str],
) -> None:
    set_server(dialog, orthanc.dicomweb_url)
    search(qtbot, dialog, **filters)
    assert sorted(shown_studies(dialog)) == sorted(uploaded.studies[n] for n in expected)
    assert dialog.status.property("error") is False
    assert not dialog.load_more_button.isEnabled()
    if not expected:
        assert "No studies" in dialog.status.text()


def test_study_rows_show_the_study(
    qtbot: Any, dialog: PacsDialog, orthanc: Orthanc, uploaded: Uploaded
) -> None:
    set_server(dialog, orthanc.dicomweb_url)
    search(qtbot, dialog, name="PACSUI^ALPHA")
    item = dialog.results.study_item(uploaded.studies["alpha"])
    assert item is not None
    texts = [item.text(column) for column in range(dialog.results.columnCount())]
    assert texts[:3] == ["2023-01-05", "PACSUI, ALPHA", "ID-ALPHA"]
    assert set(texts[3].split(", ")) == {"CT", "MR"}
    assert texts[4] == "alpha study"
    assert texts[5] == "2"


def test_expanding_a_study_lists_its_series(
    qtbot: Any, dialog: PacsDialog, orthanc: Orthanc, uploaded: Uploaded
) -> None:
    set_server(dialog, orthanc.dicomweb_url)
    search(qtbot, dialog, name="PACSUI^*")
    expand(qtbot, dialog, uploaded.studies["alpha"])
    rows = dialog.results.series_items(uploaded.studies["alpha"])
    assert [dialog.results.record(r).series_uid for r in rows] == [  # type: ignore[union-attr]
        uploaded.series["alpha_ct"],
        uploaded.series["alpha_mr"],
    ]
    assert [(r.text(0), r.text(3), r.text(4), r.text(5)) for r in rows] == [
        ("Series 1", "CT", "alpha ct", "3"),
        ("Series 2", "MR", "alpha mr", "2"),
    ]
    assert not dialog.searching
    assert not dialog.busy.isVisible() and not dialog.cancel_button.isEnabled()


def test_double_click_on_a_series_emits_it(
    qtbot: Any, dialog: PacsDialog, orthanc: Orthanc, uploaded: Uploaded
) -> None:
    set_server(dialog, orthanc.dicomweb_url, name="test PACS")
    search(qtbot, dialog, name="PACSUI^ALPHA")
    expand(qtbot, dialog, uploaded.studies["alpha"])
    row = dialog.results.series_items(uploaded.studies["alpha"])[1]
    dialog.results.scrollToItem(row)
    viewport, at = dialog.results.viewport(), dialog.results.visualItemRect(row).center()
    with qtbot.waitSignal(dialog.series_chosen, timeout=WAIT_MS) as blocker:
        # A real double-click is a press, a release and then the double-click event (the view
        # ignores a double-click on a row that was not pressed first).
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=at)
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=at)
    chosen = blocker.args[0]
    assert isinstance(chosen, RemoteSeries)
    assert (chosen.study_uid, chosen.series_uid) == (
        uploaded.studies["alpha"],
        uploaded.series["alpha_mr"],
    )
    assert chosen.server.url == orthanc.dicomweb_url
    assert chosen.server.name == "test PACS"
    assert chosen.description == "alpha mr"


def test_open_button_emits_the_current_series(
    qtbot: Any, dialog: PacsDialog, orthanc: Orthanc, uploaded: Uploaded
) -> None:
    set_server(dialog, orthanc.dicomweb_url)
    search(qtbot, dialog, name="PACSUI^GAMMA")
    study_row = dialog.results.study_item(uploaded.studies["gamma"])
    dialog.results.setCurrentItem(study_row)
    assert not dialog.open_button.isEnabled()  # a study is not a series
    expand(qtbot, dialog, uploaded.studies["gamma"])
    dialog.results.setCurrentItem(dialog.results.series_items(uploaded.studies["gamma"])[0])
    assert dialog.open_button.isEnabled()
    with qtbot.waitSignal(dialog.series_chosen, timeout=WAIT_MS) as blocker:
        dialog.open_button.click()
    assert blocker.args[0].series_uid == uploaded.series["gamma_ct"]


def test_load_more_pages_through_the_results(
    qtbot: Any, make_dialog: Any, orthanc: Orthanc, uploaded: Uploaded
) -> None:
    dialog = make_dialog(page_size=2)
    set_server(dialog, orthanc.dicomweb_url)
    search(qtbot, dialog, name="PACSUI^*")
    assert len(shown_studies(dialog)) == 2
    assert dialog.load_more_button.isEnabled()
    assert "Load more" in dialog.status.text()
    with qtbot.waitSignal(dialog.search_finished, timeout=WAIT_MS) as blocker:
        dialog.load_more_button.click()
    assert blocker.args == [3]
    assert sorted(shown_studies(dialog)) == sorted(
        uploaded.studies[n] for n in ("alpha", "beta", "gamma")
    )
    assert not dialog.load_more_button.isEnabled()


def test_cancel_stops_a_search(qtbot: Any, dialog: PacsDialog, orthanc: Orthanc) -> None:
    set_server(dialog, orthanc.dicomweb_url)
    dialog.search_button.click()
    assert dialog.busy.isVisible() and dialog.cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.runner.cancelled, timeout=WAIT_MS):
        dialog.cancel_button.click()  # before the GUI thread could take any result
    assert dialog.status.text() == "Search cancelled"
    assert shown_studies(dialog) == []
    assert not dialog.busy.isVisible()


# -- errors ----------------------------------------------------------------------------------
def test_a_wrong_password_shows_an_authentication_error_without_it(
    qtbot: Any, dialog: PacsDialog, orthanc_auth: Orthanc, uploaded: Uploaded
) -> None:
    set_server(dialog, orthanc_auth.dicomweb_url, user="alice", password=WRONG)
    message = fail_search(qtbot, dialog)
    assert "authentication failed" in message and "401" in message
    assert WRONG not in message
    assert shown_studies(dialog) == []

    dialog.server_form.password.setText(PASSWORD)  # the right one is attached and works
    search(qtbot, dialog)
    assert shown_studies(dialog) == [uploaded.studies["beta"]]
    expand(qtbot, dialog, uploaded.studies["beta"])
    assert len(dialog.results.series_items(uploaded.studies["beta"])) == 1


def test_a_closed_port_shows_the_server_unreachable(qtbot: Any, dialog: PacsDialog) -> None:
    set_server(dialog, f"http://127.0.0.1:{free_port()}/dicom-web", user="bob", password=WRONG)
    message = fail_search(qtbot, dialog)
    assert message.startswith("Search failed: server unreachable: cannot connect to 127.0.0.1")
    assert WRONG not in message


@pytest.mark.parametrize(
    ("url", "date_from", "reason"),
    [
        ("", "", "enter the server"),
        ("pacs.example/dicom-web", "", "http:// or https://"),
        ("http://127.0.0.1:9/dicom-web", "2024-13", "not a date"),
    ],
)
def test_an_incomplete_form_says_why_and_searches_nothing(
    dialog: PacsDialog, url: str, date_from: str, reason: str
) -> None:
    set_server(dialog, url)
    dialog.date_from.setText(date_from)
    assert not dialog.search()
    assert reason in dialog.status.text()
    assert dialog.status.property("error") is True
    assert not dialog.searching


# -- saved servers ---------------------------------------------------------------------------
def test_saving_a_server_persists_it_without_the_password(
    qtbot: Any, make_dialog: Any, orthanc: Orthanc
) -> None:
    dialog = make_dialog()
    secret = "pw-never-on-disk"
    set_server(dialog, orthanc.dicomweb_url, user="carol", password=secret, name="Ward PACS")
    dialog.server_form.timeout.setValue(12.0)
    with qtbot.waitSignal(dialog.server_form.saved, timeout=WAIT_MS):
        dialog.server_form.save_button.click()

    file = paths().home / "pacs_servers.json"
    text = file.read_text()
    assert secret not in text
    assert json.loads(text)["servers"] == [
        {
            "url": orthanc.dicomweb_url,
            "name": "Ward PACS",
            "username": "carol",
            "verify": True,
            "timeout": 12.0,
        }
    ]
    form = dialog.server_form
    assert form.combo.currentText() == "Ward PACS"
    assert form.password.text() == secret  # still in memory for this session
    assert "without the password" in dialog.status.text()

    again = make_dialog()  # a new dialog lists it, and asks for the password anew
    form = again.server_form
    assert [form.combo.itemText(i) for i in range(form.combo.count())] == ["Ward PACS", "New…"]
    assert form.url.text() == orthanc.dicomweb_url and form.username.text() == "carol"
    assert form.password.text() == ""
    search(qtbot, again, name="PACSUI^BETA")  # a saved server searches like a typed one
    assert len(shown_studies(again)) == 1

    form.name.setText("Renamed")  # editing a saved server updates its entry
    form.save()
    assert [s["name"] for s in json.loads(file.read_text())["servers"]] == ["Renamed"]
    assert form.remove()
    assert json.loads(file.read_text())["servers"] == []
    assert form.combo.currentText() == "New…"
