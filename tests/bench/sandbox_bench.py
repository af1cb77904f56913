"""What the workflow sandbox costs per negotiation, in-process: real histories replayed with
each workflow runner variant, CPU time measured.

Two connectors (tests/twoconn.py, in-process workers, secure did:web identity, the open policy)
on one embedded Postgres, Redis and Temporal dev server run negotiations to FINALIZED one at a
time; the histories of both sides are read back. The services then stop and this process
replays every history with each variant's runner (a `Replayer` per side, with that connector's
data converter: payloads are decrypted and converted as a worker does), rounds alternating the
variants' order. A replay creates the workflow instance and runs every activation of the run,
the work a worker does for a workflow run; what it leaves out (polling, the server) does not
depend on the runner. CPU = `time.process_time()` of this process (all its threads, the SDK's
core included) per negotiation (both sides' histories), after a `gc.collect()`; the median over
the rounds is the figure (other jobs on the machine spread single rounds widely).

Run it on byte-compiled sources (`make bytecode`, as the images are): without `.pyc` files the
sandbox compiles the workflow module from source on every run and that dominates.

    python -m tests.bench.sandbox_bench [--count N] [--rounds R] [--profile VARIANT]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from connector.core.ids import negotiation_workflow_id
from connector.core.negotiation.states import Role
from connector.temporal.client import connect
from connector.temporal.codec import data_converter
from tests import services
from tests.bench.common import machine, now
from workers.main import SANDBOX_PASSTHROUGH, workflow_runner
from workers.sandbox import SandboxedRunner
from workflows.negotiation import NegotiationWorkflow

Side = tuple[DataConverter, list[WorkflowHistory]]


def _sdk_runner(*passthrough: str) -> Callable[[], WorkflowRunner]:
    """The SDK's sandbox as it comes (the runner before decision 0030)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*passthrough)
    return lambda: SandboxedWorkflowRunner(restrictions=restrictions)


def _our_runner(*passthrough: str) -> Callable[[], WorkflowRunner]:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*passthrough)
    return lambda: SandboxedRunner(restrictions=restrictions)


VARIANTS: dict[str, Callable[[], WorkflowRunner]] = {
    "unsandboxed": UnsandboxedWorkflowRunner,
    "SDK sandbox (before decision 0030)": _sdk_runner(*SANDBOX_PASSTHROUGH),
    "SDK sandbox, `workflows` package passed through": _sdk_runner("workflows"),
    "`workers.main.workflow_runner()` (decision 0030)": lambda: workflow_runner(sandbox=True),
    "decision 0030 + `workflows` package passed through": _our_runner("workflows"),
}


async def record(count: int) -> list[Side]:
    """Both sides' histories of `count` negotiations, with each side's data converter."""
    from tests.twoconn import catalog_offer, connector_pair, negotiate_to_finalized, publish_offer

    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        root = Path(tmp)
        async with (
            services.postgres(root / "pg") as pg,
            services.redis(root / "redis") as redis_url,
            services.temporal(root / "temporal", ["provider", "consumer"]) as address,
            connector_pair(pg, redis_url, address, root) as (provider, cons),
        ):
            await publish_offer(provider, "asset-1")
            offer = await catalog_offer(cons, provider, "asset-1")
            ids: list[tuple[str, str]] = []
            for _ in range(count):
                last = await negotiate_to_finalized(cons, provider, offer)
                ids.append((last["consumerPid"], last["providerPid"]))
            sides: list[Side] = []
            for connector, role, index in ((cons, Role.CONSUMER, 0), (provider, Role.PROVIDER, 1)):
                client = await connect(connector.settings)
                histories = []
                for pair in ids:
                    handle = client.get_workflow_handle(negotiation_workflow_id(role, pair[index]))
                    for _ in range(100):  # the close reaches the history a moment later
                        history = await handle.fetch_history()
                        if history.events[-1].HasField(
                            "workflow_execution_completed_event_attributes"
                        ):
                            break
                        await asyncio.sleep(0.05)
                    histories.append(history)
                sides.append((data_converter(connector.settings), histories))
    return sides


async def _each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


async def replay(sides: list[Side], runner: WorkflowRunner) -> float:
    """CPU seconds to replay every history once."""
    gc.collect()
    started = time.process_time()
    for converter, histories in sides:
        replayer = Replayer(
            workflows=[NegotiationWorkflow], workflow_runner=runner, data_converter=converter
        )
        results = await replayer.replay_workflows(_each(histories), raise_on_replay_failure=False)
        assert not results.replay_failures, results.replay_failures
    return time.process_time() - started


#: `--live` variants, names of VARIANTS.
LIVE = (
    "SDK sandbox (before decision 0030)",
    "`workers.main.workflow_runner()` (decision 0030)",
)


