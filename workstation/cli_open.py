"""``workstation open``: show a series in the desktop viewer.

::

    workstation open PATH [--screenshot PNG] [--layout 1x1|1x3]

With ``--screenshot`` the window is rendered once the series has loaded, saved as PNG, and the
command exits (0 ok, 1 when loading failed). Qt is imported only when the command runs, so the
rest of the command line stays fast and works without a display.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

LAYOUTS = ("1x1", "1x3", "2x2")
AVAILABLE_LAYOUTS = ("1x1", "1x3")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``open`` command to the top-level subparsers."""
    command = commands.add_parser("open", help="show a series (folder or file) in the viewer")
    command.add_argument("path", metavar="PATH", help="folder (searched recursively) or file")
    command.add_argument(
        "--screenshot", metavar="PNG", help="save the window as PNG once loaded, then exit"
    )
    command.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="1x3",
        help="1x1: axial; 1x3: axial, coronal, sagittal (2x2 with 3D: not available yet)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``workstation open ...``; returns the exit code."""
    return open_gui(args.path, screenshot=args.screenshot, layout=args.layout)


def open_gui(path: str | None, *, screenshot: str | None = None, layout: str = "1x3") -> int:
    """Open the viewer on ``path`` (``None``: the bundled demo study)."""
    if layout not in AVAILABLE_LAYOUTS:
        sys.stderr.write(
            f"error: layout {layout} (with the 3D view) is not available yet; "
            f"use {' or '.join(AVAILABLE_LAYOUTS)}\n"
        )
        return EXIT_USAGE
    try:
        from workstation.ui.app import run_gui
    except ImportError as error:
        sys.stderr.write(f"error: the viewer needs PySide6 ({error}); pip install PySide6\n")
        return EXIT_FAILURE
    return run_gui(path, screenshot=screenshot, layout=layout)
