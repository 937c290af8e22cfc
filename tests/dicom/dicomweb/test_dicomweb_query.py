"""QIDO-RS against a real Orthanc: names, wildcards, fuzzy names, dates, modalities, paging."""

from __future__ import annotations

import datetime as dt

import pytest

from workstation.dicom.dicomweb import DicomwebClient, parse_dicomweb_url
from workstation.dicom.dicomweb.query import date_value, encode_query


@pytest.fixture
def client(orthanc):
    with DicomwebClient(orthanc.dicomweb_url, timeout=10) as client:
        yield client


def names(records):
    return sorted(r.patient_name for r in records)


def test_studies_by_name_wildcard_and_fuzzy(client, dataset):
    assert names(client.search_studies(patient_name="QIDO^BETA")) == ["QIDO^BETA"]
    assert names(client.search_studies(patient_name="QIDO^*")) == [
        "QIDO^ALPHA",
        "QIDO^BETA",
        "QIDO^GAMMA",
    ]
    assert names(client.search_studies(patient_name="QIDO^?ETA")) == ["QIDO^BETA"]
    # Fuzzy: part of the name, any case.
    assert names(client.search_studies(patient_name="lph", fuzzy=True)) == ["QIDO^ALPHA"]
    assert client.search_studies(patient_name="lph") == []
    [study] = client.search_studies(patient_id="Q-ALPHA")
    assert study.study_uid == dataset["alpha_ct"].study_uid
    assert study.modalities == ("CT", "MR") or sorted(study.modalities) == ["CT", "MR"]
    assert study.series_count == 2
    assert study.instance_count == 12 + 7
    assert study.study_date == "20230105"
    assert study.to_json()["patient_id"] == "Q-ALPHA"


def test_studies_by_date_range(client):
    by_date = {
        "20240615": ["QIDO^BETA"],
        ("20240101", "20241231"): ["QIDO^BETA"],
        (dt.date(2024, 1, 1), None): ["QIDO^BETA", "QIDO^GAMMA"],
        (None, "2023-12-31"): ["QIDO^ALPHA"],
        "20230101-20240701": ["QIDO^ALPHA", "QIDO^BETA"],
    }
    for value, expected in by_date.items():
        found = client.search_studies(patient_name="QIDO^*", study_date=value)
        assert names(found) == expected, value


def test_studies_by_modality(client):
    assert names(client.search_studies(patient_name="QIDO^*", modalities="MR")) == [
        "QIDO^ALPHA",
        "QIDO^BETA",
    ]
    assert names(client.search_studies(patient_name="QIDO^*", modalities=["CT"])) == [
        "QIDO^ALPHA",
        "QIDO^GAMMA",
    ]
    assert len(client.search_studies(patient_name="QIDO^*", modalities=["CT", "MR"])) == 3


def test_limit_and_offset_page_through_every_study(client):
    everything = client.search_studies(patient_name="QIDO^*")
    pages = [client.search_studies(patient_name="QIDO^*", limit=1, offset=i) for i in range(4)]
    assert [len(p) for p in pages] == [1, 1, 1, 0]
    assert sorted(p[0].study_uid for p in pages[:3]) == sorted(s.study_uid for s in everything)
    paged = list(client.iter_studies(page_size=2, patient_name="QIDO^*"))
    assert sorted(s.study_uid for s in paged) == sorted(s.study_uid for s in everything)


def test_series_and_instances(client, dataset):
    alpha = dataset["alpha_ct"]
    series = client.search_series(alpha.study_uid)
    assert sorted((s.modality, s.instance_count) for s in series) == [("CT", 12), ("MR", 7)]
    [mr] = client.search_series(alpha.study_uid, modality="MR")
    assert mr.series_uid == dataset["alpha_mr"].series_uid
    assert mr.description == "alpha mr"
    instances = client.search_instances(alpha.study_uid, alpha.series_uid)
    assert len(instances) == 12
    assert {i.rows for i in instances} == {32}
    first = client.search_instances(alpha.study_uid, alpha.series_uid, limit=5)
    rest = client.search_instances(alpha.study_uid, alpha.series_uid, offset=5)
    uids = [i.sop_instance_uid for i in first + rest]
    assert sorted(uids) == sorted(i.sop_instance_uid for i in instances)
    assert client.search_series(alpha.study_uid, modality="PT") == []


def test_query_encoding_keeps_what_dicom_matching_needs():
    query = encode_query({"PatientName": "DOE^J*", "ModalitiesInStudy": "CT,MR", "x": None})
    assert query == "PatientName=DOE^J*&ModalitiesInStudy=CT,MR"
    assert encode_query([("StudyDescription", "a b&c=d")]) == "StudyDescription=a%20b%26c%3Dd"
    assert date_value((None, dt.date(2021, 2, 3))) == "-20210203"
    assert date_value("2021-02-03") == "20210203"
    with pytest.raises(ValueError):
        date_value("yesterday")


def test_dicomweb_urls_are_split_into_root_and_uids():
    location = parse_dicomweb_url("https://u:p@pacs:8443/wado/dicom-web/studies/1.2/series/3.4")
    assert location.base_url == "https://pacs:8443/wado/dicom-web"
    assert (location.study_uid, location.series_uid, location.sop_uid) == ("1.2", "3.4", None)
    assert location.url == "https://pacs:8443/wado/dicom-web/studies/1.2/series/3.4"
    assert parse_dicomweb_url("http://pacs/dicom-web/").study_uid is None
    with pytest.raises(ValueError):
        parse_dicomweb_url("http://pacs/dicom-web/studies/1.2/frames/1")
    with pytest.raises(ValueError):
        parse_dicomweb_url("ftp://pacs/dicom-web")
