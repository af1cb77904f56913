"""The edge process: control plane, data plane and the workers of every task queue in the process
of `connector up`, on its one event loop (decision 0016).

What the separate roles each open for themselves is opened once and shared: one asyncpg pool, one
Redis client, one Temporal client (on the runtime whose Prometheus endpoint carries the SDK's
worker metrics) and one metrics registry. Sharing the Temporal client is also what lets a
workflow the control plane starts run its first workflow task on the in-process worker at once
(eager start: no poll, no task queue round trip on the server).

Each part (`control-plane`, `data-plane`, `worker`) runs as a task. `connector.runtime.runner`
starts the parts, watches them and restarts one whose task ended with back-off, as it restarts a
crashed child process in the separate-roles layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final

import uvicorn
from prometheus_client import CollectorRegistry
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from connector.identity.runtime import build_identity
from connector.runtime.embedded import free_port
from connector.runtime.logging import get_logger
from connector.runtime.metrics import Metrics, TemporalProxyCollector, build_registry
from connector.runtime.resources import Resources, open_resources
from connector.runtime.runner import EDGE_WORKER_GRACE_SECONDS, StartError, with_overrides
from connector.settings import Settings
from workers.main import build_workers, ensure_schedules, publish_backup_status
from workers.registry import WorkerContext

log = get_logger(__name__)

PARTS: Final = ("control-plane", "data-plane", "worker")
#: How long a listener waits for its socket and the app's start-up before start fails.
LISTEN_TIMEOUT_SECONDS: Final = 60.0
#: Threads running workflow activations, shared by the workers (None: the SDK's pool per
#: worker). One thread showed no steady gain (docs/benchmarks.md, Negotiations by layout), and
#: the SDK's 2 s deadlock timer counts the wait for that thread too.
WORKFLOW_THREADS: int | None = None


class _Server(uvicorn.Server):
    """uvicorn serving one app of the process: signals belong to `connector up` (the runner)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Running:
    task: asyncio.Task[Any]
    stop: Callable[[], Awaitable[None]]
    stopping: bool = False


