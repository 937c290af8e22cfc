"""The durability test's writer: saves results in a loop until it is killed.

``python durability_writer.py DB_URL KEYS_FILE START`` prints ``ready`` once the store is open,
then ``<result id> <i>`` after each commit. Result ``i`` is fully determined by ``i`` (see
:func:`expected`), so a reader can check every saved result byte for byte.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from workstation.security.aead import DataKeyRing
from workstation.security.sign import HybridSigningKey
from workstation.store import NewFinding, NewMap, NewResult, ResultStore, StudyRef, create_engine


def expected(i: int) -> NewResult:
    """Result ``i``: 1-3 findings, a map of 20 kB to 1.2 MB (two chunks from 1 MiB)."""
    block = hashlib.sha256(str(i).encode()).digest()
    size = 20_000 + (i % 5) * 300_000
    return NewResult(
        study=StudyRef(f"ps-{i % 7}", {"StudyInstanceUID": f"1.2.3.{i % 7}"}),
        model_name="durability",
        model_version="1",
        input_hash=block.hex(),
        parameters={"i": i},
        findings=[NewFinding("f", f"finding {i}/{k}", {"k": k}) for k in range(i % 3 + 1)],
        maps=[NewMap("m", (block * (size // 32 + 1))[:size], {"i": i})],
    )


def main(url: str, keys_file: str, start: int) -> None:
    raw = Path(keys_file).read_bytes()
    ring = DataKeyRing.from_private_bytes(raw[64:])
    signer = HybridSigningKey.from_private_bytes(raw[:64])
    store = ResultStore(create_engine(url), ring, actor="writer", signer=signer, checkpoint_every=8)
    print("ready", flush=True)
    i = start
    while True:
        result_id = store.save_result(expected(i), sync=i % 2 == 0)
        print(result_id, i, flush=True)
        if i % 4 == 0:
            store.get_result(result_id)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
