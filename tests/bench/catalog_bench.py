"""Catalog benchmark (issue 3): DSP catalog request vs a bare FastAPI endpoint, 1k and 100k offers.

Run: `python -m tests.bench.catalog_bench` (add `--quick` for a short smoke run). Starts an
embedded Postgres and Redis (tests/services.py), bulk-loads N assets + N offers (COPY), runs the
control plane under uvicorn (one worker, loopback) in a subprocess, and drives it from this
process with 64 concurrent httpx clients for a bounded time and request count:

* `catalog`: `POST /dsp/2025-1/catalog/request` (first page of 50, dev-profile token),
* `bare`: a route on the same app and server answering precomputed bytes of the same size.

At the largest size it then compares the two identity profiles in alternating rounds of one run
(issue 18): `catalog (dev tokens)` against the dev-profile server above, `catalog (signed
tokens)` against a second control plane in the SECURE profile on the same database and Redis,
every request carrying a fresh single-use ES256 token of one of 8 did:web callers whose DID
documents this process serves on loopback (the server resolves and caches them, claims each
jti in its replay set). Tokens are signed before each round, so signing costs the server nothing.

It also times the uncached page query directly (`PgCatalogReadModel.dataset_page`). Results go
to stdout and to the "## Catalog" section of docs/benchmarks.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from connector.core.dsp import DSP_CONTEXT_2025_1
from connector.gc_tuning import tune_for_serving
from connector.identity.did import build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.tokens import TokenIssuer
from connector.runtime import embedded
from connector.stores.catalog import (
    ASSETS_TABLE,
    OFFER_ASSETS_TABLE,
    OFFERS_TABLE,
    POLICIES_TABLE,
    PgCatalogReadModel,
)
from connector.stores.migrate import migrate
from tests import services

CONCURRENCY = 64
PAGE = 50
BARE_PATH = "/bench/bare"
DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
SECTION = "## Catalog"
SIGNED_CALLERS = 8
PROFILE_ROUNDS = 3  # alternating (dev, signed) pairs at the largest size
REQUEST = {"@context": [DSP_CONTEXT_2025_1], "@type": "CatalogRequestMessage"}
ACCESS_POLICIES = {
    "p-open": {"@id": "p-open", "@type": "Set", "permission": [{"action": "use"}]},
    "p-partner": {
        "@id": "p-partner",
        "@type": "Set",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "participantId", "operator": "eq", "rightOperand": "urn:c:0"}
                ],
            }
        ],
    },
    "p-gold": {
        "@id": "p-gold",
        "@type": "Set",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "claim:tier", "operator": "eq", "rightOperand": "gold"}
                ],
            }
        ],
    },
}


# --------------------------------------------------------------------------- server process


def serve(
    pg_url: str, redis_url: str, port: int, data_dir: str, bare_file: str, trust: list[str]
) -> None:
    """Subprocess entry: the control plane plus the bare endpoint, one uvicorn worker.

    `trust` empty: the dev profile (dev tokens). Else the secure profile trusting those DIDs,
    resolved over loopback http (this benchmark serves their documents)."""
    import uvicorn
    from fastapi import Response

    from api.app import create_app
    from connector.settings import load_settings

    settings = load_settings(
        env={},
        database={"url": pg_url, "pool": {"min": 1, "max": 20}},
        redis={"url": redis_url},
        temporal={"address": "127.0.0.1:1"},
        management={"api_keys": ["bench-management-key-0123456789abcdef"]},
        identity=(
            {"profile": "secure", "participant_id": "urn:bench:p", "trust": {"allowed_dids": trust}}
            if trust
            else {"profile": "dev", "allow_insecure": True, "participant_id": "urn:bench:p"}
        ),
        outbound={"allow_http": True, "allow_cidrs": ["127.0.0.0/8"]},
        # The limiter runs (its Redis round trip is part of the cost) but never trips.
        rate_limit={"requests_per_minute": 10**9},
        server={"port": port, "public_url": f"http://localhost:{port}"},
        data_dir=Path(data_dir),
    )
    app = create_app(settings)
    cache: dict[str, bytes] = {}

    async def bare() -> Response:
        body = cache.get("b")
        if body is None:
            body = cache["b"] = Path(bare_file).read_bytes()
        return Response(body, media_type="application/json")

    app.add_api_route(BARE_PATH, bare, methods=["POST"])
    tune_for_serving()  # as `connector control-plane` does before it serves
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------- data


async def load(pg_url: str, offers: int) -> None:
    """Replace the catalog with `offers` assets and offers (one asset each), via COPY."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            f"TRUNCATE {OFFER_ASSETS_TABLE}, {OFFERS_TABLE}, {ASSETS_TABLE}, {POLICIES_TABLE}"
        )
        await conn.copy_records_to_table(
            POLICIES_TABLE,
            records=[(pid, json.dumps(p)) for pid, p in ACCESS_POLICIES.items()],
            columns=["id", "policy"],
        )
        names = list(ACCESS_POLICIES)
        assets = [
            (
                f"asset-{i:07d}",
                json.dumps({"name": f"Asset {i}", "description": "benchmark data set"}),
                json.dumps({"type": "http", "baseUrl": f"https://data.example/{i}"}),
                ["HttpData-PULL", "HttpData-PUSH"],
            )
            for i in range(offers)
        ]
        await conn.copy_records_to_table(
            ASSETS_TABLE,
            records=assets,
            columns=["id", "properties", "data_address", "distributions"],
        )
        offer_rows = [
            (
                f"offer-{i:07d}",
                json.dumps({"assetIds": [f"asset-{i:07d}"]}),
                names[i % len(names)],
                "p-open",
            )
            for i in range(offers)
        ]
        await conn.copy_records_to_table(
            OFFERS_TABLE,
            records=offer_rows,
            columns=["id", "asset_selector", "access_policy_id", "contract_policy_id"],
        )
        await conn.copy_records_to_table(
            OFFER_ASSETS_TABLE,
            records=[(o[0], f"asset-{i:07d}", o[2]) for i, o in enumerate(offer_rows)],
            columns=["offer_id", "asset_id", "access_policy_id"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# --------------------------------------------------------------------------- load loop


@dataclass
class Result:
    name: str
    offers: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    body_bytes: int
    server_cpu_s: float = 0.0  # CPU the server process used during the row (user + system)

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s / max(1, self.requests) * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client (httpx would cost more CPU than the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, int]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(head[9:12]), length

    def close(self) -> None:
        self.writer.close()


def raw_request(path: str, caller: int, token: str | None = None) -> bytes:
    body = json.dumps(REQUEST).encode()
    authorization = token or f"dev:urn:c:{caller}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {authorization}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(
    port: int,
    path: str,
    name: str,
    offers: int,
    seconds: float,
    max_requests: int,
    request_for: Callable[[int], bytes] | None = None,
    server_pid: int | None = None,
) -> Result:
    """`request_for(worker)` builds each request (signed tokens: a new one every time); by
    default each worker repeats one dev-token request."""
    latencies: list[float] = []
    errors = 0
    size = 0
    sent = 0
    connections = [await RawConnection.open(port) for _ in range(CONCURRENCY)]
    requests = [raw_request(path, w % 8) for w in range(CONCURRENCY)]

    async def one(w: int) -> None:
        nonlocal errors, size
        request = requests[w] if request_for is None else request_for(w)
        started = time.perf_counter()
        status, size = await connections[w].send(request)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            errors += 1

    try:
        for _ in range(2):  # warm-up: connections, caches, pools
            await asyncio.gather(*(one(w) for w in range(CONCURRENCY)))
        latencies.clear()
        errors = 0
        deadline = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                await one(w)

        cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    finally:
        for connection in connections:
            connection.close()
    return Result(name, offers, len(latencies), elapsed, latencies, errors, size, cpu)


async def cold_query_ms(pg_url: str, runs: int) -> tuple[float, float]:
    """p50/p95 of the uncached page query itself (no HTTP, no cache)."""
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    try:
        model = PgCatalogReadModel(pool)
        timings = []
        for i in range(runs):
            admitted = ["p-open", "p-partner"] if i % 2 else ["p-open"]
            started = time.perf_counter()
            rows = await model.dataset_page(admitted, limit=PAGE + 1)
            timings.append((time.perf_counter() - started) * 1000)
            assert len(rows) == PAGE + 1
        timings.sort()
        return statistics.median(timings), timings[int(0.95 * len(timings))]
    finally:
        await pool.close()


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(200):
            try:
                if (await client.get("/health")).status_code < 600:
                    return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError("control plane did not start")


# --------------------------------------------------------------------------- signed callers


class SignedCallers:
    """8 did:web participants under `did:web:localhost%3A<port>:caller:<i>`, documents served by
    `serve()` on loopback, each signing single-use ES256 tokens."""

    def __init__(self) -> None:
        keys = [generate_key() for _ in range(SIGNED_CALLERS)]
        self.rings = [KeyRing(current=KeyEntry(key=k, key_id=key_id(k))) for k in keys]
        self.port = 0
        self.dids: list[str] = []

    async def serve(self) -> asyncio.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.dids = [f"did:web:localhost%3A{self.port}:caller:{i}" for i in range(SIGNED_CALLERS)]
        return server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            parts = target.strip("/").split("/")  # caller/<i>/did.json
            status, body = 404, b"{}"
            if len(parts) == 3 and parts[0] == "caller" and parts[1].isdigit():
                i = int(parts[1])
                if i < SIGNED_CALLERS:
                    doc = build_did_document(self.dids[i], [self.rings[i].current])
                    status, body = 200, json.dumps(doc).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/did+json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    def tokens(self, audience: str, count: int) -> list[str]:
        """`count` fresh tokens, callers round-robin (signed now, valid 5 minutes)."""
        issuers = [
            TokenIssuer(r, d, clock=lambda: datetime.now(UTC), lifetime=timedelta(seconds=300))
            for r, d in zip(self.rings, self.dids, strict=True)
        ]
        return [issuers[i % len(issuers)].issue(audience) for i in range(count)]


def start_server(
    pg_url: str, redis_url: str, port: int, data: Path, bare: Path, trust: list[str]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bench.catalog_bench",
            "--serve",
            pg_url,
            redis_url,
            str(port),
            str(data),
            str(bare),
            *(["--trust", ",".join(trust)] if trust else []),
        ],
        env={**os.environ, "PYTHONPATH": str(DOC.parents[1])},
    )


