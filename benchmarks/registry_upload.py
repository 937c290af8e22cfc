"""Registry: sealed-result uploads on loopback, SQLite and PostgreSQL, 1 and 4 workers.

Ours: the central registry started exactly as production starts it
(``python -m workstation.registry.cli serve --data DIR --port P --workers N [--db URL]``),
seeded with one site and an enrolment token (``workstation.registry.bootstrap``), with 16
workstations enrolled over HTTP (``POST /enrol``) and signed in by challenge
(``GET /auth/challenge`` + ``POST /auth/workstation``). Each upload is ``POST /results`` of a
sealed result (``seal(os.urandom(64 KiB), [the workstation's recipient key])``; 16 KiB with
``--quick``) with a unique ``Idempotency-Key`` and the workstation's Bearer token: the registry
spools and fsyncs the blob, renames it into place and commits the row, its audit event and
webhook deliveries. 16 client threads (one httpx client and one workstation each) upload
concurrently; after an untimed warm-up, 2000 uploads (300 with ``--quick``) are timed:
throughput is successful uploads per minute over the wall time, latency is per successful
request (p50/p99), and every response other than 201 (or a transport error) counts as an error
(the server's log tail, access lines left out, then goes to stderr). That load runs each
configuration at its capacity, where latency is mostly queueing behind 16 clients; so each
registry configuration also gets 500 uploads (150 with ``--quick``) paced at the goal rate,
2000/min, open loop over the same 16 clients, latency counted from each request's scheduled
time (no coordinated omission).

Reference ("the ceiling"): a bare FastAPI app with one ``POST /results`` that reads the body and
returns 201 JSON, served by ``python -m uvicorn`` with the same worker count, the same payloads,
headers and client pool. The headline is the p50 latency of ours on SQLite with 1 worker over the
bare app's p50 with 1 worker, in the same run.

Configurations: SQLite and PostgreSQL x 1 and 4 workers (``--quick``: SQLite only). PostgreSQL
is a throwaway server (initdb + pg_ctl as the ``postgres`` user, as ``tests/pg_server.py``; needs
root, runuser and Debian's postgresql, otherwise its rows are reported as skipped), one fresh
database per configuration. The per-identity rate limit (1200 requests/min, a burst of 1200)
is the production default; 16 workstations keep each well under it.
Goals (per configuration): >= 2000 uploads/min (the saturated run) and p99 < 200 ms (the
paced run, at 2000/min), with no errors. The client
runs on the same machine as the server, so on few cores both compete for the CPU, and more
workers than cores may not help. ``--repeat`` is not used.
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c  # puts the repository root first on sys.path
import httpx
import numpy as np

NAME = "registry_upload"
CLIENTS = 16  # concurrent client threads, one workstation each
GOAL_PER_MIN = 2000.0
GOAL_P99_S = 0.200
AUTH_CONTEXT = "medws-registry-auth"
PURPOSE = "medws-result-v1"

BARE_APP = '''"""The ceiling: one endpoint that reads the body and answers 201."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/results")
async def upload(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body)}, status_code=201)


@app.get("/health/ready")
async def ready() -> dict:
    return {"status": "ok"}
