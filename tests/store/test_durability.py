"""kill -9 at random points: every committed result survives whole, nothing half-written shows,
and the audit chain verifies."""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.durability_writer import expected
from workstation.security.aead import DataKeyRing
from workstation.security.sign import HybridSigningKey
from workstation.store import ResultStore, create_engine

KILLS = 50
WRITER = Path(__file__).with_name("durability_writer.py")


def _run_and_kill(url: str, keys: Path, start: int, rng: random.Random) -> list[tuple[str, int]]:
    """Start the writer, SIGKILL it at a random moment; the commits it reported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WRITER.parent), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, str(WRITER), url, str(keys), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    output = b""
    if rng.random() < 0.2:  # sometimes during start-up (opening, migrating)
        time.sleep(rng.uniform(0.0, 0.4))
    else:  # mostly in the middle of saving
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 30
            while b"ready\n" not in output and time.monotonic() < deadline:
                if selector.select(timeout=0.05):
                    output += os.read(process.stdout.fileno(), 65536)
                if process.poll() is not None:
                    break
        time.sleep(rng.uniform(0.0, 0.25))
    process.send_signal(signal.SIGKILL)
    rest, errors = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, errors.decode()[-2000:]
    lines = (output + rest).decode().split("\n")[:-1]  # a partial last line is not a commit
    return [(rid, int(i)) for rid, i in (line.split() for line in lines if line != "ready")]


def _check_whole(store: ResultStore, result_id: str, i: int) -> None:
    want, got = expected(i), store.get_result(result_id)
    assert got.parameters == {"i": i} and got.input_hash == want.input_hash
    assert [f.text for f in got.findings] == [f.text for f in want.findings]
    [header] = got.maps
    assert store.read_map(header.id) == want.maps[0].data


@pytest.mark.slow
def test_killed_writers_lose_nothing_committed(tmp_path: Path, signer: HybridSigningKey) -> None:
    rng = random.Random(int(os.environ.get("MEDWS_DURABILITY_SEED", "7")))
    ring = DataKeyRing.generate()
    keys = tmp_path / "keys.bin"
    keys.write_bytes(signer.private_bytes() + ring.private_bytes())
    keys.chmod(0o600)
    url = f"sqlite:///{tmp_path / 'results.db'}"

    reported: list[tuple[str, int]] = []
    start = 0
    for _ in range(KILLS):
        committed = _run_and_kill(url, keys, start, rng)
        reported += committed
        start += len(committed) + 1000  # leave room for saves committed but not reported

    store = ResultStore(create_engine(url), ring, actor="checker")
    try:
        assert len(reported) >= KILLS  # the writer got real work done between kills
        for result_id, i in reported:
            _check_whole(store, result_id, i)
        saved = store.list_results()
        assert {rid for rid, _ in reported} <= {s.id for s in saved}
        for summary in saved:  # including commits the writer had no time to report
            result = store.get_result(summary.id)
            _check_whole(store, summary.id, result.parameters["i"])
        with store.engine.connect() as connection:  # no part without its whole
            counts = connection.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM findings), (SELECT sum(finding_count) FROM "
                    "analyses), (SELECT count(*) FROM explanation_maps), (SELECT count(*) FROM "
                    "analyses), (SELECT count(*) FROM map_chunks), (SELECT sum(chunk_count) "
                    "FROM explanation_maps)"
                )
            ).one()
        assert counts[0] == counts[1] and counts[2] == counts[3] and counts[4] == counts[5]
        report = store.audit.verify(trusted=[signer.public_key])
        assert report.ok, report.problems[:3]
        assert report.checkpoints >= 1
    finally:
        store.close()
