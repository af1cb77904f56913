"""Data plane throughput and memory: pull and push of one file, next to bare uvicorn.

    python -m tests.bench.transfer_bench [--size-mib 1024]

Starts embedded Postgres and Redis, runs the data plane as its own process (`connector
data-plane`), a bare uvicorn app in another process that streams the same file (1 MiB chunks,
StreamingResponse) and a bare sink that hashes and discards what it receives. Pull: a streaming
httpx client reads the whole body (data plane: with the access token). Push: the data plane
pushes the file to the sink (signaling start -> status COMPLETED); bare: the client posts the
file to the sink itself. The data plane's peak RSS is VmHWM from /proc. Writes the
"## Transfers" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from connector.runtime.embedded import free_port
from connector.settings import load_settings
from connector.stores.migrate import migrate
from tests import services
from tests.e2e.transfer_helpers import write_file
from tests.twoconn import SIGNALING_SECRET, DataPlane

MIB = 1024 * 1024
DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"

BARE = """
import os, sys
from starlette.applications import Starlette
from starlette.responses import StreamingResponse, Response
from starlette.routing import Route
import hashlib
PATH = os.environ["BENCH_FILE"]
async def serve(request):
    def chunks():
        with open(PATH, "rb") as fh:
            while data := fh.read(1 << 20):
                yield data
    return StreamingResponse(chunks(), headers={"Content-Length": str(os.path.getsize(PATH))})
async def sink(request):
    h = hashlib.sha256(); n = 0
    async for chunk in request.stream():
        h.update(chunk); n += len(chunk)
    return Response(status_code=204, headers={"X-Sha256": h.hexdigest(), "X-Size": str(n)})
