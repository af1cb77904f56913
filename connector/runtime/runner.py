"""`connector up`: the edge supervisor. Starts what is not configured externally, then the roles.

Order: the data dir made private (umask 077 for every child, group/other bits removed from what
exists; `connector.runtime.datadir`), Postgres, Redis, Temporal dev server (each awaited ready; the
Web UI wired to the control plane's codec endpoint), migrations, Temporal bootstrap, the data key
ring, then the roles (decision 0016): by default the control plane, the data plane and the
workers of every task queue run inside this process (`InProcess`, built by the CLI:
`workers.edge.EdgeProcess`); with `--separate-roles` they are child processes, one per role and
N workers (decision 0004), each awaited ready. Crashed children, and in-process parts whose task
ended, are restarted with back-off; SIGINT/SIGTERM stops everything in reverse order within 10 s.
Every child runs in its own process group with a parent-death signal, so no service outlives
this process, also when it is killed or crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from connector.gc_tuning import tune_for_serving
from connector.runtime import embedded
from connector.runtime.datadir import private_umask, secure_data_dir
from connector.runtime.embedded import EmbeddedError, ServiceSpec, ensure_port_free, free_port
from connector.runtime.logging import get_logger
from connector.runtime.metrics import (
    MULTIPROC_ENV,
    ChildProcess,
    ChildProcessCollector,
    TemporalProxyCollector,
    build_registry,
)
from connector.settings import Settings, to_env

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = get_logger(__name__)

STOP_BUDGET_SECONDS: Final = 10.0
START_TIMEOUT_SECONDS: Final = 90.0
EDGE_WORKER_GRACE_SECONDS: Final = 3.0
_PR_SET_PDEATHSIG: Final = 1


class StartError(Exception):
    """The stack could not start; the message says which part and why."""


class InProcess(Protocol):
    """The roles run inside `connector up`'s own process (the default layout, decision 0016)."""

    #: The process's metrics (its roles' and the Temporal SDK's); the runner serves it.
    registry: CollectorRegistry

    async def start(self) -> None:
        """Start every part; StartError names one that could not start."""

    def ended(self) -> dict[str, str]:
        """Parts whose task ended without being asked to, with why."""

    async def start_part(self, name: str) -> None: ...

    async def stop_part(self, name: str, deadline: float) -> None: ...

    async def stop(self, deadline: float) -> None:
        """Stop every part (workers first) and close what they share."""


def _child_preexec(death_signal: int, run_as: tuple[int, int] | None) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as[1])
            os.setuid(run_as[0])
        # After any setuid: the kernel clears the parent-death signal on credential changes.
        libc.prctl(_PR_SET_PDEATHSIG, death_signal)
        if os.getppid() == 1:  # the supervisor died between fork and prctl
            os._exit(1)

    return preexec