class EdgeProcess:
    """The in-process parts of `connector up` (see the module docstring)."""

    def __init__(
        self, settings: Settings, *, wrap_control_plane: Callable[[Any], Any] | None = None
    ) -> None:
        """`wrap_control_plane`: ASGI middleware around the control plane app (the negotiation
        benchmark times requests inside it)."""
        self._wrap = wrap_control_plane
        grace = min(settings.workers.graceful_shutdown_seconds, EDGE_WORKER_GRACE_SECONDS)
        pool = settings.database.pool
        self.settings = with_overrides(
            settings,
            {
                "workers": {"graceful_shutdown_seconds": grace},
                # The one pool serves what three role processes' pools serve: measured, one
                # role-sized pool made requests and local activities wait for connections.
                "database": {"pool": {"min": pool.min, "max": min(pool.max * len(PARTS), 500)}},
            },
        )
        self.registry: CollectorRegistry = build_registry(process_metrics=False)
        self.metrics = Metrics(self.registry, PARTS[0])
        for role in PARTS[1:]:
            self.metrics.up.labels(role=role).set(1)
        self._temporal_metrics_port = settings.metrics.temporal_port or free_port()
        self.registry.register(
            TemporalProxyCollector(
                lambda: [f"http://127.0.0.1:{self._temporal_metrics_port}/metrics"]
            )
        )
        self._stack = AsyncExitStack()
        self._resources: Resources | None = None
        self._running: dict[str, _Running] = {}
        self._apps: dict[str, Any] = {}
        self._started = False

    # --- start -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the shared resources and start every part; raises StartError naming the part
        that could not start (its listener's address, say)."""
        settings = self.settings
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=f"127.0.0.1:{self._temporal_metrics_port}",
                    counters_total_suffix=True,
                    durations_as_seconds=True,
                    unit_suffix=True,
                ),
                global_tags={"worker": "edge"},
            )
        )
        self._resources = await self._stack.enter_async_context(
            # Not lazy: the workers share this client, and Temporal is up (the runner waited).
            open_resources(settings, runtime=runtime, lazy_temporal=False)
        )
        from api.app import create_app
        from dataplane.app import create_app as create_dataplane

        control_plane = create_app(settings, metrics=self.metrics, resources=self._resources)
        self._apps["control-plane"] = (
            control_plane if self._wrap is None else self._wrap(control_plane)
        )
        self._apps["data-plane"] = create_dataplane(
            settings, metrics=self.metrics, resources=self._resources
        )
        for name in PARTS:
            await self.start_part(name)
        self._started = True

    async def start_part(self, name: str) -> None:
        if name == "worker":
            self._running[name] = await self._start_workers()
        else:
            self._running[name] = await self._start_listener(name)
        log.info("ready", part=name)

    async def _start_listener(self, name: str) -> _Running:
        s = self.settings
        app = self._apps[name]
        if name == "control-plane" and s.management.port is not None:
            return await self._start_pair(app)
        host, port = (
            (s.server.host, s.server.port)
            if name == "control-plane"
            else (s.dataplane.host, s.dataplane.port)
        )
        server = _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                proxy_headers=False,
                timeout_graceful_shutdown=5,
                timeout_keep_alive=s.server.keep_alive_seconds,
            )
        )
        from api.listeners import Listener, bind

        try:
            # Bound here: uvicorn would exit the whole process (SystemExit) when it cannot bind.
            sock = bind(Listener(name, host, port))
        except OSError as exc:
            raise StartError(
                f"{name} exited during start-up: cannot listen on {host}:{port}: {exc}"
            ) from exc
        task = asyncio.create_task(server.serve(sockets=[sock]), name=name)
        await _until(lambda: server.started, task, name)

        async def stop() -> None:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)

        return _Running(task, stop)

    async def _start_pair(self, app: Any) -> _Running:
        from api.listeners import Listener, ListenerPair

        s = self.settings
        assert s.management.port is not None  # noqa: S101 - the caller checked
        pair = ListenerPair(
            app,
            Listener("main", s.server.host, s.server.port),
            Listener("management", s.management.listener_host(s.server), s.management.port),
            timeout_graceful_shutdown=5,
            keep_alive_seconds=s.server.keep_alive_seconds,
            handle_signals=False,
        )
        task = asyncio.create_task(_pair_serve(pair), name="control-plane")
        await _until(pair.started.is_set, task, "control-plane")

        async def stop() -> None:
            pair.request_exit()
            await asyncio.gather(task, return_exceptions=True)

        return _Running(task, stop)

    async def _start_workers(self) -> _Running:
        settings = self.settings
        resources = self._resources
        if resources is None or resources.temporal is None:
            raise StartError("worker: started before the shared resources")
        client = resources.temporal
        stack = AsyncExitStack()
        identity = build_identity(settings, resources.redis)
        stack.push_async_callback(identity.http.aclose)
        queues = settings.temporal.task_queues.all()
        workers: list[Worker] = build_workers(
            client,
            settings,
            queues,
            WorkerContext(resources, identity, self.metrics),
            workflow_threads=WORKFLOW_THREADS,
        )
        if settings.temporal.task_queues.ops in queues:
            await ensure_schedules(client, settings)
            await publish_backup_status(resources, settings, self.metrics)

        async def run() -> None:
            # One worker's fatal error ends the part: the runner restarts all of them.
            await asyncio.gather(*(w.run() for w in workers))

        task = asyncio.create_task(run(), name="worker")
        log.info("worker polling", queues=queues, namespace=settings.temporal.namespace)

        async def stop() -> None:
            await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await stack.aclose()

        return _Running(task, stop)

    # --- watch and stop ----------------------------------------------------------------------

    def ended(self) -> dict[str, str]:
        """Parts whose task ended without being asked to, with why."""
        out = {name: "not running" for name in PARTS if self._started and name not in self._running}
        for name, running in self._running.items():
            if running.task.done() and not running.stopping:
                exc = None if running.task.cancelled() else running.task.exception()
                out[name] = repr(exc) if exc is not None else "returned"
        return out

    async def stop_part(self, name: str, deadline: float) -> None:
        running = self._running.get(name)
        if running is None:
            return
        running.stopping = True
        try:
            await asyncio.wait_for(running.stop(), timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("did not stop in time", part=name)
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
        del self._running[name]

    async def stop(self, deadline: float) -> None:
        """Workers first (their in-flight tasks drain), then the data plane, the control plane,
        then the shared resources."""
        self._started = False
        for name in reversed(PARTS):
            await self.stop_part(name, deadline)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._stack.aclose(), timeout=max(0.1, deadline - time.monotonic())
            )


async def _pair_serve(pair: Any) -> int:
    try:
        code: int = await pair.serve()
    except OSError as exc:  # a port the pair could not bind: a start-up failure, named
        raise StartError(f"control-plane exited during start-up: {exc.strerror or exc}") from exc
    return code


async def _until(started: Callable[[], bool], task: asyncio.Task[Any], name: str) -> None:
    deadline = time.monotonic() + LISTEN_TIMEOUT_SECONDS
    while not started():
        if task.done():
            exc = None if task.cancelled() else task.exception()
            reason = f": {exc}" if exc is not None else ""
            if isinstance(exc, StartError):
                raise exc
            raise StartError(f"{name} exited during start-up{reason}")
        if time.monotonic() > deadline:
            task.cancel()
            raise StartError(f"{name} not ready within {LISTEN_TIMEOUT_SECONDS:g}s")
        await asyncio.sleep(0.01)
