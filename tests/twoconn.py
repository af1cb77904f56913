"""Two connectors in one test process: own database and Temporal namespace each, real HTTP on
loopback between them, secure identity (did:web with generated keys), in-process workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import uvicorn
from temporalio.api.enums.v1 import EventType

from api.app import create_app
from connector.identity.runtime import build_identity
from connector.runtime.embedded import free_port
from connector.runtime.metrics import Metrics, build_registry
from connector.runtime.resources import open_resources
from connector.settings import Settings, TaskQueues, load_settings, to_env
from connector.stores.migrate import migrate
from connector.temporal.client import bootstrap, connect
from dataplane.app import create_app as create_dataplane
from tests import services
from workers.main import build_workers
from workers.registry import WorkerContext

KEY = "two-connector-test-management-key-0123456789"
SIGNALING_SECRET = "two-connector-test-signaling-secret-0123456789"
HEADERS = {"X-Api-Key": KEY}
OPEN_POLICY = {"@id": "open", "@type": "Set", "permission": [{"action": "use"}]}


def did_for(port: int) -> str:
    return f"did:web:localhost%3A{port}"


@dataclass
class Exchange:
    method: str
    path: str
    request: Any
    status: int
    response: Any
    #: `time.monotonic()` when the answer was complete.
    at: float = 0.0


class Recorder:
    """ASGI wrapper that keeps every DSP request and response body (to validate them all)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []
        self.in_flight = 0

    async def quiet(self, within: float = 10.0) -> None:
        """Wait until no DSP request is being answered (a request whose client gave up, e.g. a
        send acknowledged by the peer's reply, is recorded when its answer is done)."""
        deadline = asyncio.get_running_loop().time() + within
        while self.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/dsp/"):
            await self.app(scope, receive, send)
            return
        body_in = bytearray()
        body_out = bytearray()
        status = 0

        async def recv() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body_in.extend(message.get("body", b""))
            return message

        async def snd(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body_out.extend(message.get("body", b""))
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, recv, snd)
        finally:
            self.in_flight -= 1
        self.exchanges.append(
            Exchange(
                scope["method"],
                scope["path"],
                _json(body_in),
                status,
                _json(body_out),
                time.monotonic(),
            )
        )


def _json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


