"""Result store: saving a result with 10 MB of explanation maps, encrypted vs not; audit verify.

``ours``: :meth:`ResultStore.save_result` of one analysis with 3 findings and two 5 MiB maps
(10 MiB) into a SQLite store (WAL, ``synchronous=FULL``), every sensitive column sealed with
AES-256-GCM. ``reference``: the same call on the same schema with encryption off (a plaintext
cipher only the benchmark and tests can construct). Runs interleaved, half in reversed order.
Goal: < 100 ms per save and encryption overhead < 5 %.

Also: reading the result back (``get_result`` + ``read_map``), both ways, and
``AuditTrail.verify`` of 100 000 events (20 000 with ``--quick``) with a signed checkpoint
every 256, next to a bare streaming ``SELECT`` of the same rows.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c  # puts the repository root first on sys.path

NAME = "store_save"
GOAL_SECONDS = 0.100
GOAL_OVERHEAD = 0.05
MAP_BYTES = 5 * 2**20


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with the result."""
    import sqlite3

    import cryptography
    import sqlalchemy

    return {
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
        "cryptography": cryptography.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def build_chain(url: str, events: int, signer: Any) -> float:
    """Write ``events`` chained events (and checkpoints) in bulk; returns the seconds taken."""
    import sqlalchemy as sa

    from workstation.store import create_engine, migrate
    from workstation.store._chain import (
        CHECKPOINT_CONTEXT,
        GENESIS,
        checkpoint_message,
        event_hash,
    )
    from workstation.store.models import AuditCheckpoint, AuditEvent, AuditHead

    t0 = time.perf_counter()
    engine = create_engine(url)
    migrate(engine)
    rows, checkpoints, prev = [], [], GENESIS
    for seq in range(1, events + 1):
        time_text = f"2026-01-01T00:{seq // 60 % 60:02d}:{seq % 60:02d}.{seq % 10**6:06d}Z"
        values = [
            seq,
            time_text,
            "alice",
            "result.view",
            "analysis",
            f"5c1e0e4e-0000-4000-8000-{seq:012d}",
            f"ps-{seq % 97}",
            '{"n":1}',
        ]
        digest = event_hash(prev, values)
        rows.append(
            dict(
                zip(
                    (
                        "seq",
                        "time",
                        "actor",
                        "action",
                        "object_type",
                        "object_id",
                        "study",
                        "details",
                    ),
                    values,
                    strict=True,
                ),
                prev_hash=prev,
                hash=digest,
            )
        )
        if seq % 256 == 0:
            import json

            signature = signer.sign(
                checkpoint_message(seq, digest, time_text), context=CHECKPOINT_CONTEXT
            )
            checkpoints.append(
                {
                    "seq": seq,
                    "hash": digest,
                    "time": time_text,
                    "key_id": signature.key_id,
                    "signature": json.dumps(signature.to_json()),
                }
            )
        prev = digest
    with engine.begin() as connection:
        connection.execute(sa.insert(AuditEvent.__table__), rows)
        if checkpoints:
            connection.execute(sa.insert(AuditCheckpoint.__table__), checkpoints)
        connection.execute(sa.update(AuditHead.__table__).values(seq=events, hash=prev))
    engine.dispose()
    return time.perf_counter() - t0


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=9, quick_repeat=3)
    from workstation.security.aead import DataKeyRing
    from workstation.security.sign import HybridSigningKey
    from workstation.store import NewFinding, NewMap, NewResult, ResultStore, StudyRef
    from workstation.store import create_engine as store_engine
    from workstation.store.crypto import _Unencrypted

    ring, signer = DataKeyRing.generate(), HybridSigningKey.generate()
    result = NewResult(
        study=StudyRef("ps-bench", {"StudyInstanceUID": "1.2.3.4"}),
        model_name="brain-lesion",
        model_version="1.0.0",
        input_hash="ab" * 32,
        parameters={"threshold": 0.5, "windows": [96, 96, 96]},
        findings=[NewFinding("lesion", f"finding {i}", {"volume_ml": 1.5 * i}) for i in range(3)],
        maps=[NewMap(m, os.urandom(MAP_BYTES), {"shape": [160, 128, 64]}) for m in ("gc", "ig")],
    )
    total = sum(len(m.data) for m in result.maps)

    with tempfile.TemporaryDirectory(prefix="medws-bench-") as scratch:
        folder = Path(scratch)
        encrypted = ResultStore(
            store_engine(f"sqlite:///{folder / 'encrypted.db'}"),
            ring,
            actor="bench",
            signer=signer,
        )
        plain = ResultStore(
            store_engine(f"sqlite:///{folder / 'plain.db'}"),
            ring,
            actor="bench",
            signer=signer,
            _cipher=_Unencrypted(),
        )
        c.log(f"{NAME}: saving {total >> 20} MiB of maps, {args.repeat} runs each ...")
        fns = {
            "encrypted": lambda: encrypted.save_result(result),
            "plain": lambda: plain.save_result(result),
        }
        forward = c.measure(fns, (args.repeat + 1) // 2)
        backward = c.measure(dict(reversed(fns.items())), max(1, args.repeat // 2), warmup=False)
        save = {n: c.Timing(forward[n].times + backward[n].times) for n in fns}

        ids = {"encrypted": encrypted.save_result(result), "plain": plain.save_result(result)}

        def reader(store: ResultStore, result_id: str) -> Any:
            def read() -> int:
                got = store.get_result(result_id)
                return sum(len(store.read_map(m.id)) for m in got.maps)

            return read

        read = c.measure(
            {
                "encrypted": reader(encrypted, ids["encrypted"]),
                "plain": reader(plain, ids["plain"]),
            },
            args.repeat,
        )
        same = encrypted.read_map(encrypted.get_result(ids["encrypted"]).maps[0].id)
        assert same == result.maps[0].data
        encrypted.close()
        plain.close()

        events = 20_000 if args.quick else 100_000
        c.log(f"{NAME}: building an audit chain of {events:,} events ...")
        url = f"sqlite:///{folder / 'audit.db'}"
        build_s = build_chain(url, events, signer)
        trail_store = ResultStore(store_engine(url), ring, actor="bench", signer=signer)

        def scan() -> int:
            import sqlalchemy as sa

            with trail_store.engine.connect() as connection:
                rows = connection.execution_options(yield_per=10_000).execute(
                    sa.text("SELECT * FROM audit_events ORDER BY seq")
                )
                return sum(1 for _ in rows)

        c.log(f"{NAME}: verifying ...")
        verify = c.measure(
            {
                "verify": lambda: trail_store.audit.verify(trusted=[signer.public_key]),
                "scan": scan,
            },
            min(args.repeat, 3),
        )
        report = trail_store.audit.verify(trusted=[signer.public_key])
        trail_store.close()

    ours, ref = save["encrypted"], save["plain"]
    overhead = ours.best / ref.best - 1
    fast = ours.best < GOAL_SECONDS
    cheap = overhead < GOAL_OVERHEAD
    print(f"{NAME}: one result with {total >> 20} MiB of maps; best / median of {args.repeat}")
    c.print_table(
        "",
        ["", "best ms", "median ms", "MB/s", "vs plain", "goal"],
        [
            [
                "save, encrypted",
                c.ms(ours.best),
                c.ms(ours.median),
                f"{total / ours.best / 1e6:,.0f}",
                f"{overhead:+.1%}",
                c.goal_text(fast and cheap),
            ],
            [
                "save, encryption off",
                c.ms(ref.best),
                c.ms(ref.median),
                f"{total / ref.best / 1e6:,.0f}",
                "",
                "",
            ],
            [
                "read back, encrypted",
                c.ms(read["encrypted"].best),
                c.ms(read["encrypted"].median),
                f"{total / read['encrypted'].best / 1e6:,.0f}",
                f"{read['encrypted'].best / read['plain'].best - 1:+.1%}",
                "",
            ],
            [
                "read back, encryption off",
                c.ms(read["plain"].best),
                c.ms(read["plain"].median),
                f"{total / read['plain'].best / 1e6:,.0f}",
                "",
                "",
            ],
        ],
    )
    print(
        f"\naudit verify: {events:,} events, {report.checkpoints} signed checkpoints: "
        f"{verify['verify'].best:.2f} s best ({events / verify['verify'].best:,.0f} events/s), "
        f"ok={report.ok}; bare SELECT of the rows {verify['scan'].best:.2f} s; "
        f"building the chain took {build_s:.1f} s"
    )
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours.best,
            "reference": ref.best,
            "reference_name": "the same save_result with encryption off (plaintext columns)",
            "ratio": ours.best / ref.best,
            "goal": "save < 100 ms; encryption overhead < 5 %",
            "goal_met": bool(fast and cheap),
            "save_goal_met": bool(fast),
            "overhead_goal_met": bool(cheap),
            "ours_median": ours.median,
            "reference_median": ref.median,
            "map_bytes": total,
            "read_ours": read["encrypted"].best,
            "read_reference": read["plain"].best,
            "verify_events": events,
            "verify_s": verify["verify"].best,
            "verify_ok": report.ok,
            "verify_scan_s": verify["scan"].best,
            "repeat": args.repeat,
            "environment": environment(),
        }
    )


if __name__ == "__main__":
    main()