'''


# -- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process group on loopback (uvicorn's supervisor and its workers)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_server(argv: list[str], log_path: Path, port: int, env: dict[str, str]) -> Server:
    """Start ``argv`` in its own process group; wait until ``/health/ready`` answers 200."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{argv[2]} did not start:\n{tail}")
        time.sleep(0.2)


def start_registry(scratch: Path, workers: int, db_url: str | None) -> Server:
    """The registry as production starts it (the ``serve`` command)."""
    port = free_port()
    data = scratch / f"registry-{port}"
    argv = [sys.executable, "-m", "workstation.registry.cli", "serve", "--data", str(data)]
    argv += ["--port", str(port), "--workers", str(workers)]
    if db_url:
        argv += ["--db", db_url]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(c.REPO_ROOT), env.get("PYTHONPATH")]))
    return start_server(argv, scratch / f"registry-{port}.log", port, env)


def start_bare(scratch: Path, workers: int) -> Server:
    """The bare FastAPI app under uvicorn with ``workers`` workers."""
    app_dir = scratch / "bare"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "bare.py").write_text(BARE_APP)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bare:app", "--app-dir", str(app_dir)]
    argv += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    argv += ["--log-level", "warning"]
    return start_server(argv, scratch / f"bare-{port}.log", port, dict(os.environ))


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str | None, str]]:
    """A throwaway PostgreSQL server: ``(admin URL, "")``, or ``(None, why not)``."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        yield None, "psycopg is not installed"
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or shutil.which("runuser") is None or os.geteuid() != 0:
        yield None, "needs root, runuser and postgresql's initdb"
        return
    bin_dir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="medws-bench-pg-"))
    data, port, started = base / "data", free_port(), False

    def as_postgres(*argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=60
        )

    try:
        (base / "sock").mkdir()
        shutil.chown(base, "postgres")
        shutil.chown(base / "sock", "postgres")
        try:
            as_postgres(
                str(bin_dir / "initdb"),
                *("-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
                *("--no-locale", "--no-sync"),
            )
            # fsync stays on (the default): a benchmark of durable uploads.
            options = f"-p {port} -k {base / 'sock'} -c listen_addresses=127.0.0.1"
            options += " -c max_connections=200"
            pg_ctl = str(bin_dir / "pg_ctl")
        except subprocess.CalledProcessError as error:
            yield None, f"initdb failed: {error.stderr.decode(errors='replace')[-300:]}"
            return
        try:
            as_postgres(
                pg_ctl, "-D", str(data), "-l", str(base / "pg.log"), "-w", "-o", options, "start"
            )
            started = True
        except subprocess.CalledProcessError as error:
            yield None, f"pg_ctl start failed: {error.stderr.decode(errors='replace')[-300:]}"
            return
        version = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        c.log(f"{NAME}: {version} on port {port}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", version
    finally:
        if started:
            with contextlib.suppress(Exception):
                as_postgres(
                    str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"
                )
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(admin_url: str) -> str:
    """A new empty database on the server at ``admin_url``; its URL."""
    import sqlalchemy as sa

    name = "bench_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


# -- workstations and load ---------------------------------------------------------------------
@dataclass
class Keys:
    signing: Any
    recipient: Any
    payload: bytes = b""


def make_keys(count: int, payload_bytes: int) -> list[Keys]:
    """Fresh signing and recipient keys per workstation, and a sealed result for each."""
    from workstation.security.seal import RecipientKey, seal
    from workstation.security.sign import HybridSigningKey

    out = []
    for _ in range(count):
        keys = Keys(HybridSigningKey.generate(), RecipientKey.generate())
        keys.payload = seal(
            os.urandom(payload_bytes), [keys.recipient.public_key()], purpose=PURPOSE
        )
        out.append(keys)
    return out


def seed_and_enrol(url: str, db_url: str, keys: list[Keys]) -> list[dict[str, str]]:
    """One site and token in the registry's database; enrol and sign in every workstation."""
    from workstation.registry.bootstrap import create_site, issue_enrolment_token
    from workstation.registry.db import Database

    db = Database(db_url)
    try:
        with db.sessions.begin() as session:
            site_id = create_site(session, "bench site").id
            tokens = [issue_enrolment_token(session, site_id) for _ in keys]
    finally:
        db.dispose()
    headers = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for index, (token, k) in enumerate(zip(tokens, keys, strict=True)):
            response = client.post(
                "/enrol",
                json={
                    "token": token,
                    "name": f"bench-ws-{index}",
                    "signing_key": k.signing.public_key.to_json(),
                    "recipient_key": k.recipient.public_key().to_json(),
                },
            )
            if response.status_code != 201:
                raise RuntimeError(f"enrol: {response.status_code} {response.text[:300]}")
            ws_id = response.json()["workstation_id"]
            challenge = client.get("/auth/challenge", params={"workstation_id": ws_id})
            nonce = challenge.json()["nonce"]
            signature = k.signing.sign(bytes.fromhex(nonce), context=AUTH_CONTEXT)
            response = client.post(
                "/auth/workstation",
                json={"workstation_id": ws_id, "nonce": nonce, "signature": signature.to_json()},
            )
            if response.status_code != 200:
                raise RuntimeError(f"sign-in: {response.status_code} {response.text[:300]}")
            headers.append({"Authorization": f"Bearer {response.json()['access_token']}"})
    return headers


@dataclass
class Load:
    """One timed batch: latencies of the successful (201) requests, errors and the wall time."""

    wall_s: float
    latencies: list[float]
    errors: dict[str, int] = field(default_factory=dict)
    server_alive: bool = True
    paced: Load | None = None  # the same server at the goal rate

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def per_min(self) -> float:
        return self.ok / self.wall_s * 60.0

    def pct(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies), q)) if self.latencies else np.nan

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def goal_misses(self) -> list[str]:
        """What misses the goals: capacity (as fast as the clients go), p99 at the goal rate
        (the paced run; the saturated p99 where there is none), errors."""
        misses = []
        if self.per_min < GOAL_PER_MIN:
            misses.append("rate")
        p99 = (self.paced or self).pct(99)
        if not p99 < GOAL_P99_S:
            misses.append("p99")
        if self.errors:
            misses.append("errors")
        return misses

    @property
    def goal_met(self) -> bool:
        return not self.goal_misses()


def run_load(url: str, headers: list[dict[str, str]], keys: list[Keys], total: int) -> Load:
    """``total`` uploads from ``len(headers)`` threads, each its own client and workstation."""
    lock = threading.Lock()
    remaining = [total]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = threading.Barrier(len(headers) + 1)

    def worker(auth: dict[str, str], payload: bytes) -> None:
        mine: list[float] = []
        bad: dict[str, int] = {}
        base = {**auth, "Content-Type": "application/octet-stream"}
        with httpx.Client(base_url=url, timeout=60) as client:
            start.wait()
            while True:
                with lock:
                    if remaining[0] <= 0:
                        break
                    remaining[0] -= 1
                request_headers = {**base, "Idempotency-Key": uuid.uuid4().hex}
                t0 = time.perf_counter()
                try:
                    response = client.post("/results", content=payload, headers=request_headers)
                    status = str(response.status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                elapsed = time.perf_counter() - t0
                if status == "201":
                    mine.append(elapsed)
                else:
                    bad[status] = bad.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for key, count in bad.items():
                errors[key] = errors.get(key, 0) + count

    threads = [
        threading.Thread(target=worker, args=(h, k.payload), daemon=True)
        for h, k in zip(headers, keys, strict=True)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    return Load(wall, latencies, errors)


def run_paced(
    url: str, headers: list[dict[str, str]], keys: list[Keys], total: int, per_min: float
) -> Load:
    """``total`` uploads arriving at ``per_min`` (open loop, spread over the threads); latency
    counts from each request's scheduled time, so a late client does not hide a slow server."""
    threads_n = len(headers)
    interval = threads_n * 60.0 / per_min
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = threading.Barrier(threads_n + 1)
    t0_box: list[float] = []

    def worker(index: int, auth: dict[str, str], payload: bytes) -> None:
        mine: list[float] = []
        bad: dict[str, int] = {}
        base = {**auth, "Content-Type": "application/octet-stream"}
        count = total // threads_n + (1 if index < total % threads_n else 0)
        with httpx.Client(base_url=url, timeout=60) as client:
            start.wait()
            for j in range(count):
                due = t0_box[0] + index * 60.0 / per_min + j * interval
                time.sleep(max(0.0, due - time.perf_counter()))
                request_headers = {**base, "Idempotency-Key": uuid.uuid4().hex}
                try:
                    response = client.post("/results", content=payload, headers=request_headers)
                    status = str(response.status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                if status == "201":
                    mine.append(time.perf_counter() - due)
                else:
                    bad[status] = bad.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for key, n in bad.items():
                errors[key] = errors.get(key, 0) + n

    threads = [
        threading.Thread(target=worker, args=(i, h, k.payload), daemon=True)
        for i, (h, k) in enumerate(zip(headers, keys, strict=True))
    ]
    for thread in threads:
        thread.start()
    t0_box.append(time.perf_counter() + 0.05)
    start.wait()
    for thread in threads:
        thread.join()
    return Load(time.perf_counter() - t0_box[0], latencies, errors)


def measure(
    server: Server, headers: list[dict[str, str]], keys: list[Keys], args: Any, paced: bool
) -> Load:
    """Untimed warm-up, the timed uploads as fast as the clients go, then (``paced``) uploads
    at the goal rate; on errors, log the server's log tail."""
    warm = run_load(server.url, headers, keys, args.warmup)
    load = run_load(server.url, headers, keys, args.uploads)
    if paced:
        load.paced = run_paced(server.url, headers, keys, args.paced, GOAL_PER_MIN)
        load.errors = {**load.errors}
        for key, n in load.paced.errors.items():
            load.errors[f"paced {key}"] = n
    load.server_alive = server.process.poll() is None
    if warm.errors or load.errors:
        c.log(f"{NAME}: errors: warm-up {warm.errors}, timed {load.errors}; server process ")
        c.log(f"  {'running' if load.server_alive else 'exited'}; its log ends:")
        lines = server.log_path.read_text(errors="replace").splitlines()
        c.log("\n".join(line for line in lines if "registry.access" not in line)[-2500:])
    return load


# -- main --------------------------------------------------------------------------------------
def environment(pg_version: str | None) -> dict[str, Any]:
    import fastapi
    import sqlalchemy
    import uvicorn

    try:
        env = c.environment()
    except ImportError:  # SimpleITK / pydicom are not needed here
        env = {"python": platform.python_version(), "cpus": os.cpu_count()}
    env.update(
        fastapi=fastapi.__version__,
        uvicorn=uvicorn.__version__,
        httpx=httpx.__version__,
        sqlalchemy=sqlalchemy.__version__,
        postgresql=pg_version,
    )
    return env


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=1, quick_repeat=1)
    args.uploads = 300 if args.quick else 2000
    args.warmup = 48 if args.quick else 160
    args.paced = 150 if args.quick else 500  # at 2000/min: 4.5 s, 15 s
    payload_bytes = (16 if args.quick else 64) * 1024
    worker_counts = (1, 4)
    databases = ("sqlite",) if args.quick else ("sqlite", "postgresql")

    c.log(f"{NAME}: {CLIENTS} workstations, sealing {payload_bytes >> 10} KiB results ...")
    keys = make_keys(CLIENTS, payload_bytes)
    sealed_size = len(keys[0].payload)
    results: dict[str, Load] = {}
    skipped: dict[str, str] = {}
    pg_version: str | None = None

    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="medws-bench-")))
        pg_admin = None
        if "postgresql" in databases:
            pg_admin, why = stack.enter_context(postgres_server())
            if pg_admin is None:
                c.log(f"{NAME}: PostgreSQL skipped: {why}")
                for workers in worker_counts:
                    skipped[f"postgresql/{workers}w"] = why
            else:
                pg_version = why
        for workers in worker_counts:
            name = f"bare/{workers}w"
            c.log(f"{NAME}: {name}: {args.warmup} warm-up + {args.uploads} uploads ...")
            server = start_bare(scratch, workers)
            try:
                auth = [{"Authorization": "Bearer bench"} for _ in keys]
                results[name] = measure(server, auth, keys, args, paced=False)
            finally:
                server.stop()
            for database in databases:
                name = f"{database}/{workers}w"
                if name in skipped:
                    continue
                if database == "sqlite":
                    db_url = None
                else:
                    assert pg_admin is not None
                    db_url = fresh_database(pg_admin)
                c.log(f"{NAME}: {name}: {args.warmup} warm-up + {args.uploads} uploads ...")
                server = start_registry(scratch, workers, db_url)
                try:
                    data = scratch / f"registry-{server.url.rsplit(':', 1)[1]}"
                    seed_url = db_url or f"sqlite:///{data / 'registry.db'}"
                    headers = seed_and_enrol(server.url, seed_url, keys)
                    results[name] = measure(server, headers, keys, args, paced=True)
                finally:
                    server.stop()

    order = [f"{d}/{w}w" for w in worker_counts for d in ("bare", *databases, "postgresql")]
    order = list(dict.fromkeys(order))
    rows = []
    for name in order:
        if name in skipped:
            rows.append([name, "skipped", *["-"] * 7, skipped[name][:40]])
            continue
        if name not in results:
            continue
        load = results[name]
        bare = results[f"bare/{name.split('/')[1]}"]
        is_bare = name.startswith("bare/")
        rows.append(
            [
                name + (" (reference)" if is_bare else ""),
                f"{load.per_min:,.0f}",
                c.ms(load.pct(50)),
                c.ms(load.pct(99)),
                c.ms(max(load.latencies, default=np.nan)),
                "" if is_bare else f"{load.pct(50) / bare.pct(50):.1f}x",
                c.ms(load.paced.pct(50)) if load.paced else "",
                c.ms(load.paced.pct(99)) if load.paced else "",
                str(load.error_count),
                ""
                if is_bare
                else ("ok" if load.goal_met else "MISSED " + ",".join(load.goal_misses())),
            ]
        )
    c.print_table(
        f"{NAME}: POST /results of a {sealed_size / 1024:.1f} KiB sealed result, "
        f"{CLIENTS} concurrent clients, {args.uploads} timed uploads as fast as they go, then "
        f"{args.paced} at {GOAL_PER_MIN:,.0f}/min ({os.cpu_count()} CPUs, client on the same "
        "machine)",
        [
            "configuration",
            "uploads/min",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p50 vs bare",
            "paced p50",
            "paced p99",
            "errors",
            "goal",
        ],
        rows,
    )
    print(
        f"goal: >= {GOAL_PER_MIN:,.0f} uploads/min (capacity, saturated run) and p99 < "
        f"{GOAL_P99_S * 1e3:.0f} ms at {GOAL_PER_MIN:,.0f}/min (paced run), no errors "
        "(non-201 responses)\nsaturated latencies include queueing behind the "
        f"{CLIENTS} clients; paced latencies count from each request's scheduled time"
    )

    ours, reference = results["sqlite/1w"], results["bare/1w"]
    configs: dict[str, Any] = {}
    for name in order:
        if name in skipped:
            configs[name] = {"skipped": skipped[name]}
        elif name in results:
            load = results[name]
            configs[name] = {
                "uploads_per_min": round(load.per_min, 1),
                "p50": load.pct(50),
                "p99": load.pct(99),
                "max": max(load.latencies, default=None),
                "server_alive_after": load.server_alive,
                "errors": load.error_count,
                "error_kinds": load.errors,
                "wall_s": load.wall_s,
            }
            if load.paced is not None:
                configs[name]["paced_per_min"] = round(load.paced.per_min, 1)
                configs[name]["paced_p50"] = load.paced.pct(50)
                configs[name]["paced_p99"] = load.paced.pct(99)
                configs[name]["paced_max"] = max(load.paced.latencies, default=None)
            if not name.startswith("bare/"):
                configs[name]["goal_met"] = load.goal_met
                configs[name]["goal_misses"] = load.goal_misses()
    measured = [n for n in results if not n.startswith("bare/")]
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours.pct(50),
            "reference": reference.pct(50),
            "reference_name": "bare FastAPI POST /results (read body, 201) under uvicorn, "
            "1 worker, same payloads and clients",
            "ratio": ours.pct(50) / reference.pct(50),
            "ours_name": "registry POST /results p50, SQLite, 1 worker",
            "goal": f">= {GOAL_PER_MIN:.0f} uploads/min and p99 < {GOAL_P99_S * 1e3:.0f} ms, "
            "no errors",
            "goal_met": ours.goal_met,
            "goal_met_all": all(results[n].goal_met for n in measured),
            "uploads_per_min": round(ours.per_min, 1),
            "p99": ours.pct(99),
            "paced_p99": ours.paced.pct(99) if ours.paced else None,
            "configs": configs,
            "uploads": args.uploads,
            "warmup": args.warmup,
            "paced_uploads": args.paced,
            "paced_per_min_target": GOAL_PER_MIN,
            "clients": CLIENTS,
            "payload_bytes": payload_bytes,
            "sealed_bytes": sealed_size,
            "quick": args.quick,
            "environment": environment(pg_version),
        }
    )


if __name__ == "__main__":
    main()
