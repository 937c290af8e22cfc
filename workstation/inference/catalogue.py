"""Models the workstation can run: signed model bundles, verified before a byte is used.

A model is a ``.mwb`` model bundle (:mod:`workstation.security.bundle`) holding
``manifest.json`` (what the model is, its input spec, outputs, intended use, training data and
validation metrics) and the weights. :func:`find_models` lists the bundles shipped under
``resources/models/`` and those installed under the workstation home's ``models/`` folder;
:func:`load_model` verifies one against the trust roots (signature, expiry, every payload
byte), extracts it into a private temporary folder, checks the weights' SHA-256 named in the
manifest, builds the architecture and loads the weights with ``weights_only=True`` (no pickled
code runs). Anything that fails is refused with :class:`ModelError` (or the bundle's own
:class:`~workstation.security.errors.BundleError`); nothing unverified is ever loaded.

torch is imported inside :func:`load_model`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workstation.core.errors import WorkstationError
from workstation.inference.preprocess import InputSpec
from workstation.inference.qc import TrainingStats

if TYPE_CHECKING:
    import torch

    from workstation.security.trust import TrustRoots

__all__ = [
    "DISCLAIMER",
    "LoadedModel",
    "ModelError",
    "ModelInfo",
    "find_models",
    "load_model",
    "shipped_models_dir",
]

DISCLAIMER = "demonstration model — not for clinical use"
BUNDLE_SUFFIX = ".mwb"


class ModelError(WorkstationError):
    """A model cannot be found, or its bundle is not a usable model."""


@dataclass(frozen=True)
class ModelInfo:
    """What a verified model bundle says about its model."""

    name: str
    version: str
    task: str  # "segmentation" | "classification"
    bundle: Path
    trusted_by: str
    manifest: Mapping[str, Any] = field(repr=False)

    @property
    def disclaimer(self) -> str:
        return str(self.manifest.get("disclaimer", ""))

    @property
    def intended_use(self) -> str:
        return str(self.manifest.get("intended_use", ""))

    @property
    def training_data(self) -> str:
        return str(self.manifest.get("training_data", ""))

    @property
    def metrics(self) -> Mapping[str, Any]:
        return dict(self.manifest.get("metrics", {}))

    @property
    def classes(self) -> dict[int, str]:
        """Output labels (segmentation) or classes (classification), by index."""
        outputs = self.manifest.get("outputs", {})
        table = outputs.get("labels") or outputs.get("classes") or {}
        return {int(k): str(v) for k, v in table.items()}

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("outputs", {}).get("threshold", 0.5))

    @property
    def patch_size(self) -> tuple[int, int, int]:
        size = self.manifest.get("input", {}).get("patch_size", [32, 32, 32])
        return (int(size[0]), int(size[1]), int(size[2]))

    def spec(self) -> InputSpec:
        return InputSpec.from_manifest(self.manifest.get("input", {}))

    def training_stats(self) -> TrainingStats:
        return TrainingStats.from_manifest(self.manifest.get("input", {}).get("qc"))

    def brain_intensity_percentiles(self) -> dict[float, float] | None:
        """Normalised in-brain intensity percentiles of the training data, if the manifest
        gives them (compared after preprocessing; see :func:`~.qc.normalised_intensity_qc`)."""
        dist = self.manifest.get("input", {}).get("training_distribution", {})
        pct = dist.get("brain_intensity_percentiles")
        return None if not pct else {float(k): float(v) for k, v in pct.items()}

    def summary(self) -> dict[str, Any]:
        """JSON-able description (for ``--json`` and the GUI)."""
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "bundle": str(self.bundle),
            "trusted_by": self.trusted_by,
            "disclaimer": self.disclaimer,
            "intended_use": self.intended_use,
            "training_data": self.training_data,
            "metrics": self.metrics,
        }


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified model ready to run: the network (eval mode, CPU) and what it expects."""

    info: ModelInfo
    module: torch.nn.Module

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version


def shipped_models_dir() -> Path:
    """``resources/models`` beside the package (the demonstration models)."""
    from workstation.config import resources_dir

    return resources_dir() / "models"


def _search_dirs(dirs: Sequence[Path] | None) -> list[Path]:
    if dirs is not None:
        return [Path(d) for d in dirs]
    from workstation.config import paths

    return [shipped_models_dir(), paths().models]


