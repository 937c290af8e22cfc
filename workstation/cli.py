"""The ``workstation`` command: parse, call the engine, print. Exit codes: 0 ok, 1 failure, 2 usage.

Subcommands land with the issues that build them; each one here is complete.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workstation import __version__
from workstation.cli_format import ProgressBar
from workstation.core.errors import Cancelled, WorkstationError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workstation",
        description="Medical Workstation. Without a command: open the viewer on the demo study.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = commands.add_parser("scan", help="index DICOM under PATH: patients, studies, series")
    scan.add_argument("path", metavar="PATH", help="folder (searched recursively) or file")
    scan.add_argument("--json", action="store_true", help="print the catalog as JSON")

    export = commands.add_parser("export", help="assemble a series and write .nii.gz/.nrrd/.mha")
    export.add_argument("path", metavar="PATH", help="folder or file holding the series")
    export.add_argument("--series", metavar="UID", help="series key or SeriesInstanceUID")
    export.add_argument("--out", metavar="FILE", required=True, help="output file")
    export.add_argument("--json", action="store_true", help="print the result as JSON")

    for module in _command_modules().values():
        module.add_parser(commands)
    return parser


def _command_modules() -> dict[str, Any]:
    """Commands that live in their own modules (each has ``add_parser`` and ``run``)."""
    from workstation import (
        cli_analyze,
        cli_audit,
        cli_bundle,
        cli_cohort,
        cli_deid,
        cli_keys,
        cli_models,
        cli_open,
        cli_pacs,
        cli_plugins,
        cli_sync,
    )

    return {
        "keys": cli_keys,
        "bundle": cli_bundle,
        "open": cli_open,
        "pacs": cli_pacs,
        "audit": cli_audit.audit_command,
        "results": cli_audit.results_command,
        "deid": cli_deid,
        "analyze": cli_analyze,
        "models": cli_models,
        "plugins": cli_plugins,
        "cohort": cli_cohort,
        "registry": cli_sync.registry_command,
        "sync": cli_sync.sync_command,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help / --version (0) and usage errors (2), already printed
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        if args.command is None:
            return _demo()
        if args.command == "scan":
            return _scan(args.path, as_json=args.json)
        if args.command == "export":
            return _export(args.path, args.series, args.out, as_json=args.json)
        module = _command_modules().get(args.command)
        if module is not None:
            return int(module.run(args))
    except Cancelled:
        sys.stderr.write("cancelled\n")
        return EXIT_FAILURE
    except WorkstationError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    parser.print_usage(sys.stderr)
    sys.stderr.write(f"workstation: error: unknown command {args.command}\n")
    return EXIT_USAGE


def _demo() -> int:
    """No command: the viewer on the bundled demo study."""
    from workstation import cli_open

    return cli_open.open_gui(None)


def _scan(path: str, *, as_json: bool) -> int:
    from workstation.dicom import scan

    catalog = scan(path, progress=ProgressBar())
    if as_json:
        json.dump(catalog.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from workstation.cli_format import format_catalog

        sys.stdout.write(format_catalog(catalog))
    if not catalog.series:
        sys.stderr.write(f"error: no DICOM series found under {path}\n")
        return EXIT_FAILURE
    return EXIT_OK


def _export(path: str, series: str | None, out: str, *, as_json: bool) -> int:
    from workstation.dicom import export_volume, load_series
    from workstation.dicom.export import EXPORT_SUFFIXES, check_export_path
    from workstation.workflow.plugin_io import load_with_plugin, plugin_exporter, plugin_loader

    builtin = any(out.lower().endswith(s) for s in EXPORT_SUFFIXES)
    exporter = None if builtin else plugin_exporter(out)
    if exporter is None:
        check_export_path(out)  # fail before loading the series, not after
    loader = plugin_loader(path)
    if loader is not None:
        volume = load_with_plugin(loader, path, progress=ProgressBar(), cancel=None)
    else:
        volume = load_series(path, series, progress=ProgressBar())
    if exporter is not None:
        exporter.export(volume, Path(out))
        written = Path(out)
    else:
        written = export_volume(volume, out)
    if as_json:
        json.dump(
            {
                "out": str(written),
                "series": volume.metadata.get("key"),
                "size": list(volume.size),
                "spacing": list(volume.spacing),
                "origin": list(volume.origin),
                "direction": volume.direction.ravel().tolist(),
                "dtype": str(volume.array.dtype),
                "warnings": list(volume.warnings),
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        i, j, k = volume.size
        sys.stdout.write(f"wrote {written} ({i}×{j}×{k}, {volume.array.dtype})\n")
        for warning in volume.warnings:
            sys.stderr.write(f"warning: {warning}\n")
    return EXIT_OK
