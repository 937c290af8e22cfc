"""The ``workstation-registry`` command. Exit codes: 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from workstation import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the service in the foreground."""
    parser = argparse.ArgumentParser(prog="workstation-registry")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser("serve", help="run the registry service")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=int, default=8700, help="TCP port (default 8700)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        import uvicorn

        from workstation.registry.app import create_app

        uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0
