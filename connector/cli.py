"""The `connector` command: one entrypoint per process role, plus operator tools.

    connector up [--separate-roles] everything on one machine (embedded stack when not configured):
                                    control plane, data plane and workers in one process, or
                                    with --separate-roles one process per role
    connector control-plane         DSP + management API (port 3000; management.port: its own)
    connector data-plane            data plane (port 3001)
    connector worker [--queue Q]    Temporal worker for one or more task queues
    connector migrate               apply SQL migrations and exit
    connector temporal-bootstrap    namespace, retention, search attributes; exit
    connector config show           effective configuration, secrets redacted
    connector backup now|list|verify ID|pause|resume
                                    database backups (Temporal workflow + Schedule)
    connector restore [--backup ID|latest]
                                    disaster recovery from a backup (maintenance mode meanwhile)
    connector restore --node ID|latest [--recovery-key FILE] [--force]
                                    a whole edge node onto an empty data dir (nothing running)
    connector encryption init|status|rotate
                                    the data key ring (payload codec, backups, sealed EDRs)
    connector credentials list|requests|request|import
                                    DCP verifiable credentials we hold, and our requests
    connector issuer init|participants|issue|revoke|list|requests|rotate-key|serve
                                    a development credential issuer for a local data space
                                    (MembershipCredentials, status-list revocation, DCP
                                    issuance); not for production (decision 0024)

A bad configuration value exits with code 2 and one line naming the key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from connector.gc_tuning import tune_for_serving
from connector.settings import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole connector on this machine")
    up.add_argument(
        "--separate-roles",
        action="store_true",
        help="run control plane, data plane and workers as child processes (as Kubernetes runs "
        "them) instead of inside this one process",
    )
    up.add_argument(
        "--workers",
        type=int,
        help="worker processes with --separate-roles (default workers.processes)",
    )
    sub.add_parser("control-plane", help="serve the control plane")
    sub.add_parser("data-plane", help="serve the data plane")
    worker = sub.add_parser("worker", help="run a Temporal worker")
    worker.add_argument(
        "--queue", action="append", help="task queue (repeatable; default: every queue)"
    )
    worker.add_argument("--name", default="worker", help="name in logs and metrics")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("temporal-bootstrap", help="register namespace and search attributes")
    _backup_parsers(sub)
    _credentials_parsers(sub)
    encryption = sub.add_parser("encryption", help="the data key ring")
    encryption_sub = encryption.add_subparsers(dest="encryption_command", required=True)
    encryption_sub.add_parser(
        "init", help="create the key file (encryption.key_file, or the data dir's) if missing"
    )
    encryption_sub.add_parser("status", help="key file, current key and every key id (no secrets)")
    encryption_sub.add_parser(
        "rotate", help="add a new current data key (old keys keep decrypting)"
    )
    from connector.issuer.cli import add_parsers as add_issuer_parsers

    add_issuer_parsers(sub)
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("show", help="print the effective configuration, secrets redacted")
    return parser


def _backup_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser("backup", help="database backups")
    backup_sub = backup.add_subparsers(dest="backup_command", required=True)
    now = backup_sub.add_parser("now", help="back up now (and verify, prune) and show progress")
    now.add_argument("--no-verify", action="store_true", help="skip the scratch-DB verification")
    now.add_argument("--no-wait", action="store_true", help="start the workflow and return")
    listing = backup_sub.add_parser("list", help="backups with a manifest, oldest first")
    listing.add_argument("--json", action="store_true")
    verify = backup_sub.add_parser("verify", help="restore a backup into a scratch DB and compare")
    verify.add_argument("backup_id")
    pause = backup_sub.add_parser("pause", help="pause the backup schedule")
    pause.add_argument("--note", help="why (shown in the Temporal UI)")
    backup_sub.add_parser("resume", help="resume the backup schedule")
    restore = sub.add_parser("restore", help="disaster recovery: restore a backup, reconcile")
    restore.add_argument("--backup", default="latest", help="backup id, or latest (default)")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.add_argument("--again", action="store_true", help="repeat a completed restore")
    restore.add_argument("--json", action="store_true", help="print the report as JSON")
    restore.add_argument(
        "--node",
        metavar="BACKUP",
        help="restore the whole node (database, Temporal, keys, configuration) from a node "
        "backup (id or latest) onto an empty data dir, with nothing running",
    )
    restore.add_argument(
        "--recovery-key",
        type=Path,
        help="with --node: the recovery key file kept outside the node "
        "(default backup.recovery_key_file)",
    )
    restore.add_argument(
        "--force", action="store_true", help="with --node: replace a data dir that is not empty"
    )


def _credentials_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    creds = sub.add_parser("credentials", help="DCP verifiable credentials we hold (decision 0023)")
    creds_sub = creds.add_subparsers(dest="credentials_command", required=True)
    creds_sub.add_parser("list", help="held credentials (never their payloads)")
    requests = creds_sub.add_parser("requests", help="our credential requests, newest first")
    requests.add_argument("--renewals", action="store_true", help="only renewals")
    request = creds_sub.add_parser("request", help="request a credential from an issuer")
    request.add_argument("issuer_did", help="the issuer's did:web")
    request.add_argument("credential_type", help="e.g. MembershipCredential")
    imported = creds_sub.add_parser(
        "import", help="store a pre-issued VC JWT (verified as the Storage API verifies it)"
    )
    imported.add_argument("file", type=Path, help="file holding the VC JWT")


def _confirm_restore(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print("connector restore: replaces the database; pass --yes to confirm", file=sys.stderr)
        return False
    answer = input(f"Restore backup {args.backup} over the connector database? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Whatever a connector process (or a child it starts) writes is private: 0600 / 0700.
    from connector.runtime.datadir import private_umask

    private_umask()
    if args.command == "issuer":
        # A separate dev tool with its own data dir: no connector settings involved.
        from connector.issuer.cli import run as run_issuer
        from connector.runtime.logging import configure_logging
        from connector.settings import LoggingSettings

        configure_logging(LoggingSettings(format="console"), "issuer")
        return run_issuer(args)
    overrides = {}
    if args.command == "up" and args.workers and not args.separate_roles:
        print(
            "connector: --workers needs --separate-roles (one process runs every task queue)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if args.command == "up" and args.workers:
        overrides["workers"] = {"processes": args.workers}
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"connector: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from connector.runtime.logging import configure_logging

    role = args.command
    configure_logging(settings.logging, role)
    if args.command == "config":
        print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
        return 0
    if args.command in ("up", "control-plane", "data-plane", "worker"):
        from connector.identity.profile import InsecureProfileError, check_profile

        try:
            check_profile(settings.identity.profile, settings.identity.allow_insecure)
        except InsecureProfileError as exc:
            print(f"connector: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if args.command in ("up", "control-plane") and not _oidc_keys_readable(settings):
        return EXIT_CONFIG
    if args.command == "encryption":
        return _encryption_command(settings, args.encryption_command)
    if args.command == "restore" and args.node is not None:
        # Before the key check below: that would generate a fresh data key ring in the empty
        # data dir, and the node's own ring comes out of the backup.
        return _exit(asyncio.run(_restore_node(settings, args)))
    if args.command in _KEYED_COMMANDS and not _data_keys_usable(settings):
        return EXIT_CONFIG
    if args.command == "up":
        return _exit(_up(settings, args.config, separate_roles=args.separate_roles))
    if args.command == "control-plane":
        from api.app import create_app

        app = create_app(settings)
        if settings.management.port is not None:
            return _serve_split(settings, app)
        return _serve(settings, app, settings.server.host, settings.server.port)
    if args.command == "data-plane":
        from dataplane.app import create_app as create_dataplane

        return _serve(
            settings, create_dataplane(settings), settings.dataplane.host, settings.dataplane.port
        )
    if args.command == "worker":
        from workers.main import run as run_worker

        queues = args.queue or settings.temporal.task_queues.all()
        unknown = [q for q in queues if q not in settings.temporal.task_queues.all()]
        if unknown:
            print(f"connector: unknown task queue(s): {', '.join(unknown)}", file=sys.stderr)
            return EXIT_CONFIG
        asyncio.run(run_worker(settings, queues, name=args.name))
        return _exit(0)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "temporal-bootstrap":
        from commands.bootstrap import temporal_bootstrap

        return _exit(asyncio.run(temporal_bootstrap(settings)))
    if args.command == "backup":
        from commands.backup import run_backup_command

        return _exit(asyncio.run(run_backup_command(settings, args)))
    if args.command == "credentials":
        from workers.credential_ops import run_credentials_command

        return _exit(asyncio.run(run_credentials_command(settings, args)))
    if args.command == "restore":
        if not _confirm_restore(args):
            return EXIT_CONFIG
        from commands.backup import run_restore_command

        return _exit(asyncio.run(run_restore_command(settings, args)))
    return EXIT_CONFIG  # pragma: no cover - argparse rejects unknown commands


async def _restore_node(settings: Settings, args: argparse.Namespace) -> int:
    from connector.backup.node_restore import NodeRestoreError, restore_node
    from connector.backup.storage import StorageError

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        await restore_node(
            settings, args.node, recovery_key=args.recovery_key, force=args.force, out=out
        )
    except (NodeRestoreError, StorageError) as exc:
        print(f"connector restore --node: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _oidc_keys_readable(settings: Settings) -> bool:
    """A configured `management.oidc.jwks_path` is read at start; a bad file stops it (exit 2)."""
    oidc = settings.management.oidc
    if oidc is None or oidc.jwks_path is None:
        return True
    from connector.identity.oidc import JwksError, load_jwks_file

    try:
        load_jwks_file(oidc.jwks_path)
    except JwksError as exc:
        print(f"connector: management.oidc.jwks_path: {exc}", file=sys.stderr)
        return False
    return True


#: Commands that encrypt or decrypt with the data key ring (checked before anything starts).
_KEYED_COMMANDS = frozenset(
    {"up", "control-plane", "worker", "temporal-bootstrap", "backup", "restore", "credentials"}
)


def _data_keys_usable(settings: Settings) -> bool:
    """The data key ring loads (generated at the managed default location if missing); a
    missing explicit file, a malformed one or one readable by others stops start-up (exit 2)."""
    from connector.encryption.keyring import KeyFileError
    from connector.encryption.runtime import data_keys

    try:
        data_keys(settings)
    except KeyFileError as exc:
        print(f"connector: encryption.key_file: {exc}", file=sys.stderr)
        return False
    return True


def _encryption_command(settings: Settings, command: str) -> int:
    from connector.encryption.keyring import KeyFileError, create_key_file, rotate
    from connector.encryption.runtime import data_keys

    try:
        if command == "init":
            path = settings.encryption.resolved_key_file(settings.data_dir)
            made = create_key_file(path)
            print(f"data key ring {path} {'created' if made else 'exists already'}")
        keys = data_keys(settings)
        if command == "rotate":
            kid = rotate(keys.path)
            print(f"new current data key {kid} in {keys.path}; older keys keep decrypting")
            print("processes pick it up within seconds; keep old keys while histories or backups")
            print("encrypted with them exist (temporal.retention_days, backup retention)")
            return 0
    except KeyFileError as exc:
        print(f"connector: encryption.key_file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    current = keys.current_kid
    print(f"data key ring {keys.path}")
    for key in keys.kids():
        mark = "  (current)" if key.kid == current else ""
        print(f"  {key.kid}  created {key.created_at.isoformat()}{mark}")
    return 0


def _serve_metrics(settings: Settings, app: object) -> None:
    if settings.metrics.port:
        from prometheus_client import REGISTRY, start_http_server

        metrics = getattr(getattr(app, "state", None), "metrics", None)
        start_http_server(
            settings.metrics.port,
            addr=settings.metrics.host,
            registry=metrics.registry if metrics else REGISTRY,
        )


def _serve_split(settings: Settings, app: object) -> int:
    """The control plane on server.port (DSP) and management.port (management API, /health,
    /ready): two uvicorn servers, one loop, one lifespan (`api.listeners.ListenerPair`)."""
    import uvicorn

    from api.listeners import Listener, ListenerPair

    assert settings.management.port is not None  # noqa: S101 - the caller checked
    _serve_metrics(settings, app)
    main = Listener("main", settings.server.host, settings.server.port)
    management = Listener(
        "management",
        settings.management.listener_host(settings.server),
        settings.management.port,
    )

    async def serve() -> int:
        pair = ListenerPair(
            app,  # type: ignore[arg-type]
            main,
            management,
            timeout_graceful_shutdown=5,
            keep_alive_seconds=settings.server.keep_alive_seconds,
        )
        return await pair.serve()

    tune_for_serving()

    loop_factory = uvicorn.Config(app, log_config=None).get_loop_factory()  # type: ignore[arg-type]
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(serve())
    except OSError as exc:
        print(f"connector: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _serve(settings: Settings, app: object, host: str, port: int) -> int:
    import uvicorn

    _serve_metrics(settings, app)
    tune_for_serving()
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=settings.server.keep_alive_seconds,
    )
    return 0


#: What the in-process roles import: loaded while the services start (decision 0026).
EDGE_MODULES: Final = ("workers.edge", "api.app", "dataplane.app")


def _up(settings: Settings, config: Path | None, *, separate_roles: bool) -> int:
    from connector.runtime.runner import InProcess, up

    if separate_roles:
        return asyncio.run(up(settings, config))
    import uvicorn

    def edge(effective: Settings) -> InProcess:
        from workers.edge import EdgeProcess  # loaded by now: in EDGE_MODULES

        return EdgeProcess(effective)

    # The roles' loop: uvloop where installed, as each role process runs on its own.
    loop_factory = uvicorn.Config(app=None, log_config=None).get_loop_factory()  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(up(settings, config, edge, preload=EDGE_MODULES))


async def _migrate(settings: Settings) -> int:
    import asyncpg

    from connector.stores import migrate
    from connector.stores.pool import database_url

    conn = await asyncpg.connect(database_url(settings.database))
    try:
        applied = await migrate.migrate(conn)
    finally:
        await conn.close()
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    print(
        f"applied {len(names)} migration(s){': ' + ', '.join(names) if names else ''}; "
        f"schema at version {migrate.latest_version()}"
    )
    return 0


def _exit(code: int) -> int:
    # The Temporal SDK's native runtime can crash during interpreter teardown (sdk-python #300);
    # leave without teardown once our own work is flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
