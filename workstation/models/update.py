"""Pull model updates from the registry: signed metadata, verified installs, staged rollout.

:func:`pull` is one round of the workstation's update loop:

1. fetch the timestamp, snapshot and targets and hand them to
   :meth:`ModelMetadataStore.update`; a refusal (tampering, expiry, rollback, mix-and-match)
   keeps the last good set, is recorded in :attr:`PullReport.errors`, and nothing new is
   installed or promoted this round;
2. for each trusted, unexpired target meant for this site (``sites`` null or listing it) and
   not yet known to the lifecycle: find the release with the target's SHA-256, stream it to a
   temporary file and :meth:`ModelLifecycle.install` it with the metadata's own check
   (:meth:`ModelMetadataStore.verify_bundle_against_targets`); report ``installed``;
3. follow the site's assignment for each model (site-specific over global): move the assigned
   version one stage per pull towards the assigned one (installed → shadow → canary → active),
   with ``gates`` before shadow (a failure blocks it: ``gates.failed`` with the failing gates;
   else ``gates.passed``) and the assignment's share for the canary; ``canary.promoted`` when it
   becomes active.

An unreachable registry changes nothing: the last good metadata and the installed models stay,
and the error is in the report. Reports to the registry are best effort (logged on failure).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workstation.models._lifecycle_store import vkey
from workstation.models._registry_models import ModelRegistryClient, registry_reporter
from workstation.models.lifecycle import (
    GateReportLike,
    LifecycleError,
    ModelLifecycle,
    PromotionBlocked,
)
from workstation.security.errors import SecurityError
from workstation.security.model_metadata import MetadataError, ModelMetadataStore
from workstation.sync.client import SyncError

__all__ = [
    "ModelRegistryClient",
    "PullReport",
    "evaluation_gates",
    "pull",
    "registry_reporter",
]

log = logging.getLogger(__name__)

ORDER = ("installed", "shadow", "canary", "active")
Gates = Callable[[str, str], GateReportLike]
Reporter = Callable[[str, str, str, dict[str, Any]], None]


@dataclass
class PullReport:
    """What one :func:`pull` did: ``"name/version"`` keys, promotions ``"name/version→stage"``."""

    updated_metadata: bool = False
    installed: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    metadata_versions: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No errors (a blocked promotion is a decision, not an error)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"schema": 1, "ok": self.ok, **asdict(self)}


def pull(
    client: ModelRegistryClient,
    metadata_store: ModelMetadataStore,
    lifecycle: ModelLifecycle,
    *,
    site_id: str,
    gates: Gates | None = None,
    now: dt.datetime | None = None,
    report: Reporter | None = None,
) -> PullReport:
    """One update round (see the module doc). ``report(name, version, event, details)`` tells
    the registry (default: :func:`registry_reporter` of ``client``). With ``gates=None`` a
    version is not moved into shadow (there is nothing to check it with): it stays installed
    and the report says so."""
    out = PullReport()
    tell = report or registry_reporter(client)
    if not _refresh(client, metadata_store, now, out):
        out.metadata_versions = metadata_store.versions()
        return out
    out.metadata_versions = metadata_store.versions()
    trusted = metadata_store.trusted_targets(now)
    if trusted["expired"]:
        expired = ", ".join(trusted["expired_metadata"])
        out.errors.append(f"the trusted {expired} metadata has expired: nothing is installed")
    else:
        _install_new(client, metadata_store, lifecycle, trusted["targets"], site_id, now, out, tell)
    try:
        assignments = client.assignments()
    except SyncError as error:
        out.errors.append(f"assignments: {error}")
        return out
    for assignment in _for_site(assignments, site_id).values():
        _follow(lifecycle, assignment, gates, out, tell)
    return out


# -- metadata ---------------------------------------------------------------------------------


def _refresh(
    client: ModelRegistryClient,
    store: ModelMetadataStore,
    now: dt.datetime | None,
    out: PullReport,
) -> bool:
    """Fetch and check the metadata; False (and an error recorded) when the round must stop."""
    try:
        raw = {role: client.metadata(role) for role in ("timestamp", "snapshot", "targets")}
    except SyncError as error:
        out.errors.append(f"metadata: {error}; the last good metadata stays in use")
        return False
    if any(v is None for v in raw.values()):
        out.errors.append("metadata: the registry has published no model metadata yet")
        return False
    try:
        result = store.update(raw["timestamp"], raw["snapshot"], raw["targets"], now=now)
    except MetadataError as error:
        out.errors.append(
            f"metadata refused ({error.kind}): {error}; the last good metadata stays in use "
            "and nothing new is installed"
        )
        return False
    out.updated_metadata = result.changed
    return True


# -- installing -------------------------------------------------------------------------------


def _install_new(
    client: ModelRegistryClient,
    store: ModelMetadataStore,
    lifecycle: ModelLifecycle,
    targets: Mapping[str, Mapping[str, Any]],
    site_id: str,
    now: dt.datetime | None,
    out: PullReport,
    tell: Reporter,
) -> None:
    for key, entry in sorted(targets.items()):
        name, _, version = key.partition("/")
        sites = entry.get("sites")
        if sites is not None and site_id not in sites:
            continue
        known = {v.version: v for v in lifecycle.versions(name)}
        if version in known:
            continue
        active = next((v for v in known.values() if v.stage == "active"), None)
        if active is not None and vkey(version) <= vkey(active.version):
            continue  # an older listed version: never a downgrade by pull
        try:
            _install_one(client, store, lifecycle, name, version, entry, now)
        except (SyncError, MetadataError, LifecycleError, SecurityError, OSError) as error:
            out.errors.append(f"{key}: not installed: {error}")
            continue
        out.installed.append(key)
        tell(name, version, "installed", {"sha256": entry["sha256"]})


def _install_one(
    client: ModelRegistryClient,
    store: ModelMetadataStore,
    lifecycle: ModelLifecycle,
    name: str,
    version: str,
    entry: Mapping[str, Any],
    now: dt.datetime | None,
) -> None:
    releases = [
        r
        for r in client.releases(name)
        if r.get("sha256") == entry["sha256"] and str(r.get("version")) == version
    ]
    if not releases:
        raise LifecycleError(f"the registry has no release with the listed SHA-256 of {version}")

    def verify_target(path: Path, bundle_name: str, bundle_version: str) -> None:
        if (bundle_name, bundle_version) != (name, version):
            raise MetadataError(
                "unknown-target",
                f"the bundle is {bundle_name} {bundle_version}, not the listed {name} {version}",
            )
        store.verify_bundle_against_targets(path, bundle_name, bundle_version, now=now)

    with tempfile.TemporaryDirectory(prefix="medws-pull-") as tmp:
        path = client.download(
            str(releases[0]["id"]), Path(tmp) / f"{name}-{version}.mwb",
            expected_sha256=str(entry["sha256"]),
        )  # fmt: skip
        lifecycle.install(path, verify_target=verify_target, reason="pulled from the registry")


# -- assignments ------------------------------------------------------------------------------


def _for_site(assignments: list[dict[str, Any]], site_id: str) -> dict[str, dict[str, Any]]:
    """One assignment per model name: this site's over the global one."""
    chosen: dict[str, dict[str, Any]] = {}
    for item in assignments:
        site = item.get("site_id")
        if site not in (None, site_id) or item.get("stage") not in ORDER[1:]:
            continue
        name = str(item["name"])
        if name not in chosen or (site is not None and chosen[name].get("site_id") is None):
            chosen[name] = item
    return chosen


