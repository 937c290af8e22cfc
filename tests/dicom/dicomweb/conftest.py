"""Fixtures for the DICOMweb tests: a real Orthanc with test series, and servers that misbehave.

``orthanc`` (session) is an Orthanc with the DICOMweb plugin holding the series of ``dataset``:
three synthetic studies for searching (written with the project's writer) and real files from
pydicom's test data (a 5-slice CT, RLE and JPEG-LS compressed MR, a multi-frame RT dose).
``orthanc_auth`` is a second Orthanc that requires a user name and password.

``fault_proxy`` stands between the client and the real Orthanc and, by a plan the test sets,
answers 500, cuts multipart bodies short or breaks connections off; ``stalling_server`` accepts
connections and never answers; ``closed_port`` is a port nothing listens on.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import realdata
from orthanc import Orthanc, OrthancInstallation, find_orthanc, free_port, orthanc_required


@dataclass
class RemoteSeries:
    """A series stored in Orthanc and the local files it came from."""

    study_uid: str
    series_uid: str
    files: list[Path]
    stored: np.ndarray | None = None  # the written stored values (synthetic series)


@dataclass
class Dataset:
    """What the session's Orthanc holds, by name."""

    series: dict[str, RemoteSeries] = field(default_factory=dict)

    def __getitem__(self, name: str) -> RemoteSeries:
        return self.series[name]


def _uids(path: Path) -> tuple[str, str]:
    import pydicom

    header = pydicom.dcmread(path, stop_before_pixels=True)
    return str(header.StudyInstanceUID), str(header.SeriesInstanceUID)


def _synthetic(
    folder: Path, name: str, shape: tuple[int, int, int], **spec: object
) -> RemoteSeries:
    from workstation.dicom.synthetic import SeriesSpec, write_series

    dtype = np.int16 if spec.get("modality") == "CT" else np.uint16
    rng = np.random.default_rng(len(name))
    stored = rng.integers(0, 3000, size=shape).astype(dtype)
    theta = np.radians(20.0)
    direction = np.array(
        [[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]]
    )
    paths = write_series(
        folder / name,
        stored,
        spacing=(0.8, 0.9, 2.5),
        origin=(-12.5, 30.0, 7.25),
        direction=direction,
        spec=SeriesSpec(**spec),  # type: ignore[arg-type]
    )
    study, series = _uids(paths[0])
    return RemoteSeries(study, series, paths, stored)


def _build_dataset(folder: Path) -> Dataset:
    from pydicom.uid import generate_uid

    data = Dataset()
    alpha_study = generate_uid()
    data.series["alpha_ct"] = _synthetic(
        folder, "alpha_ct", (12, 32, 32), modality="CT", patient_name="QIDO^ALPHA",
        patient_id="Q-ALPHA", study_date="20230105", study_uid=alpha_study,
        rescale_intercept=-1024.0, series_number=1, series_description="alpha ct",
    )  # fmt: skip
    data.series["alpha_mr"] = _synthetic(
        folder, "alpha_mr", (7, 20, 24), modality="MR", patient_name="QIDO^ALPHA",
        patient_id="Q-ALPHA", study_date="20230105", study_uid=alpha_study, series_number=2,
        series_description="alpha mr",
    )  # fmt: skip
    data.series["beta_mr"] = _synthetic(
        folder, "beta_mr", (5, 16, 16), modality="MR", patient_name="QIDO^BETA",
        patient_id="Q-BETA", study_date="20240615",
    )  # fmt: skip
    data.series["gamma_ct"] = _synthetic(
        folder, "gamma_ct", (40, 64, 64), modality="CT", patient_name="QIDO^GAMMA",
        patient_id="Q-GAMMA", study_date="20250301", rescale_slope=0.5,
        rescale_intercept=-100.0,
    )  # fmt: skip
    # Real scanner files, as tests/realdata.py describes them (from pydicom's own wheel).
    cases = {case.name: case for case in realdata.pydicom_series()}
    for name, case in (
        ("real_ct5n", "pydicom/CT5N"),  # GE CT, 5 slices, rescaled
        ("real_mr_rle", "pydicom/MR_small_RLE"),
        ("real_mr_jpegls", "pydicom/MR_small_jpeg_ls"),
        ("real_rtdose", "pydicom/rtdose"),  # multi-frame, frame positions from a grid
    ):
        files = list(cases[case].files)
        if name == "real_mr_jpegls":  # the same UIDs as the RLE file: Orthanc keeps one
            files = [_relabelled(files[0], folder / name)]
        data.series[name] = RemoteSeries(*_uids(files[0]), files=files)
    return data


