"""Worker composition root: open resources, build activities, run one Worker per task queue.

Also serves `/health` and `/ready` on the worker's health port and, standalone, its metrics
(our registry plus the Temporal SDK's own, proxied) on the metrics port.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Final

import uvicorn
from prometheus_client import generate_latest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    PollerBehaviorAutoscaling,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from connector.identity.runtime import build_identity
from connector.runtime import health
from connector.runtime.embedded import free_port
from connector.runtime.logging import get_logger
from connector.runtime.metrics import Metrics, TemporalProxyCollector, child_registry
from connector.runtime.resources import Resources, open_resources
from connector.settings import Settings
from workers.registry import WorkerContext, registry
from workers.sandbox import SandboxedRunner

log = get_logger(__name__)
ROLE = "worker"


def _checks(resources: Resources) -> dict[str, health.Check]:
    checks = {
        "database": health.database_check(resources.pool),
        "redis": health.redis_check(resources.redis),
    }
    if resources.temporal is not None:
        checks["temporal"] = health.temporal_check(resources.temporal)
    return checks


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


def health_app(
    resources: Resources, metrics_text: Callable[[], bytes] | None
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A bare ASGI app: a worker needs three GET routes, not a web framework."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope.get("path", "")
        content_type = b"application/json"
        if path == "/live":
            status, body = health.live()
            payload = json.dumps(body).encode()
        elif path == "/health":
            status, body = await health.health(_checks(resources))
            payload = json.dumps(body).encode()
        elif path == "/ready":
            status, body = await health.ready(
                _checks(resources), health.migrations_check(resources.pool)
            )
            payload = json.dumps(body).encode()
        elif path == "/metrics" and metrics_text is not None:
            status, payload = 200, metrics_text()
            content_type = b"text/plain; version=0.0.4"
        else:
            status, payload = 404, b'{"error":"not_found"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


async def _connect_with_retry(settings: Settings, runtime: Runtime) -> Client:
    from connector.temporal.client import connect

    delay = 0.2
    while True:
        try:
            return await connect(settings, runtime=runtime)
        except RuntimeError as exc:
            log.warning("temporal not reachable yet", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """The ops worker keeps the backup and credential renewal Schedules in line with
    configuration (idempotent)."""
    from commands.backup import ensure_backup_schedule
    from workers.credential_ops import ensure_renewal_schedule

    try:
        log.info("backup schedule", change=await ensure_backup_schedule(client, settings))
    except Exception as exc:  # a schedule problem must not stop the worker; it is logged loudly
        log.error("backup schedule not applied", error=str(exc))
    try:
        log.info("renewal schedule", change=await ensure_renewal_schedule(client, settings))
    except Exception as exc:  # as above: logged loudly, the worker runs on
        log.error("credential renewal schedule not applied", error=str(exc))


async def publish_backup_status(resources: Resources, settings: Settings, metrics: Metrics) -> None:
    """The backup gauges from the target's manifests: a fresh install exports none (no alert
    pages), a restarted worker the backups it finds."""
    from activities.backup import publish_known_status
    from commands.backup import service_for

    await publish_known_status(service_for(settings), resources.pool, metrics, settings.backup)


async def run(settings: Settings, queues: list[str], *, name: str = "worker") -> None:
    """Run until SIGTERM/SIGINT; drain in-flight tasks for the configured grace period."""
    temporal_metrics_port = settings.metrics.temporal_port or free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{temporal_metrics_port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
                unit_suffix=True,
            ),
            global_tags={"worker": name},
        )
    )
    metrics = Metrics(child_registry(), ROLE)
    metrics.registry.register(
        TemporalProxyCollector(lambda: [f"http://127.0.0.1:{temporal_metrics_port}/metrics"])
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with open_resources(settings, temporal=False) as resources:
        server = uvicorn.Server(
            uvicorn.Config(
                health_app(resources, lambda: generate_latest(metrics.registry)),
                host=settings.server.host,
                port=settings.workers.health_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        server_task = asyncio.create_task(server.serve())
        if settings.metrics.port:
            from prometheus_client import start_http_server

            start_http_server(
                settings.metrics.port, addr=settings.metrics.host, registry=metrics.registry
            )
        connect_task = asyncio.create_task(_connect_with_retry(settings, runtime))
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({connect_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if connect_task not in done:
            connect_task.cancel()
            server.should_exit = True
            await server_task
            return
        client = connect_task.result()
        resources.temporal = client
        identity = build_identity(settings, resources.redis)
        workers = build_workers(
            client, settings, queues, WorkerContext(resources, identity, metrics)
        )
        if settings.temporal.task_queues.ops in queues:
            await ensure_schedules(client, settings)
            await publish_backup_status(resources, settings, metrics)
        runs = [asyncio.create_task(w.run()) for w in workers]
        log.info("worker polling", queues=queues, namespace=settings.temporal.namespace)
        await stop.wait()
        log.info("worker stopping", grace_seconds=settings.workers.graceful_shutdown_seconds)
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)
        server.should_exit = True
        await server_task


STICKY_SCHEDULE_TO_START = timedelta(seconds=3)


# Our workflows' helper modules hold constants, contracts and activity-call wrappers, no state:
# passed through, the sandbox re-imports only the workflow module itself on every run (about a
# third of the sandbox's cost per run).
SANDBOX_PASSTHROUGH: Final = (
    "workflows.names",
    "workflows.options",
    "workflows.sending",
    "workflows.contracts",
    "workflows.search",
    "workflows.backup_options",
    "workflows.backup_contracts",
)


def workflow_runner(*, sandbox: bool = True) -> WorkflowRunner:
    """The runner workers use (and replay tests, so they replay as production runs).

    The sandbox is the SDK's, with our helper modules passed through and its context lookups
    taken directly (`workers.sandbox`); the workflow modules themselves are still re-imported
    and restricted for every run (decision 0030)."""
    if not sandbox:
        return UnsandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    return SandboxedRunner(restrictions=restrictions)


def build_workers(
    client: Client,
    settings: Settings,
    queues: list[str],
    context: WorkerContext,
    *,
    workflow_threads: int | None = None,
) -> list[Worker]:
    """One Worker per task queue, with the registry's workflows and activities.

    `workflow_threads`: threads that run workflow activations, shared by the workers (default:
    the SDK's, a pool per worker)."""
    table = registry(settings.temporal.task_queues)
    executor = (
        None
        if workflow_threads is None
        else ThreadPoolExecutor(max_workers=workflow_threads, thread_name_prefix="workflow")
    )
    workers = []
    for queue in queues:
        entry = table[queue]
        workers.append(
            Worker(
                client,
                task_queue=queue,
                workflows=list(entry.workflows),
                activities=list(entry.activities(context)),
                graceful_shutdown_timeout=timedelta(
                    seconds=settings.workers.graceful_shutdown_seconds
                ),
                # A crashed worker's workflows wait this long before another worker takes
                # them up (default 10 s); a peer's message to one of them waits as long.
                sticky_queue_schedule_to_start_timeout=STICKY_SCHEDULE_TO_START,
                workflow_runner=workflow_runner(sandbox=settings.workers.workflow_sandbox),
                workflow_task_executor=executor,
                workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
                activity_task_poller_behavior=PollerBehaviorAutoscaling(),
            )
        )
    return workers
