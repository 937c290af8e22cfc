"""The public face of ``workstation.dicom.dicomweb``: complete, importable, one error root."""

from __future__ import annotations

import inspect

import workstation.dicom.dicomweb as dicomweb
from workstation.dicom.dicomweb import errors
from workstation.dicom.errors import DicomError


def test_all_is_complete_and_sorted():
    assert dicomweb.__all__ == sorted(dicomweb.__all__, key=lambda n: (n[0].islower(), n))
    for name in dicomweb.__all__:
        assert getattr(dicomweb, name) is not None
    public_errors = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, DicomError) and value is not DicomError
    }
    assert public_errors <= set(dicomweb.__all__)


def test_every_error_is_a_dicomweb_error():
    for name in dicomweb.__all__:
        value = getattr(dicomweb, name)
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, dicomweb.DicomwebError), name
    error = dicomweb.AuthenticationError("refused", url="http://pacs/x", status=401)
    assert (error.url, error.status, str(error)) == ("http://pacs/x", 401, "refused")


def test_credentials_never_show():
    client = dicomweb.DicomwebClient("https://bob:s3cret@pacs.example:8443/dicom-web/")
    assert client.base_url == "https://pacs.example:8443/dicom-web"
    assert "s3cret" not in repr(client)
    assert "t0ken" not in repr(dicomweb.BearerAuth("t0ken"))
    client.close()