app = Starlette(routes=[Route("/file", serve), Route("/sink/{name}", sink, methods=["POST"])])
"""


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def timed_pull(url: str, headers: dict[str, str]) -> tuple[float, str, int]:
    digest, size = hashlib.sha256(), 0
    start = time.perf_counter()
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("GET", url, headers=headers) as resp,
    ):
        resp.raise_for_status()
        async for chunk in resp.aiter_raw(MIB):
            digest.update(chunk)
            size += len(chunk)
    return time.perf_counter() - start, digest.hexdigest(), size


async def bare_push(path: Path, url: str) -> float:
    async def body() -> Any:
        with path.open("rb") as fh:
            while data := await asyncio.to_thread(fh.read, MIB):
                yield data

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        resp = await client.post(
            url, content=body(), headers={"Content-Length": str(path.stat().st_size)}
        )
        resp.raise_for_status()
    return time.perf_counter() - start


async def dp_round(
    c: httpx.AsyncClient, n: int, bare_port: int
) -> tuple[tuple[float, str, int], float]:
    """One pull and one push through the data plane, each a flow of its own (a finite pull
    completes its flow, so a second read would be refused)."""
    start_msg = {
        "processId": f"urn:uuid:bench-pull-{n}",
        "agreementId": "a",
        "participantId": "c",
        "transferType": "HttpData-PULL",
        "flowType": "PULL",
        "sourceDataAddress": {"type": "file", "path": "bench.bin"},
    }
    flow = (await c.post("/signaling/v1/dataflows", json=start_msg)).json()
    props = {p["name"]: p["value"] for p in flow["dataAddress"]["endpointProperties"]}
    pulled = await timed_pull(
        flow["dataAddress"]["endpoint"], {"Authorization": f"Bearer {props['authorization']}"}
    )
    push_id = f"urn:uuid:bench-push-{n}"
    push_msg = {
        **start_msg,
        "processId": push_id,
        "flowType": "PUSH",
        "transferType": "HttpData-PUSH",
        "destinationDataAddress": {
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": f"http://127.0.0.1:{bare_port}/sink/d",
        },
    }
    t0 = time.perf_counter()
    await c.post("/signaling/v1/dataflows", json=push_msg)
    while True:
        status = (await c.get(f"/signaling/v1/dataflows/{push_id}")).json()
        if status["state"] in ("COMPLETED", "FAILED"):
            break
        await asyncio.sleep(0.02)
    pushed = time.perf_counter() - t0
    assert status["state"] == "COMPLETED", status
    return pulled, pushed


async def main(size_mib: int, rounds: int) -> str:
    root = Path(tempfile.mkdtemp(prefix="transfer-bench-"))
    files = root / "files"
    sha = write_file(files / "bench.bin", size_mib * MIB)
    size = size_mib * MIB
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    async with services.postgres(root / "pg") as pg_url, services.redis(root / "redis") as r_url:
        conn = await asyncpg.connect(pg_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        port = free_port()
        settings = load_settings(
            env={},
            data_dir=root / "dp",
            database={"url": pg_url},
            redis={"url": r_url},
            outbound={"allow_cidrs": ["127.0.0.0/8"], "allow_http": True},
            logging={"level": "warning"},
            dataplane={
                "port": port,
                "public_url": f"http://127.0.0.1:{port}",
                "signaling_secret": SIGNALING_SECRET,
                "file_base_path": str(files),
            },
        )
        dp = DataPlane(settings, "process")
        await dp.start()
        bare_port = free_port()
        (root / "bare.py").write_text(BARE)
        bare = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(root),
                "bare:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            env={**os.environ, "PYTHONPATH": str(root), "BENCH_FILE": str(files / "bench.bin")},
        )
        await asyncio.sleep(0)
        try:
            headers = {"Authorization": f"Bearer {SIGNALING_SECRET}"}
            async with httpx.AsyncClient(base_url=dp.base, headers=headers, timeout=30) as c:
                for _ in range(100):
                    try:
                        await httpx.AsyncClient().get(f"http://127.0.0.1:{bare_port}/file")
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                assert dp.process is not None
                rss_before = rss_kib(dp.process.pid, "VmRSS")
                for n in range(rounds):
                    # Alternate who goes first so neither side always meets a warmer cache.
                    order = ("dp", "bare") if n % 2 else ("bare", "dp")
                    for who in order:
                        if who == "bare":
                            bare_pull = await timed_pull(f"http://127.0.0.1:{bare_port}/file", {})
                            assert bare_pull[1:] == (sha, size)
                            times["pull", "bare"].append(bare_pull[0])
                            times["push", "bare"].append(
                                await bare_push(
                                    files / "bench.bin", f"http://127.0.0.1:{bare_port}/sink/b"
                                )
                            )
                        else:
                            dp_pull, dp_push_s = await dp_round(c, n, bare_port)
                            assert dp_pull[1:] == (sha, size)
                            times["pull", "dp"].append(dp_pull[0])
                            times["push", "dp"].append(dp_push_s)
                peak = rss_kib(dp.process.pid, "VmHWM")
        finally:
            bare.terminate()
            bare.wait()
            await dp.stop()

    def mbs(seconds: float) -> float:
        return size / MIB / seconds

    rows = [
        (d, mbs(statistics.median(times[d, "dp"])), mbs(statistics.median(times[d, "bare"])))
        for d in ("pull", "push")
    ]
    per_round = {
        d: ", ".join(f"{b / a:.0%}" for a, b in zip(times[d, "dp"], times[d, "bare"], strict=True))
        for d in ("pull", "push")
    }
    growth = (peak - rss_before) / 1024
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Transfers",
        "",
        f"Run {now} on {os.cpu_count()} CPU cores ({platform.machine()}, Python "
        f"{platform.python_version()}). Command: `python -m tests.bench.transfer_bench "
        f"--size-mib {size_mib} --rounds {rounds}`.",
        "",
        f"Method: one {size_mib} MiB file on local disk; embedded Postgres + Redis; the data plane "
        "as its own process (`connector data-plane`, uvicorn) and, in the same run, a bare "
        "uvicorn app (uvloop/httptools) streaming the same file in 1 MiB chunks and a bare sink "
        "(hash + discard). Pull = a streaming httpx client reading the whole body (data plane: "
        "with its access token). Push = the data plane pushing to the bare sink (signaling start "
        "until status COMPLETED) vs the client posting the file to the sink itself. Client, "
        "servers and sink share the 2 cores; SHA-256 checked on every pull. "
        f"{rounds} rounds, data plane and bare alternating which goes first; each figure is the "
        "median over the rounds (a single run on a shared 2-core machine swings by +-30 %).",
        "",
        "| direction | data plane (MB/s) | bare uvicorn (MB/s) | ratio | ratio per round |",
        "|---|---:|---:|---:|---|",
        *[f"| {d} | {a:,.0f} | {b:,.0f} | {a / b:.0%} | {per_round[d]} |" for d, a, b in rows],
        "",
        f"Data plane RSS: {rss_before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB "
        f"(growth {growth:.0f} MiB).",
        "",
        "Targets:",
        "",
        *[
            f"- {d} >= 70 % of bare: **{'met' if a / b >= 0.7 else 'MISSED'}** ({a / b:.0%})"
            for d, a, b in rows
        ],
        f"- RSS growth < 64 MB: **{'met' if growth * 1.048576 < 64 else 'MISSED'}** "
        f"({growth * 1.048576:.0f} MB)",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(r"## Transfers\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(main(args.size_mib, args.rounds))
    sys.stdout.write(out + "\n")
    if not args.no_write:
        write_section(out)
