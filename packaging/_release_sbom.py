"""The release's CycloneDX SBOM: every wheel of the wheelhouse and every plugin, with its name,
version, purl, SHA-256 and (where the wheel's METADATA says) license."""

from __future__ import annotations

import datetime as dt
import email.message
from collections.abc import Sequence
from pathlib import Path

from _release_wheelhouse import Wheel, requirements_of, wheel_metadata
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

try:
    from cyclonedx.contrib.license.factories import LicenseFactory
except ImportError:  # cyclonedx-python-lib < 11
    from cyclonedx.factory.license import LicenseFactory

SBOM_NAME = "sbom.cdx.json"
_LICENSE_CLASSIFIER = "License :: "


def license_of(meta: email.message.Message) -> str | None:
    """``License-Expression``, else a short ``License`` field, else the license classifiers."""
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 80 and text.upper() != "UNKNOWN":
        return text
    names = [
        c.rsplit(" :: ", 1)[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith(_LICENSE_CLASSIFIER) and c.count("::") >= 2
    ]
    return " AND ".join(dict.fromkeys(names)) or None


def component(
    wheel: Wheel,
    *,
    kind: str = "wheel",
    plugin_bundle: tuple[str, str] | None = None,
    ref_prefix: str = "",
) -> Component:
    """One library component for a wheel (``plugin_bundle``: the plugin's ``.mwp`` name and
    SHA-256 when the wheel ships inside a signed plugin bundle)."""
    meta = wheel_metadata(wheel.path)
    name = meta.get("Name") or wheel.name
    factory = LicenseFactory()
    license_text = license_of(meta)
    licenses = [factory.make_from_string(license_text)] if license_text else []
    properties = [
        Property(name="medws:kind", value=kind),
        Property(name="medws:file", value=wheel.path.name),
    ]
    if plugin_bundle is not None:
        properties.append(Property(name="medws:plugin-bundle", value=plugin_bundle[0]))
        properties.append(Property(name="medws:plugin-bundle-sha256", value=plugin_bundle[1]))
    return Component(
        name=name,
        version=wheel.version,
        type=ComponentType.APPLICATION if kind == "application" else ComponentType.LIBRARY,
        bom_ref=f"{ref_prefix}pkg:pypi/{wheel.name}@{wheel.version}",
        purl=PackageURL("pypi", None, wheel.name, wheel.version),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=wheel.sha256)],
        licenses=licenses,
        description=(meta.get("Summary") or None),
        properties=properties,
    )


def write_sbom(
    path: Path,
    *,
    app: Wheel,
    wheels: Sequence[Wheel],
    plugins: Sequence[tuple[Wheel, Path, str]] = (),
    created: dt.datetime | None = None,
) -> int:
    """Write the SBOM (CycloneDX 1.6 JSON) and return its component count.

    ``wheels`` is the whole wheelhouse (the app's wheel among them, described as the BOM's
    subject as well); ``plugins`` are ``(wheel, bundle path, bundle sha256)``.
    """
    bom = Bom()
    bom.metadata.timestamp = created or dt.datetime.now(dt.UTC)
    subject = component(app, kind="application", ref_prefix="release:")
    bom.metadata.component = subject
    made: dict[str, tuple[Wheel, Component]] = {}
    for wheel in wheels:
        kind = "app" if wheel.name == app.name else "wheel"
        made[wheel.name] = (wheel, component(wheel, kind=kind))
    for wheel, bundle_path, bundle_sha in plugins:
        bundle = (bundle_path.name, bundle_sha)
        made[wheel.name] = (wheel, component(wheel, kind="plugin", plugin_bundle=bundle))
    for _, comp in made.values():
        bom.components.add(comp)
    # The dependency graph, as pip resolved it here (markers for this interpreter).
    for wheel, comp in made.values():
        needs = [made[n][1] for n in requirements_of(wheel) if n in made and n != wheel.name]
        bom.register_dependency(comp, needs)
    roots = [app.name, *(w.name for w, _, _ in plugins)]
    bom.register_dependency(subject, [made[n][1] for n in roots if n in made])
    count = len(made)
    path.write_text(JsonV1Dot6(bom).output_as_string(indent=2) + "\n")
    return count
