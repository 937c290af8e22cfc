"""Verifying a 100 MB signed model bundle vs hashing the same bytes with hashlib.sha256.

The bundle holds model-weights-like data (float32 values from a normal distribution, the bulk of
any checkpoint), **stored uncompressed**, as model bundles are by default: weights barely
deflate (the table shows the saving), while inflating would cost more than hashing and lose
random access. Measured, warm page cache, best of N:

- ``ours``: ``open_bundle`` (zip structure, canonical layout, manifest, hybrid signature, trust)
  + ``verify_payload`` (SHA-256 of every byte, CRC-32 on a helper thread).
- ``reference``: ``hashlib.sha256`` over the same payload bytes, read from the same bundle file
  with ``readinto`` into a buffer allocated once (the faster of 1 MiB and 4 MiB chunks).
- ``extract``: ``open_bundle`` + ``extract`` (each byte hashed once, as it is written), against
  reading + hashing + writing the same bytes to a new file (``extract_reference``).

Goal: verify ≤ 1.2× the reference. ``--quick``: 3 repetitions and no deflate comparison (the
same 100 MB, since fixed costs such as the signature check would distort a smaller bundle).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import _common as c
import numpy as np

NAME = "bundle_verify"
GOAL_RATIO = 1.2


def make_bundle(folder: Path, size: int, *, compression: str = "stored") -> tuple[Path, Any]:
    """A signed one-file model bundle of ``size`` bytes of float32 weights, and its trust."""
    from workstation.security.bundle import write_bundle
    from workstation.security.sign import HybridSigningKey
    from workstation.security.trust import ROLES, TrustRoots, root_signed, sign_root, utcnow

    src = folder / "src"
    if not (src / "weights.bin").exists():
        src.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        weights = (rng.standard_normal(size // 4, dtype=np.float32) * 0.02).astype(np.float32)
        weights.tofile(src / "weights.bin")
    keys = {role: HybridSigningKey.generate() for role in ROLES}
    extra = HybridSigningKey.generate()  # release needs 2
    now = utcnow()
    later = now + dt.timedelta(days=30)
    roles = {r: (1, [(k.public_key, later)]) for r, k in keys.items()}
    roles["release"] = (2, [(keys["release"].public_key, later), (extra.public_key, later)])
    trust = TrustRoots.from_bytes(
        sign_root(root_signed(roles, version=1, expires=later), [keys["root"]]), now=now
    )
    out = folder / f"model-{compression}.zip"
    write_bundle(
        src, out, kind="model", name="bench", version="1.0.0", signing_keys=[keys["model"]],
        compression=compression,  # type: ignore[arg-type]
    )  # fmt: skip
    return out, trust


def payload_span(path: Path) -> tuple[int, int]:
    """(offset, length) of the single payload file's bytes in the bundle."""
    from workstation.security import _zipfmt

    with path.open("rb") as f:
        entry = _zipfmt.read_directory(f, path.stat().st_size).entries[0]
    return entry.data_offset, entry.csize


def make_reference(path: Path, chunk: int) -> Any:
    offset, length = payload_span(path)
    buffer = memoryview(bytearray(chunk))

    def sha256_of_payload() -> str:
        sha = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            f.seek(offset)
            left = length
            while left:
                n = f.readinto(buffer[: min(chunk, left)])
                sha.update(buffer[:n])
                left -= n
        return sha.hexdigest()

    return sha256_of_payload