def signed_requests(path: str, tokens: list[str]) -> Callable[[int], bytes]:
    """Each call: a request carrying the next unused token."""

    def request(worker: int) -> bytes:
        return raw_request(path, worker, tokens.pop())

    return request


def loadavg() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def profile_rounds(
    dev: tuple[int, int],
    secure: tuple[int, int],
    audience: str,
    callers: SignedCallers,
    offers: int,
    seconds: float,
    requests: int,
) -> list[Result]:
    """Alternating rounds of dev tokens (dev server) and signed tokens (secure server); `dev`
    and `secure` are (port, pid) of the two servers."""
    path = "/dsp/2025-1/catalog/request"
    (dev_port, dev_pid), (secure_port, secure_pid) = dev, secure
    results: list[Result] = []
    for _ in range(PROFILE_ROUNDS):
        results.append(
            await drive(
                dev_port, path, "catalog (dev tokens)", offers, seconds, requests, None, dev_pid
            )
        )
        signed = signed_requests(path, callers.tokens(audience, requests + 4 * CONCURRENCY))
        results.append(
            await drive(
                secure_port,
                path,
                "catalog (signed tokens)",
                offers,
                seconds,
                requests,
                signed,
                secure_pid,
            )
        )
        print(profile_table(results))
    return results


def pooled(results: list[Result], name: str) -> Result:
    rows = [r for r in results if r.name == name]
    return Result(
        name,
        rows[0].offers,
        sum(r.requests for r in rows),
        sum(r.seconds for r in rows),
        [x for r in rows for x in r.latencies_ms],
        sum(r.errors for r in rows),
        rows[0].body_bytes,
        sum(r.server_cpu_s for r in rows),
    )


