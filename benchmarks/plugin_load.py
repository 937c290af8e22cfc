"""What verifying plugins before import costs at start-up: discovery with vs without verification.

The first-party plugins (``plugins/progression``, ``plugins/measure_example``) are built and
installed as signed bundles into a scratch home (signed by a throwaway key on the allow-list).
Measured, warm page cache, best of N, in one process:

- ``ours``: :meth:`PluginRegistry.discover` — every installed bundle's hybrid signature and
  expiry, every extracted file's SHA-256 against the signed manifest, API and dependency checks.
- ``reference``: what an unverified entry-point plugin system does: read the same plugins'
  ``*.dist-info`` entry points with ``importlib.metadata.distributions(path=[site, ...])``.
- ``import``: importing every contribution's module (the cost the user pays anyway, for scale).

Goal: verification adds < 50 ms to start-up for these plugins.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import tempfile
import time
from pathlib import Path

import _common as c

NAME = "plugin_load"
GOAL_SECONDS = 0.050
REPO = Path(__file__).resolve().parents[1]
PLUGINS = ("progression", "measure_example")


def install_all(home: Path) -> list[Path]:
    """Build, sign (an allow-listed throwaway key) and install the first-party plugins."""
    from workstation.plugins.build import build_plugin_bundle
    from workstation.plugins.installed import install_bundle, user_root
    from workstation.security.sign import HybridSigningKey
    from workstation.security.trust import LocalTrust, TrustRoots, add_allowed_key

    key = HybridSigningKey.generate()
    add_allowed_key(key.public_key, ["plugin"], home=home, note="benchmark")
    trust = TrustRoots.load_default(home=home, local=LocalTrust.load(home))
    sites = []
    for name in PLUGINS:
        bundle = home / f"{name}.mwp"
        build_plugin_bundle(REPO / "plugins" / name, bundle, signing_keys=[key])
        sites.append(install_bundle(bundle, root=user_root(home), trust=trust).site)
    return sites


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=20, quick_repeat=5)
    from workstation.plugins import PluginRegistry

    with tempfile.TemporaryDirectory(prefix="mw-bench-plugins-") as scratch:
        home = Path(scratch)
        c.log("building and installing the first-party plugins ...")
        sites = install_all(home)
        files = sum(1 for site in sites for p in site.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for site in sites for p in site.rglob("*") if p.is_file())

        def verified() -> PluginRegistry:
            return PluginRegistry.discover(home=home, system=False)

        def unverified() -> list[tuple[str, str]]:
            dists = importlib.metadata.distributions(path=[str(s) for s in sites])
            return [(ep.group, ep.value) for d in dists for ep in d.entry_points]

        times = c.measure({"verified": verified, "unverified": unverified}, args.repeat)
        registry = verified()
        assert all(r.state == "ready" for r in registry), [r.error for r in registry]
        sys.path.extend(str(s) for s in sites)
        t0 = time.perf_counter()
        for record in registry:
            for contribution in record.contributions():
                importlib.import_module(contribution.target.partition(":")[0])
        import_s = time.perf_counter() - t0

    ours, reference = times["verified"], times["unverified"]
    c.print_table(
        f"Plugin discovery: {len(PLUGINS)} plugins, {files} files, {size / 1e3:,.0f} kB",
        ["step", "best ms", "median ms"],
        [
            ["verified discovery (ours)", c.ms(ours.best), c.ms(ours.median)],
            ["entry points only (reference)", c.ms(reference.best), c.ms(reference.median)],
            ["first import of the contributions", c.ms(import_s), "-"],
        ],
    )
    overhead = ours.best - reference.best
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours.best,
            "reference": reference.best,
            "reference_name": "importlib.metadata entry points of the same plugins, unverified",
            "ratio": ours.best / reference.best,
            "overhead_s": overhead,
            "goal": f"verification adds < {GOAL_SECONDS * 1000:.0f} ms",
            "goal_met": overhead < GOAL_SECONDS,
            "first_import_s": import_s,
            "plugins": len(PLUGINS),
            "files": files,
            "bytes": size,
            "quick": args.quick,
            "repeat": args.repeat,
            **c.environment(),
        }
    )


if __name__ == "__main__":
    main()