@dataclass
class Connector:
    name: str
    port: int
    settings: Settings
    recorder: Recorder
    http: httpx.AsyncClient
    db_url: str
    workers: list[Any] = field(default_factory=list)
    worker_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    worker_stack: AsyncExitStack | None = None
    dataplane: DataPlane | None = None
    # The control plane's metrics and those of every worker set started so far.
    metrics: list[Metrics] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float:
        """A sample summed over this connector's processes (as Prometheus would sum them)."""
        values = (m.registry.get_sample_value(name, labels) for m in self.metrics)
        return sum(v for v in values if v is not None)

    @property
    def did(self) -> str:
        return did_for(self.port)

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def dsp(self) -> str:
        return f"{self.base}/dsp/2025-1"

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.http.post(f"/management/v1{path}", json=body, headers=HEADERS)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(f"/management/v1{path}", params=params, headers=HEADERS)

    async def start_workers(self) -> None:
        stack = AsyncExitStack()
        resources = await stack.enter_async_context(open_resources(self.settings, temporal=False))
        client = await connect(self.settings)
        identity = build_identity(self.settings, resources.redis)
        stack.push_async_callback(identity.http.aclose)
        metrics = Metrics(build_registry(process_metrics=False), "worker")
        self.metrics.append(metrics)
        self.workers = build_workers(
            client,
            self.settings,
            [self.settings.temporal.task_queues.control],
            WorkerContext(resources, identity, metrics),
        )
        self.worker_tasks = [asyncio.create_task(w.run()) for w in self.workers]
        self.worker_stack = stack

    async def stop_workers(self) -> None:
        # Bounded: a test must fail, never hang, if a worker does not drain.
        await asyncio.wait_for(
            asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True), 30
        )
        await asyncio.wait_for(asyncio.gather(*self.worker_tasks, return_exceptions=True), 30)
        if self.worker_stack is not None:
            await self.worker_stack.aclose()
        self.workers, self.worker_tasks, self.worker_stack = [], [], None

    async def wait_transfer(self, transfer_id: str, states: set[str], timeout: float = 30) -> Any:
        return await self.wait_state(transfer_id, states, timeout, kind="transfers")

    async def wait_state(
        self, negotiation_id: str, states: set[str], timeout: float = 30, kind: str = "negotiations"
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            resp = await self.get(f"/{kind}/{negotiation_id}")
            if resp.status_code == 200:
                last = resp.json()
                if last["state"] in states:
                    return last
            await asyncio.sleep(0.05)
        history = await self.workflow_trouble(kind, last)
        raise AssertionError(
            f"{self.name}: {negotiation_id} not in {states}; last: {last}\nhistory: {history}"
        )

    async def workflow_trouble(self, kind: str, last: Any) -> list[str]:
        """The tail of the workflow's history, failed workflow tasks first: why it is stuck."""
        if not isinstance(last, dict) or "workflow" not in last:
            return []
        workflow_id = last["workflow"].get("workflowId")
        try:
            client = await connect(self.settings)
            events = [
                e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()
            ]
        except Exception as exc:  # diagnostics only
            return [f"history unavailable: {exc!r}"]
        failed = [
            f"workflow task failed: {e.workflow_task_failed_event_attributes.failure.message}"
            for e in events
            if e.HasField("workflow_task_failed_event_attributes")
        ]
        tail = [EventType.Name(e.event_type) for e in events[-15:]]
        return failed[-3:] + tail


class DataPlane:
    """A connector's data plane on its own port: in-process uvicorn or a separate process."""

    def __init__(self, settings: Settings, mode: Literal["inproc", "process"]) -> None:
        self.settings = settings
        self.mode = mode
        self.port = settings.dataplane.port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(settings.data_dir) / "dataplane.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self.mode == "inproc":
            self._server = uvicorn.Server(
                uvicorn.Config(
                    create_dataplane(self.settings),
                    host="127.0.0.1",
                    port=self.port,
                    log_config=None,
                    lifespan="on",
                    access_log=False,
                )
            )
            self._task = asyncio.create_task(self._server.serve())
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        env.update(to_env(self.settings))
        env["CONNECTOR_METRICS__PORT"] = "0"
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector", "data-plane"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient(timeout=1) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"data plane exited: {self.log.read_text()[-2000:]}")
                try:
                    if (await client.get(f"{self.base}/health")).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("data plane did not come up")

    def kill(self) -> None:
        """kill -9 (process mode only)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server, self._task = None, None
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


@asynccontextmanager
async def running_connector(
    name: str,
    port: int,
    peer_did: str,
    *,
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    data_dir: Path,
    dataplane: Literal["inproc", "process"] | None = None,
    inproc_workers: bool = True,
    edge_process: bool = False,
    **overrides: Any,
) -> AsyncIterator[Connector]:
    """`edge_process`: control plane, data plane and workers as `connector up` runs them by
    default (`workers.edge.EdgeProcess`: one set of resources, one Temporal client); the
    `dataplane` and `inproc_workers` arguments do not apply then."""
    dp_port = free_port()
    dataplane_settings = {
        "port": dp_port,
        "public_url": f"http://localhost:{dp_port}",
        "signaling_secret": SIGNALING_SECRET,
        "file_base_path": str(data_dir / "files"),
        **overrides.pop("dataplane", {}),
    }
    outbound_settings = {
        "allow_cidrs": ["127.0.0.0/8", "::1/128"],
        "allow_http": True,
        **overrides.pop("outbound", {}),
    }
    (data_dir / "files").mkdir(parents=True, exist_ok=True)
    db_url = await services.create_database(pg_server_url)
    conn = await asyncpg.connect(db_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    # Namespaces are shared by every test in a session: private task queues keep a worker that an
    # earlier (timed-out) test leaked from taking this connector's tasks with its own identity.
    suffix = db_url.rsplit("/", 1)[-1]
    queues = {role: f"{q}.{suffix}" for role, q in TaskQueues().model_dump().items()}
    temporal = {"address": temporal_address, "namespace": name, "task_queues": queues}
    settings = load_settings(
        env={},
        data_dir=data_dir,
        server={"host": "127.0.0.1", "port": port, "public_url": f"http://localhost:{port}"},
        database={"url": db_url},
        redis={"url": redis_url},
        temporal={**temporal, **overrides.pop("temporal", {})},
        management={"api_keys": [KEY]},
        identity={"trust": {"allowed_dids": [peer_did]}, **overrides.pop("identity", {})},
        outbound=outbound_settings,
        dataplane=dataplane_settings,
        **overrides,
    )
    client = await connect(settings, namespace=name)
    await bootstrap(client, settings.temporal)
    if edge_process:
        async with _edge_connector(name, port, settings, db_url) as connector:
            yield connector
        await services.drop_database(pg_server_url, db_url)
        return
    app_metrics = Metrics(build_registry(process_metrics=False), name)
    app = create_app(settings, metrics=app_metrics)
    recorder = Recorder(app)
    server = uvicorn.Server(
        uvicorn.Config(
            recorder,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    # uvicorn runs the app's lifespan for the wrapper: forward lifespan to the FastAPI app.
    server_task = asyncio.create_task(server.serve())
    while not server.started:
        if server_task.done():
            server_task.result()
        await asyncio.sleep(0.01)
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    connector = Connector(name, port, settings, recorder, http, db_url, metrics=[app_metrics])
    if dataplane is not None:
        connector.dataplane = DataPlane(settings, dataplane)
        await connector.dataplane.start()
    if inproc_workers:
        await connector.start_workers()
    try:
        yield connector
    finally:
        await connector.stop_workers()
        if connector.dataplane is not None:
            await connector.dataplane.stop()
        await http.aclose()
        server.should_exit = True
        await server_task
        await services.drop_database(pg_server_url, db_url)


@asynccontextmanager
async def _edge_connector(
    name: str, port: int, settings: Settings, db_url: str
) -> AsyncIterator[Connector]:
    from workers.edge import EdgeProcess

    recorders: list[Recorder] = []

    def wrap(app: Any) -> Recorder:
        recorders.append(Recorder(app))
        return recorders[-1]

    edge = EdgeProcess(settings, wrap_control_plane=wrap)
    await edge.start()
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        yield Connector(name, port, settings, recorders[0], http, db_url, metrics=[edge.metrics])
    finally:
        await http.aclose()
        await edge.stop(time.monotonic() + 15)


@asynccontextmanager
async def connector_pair(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp: Path,
    *,
    provider_dataplane: Literal["inproc", "process"] | None = None,
    inproc_workers: bool = True,
    **overrides: Any,
) -> AsyncIterator[tuple[Connector, Connector]]:
    provider_port, consumer_port = free_port(), free_port()
    async with (
        running_connector(
            "provider",
            provider_port,
            did_for(consumer_port),
            data_dir=tmp / "provider",
            dataplane=provider_dataplane,
            inproc_workers=inproc_workers,
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            **overrides,
        ) as provider,
        running_connector(
            "consumer",
            consumer_port,
            did_for(provider_port),
            data_dir=tmp / "consumer",
            inproc_workers=inproc_workers,
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            **overrides,
        ) as consumer,
    ):
        yield provider, consumer


async def publish_offer(
    provider: Connector,
    asset_id: str = "asset-1",
    policy: dict[str, Any] | None = None,
    *,
    data_address: dict[str, Any] | None = None,
    distributions: list[str] | None = None,
) -> None:
    policy = policy or OPEN_POLICY
    for path, body in (
        (
            "/assets",
            {
                "id": asset_id,
                "properties": {"name": f"Dataset {asset_id}"},
                "dataAddress": data_address
                or {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                "distributions": distributions or ["HttpData-PULL"],
            },
        ),
        ("/policies", {"id": policy["@id"], "policy": policy}),
        (
            "/offers",
            {
                "id": f"offer-{asset_id}",
                "assetSelector": [asset_id],
                "accessPolicyId": policy["@id"],
                "contractPolicyId": policy["@id"],
            },
        ),
    ):
        resp = await provider.post(path, body)
        assert resp.status_code in (201, 409), resp.text


async def catalog_offer(consumer: Connector, provider: Connector, asset_id: str) -> dict[str, Any]:
    """The provider's offer for `asset_id`, as the consumer sees it in the catalog."""
    resp = await consumer.post(
        "/catalog/request", {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did}
    )
    assert resp.status_code == 200, resp.text
    catalog = resp.json()
    datasets = catalog.get("dataset", [])
    for dataset in datasets if isinstance(datasets, list) else [datasets]:
        if dataset.get("@id") == asset_id:
            offers = dataset["hasPolicy"]
            offer = dict(offers[0] if isinstance(offers, list) else offers)
            offer["target"] = asset_id
            return offer
    raise AssertionError(f"{asset_id} not in catalog {catalog}")


async def request_negotiation(
    consumer: Connector,
    provider: Connector,
    offer: dict[str, Any],
    accepted: tuple[int, ...] = (201,),
) -> str:
    """The consumer's operator asks for `offer` from `provider`; the consumer's negotiation id."""
    resp = await consumer.post(
        "/negotiations",
        {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer},
    )
    assert resp.status_code in accepted, resp.text
    negotiation_id: str = resp.json()["id"]
    return negotiation_id


async def negotiate_to_finalized(
    consumer: Connector, provider: Connector, offer: dict[str, Any]
) -> dict[str, Any]:
    """One negotiation for `offer` started by the consumer's operator, FINALIZED on both sides;
    the consumer's last view of it."""
    negotiation_id = await request_negotiation(consumer, provider, offer)
    last: dict[str, Any] = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"})
    assert last["state"] == "FINALIZED", last
    await provider.wait_state(last["providerPid"], {"FINALIZED"})
    return last


class WorkerProcess:
    """`connector worker` as its own OS process, so a test can kill -9 it."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.queue = connector.settings.temporal.task_queues.control

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        env.update(to_env(self.connector.settings))
        env["CONNECTOR_METRICS__PORT"] = "0"
        env["CONNECTOR_WORKERS__HEALTH_PORT"] = str(self.health_port)
        env["CONNECTOR_LOGGING__LEVEL"] = "warning"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", "worker", "--queue", self.queue],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                try:
                    r = await client.get(f"http://127.0.0.1:{self.health_port}/ready")
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("worker process not ready")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