def _follow(
    lifecycle: ModelLifecycle,
    assignment: Mapping[str, Any],
    gates: Gates | None,
    out: PullReport,
    tell: Reporter,
) -> None:
    """Move the assigned version one stage towards the assigned stage."""
    name, version, stage = str(assignment["name"]), str(assignment["version"]), assignment["stage"]
    key = f"{name}/{version}"
    try:
        current = lifecycle.get(name, version)
    except LifecycleError:
        out.errors.append(f"{key} is assigned ({stage}) but not installed here")
        return
    if current.stage not in ORDER or ORDER.index(current.stage) >= ORDER.index(stage):
        return  # there already, or blocked / rolled back / retired: a person decides
    step = ORDER[ORDER.index(current.stage) + 1]
    if step == "shadow" and gates is None:
        out.errors.append(f"{key}: no validation gates to run; it stays {current.stage}")
        return
    seen: list[GateReportLike] = []

    def gate(n: str, v: str) -> GateReportLike:
        assert gates is not None
        result = gates(n, v)
        seen.append(result)
        return result

    share = assignment.get("share")
    try:
        lifecycle.promote(
            name,
            version,
            step,
            gates=gate if gates is not None else None,
            canary_share=float(share) if step == "canary" and share else None,
            reason=f"registry assignment: {stage}",
        )
    except PromotionBlocked as error:
        out.blocked.append(key)
        tell(name, version, "gates.failed", {"failed": list(error.failed)})
        return
    except LifecycleError as error:
        out.errors.append(f"{key}: {error}")
        return
    if seen:
        tell(name, version, "gates.passed", _gates(seen))
    out.promoted.append(f"{key}→{step}")
    if step == "active":
        tell(name, version, "canary.promoted", {"stage": "active"})


