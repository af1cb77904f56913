"""The chaos driver: two `connector up` stacks, one process killed with SIGKILL at a random moment
while N negotiations and pull transfers run, then everything that must hold is checked
(issue 14, points 5 and 6).

Shared by the campaign (`python -m tests.chaos`, `make chaos`) and its small version in
`make test` (tests/chaos/test_chaos.py). Nothing is mocked: each side is `connector up
--separate-roles` (one process per role, so each can be killed alone) in its own data dir with
its own embedded Postgres, Redis and Temporal dev server; the driver talks to the management
APIs only as a client would, sends an `Idempotency-Key` with every creating POST and retries it
(same key) after a 5xx or a dropped connection.

A round (`Campaign.run_round`):
1. publishes a fresh asset (a random file) on the provider, so the round's processes are found
   by asset id and by creation time;
2. runs N pipelines concurrently: POST /negotiations -> FINALIZED -> POST /transfers (pull) ->
   STARTED -> GET .../edr -> pull the file (sha256) -> COMPLETED;
3. SIGKILLs the chosen process of the chosen side (its pid from the supervisor's pid file) at a
   seeded random moment (when the round's progress reaches a random share, `KILL_WINDOW`) and
   measures how long until the supervisor's restart answers its readiness probe and until every
   process of both sides does;
4. checks: every negotiation FINALIZED on both sides with one agreement id; every transfer
   COMPLETED on both sides with the pulled file's sha256 equal to the source's; exactly N
   negotiations and N transfers per side (list routes); the projection's state equal to the
   `DspNegotiationState` / `DspTransferState` search attribute in Temporal visibility; no 5xx
   answered by a creating POST that did create the resource; no process lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import redis.asyncio as aioredis
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from connector.core import search_attributes
from connector.runtime.embedded import free_ports
from connector.settings import load_settings
from tests.e2e.transfer_helpers import MIB, Sink, write_file
from tests.edge import Edge, pid_alive, processes_mentioning

__all__ = [
    "GIB",
    "KINDS",
    "MIB",
    "SIDES",
    "Campaign",
    "Config",
    "Failure",
    "Kill",
    "PushResult",
    "RoundResult",
]

KINDS: Final = ("control-plane", "data-plane", "worker", "postgres", "redis", "temporal")
SIDES: Final = ("provider", "consumer")
# The name each kind has in the supervisor's pid file (`_write_pids` in
# connector/runtime/runner.py).
PID_NAME: Final = {
    "control-plane": "control-plane",
    "data-plane": "data-plane",
    "worker": "worker-1",
    "postgres": "postgres",
    "redis": "redis",
    "temporal": "temporal",
}
GIB: Final = 1024 * MIB
OPEN_POLICY: Final = {"@id": "chaos-open", "@type": "Set", "permission": [{"action": "use"}]}
NEGOTIATION_STATE = SearchAttributeKey.for_keyword(search_attributes.NEGOTIATION_STATE)
TRANSFER_STATE = SearchAttributeKey.for_keyword(search_attributes.TRANSFER_STATE)
# A pipeline's phases in order; any other phase means it ended.
PHASES: Final = (
    "created",
    "negotiation-post",
    "negotiating",
    "transfer-post",
    "transfer-starting",
    "pulling",
    "completing",
)
ENDED: Final = frozenset({"done", "failed", "negotiation-terminated", "transfer-ended-early"})
# The kill comes when the round's progress (the pipelines' mean phase, 0..1) first reaches a
# seeded random share from this window: always while pipelines are in flight, whatever the
# machine's speed. The data plane only works once transfers start.
KILL_WINDOW: Final = {"data-plane": (0.45, 0.85)}
DEFAULT_KILL_WINDOW: Final = (0.05, 0.8)
POLL_SECONDS: Final = 0.3
RETRY_SECONDS: Final = 0.5
# Server-side createdAt against the driver's send/receive times (same host clock).
CLOCK_SLACK: Final = 0.05


@dataclass(frozen=True)
class Config:
    n: int = 50
    rounds: int = 3
    kinds: tuple[str, ...] = KINDS
    sides: tuple[str, ...] = SIDES
    seed: int = 0
    pull_bytes: int = MIB
    push_bytes: int = GIB  # 0: no push round
    round_timeout: float = 240.0  # every pipeline of a round ends within this
    settle_timeout: float = 120.0  # a killed process is back and ready within this


# --- records --------------------------------------------------------------------------------


@dataclass
class Call:
    """One request the driver made to a management API (or a data plane) and what came back."""

    side: str
    method: str
    route: str
    sent: float  # wall clock (time.time())
    received: float
    status: int | None  # None: no answer (connection refused, reset, timeout)
    error: str | None = None
    key: str | None = None  # Idempotency-Key


@dataclass
class Failure:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.detail}"


@dataclass
class Pipeline:
    index: int
    negotiation_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    transfer_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    phase: str = "created"
    negotiation_id: str | None = None
    negotiation_attempts: list[Call] = field(default_factory=list)
    agreement_id: str | None = None
    transfer_id: str | None = None
    transfer_attempts: list[Call] = field(default_factory=list)
    pulled: tuple[int, str] | None = None  # (bytes, sha256)
    pull_tries: int = 0
    error: str | None = None


@dataclass
class Kill:
    side: str
    kind: str
    pid: int
    at: float  # seconds after the round's first request
    in_flight: dict[str, int]  # pipeline phase -> count, at the moment of the kill
    recovery: float | None = None  # kill -> the restarted process answers its readiness probe
    settled: float | None = None  # kill -> every process of both sides ready
    new_pid: int | None = None
    collateral: list[str] = field(default_factory=list)  # other processes that restarted


@dataclass
class RoundResult:
    label: str
    kind: str | None
    side: str | None
    seed: int
    n: int
    duration: float = 0.0  # first request -> every pipeline ended
    checked: float = 0.0  # first request -> checks done
    kill: Kill | None = None
    lost: list[str] = field(default_factory=list)
    negotiations: dict[str, Counter[str]] = field(default_factory=dict)  # side -> state counts
    transfers: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    responses: Counter[str] = field(default_factory=Counter)  # "side METHOD route status"
    logs: list[str] = field(default_factory=list)
    load: float = 0.0  # the machine's 1-minute load average when the round ended

    @property
    def ok(self) -> bool:
        return not self.failures and not self.lost

    def summary(self) -> str:
        parts = [f"{self.label}: seed {self.seed}, N={self.n}"]
        if self.kill is not None:
            k = self.kill
            parts.append(
                f"kill -9 {k.side} {k.kind} (pid {k.pid}) at {k.at:.2f}s "
                f"[in flight: {_phases(k.in_flight)}], restarted+ready "
                f"{_secs(k.recovery)}, all settled {_secs(k.settled)}"
                + (f", also restarted: {', '.join(k.collateral)}" if k.collateral else "")
            )
        parts.append(f"pipelines {self.duration:.1f}s, checked {self.checked:.1f}s")
        for side, states in self.negotiations.items():
            parts.append(f"{side} negotiations {dict(states)}")
        for side, states in self.transfers.items():
            parts.append(f"{side} transfers {dict(states)}")
        fivexx = {k: v for k, v in self.responses.items() if k.rsplit(" ", 1)[-1].startswith("5")}
        if fivexx:
            parts.append(f"5xx answers {dict(fivexx)}")
        dropped = {k: v for k, v in self.responses.items() if k.endswith(" none")}
        if dropped:
            parts.append(f"no answer {dict(dropped)}")
        parts.append(f"lost {len(self.lost)}" + (f" {self.lost}" if self.lost else ""))
        parts.append("OK" if self.ok else f"{len(self.failures)} FAILURES")
        return "; ".join(parts)

    def failure_classes(self) -> Counter[str]:
        """The failures with ids, ports and timelines left out: what went wrong, how often."""
        return Counter(classify(f) for f in self.failures)

    def describe(self) -> str:
        lines = [self.summary(), *(f"  {f}" for f in self.failures)]
        if self.logs and not self.ok:
            lines.append("  logs: " + ", ".join(self.logs))
        return "\n".join(lines)


def progress(pipelines: list[Pipeline]) -> float:
    """0 before any request, 1 when every pipeline ended."""
    steps = len(PHASES)
    done = sum(PHASES.index(p.phase) if p.phase in PHASES else steps for p in pipelines)
    return done / (steps * len(pipelines)) if pipelines else 1.0


_IDS = re.compile(r"urn:uuid:[0-9a-f-]{36}")
_PORTS = re.compile(r"(localhost|127\.0\.0\.1):\d+")
_COUNTS = re.compile(r"\b\d+ (negotiations|transfers)\b")


def classify(failure: Failure) -> str:
    """`[check] message` with ids, ports and timelines replaced, to count alike failures."""
    text = _PORTS.sub(r"\1:<port>", _IDS.sub("<id>", failure.detail))
    text = _COUNTS.sub(r"<n> \1", text)
    parts = [p.split("; timeline:")[0] for p in text.split(" | ")]
    return f"[{failure.check}] " + " | ".join(parts)


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


def _phases(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"


def _route(path: str) -> str:
    """/negotiations/urn:uuid:... -> /negotiations/{id} (to count answers per route)."""
    return "/".join("{id}" if ":" in part or len(part) > 30 else part for part in path.split("/"))


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat().replace("+00:00", "Z")


# --- one connector ----------------------------------------------------------------------------


class Side:
    """One `connector up --separate-roles` (supervisor, embedded services, control plane, data
    plane, worker)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.edge = Edge.allocate(root / "data")
        # The campaign kills one role process at a time: `connector up --separate-roles` runs
        # them as processes (the default layout runs them all in one, decision 0016).
        self.edge.separate_roles = True
        self.files = root / "files"
        self.calls: list[Call] = []
        self.api_key = ""
        self.namespace = "connector"
        self._http: httpx.AsyncClient | None = None
        self._probe_http: httpx.AsyncClient | None = None
        self._temporal: Client | None = None
        self._extra: dict[str, str] = {}

    @property
    def did(self) -> str:
        return f"did:web:localhost%3A{self.edge.ports['server']}"

    @property
    def dsp(self) -> str:
        return f"http://localhost:{self.edge.ports['server']}/dsp/2025-1"

    def env(self, peer: Side) -> dict[str, str]:
        """What an operator sets so the two connectors trust each other on this machine."""
        return {
            "CONNECTOR_IDENTITY__TRUST__ALLOWED_DIDS": json.dumps([peer.did]),
            # Both connectors live on loopback, over plain http (the SSRF guard refuses both
            # by default).
            "CONNECTOR_OUTBOUND__ALLOW_CIDRS": json.dumps(["127.0.0.0/8", "::1/128"]),
            "CONNECTOR_OUTBOUND__ALLOW_HTTP": "true",
            "CONNECTOR_DATAPLANE__FILE_BASE_PATH": str(self.files),
        }

    def start(self, peer: Side) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        self.edge.data_dir.mkdir(parents=True, exist_ok=True)
        extra = self.env(peer)
        self.namespace = load_settings(env=self.edge.env(**extra)).temporal.namespace
        self._extra = extra
        self.edge.start(**extra)

    def _start_on_other_ports(self) -> None:
        """Start again with new ports for everything but the two listeners the peer knows: one
        picked for this stack was taken before it was bound (the other stack's Temporal dev
        server picks its HTTP API and metrics ports at random)."""
        kept = ("server", "dataplane")
        moved = [name for name in self.edge.ports if name not in kept]
        self.edge.ports.update(zip(moved, free_ports(len(moved)), strict=True))
        self.edge.start(**self._extra)

    async def ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        retried = False
        while "connector is up" not in self.edge.log():
            if self.edge.process is not None and self.edge.process.poll() is not None:
                if not retried and "address already in use" in self.edge.log():
                    retried = True
                    self._start_on_other_ports()
                    continue
                raise RuntimeError(f"{self.name}: connector up exited:\n{self.edge.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: connector up not ready in {timeout}s")
            await asyncio.sleep(0.1)
        self.api_key = (self.edge.data_dir / "management-api-key").read_text().strip()
        self._http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.edge.ports['server']}/management/v1",
            headers={"X-Api-Key": self.api_key},
            timeout=httpx.Timeout(30.0, connect=3.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._probe_http = httpx.AsyncClient(timeout=2.0)

    async def close(self) -> None:
        for client in (self._http, self._probe_http):
            if client is not None:
                await client.aclose()

    def stop(self) -> list[str]:
        """SIGINT the supervisor; the processes still alive afterwards (must be none)."""
        self.edge.stop(signal.SIGINT)
        return processes_mentioning(str(self.edge.data_dir))

    def pids(self) -> dict[str, int]:
        for _ in range(50):  # the supervisor rewrites the file; a read may see it half-written
            with contextlib.suppress(OSError, ValueError):
                pids: dict[str, int] = self.edge.pids()
                return pids
            time.sleep(0.01)
        return {}

    def supervisor_alive(self) -> bool:
        return self.edge.process is not None and self.edge.process.poll() is None

    # --- management API, every answer recorded ---

    async def api(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        key: str | None = None,
        attempts: list[Call] | None = None,
    ) -> httpx.Response | None:
        """The answer, or None when none came (refused, reset, timed out)."""
        if self._http is None:
            raise RuntimeError("side not started")
        headers = {"Idempotency-Key": key} if key else None
        sent = time.time()
        try:
            resp = await self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.HTTPError as exc:
            call = Call(self.name, method, _route(path), sent, time.time(), None, repr(exc), key)
            self.calls.append(call)
            if attempts is not None:
                attempts.append(call)
            return None
        call = Call(self.name, method, _route(path), sent, time.time(), resp.status_code, None, key)
        self.calls.append(call)
        if attempts is not None:
            attempts.append(call)
        return resp

    async def api_json(
        self, method: str, path: str, deadline: float, **kwargs: Any
    ) -> dict[str, Any]:
        """Retry until a 2xx: a dropped connection, a 5xx, or a 4xx that says when to retry
        (`Retry-After`: 429, or 409 while a request with the same Idempotency-Key still runs)
        is retried; any other 4xx is an error."""
        last = "no attempt"
        while time.monotonic() < deadline:
            resp = await self.api(method, path, **kwargs)
            pause = RETRY_SECONDS
            if resp is not None:
                if resp.status_code < 300:
                    data: dict[str, Any] = resp.json()
                    return data
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    pause = min(float(retry_after), 10.0)
                elif 400 <= resp.status_code < 500:
                    raise PipelineError(f"{method} {path} answered {resp.status_code}: {resp.text}")
            last = "no answer" if resp is None else f"{resp.status_code} {resp.text[:200]}"
            await asyncio.sleep(pause)
        raise PipelineError(f"{method} {path}: no 2xx before the deadline (last: {last})")

    async def list_items(
        self, path: str, deadline: float, *, since: float | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        """Every item of a list route (newest first), or those created since `since`."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = await self.api_json("GET", path, deadline, params=query)
            for item in page["items"]:
                if since is not None and _wall(item["createdAt"]) < since:
                    return items
                items.append(item)
            cursor = page.get("nextCursor")
            if not cursor:
                return items

    # --- readiness of each process kind ---

    async def probe(self, kind: str) -> bool:
        ports = self.edge.ports
        try:
            if kind in ("control-plane", "data-plane", "worker"):
                port = ports[{"control-plane": "server", "data-plane": "dataplane"}.get(kind, kind)]
                assert self._probe_http is not None
                resp = await self._probe_http.get(f"http://127.0.0.1:{port}/ready")
                return resp.status_code == 200
            if kind == "postgres":
                conn = await asyncpg.connect(
                    host="127.0.0.1",
                    port=ports["postgres"],
                    user="postgres",
                    database="connector",
                    timeout=2.0,
                )
                try:
                    return bool(await conn.fetchval("SELECT 1"))
                finally:
                    await conn.close()
            if kind == "redis":
                client = aioredis.Redis(
                    host="127.0.0.1",
                    port=ports["redis"],
                    socket_timeout=2.0,
                    socket_connect_timeout=2.0,
                )
                try:
                    return bool(await client.ping())
                finally:
                    await client.aclose()
            if kind == "temporal":
                temporal = await asyncio.wait_for(
                    Client.connect(f"127.0.0.1:{ports['temporal']}", namespace=self.namespace),
                    timeout=3.0,
                )
                await temporal.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace),
                    timeout=timedelta(seconds=2),
                )
                return True
        except (OSError, TimeoutError, httpx.HTTPError, asyncpg.PostgresError, aioredis.RedisError):
            return False
        except (RuntimeError, RPCError):  # the Temporal client's connection errors
            return False
        raise ValueError(f"unknown process kind {kind!r}")

    async def unready(self) -> list[str]:
        """The kinds not answering their readiness probe, plus `health` when /health is not 200."""
        found = [k for k in KINDS if not await self.probe(k)]
        try:
            assert self._probe_http is not None
            health = await self._probe_http.get(
                f"http://127.0.0.1:{self.edge.ports['server']}/health"
            )
            if health.status_code != 200:
                found.append("health")
        except httpx.HTTPError:
            found.append("health")
        return found

    async def temporal(self) -> Client:
        if self._temporal is None:
            self._temporal = await Client.connect(
                f"127.0.0.1:{self.edge.ports['temporal']}", namespace=self.namespace
            )
        return self._temporal

    async def workflow_note(self, workflow_id: str, key: SearchAttributeKey[str]) -> str:
        """`; workflow RUNNING, <key>=X (describe), N events` or why it could not be read."""
        try:
            client = await self.temporal()
            described = await client.get_workflow_handle(workflow_id).describe()
        except (RuntimeError, RPCError) as exc:
            return f"; describe failed: {exc}"
        status = described.status.name if described.status else "?"
        return (
            f"; workflow {status}, {key.name}={described.typed_search_attributes.get(key)} "
            f"(describe), {described.history_length} history events"
        )

    async def visibility(self, query: str, key: SearchAttributeKey[str]) -> dict[str, str | None]:
        """workflow id -> state search attribute, from Temporal visibility (a list, not a
        describe of each workflow)."""
        for attempt in range(3):
            try:
                client = await self.temporal()
                found: dict[str, str | None] = {}
                async for execution in client.list_workflows(query):
                    found[execution.id] = execution.typed_search_attributes.get(key)
                return found
            except (RuntimeError, RPCError):
                self._temporal = None  # reconnect after a Temporal restart
                if attempt == 2:
                    raise
                await asyncio.sleep(1.0)
        return {}


class PipelineError(Exception):
    """A pipeline could not go on; the message says where and why."""


# --- the round's view of the consumer's processes ----------------------------------------------


class Watcher:
    """Polls the consumer's list routes for the round's processes (one request for all of them,
    instead of N pollers) and wakes the pipelines waiting for a state."""

    def __init__(self, side: Side, asset_id: str, since: float, deadline: float) -> None:
        self.side = side
        self.asset_id = asset_id
        self.since = since
        self.deadline = deadline
        self.negotiations: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Condition()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(PipelineError):
                for item in await self.side.list_items(
                    "/negotiations", self.deadline, assetId=self.asset_id
                ):
                    self.negotiations[item["id"]] = item
                for item in await self.side.list_items(
                    "/transfers", self.deadline, since=self.since - 1, role="consumer"
                ):
                    self.transfers[item["id"]] = item
            async with self._changed:
                self._changed.notify_all()
            await asyncio.sleep(POLL_SECONDS)

    async def wait(self, kind: str, pid: str, states: set[str], deadline: float) -> dict[str, Any]:
        table = self.negotiations if kind == "negotiations" else self.transfers

        def reached() -> bool:
            return table.get(pid, {}).get("state") in states

        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(reached), max(0.0, deadline - time.monotonic())
                )
        except TimeoutError:
            state = table.get(pid, {}).get("state", "not listed")
            raise PipelineError(f"{kind} {pid} still {state}, never reached {states}") from None
        return table[pid]


# --- the campaign --------------------------------------------------------------------------------


@dataclass
class RoundAsset:
    asset_id: str
    sha256: str
    size: int
    offer: dict[str, Any]


class Campaign:
    """Two connectors (`provider`, `consumer`), each `connector up` in its own data dir."""

    def __init__(self, config: Config, root: Path, say: Callable[[str], None] = print) -> None:
        self.config = config
        self.root = root
        self.say = say
        self.provider = Side("provider", root / "provider")
        self.consumer = Side("consumer", root / "consumer")
        self.sides = {"provider": self.provider, "consumer": self.consumer}
        self.results: list[RoundResult] = []
        self.push: PushResult | None = None
        self._rounds = 0
        self._seed_rng = random.Random(config.seed)  # noqa: S311 (seeded: a run can be repeated)

    async def __aenter__(self) -> Campaign:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        started = time.monotonic()
        self.provider.start(self.consumer)
        self.consumer.start(self.provider)
        await asyncio.gather(self.provider.ready(), self.consumer.ready())
        deadline = time.monotonic() + 60
        policy = {"id": OPEN_POLICY["@id"], "policy": OPEN_POLICY}
        resp = await self.provider.api("POST", "/policies", body=policy)
        if resp is None or resp.status_code not in (201, 409):
            raise RuntimeError(f"cannot create the policy: {resp and resp.text}")
        await self._settled(deadline)
        self.say(
            f"two connectors up in {time.monotonic() - started:.1f}s "
            f"(provider {self.provider.did}, consumer {self.consumer.did}, under {self.root})"
        )

    async def stop(self) -> None:
        for side in self.sides.values():
            await side.close()
        leftovers = [p for side in self.sides.values() for p in side.stop()]
        if leftovers:
            raise RuntimeError(f"processes outlived their supervisor: {leftovers}")

    def logs(self) -> list[str]:
        return [str(s.edge.log_path) for s in self.sides.values() if s.edge.log_path]

    async def _settled(self, deadline: float) -> list[str]:
        """Wait until every process of both sides is ready; what is still not, at the deadline."""
        while True:
            missing = [
                f"{name} {kind}"
                for name, side in self.sides.items()
                for kind in await side.unready()
            ]
            if not missing or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(0.1)

    # --- assets ---

    async def publish(self, label: str, size: int, formats: list[str]) -> RoundAsset:
        """A fresh asset with its own file and offer, and the offer as the consumer's catalog
        shows it."""
        asset_id = f"chaos-{label}"
        path = self.provider.files / f"{asset_id}.bin"
        if size >= 64 * MIB:
            sha = await asyncio.to_thread(write_file, path, size, asset_id.encode())
        else:
            data = os.urandom(size)
            path.write_bytes(data)
            sha = hashlib.sha256(data).hexdigest()
        deadline = time.monotonic() + 60
        await self.provider.api_json(
            "POST",
            "/assets",
            deadline,
            body={
                "id": asset_id,
                "properties": {"name": f"Chaos {label}"},
                "dataAddress": {"type": "file", "path": path.name},
                "distributions": formats,
            },
        )
        await self.provider.api_json(
            "POST",
            "/offers",
            deadline,
            body={
                "id": f"offer-{asset_id}",
                "assetSelector": [asset_id],
                "accessPolicyId": OPEN_POLICY["@id"],
                "contractPolicyId": OPEN_POLICY["@id"],
            },
        )
        catalog = await self.consumer.api_json(
            "POST",
            "/catalog/request",
            deadline,
            body={
                "counterPartyAddress": self.provider.dsp,
                "counterPartyId": self.provider.did,
                "filter": [{"operandLeft": "id", "operator": "in", "operandRight": [asset_id]}],
            },
        )
        datasets = catalog.get("dataset", [])
        for dataset in datasets if isinstance(datasets, list) else [datasets]:
            if dataset.get("@id") == asset_id:
                offers = dataset["hasPolicy"]
                offer = dict(offers[0] if isinstance(offers, list) else offers)
                offer["target"] = asset_id
                return RoundAsset(asset_id, sha, size, offer)
        raise RuntimeError(f"{asset_id} is not in the provider's catalog: {catalog}")

    # --- rounds ---

    def _next_seed(self) -> int:
        return self._seed_rng.randrange(2**32)

    async def baseline(self) -> RoundResult:
        """A round without a kill (the control): it must pass."""
        done = [r for r in self.results if r.kind is None]
        return done[0] if done else await self._round(None, None, "baseline")

    async def run_round(self, kind: str, side: str, index: int = 0) -> RoundResult:
        if kind not in KINDS or side not in SIDES:
            raise ValueError(f"unknown kind/side {kind}/{side}")
        return await self._round(kind, side, f"r{index + 1}-{side}-{kind}")

    async def _round(self, kind: str | None, side_name: str | None, name: str) -> RoundResult:
        cfg = self.config
        self._rounds += 1
        label = f"{self._rounds:03d}-{name}"
        seed = self._next_seed()
        rng = random.Random(seed)  # noqa: S311
        result = RoundResult(label, kind, side_name, seed, cfg.n, logs=self.logs())
        missing = await self._settled(time.monotonic() + cfg.settle_timeout)
        if missing:
            result.failures.append(Failure("not-settled", f"before the round: {missing}"))
            self.results.append(result)
            return result
        asset = await self.publish(label, cfg.pull_bytes, ["HttpData-PULL"])
        calls_before = {s: len(side.calls) for s, side in self.sides.items()}
        t0 = time.monotonic()
        wall0 = time.time()
        deadline = t0 + cfg.round_timeout
        pipelines = [Pipeline(i) for i in range(cfg.n)]
        watcher = Watcher(self.consumer, asset.asset_id, wall0, deadline)
        watching = asyncio.create_task(watcher.run())
        killing: asyncio.Task[Kill] | None = None
        if kind is not None and side_name is not None:
            share = rng.uniform(*KILL_WINDOW.get(kind, DEFAULT_KILL_WINDOW))
            self.say(f"{label}: seed {seed}, kill -9 {side_name} {kind} at {share:.0%} progress")
            killing = asyncio.create_task(
                self._kill_at(self.sides[side_name], kind, share, t0, pipelines)
            )
        try:
            await asyncio.gather(*(self._pipeline(p, asset, watcher, deadline) for p in pipelines))
            result.duration = time.monotonic() - t0
            if killing is not None:
                try:
                    result.kill = await killing
                except Exception as exc:  # a harness bug must show as such
                    result.failures.append(Failure("harness", f"the kill failed: {exc!r}"))
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            if killing is not None and not killing.done():
                killing.cancel()
        try:
            await self._check(result, pipelines, asset, wall0)
        except Exception as exc:  # a harness bug (or a dead API) must show as such
            result.failures.append(Failure("harness", f"the checks failed: {exc!r}"))
        for s, side in self.sides.items():
            for call in side.calls[calls_before[s] :]:
                status = "none" if call.status is None else str(call.status)
                result.responses[f"{s} {call.method} {call.route} {status}"] += 1
        result.checked = time.monotonic() - t0
        result.load = os.getloadavg()[0]
        self.results.append(result)
        self.say(result.describe())
        return result

    async def _kill_at(
        self, side: Side, kind: str, share: float, t0: float, pipelines: list[Pipeline]
    ) -> Kill:
        while progress(pipelines) < share:
            await asyncio.sleep(0.005)
        return await self._kill(side, kind, t0, pipelines)

    async def _kill(self, side: Side, kind: str, t0: float, pipelines: list[Pipeline]) -> Kill:
        """SIGKILL the process now; how long until it is back and everything settled."""
        name = PID_NAME[kind]
        before = side.pids()
        pid = before[name]
        in_flight = Counter(p.phase for p in pipelines)
        os.kill(pid, signal.SIGKILL)
        if not set(in_flight) - ENDED:
            self.say(f"{side.name} {kind} killed after every pipeline had ended")
        killed_at = time.monotonic()
        kill = Kill(side.name, kind, pid, killed_at - t0, dict(in_flight))
        deadline = killed_at + self.config.settle_timeout
        while time.monotonic() < deadline:
            now_pid = side.pids().get(name)
            if now_pid and now_pid != pid and pid_alive(now_pid) and await side.probe(kind):
                kill.recovery = time.monotonic() - killed_at
                kill.new_pid = now_pid
                break
            await asyncio.sleep(0.05)
        if kill.recovery is not None and not await self._settled(deadline):
            kill.settled = time.monotonic() - killed_at
        after = side.pids()
        kill.collateral = sorted(
            n for n, p in before.items() if n not in (name, "supervisor") and after.get(n) != p
        )
        return kill

    # --- one pipeline: negotiate, transfer, pull ---

    async def _pipeline(
        self, p: Pipeline, asset: RoundAsset, watcher: Watcher, deadline: float
    ) -> None:
        try:
            p.phase = "negotiation-post"
            created = await self._create(
                "/negotiations",
                {
                    "counterPartyAddress": self.provider.dsp,
                    "counterPartyId": self.provider.did,
                    "offer": asset.offer,
                },
                p.negotiation_key,
                p.negotiation_attempts,
                deadline,
            )
            p.negotiation_id = created["id"]
            p.phase = "negotiating"
            done = await watcher.wait(
                "negotiations", p.negotiation_id, {"FINALIZED", "TERMINATED"}, deadline
            )
            if done["state"] != "FINALIZED":
                p.phase = "negotiation-terminated"
                return
            p.agreement_id = done["agreementId"]
            p.phase = "transfer-post"
            created = await self._create(
                "/transfers",
                {
                    "counterPartyAddress": self.provider.dsp,
                    "counterPartyId": self.provider.did,
                    "agreementId": p.agreement_id,
                    "format": "HttpData-PULL",
                },
                p.transfer_key,
                p.transfer_attempts,
                deadline,
            )
            p.transfer_id = created["id"]
            p.phase = "transfer-starting"
            started = await watcher.wait(
                "transfers", p.transfer_id, {"STARTED", "COMPLETED", "TERMINATED"}, deadline
            )
            if started["state"] != "STARTED":
                p.phase = "transfer-ended-early"
                return
            p.phase = "pulling"
            await self._pull(p, asset, watcher, deadline)
            p.phase = "completing"
            await watcher.wait("transfers", p.transfer_id, {"COMPLETED", "TERMINATED"}, deadline)
            p.phase = "done"
        except PipelineError as exc:
            p.error = f"{p.phase}: {exc}"
            p.phase = "failed"
        except Exception as exc:  # a harness bug must show as such, not as a hang
            p.error = f"{p.phase}: unexpected {exc!r}"
            p.phase = "failed"

    async def _create(
        self, path: str, body: dict[str, Any], key: str, attempts: list[Call], deadline: float
    ) -> dict[str, Any]:
        """A creating POST, retried with the same Idempotency-Key after a 5xx or no answer."""
        return await self.consumer.api_json(
            "POST", path, deadline, body=body, key=key, attempts=attempts
        )

    async def _pull(
        self, p: Pipeline, asset: RoundAsset, watcher: Watcher, deadline: float
    ) -> None:
        assert p.transfer_id is not None
        last = ""
        while time.monotonic() < deadline:
            state = watcher.transfers.get(p.transfer_id, {}).get("state")
            if state == "TERMINATED":
                raise PipelineError("TERMINATED before the data was pulled")
            resp = await self.consumer.api("GET", f"/transfers/{p.transfer_id}/edr")
            if resp is None or resp.status_code >= 500 or resp.status_code == 409:
                last = "edr: " + ("no answer" if resp is None else f"{resp.status_code}")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if resp.status_code != 200:
                raise PipelineError(f"edr answered {resp.status_code}: {resp.text}")
            edr = resp.json()
            p.pull_tries += 1
            got = await self._stream(edr["endpoint"], edr["authorization"])
            if got[0] == 200 and got[1] == asset.size:
                p.pulled = (got[1], got[2])
                return
            last = f"pull: {got[0]} {got[1]} bytes{got[3]}"
            await asyncio.sleep(RETRY_SECONDS)
        raise PipelineError(f"never pulled the whole file ({p.pull_tries} tries, last {last})")

    async def _stream(self, endpoint: str, token: str) -> tuple[int | None, int, str, str]:
        """(status or None, bytes, sha256, error) of a GET of the data plane's endpoint."""
        digest = hashlib.sha256()
        size = 0
        sent = time.time()
        status: int | None = None
        error = ""
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=3.0)) as client,
                client.stream("GET", endpoint, headers={"Authorization": f"Bearer {token}"}) as r,
            ):
                status = r.status_code
                async for chunk in r.aiter_raw(MIB):
                    digest.update(chunk)
                    size += len(chunk)
        except httpx.HTTPError as exc:
            error = f" ({exc!r})"
        self.provider.calls.append(
            Call("provider-dataplane", "GET", "/public/{id}", sent, time.time(), status, error)
        )
        return status, size, digest.hexdigest(), error

    # --- checks ---

    async def _check(
        self,
        result: RoundResult,
        pipelines: list[Pipeline],
        asset: RoundAsset,
        wall0: float,
    ) -> None:
        # Each step gets its own time: one that waits on stuck processes must not leave the
        # next without any.
        def budget(seconds: float = 60.0) -> float:
            return time.monotonic() + seconds

        fail = result.failures.append
        for p in pipelines:
            if p.error:
                fail(Failure("pipeline", f"#{p.index}: {p.error}"))
        # The provider records FINALIZED/COMPLETED a moment after the consumer: wait for both
        # sides to settle (terminal states only) before comparing.
        views: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for name, side in self.sides.items():
            views[name] = await self._settled_views(side, asset.asset_id, wall0, budget(90))
            result.negotiations[name] = Counter(v["state"] for v in views[name]["negotiations"])
            result.transfers[name] = Counter(v["state"] for v in views[name]["transfers"])
        cons_n = {v["id"]: v for v in views["consumer"]["negotiations"]}
        prov_n = {v["id"]: v for v in views["provider"]["negotiations"]}
        agreements = {p.agreement_id for p in pipelines if p.agreement_id}
        cons_t = {
            v["id"]: v for v in views["consumer"]["transfers"] if v["agreementId"] in agreements
        }
        prov_t = {
            v["id"]: v for v in views["provider"]["transfers"] if v["agreementId"] in agreements
        }
        n = self.config.n

        # Exactly N of each on each side.
        for what, holder, table in (
            ("negotiations", "consumer", cons_n),
            ("negotiations", "provider", prov_n),
            ("transfers", "consumer", cons_t),
            ("transfers", "provider", prov_t),
        ):
            if len(table) != n:
                fail(Failure("count", f"{holder} has {len(table)} {what} for this round, not {n}"))
        for what, table, key in (
            ("negotiations", cons_n, "negotiation"),
            ("transfers", cons_t, "transfer"),
        ):
            await self._unclaimed(result, what, table, pipelines, key)
        per_agreement = Counter(v["agreementId"] for v in prov_t.values())
        for agreement, count in per_agreement.items():
            if count > 1:
                fail(Failure("duplicate", f"provider has {count} transfers for {agreement}"))

        # Every negotiation FINALIZED on both sides, one agreement id.
        for p in pipelines:
            if p.negotiation_id is None:
                continue
            mine = cons_n.get(p.negotiation_id)
            if mine is None:
                fail(Failure("missing", f"consumer negotiation {p.negotiation_id} not listed"))
                continue
            theirs = prov_n.get(mine.get("providerPid") or "")
            if (
                mine["state"] != "FINALIZED"
                or theirs is None
                or theirs["state"] != "FINALIZED"
                or theirs.get("agreementId") != mine.get("agreementId")
            ):
                fail(
                    Failure(
                        "negotiation",
                        await self._explain("negotiations", mine, theirs, budget(30)),
                    )
                )
        for pid, theirs in prov_n.items():
            if theirs.get("consumerPid") not in cons_n:
                fail(Failure("negotiation", f"provider {pid} has no consumer counterpart"))

        # Every transfer COMPLETED on both sides, the data's checksum right.
        for p in pipelines:
            if p.transfer_id is None:
                continue
            mine = cons_t.get(p.transfer_id)
            if mine is None:
                fail(Failure("missing", f"consumer transfer {p.transfer_id} not listed"))
                continue
            theirs = prov_t.get(mine.get("providerPid") or "")
            if mine["state"] != "COMPLETED" or theirs is None or theirs["state"] != "COMPLETED":
                fail(
                    Failure("transfer", await self._explain("transfers", mine, theirs, budget(30)))
                )
            if p.pulled is None:
                continue
            if p.pulled != (asset.size, asset.sha256):
                fail(
                    Failure(
                        "checksum",
                        f"transfer {p.transfer_id}: pulled {p.pulled[0]} bytes sha256 "
                        f"{p.pulled[1]}, source {asset.size} bytes {asset.sha256}",
                    )
                )
        if result.kill is not None and not set(result.kill.in_flight) - ENDED:
            fail(Failure("kill-missed", "every pipeline had ended before the kill"))
        await self._visibility(result, asset.asset_id, wall0, budget(90))
        self._lost(result)

    async def _settled_views(
        self, side: Side, asset_id: str, wall0: float, deadline: float
    ) -> dict[str, list[dict[str, Any]]]:
        terminal = {"FINALIZED", "TERMINATED", "COMPLETED"}
        while True:
            negotiations = await side.list_items("/negotiations", deadline, assetId=asset_id)
            transfers = await side.list_items("/transfers", deadline, since=wall0)
            busy = [v for v in negotiations + transfers if v["state"] not in terminal]
            if not busy or time.monotonic() > deadline - 30:
                return {"negotiations": negotiations, "transfers": transfers}
            await asyncio.sleep(POLL_SECONDS)

    async def _unclaimed(
        self,
        result: RoundResult,
        what: str,
        table: dict[str, dict[str, Any]],
        pipelines: list[Pipeline],
        key: str,
    ) -> None:
        """Processes the client never got an id for, and 5xx answers that came after the process
        was created: which request created what is told by the server's createdAt against the
        time each request was sent and answered (one clock: the same host)."""
        attempts: list[tuple[Pipeline, Call]] = [
            (p, c) for p in pipelines for c in getattr(p, f"{key}_attempts")
        ]
        claimed = {getattr(p, f"{key}_id"): p for p in pipelines if getattr(p, f"{key}_id")}

        def creator(created: float, among: Iterable[tuple[Pipeline, Call]]) -> list[Call]:
            return [
                c
                for _, c in among
                if (c.status is None or c.status >= 300)
                and c.sent - CLOCK_SLACK <= created <= c.received + CLOCK_SLACK
            ]

        for pid, view in table.items():
            created = _wall(view["createdAt"])
            owner = claimed.get(pid)
            if owner is not None:
                candidates = creator(created, [(owner, c) for c in owner_attempts(owner, key)])
                for c in candidates:
                    if c.status is not None and c.status >= 500:
                        result.failures.append(
                            Failure(
                                "5xx-after-side-effect",
                                f"POST /management/v1/{what} answered {c.status} though it "
                                f"created {pid} (a retry with the same Idempotency-Key then "
                                "returned it)",
                            )
                        )
                continue
            candidates = creator(created, attempts)
            answered = sorted({str(c.status or "no answer") for c in candidates})
            if any(c.status is not None and c.status >= 500 for c in candidates):
                check = "5xx-after-side-effect"
            else:
                check = "duplicate"
            result.failures.append(
                Failure(
                    check,
                    f"consumer {what[:-1]} {pid} ({view['state']}) was created by a POST "
                    f"whose answer the client never got as a 2xx (candidates answered: "
                    f"{', '.join(answered) or 'none in flight then'}); the retry with the same "
                    "Idempotency-Key created another",
                )
            )

    async def _explain(
        self,
        what: str,
        mine: dict[str, Any],
        theirs: dict[str, Any] | None,
        deadline: float,
    ) -> str:
        """Both sides' state, termination reason and timeline (from the management GET)."""
        parts = []
        for side, view in ((self.consumer, mine), (self.provider, theirs)):
            if view is None:
                parts.append(
                    f"{side.name}: none"
                    + (
                        f" (providerPid {mine['providerPid']} is not listed)"
                        if mine.get("providerPid")
                        else " (it never answered the request with its own id)"
                    )
                )
                continue
            try:
                detail = await side.api_json("GET", f"/{what}/{view['id']}", deadline)
            except PipelineError as exc:
                parts.append(f"{side.name} {view['id']} {view['state']} (GET failed: {exc})")
                continue
            reason = detail.get("termination") or detail.get("stateReason") or {}
            why = f" {reason.get('code')}: {' '.join(reason.get('reason') or [])}" if reason else ""
            timeline = " > ".join(
                f"{e['direction'][:2]} {e['kind']} {e['from_state']}->{e['to_state']}"
                + (f" ({e['detail']})" if e.get("detail") else "")
                for e in detail.get("timeline", [])
            )
            extra = ""
            if detail.get("lastError"):
                extra = f" lastError: {detail['lastError']}"
            parts.append(
                f"{side.name} {view['id']} {detail['state']}{why}; timeline: {timeline}{extra}"
            )
        return " | ".join(parts)

    async def _visibility(
        self, result: RoundResult, asset_id: str, since: float, deadline: float
    ) -> None:
        """The projection's state equals the state search attribute in visibility, for every
        process of the round on each side, and neither has a process the other lacks (re-read
        until equal: visibility trails the workflow a little)."""
        mismatches: list[tuple[Side, str, SearchAttributeKey[str], str]] = []
        until = time.monotonic() + 30
        while True:
            mismatches = []
            for side in self.sides.values():
                checks = (
                    (
                        "negotiation",
                        await side.list_items("/negotiations", deadline, assetId=asset_id),
                        f"WorkflowType = 'dsp.negotiation' AND "
                        f"{search_attributes.ASSET} = '{asset_id}'",
                        NEGOTIATION_STATE,
                    ),
                    (
                        "transfer",
                        await side.list_items("/transfers", deadline, since=since),
                        f"WorkflowType = 'dsp.transfer' AND StartTime >= '{_iso(since)}'",
                        TRANSFER_STATE,
                    ),
                )
                for prefix, views, query, key in checks:
                    seen = await side.visibility(query, key)
                    listed = set()
                    for view in views:
                        workflow_id = f"{prefix}:{view['role']}:{view['id']}"
                        listed.add(workflow_id)
                        if workflow_id not in seen:
                            found = f"projection {view['state']}, not in visibility"
                        elif seen[workflow_id] != view["state"]:
                            found = (
                                f"projection {view['state']}, "
                                f"visibility {key.name}={seen[workflow_id]}"
                            )
                        else:
                            continue
                        mismatches.append((side, workflow_id, key, found))
                    mismatches.extend(
                        (
                            side,
                            workflow_id,
                            key,
                            f"in visibility ({key.name}={state}), no projection",
                        )
                        for workflow_id, state in seen.items()
                        if workflow_id not in listed
                    )
            if not mismatches or time.monotonic() > until:
                break
            await asyncio.sleep(1.0)
        for index, (side, workflow_id, key, found) in enumerate(mismatches):
            # What the workflow itself holds tells a lagging visibility from a projection that
            # ran ahead of (or behind) the workflow.
            note = await side.workflow_note(workflow_id, key) if index < 20 else ""
            result.failures.append(
                Failure("projection-vs-visibility", f"{side.name} {workflow_id}: {found}{note}")
            )

    def _lost(self, result: RoundResult) -> None:
        for name, side in self.sides.items():
            if not side.supervisor_alive():
                result.lost.append(f"{name} supervisor")
                continue
            for process, pid in side.pids().items():
                if not pid_alive(pid):
                    result.lost.append(f"{name} {process} (pid {pid})")
        kill = result.kill
        if kill is not None and kill.recovery is None:
            result.lost.append(f"{kill.side} {kill.kind}: not back within the settle timeout")

    # --- the push round ---

    async def push_round(self, size: int | None = None) -> PushResult:
        """A push of `size` bytes to an HTTP sink; the provider's data plane is killed when a
        seeded random share of the bytes has reached the sink. It must end COMPLETED with the
        right checksum at the sink, or TERMINATED; never COMPLETED with a partial body."""
        size = size if size is not None else self.config.push_bytes
        self._rounds += 1
        label = f"{self._rounds:03d}-push"
        seed = self._next_seed()
        share = random.Random(seed).uniform(0.1, 0.8)  # noqa: S311
        result = PushResult(label, seed, size, share)
        self.push = result
        started = time.monotonic()
        await self._settled(started + self.config.settle_timeout)
        asset = await self.publish(label, size, ["HttpData-PUSH"])
        result.sha256 = asset.sha256
        wall0 = time.time()
        deadline = started + self.config.round_timeout + size / MIB * 0.5
        async with CountingSink() as sink:
            pipeline = Pipeline(0)
            negotiation = await self._create(
                "/negotiations",
                {
                    "counterPartyAddress": self.provider.dsp,
                    "counterPartyId": self.provider.did,
                    "offer": asset.offer,
                },
                pipeline.negotiation_key,
                pipeline.negotiation_attempts,
                deadline,
            )
            watcher = Watcher(self.consumer, asset.asset_id, wall0, deadline)
            watching = asyncio.create_task(watcher.run())
            try:
                done = await watcher.wait(
                    "negotiations", negotiation["id"], {"FINALIZED", "TERMINATED"}, deadline
                )
                if done["state"] != "FINALIZED":
                    result.failures.append(Failure("negotiation", f"push negotiation: {done}"))
                    return result
                transfer = await self._create(
                    "/transfers",
                    {
                        "counterPartyAddress": self.provider.dsp,
                        "counterPartyId": self.provider.did,
                        "agreementId": done["agreementId"],
                        "format": "HttpData-PUSH",
                        "dataDestination": sink.address("push"),
                    },
                    pipeline.transfer_key,
                    pipeline.transfer_attempts,
                    deadline,
                )
                result.transfer_id = transfer["id"]
                pushed_from = time.monotonic()
                while sink.current < share * size:
                    if time.monotonic() > deadline:
                        result.failures.append(
                            Failure("push", f"the push never reached {share:.0%} of the bytes")
                        )
                        return result
                    await asyncio.sleep(0.01)
                result.bytes_at_kill = sink.current
                self.say(
                    f"{label}: seed {seed}, kill -9 provider data-plane at "
                    f"{sink.current / MIB:.0f} MiB of {size / MIB:.0f} MiB"
                )
                result.kill = await self._kill(self.provider, "data-plane", pushed_from, [pipeline])
                final = await watcher.wait(
                    "transfers", transfer["id"], {"COMPLETED", "TERMINATED"}, deadline
                )
            finally:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            result.state = final["state"]
            result.duration = time.monotonic() - pushed_from
            result.sink_complete = dict(sink.received)
            result.sink_incomplete = list(sink.incomplete)
            detail = await self.consumer.api_json("GET", f"/transfers/{transfer['id']}", deadline)
            reason = detail.get("stateReason") or {}
            result.reason = " ".join(reason.get("reason") or [])
            if final["state"] == "COMPLETED":
                if sink.received.get("push") != (asset.sha256, size):
                    result.failures.append(
                        Failure(
                            "partial-completed",
                            f"COMPLETED but the sink holds {sink.received.get('push')}, "
                            f"expected ({asset.sha256}, {size})",
                        )
                    )
            elif not result.reason:
                result.failures.append(Failure("push", f"TERMINATED without a reason: {detail}"))
            wrong = [v for v in sink.received.values() if v != (asset.sha256, size)]
            if wrong:
                result.failures.append(
                    Failure("partial-completed", f"the sink took a wrong body as whole: {wrong}")
                )
            provider_side = await self._provider_counterpart(final, deadline)
            if provider_side is None or provider_side["state"] != final["state"]:
                result.failures.append(
                    Failure(
                        "push",
                        f"consumer {final['state']}, provider "
                        f"{provider_side and provider_side['state']}",
                    )
                )
        round_result = RoundResult(label, "data-plane", "provider", seed, 1)
        await self._visibility(round_result, asset.asset_id, wall0, deadline)
        result.failures.extend(round_result.failures)
        self._lost(round_result)
        result.lost = round_result.lost
        self.say(result.describe())
        return result

    async def _provider_counterpart(
        self, consumer_view: dict[str, Any], deadline: float
    ) -> dict[str, Any] | None:
        provider_pid = consumer_view.get("providerPid")
        if not provider_pid:
            return None
        while True:
            resp = await self.provider.api("GET", f"/transfers/{provider_pid}")
            if resp is not None and resp.status_code == 200:
                view: dict[str, Any] = resp.json()
                if view["state"] in ("COMPLETED", "TERMINATED") or time.monotonic() > deadline:
                    return view
            elif time.monotonic() > deadline:
                return None
            await asyncio.sleep(POLL_SECONDS)


