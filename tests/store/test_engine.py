"""The engine: SQLite durability settings, the default location, and the public surface."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import workstation.store as store_pkg
from workstation.store import create_engine, default_url


def test_sqlite_runs_in_wal_with_full_sync(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
    engine.dispose()


def test_default_location_is_under_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / 'store' / 'results.db'}"
    assert (tmp_path / "store").stat().st_mode & 0o777 == 0o700
    assert default_url(tmp_path / "other").endswith("other/store/results.db")


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(store_pkg).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("workstation")
    }
    assert public <= set(store_pkg.__all__)
    for name in store_pkg.__all__:
        assert hasattr(store_pkg, name), name


def test_store_package_does_not_import_qt() -> None:
    import subprocess
    import sys

    code = "import sys, workstation.store; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_writes_from_two_engines_queue(db_url: str, make_store) -> None:  # type: ignore[no-untyped-def]
    """Two writers interleave (BEGIN IMMEDIATE, FOR UPDATE): consecutive seqs, no lock errors."""
    from concurrent.futures import ThreadPoolExecutor

    from store.store_kit import sample_result

    first, second = make_store(db_url), make_store(db_url)

    def save(store) -> int:  # type: ignore[no-untyped-def]
        for _ in range(10):
            store.save_result(sample_result(maps=1, map_bytes=10_000))
        return 10

    with ThreadPoolExecutor(2) as pool:
        assert sum(pool.map(save, (first, second))) == 20
    report = first.audit.verify()
    assert report.ok and report.events == 20
    with first.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM analyses")).scalar_one() == 20