@dataclass
class Child:
    name: str
    role: str
    argv: list[str]
    ready: Callable[[], Awaitable[bool]]
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] | None = None
    run_as: tuple[int, int] | None = None
    log_file: Path | None = None
    process: asyncio.subprocess.Process | None = None
    restarts: list[float] = field(default_factory=list)
    _log_handle: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def spawn(self) -> None:
        stdout: Any = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log_file.open("ab")
            stdout = self._log_handle
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=asyncio.subprocess.STDOUT if stdout is not None else None,
            env=self.env,
            start_new_session=True,
            preexec_fn=_child_preexec(self.stop_signal, self.run_as),
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, deadline: float) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                await asyncio.wait_for(proc.wait(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("did not stop in time, killing", child=self.name)
        # The whole group: Postgres backends and anything else the child forked.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def log_tail(self, lines: int = 15) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)


def _from_spec(spec: ServiceSpec) -> Child:
    return Child(
        name=spec.name,
        role=spec.name,
        argv=spec.argv,
        ready=spec.ready,
        stop_signal=spec.stop_signal,
        run_as=spec.run_as,
        log_file=spec.log_file,
        env=spec.env,
    )


def _http_ready(port: int, path: str = "/ready") -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), timeout=1.0
            )
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), timeout=3.0)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return b" 200 " in status_line

    return ready


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        config_file: Path | None = None,
        in_process: Callable[[Settings], InProcess] | None = None,
        preload: Sequence[str] = (),
    ) -> None:
        """`in_process`: builds the roles that run in this process; None: separate processes.
        `preload`: modules the roles import, loaded while the services start."""
        self.settings = settings
        self.in_process = in_process
        self.preload = tuple(preload)
        self.edge: InProcess | None = None
        self._part_restarts: dict[str, list[float]] = {}
        self.config_file = config_file
        self.data_dir = settings.data_dir.resolve()
        self.run_dir = self.data_dir / "run"
        self.services: list[Child] = []
        self.apps: list[Child] = []
        self.effective: Settings = settings
        self._stop = asyncio.Event()
        self._worker_metric_ports: list[int] = []
        self._metrics_server: Any = None
        self.key_file: Path | None = None

    # --- start -----------------------------------------------------------------------------

    def _check_ports(self) -> None:
        s = self.settings
        wanted = {
            "server.port": s.server.port,
            "dataplane.port": s.dataplane.port,
            "metrics.port": s.metrics.port,
        }
        if s.management.port is not None:
            wanted["management.port"] = s.management.port
        for i in range(0 if self.in_process else s.workers.processes):
            wanted[f"workers.health_port(+{i})" if i else "workers.health_port"] = (
                s.workers.health_port + i
            )
        if s.temporal.address is None:
            wanted["temporal.embedded_port"] = s.temporal.embedded_port
            if s.temporal.ui_port:
                wanted["temporal.ui_port"] = s.temporal.ui_port
        if s.database.url is None and s.database.embedded_port:
            wanted["database.embedded_port"] = s.database.embedded_port
        if s.redis.url is None and s.redis.embedded_port:
            wanted["redis.embedded_port"] = s.redis.embedded_port
        seen: dict[int, str] = {}
        for setting, port in wanted.items():
            if port and port in seen:
                raise StartError(f"{setting} and {seen[port]} both use port {port}")
            seen[port] = setting
            ensure_port_free(port, setting.split("(")[0])

    async def _await_ready(self, child: Child) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        delay = 0.02
        while time.monotonic() < deadline:
            if not child.alive():
                code = child.process.returncode if child.process else None
                tail = child.log_tail()
                raise StartError(
                    f"{child.name} exited during start-up (code {code})"
                    + (f"; last log lines:\n{tail}" if tail else "")
                )
            if await child.ready():
                log.info("ready", child=child.name, pid=child.pid)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        raise StartError(f"{child.name} not ready within {START_TIMEOUT_SECONDS:g}s")

    async def _start_embedded(self) -> Settings:
        overrides: dict[str, Any] = {}
        specs: list[ServiceSpec] = []
        s = self.settings
        if s.database.url is None:
            port = s.database.embedded_port or free_port()
            specs.append(embedded.postgres_spec(self.data_dir, port))
            overrides["database"] = {"url": embedded.postgres_url(port)}
        if s.redis.url is None:
            port = s.redis.embedded_port or free_port()
            specs.append(embedded.redis_spec(self.data_dir, port))
            overrides["redis"] = {"url": f"redis://127.0.0.1:{port}/0"}
        if s.temporal.address is None:
            port = s.temporal.embedded_port or free_port()
            specs.append(
                embedded.temporal_spec(
                    self.data_dir,
                    port,
                    s.temporal.ui_port,
                    s.temporal.namespace,
                    s.temporal.ui_host,
                    codec_endpoint=codec_endpoint(s),
                    go_env=s.temporal.embedded_go_env,
                )
            )
            overrides["temporal"] = {"address": f"127.0.0.1:{port}"}
        # Independent of each other (Temporal keeps its own SQLite file): spawned together, so a
        # warm start waits for the slowest, not for the sum (decision 0026); spawned before the
        # preload thread starts, which would slow the spawning down (the GIL).
        children = [_from_spec(spec) for spec in specs]
        for child in children:
            log.info("starting", service=child.name)
            await child.spawn()
            self.services.append(child)
        # The readiness checks import the Postgres, Redis and Temporal clients: here, before the
        # preload thread imports, so no two threads import at once (two threads importing
        # temporalio at once meet a partially initialised module).
        import asyncpg  # noqa: F401
        import redis.asyncio  # noqa: F401
        import temporalio.service  # noqa: F401

        preload = (
            asyncio.create_task(asyncio.to_thread(_import_all, self.preload))
            if self.preload
            else None
        )
        try:
            # A failure cancels the other waits; what was spawned is in self.services for stop().
            await _together(*(self._await_ready(child) for child in children))
        finally:
            if preload is not None:
                await preload
        return with_overrides(s, overrides)

    async def _prepare(self, settings: Settings) -> None:
        import asyncpg

        from connector.stores import migrate
        from connector.temporal.client import bootstrap, connect

        async def migrate_database() -> None:
            conn = await asyncpg.connect(settings.database.url.get_secret_value())  # type: ignore[union-attr]
            try:
                applied = await migrate.migrate(conn)
            finally:
                await conn.close()
            log.info("migrations", applied=[f"{m.version:04d}_{m.name}" for m in applied])

        async def bootstrap_temporal() -> None:
            client = await connect(settings, namespace="default")
            changed = await bootstrap(client, settings.temporal)
            log.info("temporal bootstrap", changed=changed)

        await _together(migrate_database(), bootstrap_temporal())  # one wait for both
        # Created here, before any child starts, so processes never race to generate two keys.
        from connector.identity.apikeys import ensure_edge_api_key
        from connector.identity.runtime import load_keyring

        ring = load_keyring(settings)
        log.info(
            "identity", did=settings.identity.resolved_did(settings.server), kid=ring.current.key_id
        )
        from connector.encryption.runtime import data_keys

        keys = data_keys(settings)  # one ring for every child (payload codec, backups, EDRs)
        log.info("data keys", file=str(keys.path), kid=keys.current_kid)
        if not settings.management.api_keys:
            _, created = ensure_edge_api_key(settings.data_dir)
            self.key_file = settings.data_dir.resolve() / "management-api-key"
            log.info("management api key", file=str(self.key_file), created=created)

    def _child_env(self, settings: Settings, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        env.update(to_env(settings))
        env[MULTIPROC_ENV] = str(self.run_dir / "metrics")
        env["CONNECTOR_METRICS__PORT"] = "0"  # the supervisor serves the merged view
        env.update(extra)
        return env

    def _app_children(self, settings: Settings) -> list[Child]:
        exe = [sys.executable, "-m", "connector"]
        config = ["--config", str(self.config_file)] if self.config_file else []
        children = [
            Child(
                name="control-plane",
                role="control-plane",
                argv=[*exe, *config, "control-plane"],
                ready=_http_ready(settings.server.port),
                env=self._child_env(settings, {}),
            ),
            Child(
                name="data-plane",
                role="data-plane",
                argv=[*exe, *config, "data-plane"],
                ready=_http_ready(settings.dataplane.port),
                env=self._child_env(settings, {}),
            ),
        ]
        for i in range(settings.workers.processes):
            health_port = settings.workers.health_port + i
            metrics_port = free_port()
            self._worker_metric_ports.append(metrics_port)
            children.append(
                Child(
                    name=f"worker-{i + 1}",
                    role="worker",
                    argv=[*exe, *config, "worker", "--name", f"worker-{i + 1}"],
                    ready=_http_ready(health_port),
                    env=self._child_env(
                        settings,
                        {
                            "CONNECTOR_WORKERS__HEALTH_PORT": str(health_port),
                            "CONNECTOR_METRICS__TEMPORAL_PORT": str(metrics_port),
                            "CONNECTOR_WORKERS__GRACEFUL_SHUTDOWN_SECONDS": str(
                                min(
                                    settings.workers.graceful_shutdown_seconds,
                                    EDGE_WORKER_GRACE_SECONDS,
                                )
                            ),
                        },
                    ),
                )
            )
        return children

    def _serve_metrics(self) -> None:
        if not self.settings.metrics.port:
            return
        from prometheus_client import start_http_server

        if self.edge is not None:
            # One process: its roles record straight into the registry served here.
            registry = self.edge.registry
        else:
            registry = build_registry(multiprocess_dir=self.run_dir / "metrics")
            registry.register(
                TemporalProxyCollector(
                    lambda: [f"http://127.0.0.1:{p}/metrics" for p in self._worker_metric_ports]
                )
            )
        registry.register(ChildProcessCollector(self._process_list))
        self._metrics_server, _ = start_http_server(
            self.settings.metrics.port, addr=self.settings.metrics.host, registry=registry
        )

    @property
    def own_name(self) -> str:
        """This process's name in pids.json and the metrics' role label."""
        return "connector" if self.in_process is not None else "supervisor"

    def _process_list(self) -> list[ChildProcess]:
        found = [ChildProcess(self.own_name, os.getpid())]
        for child in [*self.services, *self.apps]:
            if child.pid is not None and child.alive():
                found.append(ChildProcess(child.name, child.pid))
        return found

    def _write_pids(self) -> None:
        pids = {c.name: c.pid for c in [*self.services, *self.apps] if c.pid}
        pids[self.own_name] = os.getpid()
        (self.run_dir / "pids.json").write_text(json.dumps(pids))

    def _secure_data_dir(self) -> None:
        traverse = None
        if self.settings.database.url is None:
            identity = embedded.postgres_identity()  # root: Postgres runs as its own user
            traverse = identity[1] if identity is not None else None
        changed = secure_data_dir(self.data_dir, traverse_gid=traverse)
        log.info("data dir private", path=str(self.data_dir), modes_changed=changed)

    async def start(self) -> None:
        self._check_ports()
        private_umask()
        self._secure_data_dir()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics_dir = self.run_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        # The in-process roles' modules load in a thread while the services start (decision
        # 0026), joined before anything else imports.
        self.effective = await self._start_embedded()
        await self._prepare(self.effective)
        if self.in_process is not None:
            self.edge = self.in_process(self.effective)
            self._serve_metrics()
            await self.edge.start()
            self._write_pids()
            return
        self._serve_metrics()
        for child in self._app_children(self.effective):
            log.info("starting", role=child.name)
            await child.spawn()
            self.apps.append(child)
        for child in self.apps:
            await self._await_ready(child)
        self._write_pids()

    # --- run and stop ----------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def watch(self) -> None:
        """Restart crashed children with back-off until asked to stop."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.5)
            if self._stop.is_set():
                return
            for child in [*self.services, *self.apps]:
                if child.alive():
                    continue
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 300]
                delay = min(30.0, 2.0 * (2 ** len(child.restarts)))
                code = child.process.returncode if child.process else None
                log.error("child exited; restarting", child=child.name, code=code, in_s=delay)
                child.restarts.append(now)
                await child.stop(time.monotonic() + 0.5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                if self._stop.is_set():
                    return
                await child.spawn()
                self._write_pids()
            if self.edge is not None:
                for name, why in self.edge.ended().items():
                    if not await self._restart_part(self.edge, name, why):
                        return

    async def _restart_part(self, edge: InProcess, name: str, why: str) -> bool:
        """Restart an in-process part whose task ended, with the children's back-off; False
        when asked to stop meanwhile."""
        now = time.monotonic()
        restarts = [t for t in self._part_restarts.get(name, []) if now - t < 300]
        delay = min(30.0, 2.0 * (2 ** len(restarts)))
        log.error("part ended; restarting", part=name, reason=why, in_s=delay)
        self._part_restarts[name] = [*restarts, now]
        await edge.stop_part(name, time.monotonic() + 5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)
        if self._stop.is_set():
            return False
        try:
            await edge.start_part(name)
        except Exception as exc:  # tried again after the next back-off
            log.error("part did not start again", part=name, error=str(exc))
        return True

    async def stop(self) -> None:
        deadline = time.monotonic() + STOP_BUDGET_SECONDS
        if self.edge is not None:
            # The in-process roles first, with most of the budget: workers drain, listeners
            # answer what they hold; the services get the rest.
            await self.edge.stop(deadline - 3.0)
        # Reverse order of start: workers, data plane, control plane, Temporal, Redis, Postgres.
        # Each gets a share of what is left, keeping the whole stop inside the budget.
        order = [*reversed(self.apps), *reversed(self.services)]
        for index, child in enumerate(order):
            left = deadline - time.monotonic()
            share = left / max(1, len(order) - index) * 2
            await child.stop(time.monotonic() + max(0.2, min(share, left)))
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / "pids.json").unlink()


def codec_endpoint(settings: Settings) -> str | None:
    """Where the embedded Web UI (a browser) reaches the control plane's codec endpoint."""
    if not settings.encryption.temporal_payloads:
        return None
    from connector.temporal.codec_path import ENDPOINT_PATH  # not .codec: loads the SDK

    return f"{settings.management.base_url(settings.server)}{ENDPOINT_PATH}"


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """`settings` with some values of some sections replaced (validated again)."""
    data = settings.model_dump(mode="python")
    for section, values in overrides.items():
        data[section] = {**data[section], **values}
    return type(settings).model_validate(data)


def banner(settings: Settings, key_file: Path | None, *, in_process: bool = False) -> str:
    s = settings
    split = s.management.port is not None
    lines = [
        "connector is up",
        f"  one process     pid {os.getpid()}: control plane, data plane, every worker"
        if in_process
        else "",
        f"  control plane   {s.server.base_url()}  (DSP /dsp/2025-1 and /dsp/0.8"
        + (")" if split else ", management /management/v1)"),
        f"  management API  {s.management.base_url(s.server)}/management/v1" if split else "",
        f"  data plane      {s.dataplane.base_url()}",
        f"  metrics         http://{s.metrics.host}:{s.metrics.port}/metrics"
        if s.metrics.port
        else "",
    ]
    if s.temporal.ui_port and s.temporal.address and s.temporal.address.startswith("127.0.0.1"):
        lines.append(
            f"  Temporal UI     http://127.0.0.1:{s.temporal.ui_port}/namespaces/{s.temporal.namespace}"
        )
        endpoint = codec_endpoint(s)
        if endpoint is not None:
            # Payloads are encrypted; the UI decodes them here (docs/security.md §6b).
            lines.append(f"  codec endpoint  {endpoint}  (browser: open {endpoint}/login once)")
    if key_file is not None:
        lines.append(f"  management key  {key_file}  (send it as X-Api-Key)")
    lines.append(f"  data dir        {s.data_dir.resolve()}")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(line for line in lines if line)


async def _together(*steps: Awaitable[None]) -> None:
    """Run `steps` concurrently; the first failure cancels the others and is raised as itself
    (a StartError stays a StartError for `up`, unlike a TaskGroup's ExceptionGroup)."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        importlib.import_module(name)


async def up(
    settings: Settings,
    config_file: Path | None = None,
    in_process: Callable[[Settings], InProcess] | None = None,
    preload: Sequence[str] = (),
) -> int:
    supervisor = Supervisor(settings, config_file, in_process, preload)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.request_stop)
    start = asyncio.create_task(supervisor.start())
    stop_wait = asyncio.create_task(supervisor._stop.wait())
    code = 0
    try:
        done, _ = await asyncio.wait({start, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if start in done:
            stop_wait.cancel()
            start.result()
            if supervisor.edge is not None:
                tune_for_serving()  # the process serves from now on (decision 0026)
            text = banner(
                supervisor.effective, supervisor.key_file, in_process=supervisor.edge is not None
            )
            print(text, file=sys.stderr, flush=True)
            await supervisor.watch()
        else:
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, StartError, EmbeddedError):
                await start
    except (StartError, EmbeddedError) as exc:
        print(f"connector up: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        await supervisor.stop()
    return code
