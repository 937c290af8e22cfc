"""The ``workstation-registry`` command. Exit codes: 0 ok, 1 failure, 2 usage.

::

    workstation-registry serve [--db URL] [--data DIR] [--host 127.0.0.1] [--port 8700]
                               [--workers N] [--trust-root FILE] [--registry-key FILE]
                               [--log-level info]
    workstation-registry admin create-site NAME
    workstation-registry admin create-user USERNAME --role admin|clinician|viewer [--site ID]
    workstation-registry admin enrolment-token SITE_ID [--valid-hours H]
    workstation-registry admin audit-verify

Every command takes ``--data`` and ``--db`` (defaults: ``$MEDWS_REGISTRY_DATA`` or
``./registry-data``, and ``$MEDWS_REGISTRY_DB`` or SQLite in the data folder). ``create-user``
reads the password from ``$MEDWS_REGISTRY_PASSWORD`` or prompts for it; it is never an
argument (arguments show in ``ps`` and shell history).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workstation import __version__
from workstation.registry import asgi
from workstation.registry.settings import RegistrySettings

__all__ = ["main"]

ENV_PASSWORD = "MEDWS_REGISTRY_PASSWORD"
log = logging.getLogger("workstation.registry.cli")


def _out(text: object) -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def _err(text: object) -> None:
    sys.stderr.write(f"{text}\n")


class _UsageError(Exception):
    """A wrong combination of options (exit 2)."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("must be between 1 and 65535")
    return value


def _hours(text: str) -> float:
    value = float(text)
    if not 0 < value <= 24 * 365:
        raise argparse.ArgumentTypeError("must be more than 0 and at most a year")
    return value


def _parser() -> argparse.ArgumentParser:
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get(asgi.ENV_DATA) or "registry-data"),
        help="data folder: sealed results, model bundles, JWT secret (default ./registry-data)",
    )
    storage.add_argument(
        "--db",
        default=os.environ.get(asgi.ENV_DB) or None,
        help="SQLAlchemy database URL (default SQLite <data>/registry.db)",
    )
    parser = argparse.ArgumentParser(
        prog="workstation-registry", description="The Medical Workstation registry service."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", parents=[storage], help="run the registry service")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=_port, default=8700, help="TCP port (default 8700)")
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes")
    serve.add_argument("--trust-root", type=Path, help="trust root for model bundles")
    serve.add_argument(
        "--registry-key",
        type=Path,
        help="the registry role's private signing key (signs model snapshot/timestamp metadata)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="JSON logs on stderr at this level (default info)",
    )

    admin = commands.add_parser("admin", help="administration without HTTP")
    actions = admin.add_subparsers(dest="action", metavar="ACTION", required=True)
    site = actions.add_parser("create-site", parents=[storage], help="create a site")
    site.add_argument("name")
    user = actions.add_parser(
        "create-user", parents=[storage], help=f"create a user (password from ${ENV_PASSWORD})"
    )
    user.add_argument("username")
    user.add_argument("--role", required=True, choices=["admin", "clinician", "viewer"])
    user.add_argument("--site", dest="site_id", help="the user's site id (all roles but admin)")
    token = actions.add_parser(
        "enrolment-token", parents=[storage], help="issue a one-time enrolment token"
    )
    token.add_argument("site_id")
    token.add_argument("--valid-hours", type=_hours, default=24.0, help="default 24")
    actions.add_parser("audit-verify", parents=[storage], help="verify the audit chain")
    return parser


def _settings(args: argparse.Namespace) -> RegistrySettings:
    trust_root = getattr(args, "trust_root", None)
    registry_key = getattr(args, "registry_key", None)
    return RegistrySettings(
        args.data, db_url=args.db, trust_root=trust_root, registry_key=registry_key
    ).prepared()


def _migrated(settings: RegistrySettings) -> Any:
    from workstation.registry.db import Database

    db = Database(settings.url)
    db.create_all()
    return db


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.trust_root is not None and not args.trust_root.is_file():
        raise _UsageError(f"--trust-root: no file {args.trust_root}")
    if args.registry_key is not None and not args.registry_key.is_file():
        raise _UsageError(f"--registry-key: no file {args.registry_key}")
    asgi.configure_logs(args.log_level)
    settings = _settings(args)
    _migrated(settings).dispose()  # once, before any worker starts
    os.environ[asgi.ENV_DATA] = str(settings.data_dir.resolve())
    os.environ[asgi.ENV_LOG_LEVEL] = args.log_level
    if args.db:
        os.environ[asgi.ENV_DB] = args.db
    else:
        os.environ.pop(asgi.ENV_DB, None)
    if args.trust_root is not None:
        os.environ[asgi.ENV_TRUST_ROOT] = str(args.trust_root.resolve())
    if args.registry_key is not None:
        os.environ[asgi.ENV_REGISTRY_KEY] = str(args.registry_key.resolve())
    _reset_multiprocess_dir()
    log.info(
        "registry starting",
        extra={"host": args.host, "port": args.port, "workers": args.workers},
    )
    uvicorn.run(
        "workstation.registry.asgi:create",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,  # the JSON handlers on the root logger
        log_level=args.log_level,
        access_log=False,  # workstation.registry.access logs each request instead
        proxy_headers=False,
        server_header=False,
    )
    return 0


def _reset_multiprocess_dir() -> None:
    """Empty ``$PROMETHEUS_MULTIPROC_DIR`` (stale worker files would skew the metrics)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for child in path.glob("*.db"):
        child.unlink()


def _password() -> str:
    password = os.environ.get(ENV_PASSWORD)
    if password:
        return password
    if not sys.stdin.isatty():
        raise _UsageError(f"no password: set ${ENV_PASSWORD} or run interactively")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise ValueError("the passwords differ")
    return first


def _admin(args: argparse.Namespace) -> int:
    from workstation.registry import audit
    from workstation.registry.bootstrap import create_site, create_user, issue_enrolment_token

    if args.action == "create-user" and args.role != "admin" and not args.site_id:
        raise _UsageError(f"a {args.role} needs --site SITE_ID")
    password = _password() if args.action == "create-user" else ""
    db = _migrated(_settings(args))
    try:
        with db.sessions.begin() as session:
            if args.action == "create-site":
                _out(create_site(session, args.name).id)
            elif args.action == "create-user":
                user = create_user(
                    session, args.username, password, args.role, site_id=args.site_id
                )
                _out(user.id)
            elif args.action == "enrolment-token":
                valid_s = int(args.valid_hours * 3600)
                _out(issue_enrolment_token(session, args.site_id, valid_s=valid_s))
            else:
                problems = audit.verify(session)
                for problem in problems:
                    _err(problem)
                if problems:
                    _err(f"audit chain broken: {len(problems)} problem(s)")
                    return 1
                _out("audit chain intact")
    finally:
        db.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the command; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 on usage errors, 0 for --help / --version
        return int(exit_.code or 0)
    try:
        if args.command == "serve":
            return _serve(args)
        return _admin(args)
    except _UsageError as error:
        _err(f"{parser.prog}: error: {error}")
        return 2
    except (ValueError, LookupError) as error:
        _err(f"{parser.prog}: error: {error}")
        return 1
    except KeyboardInterrupt:
        return 1
    except Exception as error:  # noqa: BLE001 (a clean message, no traceback with secrets)
        _err(f"{parser.prog}: error: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