def _gates(seen: list[GateReportLike]) -> dict[str, Any]:
    """The names of the gates that ran (for the registry's short ``detail``)."""
    results = getattr(seen[-1], "results", ()) if seen else ()
    return {"gates": [str(getattr(r, "name", r)) for r in results]} if results else {}


# -- the real gates ---------------------------------------------------------------------------


VALIDATION_FOLDER = "validation"  # inside a model bundle: validation_set.npz + .json


def bundled_validation_set(bundle: Path, trust: Any) -> Any:
    """The reference validation set a verified model bundle carries (``validation/``), or
    ``None`` when it carries none."""
    from workstation.models.validation_set import ValidationSet
    from workstation.security.bundle import open_bundle

    with tempfile.TemporaryDirectory(prefix="medws-validation-") as tmp:
        with open_bundle(bundle, trust=trust, kind="model") as verified:
            out = verified.extract(Path(tmp) / "payload")
        folder = out / VALIDATION_FOLDER
        if not (folder / "validation_set.json").is_file():
            return None
        return ValidationSet.load(folder)


def evaluation_gates(
    lifecycle: ModelLifecycle, validation: Any = None, *, trust: Any = None, **thresholds: Any
) -> Gates:
    """Gates that load the candidate and the active version from the lifecycle's verified
    bundles, :func:`~workstation.models.gates.evaluate` both on the reference validation set and
    :func:`~workstation.models.gates.run_gates` (``thresholds``: margin, max_gap, max_ratio).

    The set is the one the candidate's bundle carries (``validation/``), else ``validation``;
    with neither the gate refuses (nothing is promoted unvalidated)."""

    def run(name: str, version: str) -> GateReportLike:
        from workstation.inference.catalogue import load_model
        from workstation.models.gates import evaluate, run_gates

        active = lifecycle.in_stage(name, "active")
        if active is None:
            raise LifecycleError(f"{name} has no active version to compare {version} with")
        roots = trust if trust is not None else lifecycle._roots()
        bundle = lifecycle.folder / lifecycle.get(name, version).bundle
        reference = bundled_validation_set(bundle, roots)
        if reference is None:
            reference = validation
        if reference is None:
            raise LifecycleError(
                f"{name} {version}: its bundle carries no validation set and none was given "
                "(--validation DIR); it cannot be validated, so it is not promoted"
            )
        candidate = load_model(bundle, trust=roots)
        current = load_model(lifecycle.folder / active.bundle, trust=roots)
        task = candidate.info.task
        return run_gates(
            evaluate(candidate, task, reference, repeats_for_latency=3),
            evaluate(current, task, reference, repeats_for_latency=3),
            **thresholds,
        )

    return run
