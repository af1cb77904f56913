"""The Temporal dev server's CPU per negotiation under different Go runtime settings.

    python -m tests.bench.temporal_runtime_bench [--rounds 3] [--total 100] [--concurrency 20]
                                                 [--idle 10] [--variants ...] [--no-write]

The 20-way negotiation run of tests/bench/negotiation_bench.py (one process per connector, as
`connector up` runs them), once per variant and round, each on a dev server of its own started
fresh (its own SQLite file, the flags of `connector.runtime.embedded.temporal_spec`) with the
variant's environment (GOGC, GOMEMLIMIT, GOMAXPROCS) or extra flags; Postgres and Redis are
shared. Variants alternate order between rounds. Per run: the server's CPU (user + system,
/proc) during the measured run divided by the negotiations, every process's likewise, and the
server's memory (VmRSS, PSS, USS from smaps_rollup) idle after start, at the end of the measured
run, and idle again after the connectors stopped.

Writes the "## Negotiations: Temporal server runtime settings" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from connector.runtime import embedded
from tests import services
from tests.bench import negotiation_bench as nb
from tests.bench.common import machine, now, write_section
from tests.bench.startup_bench import Mem, memory

SECTION = "Negotiations: Temporal server runtime settings"

#: name -> (Go runtime variables of the dev server, extra flags, label). Each variant states
#: the whole Go environment: {} is Go's defaults, whatever `temporal.embedded_go_env` says.
VARIANTS: dict[str, tuple[dict[str, str], list[str], str]] = {
    "go-default": ({}, [], "Go defaults (GOGC=100, GOMAXPROCS = cores)"),
    "gogc200": ({"GOGC": "200"}, [], "GOGC=200"),
    "gogc400": ({"GOGC": "400"}, [], "GOGC=400"),
    "gogc400-limit": (
        {"GOGC": "400", "GOMEMLIMIT": "160MiB"},
        [],
        "GOGC=400, GOMEMLIMIT=160MiB",
    ),
    "gogc-off-limit": (
        {"GOGC": "off", "GOMEMLIMIT": "160MiB"},
        [],
        "GOGC=off, GOMEMLIMIT=160MiB",
    ),
    "gomaxprocs1": ({"GOMAXPROCS": "1"}, [], "GOMAXPROCS=1"),
    "gomaxprocs1-gogc200": (
        {"GOMAXPROCS": "1", "GOGC": "200"},
        [],
        "GOMAXPROCS=1, GOGC=200",
    ),
}


@dataclass
class Run:
    variant: str
    round: int
    rate: float
    p50_ms: float
    errors: int
    cpu: dict[str, float]  # process -> CPU seconds per negotiation
    idle: Mem  # the server after start and `idle` seconds
    loaded: Mem  # at the end of the measured run
    after: Mem  # `idle` seconds after the connectors stopped
    load: str
    idle_cpu: float = 0.0  # the server's CPU seconds per second, idle after start
    bare_rates: tuple[float, float] = (0.0, 0.0)  # bare Temporal /s: 1 activity, 1 local one
    bare_cpu: float = 0.0  # the server's CPU seconds per bare workflow, both kinds


def _temporal_mem() -> Mem:
    return memory({"temporal": nb.PIDS["temporal"]})[0]


async def one_run(
    root: Path,
    pg: str,
    redis_url: str,
    base: dict[str, int],
    variant: str,
    round_: int,
    args: argparse.Namespace,
) -> Run:
    env, flags, _ = VARIANTS[variant]
    nb.PIDS.clear()
    nb.CPU.clear()
    async with nb.temporal_server(
        root / f"temporal-{variant}-{round_}", pragmas=True, go_env=env, extra_argv=flags
    ) as address:
        temporal_pid = nb.PIDS["temporal"]
        # Start-up done in the first half; the second half is the server's idle work.
        await asyncio.sleep(args.idle / 2)
        idle_before = nb.thread_cpu_seconds(temporal_pid)
        await asyncio.sleep(args.idle / 2)
        idle_cpu = (nb.thread_cpu_seconds(temporal_pid) - idle_before) / (args.idle / 2)
        idle = _temporal_mem()
        bare_rates, bare_cpu = (0.0, 0.0), 0.0
        if args.bare:
            # Before the connectors start: the server's own ceiling, on the same fresh file.
            before = nb.thread_cpu_seconds(temporal_pid)
            rows = await nb.bare_rates(address, args.concurrency, args.bare, variant)
            bare_rates = (rows[0].rate or 0.0, rows[1].rate or 0.0)
            # Both bare rows and their warm-ups ran on this server.
            bare_cpu = (nb.thread_cpu_seconds(temporal_pid) - before) / (2 * (args.bare + 20))
        nb.PIDS.update(base)
        run_dir = root / f"{variant}-{round_}"
        async with (
            nb.pair(run_dir, pg, redis_url, address, layout="one-process") as (p, c),
            httpx.AsyncClient(timeout=30) as client,
        ):
            offer = await nb.prepare_offer(client, p, c)
            rows, _ = await nb.negotiations(p, c, offer, args.concurrency, args.total)
            loaded = _temporal_mem()
        await asyncio.sleep(args.idle)
        nb.PIDS["temporal"] = temporal_pid
        after = _temporal_mem()
    run = next(r for r in rows if r.label.startswith("negotiation, management"))
    return Run(
        variant,
        round_,
        run.rate or 0.0,
        run.p(0.5),
        run.errors,
        dict(nb.CPU),
        idle,
        loaded,
        after,
        f"{nb.EXTRA['load']} -> {nb.EXTRA['load_after']}",
        idle_cpu,
        bare_rates,
        bare_cpu,
    )


async def runs(args: argparse.Namespace) -> list[Run]:
    root = Path(tempfile.mkdtemp(prefix="temporal-runtime-"))
    found: list[Run] = []
    try:
        pg_port, redis_port = embedded.free_port(), embedded.free_port()
        async with (
            services.running(embedded.postgres_spec(root, pg_port)) as pg_child,
            services.running(embedded.redis_spec(root, redis_port)) as redis_child,
        ):
            pg = embedded.postgres_url(pg_port)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            base = {"postgres": pg_child.pid or 0, "redis": redis_child.pid or 0}
            for round_ in range(args.rounds):
                # Alternating order: drift (other jobs on the machine) hits each variant alike.
                order = args.variants if round_ % 2 == 0 else list(reversed(args.variants))
                for variant in order:
                    run = await one_run(root, pg, redis_url, base, variant, round_, args)
                    found.append(run)
                    print(
                        f"{variant} round {round_ + 1}: {run.rate:.1f}/s, temporal "
                        f"{run.cpu['temporal'] * 1000:.1f} ms, all "
                        f"{sum(run.cpu.values()) * 1000:.0f} ms CPU per negotiation; temporal "
                        f"RSS idle {run.idle.rss_mib:.0f} loaded {run.loaded.rss_mib:.0f} "
                        f"after {run.after.rss_mib:.0f} MiB; load {run.load}",
                        file=sys.stderr,
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return found


def render(found: list[Run], args: argparse.Namespace, seconds: float) -> str:
    by: dict[str, list[Run]] = {}
    for run in found:
        by.setdefault(run.variant, []).append(run)

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    baseline = med([r.cpu["temporal"] for r in by.get(args.variants[0], [])])
    lines = [
        f"## {SECTION}",
        "",
        f"Run {now()} on {machine()}; {seconds:.0f} s in all. Command: `python -m "
        f"tests.bench.temporal_runtime_bench --rounds {args.rounds} --total {args.total} "
        f"--concurrency {args.concurrency} --idle {args.idle:g} --bare {args.bare} --variants "
        f"{' '.join(args.variants)}`.",
        "",
        "Method: the 20-way negotiation run of the Negotiations section (two connectors, one "
        "process each as `connector up` runs them, secure did:web identity, rate limit off, "
        "a warm-up first), once per variant and round, each on a Temporal dev server of its "
        "own started fresh with the flags of `connector.runtime.embedded.temporal_spec` (WAL "
        "pragmas, log level warn) and the variant's environment; Postgres and Redis shared; "
        "variants alternating order between rounds. CPU = user + system time from /proc "
        "during the measured run divided by the negotiations; memory of the server process: "
        f"VmRSS, PSS and USS (smaps_rollup) {args.idle:g} s after it started (idle; its idle "
        f"CPU over the last {args.idle / 2:g} s of those), at the "
        f"end of the measured run (loaded) and {args.idle:g} s after the connectors stopped "
        "(after). Each cell is the median over the rounds; the change is against the first "
        "row.",
        "",
        "| variant | rate (/s) | temporal CPU ms per negotiation | change | all processes, "
        "CPU ms | temporal idle CPU (ms/s) | temporal idle RSS / PSS / USS (MiB) | loaded RSS "
        "/ USS | after RSS / USS |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for variant in args.variants:
        group = by.get(variant, [])
        if not group:
            continue
        temporal = med([r.cpu["temporal"] for r in group])
        change = (temporal / baseline - 1) * 100 if baseline else 0.0

        def mem(pick: Any, group: list[Run] = group) -> str:
            rss, uss = med([pick(r).rss_mib for r in group]), med([pick(r).uss_mib for r in group])
            return f"{rss:.0f} / {uss:.0f}"

        lines.append(
            f"| {VARIANTS[variant][2]} | {med([r.rate for r in group]):.1f} | "
            f"{temporal * 1000:.1f} | {change:+.0f}% | "
            f"{med([sum(r.cpu.values()) for r in group]) * 1000:.0f} | "
            f"{med([r.idle_cpu for r in group]) * 1000:.1f} | "
            f"{med([r.idle.rss_mib for r in group]):.0f} / "
            f"{med([r.idle.pss_mib for r in group]):.0f} / "
            f"{med([r.idle.uss_mib for r in group]):.0f} | "
            f"{mem(lambda r: r.loaded)} | {mem(lambda r: r.after)} |"
        )
    if args.bare:
        lines += [
            "",
            f"Bare Temporal on the same server before the connectors started ({args.bare} "
            "workflows of each kind after 20 of warm-up, tests/bench/bare.py: an empty workflow "
            f"with one activity, then one with one local activity, {args.concurrency} in "
            "flight, one Python worker): rate, and the server's CPU per workflow over both "
            "kinds and their warm-ups (median over the rounds).",
            "",
            "| variant | 1 activity (/s) | 1 local activity (/s) | temporal CPU ms per workflow |",
            "|---|---:|---:|---:|",
            *[
                f"| {VARIANTS[v][2]} | {med([r.bare_rates[0] for r in by[v]]):.1f} | "
                f"{med([r.bare_rates[1] for r in by[v]]):.1f} | "
                f"{med([r.bare_cpu for r in by[v]]) * 1000:.1f} |"
                for v in args.variants
                if v in by
            ],
        ]
    lines += [
        "",
        "Per round (the server's CPU ms per negotiation; all processes; load average before "
        "-> after the measured run):",
        "",
        "| variant | round | rate (/s) | temporal CPU ms | all CPU ms | load |",
        "|---|---:|---:|---:|---:|---|",
        *[
            f"| {r.variant} | {r.round + 1} | {r.rate:.1f} | {r.cpu['temporal'] * 1000:.1f} | "
            f"{sum(r.cpu.values()) * 1000:.0f} | {r.load} |"
            for r in found
        ],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total", type=int, default=100, help="negotiations per run")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds before idle memory")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["go-default", "gogc200", "gogc400", "gogc400-limit", "gomaxprocs1"],
        choices=sorted(VARIANTS),
        help="variants; the first is the baseline",
    )
    parser.add_argument(
        "--bare",
        type=int,
        default=0,
        help="also this many bare Temporal workflows per run, each kind (tests/bench/bare.py)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.monotonic()
    found = asyncio.run(runs(args))
    text = render(found, args, time.monotonic() - started)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
