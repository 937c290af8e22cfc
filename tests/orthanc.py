"""A real Orthanc PACS with its DICOMweb plugin, for the DICOMweb tests and benchmark.

Orthanc (Debian packages ``orthanc`` and ``orthanc-dicomweb``) runs in the foreground on a free
loopback port with a temporary configuration and storage, and stops with the session. As root
it runs as the ``orthanc`` user (it owns the temporary folder); otherwise as whoever runs the
tests. It listens on every interface, but ``RemoteAccessAllowed: false`` refuses anything but
loopback clients, and its DICOM port is off.

    install = find_orthanc()              # None when Orthanc or the plugin is missing
    with Orthanc(install, users={"alice": "pw"}) as server:
        server.upload(paths)              # REST upload (not STOW-RS, which is under test)
        client = DicomwebClient(server.dicomweb_url, auth=server.credentials)

Tests skip when Orthanc is missing, unless ``MEDWS_REQUIRE_ORTHANC=1`` (CI), where they fail.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

REQUIRE_ENV = "MEDWS_REQUIRE_ORTHANC"
_PLUGIN_NAME = "libOrthancDicomWeb.so"
_PLUGIN_GLOBS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
)
_READY_TIMEOUT_S = 30.0


def orthanc_required() -> bool:
    """True when a missing Orthanc must fail the tests rather than skip them."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


@dataclass(frozen=True)
class OrthancInstallation:
    """Where the Orthanc server and its DICOMweb plugin are."""

    binary: str
    plugin: str


def _plugin_from_dpkg() -> str | None:
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return None
    found = [line for line in listing.splitlines() if line.endswith(_PLUGIN_NAME)]
    return found[0] if found else None


def find_orthanc() -> OrthancInstallation | None:
    """The installed Orthanc and DICOMweb plugin, or None."""
    binary = shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.path.exists(p)), None
    )
    if binary is None:
        return None
    plugin = _plugin_from_dpkg()
    if plugin is None:
        candidates = [p for pattern in _PLUGIN_GLOBS for p in sorted(glob.glob(pattern))]
        plugin = candidates[0] if candidates else None
    return None if plugin is None else OrthancInstallation(binary, plugin)


def free_port() -> int:
    """A TCP port free on loopback right now (closed again: nothing listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Orthanc:
    """One Orthanc process with a temporary configuration and storage (a context manager)."""

    def __init__(
        self, install: OrthancInstallation, *, users: Mapping[str, str] | None = None
    ) -> None:
        self.install = install
        self.users = dict(users or {})
        self.port = 0
        self.workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._rest: httpx.Client | None = None

    @property
    def url(self) -> str:
        """The server root (REST API)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb service root."""
        return f"{self.url}/dicom-web"

    @property
    def credentials(self) -> tuple[str, str] | None:
        """The first registered user and password, or None without authentication."""
        return next(iter(self.users.items()), None)

    def __enter__(self) -> Orthanc:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self, storage: Path) -> dict[str, object]:
        return {
            "Name": "medws-test",
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "SaveJobs": False,
            "Plugins": [self.install.plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }

    def start(self) -> None:
        """Start Orthanc and wait until it answers (a busy port gets a second try)."""
        self.workdir = Path(tempfile.mkdtemp(prefix="medws-orthanc-"))
        for _attempt in range(3):
            self.port = free_port()
            storage = self.workdir / "storage"
            storage.mkdir(exist_ok=True)
            config = self.workdir / "orthanc.json"
            config.write_text(json.dumps(self._config(storage)))
            as_root = hasattr(os, "geteuid") and os.geteuid() == 0
            if as_root:
                shutil.chown(self.workdir, "orthanc", "orthanc")
                for path in (storage, config):
                    shutil.chown(path, "orthanc", "orthanc")
            log = open(self.workdir / "orthanc.log", "wb")  # noqa: SIM115 - kept by the process
            self._process = subprocess.Popen(
                [self.install.binary, str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # As root, drop to the packaged service account (as ``runuser -u orthanc``).
                user="orthanc" if as_root else None,
                group="orthanc" if as_root else None,
                extra_groups=[] if as_root else None,
            )
            log.close()
            if self._wait_ready():
                self._rest = httpx.Client(
                    base_url=self.url,
                    auth=self.credentials,
                    timeout=60,
                    headers={"Accept-Encoding": "identity"},
                )
                return
            self._terminate()
        raise RuntimeError(f"Orthanc did not start; its log:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                response = httpx.get(f"{self.url}/system", auth=self.credentials, timeout=1)
                if response.status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 40) -> str:
        """The end of Orthanc's log."""
        if self.workdir is None:
            return ""
        try:
            text = (self.workdir / "orthanc.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Its storage is thrown away, so there is nothing to shut down gracefully (SIGTERM
        # costs 2.4 s of Orthanc winding down its HTTP server).
        process.kill()
        process.wait(10)

    def stop(self) -> None:
        """Stop Orthanc (by its process id) and delete its storage."""
        if self._rest is not None:
            self._rest.close()
            self._rest = None
        self._terminate()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def upload(self, files: Iterable[str | os.PathLike[str] | bytes]) -> list[str]:
        """Store DICOM files through the REST API; the Orthanc instance ids."""
        assert self._rest is not None, "Orthanc is not running"
        ids = []
        for item in files:
            data = item if isinstance(item, bytes) else Path(item).read_bytes()
            response = self._rest.post("/instances", content=data)
            response.raise_for_status()
            ids.append(str(response.json()["ID"]))
        return ids

    def clear(self) -> None:
        """Delete every patient (and so everything) stored."""
        assert self._rest is not None, "Orthanc is not running"
        for patient in self._rest.get("/patients").json():
            self._rest.delete(f"/patients/{patient}").raise_for_status()


def installed_or_skip() -> OrthancInstallation:
    """The Orthanc installation; skip the test without one (fail under MEDWS_REQUIRE_ORTHANC)."""
    import pytest

    install = find_orthanc()
    if install is None:
        message = "Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"  # noqa: E501
        if orthanc_required():
            pytest.fail(message + "; MEDWS_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    return install
