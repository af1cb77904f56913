"""What one negotiation costs the engine: workflow tasks, activities, timers, search attribute
upserts and projection writes per side, counted on real histories.

Two connectors as `connector up` runs them (one process each, decision 0016) on one embedded
Postgres, Redis and Temporal dev server; a few negotiations to FINALIZED, then the histories of
the last one on both sides are read back and their events counted. Projection writes are
the calls of `connector.stores.negotiations.upsert_view` (the edge's and the workflow's, each one
statement and round trip), counted over all the negotiations run, and how many of them changed
the row. Prints a Markdown table; used for docs/benchmarks.md ("Negotiations: engine work per
negotiation").

    python -m tests.bench.negotiation_shape [--count N] [--events]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from connector.core.ids import negotiation_workflow_id
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.stores import negotiations
from connector.temporal.client import connect
from tests import services

# Projection writes by role: [calls, of which changed the row].
WRITES: dict[str, list[int]] = {"consumer": [0, 0], "provider": [0, 0]}


def _count_writes() -> None:
    """Count every projection write; before api.gateway binds the function at its import."""
    upsert = negotiations.upsert_view

    async def counted(conn: Any, record: NegotiationRecord) -> Any:
        result = await upsert(conn, record)
        tally = WRITES[record.negotiation.role.value.lower()]
        tally[0] += 1
        tally[1] += int(result.changed)
        return result

    negotiations.upsert_view = counted  # type: ignore[assignment]


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
)


async def _history(connector: Any, workflow_id: str) -> list[Any]:
    client = await connect(connector.settings)
    handle = client.get_workflow_handle(workflow_id)
    return [e async for e in handle.fetch_history_events()]


async def measure(count: int, show_events: bool) -> str:
    _count_writes()
    from tests.twoconn import catalog_offer, connector_pair, publish_offer

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
            for _ in range(count):
                started = await cons.post(
                    "/negotiations",
                    {
                        "counterPartyAddress": provider.dsp,
                        "counterPartyId": provider.did,
                        "offer": offer,
                    },
                )
                assert started.status_code == 201, started.text
                last = await cons.wait_state(started.json()["id"], {"FINALIZED", "TERMINATED"})
                assert last["state"] == "FINALIZED", last
                await provider.wait_state(last["providerPid"], {"FINALIZED"})
            await asyncio.sleep(0.5)  # the last workflow's final projection
            writes = {
                role: (calls / count, changed / count) for role, (calls, changed) in WRITES.items()
            }
            sides = {
                "consumer": await _history(
                    cons, negotiation_workflow_id(Role.CONSUMER, last["consumerPid"])
                ),
                "provider": await _history(
                    provider, negotiation_workflow_id(Role.PROVIDER, last["providerPid"])
                ),
            }
    counts = {
        side: collections.Counter(EventType.Name(e.event_type)[len("EVENT_TYPE_") :] for e in evs)
        for side, evs in sides.items()
    }
    lines = ["| per negotiation | consumer | provider | both |", "|---|---:|---:|---:|"]
    for label, key in COUNTED:
        values = [
            len(sides[s]) if key is None else counts[s].get(key, 0)
            for s in ("consumer", "provider")
        ]
        lines.append(f"| {label} | {values[0]} | {values[1]} | {sum(values)} |")
    for i, label in enumerate(("projection writes", "of which changed the row")):
        w = [writes["consumer"][i], writes["provider"][i]]
        lines.append(f"| {label} (mean of {count}) | {w[0]:.1f} | {w[1]:.1f} | {sum(w):.1f} |")
    if show_events:
        for side, evs in sides.items():
            lines.append(f"\n{side}:")
            lines += [f"  {e.event_id:3} {EventType.Name(e.event_type)}" for e in evs]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5, help="negotiations to run")
    parser.add_argument("--events", action="store_true", help="list the last one's events")
    args = parser.parse_args()
    print(asyncio.run(measure(args.count, args.events)))


if __name__ == "__main__":
    main()