def _relabelled(path: Path, folder: Path) -> Path:
    """A copy of a file with new study, series and instance UIDs (pixel data untouched)."""
    import pydicom
    from pydicom.uid import generate_uid

    dataset = pydicom.dcmread(path)
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    dataset.save_as(target, enforce_file_format=True)
    return target


@pytest.fixture(scope="session")
def orthanc_install() -> OrthancInstallation:
    install = find_orthanc()
    if install is None:
        message = "Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc " \
            "orthanc-dicomweb)"  # fmt: skip
        if orthanc_required():
            pytest.fail(message + "; MEDWS_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    return install


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return _build_dataset(tmp_path_factory.mktemp("dicomweb-data"))


@pytest.fixture(scope="session")
def orthanc(orthanc_install: OrthancInstallation, dataset: Dataset) -> Iterator[Orthanc]:
    with Orthanc(orthanc_install) as server:
        server.upload(path for series in dataset.series.values() for path in series.files)
        yield server


@pytest.fixture(scope="session")
def orthanc_auth(orthanc_install: OrthancInstallation, dataset: Dataset) -> Iterator[Orthanc]:
    with Orthanc(orthanc_install, users={"alice": "correct horse"}) as server:
        server.upload(dataset["beta_mr"].files)
        yield server


# -- servers that misbehave ------------------------------------------------------------------
# (request number, path) -> "pass", an HTTP status ("500"), "truncate" (a well-framed body whose
# multipart is cut in half), "cut" (the connection breaks off mid-body) or "garbage" (not JSON).
Plan = Callable[[int, str], str]


class FaultProxy:
    """An HTTP proxy to the real Orthanc that misbehaves as ``plan`` says, per request."""

    def __init__(self, upstream: str, *, tls: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.plan: Plan = lambda number, path: "pass"
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30, headers={"Accept-Encoding": "identity"})
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

            def do_GET(self) -> None:  # the http.server naming
                proxy._serve(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            number = len(self.paths)
            self.paths.append(handler.path)
        action = self.plan(number, handler.path)
        if action.isdigit():
            handler.send_response(int(action))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if action == "garbage":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/dicom+json")
            handler.send_header("Content-Length", "9")
            handler.end_headers()
            handler.wfile.write(b"{not json")
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("accept",)}
        upstream = self._client.get(self.upstream + handler.path, headers=headers)
        body = upstream.content
        handler.send_response(upstream.status_code)
        if "content-type" in upstream.headers:
            handler.send_header("Content-Type", upstream.headers["content-type"])
        if action == "truncate":  # a well-framed HTTP body holding a cut multipart
            body = body[: len(body) // 2]
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if action == "cut":  # the connection breaks off halfway through the body
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(body)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@pytest.fixture
def fault_proxy(orthanc: Orthanc) -> Iterator[FaultProxy]:
    proxy = FaultProxy(orthanc.url)
    yield proxy
    proxy.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (its own CA), and its key."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "medws test PACS")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "pacs.pem", folder / "pacs.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_proxy(orthanc: Orthanc, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path]]:
    """An HTTPS front to the real Orthanc with a self-signed certificate, and that certificate."""
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    proxy = FaultProxy(orthanc.url, tls=context)
    yield proxy, cert
    proxy.close()


class StallingServer:
    """Accepts connections and reads requests, but never answers."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._socket.settimeout(0.05)
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._held:
            connection.close()
        self._socket.close()


@pytest.fixture
def stalling_server() -> Iterator[StallingServer]:
    server = StallingServer()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    return free_port()
