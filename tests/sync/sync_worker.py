"""The kill test's child: ``sync_once`` in a loop until the outbox is empty or it is killed.

``python sync_worker.py CONFIG_JSON`` (store URL, keys file, registry URL, workstation and site
ids, spool folder); prints ``ready`` once the store is open and ``batch <delivered>`` after each
``sync_once``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sync.sync_kit import Keys
from workstation.store import ResultStore, create_engine
from workstation.sync.client import RegistryClient
from workstation.sync.engine import sync_once


def main(config_file: str) -> None:
    config = json.loads(Path(config_file).read_text())
    keys = Keys.from_private_bytes(Path(config["keys"]).read_bytes())
    store = ResultStore(
        create_engine(config["store"]), keys.ring, actor="worker", signer=keys.signing
    )
    client = RegistryClient(
        config["registry"], signing_key=keys.signing, workstation_id=config["workstation_id"]
    )
    print("ready", flush=True)
    while True:
        report = sync_once(
            store,
            client,
            site_id=config["site_id"],
            keys=keys,
            spool=Path(config["spool"]),
            limit=2,
            rng=lambda: 0.0,
        )
        print(f"batch {report.delivered}", flush=True)
        if not store.outbox.due(limit=1):
            time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1])