async def live(count: int, rounds: int, variants: list[str]) -> str:
    """Both connectors in this process (as `connector up` runs each: control plane, data plane
    and workers on one loop), negotiations one at a time; CPU of this process per negotiation,
    a fresh pair per variant and round, variants alternating."""
    import workers.main
    from tests.twoconn import catalog_offer, connector_pair, negotiate_to_finalized, publish_offer

    ours = workers.main.workflow_runner
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    loads = [os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="sandbox-live-") as tmp:
        root = Path(tmp)
        async with (
            services.postgres(root / "pg") as pg,
            services.redis(root / "redis") as redis_url,
            services.temporal(root / "temporal", ["provider", "consumer"]) as address,
        ):
            for r in range(rounds):
                names = variants if r % 2 == 0 else variants[::-1]
                for name in names:
                    chosen = VARIANTS[name]

                    def runner(*, sandbox: bool = True, chosen: Any = chosen) -> WorkflowRunner:
                        return chosen() if sandbox else ours(sandbox=False)

                    workers.main.workflow_runner = runner
                    async with connector_pair(
                        pg,
                        redis_url,
                        address,
                        root / f"{r}-{len(cpu[name])}-{name[:3]}",
                        edge_process=True,
                    ) as (provider, cons):
                        await publish_offer(provider, "asset-1")
                        offer = await catalog_offer(cons, provider, "asset-1")

                        for _ in range(3):  # warm-up
                            await negotiate_to_finalized(cons, provider, offer)
                        gc.collect()
                        before = time.process_time()
                        for _ in range(count):
                            await negotiate_to_finalized(cons, provider, offer)
                        cpu[name].append((time.process_time() - before) / count * 1000)
                    print(f"{name} round {r + 1}: {cpu[name][-1]:.1f} ms", flush=True)
    workers.main.workflow_runner = ours
    loads.append(os.getloadavg())
    lines = [
        f"| runner | CPU ms per negotiation, both connectors (median of {rounds}) | min | max |",
        "|---|---:|---:|---:|",
    ]
    for name, values in cpu.items():
        lines.append(
            f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |"
        )
    first = variants[0]
    for name in variants[1:]:
        diffs = [a - b for a, b in zip(cpu[first], cpu[name], strict=True)]
        lines.append(
            f"| {first} minus {name}, median of the rounds' differences | "
            f"{statistics.median(diffs):+.1f} | {min(diffs):+.1f} | {max(diffs):+.1f} |"
        )
    load = " -> ".join(" / ".join(f"{x:.2f}" for x in avg) for avg in loads)
    lines += [
        "",
        "Per round: "
        + "; ".join(f"{name}: " + ", ".join(f"{v:.1f}" for v in vs) for name, vs in cpu.items()),
        "",
        f"Run {now()} on {machine()}; {count} negotiations a round, load average {load}.",
    ]
    return "\n".join(lines)


async def measure(count: int, rounds: int, profile: str | None) -> str:
    sides = await record(count)
    names = list(VARIANTS)
    for name in names:  # warm-up: imports, first compilations
        await replay(sides, VARIANTS[name]())
    if profile is not None:
        profiler = cProfile.Profile()
        runner = VARIANTS[profile]()
        profiler.enable()
        for _ in range(rounds):
            await replay(sides, runner)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)
        stats.print_callers("compile|exec|_run_code|_create_instance")
        return ""
    cpu: dict[str, list[float]] = {name: [] for name in names}
    loads = [os.getloadavg()]
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            cpu[name].append(await replay(sides, VARIANTS[name]()) / count * 1000)
    loads.append(os.getloadavg())
    base = statistics.median(cpu["unsandboxed"])
    lines = [
        f"| runner | CPU ms per negotiation (median of {rounds}) | min | max | over unsandboxed |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        m = statistics.median(cpu[name])
        lines.append(
            f"| {name} | {m:.2f} | {min(cpu[name]):.2f} | {max(cpu[name]):.2f} | {m - base:+.2f} |"
        )
    load = " -> ".join(" / ".join(f"{x:.2f}" for x in avg) for avg in loads)
    lines.append("")
    lines.append(
        f"Run {now()} on {machine()}; {count} negotiations ({2 * count} histories), "
        f"load average {load}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20, help="negotiations to record")
    parser.add_argument("--rounds", type=int, default=5, help="replays per variant")
    parser.add_argument("--profile", choices=list(VARIANTS), help="cProfile one variant instead")
    parser.add_argument("--live", action="store_true", help="live negotiations instead of replays")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="with --live")
    args = parser.parse_args()
    if args.live:
        print(asyncio.run(live(args.count, args.rounds, args.variants or list(LIVE))))
        return
    print(asyncio.run(measure(args.count, args.rounds, args.profile)))


if __name__ == "__main__":
    main()
