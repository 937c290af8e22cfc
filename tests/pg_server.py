"""A throwaway PostgreSQL server for the tests (Debian's ``postgresql``, started as the
``postgres`` user under a temporary folder); fixtures in tests/conftest.py use it."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("MEDWS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (MEDWS_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


def postgres_server_impl() -> Iterator[str]:
    """A throwaway PostgreSQL server; yields its admin URL (``.../postgres``)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or shutil.which("runuser") is None or os.geteuid() != 0:
        _unavailable("needs root, runuser and postgresql's initdb (apt-get install postgresql)")
    bin_dir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="medws-pg-"))
    (base / "sock").mkdir()
    shutil.chown(base, "postgres")
    shutil.chown(base / "sock", "postgres")
    data, port = base / "data", _free_port()

    def as_postgres(*argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            capture_output=True,
            timeout=60,
        )

    as_postgres(
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-locale",
        "--no-sync",
    )
    options = f"-p {port} -k {base / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off"
    as_postgres(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "pg.log"),
        "-w",
        "-o",
        options,
        "start",
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def postgres_url_impl(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    name = "t_" + uuid.uuid4().hex[:16]
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
