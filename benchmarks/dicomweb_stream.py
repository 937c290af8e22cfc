"""DICOMweb streaming from a real Orthanc: time to first image and to the full series.

Starts its own Orthanc (with the DICOMweb plugin, on loopback; see ``tests/orthanc.py``) and
uploads the shared CT series. Ours: ``stream_dicomweb_series`` from the call (series metadata
included) to the first yielded slice and to the finished volume (decoded, rescaled, in place):
the default (``fetch="auto"``: the middle instance alone, the rest as one streamed series
response), per-instance requests with 1, 4 and 8 connections, and reopening from the encrypted
cache. References in the same run, bytes only: the same requests as ours (series metadata, then
the series as one multipart GET), one GET per instance with 1, 4 and 8 connections, and
dicomweb-client (when installed) retrieving the series and stacking its pixel arrays. All
requests send ``Accept-Encoding: identity``; the gzip trap (httpx's default header) is timed once.
Goals: first image < 300 ms; full series <= 1.2x the raw download of the same requests.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _common as c
import numpy as np

sys.path.insert(0, str(c.REPO_ROOT / "tests"))  # the Orthanc runner of the test suite

NAME = "dicomweb_stream"
CONNECTIONS = (1, 4, 8)
FIRST_GOAL_S = 0.300
FULL_GOAL_RATIO = 1.2
IDENTITY = {"Accept-Encoding": "identity"}
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def ours(url: str, study: str, series: str, connections: int, fetch: str, cache: object = None):
    """(first, full) seconds of one stream, and the volume."""
    from workstation.dicom.dicomweb import DicomwebClient, stream_dicomweb_series

    with DicomwebClient(url) as client:
        t0 = time.perf_counter()
        with stream_dicomweb_series(
            client, study, series, connections=connections, cache=cache, fetch=fetch
        ) as stream:
            iterator = iter(stream)
            next(iterator)
            first = time.perf_counter() - t0
            for _ in iterator:
                pass
            full = time.perf_counter() - t0
        return first, full, stream.result()


def raw_instances(
    url: str,
    study: str,
    series: str,
    sops: list[str],
    connections: int,
    headers: dict[str, str] = IDENTITY,
):
    """(middle instance, all instances) seconds of plain httpx GETs, bytes only."""
    import httpx

    base = f"{url}/studies/{study}/series/{series}/instances/"
    limits = httpx.Limits(max_connections=connections)
    with httpx.Client(limits=limits, headers={**headers, "Accept": ACCEPT}) as client:
        t0 = time.perf_counter()
        middle = sops[len(sops) // 2]
        client.get(base + middle).raise_for_status()
        first = time.perf_counter() - t0
        rest = [s for s in sops if s != middle]

        def get(sop: str) -> int:
            response = client.get(base + sop)
            response.raise_for_status()
            return len(response.content)

        if connections == 1:
            for sop in rest:
                get(sop)
        else:
            with ThreadPoolExecutor(connections) as pool:
                list(pool.map(get, rest))
        return first, time.perf_counter() - t0


def raw_bulk(
    url: str, study: str, series: str, headers: dict[str, str], *, metadata: bool = False
) -> float:
    """Seconds to download the whole series as one multipart response (bytes only), after its
    metadata with ``metadata``."""
    import httpx

    with httpx.Client(headers={**headers, "Accept": ACCEPT}, timeout=600) as client:
        t0 = time.perf_counter()
        if metadata:
            client.get(
                f"{url}/studies/{study}/series/{series}/metadata",
                headers={"Accept": "application/dicom+json"},
            ).raise_for_status()
        with client.stream("GET", f"{url}/studies/{study}/series/{series}") as response:
            response.raise_for_status()
            for _ in response.iter_bytes():
                pass
        return time.perf_counter() - t0


def dicomweb_client_load(url: str, study: str, series: str):
    """(first, full) seconds with dicomweb-client: the middle instance, then the series."""
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url, headers=IDENTITY)
    t0 = time.perf_counter()
    metadata = client.retrieve_series_metadata(study, series)
    middle = metadata[len(metadata) // 2]["00080018"]["Value"][0]
    client.retrieve_instance(study, series, middle).pixel_array  # noqa: B018
    first = time.perf_counter() - t0
    datasets = client.retrieve_series(study, series)
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    np.stack([d.pixel_array for d in datasets])
    return first, time.perf_counter() - t0


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=5, quick_repeat=3)
    shape, folder = c.standard_ct(quick=args.quick)
    from orthanc import Orthanc, find_orthanc

    from workstation.dicom import load_series
    from workstation.dicom.dicomweb import DicomwebClient, InstanceCache
    from workstation.security.aead import DataKeyRing

    install = find_orthanc()
    if install is None:
        sys.exit("Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc "
                 "orthanc-dicomweb)")  # fmt: skip
    try:
        import dicomweb_client  # noqa: F401

        have_dwc = True
    except ImportError:
        have_dwc = False
    files = c.dicom_files(folder)
    local = load_series(folder)
    with Orthanc(install) as server:
        c.log(f"{NAME}: uploading {len(files)} instances to Orthanc ...")
        t0 = time.perf_counter()
        server.upload(files)
        c.log(f"  done in {time.perf_counter() - t0:.1f} s")
        url = server.dicomweb_url
        with DicomwebClient(url) as client:
            [study] = client.search_studies(patient_name="BENCH^CT")
            [record] = client.search_series(study.study_uid)
            sops = [i.sop_instance_uid for i in client.search_instances(study.study_uid)]
        st, se = study.study_uid, record.series_uid
        same = True
        runs: dict[str, list[tuple[float, float]]] = {}

        def run(name: str, fn) -> None:
            gc.collect()
            result = fn()
            runs.setdefault(name, []).append(result[:2])

        c.log(f"{NAME}: {args.repeat} runs of each (interleaved) ...")
        for n in CONNECTIONS:  # warm-up: imports, Orthanc's caches, connections
            first, full, volume = ours(url, st, se, n, "instances")
            same = same and np.array_equal(volume.array, local.array)
            raw_instances(url, st, se, sops, n)
        first, full, volume = ours(url, st, se, 4, "auto")
        same = same and np.array_equal(volume.array, local.array)
        raw_bulk(url, st, se, IDENTITY, metadata=True)
        if have_dwc:
            dicomweb_client_load(url, st, se)
        for _ in range(args.repeat):
            run("ours auto", lambda: ours(url, st, se, 4, "auto"))
            run("raw same", lambda: (0.0, raw_bulk(url, st, se, IDENTITY, metadata=True)))
            run("bulk", lambda: (0.0, raw_bulk(url, st, se, IDENTITY)))
            for n in CONNECTIONS:
                run(f"ours {n}", lambda n=n: ours(url, st, se, n, "instances"))
                run(f"raw {n}", lambda n=n: raw_instances(url, st, se, sops, n))
            if have_dwc:
                run("dicomweb-client", lambda: dicomweb_client_load(url, st, se))
        cache_root = Path(tempfile.mkdtemp(prefix="medws-bench-cache-"))
        try:
            cache = InstanceCache(DataKeyRing.generate(), root=cache_root)
            ours(url, st, se, 4, "auto", cache)  # fills the cache
            for _ in range(args.repeat):
                run("cached", lambda: ours(url, st, se, 4, "auto", cache))
        finally:
            shutil.rmtree(cache_root, ignore_errors=True)
        c.log(f"{NAME}: the gzip trap (GET per instance, 4 connections, httpx's default) ...")
        gzip_bulk = raw_instances(url, st, se, sops, 4, {"Accept-Encoding": "gzip"})[1]

    def best(name: str, index: int) -> float:
        return min(r[index] for r in runs[name])

    def median(name: str, index: int) -> float:
        return float(np.median([r[index] for r in runs[name]]))

    def row(label: str, name: str, versus: str | None = None, first: bool = True) -> list[str]:
        ratio = f"{best(name, 1) / best(versus, 1):.2f}" if versus else ""
        return [label, c.ms(best(name, 0)) if first else "-", c.ms(best(name, 1)),
                c.ms(median(name, 1)), ratio]  # fmt: skip

    nbytes = sum(Path(f).stat().st_size for f in files)
    rows = [
        row("ours, default: middle instance + series stream", "ours auto", "raw same"),
        row("raw: metadata GET + series GET (same requests)", "raw same", first=False),
        row("raw: series GET alone (one multipart)", "bulk", first=False),
    ]
    rows += [row(f"ours, per instance, {n} connection(s)", f"ours {n}", f"raw {n}")
             for n in CONNECTIONS]  # fmt: skip
    rows += [row(f"raw: GET per instance, {n} connection(s)", f"raw {n}") for n in CONNECTIONS]
    if have_dwc:
        rows.append(row("dicomweb-client 0.61 (requests)", "dicomweb-client", "raw same"))
    rows.append(row("ours, reopened from the encrypted cache", "cached", "raw same"))
    rows.append(["raw: GET per instance, 4, gzip (the trap)", "-", c.ms(gzip_bulk), "-", ""])
    print(f"{NAME}: {len(files)} instances {shape} int16, {c.mib(nbytes)} MiB, Orthanc on "
          f"loopback; best of {args.repeat}")  # fmt: skip
    c.print_table(
        "Milliseconds from the call",
        ["", "first image", "full series", "full median", "ratio to raw"],
        rows,
    )
    first = best("ours auto", 0)
    full = best("ours auto", 1)
    reference = best("raw same", 1)
    ratio = full / reference
    first_ok = first < FIRST_GOAL_S
    full_ok = ratio <= FULL_GOAL_RATIO
    print(f"voxels equal the local load: {'yes' if same else 'NO'}")
    print(f"first image < {FIRST_GOAL_S * 1e3:.0f} ms: {c.goal_text(first_ok)}; full series "
          f"<= {FULL_GOAL_RATIO}x raw: {c.goal_text(full_ok)}")  # fmt: skip
    c.emit(
        {
            "benchmark": NAME,
            "ours": full,
            "reference": reference,
            "reference_name": "raw httpx: series metadata GET + series multipart GET, bytes only",
            "ratio": ratio,
            "goal": f"first image < {FIRST_GOAL_S}s; full series <= {FULL_GOAL_RATIO}x raw",
            "goal_met": bool(first_ok and full_ok and same),
            "first_image_s": first,
            "ours_median": median("ours auto", 1),
            "reference_median": median("raw same", 1),
            "per_instance_first_image_s": {n: best(f"ours {n}", 0) for n in CONNECTIONS},
            "per_instance_full_s": {n: best(f"ours {n}", 1) for n in CONNECTIONS},
            "raw_per_instance_s": {n: best(f"raw {n}", 1) for n in CONNECTIONS},
            "raw_series_get_s": best("bulk", 1),
            "raw_per_instance_gzip_4_s": gzip_bulk,
            "dicomweb_client_s": best("dicomweb-client", 1) if have_dwc else None,
            "dicomweb_client_first_s": best("dicomweb-client", 0) if have_dwc else None,
            "cached_reopen_s": best("cached", 1),
            "same_as_local": same,
            "instances": len(files),
            "bytes": nbytes,
            "quick": args.quick,
            "environment": c.environment(),
        }
    )


if __name__ == "__main__":
    main()
