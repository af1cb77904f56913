"""Whole-node restore of an edge node (issue 18, decision 0017): time to ready, nothing lost.

    python -m tests.bench.node_restore_bench [--finished N] [--real R] [--inflight I] [--no-write]

Two `connector up` edge nodes on this machine (provider and consumer, each with its own embedded
Postgres, Redis and Temporal dev server on SQLite). The provider is filled with:

- R real negotiations, FINALIZED through the whole protocol (consumer -> provider over HTTP);
- N - R finished negotiations by a fast path: on the provider's Temporal, `bench.bare` workflows
  (start, one activity, complete) whose payloads are sized so that each history holds as many
  bytes as a real provider negotiation's (measured from the R real ones in the SQLite database),
  and in its Postgres the projection rows (negotiation, timeline, agreement) cloned from a real
  one; real negotiations cost ~131 ms of CPU each (see "Negotiations"), 10,000 of them would
  take this machine 15-25 minutes;
- I in-flight negotiations: the consumer's DSP endpoint is cut off by a proxy that answers 503, so
  each provider workflow sits in AGREED with its send retrying.

Then the operator's sequence: `connector backup now` (node backup, verified), stop the node, keep
the recovery key, wipe the data dir, `connector restore --node latest`, `connector up`. Time to
ready = restore command start to the stack's "connector is up" banner. Nothing lost = the same
negotiations and agreements listed, the same workflow executions in Temporal, and once the proxy
lets the provider's sends through, every in-flight negotiation FINALIZED on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.worker import Worker

from connector.runtime.embedded import temporal_db_path
from connector.temporal.client import connect
from tests.backup.node_support import CutProxy, NodeStack, catalog_offer, start_negotiation
from tests.bench.bare import BareWorkflow, noop
from tests.bench.common import machine, now, write_section
from tests.e2e.secret_scan import SecretBackend

SECTION = "Whole-node restore"
READY_TARGET_SECONDS = 60.0


def history_bytes(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        value = conn.execute("SELECT coalesce(sum(length(data)), 0) FROM history_node").fetchone()
        return int(value[0])
    finally:
        conn.close()


async def bounded(items: list[Any], limit: int, fn: Any) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with gate:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def clone_rows(pg_url: str, template_pid: str, count: int) -> None:
    """`count` copies of one finished negotiation's rows (projection, timeline, agreement), its
    process and agreement ids replaced everywhere they appear (columns and JSON records)."""
    conn = await asyncpg.connect(pg_url)
    try:
        agreement_id = await conn.fetchval(
            "SELECT agreement_id FROM agreements WHERE own_pid = $1", template_pid
        )
        for table in ("negotiations", "negotiation_events", "agreements"):
            columns = await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = $1 ORDER BY ordinal_position",
                table,
            )
            select = []
            for column in columns:
                name, kind = column["column_name"], column["data_type"]
                if kind in ("text", "jsonb"):
                    swapped = (
                        f"replace(replace({name}::text, $1, 'fill-' || g || '-' || $1), "
                        f"$3, 'fill-' || g || '-' || $3)"
                    )
                    select.append(f"{swapped}::{kind}")
                else:
                    select.append(name)
            names_sql = ", ".join(c["column_name"] for c in columns)
            await conn.execute(
                f"INSERT INTO {table} ({names_sql}) "  # noqa: S608 - catalog names
                f"SELECT {', '.join(select)} FROM {table}, generate_series(1, $2) AS g "
                "WHERE own_pid = $1",
                template_pid,
                count,
                agreement_id,
            )
    finally:
        await conn.close()


async def projection(pg_url: str) -> tuple[set[str], int]:
    conn = await asyncpg.connect(pg_url)
    try:
        pids = {r["own_pid"] for r in await conn.fetch("SELECT own_pid FROM negotiations")}
        agreements: int = await conn.fetchval("SELECT count(*) FROM agreements")
    finally:
        await conn.close()
    return pids, agreements


def workflow_ids(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT workflow_id, status FROM executions_visibility"))
    finally:
        conn.close()


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with CutProxy() as proxy, SecretBackend("X-Key", "bench-secret", 1024) as backend:
        provider = NodeStack("provider", root)
        consumer = NodeStack("consumer", root, public_port=proxy.port)
        proxy.target = consumer.edge.ports["server"]
        provider.peer_did, consumer.peer_did = consumer.did, provider.did
        # Quiet logs: the benchmark measures the connector, not its console.
        quiet = {"CONNECTOR_LOGGING__LEVEL": "warning"}
        provider.extra.update(quiet)
        consumer.extra.update(quiet)
        provider.start()
        consumer.start()
        try:
            await asyncio.gather(
                asyncio.to_thread(provider.ready), asyncio.to_thread(consumer.ready)
            )
            await provider.publish(
                "bench-asset",
                {"type": "http", "baseUrl": backend.url, "headers": {"X-Key": "bench-secret"}},
            )
            offer = await catalog_offer(consumer, provider, "bench-asset")
            db = temporal_db_path(provider.edge.data_dir)

            # Real finished negotiations: the realistic history size per negotiation.
            before_bytes = history_bytes(db)
            t0 = time.monotonic()

            async def negotiate(_: int) -> dict[str, Any]:
                started = await start_negotiation(consumer, provider, offer)
                return await consumer.wait("negotiations", started["id"], {"FINALIZED"}, 600)

            real = await bounded(list(range(args.real)), 8, negotiate)
            results["real_rate"] = args.real / (time.monotonic() - t0)
            per_negotiation = (history_bytes(db) - before_bytes) / max(1, args.real)
            results["history_bytes"] = per_negotiation

            # Fast path: bench.bare workflows with as many history bytes, and cloned rows.
            fill = args.finished - args.real
            settings = provider.edge.settings(**provider.env())
            client = await connect(settings)
            # The payload is in four places of the history (input, activity input and result,
            # workflow result); the rest is event overhead (~1.5 KB measured for an empty one).
            payload = "x" * max(0, int((per_negotiation - 1500) / 4))
            # The node's workers do not run the bench workflow: a Worker of this process does.
            queue = f"bench-fill-{uuid.uuid4().hex[:8]}"
            t0 = time.monotonic()

            async def bare(i: int) -> None:
                await client.execute_workflow(
                    BareWorkflow.run,
                    payload,
                    id=f"fill-{i}-{uuid.uuid4().hex[:6]}",
                    task_queue=queue,
                )

            async with Worker(
                client, task_queue=queue, workflows=[BareWorkflow], activities=[noop]
            ):
                await bounded(list(range(fill)), 20, bare)
            results["fill_rate"] = fill / max(1e-9, time.monotonic() - t0)
            provider_rows = await provider.listed("negotiations")
            template = next(n["id"] for n in provider_rows if n["state"] == "FINALIZED")
            pg_url = f"postgresql://postgres@127.0.0.1:{provider.edge.ports['postgres']}/connector"
            await clone_rows(pg_url, template, fill)

            # In flight: the provider's agreements cannot reach the consumer.
            proxy.cut = True
            inflight = await bounded(
                list(range(args.inflight)),
                8,
                lambda _: start_negotiation(consumer, provider, offer),
            )
            deadline = time.monotonic() + 600
            while True:
                listed = await provider.listed("negotiations")
                moving = [n for n in listed if n["state"] != "FINALIZED"]
                if len(moving) == args.inflight and proxy.refused >= args.inflight:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(moving)} of {args.inflight} in flight")
                await asyncio.sleep(0.5)
            before_pids, before_agreements = await projection(pg_url)
            before_workflows = workflow_ids(db)
            results["before"] = {
                "negotiations": len(before_pids),
                "agreements": before_agreements,
                "workflows": len(before_workflows),
                "running": sum(1 for s in before_workflows.values() if s == 1),
            }

            t0 = time.monotonic()
            backed_up = await asyncio.to_thread(provider.command, "backup", "now")
            assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
            results["backup_seconds"] = time.monotonic() - t0
            (backup_id,) = [p.name for p in provider.backups.iterdir() if p.name[0].isdigit()]
            folder = provider.backups / backup_id
            results["sizes"] = {p.name: p.stat().st_size for p in folder.iterdir()}
            results["sqlite_bytes"] = db.stat().st_size

            await asyncio.to_thread(provider.edge.stop)
            kept = root / "operator-safe" / "recovery-key.json"
            kept.parent.mkdir(mode=0o700)
            shutil.copy2(provider.edge.data_dir / "recovery-key.json", kept)
            shutil.rmtree(provider.edge.data_dir)

            t0 = time.monotonic()
            restored = await asyncio.to_thread(
                provider.command, "restore", "--node", "latest", "--recovery-key", str(kept)
            )
            assert restored.returncode == 0, restored.stdout + restored.stderr
            results["restore_seconds"] = time.monotonic() - t0
            provider.start()
            await asyncio.to_thread(provider.ready, 600)
            results["ready_seconds"] = time.monotonic() - t0
            results["up_seconds"] = results["ready_seconds"] - results["restore_seconds"]

            after_pids, after_agreements = await projection(pg_url)
            after_workflows = workflow_ids(db)
            results["after"] = {
                "negotiations": len(after_pids),
                "agreements": after_agreements,
                "workflows": len(after_workflows),
            }
            results["same_negotiations"] = after_pids == before_pids
            # The snapshot also holds what started after the count above: the backup run itself.
            results["workflows_missing"] = sorted(set(before_workflows) - set(after_workflows))
            results["workflows_extra"] = sorted(set(after_workflows) - set(before_workflows))[:3]
            listed = await provider.listed("negotiations")
            results["listed_after"] = len({n["id"] for n in listed})
            proxy.cut = False
            t0 = time.monotonic()
            done = await bounded(
                inflight,
                20,
                lambda n: consumer.wait("negotiations", n["id"], {"FINALIZED"}, 600),
            )
            deadline = time.monotonic() + 600
            while True:
                states = [n["state"] for n in await provider.listed("negotiations")]
                if all(s == "FINALIZED" for s in states) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            results["inflight_finished_seconds"] = time.monotonic() - t0
            results["inflight_finalized_consumer"] = sum(
                1 for n in done if n["state"] == "FINALIZED"
            )
            results["provider_not_finalized"] = sum(1 for s in states if s != "FINALIZED")
            results["real_finished"] = len(real)
        finally:
            await asyncio.gather(
                asyncio.to_thread(provider.edge.stop), asyncio.to_thread(consumer.edge.stop)
            )
    return results


def report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    mib = 1024 * 1024
    sizes = r["sizes"]
    before, after = r["before"], r["after"]
    lost = (
        not r["same_negotiations"]
        or before["agreements"] != after["agreements"]
        or bool(r["workflows_missing"])
        or r["listed_after"] != before["negotiations"]
        or r["inflight_finalized_consumer"] != args.inflight
        or r["provider_not_finalized"] != 0
    )
    met = r["ready_seconds"] < READY_TARGET_SECONDS and not lost
    real_minutes = args.finished / r["real_rate"] / 60
    command = (
        f"`python -m tests.bench.node_restore_bench --finished {args.finished} "
        f"--real {args.real} --inflight {args.inflight}`"
    )
    method = " ".join(
        [
            "Method: two `connector up` edge nodes on this machine (each its own embedded",
            "Postgres, Redis and Temporal dev server on SQLite; every process of both, and the",
            "benchmark, share the cores with whatever else ran: load average below). The",
            f"provider holds {args.finished:,} finished negotiations: {args.real} real ones",
            "(FINALIZED through the whole protocol, consumer to provider over HTTP,",
            f"{r['real_rate']:.1f}/s) and {args.finished - args.real:,} by a fast path",
            "(`bench.bare` workflows whose payloads make each history as large as a real",
            "provider negotiation's, measured from the real ones:",
            f"{r['history_bytes'] / 1024:.1f} KiB of history each; {r['fill_rate']:.0f}",
            "workflows/s; plus the projection rows of a real one cloned in Postgres).",
            f"Creating all {args.finished:,} for real would take about {real_minutes:.0f}",
            f"minutes at the measured rate. Then {args.inflight} negotiations in flight: a",
            "proxy answers the consumer's DSP endpoint with 503, so each provider workflow",
            "waits in AGREED with its send retrying. The operator's sequence follows:",
            "`connector backup now` (node backup, verified), stop the node, keep the recovery",
            "key, wipe the data dir, `connector restore --node latest`, `connector up`. Time to",
            "ready = from the restore command's start to `connector up`'s banner. Nothing lost",
            "= the same negotiation rows (ids) and agreements as before the backup, every",
            "workflow execution of before the backup in the restored Temporal database, and",
            "once the proxy lets the sends through, every in-flight negotiation FINALIZED on",
            "both sides.",
        ]
    )
    header = (
        "| finished | in flight | Temporal SQLite (MiB) | dump / temporal.db part (MiB) "
        "| backup (s) | restore --node (s) | up to ready (s) | **time to ready (s)** "
        "| in-flight all FINALIZED after (s) |"
    )
    cells = [
        f"{args.finished:,}",
        str(args.inflight),
        f"{r['sqlite_bytes'] / mib:.1f}",
        f"{sizes.get('connector.dump', 0) / mib:.1f} / {sizes.get('temporal.db', 0) / mib:.1f}",
        f"{r['backup_seconds']:.1f}",
        f"{r['restore_seconds']:.1f}",
        f"{r['up_seconds']:.1f}",
        f"**{r['ready_seconds']:.1f}**",
        f"{r['inflight_finished_seconds']:.1f}",
    ]
    nothing_lost = " ".join(
        [
            f"Nothing lost: negotiation rows {before['negotiations']:,} before the backup /",
            f"{after['negotiations']:,} after the restore (same ids: {r['same_negotiations']};",
            f"{r['listed_after']:,} listed by the management API); agreements",
            f"{before['agreements']:,} / {after['agreements']:,}; Temporal workflow executions",
            f"{before['workflows']:,} ({before['running']} running) / {after['workflows']:,},",
            f"missing after the restore: {len(r['workflows_missing'])}, new in the snapshot:",
            f"{', '.join(r['workflows_extra']) or 'none'} (started after the count: the backup",
            "run itself); in-flight FINALIZED on the consumer",
            f"{r['inflight_finalized_consumer']} of {args.inflight}; provider negotiations not",
            f"FINALIZED at the end: {r['provider_not_finalized']}.",
        ]
    )
    target = (
        f"- whole-node restore of a node with {args.finished:,} finished and {args.inflight} "
        f"in-flight negotiations < {READY_TARGET_SECONDS:.0f} s to ready, nothing lost: "
        f"**{'met' if met else 'MISSED'}** ({r['ready_seconds']:.1f} s"
        f"{', something lost' if lost else ''})"
    )
    notes = " ".join(
        [
            "Notes: the in-flight sends resume on the restored node when their retry timer",
            "fires (`SEND_RETRY`, at most 10 s apart), so the last column includes up to one",
            "back-off interval. The fast path's histories match the real ones in bytes, not in",
            "event count (a real provider negotiation has more, smaller events); the restore's",
            "time follows bytes (decrypt, copy, integrity check). Secrets and configuration",
            f"parts: {sizes.get('secrets', 0)} and {sizes.get('config.json', 0)} bytes. Load",
            f"average at the end: {_load()}.",
        ]
    )
    lines = [
        f"## {SECTION}",
        "",
        f"Run {now()} on {machine()}. Command: {command}.",
        "",
        method,
        "",
        header,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| " + " | ".join(cells) + " |",
        "",
        nothing_lost,
        "",
        "Targets:",
        "",
        target,
        "",
        notes,
    ]
    return "\n".join(lines) + "\n"


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finished", type=int, default=10_000)
    parser.add_argument("--real", type=int, default=200)
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.real > args.finished:
        parser.error("--real cannot exceed --finished")
    with tempfile.TemporaryDirectory(prefix="node-restore-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    text = report(args, results)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