def owner_attempts(p: Pipeline, key: str) -> list[Call]:
    attempts: list[Call] = getattr(p, f"{key}_attempts")
    return attempts


@dataclass
class PushResult:
    label: str
    seed: int
    size: int
    share: float
    sha256: str = ""
    transfer_id: str | None = None
    bytes_at_kill: int = 0
    kill: Kill | None = None
    state: str | None = None
    reason: str = ""
    duration: float = 0.0
    sink_complete: dict[str, tuple[str, int]] = field(default_factory=dict)
    sink_incomplete: list[tuple[str, int]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.lost

    @property
    def sink_right(self) -> bool:
        """Every body the sink took as complete is the source file."""
        return all(v == (self.sha256, self.size) for v in self.sink_complete.values())

    def describe(self) -> str:
        k = self.kill
        lines = [
            f"{self.label}: seed {self.seed}, push {self.size / MIB:.0f} MiB, provider data plane "
            f"killed at {self.bytes_at_kill / MIB:.0f} MiB"
            + (f" (restarted+ready {_secs(k.recovery)}, settled {_secs(k.settled)})" if k else "")
            + f"; ended {self.state} after {self.duration:.1f}s"
            + (f" ({self.reason})" if self.reason else "")
            + f"; sink: complete {self.sink_complete}, cut off {self.sink_incomplete}; "
            + ("OK" if self.ok else f"{len(self.failures)} FAILURES"),
            *(f"  {f}" for f in self.failures),
        ]
        if self.lost:
            lines.append(f"  lost: {self.lost}")
        return "\n".join(lines)


class CountingSink(Sink):
    """The e2e tests' HTTP sink, also counting the bytes of the body being received now."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0

    async def __aenter__(self) -> CountingSink:
        await super().__aenter__()
        return self

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        self.current = 0

        async def counting() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                self.current += len(message.get("body", b""))
            return message

        await super().app(scope, counting, send)
