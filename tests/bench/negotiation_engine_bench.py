"""What one negotiation costs the engine: workflow tasks, activities, timers, search attribute
upserts and projection writes per side, counted on real histories.

Two connectors as `connector up` runs them (one process each, decision 0016) on one embedded
Postgres, Redis and Temporal dev server; negotiations to FINALIZED one at a time, then the
histories of all of them on both sides are read back and their events counted (means per
negotiation; `--events` lists the last one's). Projection writes are the calls of
`connector.stores.negotiations.upsert_view` (the edge's and the workflow's, each one statement
and round trip) and how many of them changed the row. Prints a Markdown table; used for
docs/benchmarks.md ("Negotiations: engine work per negotiation").

    python -m tests.bench.negotiation_engine_bench [--count N] [--events] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from connector.core.ids import negotiation_workflow_id
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.stores import negotiations
from connector.temporal.client import connect
from tests import services
from tests.bench.common import machine, now, write_section

# Projection writes by role: [calls, of which changed the row].
WRITES: dict[str, list[int]] = {"consumer": [0, 0], "provider": [0, 0]}


def _count_writes() -> None:
    """Count every projection write; before api.negotiation.gateway binds the function at its
    import."""
    upsert = negotiations.upsert_view

    async def counted(conn: Any, record: NegotiationRecord) -> Any:
        result = await upsert(conn, record)
        tally = WRITES[record.negotiation.role.value.lower()]
        tally[0] += 1
        tally[1] += int(result.changed)
        return result

    negotiations.upsert_view = counted


# Rows of the table, in order: (label, how to count it from the event-type counts).
COUNTED = (
    ("events", None),
    ("workflow tasks", "WORKFLOW_TASK_COMPLETED"),
    ("scheduled activities", "ACTIVITY_TASK_SCHEDULED"),
    ("local activities (markers)", "MARKER_RECORDED"),
    ("timers started", "TIMER_STARTED"),
    ("timers cancelled", "TIMER_CANCELED"),
    ("search attribute upserts", "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"),
    ("updates accepted", "WORKFLOW_EXECUTION_UPDATE_ACCEPTED"),
    ("workflow tasks failed", "WORKFLOW_TASK_FAILED"),
)


async def _history(connector: Any, workflow_id: str) -> list[Any]:
    client = await connect(connector.settings)
    handle = client.get_workflow_handle(workflow_id)
    return [e async for e in handle.fetch_history_events()]


async def measure(count: int) -> tuple[str, str]:
    """The table, and the events of the last negotiation on both sides."""
    _count_writes()
    from tests.twoconn import catalog_offer, connector_pair, negotiate_to_finalized, publish_offer

    with tempfile.TemporaryDirectory(prefix="negotiation-shape-") as tmp:
        root = Path(tmp)
        async with (
            services.postgres(root / "pg") as pg,
            services.redis(root / "redis") as redis_url,
            services.temporal(root / "temporal", ["provider", "consumer"]) as address,
            connector_pair(pg, redis_url, address, root, edge_process=True) as (provider, cons),
        ):
            await publish_offer(provider, "asset-1")
            offer = await catalog_offer(cons, provider, "asset-1")
            last: dict[str, Any] = {}
            done: list[dict[str, Any]] = []
            for _ in range(count):
                last = await negotiate_to_finalized(cons, provider, offer)
                done.append(last)
            await asyncio.sleep(0.5)  # the last workflow's final projection
            writes = {
                role: (calls / count, changed / count) for role, (calls, changed) in WRITES.items()
            }
            everyone: dict[str, list[list[Any]]] = {"consumer": [], "provider": []}
            for d in done:
                everyone["consumer"].append(
                    await _history(cons, negotiation_workflow_id(Role.CONSUMER, d["consumerPid"]))
                )
                everyone["provider"].append(
                    await _history(
                        provider, negotiation_workflow_id(Role.PROVIDER, d["providerPid"])
                    )
                )
    sides = {side: histories[-1] for side, histories in everyone.items()}
    counts = {
        side: collections.Counter(
            EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for evs in histories for e in evs
        )
        for side, histories in everyone.items()
    }
    events = {side: sum(map(len, histories)) for side, histories in everyone.items()}
    lines = [
        f"| per negotiation (mean of {count}) | consumer | provider | both |",
        "|---|---:|---:|---:|",
    ]
    for label, key in COUNTED:
        values = [
            (events[s] if key is None else counts[s].get(key, 0)) / count
            for s in ("consumer", "provider")
        ]
        lines.append(f"| {label} | {values[0]:.1f} | {values[1]:.1f} | {sum(values):.1f} |")
    for i, label in enumerate(("projection writes", "of which changed the row")):
        w = [writes["consumer"][i], writes["provider"][i]]
        lines.append(f"| {label} | {w[0]:.1f} | {w[1]:.1f} | {sum(w):.1f} |")
    failures = collections.Counter(
        f"{side}: cause {e.workflow_task_failed_event_attributes.cause}, "
        f"{e.workflow_task_failed_event_attributes.failure.message[:160]}"
        for side, histories in everyone.items()
        for evs in histories
        for e in evs
        if e.HasField("workflow_task_failed_event_attributes")
    )
    failed = "; ".join(f"{what} ({n} of {count})" for what, n in failures.items())
    lines.append("")
    lines.append(f"Workflow tasks failed and retried: {failed or 'none'}.")
    listing: list[str] = []
    for side, evs in sides.items():
        listing.append(f"\n{side}:")
        for e in evs:
            line = f"  {e.event_id:3} {EventType.Name(e.event_type)}"
            if e.HasField("workflow_task_failed_event_attributes"):
                attrs = e.workflow_task_failed_event_attributes
                line += f" (cause {attrs.cause}: {attrs.failure.message[:200]})"
            listing.append(line)
    return "\n".join(lines), "\n".join(listing)


TITLE = "Negotiations: engine work per negotiation"

NOTES = """Notes:

