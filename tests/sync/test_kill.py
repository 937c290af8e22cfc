"""kill -9 at random points while syncing: every result still arrives exactly once."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from sync.conftest import Registry
from sync.sync_kit import Keys, new_result
from workstation.store import ResultStore, create_engine
from workstation.sync.client import RegistryClient
from workstation.sync.engine import sync_once

RUNS = 30
WORKER = Path(__file__).with_name("sync_worker.py")
TESTS = Path(__file__).parent.parent


def _run_and_kill(config: Path, rng: random.Random) -> bytes:
    """Start the worker, SIGKILL it at a random moment (mostly mid-sync); its output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    output = b""
    if rng.random() < 0.1:  # sometimes during start-up
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 20
            while b"ready\n" not in output and time.monotonic() < deadline:
                if selector.select(timeout=0.05):
                    output += os.read(process.stdout.fileno(), 65536)
                if process.poll() is not None:
                    break
        time.sleep(rng.uniform(0.2, 1.0))  # the first batch takes ~0.5 s, then ~0.15 s each
    process.send_signal(signal.SIGKILL)
    rest, errors = process.communicate(timeout=20)
    assert process.returncode == -signal.SIGKILL, errors.decode()[-2000:]
    return output + rest


def test_kill_nine_while_syncing(registry: Registry, keys: Keys, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("SYNC_KILL_SEED", "20260105")))
    url = f"sqlite:///{tmp_path / 'results.db'}"
    keys_file = tmp_path / "keys.bin"
    keys_file.write_bytes(keys.private_bytes())
    with RegistryClient(registry.url, signing_key=keys.signing) as client:
        enrolment = client.enrol(
            registry.seeded.tokens["a"], "ws", keys.signing.public_key, keys.recipient.public_key()
        )
    config = tmp_path / "worker.json"
    config.write_text(
        json.dumps(
            {
                "store": url,
                "keys": str(keys_file),
                "registry": registry.url,
                "workstation_id": enrolment.workstation_id,
                "site_id": enrolment.site_id,
                "spool": str(tmp_path / "spool"),
            }
        )
    )
    ids: list[str] = []
    batches = 0
    started = time.monotonic()
    for run in range(RUNS):
        with ResultStore(create_engine(url), keys.ring, actor="ws", signer=keys.signing) as store:
            ids += [store.save_result(new_result(len(ids) + k), sync=True) for k in range(3)]
        batches += _run_and_kill(config, rng).count(b"batch ")
        assert time.monotonic() - started < 120, f"too slow after {run + 1} runs"
    assert batches > 0 and registry.rows(), "the worker never got to sync before it was killed"

    # a final clean sync (clock a day ahead: any backoff has passed)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with (
        ResultStore(
            create_engine(url), keys.ring, actor="ws", signer=keys.signing, clock=lambda: later
        ) as store,
        RegistryClient(
            registry.url, signing_key=keys.signing, workstation_id=enrolment.workstation_id
        ) as client,
    ):
        for _ in range(50):
            report = sync_once(
                store, client, site_id=enrolment.site_id, keys=keys, spool=tmp_path / "spool"
            )
            assert report.error is None and report.failed == 0
            if not store.outbox.due():
                break
        with store.engine.connect() as connection:
            states = connection.execute(
                sa.text("SELECT state, count(*) FROM outbox GROUP BY state")
            )
            assert dict(states.all()) == {"done": len(ids)}
    rows = registry.rows()
    keys_sent = sorted(key for _ws, key, _sha in rows)
    assert keys_sent == sorted(f"result:{i}" for i in ids)  # each exactly once
    assert {ws for ws, _key, _sha in rows} == {enrolment.workstation_id}