def make_copy_reference(path: Path, out_dir: Path) -> Any:
    offset, length = payload_span(path)
    chunk = 4 * 2**20
    buffer = memoryview(bytearray(chunk))

    def hash_and_copy() -> str:
        sha = hashlib.sha256()
        target = out_dir / "copy.bin"
        with open(path, "rb", buffering=0) as f, open(target, "wb", buffering=0) as w:
            f.seek(offset)
            left = length
            while left:
                n = f.readinto(buffer[: min(chunk, left)])
                sha.update(buffer[:n])
                w.write(buffer[:n])
                left -= n
        return sha.hexdigest()

    return hash_and_copy


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=5, quick_repeat=3)
    size = 100 * 10**6  # --quick: fewer repetitions, no deflate comparison
    from workstation.security.bundle import open_bundle

    work = c.DATA_DIR / f"bundle_{size // 10**6}mb"
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="extract-", dir=work))
    c.log(f"writing a {size / 1e6:.0f} MB model bundle ...")
    path, trust = make_bundle(work, size)

    def verify() -> None:
        with open_bundle(path, trust=trust, kind="model") as bundle:
            bundle.verify_payload()

    runs = [0]

    def extract() -> None:
        runs[0] += 1
        with open_bundle(path, trust=trust, kind="model") as bundle:
            bundle.extract(scratch / f"out-{runs[0]}")

    def clean() -> None:
        for item in scratch.iterdir():
            shutil.rmtree(item) if item.is_dir() else item.unlink()

    refs = {f"sha256 {n >> 20} MiB": make_reference(path, n) for n in (2**20, 4 * 2**20)}
    expected = hashlib.sha256((work / "src" / "weights.bin").read_bytes()).hexdigest()
    if any(ref() != expected for ref in refs.values()):
        raise RuntimeError("the reference hashed different bytes than the payload")
    fns: dict[str, Any] = {"verify": verify, **refs}
    fns["extract"] = extract
    fns["hash + copy"] = make_copy_reference(path, scratch)
    times = c.measure(fns, args.repeat, setup=clean)
    clean()
    ref_name = min(refs, key=lambda n: times[n].best)
    ours, reference = times["verify"], times[ref_name]
    ratio = ours.best / reference.best
    extract_ratio = times["extract"].best / times["hash + copy"].best

    deflated = None
    if not args.quick:
        c.log("writing the same bundle deflated, for comparison ...")
        dpath, dtrust = make_bundle(work, size, compression="deflate")

        def verify_deflated() -> None:
            with open_bundle(dpath, trust=dtrust, kind="model") as bundle:
                bundle.verify_payload()

        deflated = {
            "bytes": dpath.stat().st_size,
            "verify_s": c.measure({"d": verify_deflated}, 1)["d"].best,
        }

    mb = size / 1e6
    rows = [
        [name, c.ms(t.best), c.ms(t.median), f"{mb / t.best:,.0f}"] for name, t in times.items()
    ]
    c.print_table(
        f"{mb:.0f} MB model bundle (float32 weights, stored), warm cache",
        ["measure", "best ms", "median ms", "MB/s"],
        rows,
    )
    c.print_table(
        "Result",
        ["measure", "ratio", "goal"],
        [
            [f"verify / {ref_name}", f"{ratio:.2f}", c.goal_text(ratio <= GOAL_RATIO)],
            ["extract / hash + copy", f"{extract_ratio:.2f}", "-"],
        ],
    )
    if deflated:
        stored = path.stat().st_size
        c.print_table(
            "Stored vs deflate (why model bundles are stored)",
            ["bundle", "MB", "verify ms"],
            [
                ["stored", f"{stored / 1e6:,.1f}", c.ms(ours.best)],
                ["deflate", f"{deflated['bytes'] / 1e6:,.1f}", c.ms(deflated["verify_s"])],
            ],
        )
    shutil.rmtree(scratch, ignore_errors=True)
    for item in work.glob("model-*.zip"):
        item.unlink()
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours.best,
            "reference": reference.best,
            "reference_name": f"hashlib.{ref_name} chunks, readinto from the bundle file",
            "ratio": ratio,
            "goal": f"verify <= {GOAL_RATIO}x sha256 of the same bytes",
            "goal_met": ratio <= GOAL_RATIO,
            "ours_median": ours.median,
            "reference_median": reference.median,
            "extract": times["extract"].best,
            "extract_reference": times["hash + copy"].best,
            "extract_reference_name": "read + sha256 + write to a new file, 4 MiB chunks",
            "extract_ratio": extract_ratio,
            "payload_bytes": size,
            "payload": "float32 N(0, 0.02) weights, stored",
            "deflated_bytes": deflated["bytes"] if deflated else None,
            "deflated_verify": deflated["verify_s"] if deflated else None,
            "quick": args.quick,
            "repeat": args.repeat,
            **c.environment(),
        }
    )


if __name__ == "__main__":
    main()
