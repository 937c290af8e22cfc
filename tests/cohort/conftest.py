"""Cohort fixtures: a generated cohort (once per session), an unlocked workstation home, a real
Dask scheduler with two ``dask worker`` processes on loopback, and helpers to run the CLI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workstation.cohort.synthetic import make_cohort

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "a long test passphrase"
MODEL = "demo-lesion-cls"  # the fastest demonstration model (about 3 s a study on one core)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """8 studies: 2 broken, 2 planted outliers (intensity ×20, heavy noise), 4 normal."""
    folder = tmp_path_factory.mktemp("cohort") / "studies"
    truth = make_cohort(folder, studies=8, broken=2, outliers=2, seed=3)
    return folder, truth


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workstation home with an initialised key store (workers inherit it)."""
    from workstation.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("WORKSTATION_HOME", str(home))
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    assert main(["keys", "init", "--kek", "passphrase"]) == 0
    return home


def cohort_cli(*argv: str) -> int:
    """``workstation cohort ...`` through its own parser (as cli.py wires it)."""
    from workstation import cli_cohort

    parser = argparse.ArgumentParser(prog="workstation")
    cli_cohort.add_parser(parser.add_subparsers(dest="command"))
    return cli_cohort.run(parser.parse_args(["cohort", *argv]))


def rows(out: Path) -> dict[str, dict[str, Any]]:
    """The row files of a run, by study key."""
    found = {}
    for path in sorted((out / "results").glob("*.json")):
        row = json.loads(path.read_text(encoding="utf-8"))
        found[row["study_key"]] = row
    return found


def stored_results() -> list[Any]:
    """Every result in the default store (the test's home)."""
    from workstation.workflow.analysis_store import open_default_store

    with open_default_store(actor="test") as store:
        return store.list_results()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_workers(address: str, count: int, deadline: float) -> None:
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))


class DaskCluster:
    """A ``dask scheduler`` and ``dask worker`` processes (their process groups are killed)."""

    def __init__(self, workdir: Path, env: dict[str, str], workers: int = 2) -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workdir = workdir
        dask = shutil.which("dask") or str(Path(sys.executable).parent / "dask")
        log = (workdir / "scheduler.log").open("wb")
        self._start(
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dashboard-address",
                ":0",
            ],
            env,
            log,
        )
        for n in range(workers):
            log = (workdir / f"worker{n}.log").open("wb")
            self._start(
                [
                    dask,
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--name",
                    f"w{n}",
                    "--no-dashboard",
                ],
                env,
                log,
            )
        _wait_for_workers(self.address, workers, time.monotonic() + 90)

    def _start(self, argv: list[str], env: dict[str, str], log: Any) -> None:
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)

    def worker_pids(self) -> dict[str, int]:
        """Worker address → the pid of the process running the tasks (not its nanny)."""
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            return client.run(os.getpid)

    def busy_worker(self) -> tuple[str, list[str]] | None:
        """A worker running tasks now: its address and the tasks' keys."""
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            busy = [(address, list(keys)) for address, keys in client.processing().items() if keys]
        return busy[0] if busy else None

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(20)


@pytest.fixture
def dask_cluster(home: Path, tmp_path: Path) -> Iterator[DaskCluster]:
    """A real scheduler and two workers on 127.0.0.1 (free ports), with the test's home."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["DASK_TEMPORARY_DIRECTORY"] = str(tmp_path / "dask")
    workdir = tmp_path / "dask"
    workdir.mkdir()
    cluster = DaskCluster(workdir, env)
    try:
        yield cluster
    finally:
        cluster.stop()
