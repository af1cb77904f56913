"""Contract negotiations between two connectors, next to the bare Temporal rate on the same server.

    python -m tests.bench.negotiation_bench [--total 200] [--concurrency 20] [--burst 200]
                                            [--quick] [--no-write]

Starts embedded Postgres, Redis and a Temporal dev server with the WAL / synchronous=NORMAL
pragmas exactly as `connector up` does (connector.runtime.embedded.temporal_spec). Each connector of
the two-connector harness (tests/twoconn.py: control plane under uvicorn, secure did:web
identity) runs in its OWN process (uvloop) with its workers in a second one (`connector
worker`, as `connector up` and the Helm chart run them), the load generator in this one.

1. Bare Temporal: a Worker on a fresh task queue, `concurrency` concurrent `execute_workflow`
   of an empty workflow with one no-op activity and the same with a local activity
   (tests/bench/bare.py), `total` each.
2. Negotiations: `total` management POSTs to the consumer, `concurrency` in flight until
   FINALIZED. Latency = the consumer projection's FINALIZED `updated_at` (workflow time) minus
   the wall time the POST was sent; throughput = total / (last FINALIZED - first POST).
3. `burst` concurrent initial ContractRequestMessages sent raw to the provider, signed as the
   consumer (its key ring from its data dir), callbacks to a sink that answers 200; latency of
   the 201 at the client and inside the provider's ASGI app.
4. Bare Temporal again on a dev server started WITHOUT the pragmas (comparison row).

Writes the "## Negotiations" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from connector.runtime import embedded
from tests import services
from tests.bench.common import machine, now, pct, write_section

if TYPE_CHECKING:
    from tests.twoconn import Recorder

SECTION = "Negotiations"
PIDS: dict[str, int] = {}  # process groups whose CPU time is accounted per negotiation
CPU: dict[str, float] = {}  # CPU seconds per negotiation in the measured run
CPU_UNSANDBOXED: dict[str, float] = {}  # the same with workers.workflow_sandbox off
UNSANDBOXED = "negotiation, management POST -> FINALIZED, workers without the sandbox"
EXTRA: dict[str, str] = {}
BURST_CPU: dict[str, float] = {}  # CPU seconds per 201 answer during the burst
EVENT_LOOP = "provider control plane, event loop thread"
NAMESPACES = ["provider", "consumer", "bench"]
READY_TIMEOUT = 90.0
SEQUENTIAL = 10
FINISH_TIMEOUT = 120.0
POLL = 0.025

# --------------------------------------------------------------------------------------------
# Child: one connector of the pair in its own process
# --------------------------------------------------------------------------------------------

STATE: dict[str, Any] = {"ready": False, "initial": [], "db_url": None}


def _timing_recorder() -> type[Recorder]:
    from tests import twoconn

    class TimingRecorder(twoconn.Recorder):
        """Times the answer to initial ContractRequestMessages; serves /__bench/* (no body copy)."""

        async def __call__(
            self,
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            path = scope["path"]
            if path.startswith("/__bench/"):
                if path == "/__bench/reset":
                    STATE["initial"] = []
                body = json.dumps(STATE).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            if not (scope["method"] == "POST" and path.endswith("/negotiations/request")):
                await self.app(scope, receive, send)
                return
            started = time.perf_counter()

            async def timed_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    STATE["initial"].append([time.perf_counter() - started, message["status"]])
                await send(message)

            await self.app(scope, receive, timed_send)

    return TimingRecorder


async def serve(cfg: dict[str, Any]) -> None:
    from connector.runtime.logging import configure_logging
    from connector.settings import load_settings
    from tests import twoconn

    data_dir = Path(cfg["data_dir"])
    configure_logging(load_settings(env={}, data_dir=data_dir).logging, cfg["name"])
    twoconn.Recorder = _timing_recorder()  # type: ignore[misc]
    if cfg.get("layout") == "one-process":
        await serve_one_process(cfg, data_dir)
        return
    async with twoconn.running_connector(
        cfg["name"],
        cfg["port"],
        twoconn.did_for(cfg["peer_port"]),
        pg_server_url=cfg["pg"],
        redis_url=cfg["redis"],
        temporal_address=cfg["temporal"],
        data_dir=data_dir,
        # The per-caller DSP rate limit (600/min by default) would answer part of this load 429.
        rate_limit={"requests_per_minute": 0},
        # As `connector up` and the Helm chart run it: the workers in a process of their own.
        inproc_workers=False,
        workers={"workflow_sandbox": cfg.get("sandbox", True)},
    ) as conn:
        worker = twoconn.WorkerProcess(conn)
        worker.start()
        try:
            await worker.ready()
            STATE["db_url"] = conn.db_url
            STATE["ready"] = True
            # Until the parent closes our stdin.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            worker.stop()


async def serve_one_process(cfg: dict[str, Any], data_dir: Path) -> None:
    """The connector as `connector up` runs it by default: control plane, data plane and the
    workers in this one process, sharing one Temporal client (`workers.edge.EdgeProcess`)."""
    from api.process_gateway import ProcessGateway
    from tests import twoconn

    ProcessGateway.eager_start = cfg.get("eager", True)
    if cfg.get("runner") == "sdk":
        _sdk_sandbox_runner()
    if cfg.get("workflow_threads"):
        import workers.edge

        workers.edge.WORKFLOW_THREADS = cfg["workflow_threads"]
    async with twoconn.running_connector(
        cfg["name"],
        cfg["port"],
        twoconn.did_for(cfg["peer_port"]),
        pg_server_url=cfg["pg"],
        redis_url=cfg["redis"],
        temporal_address=cfg["temporal"],
        data_dir=data_dir,
        rate_limit={"requests_per_minute": 0},
        edge_process=True,
        workers={"workflow_sandbox": cfg.get("sandbox", True)},
    ) as conn:
        STATE["db_url"] = conn.db_url
        STATE["ready"] = True
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _sdk_sandbox_runner() -> None:
    """Workers with the SDK's own sandbox runner, as before decision 0030 (our helper modules
    passed through, contexts looked up through the SDK's `exec`)."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    import workers.main

    restrictions = SandboxRestrictions.default.with_passthrough_modules(
        *workers.main.SANDBOX_PASSTHROUGH
    )
    ours = workers.main.workflow_runner

    def runner(*, sandbox: bool = True) -> Any:
        return (
            SandboxedWorkflowRunner(restrictions=restrictions) if sandbox else ours(sandbox=False)
        )

    workers.main.workflow_runner = runner


def serve_main(raw: str) -> None:
    cfg = json.loads(raw)
    try:
        import uvloop

        uvloop.run(serve(cfg))
    except ImportError:
        asyncio.run(serve(cfg))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the Temporal SDK's runtime may crash in interpreter teardown (sdk-python #300)


@dataclass
class Child:
    name: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def did(self) -> str:
        return f"did:web:localhost%3A{self.port}"

    @property
    def dsp(self) -> str:
        return f"http://localhost:{self.port}/dsp/2025-1"

    async def bench(self, what: str = "stats") -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            result: dict[str, Any] = (await client.get(f"{self.base}/__bench/{what}")).json()
            return result


@asynccontextmanager
async def pair(
    root: Path,
    pg: str,
    redis_url: str,
    temporal: str,
    *,
    sandbox: bool = True,
    layout: str = "separate",
    eager: bool = True,
    threads: int | None = None,
    runner: str = "ours",
) -> AsyncIterator[tuple[Child, Child]]:
    ports = {"provider": embedded.free_port(), "consumer": embedded.free_port()}
    children: list[Child] = []
    try:
        for name, peer in (("provider", "consumer"), ("consumer", "provider")):
            data_dir = root / name
            data_dir.mkdir(parents=True, exist_ok=True)
            cfg = {
                "name": name,
                "port": ports[name],
                "peer_port": ports[peer],
                "pg": pg,
                "redis": redis_url,
                "temporal": temporal,
                "data_dir": str(data_dir),
                "sandbox": sandbox,
                "layout": layout,
                "eager": eager,
                "workflow_threads": threads,
                "runner": runner,
            }
            log = root / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.bench.negotiation_bench",
                        "--serve",
                        json.dumps(cfg),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            children.append(Child(name, ports[name], data_dir, process, log))
        for child in children:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                if child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited:\n{child.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if (await child.bench())["ready"]:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} not ready:\n{child.log.read_text()[-3000:]}")
                await asyncio.sleep(0.2)
        PIDS.update({c.name: c.process.pid for c in children})
        yield children[0], children[1]
    finally:
        for child in reversed(children):
            if child.process.stdin is not None:
                with contextlib.suppress(OSError):
                    child.process.stdin.close()
            try:
                child.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


# --------------------------------------------------------------------------------------------
# Parent: measurements
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    concurrency: int
    count: int
    rate: float | None  # per second
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0

    def p(self, q: float) -> float:
        return pct(self.latencies, q) * 1000


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry.name)
                )
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """user+system CPU seconds of each process with its children (a connector: its worker
    process; Postgres: its backends)."""
    out: dict[str, float] = {}
    for name, pid in groups.items():
        total = 0.0
        # This process's children are the servers measured above: its own CPU only.
        for p in [pid] if pid == os.getpid() else _descendants(pid):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += thread_cpu_seconds(p)
        out[name] = total
    return out


def thread_cpu_seconds(pid: int, tid: int | None = None) -> float:
    """user+system CPU seconds of one process (all its threads, no children), or of one of
    its threads (`tid`; the main thread's tid is the pid)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@asynccontextmanager
async def temporal_server(
    root: Path,
    *,
    pragmas: bool,
    go_env: dict[str, str] | None = None,
    extra_argv: list[str] | None = None,
) -> AsyncIterator[str]:
    """`go_env`: the server's Go runtime variables (None: `temporal.embedded_go_env`'s
    default, as `connector up` starts it; {}: Go's defaults); `extra_argv`: further flags of
    `temporal server start-dev`."""
    from connector.settings import TemporalSettings

    port = embedded.free_port()
    if go_env is None:
        go_env = TemporalSettings().embedded_go_env
    spec = embedded.temporal_spec(root, port, 0, NAMESPACES[0], go_env=go_env)
    for extra in NAMESPACES[1:]:
        spec.argv += ["--namespace", extra]
    spec.argv += extra_argv or []
    if not pragmas:
        argv, skip = [], False
        for arg in spec.argv:
            if skip:
                skip = False
                continue
            if arg == "--sqlite-pragma":
                skip = True
                continue
            argv.append(arg)
        spec.argv = argv
    async with services.running(spec) as child:
        PIDS["temporal"] = child.pid or 0
        yield f"127.0.0.1:{port}"


async def bare_rates(address: str, concurrency: int, total: int, tag: str) -> list[Row]:
    from temporalio.client import Client
    from temporalio.worker import PollerBehaviorAutoscaling, Worker

    from tests.bench.bare import BareLocalWorkflow, BareWorkflow, noop

    client = await Client.connect(address, namespace="bench")
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    rows: list[Row] = []
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BareWorkflow, BareLocalWorkflow],
        activities=[noop],
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
        activity_task_poller_behavior=PollerBehaviorAutoscaling(),
    ):
        for label, wf in (
            ("activity", BareWorkflow.run),
            ("local activity", BareLocalWorkflow.run),
        ):
            sem = asyncio.Semaphore(concurrency)
            latencies: list[float] = []

            async def one(
                i: int,
                wf: Any = wf,
                latencies: list[float] = latencies,
                sem: asyncio.Semaphore = sem,
            ) -> None:
                async with sem:
                    started = time.perf_counter()
                    await client.execute_workflow(wf, "x", id=f"{queue}-{i}", task_queue=queue)
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(one(-i - 1) for i in range(min(20, total))))  # warm-up
            latencies.clear()
            base = len(rows) * 1_000_000
            started = time.perf_counter()
            await asyncio.gather(*(one(base + i) for i in range(total)))
            elapsed = time.perf_counter() - started
            rows.append(
                Row(
                    f"bare Temporal, 1 {label} ({tag})",
                    concurrency,
                    total,
                    total / elapsed,
                    latencies,
                )
            )
            print(f"bare {label} {tag}: {total / elapsed:.1f}/s", file=sys.stderr)
    return rows


async def _post(client: httpx.AsyncClient, url: str, body: Any) -> httpx.Response:
    from tests.twoconn import HEADERS

    resp = await client.post(url, json=body, headers=HEADERS)
    if resp.status_code not in (200, 201, 202, 409):  # 202: started, not yet projected
        raise RuntimeError(f"{url}: {resp.status_code} {resp.text}")
    return resp


async def prepare_offer(
    client: httpx.AsyncClient, provider: Child, consumer: Child
) -> dict[str, Any]:
    from tests.twoconn import OPEN_POLICY

    mgmt = f"{provider.base}/management/v1"
    await _post(
        client,
        f"{mgmt}/assets",
        {
            "id": "asset-bench",
            "properties": {"name": "bench"},
            "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
            "distributions": ["HttpData-PULL"],
        },
    )
    await _post(client, f"{mgmt}/policies", {"id": "open", "policy": OPEN_POLICY})
    await _post(
        client,
        f"{mgmt}/offers",
        {
            "id": "offer-bench",
            "assetSelector": ["asset-bench"],
            "accessPolicyId": "open",
            "contractPolicyId": "open",
        },
    )
    catalog = (
        await _post(
            client,
            f"{consumer.base}/management/v1/catalog/request",
            {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did},
        )
    ).json()
    datasets = catalog.get("dataset", [])
    for dataset in datasets if isinstance(datasets, list) else [datasets]:
        if dataset.get("@id") == "asset-bench":
            offers = dataset["hasPolicy"]
            offer = dict(offers[0] if isinstance(offers, list) else offers)
            offer["target"] = "asset-bench"
            return offer
    raise RuntimeError(f"asset-bench not in the catalog: {catalog}")


class Finalized:
    """Polls the consumer's projection for the negotiations in flight; resolves their futures."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.waiting: dict[str, asyncio.Future[asyncpg.Record]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Finalized:
        self.conn = await asyncpg.connect(self.db_url)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.conn.close()

    async def _run(self) -> None:
        while True:
            try:
                await self._poll()
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"poll failed: {exc!r}", file=sys.stderr)
            await asyncio.sleep(POLL)

    async def _poll(self) -> None:
        if self.waiting:
            rows = await self.conn.fetch(
                "SELECT own_pid, state, created_at, updated_at FROM negotiations "
                "WHERE own_pid = ANY($1::text[]) AND state IN ('FINALIZED', 'TERMINATED')",
                list(self.waiting),
            )
            for row in rows:
                future = self.waiting.pop(row["own_pid"], None)
                if future is not None and not future.done():
                    future.set_result(row)

    def wait(self, pid: str) -> asyncio.Future[asyncpg.Record]:
        future: asyncio.Future[asyncpg.Record] = asyncio.get_running_loop().create_future()
        self.waiting[pid] = future
        return future


async def negotiations(
    provider: Child, consumer: Child, offer: dict[str, Any], concurrency: int, total: int
) -> tuple[list[Row], dict[str, Any]]:
    url = f"{consumer.base}/management/v1/negotiations"
    body = {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer}
    db_url = (await consumer.bench())["db_url"]
    e2e: list[float] = []
    workflow: list[float] = []
    posts: list[float] = []
    finished: list[float] = []
    sent: list[float] = []
    errors = 0
    async with (
        httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=concurrency + 5)
        ) as client,
        Finalized(db_url) as final,
    ):
        sem = asyncio.Semaphore(concurrency)

        async def one(record: bool) -> None:
            nonlocal errors
            async with sem:
                wall = time.time()
                started = time.perf_counter()
                resp = await _post(client, url, body)
                posted = time.perf_counter() - started
                row = await asyncio.wait_for(final.wait(resp.json()["id"]), FINISH_TIMEOUT)
            if not record:
                return
            if row["state"] != "FINALIZED":
                errors += 1
                return
            done = row["updated_at"].timestamp()
            sent.append(wall)
            finished.append(done)
            posts.append(posted)
            e2e.append(done - wall)
            workflow.append((row["updated_at"] - row["created_at"]).total_seconds())

        await asyncio.gather(*(one(False) for _ in range(min(concurrency, total))))  # warm-up
        for _ in range(SEQUENTIAL):  # one at a time: latency without queueing
            await one(True)
        single = list(e2e)
        for kept in (e2e, workflow, posts, finished, sent):
            kept.clear()
        await provider.bench("reset")
        PIDS["load generator (this process)"] = os.getpid()
        before = cpu_seconds(PIDS)
        EXTRA["load"] = loadavg()
        await asyncio.gather(*(one(True) for _ in range(total)))
        after = cpu_seconds(PIDS)
        EXTRA["load_after"] = loadavg()
        CPU.update({k: (after[k] - before[k]) / total for k in after})
    provider_stats = await provider.bench()
    span = max(finished) - min(sent) if finished else float("nan")
    rate = len(e2e) / span if finished else 0.0
    initial = [s for s, status in provider_stats["initial"] if status == 201]
    rows = [
        Row("negotiation, one at a time, POST -> FINALIZED", 1, len(single), None, single),
        Row(
            "negotiation, management POST -> FINALIZED (consumer)",
            concurrency,
            total,
            rate,
            e2e,
            errors,
        ),
        Row(
            "negotiation, workflow created -> FINALIZED (consumer)",
            concurrency,
            total,
            None,
            workflow,
        ),
        Row("consumer management POST /negotiations answer", concurrency, total, None, posts),
        Row(
            "provider 201 to the initial ContractRequestMessage, during the run (in app)",
            concurrency,
            len(initial),
            None,
            initial,
            len(provider_stats["initial"]) - len(initial),
        ),
    ]
    print(f"negotiations: {rate:.1f}/s p50 {pct(e2e, 0.5) * 1000:.0f} ms", file=sys.stderr)
    return rows, provider_stats


@asynccontextmanager
async def sink() -> AsyncIterator[str]:
    """Answers 200 to every request: the callback address of the raw burst's negotiations."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/callback"
    finally:
        server.close()


async def _floor(client: httpx.AsyncClient, url: str, count: int) -> Row:
    """The same burst against a route of the same app that does no work (the version
    discovery document): what HTTP and this client cost at that concurrency. Best of three
    rounds (the first also opens the connections), so the floor is not overstated."""
    best: Row | None = None
    for _ in range(3):
        gate = asyncio.Event()
        latencies: list[float] = []
        statuses: list[int] = []

        async def one(
            gate: asyncio.Event = gate,
            latencies: list[float] = latencies,
            statuses: list[int] = statuses,
        ) -> None:
            await gate.wait()
            started = time.perf_counter()
            resp = await client.get(url)
            latencies.append(time.perf_counter() - started)
            statuses.append(resp.status_code)

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        row = Row(
            f"floor: {count} concurrent GET /.well-known/dspace-version, same app (client, "
            "best of 3)",
            count,
            count,
            count / elapsed,
            latencies,
            sum(1 for s in statuses if s != 200),
        )
        if best is None or row.p(0.95) < best.p(0.95):
            best = row
    assert best is not None
    return best


async def burst(provider: Child, consumer: Child, offer: dict[str, Any], count: int) -> list[Row]:
    from connector.identity.keys import load_or_create_keyring
    from connector.identity.tokens import TokenIssuer, bearer
    from tests.scripted_peer import new_pid, request_message

    keyring = load_or_create_keyring(consumer.data_dir / "keys")
    issuer = TokenIssuer(keyring, consumer.did, clock=lambda: datetime.now(UTC))
    url = f"{provider.dsp}/negotiations/request"
    latencies: list[float] = []
    statuses: list[int] = []
    async with (
        sink() as callback,
        httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count + 5)) as client,
    ):

        def prepared() -> tuple[dict[str, str], dict[str, Any]]:
            headers = {"Authorization": bearer(issuer.issue(provider.did))}
            return headers, request_message(offer, new_pid(), callback_address=callback)

        for _ in range(5):  # warm-up: DID document cached, connections open
            headers, body = prepared()
            (await client.post(url, json=body, headers=headers)).raise_for_status()
        floor = await _floor(client, f"{provider.base}/.well-known/dspace-version", count)
        await provider.bench("reset")
        requests = [prepared() for _ in range(count)]  # signed before the clock starts
        gate = asyncio.Event()

        async def one(headers: dict[str, str], body: dict[str, Any]) -> None:
            await gate.wait()
            started = time.perf_counter()
            resp = await client.post(url, json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            statuses.append(resp.status_code)

        tasks = [asyncio.create_task(one(h, b)) for h, b in requests]
        await asyncio.sleep(0.05)
        cp = provider.process.pid
        before = cpu_seconds(PIDS)
        loop_before, cp_before = thread_cpu_seconds(cp, cp), thread_cpu_seconds(cp)
        started = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        loop_after, cp_after = thread_cpu_seconds(cp, cp), thread_cpu_seconds(cp)
        after = cpu_seconds(PIDS)
    BURST_CPU.update({k: (after[k] - before[k]) / count for k in after})
    BURST_CPU[EVENT_LOOP] = (loop_after - loop_before) / count
    BURST_CPU["provider control plane, whole process"] = (cp_after - cp_before) / count
    stats = await provider.bench()
    inside = [s for s, status in stats["initial"] if status == 201]
    bad = sum(1 for s in statuses if s != 201)
    if bad:
        counts: dict[int, int] = {}
        for code in statuses:
            counts[code] = counts.get(code, 0) + 1
        EXTRA["burst_statuses"] = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"burst: p95 client {pct(latencies, 0.95) * 1000:.0f} ms, {bad} not 201", file=sys.stderr)
    return [
        floor,
        Row(
            f"provider 201, {count} concurrent raw initial requests (client)",
            count,
            count,
            count / elapsed,
            latencies,
            bad,
        ),
        Row(
            f"provider 201, {count} concurrent raw initial requests (in app)",
            count,
            len(inside),
            None,
            inside,
        ),
    ]


async def unsandboxed(
    root: Path, pg: str, redis_url: str, address: str, args: argparse.Namespace
) -> Row:
    """The 20-way run again with `workers.workflow_sandbox` off in both connectors (the
    operator's trade of the SDK's safety net for CPU); its CPU goes to CPU_UNSANDBOXED."""
    kept_cpu, kept_extra, kept_pids = dict(CPU), dict(EXTRA), dict(PIDS)
    try:
        async with (
            pair(root / "unsandboxed", pg, redis_url, address, sandbox=False) as (p, c),
            httpx.AsyncClient(timeout=30) as client,
        ):
            offer = await prepare_offer(client, p, c)
            rows, _ = await negotiations(p, c, offer, args.concurrency, args.total)
        CPU_UNSANDBOXED.update(CPU)
    finally:
        CPU.clear()
        CPU.update(kept_cpu)
        EXTRA.clear()
        EXTRA.update(kept_extra)
        PIDS.clear()
        PIDS.update(kept_pids)
    run = next(r for r in rows if r.label.startswith("negotiation, management POST"))
    return Row(UNSANDBOXED, run.concurrency, run.count, run.rate, run.latencies, run.errors)


# --------------------------------------------------------------------------------------------
# Layouts: the same negotiation run, one process per connector or a process per role
# --------------------------------------------------------------------------------------------

LAYOUT_SECTION = "Negotiations by layout"
#: name -> pair() arguments. The separate layout has no shared client: eager start never applies.
VARIANTS: dict[str, dict[str, Any]] = {
    "separate": {"layout": "separate"},
    "one-process-no-eager": {"layout": "one-process", "eager": False},
    "one-process": {"layout": "one-process", "eager": True},
    "one-process-no-sandbox": {"layout": "one-process", "eager": True, "sandbox": False},
    "one-process-1-workflow-thread": {"layout": "one-process", "eager": True, "threads": 1},
    "one-process-sdk-sandbox": {"layout": "one-process", "eager": True, "runner": "sdk"},
}
VARIANT_LABELS: dict[str, str] = {
    "separate": "process per role (`--separate-roles`): control plane + worker process each",
    "one-process-no-eager": "one process per connector, eager workflow start off",
    "one-process": "one process per connector (the default of `connector up`)",
    "one-process-no-sandbox": "one process per connector, workers without the sandbox",
    "one-process-1-workflow-thread": "one process per connector, one thread for workflow tasks",
    "one-process-sdk-sandbox": "one process per connector, the SDK's sandbox runner "
    "(before decision 0030)",
}


@dataclass
class LayoutRun:
    variant: str
    round: int
    rate: float
    p50_ms: float
    errors: int
    cpu: dict[str, float]  # process -> CPU seconds per negotiation


async def layout_runs(args: argparse.Namespace) -> tuple[list[LayoutRun], dict[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="negotiation-layouts-"))
    runs: list[LayoutRun] = []
    load: dict[str, str] = {}
    try:
        pg_port, redis_port = embedded.free_port(), embedded.free_port()
        async with (
            services.running(embedded.postgres_spec(root, pg_port)) as pg_child,
            services.running(embedded.redis_spec(root, redis_port)) as redis_child,
            temporal_server(root / "wal", pragmas=True) as address,
        ):
            pg = embedded.postgres_url(pg_port)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            base = {"postgres": pg_child.pid or 0, "redis": redis_child.pid or 0}
            base["temporal"] = PIDS["temporal"]
            for round_ in range(args.rounds):
                # Alternating order: drift (a growing SQLite file, other jobs) hits each alike.
                order = args.variants if round_ % 2 == 0 else list(reversed(args.variants))
                for variant in order:
                    PIDS.clear()
                    PIDS.update(base)
                    CPU.clear()
                    async with (
                        pair(
                            root / f"{variant}-{round_}",
                            pg,
                            redis_url,
                            address,
                            **VARIANTS[variant],
                        ) as (p, c),
                        httpx.AsyncClient(timeout=30) as client,
                    ):
                        offer = await prepare_offer(client, p, c)
                        rows, _ = await negotiations(p, c, offer, args.concurrency, args.total)
                    run = next(r for r in rows if r.label.startswith("negotiation, management"))
                    runs.append(
                        LayoutRun(
                            variant, round_, run.rate or 0.0, run.p(0.5), run.errors, dict(CPU)
                        )
                    )
                    load[f"{variant}-{round_}"] = f"{EXTRA['load']} -> {EXTRA['load_after']}"
                    print(
                        f"{variant} round {round_ + 1}: {run.rate or 0:.1f}/s, "
                        f"{sum(CPU.values()) * 1000:.0f} ms CPU per negotiation "
                        f"({(CPU.get('provider', 0) + CPU.get('consumer', 0)) * 1000:.0f} ms "
                        "in the two connectors)",
                        file=sys.stderr,
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return runs, load


def render_layouts(
    runs: list[LayoutRun], load: dict[str, str], args: argparse.Namespace, seconds: float
) -> str:
    import statistics

    by: dict[str, list[LayoutRun]] = {}
    for run in runs:
        by.setdefault(run.variant, []).append(run)
    processes = sorted({name for run in runs for name in run.cpu})

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    lines = [
        f"## {LAYOUT_SECTION}",
        "",
        f"Run {now()} on {machine()}; {seconds:.0f} s in all. Command: `python -m "
        f"tests.bench.negotiation_bench --layouts --rounds {args.rounds} --total {args.total} "
        f"--concurrency {args.concurrency}`.",
        "",
        "Method: the 20-way negotiation run of the Negotiations section (same harness, same "
        "embedded Postgres, Redis and Temporal dev server with the WAL pragmas, secure did:web "
        "identity, rate limit off, a warm-up first), once per variant and round on a fresh pair "
        "of connectors, variants alternating order between rounds. `process per role` = each "
        "connector's control plane in one process and its workers in a second (`connector "
        "worker`), as `connector up --separate-roles` and Kubernetes run them; `one process` = "
        "each connector as `connector up` runs it by default (`workers.edge.EdgeProcess`: control "
        "plane, data plane and the workers of every task queue on one event loop, one pool, one "
        "Temporal client, so a start the control plane requests is handed to the in-process "
        "worker eagerly). CPU = user + system time from /proc of every process involved (both "
        "connectors with their children, Temporal, Postgres with its backends, Redis, the load "
        "generator) during the measured run, divided by the negotiations; each cell is the "
        f"median over {args.rounds} rounds. CPU time, not wall time, is the figure to compare: "
        "the machine's 2 cores were shared with other jobs (load averages below).",
        "",
        "| variant | rate (/s) | p50 (ms) | errors | "
        + " | ".join(processes)
        + " | **CPU ms per negotiation, all** |",
        "|---|---:|---:|---:|" + "---:|" * len(processes) + "---:|",
    ]
    totals: dict[str, float] = {}
    for variant in args.variants:
        group = by.get(variant, [])
        if not group:
            continue
        totals[variant] = med([sum(r.cpu.values()) for r in group]) * 1000
        cells = [f"{med([r.cpu.get(p, 0.0) for r in group]) * 1000:.0f}" for p in processes]
        lines.append(
            f"| {VARIANT_LABELS[variant]} | {med([r.rate for r in group]):.1f} | "
            f"{med([r.p50_ms for r in group]):,.0f} | {sum(r.errors for r in group)} | "
            + " | ".join(cells)
            + f" | **{totals[variant]:.0f}** |"
        )
    lines += [
        "",
        "Per round (CPU ms per negotiation, all processes; load average before -> after):",
        "",
        "| variant | round | rate (/s) | CPU ms | load |",
        "|---|---:|---:|---:|---|",
        *[
            f"| {r.variant} | {r.round + 1} | {r.rate:.1f} | {sum(r.cpu.values()) * 1000:.0f} | "
            f"{load.get(f'{r.variant}-{r.round}', '?')} |"
            for r in runs
        ],
        "",
    ]
    lines += [
        "Notes:",
        "",
        "- Eager workflow start: with the worker on the control plane's own Temporal client, "
        "each workflow start (the consumer's, and the provider's opened by the first message, "
        "decision 0008) gets its first workflow task back in the start response; the server "
        "neither queues it for a poller nor matches it, and the worker does not poll for it. "
        "The gateway always asks; where no worker shares the client (process per role, "
        "Kubernetes) the SDK does not forward the request.",
        "- One process shares one interpreter lock between the control plane's requests and "
        "the workflow tasks and activities of its workers; with a process per role both run "
        "in parallel on the two cores. The shared database pool holds the three roles' "
        "connections (`database.pool.max` times three): with one role's worth, projections "
        "waited for connections under this load.",
        "- Contention raises the CPU each negotiation costs (context switches, cache misses, "
        "the servers' background work spread over fewer negotiations per second): compare "
        "variants within one run, not with runs on a quieter machine (the Negotiations "
        "section records its own load average).",
        "- What is left per negotiation is mostly fixed by the workflows' shape (the section "
        "'Negotiations: engine work per negotiation' counts it on real histories: about 50 "
        "events in 7 workflow tasks on both sides, 5 search attribute upserts, each a "
        "visibility write, 2 timers, 2 scheduled activities and 7 local activities); every "
        "DSP message carries a signed token the other side verifies, and every payload is "
        "encrypted (codec) and converted inside the sandbox.",
        "",
    ]
    if "one-process-1-workflow-thread" in totals and "one-process" in totals:
        single, default = totals["one-process-1-workflow-thread"], totals["one-process"]
        lines[-1:-1] = [
            "- One thread for workflow tasks (`workers.edge.WORKFLOW_THREADS = 1`, shared by "
            "the workers, one per task queue; the SDK's default is a pool per worker as large "
            "as its task slots), so that activations do not contend in many threads for the "
            f"interpreter lock: {single:.0f} ms against {default:.0f} ms in the median here "
            f"({'less' if single < default else 'no less'}; its rounds vary widely). It stays "
            "off: the SDK's 2 s deadlock timer also counts the time an activation waits for "
            "that thread, so a backlog (a restart resuming many workflows, a load peak) could "
            "fail workflow tasks as deadlocked unless the workflow-task slots are bounded to "
            "what one thread clears well within 2 s.",
        ]
    one, separate = totals.get("one-process"), totals.get("separate")
    if one is not None and separate is not None:
        rate_one = med([r.rate for r in by["one-process"]])
        rate_sep = med([r.rate for r in by["separate"]])
        lines += [
            "Targets:",
            "",
            f"- CPU per negotiation (both sides, all processes) <= 60 ms: "
            f"**{'met' if one <= 60 else 'MISSED'}** ({one:.0f} ms in one process, "
            f"{separate:.0f} ms with a process per role)",
            f"- negotiation throughput in one process >= the separate-roles layout: "
            f"**{'met' if rate_one >= rate_sep else 'MISSED'}** ({rate_one:.1f}/s vs "
            f"{rate_sep:.1f}/s)",
            "",
        ]
    return "\n".join(lines)


async def run_layouts(args: argparse.Namespace) -> str:
    started = time.monotonic()
    runs, load = await layout_runs(args)
    return render_layouts(runs, load, args, time.monotonic() - started)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def notes(rows: list[Row], args: argparse.Namespace, cpu_total: float) -> list[str]:
    by = {r.label: r for r in rows}
    single = by["negotiation, one at a time, POST -> FINALIZED"]
    neg = by["negotiation, management POST -> FINALIZED (consumer)"]
    act, local = (by[f"bare Temporal, 1 {k} (WAL pragmas)"] for k in ("activity", "local activity"))
    act0, local0 = (
        by[f"bare Temporal, 1 {k} (no pragmas)"] for k in ("activity", "local activity")
    )
    busy = (neg.rate or 0) * cpu_total
    out = [
        "Notes:",
        "",
        "- One negotiation is a chain of synchronous hops: the consumer starts its workflow, a "
        "local activity sends the ContractRequestMessage, the provider's edge judges it, starts "
        "the provider workflow and projects it, and answers 201 (no worker in between, decision "
        "0008); the provider's workflow sends the agreement from a local activity, the "
        "consumer's control plane applies it as a workflow update, the consumer sends the "
        "verification as a scheduled activity, the provider answers it with the FINALIZED event "
        "from a local activity; every DSP message carries a freshly signed token that the other "
        "side verifies (DID document from Redis, jti replay check). "
        f"Alone it takes {single.p(0.5):.0f} ms (p50). With {args.concurrency} in flight the "
        f"latency is queueing: {args.concurrency} / {neg.rate or 0:.1f} per s = "
        f"{args.concurrency / (neg.rate or 1):.1f} s, which is the measured p50.",
        f"- The rate is CPU-bound: {cpu_total * 1000:.0f} ms of CPU per negotiation at "
        f"{neg.rate or 0:.1f}/s keeps {busy:.1f} of the 2 cores busy (plus whatever else ran on "
        "the machine, see the load average). A p50 under 300 ms with "
        f"{args.concurrency} in flight needs {args.concurrency / 0.3:.0f} negotiations/s, i.e. "
        f"at most {2 * 0.3 / args.concurrency * 1000:.0f} ms of CPU each on 2 cores "
        f"({cpu_total / (2 * 0.3 / args.concurrency):.0f}x less than now) or more cores. "
        f"That rate is {args.concurrency / 0.3 / (act.rate or 1):.0%} of the bare Temporal "
        f"rate measured here ({act.rate or 0:.1f}/s): two workflows exchanging four signed "
        "messages would have to cost about what one empty workflow with one activity costs. "
        "One at a time the p50 is "
        f"{'under' if single.p(0.5) < 300 else 'over'} 300 ms ({single.p(0.5):.0f} ms).",
        f"- The {args.burst}-request burst: each 201 costs a token check, the offer lookup, one "
        "workflow start on the dev server and one projection upsert, while the provider's "
        "worker process already runs the started workflows; all of it, and the load "
        "generator signing and sending the burst, shares the 2 cores. The floor row is the "
        "same burst, same client, against a route of the same app that does no work: what "
        "HTTP and this Python load generator alone cost at that concurrency here (the load "
        "generator's CPU per request is in the burst table). The event-loop bound under that "
        "table does not depend on the client.",
        f"- Hot-path choices: with the SQLite pragmas the bare rate is {act.rate or 0:.1f}/s "
        f"instead of {act0.rate or 0:.1f}/s without them "
        f"({(act.rate or 0) / (act0.rate or 1):.1f}x); "
        "a local activity instead of a regular one "
        f"gives {local.rate or 0:.1f}/s vs {act.rate or 0:.1f}/s with the pragmas and "
        f"{local0.rate or 0:.1f}/s vs {act0.rate or 0:.1f}/s without (no activity task to "
        "schedule, poll and complete on the server: fewer SQLite writes). The negotiation "
        "sends its messages and writes its projection as local activities for that reason, "
        "except a send that answers an update from a peer that may itself be waiting in a local "
        "activity (decision 0003): on the happy path only the consumer's verification is a "
        "scheduled activity (decision 0008; before it, the agreement and the FINALIZED event "
        "were too, and the provider's 201 waited for update-with-start).",
        "- A 503 in the burst is the connector's bound on waiting for a worker (8 s, decision "
        "0006): the counterparty re-sends, and the same update id makes that safe.",
    ]
    off_total = sum(CPU_UNSANDBOXED.values())
    unsandboxed = by.get(UNSANDBOXED)
    own = sum(CPU.get(k, 0.0) for k in ("provider", "consumer"))
    off_own = sum(CPU_UNSANDBOXED.get(k, 0.0) for k in ("provider", "consumer"))
    if unsandboxed is not None and off_total:
        out.append(
            "- The sandbox: the right-hand CPU column and the last negotiation row are the same "
            "20-way run with `workers.workflow_sandbox=false` in both connectors "
            f"({unsandboxed.rate or 0:.1f}/s; {off_total * 1000:.0f} ms instead of "
            f"{cpu_total * 1000:.0f} ms of CPU per negotiation in all, {off_own * 1000:.0f} ms "
            f"instead of {own * 1000:.0f} ms in the two connectors' processes, "
            f"{1 - off_own / own if own else 0:.0%} less). The Temporal SDK's sandbox "
            "re-imports the workflow's module for every workflow run and runs the workflow's "
            "code with its restrictions applied; the SDK's per-payload `exec` of the context "
            "lookup is skipped by our runner (decision 0030). The sandbox stays on by default, "
            "as STYLE.md asks; an operator may trade it for throughput."
        )
    if EXTRA.get("burst_statuses"):
        out.append(f"- Burst answers by status: {EXTRA['burst_statuses']}.")
    return [*out, ""]


def burst_bound(count: int) -> float:
    """Lower bound (ms) on the p95 of `count` answers requested at once from one event loop:
    the ceil(0.95 count)-th answer needs that many requests' event-loop CPU spent first."""
    return math.ceil(0.95 * count) * BURST_CPU.get(EVENT_LOOP, 0.0) * 1000


def burst_cpu(args: argparse.Namespace) -> list[str]:
    if not BURST_CPU:
        return []
    loop = BURST_CPU[EVENT_LOOP] * 1000
    nth = math.ceil(0.95 * args.burst)
    need = 100 / nth
    groups = {k: v for k, v in BURST_CPU.items() if not k.startswith("provider control plane")}
    return [
        f"CPU time per 201 answer during the {args.burst}-request burst (first request sent -> "
        "last answer received):",
        "",
        "| process | CPU ms per 201 |",
        "|---|---:|",
        *[
            f"| {name} | {sec * 1000:.1f} |"
            for name, sec in sorted(groups.items(), key=lambda kv: -kv[1])
        ],
        f"| {EVENT_LOOP} | {loop:.1f} |",
        f"| provider control plane, whole process (its threads, not its worker) | "
        f"{BURST_CPU['provider control plane, whole process'] * 1000:.1f} |",
        "",
        "A lower bound from this table: the provider's control plane parses, authenticates, "
        "validates and answers every request on one event loop thread, which runs one thing "
        f"at a time. Its CPU per 201 was {loop:.1f} ms, so the {nth}th of {args.burst} answers "
        f"(the p95) cannot leave before {nth} x {loop:.1f} ms = {burst_bound(args.burst):.0f} ms "
        "after the burst starts, however fast the client, Postgres or Temporal are. A p95 "
        f"under 100 ms needs at most {need:.2f} ms of event-loop CPU per 201 (or "
        f"{2 * need:.2f} ms with two control-plane processes, each with a whole core, on this "
        "2-core machine that also runs Postgres, Temporal and the load generator).",
        "",
    ]


def render(rows: list[Row], args: argparse.Namespace, seconds: float) -> str:
    def ms(v: float) -> str:
        return f"{v:,.0f}" if v >= 10 else f"{v:.1f}"

    table = [
        "| measurement | concurrency | count | rate (/s) | p50 (ms) | p95 (ms) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rate = f"{r.rate:,.1f}" if r.rate is not None else ""
        table.append(
            f"| {r.label} | {r.concurrency} | {r.count} | {rate} | {ms(r.p(0.5))} | "
            f"{ms(r.p(0.95))} | {r.errors} |"
        )
    by = {r.label: r for r in rows}
    neg = by["negotiation, management POST -> FINALIZED (consumer)"]
    bare = by["bare Temporal, 1 activity (WAL pragmas)"]
    raw = next(r for r in rows if r.label.endswith("raw initial requests (client)"))
    raw_in = next(r for r in rows if r.label.endswith("raw initial requests (in app)"))
    floor = next(r for r in rows if r.label.startswith("floor:"))
    single = by["negotiation, one at a time, POST -> FINALIZED"]
    share = (neg.rate or 0) / (bare.rate or 1)
    command = "python -m tests.bench.negotiation_bench" + (" --quick" if args.quick else "")
    cpu_total = sum(CPU.values())
    off_total = sum(CPU_UNSANDBOXED.values())

    def off(name: str) -> str:
        return f"{CPU_UNSANDBOXED[name] * 1000:.0f}" if name in CPU_UNSANDBOXED else "-"

    cpu_rows = [
        "| process | CPU ms per negotiation | same, workers without the sandbox |",
        "|---|---:|---:|",
        *[
            f"| {name} | {sec * 1000:.0f} | {off(name)} |"
            for name, sec in sorted(CPU.items(), key=lambda kv: -kv[1])
        ],
        f"| **all** | **{cpu_total * 1000:.0f}** | **{off_total * 1000:.0f}** |",
    ]
    unsandboxed = by.get(UNSANDBOXED)
    off_share = (unsandboxed.rate or 0) / (bare.rate or 1) if unsandboxed else 0.0
    lines = [
        f"## {SECTION}",
        "",
        f"Run {now()} on {machine()}; {seconds:.0f} s in all. Command: `{command}` "
        f"(total {args.total}, concurrency {args.concurrency}, burst {args.burst}).",
        "",
        "Method: embedded Postgres and Redis and one Temporal dev server started as `connector "
        "up` starts it (SQLite with `journal_mode=WAL`, `synchronous=NORMAL`), shared by both "
        "connectors (own database and namespace each). Each connector of the two-connector "
        "harness (tests/twoconn.py: control plane under uvicorn, did:web identity with signed "
        "tokens, the open policy) runs in its own process on uvloop, its workers in a second "
        "process (`connector worker`, as `connector up` and the Helm chart run them; their CPU "
        "is counted with the connector's); the load generator and the bare Temporal worker "
        "run in the benchmark process. Everything shares the 2 cores. Negotiation latency = "
        "the consumer projection's FINALIZED `updated_at` (the workflow's clock) minus the "
        "wall time the management POST was sent (same machine clock), so polling does not add "
        "to it; "
        f"{args.concurrency} negotiations are kept in flight (a slot frees when the projection "
        f"shows FINALIZED, polled every {POLL * 1000:.0f} ms); throughput = count / (last "
        "FINALIZED - first POST). Bare Temporal = start + complete of an empty workflow with one "
        "no-op activity or one local activity (tests/bench/bare.py), "
        "same concurrency, on the same server, a Worker on a fresh task queue. The burst sends "
        f"{args.burst} initial ContractRequestMessages at once straight to the provider's DSP "
        "endpoint, each signed as the consumer (its key ring), callbacks to a sink answering "
        "200; latency at the client and inside the provider's ASGI app (request in -> "
        "response start). The no-pragma rows use a second dev server without the SQLite "
        "pragmas. The per-caller DSP rate limit is off in both connectors (it would answer 429 "
        "to part of this load). Each measured phase follows a warm-up.",
        "",
        *table,
        "",
        f"CPU time (user + system, /proc) per negotiation during the {args.concurrency}-way run, "
        "both sides of the negotiation included (Postgres with its backends); the machine's "
        f"load average was {EXTRA.get('load', '?')} before and {EXTRA.get('load_after', '?')} "
        "after it (other jobs shared the machine):",
        "",
        *cpu_rows,
        "",
        f"With {cpu_total * 1000:.0f} ms of CPU per negotiation, 2 cores cap the rate at about "
        f"{2 / cpu_total if cpu_total else 0:.1f}/s even with no waiting at all.",
        "",
        *burst_cpu(args),
        *notes(rows, args, cpu_total),
        "Targets:",
        "",
        f"- e2e p50 < 300 ms, a negotiation on its own: "
        f"**{'met' if single.p(0.5) < 300 else 'MISSED'}** ({single.p(0.5):.0f} ms; "
        f"p95 {single.p(0.95):.0f} ms)",
        f"- e2e p50 < 300 ms with {args.concurrency} in flight: "
        f"**{'met' if neg.p(0.5) < 300 else 'MISSED'}** ({neg.p(0.5):.0f} ms; "
        f"p95 {neg.p(0.95):.0f} ms; queueing, see the notes)",
        f"- provider 201 p95 < 100 ms at {args.burst} concurrent initial requests: "
        f"**{'met' if raw.p(0.95) < 100 else 'MISSED'}** ({raw.p(0.95):.0f} ms at the client, "
        f"{raw_in.p(0.95):.0f} ms inside the app; the same burst against a route doing no "
        f"work takes p95 {floor.p(0.95):.0f} ms; the event loop's CPU alone bounds the p95 at "
        f">= {burst_bound(args.burst):.0f} ms)",
        f"- negotiation throughput >= 30 % of the bare Temporal rate: "
        f"**{'met' if share >= 0.3 else 'MISSED'}** ({neg.rate or 0:.1f}/s vs "
        f"{bare.rate or 0:.1f}/s = {share:.0%}; with the workers' sandbox off "
        f"{unsandboxed.rate if unsandboxed and unsandboxed.rate else 0:.1f}/s = "
        f"{off_share:.0%})",
        "",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    root = Path(tempfile.mkdtemp(prefix="negotiation-bench-"))
    started = time.monotonic()
    rows: list[Row] = []
    try:
        pg_port, redis_port = embedded.free_port(), embedded.free_port()
        async with (
            services.running(embedded.postgres_spec(root, pg_port)) as pg_child,
            services.running(embedded.redis_spec(root, redis_port)) as redis_child,
        ):
            pg = embedded.postgres_url(pg_port)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            PIDS.update(postgres=pg_child.pid or 0, redis=redis_child.pid or 0)
            async with temporal_server(root / "wal", pragmas=True) as address:
                rows += await bare_rates(address, args.concurrency, args.total, "WAL pragmas")
                async with (
                    pair(root, pg, redis_url, address) as (provider, consumer),
                    httpx.AsyncClient(timeout=30) as client,
                ):
                    offer = await prepare_offer(client, provider, consumer)
                    neg_rows, _ = await negotiations(
                        provider, consumer, offer, args.concurrency, args.total
                    )
                    rows += neg_rows
                    rows += await burst(provider, consumer, offer, args.burst)
                rows.append(await unsandboxed(root, pg, redis_url, address, args))
            async with temporal_server(root / "nowal", pragmas=False) as address:
                rows += await bare_rates(address, args.concurrency, args.total, "no pragmas")
    except BaseException:
        for name in ("provider", "consumer"):
            log = root / f"{name}.log"
            if log.exists():
                print(f"--- {name} log (tail)\n{log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        # The connectors' logs outlive the run (var/ is git-ignored): errors can be read after.
        kept = Path("var") / "bench-logs"
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("provider", "consumer"):
            if (root / f"{name}.log").exists():
                shutil.copy(root / f"{name}.log", kept / f"negotiation-{name}.log")
        shutil.rmtree(root, ignore_errors=True)
    return render(rows, args, time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total", type=int, default=200, help="negotiations / workflows per row")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--burst", type=int, default=200, help="concurrent raw initial requests")
    parser.add_argument("--quick", action="store_true", help="total 60")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--layouts",
        action="store_true",
        help=f"only the negotiation run per layout and lever ('## {LAYOUT_SECTION}')",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant (--layouts)")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["separate", "one-process-no-eager", "one-process"],
        choices=sorted(VARIANTS),
        help="variants (--layouts)",
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(args.serve)
        return
    if args.layouts:
        text = asyncio.run(run_layouts(args))
        print(text)
        if not args.no_write:
            write_section(LAYOUT_SECTION, text)
        return
    if args.quick:
        args.total = min(args.total, 60)
    text = asyncio.run(run(args))
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