- One negotiation to FINALIZED is 3 updates (the consumer's: the agreement and the FINALIZED
  event; the provider's: the verification), 2 scheduled activities (the sends that answer an
  update, decision 0010; the dev server dispatches them eagerly, with the answer to the workflow
  task that scheduled them), the local activities of the other sends and of the projections,
  and one deadline timer per side (decision 0025). The edge projects the states it answers
  (decision 0008), the workflow those it reaches by its own sends, and each side's final one
  again (a no-op write when the edge's came first; it is what repairs a projection whose edge
  died after the update).
- A workflow task failed with `UnhandledCommand` when the consumer's verification send and the
  provider's FINALIZED event (which the provider sends as soon as it has answered the
  verification) arrive in the same instant: the task that applied the event tried to complete
  the workflow while the activity's result was being recorded; the retried task sees both.
  The same race makes the consumer's counts vary between runs: when the event and the answer
  come together, one workflow task (and its projection) takes both.
- Before decision 0025 (same method, 2026-12-07 05:15 UTC, HEAD 49258a6, 20 negotiations):
  54.5 events per negotiation (consumer 31.4, provider 23.0), 2.9 timers started and 2.9
  cancelled, 4.9 search attribute upserts (each with all six attributes; now only those that
  changed), 6.9 workflow tasks, 9.9 projection writes of which 8.8 changed the row.
- CPU per negotiation, both sides and all processes, before and after decision 0025: the
  20-way run of 'Negotiations by layout' (one process per connector, 100 negotiations a round),
  rounds alternating between the two trees on 2026-12-07 04:53-05:24 UTC at load averages of
  4 to 15 (other jobs on the 2 cores): after 215 (the timer alone), 243, 234, 219, 224 ms
  (median 224), before
  205, 246, 244, 233, 189, 243 ms (median 233); the Temporal server's share 77-91 ms against
  66-91 ms. The difference (about 4 % in the medians) is inside the spread between rounds:
  4 fewer history events and 3 fewer timer tasks of about 55 events and 7 workflow tasks per
  negotiation do not show on a machine this busy. The two layouts with this change, one
  round of 100 at 05:26 UTC (load average 10-11): one process per connector 200 ms and
  3.7/s, a process per role 255 ms and 3.2/s.
- The sandbox's per-run cost, same run shape with this change (2 rounds at 05:38 UTC, load
  average 3.5-7.5): the two connectors' processes 133 ms per negotiation with the sandbox,
  103 ms with `workers.workflow_sandbox=false` (234 ms against 208 ms with every process).
  Sampled with py-spy, the provider spent about a fifth of its busy time creating the
  workflow's sandbox (re-importing workflows/negotiation.py, running `@workflow.defn` on the
  class again) and about a tenth converting and encrypting payloads. Keeping the sandbox and
  losing that cost would mean passing the workflow module itself through, which leaves its
  determinism to the ruff bans and the replay tests alone: a rule change not made here."""


def render(table: str, count: int, seconds: float) -> str:
    return "\n\n".join(
        [
            f"## {TITLE}",
            f"Run {now()} on {machine()}; {seconds:.0f} s in all. Command: "
            f"`python -m tests.bench.negotiation_engine_bench --count {count}`.",
            "Method: two connectors as `connector up` runs them (control plane, data plane and "
            "workers in one process each, decision 0016; tests/twoconn.py with "
            "`edge_process=True`, secure did:web identity, the open policy) on one embedded "
            "Postgres, Redis and Temporal dev server (the pragmas and flags of "
            "`connector.runtime.embedded.temporal_spec`); negotiations to FINALIZED one at a "
            "time; then every history of both sides is read back from Temporal and its events "
            "counted. "
            "Projection writes = calls of `connector.stores.negotiations.upsert_view` by the "
            "edge and the workflow (one statement and round trip each), counted in the process.",
            table,
            NOTES,
        ]
    )


def main() -> None:
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5, help="negotiations to run")
    parser.add_argument("--events", action="store_true", help="list the last one's events")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    table, listing = asyncio.run(measure(args.count))
    section = render(table, args.count, time.monotonic() - started)
    print(section)
    if args.events:
        print(listing)
    if not args.no_write:
        write_section(TITLE, section)


if __name__ == "__main__":
    main()
