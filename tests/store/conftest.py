"""Store fixtures: a real PostgreSQL server for the session, stores on SQLite and PostgreSQL.

PostgreSQL is started as the ``postgres`` user on a free port (see ENVIRONMENT.md); without
``initdb`` or ``psycopg`` the PostgreSQL cases skip, unless ``MEDWS_REQUIRE_POSTGRES=1`` makes
that a failure (CI).
"""

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

from store.store_kit import MakeStore
from workstation.security.aead import DataKeyRing
from workstation.security.sign import HybridSigningKey
from workstation.store import ResultStore, create_engine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("MEDWS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (MEDWS_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
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


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store file under the test's folder."""
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture(scope="session")
def signer() -> HybridSigningKey:
    """The workstation's signing key for audit checkpoints."""
    return HybridSigningKey.generate()


@pytest.fixture
def ring() -> DataKeyRing:
    """A data key ring with one version."""
    return DataKeyRing.generate()


@pytest.fixture
def make_store(ring: DataKeyRing, signer: HybridSigningKey) -> Iterator[MakeStore]:
    """Open stores (closed after the test): ``make_store(url, keys=..., **kwargs)``."""
    opened: list[ResultStore] = []

    def make(url: str, **kwargs: object) -> ResultStore:
        kwargs.setdefault("keys", ring)
        kwargs.setdefault("signer", signer)
        kwargs.setdefault("actor", "alice")
        keys = kwargs.pop("keys")
        store = ResultStore(create_engine(url), keys, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
