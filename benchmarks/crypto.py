"""Security core: AEAD record envelope vs bare AES-256-GCM, plus seal / open / sign / verify.

Throughput: :func:`workstation.security.aead.encrypt` / ``decrypt`` against bare
``AESGCM(key).encrypt`` / ``decrypt`` on the same 64 MB buffer (16 MB with ``--quick``) and an
associated-data string of the same length, interleaved. A naive ``header + AESGCM.encrypt(...)``
is timed for context: the copy it makes is what the wrapper avoids (``encrypt_into``).
``ours`` / ``reference`` are the best encrypt times; goal: wrapper overhead < 5 % for encrypt
and decrypt.

Latencies (µs, median over batches): AEAD on a 1 KB record, hybrid HPKE ``seal`` /
``open_sealed`` of a 1 KB payload to 1 and 3 recipients, hybrid Ed25519 + ML-DSA-65 ``sign`` /
``verify`` next to Ed25519 alone and ML-DSA-65 alone.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import _common as c  # puts the repository root first on sys.path

NAME = "crypto"
GOAL_OVERHEAD = 0.05


def latency_us(fn: Callable[[], Any], *, batches: int, per_batch: int) -> float:
    """Median over ``batches`` of the mean time of ``per_batch`` calls, in microseconds."""
    fn()
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            fn()
        times.append((time.perf_counter() - t0) / per_batch)
    return statistics.median(times) * 1e6


def measure_balanced(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, c.Timing]:
    """:func:`_common.measure`, half the runs in the given order and half reversed.

    With 64 MB buffers every run page-faults its fresh output; which slot of the rotation a
    callable occupies shifts its time by ~2 %, as much as the effect measured. Reversing the
    order for half the runs cancels that bias.
    """
    forward = c.measure(fns, (repeat + 1) // 2)
    backward = c.measure(dict(reversed(fns.items())), max(1, repeat // 2), warmup=False)
    return {name: c.Timing(forward[name].times + backward[name].times) for name in fns}


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with the result."""
    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend

    return {
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "openssl": backend.openssl_version_text(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=10, quick_repeat=10)
    from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from workstation.security import aead, seal, sign

    # -- throughput ------------------------------------------------------------------------
    size = (16 if args.quick else 64) * 2**20
    c.log(f"{NAME}: {size >> 20} MB buffer, {args.repeat} runs each ...")
    buffer = os.urandom(size)
    ring = aead.DataKeyRing.generate()
    kind, record_id = "result", "1.2.826.0.1.3680043.8.498.12345"
    bare = AESGCM(ring.keys[ring.current])
    nonce = os.urandom(12)
    aad = aead.associated_data(kind, record_id, ring.current)
    blob = aead.encrypt(ring, buffer, kind=kind, record_id=record_id)
    bare_ct = bare.encrypt(nonce, buffer, aad)
    assert aead.decrypt(ring, blob, kind=kind, record_id=record_id) == buffer
    t = measure_balanced(
        {
            "encrypt": lambda: aead.encrypt(ring, buffer, kind=kind, record_id=record_id),
            "bare_encrypt": lambda: bare.encrypt(nonce, buffer, aad),
            "decrypt": lambda: aead.decrypt(ring, blob, kind=kind, record_id=record_id),
            "bare_decrypt": lambda: bare.decrypt(nonce, bare_ct, aad),
        },
        args.repeat,
    )
    # Apart, so its extra allocations do not change the heap state the others run in.
    naive = c.measure({"naive": lambda: blob[:20] + bare.encrypt(nonce, buffer, aad)}, args.repeat)
    t["naive_encrypt"] = naive["naive"]
    enc_ratio = t["encrypt"].best / t["bare_encrypt"].best
    dec_ratio = t["decrypt"].best / t["bare_decrypt"].best

    def mb_s(seconds: float) -> str:
        return f"{size / seconds / 1e6:,.0f}"

    def row(
        label: str, timing: c.Timing, ref: c.Timing | None = None, goal: bool = True
    ) -> list[str]:
        over = "" if ref is None else f"{(timing.best / ref.best - 1) * 100:+.1f} %"
        met = c.goal_text(timing.best / ref.best <= 1 + GOAL_OVERHEAD) if ref and goal else ""
        return [label, c.ms(timing.best), c.ms(timing.median), mb_s(timing.best), over, met]

    print(f"{NAME}: AES-256-GCM on {size >> 20} MB; best / median of {args.repeat}")
    c.print_table(
        "Throughput",
        ["", "best ms", "median ms", "MB/s", "overhead", "goal < 5 %"],
        [
            row("ours: aead.encrypt", t["encrypt"], t["bare_encrypt"]),
            row("bare AESGCM.encrypt (reference)", t["bare_encrypt"]),
            row(
                "header + AESGCM.encrypt (naive, context)",
                t["naive_encrypt"],
                t["bare_encrypt"],
                False,
            ),
            row("ours: aead.decrypt", t["decrypt"], t["bare_decrypt"]),
            row("bare AESGCM.decrypt", t["bare_decrypt"]),
        ],
    )

    # -- latencies -------------------------------------------------------------------------
    c.log(f"{NAME}: latencies ...")
    batches, scale = (5, 1) if args.quick else (15, 3)
    payload = os.urandom(1024)
    small = aead.encrypt(ring, payload, kind=kind, record_id=record_id)
    small_bare = bare.encrypt(nonce, payload, aad)
    keys = [seal.RecipientKey.generate() for _ in range(3)]
    publics = [k.public_key() for k in keys]
    sealed1 = seal.seal(payload, publics[:1], purpose="bench")
    sealed3 = seal.seal(payload, publics, purpose="bench")
    hybrid = sign.HybridSigningKey.generate()
    signature = hybrid.sign(payload, context="bench")
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_sig = ed.sign(payload)
    ml = mldsa.MLDSA65PrivateKey.generate()
    ml_sig = ml.sign(payload, b"bench")
    ops: list[tuple[str, Callable[[], Any], int]] = [
        (
            "aead_encrypt_1k",
            lambda: aead.encrypt(ring, payload, kind=kind, record_id=record_id),
            2000,
        ),
        ("bare_aesgcm_encrypt_1k", lambda: bare.encrypt(nonce, payload, aad), 2000),
        (
            "aead_decrypt_1k",
            lambda: aead.decrypt(ring, small, kind=kind, record_id=record_id),
            2000,
        ),
        ("bare_aesgcm_decrypt_1k", lambda: bare.decrypt(nonce, small_bare, aad), 2000),
        ("seal_1k_1_recipient", lambda: seal.seal(payload, publics[:1], purpose="bench"), 50),
        ("open_1k_1_recipient", lambda: seal.open_sealed(sealed1, keys[0], purpose="bench"), 50),
        ("seal_1k_3_recipients", lambda: seal.seal(payload, publics, purpose="bench"), 20),
        ("open_1k_3_recipients", lambda: seal.open_sealed(sealed3, keys[2], purpose="bench"), 50),
        ("sign_hybrid", lambda: hybrid.sign(payload, context="bench"), 30),
        (
            "verify_hybrid",
            lambda: hybrid.public_key.verify(signature, payload, context="bench"),
            30,
        ),
        ("sign_ed25519", lambda: ed.sign(payload), 200),
        ("verify_ed25519", lambda: ed.public_key().verify(ed_sig, payload), 200),
        ("sign_mldsa65", lambda: ml.sign(payload, b"bench"), 30),
        ("verify_mldsa65", lambda: ml.public_key().verify(ml_sig, payload, b"bench"), 30),
    ]
    latencies = {
        name: latency_us(fn, batches=batches, per_batch=max(1, n * scale // 3))
        for name, fn, n in ops
    }
    c.print_table(
        "Latency (1 KB payload; median of batch means)",
        ["operation", "µs"],
        [[name, f"{us:,.1f}"] for name, us in latencies.items()],
    )
    print(
        f"sizes: aead blob = 1024 + {len(small) - 1024} B; sealed 1 / 3 recipients = "
        f"{len(sealed1)} / {len(sealed3)} B; hybrid signature = "
        f"{len(signature.ed25519) + len(signature.ml_dsa_65)} B"
    )

    met = enc_ratio <= 1 + GOAL_OVERHEAD and dec_ratio <= 1 + GOAL_OVERHEAD
    c.emit(
        {
            "benchmark": NAME,
            "ours": t["encrypt"].best,
            "reference": t["bare_encrypt"].best,
            "reference_name": f"bare AESGCM(key).encrypt on the same {size >> 20} MB buffer",
            "ratio": enc_ratio,
            "buffer_bytes": size,
            "encrypt_mb_s": size / t["encrypt"].best / 1e6,
            "reference_encrypt_mb_s": size / t["bare_encrypt"].best / 1e6,
            "naive_concat_encrypt_s": t["naive_encrypt"].best,
            "decrypt_s": t["decrypt"].best,
            "reference_decrypt_s": t["bare_decrypt"].best,
            "decrypt_ratio": dec_ratio,
            "decrypt_mb_s": size / t["decrypt"].best / 1e6,
            "reference_decrypt_mb_s": size / t["bare_decrypt"].best / 1e6,
            **{f"{name}_us": us for name, us in latencies.items()},
            "sealed_bytes_1_recipient": len(sealed1),
            "sealed_bytes_3_recipients": len(sealed3),
            "ours_median": t["encrypt"].median,
            "reference_median": t["bare_encrypt"].median,
            "statistic": "best",
            "goal": "aead encrypt and decrypt overhead < 5 % vs bare AESGCM",
            "goal_met": met,
            "quick": args.quick,
            "repeat": args.repeat,
            "environment": environment(),
        }
    )


if __name__ == "__main__":
    main()