def profile_table(results: list[Result]) -> str:
    lines = [
        "| round | tokens | requests | throughput (req/s) | p50 (ms) | p95 (ms) | "
        "server CPU per request (µs) | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(results):
        lines.append(
            f"| {i // 2 + 1} | {r.name.split('(')[1].rstrip(')')} | {r.requests:,} | "
            f"{r.rps:,.0f} | {r.pct(0.5):.1f} | {r.pct(0.95):.1f} | "
            f"{r.cpu_us_per_request:,.0f} | {r.errors} |"
        )
    names = sorted({r.name for r in results})
    if len(names) == 2 and len(results) % 2 == 0:
        for name in names:
            r = pooled(results, name)
            lines.append(
                f"| all | {name.split('(')[1].rstrip(')')} | {r.requests:,} | {r.rps:,.0f} | "
                f"{r.pct(0.5):.1f} | {r.pct(0.95):.1f} | {r.cpu_us_per_request:,.0f} | "
                f"{r.errors} |"
            )
    return "\n".join(lines)


def profile_verdict(results: list[Result]) -> list[str]:
    dev, signed = (
        pooled(results, "catalog (dev tokens)"),
        pooled(results, "catalog (signed tokens)"),
    )
    ratio = signed.rps / dev.rps
    cpu_ratio = dev.cpu_us_per_request / max(1e-9, signed.cpu_us_per_request)
    return [
        f"- signed tokens, p95 < 50 ms at {signed.offers:,} offers: "
        f"**{'met' if signed.pct(0.95) < 50 else 'MISSED'}** ({signed.pct(0.95):.1f} ms)",
        f"- signed-token throughput >= 70 % of the dev-token throughput (same run, alternating "
        f"rounds): **{'met' if ratio >= 0.7 else 'MISSED'}** ({ratio:.0%}: {signed.rps:,.0f} vs "
        f"{dev.rps:,.0f} req/s; server CPU per request {signed.cpu_us_per_request:,.0f} vs "
        f"{dev.cpu_us_per_request:,.0f} µs, i.e. {cpu_ratio:.0%} on CPU alone)",
    ]


# --------------------------------------------------------------------------- report


def table(results: list[Result], cold: dict[int, tuple[float, float]]) -> str:
    lines = [
        "| offers | endpoint | requests | throughput (req/s) | p50 (ms) | p95 (ms) | "
        "body (bytes) | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.offers:,} | {r.name} | {r.requests:,} | {r.rps:,.0f} | {r.pct(0.5):.1f} | "
            f"{r.pct(0.95):.1f} | {r.body_bytes:,} | {r.errors} |"
        )
    lines += ["", "| offers | uncached page query p50 (ms) | p95 (ms) |", "|---:|---:|---:|"]
    for offers, (p50, p95) in cold.items():
        lines.append(f"| {offers:,} | {p50:.2f} | {p95:.2f} |")
    return "\n".join(lines)


def verdict(results: list[Result]) -> list[str]:
    by = {(r.offers, r.name): r for r in results}
    sizes = sorted({r.offers for r in results})
    out = []
    big, small = sizes[-1], sizes[0]
    cat_big, bare_big = by[(big, "catalog")], by[(big, "bare")]
    ratio = cat_big.rps / bare_big.rps
    flat = cat_big.rps / by[(small, "catalog")].rps
    out.append(
        f"- p95 < 50 ms at {big:,} offers: **{'met' if cat_big.pct(0.95) < 50 else 'MISSED'}** "
        f"({cat_big.pct(0.95):.1f} ms)"
    )
    out.append(
        f"- throughput >= 50 % of the bare endpoint: **{'met' if ratio >= 0.5 else 'MISSED'}** "
        f"({ratio:.0%})"
    )
    out.append(
        f"- flat from {small:,} to {big:,} offers: **{'met' if flat >= 0.85 else 'MISSED'}** "
        f"({big:,} runs at {flat:.0%} of the {small:,} throughput)"
    )
    return out


def write_doc(text: str) -> None:
    existing = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    start = existing.find(SECTION + "\n")
    if start == -1:
        updated = existing.rstrip("\n") + "\n\n" + text
    else:
        nxt = existing.find("\n## ", start + len(SECTION))
        updated = existing[:start] + text + ("" if nxt == -1 else existing[nxt:])
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- main


async def main(quick: bool, write: bool = True) -> None:
    sizes = [1_000, 100_000]
    seconds, max_requests = (3.0, 3_000) if quick else (15.0, 60_000)
    profile_requests = 3_000 if quick else 15_000
    results: list[Result] = []
    profiles: list[Result] = []
    cold: dict[int, tuple[float, float]] = {}
    callers = SignedCallers()
    did_server = await callers.serve()
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp:
        root = Path(tmp)
        async with (
            services.postgres(root / "pg") as server_url,
            services.redis(root / "redis") as redis_url,
        ):
            pg_url = await services.create_database(server_url)
            conn = await asyncpg.connect(pg_url)
            await migrate(conn)
            await conn.close()
            port, secure_port = embedded.free_port(), embedded.free_port()
            bare_file = root / "bare.json"
            proc = start_server(pg_url, redis_url, port, root / "data", bare_file, [])
            secure = start_server(
                pg_url, redis_url, secure_port, root / "data-secure", bare_file, callers.dids
            )
            base = f"http://127.0.0.1:{port}"
            path = "/dsp/2025-1/catalog/request"
            try:
                await wait_ready(base)
                await wait_ready(f"http://127.0.0.1:{secure_port}")
                async with httpx.AsyncClient() as client:
                    did_doc = await client.get(
                        f"http://127.0.0.1:{secure_port}/.well-known/did.json"
                    )
                    audience = did_doc.json()["id"]
                for offers in sizes:
                    started = time.perf_counter()
                    await load(pg_url, offers)
                    took = time.perf_counter() - started
                    print(f"loaded {offers:,} offers in {took:.1f}s")
                    cold[offers] = await cold_query_ms(pg_url, 50 if quick else 200)
                    # New data, same generation: flush Redis so no page from the last size is used.
                    async with httpx.AsyncClient(base_url=base) as client:
                        await client.post(
                            "/management/v1/policies",
                            json={"id": f"bump-{offers}", "policy": ACCESS_POLICIES["p-open"]},
                            headers={"X-Api-Key": "bench-management-key-0123456789abcdef"},
                        )
                        page = await client.post(
                            path, json=REQUEST, headers={"Authorization": "Bearer dev:urn:c:1"}
                        )
                        assert page.status_code == 200, page.text
                        assert len(page.json()["dataset"]) == PAGE
                    bare_file.write_bytes(page.content)
                    for name, target in (("catalog", path), ("bare", BARE_PATH)):
                        results.append(
                            await drive(port, target, name, offers, seconds, max_requests)
                        )
                    print(table(results, cold))
                # The secure server resolves each caller's DID on its first token (loopback).
                async with httpx.AsyncClient() as client:
                    for token in callers.tokens(audience, SIGNED_CALLERS):
                        signed = await client.post(
                            f"http://127.0.0.1:{secure_port}{path}",
                            json=REQUEST,
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        assert signed.status_code == 200, signed.text
                load_before = loadavg()
                profiles = await profile_rounds(
                    (port, proc.pid),
                    (secure_port, secure.pid),
                    audience,
                    callers,
                    sizes[-1],
                    seconds,
                    profile_requests,
                )
                load_after = loadavg()
            finally:
                for p in (proc, secure):
                    p.terminate()
                    p.wait(timeout=10)
                did_server.close()
    report = "\n".join(
        [
            SECTION,
            "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU cores "
            f"({platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"{'quick' if quick else 'full'} run). Command: `python -m tests.bench.catalog_bench`.",
            "",
            "Method: embedded Postgres + Redis; N assets and N offers (one asset each; access "
            "policies round-robin over open / participant-bound / claim-bound) bulk-loaded with "
            "COPY; the control plane under uvicorn (1 worker, uvloop/httptools, loopback) in a "
            f"subprocess; {CONCURRENCY} concurrent keep-alive HTTP/1.1 connections (a minimal "
            "asyncio client on uvloop) in the benchmark "
            f"process for up to {seconds:.0f} s / {max_requests:,} requests per row, after a "
            "warm-up. `catalog` = `POST /dsp/2025-1/catalog/request`, first page of "
            f"{PAGE} datasets, dev-profile tokens of 8 callers (2 caller classes); `bare` = a "
            "route on the same app returning the same page bytes precomputed. The uncached "
            "page query is timed directly against Postgres (no HTTP, no Redis).",
            "",
            table(results, cold),
            "",
            f"Secure path at {sizes[-1]:,} offers (issue 18): {PROFILE_ROUNDS} alternating rounds "
            f"of up to {profile_requests:,} requests / {seconds:.0f} s each, same client. "
            "`dev` = the dev-profile server above, `dev:` tokens; `signed` = a second control "
            "plane on the same database and Redis in the SECURE profile, every request a fresh "
            f"single-use ES256 token of one of {SIGNED_CALLERS} trusted did:web callers "
            "(documents served on loopback by the benchmark, resolved by the server on first "
            "use), signed before the round. Load average of the machine (1 / 5 / 15 min; other "
            f"jobs shared it): {load_before} before the rounds, {load_after} after.",
            "",
            profile_table(profiles),
            "",
            "Targets:",
            "",
            *verdict(results),
            *profile_verdict(profiles),
            "",
            "Notes:",
            "",
            "- Steady state, no request waits for Redis or Postgres: the catalog generation is "
            "kept in process by a Redis pub/sub watch (`connector.services.catalog_cache`), "
            "the rate limiter counts locally and sends its counts to Redis in background batches "
            "every 0.1 s (`connector.http.ratelimit`), the access policies are evaluated once per "
            "caller class and memoised per generation (none of these depends on time), and the "
            "page comes from the in-process LRU (else Redis, else the one SQL query). The uncached "
            "query is flat in the number of offers (keyset over "
            "`offer_assets (asset_id, access_policy_id)`), so only the CPU per request decides "
            "throughput.",
            "- Before those changes (2026-11-25 run) each request made two Redis round trips "
            "(rate-limit counter, generation): 29 % of bare, p95 170 ms. Each await sends a "
            "request to the back of the event loop's queue behind the other 63 clients, which is "
            "where that tail came from, more than from the CPU the round trips cost.",
            "- What is left per request is Python: the verified caller, the body reader's guards "
            "and the CatalogRequestMessage decode, the policy memo and cache-key lookups. p95 at "
            "64 concurrent clients is queueing on the one uvicorn worker (p50 is roughly "
            "64 / throughput).",
            "- Signed tokens (decisions 0020, 0026): the server verifies each token fully (ES256 "
            "signature, claims, trust list), reads the caller's DID document from its in-process "
            "copy (read again from Redis in the background before it expires, one read for all "
            "requests that find none) and claims the jti in the shared Redis replay set; the "
            "claims of concurrent requests share one Lua command, and a request is answered "
            "only after Redis said its jti was new. Decision 0020's run (02:07 UTC, before "
            "batching): dev 1,270 req/s, signed 228 req/s (18 %), p95 802 ms; its batched run "
            "(02:37 UTC): 46 %, p95 138 ms, 525 against 240 µs server CPU per request.",
            "- Decision 0026 took out of each signed request: joserfc's decode (the segments are "
            "decoded once, the ES256 signature checked on a cached `cryptography` key object: "
            "about 160 to 110 µs CPU per verification in process, most of what is left being "
            "the ECDSA check itself), redis-py's packing of one `SET` per claim (a Lua command "
            "per batch: 25 to 12 µs per claim), the 64 DID cache reads when a copy expired, and "
            "the garbage collector's promotion of in-flight requests (a serving process raises "
            "the young generation's threshold and freezes its start-up objects: in one run the "
            "secure server had spent 4.4 s in 11 full collections). What remains over the dev "
            "path is the ECDSA check and the one wait for Redis per batch; on a busy machine "
            "that wait is mostly the Redis process waiting for a core, and with 64 closed-loop "
            "clients all on one batch the server idles meanwhile, so the rate falls further "
            "below the dev rate than the CPU per request does.",
            "- The same benchmark on main without decision 0026 (HEAD 9a2ad17, 2026-12-07 "
            "05:52 UTC, load average 0.16 / 1.19 / 3.51 before, 1.25 / 1.24 / 3.23 after): dev "
            "2,673 req/s, signed 1,301 req/s (49 %), signed p95 130.8 ms, server CPU per request "
            "766 against 374 µs. On a busy machine (05:21 UTC, load average 10.6) main gave 29 %, "
            "signed p95 623 ms, and this branch 69 %, signed p95 131 ms (05:27 UTC, load 9.1).",
            "- The load generator shares the 2 cores with the servers, Postgres and Redis, and "
            "other work on the machine (about 8 helpers' tests and benchmarks, load average "
            "10-12 during these runs) adds noise between rounds: compare the CPU per request "
            "and the rows of one run.",
            "",
        ]
    )
    if write:
        write_doc(report)
    print(report)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/ alone")
    parser.add_argument("--serve", nargs=5, metavar=("PG", "REDIS", "PORT", "DATA", "BARE"))
    parser.add_argument("--trust", default="", help="(--serve) secure profile trusting these DIDs")
    args = parser.parse_args()
    if args.serve:
        pg, redis, port, data, bare = args.serve
        serve(pg, redis, int(port), data, bare, [d for d in args.trust.split(",") if d])
    else:
        import uvloop

        uvloop.install()
        asyncio.run(main(args.quick, not args.no_write))
