"""The registry service starts as its console script and answers on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_health() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from workstation.registry.cli import main; main()",
         "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "registry did not start in 20 s"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_usage_error_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from workstation.registry.cli import main; main()"],
        capture_output=True,
    )
    assert result.returncode == 2
