"""``workstation open``: show a series in the desktop viewer.

::

    workstation open [PATH] [--layout 1x1|1x3|2x2] [--tissue-labels] [--clip-3d]
                     [--analyze MODEL] [--plugin-panel PLUGIN/NAME] [--screenshot PNG]

With no PATH the bundled demo study opens. With ``--screenshot`` the window is rendered once the
series has loaded (and the 3D view and requested layers are drawn), saved as PNG, and the
command exits (0 ok, 1 when loading failed). Qt is imported only when the command runs, so the
rest of the command line stays fast and works without a display.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

LAYOUTS = ("1x1", "1x3", "2x2")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``open`` command to the top-level subparsers."""
    command = commands.add_parser("open", help="show a series (folder or file) in the viewer")
    command.add_argument(
        "path",
        metavar="PATH",
        nargs="?",
        help="folder (searched recursively) or file; default: the bundled demo study",
    )
    command.add_argument(
        "--screenshot", metavar="PNG", help="save the window as PNG once loaded, then exit"
    )
    command.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="2x2",
        help="1x1: axial; 1x3: axial, coronal, sagittal; 2x2: the three and 3D (default)",
    )
    command.add_argument(
        "--tissue-labels",
        action="store_true",
        help="show the demo template's grey/white matter labels as a layer (demo study only)",
    )
    command.add_argument(
        "--clip-3d",
        action="store_true",
        help="cut the 3D view at the crosshair (the octant facing the camera)",
    )
    command.add_argument(
        "--analyze",
        metavar="MODEL",
        help="run this verified model (e.g. demo-lesion-seg) on the series once it has loaded",
    )
    command.add_argument(
        "--plugin-panel",
        metavar="PLUGIN/NAME",
        help="open this plugin panel once plugins are verified (see 'workstation plugins list')",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``workstation open ...``; returns the exit code."""
    return open_gui(
        args.path,
        screenshot=args.screenshot,
        layout=args.layout,
        tissue=args.tissue_labels,
        clip_3d=args.clip_3d,
        analyze=args.analyze,
        plugin_panel=args.plugin_panel,
    )


def open_gui(
    path: str | None,
    *,
    screenshot: str | None = None,
    layout: str = "2x2",
    tissue: bool = False,
    clip_3d: bool = False,
    analyze: str | None = None,
    plugin_panel: str | None = None,
) -> int:
    """Open the viewer on ``path`` (``None``: the bundled demo study)."""
    if layout not in LAYOUTS:
        sys.stderr.write(f"error: unknown layout {layout}; use one of {', '.join(LAYOUTS)}\n")
        return EXIT_USAGE
    try:
        from workstation.ui.app import run_gui
    except ImportError as error:
        sys.stderr.write(f"error: the viewer needs PySide6 ({error}); pip install PySide6\n")
        return EXIT_FAILURE
    return run_gui(
        path,
        screenshot=screenshot,
        layout=layout,
        tissue=tissue,
        clip_3d=clip_3d,
        analyze=analyze,
        plugin_panel=plugin_panel,
    )