def _bundles(dirs: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in dirs:
        if folder.is_dir():
            found.extend(sorted(folder.glob(f"*{BUNDLE_SUFFIX}")))
    return found


def _trust(trust: TrustRoots | None) -> TrustRoots:
    if trust is not None:
        return trust
    from workstation.security.trust import TrustRoots

    return TrustRoots.load_default()


def _read_manifest(folder: Path, bundle: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not path.is_file():
        raise ModelError(f"{bundle.name}: the model bundle has no manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{bundle.name}: manifest.json is not valid JSON ({e})") from e
    for key in ("name", "version", "architecture", "weights", "input", "outputs"):
        if key not in manifest:
            raise ModelError(f"{bundle.name}: manifest.json lacks {key!r}")
    if DISCLAIMER not in str(manifest.get("disclaimer", "")):
        raise ModelError(
            f"{bundle.name}: the manifest does not carry the words {DISCLAIMER!r}; this "
            "workstation only runs models that state they are demonstration models"
        )
    return manifest


def _info(manifest: Mapping[str, Any], bundle: Path, trusted_by: str) -> ModelInfo:
    task = str(manifest["outputs"].get("kind", ""))
    if task not in ("segmentation", "classification"):
        raise ModelError(f"{bundle.name}: unknown model task {task!r}")
    return ModelInfo(
        name=str(manifest["name"]),
        version=str(manifest["version"]),
        task=task,
        bundle=bundle,
        trusted_by=trusted_by,
        manifest=manifest,
    )


def _open_verified(bundle: Path, trust: TrustRoots, folder: Path) -> tuple[dict[str, Any], str]:
    """Verify ``bundle`` completely and extract it into ``folder``; the manifest and signer."""
    from workstation.security.bundle import open_bundle

    with open_bundle(bundle, trust=trust, kind="model") as verified:
        verified.extract(folder / "payload")
        trusted_by = verified.trusted_by
        name, version = verified.name, str(verified.version)
    manifest = _read_manifest(folder / "payload", bundle)
    if (manifest["name"], str(manifest["version"])) != (name, version):
        raise ModelError(
            f"{bundle.name}: the signed bundle is {name} {version} but its model manifest says "
            f"{manifest['name']} {manifest['version']}"
        )
    return manifest, trusted_by


def find_models(
    *, dirs: Sequence[Path] | None = None, trust: TrustRoots | None = None
) -> tuple[list[ModelInfo], list[tuple[Path, str]]]:
    """Verified models in the search folders, and ``(bundle, why)`` for those refused.

    The newest version of each name comes first.
    """
    roots = _trust(trust)
    models: list[ModelInfo] = []
    refused: list[tuple[Path, str]] = []
    for bundle in _bundles(_search_dirs(dirs)):
        try:
            with tempfile.TemporaryDirectory(prefix="medws-model-") as tmp:
                manifest, trusted_by = _open_verified(bundle, roots, Path(tmp))
            models.append(_info(manifest, bundle, trusted_by))
        except WorkstationError as e:
            refused.append((bundle, str(e)))
    models.sort(key=lambda m: (m.name, tuple(-p for p in _version_key(m.version))))
    return models, refused


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("-")[0].split("."):
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts)


def _resolve(model: str | Path, dirs: Sequence[Path] | None) -> Path:
    candidate = Path(model)
    if candidate.suffix == BUNDLE_SUFFIX or candidate.is_file():
        if not candidate.is_file():
            raise ModelError(f"no model bundle at {candidate}")
        return candidate
    name, _, version = str(model).partition("@")
    matches = [
        b
        for b in _bundles(_search_dirs(dirs))
        if b.name.startswith(f"{name}-") and (not version or b.stem == f"{name}-{version}")
    ]
    if not matches:
        known = sorted({b.stem for b in _bundles(_search_dirs(dirs))})
        raise ModelError(
            f"no model {model!r}; available: {', '.join(known) or 'none'} "
            "(name, name@version or a .mwb path)"
        )
    return max(matches, key=lambda b: _version_key(b.stem[len(name) + 1 :]))


def load_model(
    model: str | Path,
    *,
    dirs: Sequence[Path] | None = None,
    trust: TrustRoots | None = None,
) -> LoadedModel:
    """Verify and load ``model``: a name (newest version), ``name@version`` or a bundle path.

    Raises
    ------
    ModelError, BundleError, TrustError
        Unknown model, bad signature, tampered payload, wrong weights, unknown architecture.
    """
    import torch

    from workstation.inference.architectures import build

    bundle = _resolve(model, dirs)
    roots = _trust(trust)
    with tempfile.TemporaryDirectory(prefix="medws-model-") as tmp:
        manifest, trusted_by = _open_verified(bundle, roots, Path(tmp))
        info = _info(manifest, bundle, trusted_by)
        weights = manifest["weights"]
        path = Path(tmp) / "payload" / str(weights.get("file", ""))
        if not path.is_file() or path.parent != Path(tmp) / "payload":
            raise ModelError(f"{bundle.name}: weights file {weights.get('file')!r} is missing")
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != weights.get("sha256"):
            raise ModelError(f"{bundle.name}: the weights do not match the manifest's SHA-256")
        arch = manifest["architecture"]
        try:
            module = build(str(arch["name"]), **dict(arch.get("config", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{bundle.name}: cannot build architecture {arch!r} ({e})") from e
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except (RuntimeError, ValueError, EOFError) as e:
            raise ModelError(f"{bundle.name}: the weights do not fit the architecture ({e})") from e
    module.eval()
    return LoadedModel(info, module)
