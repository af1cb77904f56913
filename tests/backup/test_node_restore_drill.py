"""Whole-node DR drill (issue 18, decision 0017): two `connector up` edge nodes negotiate and
transfer; the provider is backed up while processes are in flight, stopped, its data dir wiped,
restored with `connector restore --node` from the backup and the recovery key the operator kept,
and started again. Every process then finishes on both sides and nothing is lost:

- finished before the backup: negotiations FINALIZED, a push transfer COMPLETED;
- in flight at the backup: pull transfers STARTED (waiting for the consumer to pull and
  complete), negotiations and a transfer whose provider-side sends to the consumer keep failing
  (the consumer's DSP endpoint is cut off by a proxy, so the provider's workflows sit in
  AGREED / REQUESTED with their send activities retrying);
- after the restore: the sends go through, every negotiation is FINALIZED and every transfer
  COMPLETED on both sides, with the data pulled intact; the restored key ring opens a value
  sealed before the disaster; the management key is the same.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from connector.backup.node import recovery_keys
from connector.encryption.aead import open_value, seal_value
from connector.encryption.keyring import DataKeys
from connector.temporal.client import connect
from tests.backup.node_support import (
    CutProxy,
    NodeStack,
    catalog_offer,
    start_negotiation,
)
from tests.e2e.secret_scan import SecretBackend, sink_address
from tests.e2e.transfer_helpers import Sink, pull
from tests.edge import processes_mentioning

pytestmark = pytest.mark.e2e

FINISHED_NEGOTIATIONS = 3
INFLIGHT_NEGOTIATIONS = 3
PULLS_STARTED = 2


async def _until(
    predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_wiped_provider_node_comes_back_from_its_node_backup_and_finishes_everything(
    tmp_path: Path,
) -> None:
    secret = f"backend-secret-{uuid.uuid4().hex}"
    async with (
        CutProxy() as proxy,
        SecretBackend("X-Backend-Key", secret, 256 * 1024) as backend,
        Sink() as sink,
    ):
        provider = NodeStack("provider", tmp_path)
        consumer = NodeStack("consumer", tmp_path, public_port=proxy.port)
        proxy.target = consumer.edge.ports["server"]
        provider.peer_did, consumer.peer_did = consumer.did, provider.did
        provider.start()
        consumer.start()
        try:
            # Off the event loop: the proxy, the backend and the sink answer meanwhile.
            await asyncio.gather(
                asyncio.to_thread(provider.ready), asyncio.to_thread(consumer.ready)
            )
            await provider.publish(
                "node-asset",
                {"type": "http", "baseUrl": backend.url, "headers": {"X-Backend-Key": secret}},
            )
            offer = await catalog_offer(consumer, provider, "node-asset")

            # Finished before the backup.
            finished = []
            for _ in range(FINISHED_NEGOTIATIONS):
                started = await start_negotiation(consumer, provider, offer)
                done = await consumer.wait("negotiations", started["id"], {"FINALIZED"})
                finished.append(done)
            agreement_id = finished[0]["agreementId"]
            transfer = {
                "counterPartyAddress": provider.dsp,
                "counterPartyId": provider.did,
                "agreementId": agreement_id,
            }
            pushed = await consumer.call(
                "POST",
                "/transfers",
                {
                    **transfer,
                    "format": "HttpData-PUSH",
                    "dataDestination": sink_address(
                        f"http://127.0.0.1:{sink.port}/sink/before", "sink-secret"
                    ),
                },
            )
            await consumer.wait("transfers", pushed["id"], {"COMPLETED"})
            # In flight, stable: pull transfers wait for the consumer to pull and complete.
            pulls = []
            for _ in range(PULLS_STARTED):
                started = await consumer.call(
                    "POST", "/transfers", {**transfer, "format": "HttpData-PULL"}
                )
                pulls.append(await consumer.wait("transfers", started["id"], {"STARTED"}))

            # In flight, retrying: the provider's answers cannot reach the consumer.
            proxy.cut = True
            inflight = [
                await start_negotiation(consumer, provider, offer)
                for _ in range(INFLIGHT_NEGOTIATIONS)
            ]
            cut_pull = await consumer.call(
                "POST", "/transfers", {**transfer, "format": "HttpData-PULL"}
            )
            pending_transfers = [*pulls, cut_pull]

            async def provider_holds_them() -> bool:
                listed = await provider.listed("negotiations")
                moving = [n for n in listed if n["state"] != "FINALIZED"]
                moved = await provider.listed("transfers")
                return (
                    len(moving) == INFLIGHT_NEGOTIATIONS
                    and len(moved) == 1 + len(pending_transfers)
                    and proxy.refused >= INFLIGHT_NEGOTIATIONS + 1
                )

            await _until(provider_holds_them, "the provider's in-flight processes")
            before_negotiations = {n["id"]: n for n in await provider.listed("negotiations")}
            before_transfers = {t["id"]: t for t in await provider.listed("transfers")}
            before_agreements = await provider.listed("agreements")
            states = sorted(n["state"] for n in before_negotiations.values())
            assert states.count("FINALIZED") == FINISHED_NEGOTIATIONS, states
            assert sorted(t["state"] for t in before_transfers.values()).count("COMPLETED") == 1

            ring_path = provider.edge.data_dir / "keys" / "data-keys.json"
            sealed = seal_value(
                DataKeys.open(ring_path, create=False), "edr", "sealed before", b"drill"
            )
            management_key = provider.key

            backed_up = await asyncio.to_thread(provider.command, "backup", "now")
            assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
            assert "verified" in backed_up.stdout, backed_up.stdout
            (backup_id,) = [p.name for p in provider.backups.iterdir() if p.name[0].isdigit()]
            listing = await asyncio.to_thread(provider.command, "backup", "list")
            assert f"{backup_id}" in listing.stdout
            assert "verified  node" in listing.stdout, listing.stdout
            parts = {p.name for p in (provider.backups / backup_id).iterdir()}
            assert {"connector.dump", "temporal.db", "secrets", "config.json"} <= parts

            # Disaster: the provider's machine is gone. The operator kept the recovery key.
            await asyncio.to_thread(provider.edge.stop)
            kept = tmp_path / "operator-safe" / "recovery-key.json"
            kept.parent.mkdir(mode=0o700)
            shutil.copy2(provider.edge.data_dir / "recovery-key.json", kept)
            assert processes_mentioning(str(provider.edge.data_dir)) == []
            shutil.rmtree(provider.edge.data_dir)
            provider.edge.data_dir.mkdir(mode=0o700)
            (provider.edge.data_dir / "leftover").write_text("x")

            refused = await asyncio.to_thread(
                provider.command, "restore", "--node", "latest", "--recovery-key", str(kept)
            )
            assert refused.returncode == 1
            assert refused.stderr.strip().count("\n") == 0, refused.stderr
            assert "not empty" in refused.stderr
            assert "--force" in refused.stderr
            (provider.edge.data_dir / "leftover").unlink()

            restored = await asyncio.to_thread(
                provider.command, "restore", "--node", "latest", "--recovery-key", str(kept)
            )
            assert restored.returncode == 0, restored.stdout + restored.stderr
            assert f"restoring node backup {backup_id}" in restored.stdout
            assert "integrity ok" in restored.stdout
            assert "differs" not in restored.stdout, restored.stdout

            # The restored key ring opens what the old one sealed; the management key is back.
            assert (
                open_value(DataKeys.open(ring_path, create=False), "edr", sealed, b"drill")
                == "sealed before"
            )
            assert (provider.edge.data_dir / "management-api-key").read_text().strip() == (
                management_key
            )
            assert recovery_keys(kept, create=False).current_kid

            provider.start()
            await asyncio.to_thread(provider.ready)
            assert provider.key == management_key
            # Nothing lost: every process of the backup is there, as it was.
            after = {n["id"]: n for n in await provider.listed("negotiations")}
            assert after.keys() == before_negotiations.keys()
            assert len(await provider.listed("agreements")) == len(before_agreements)
            assert {t["id"] for t in await provider.listed("transfers")} == before_transfers.keys()

            proxy.cut = False
            for started in inflight:
                done = await consumer.wait("negotiations", started["id"], {"FINALIZED"}, 180)
                assert done["agreementId"], done
            cut_started = await consumer.wait("transfers", cut_pull["id"], {"STARTED"}, 180)
            for item in [*pulls, cut_started]:
                edr = await consumer.call("GET", f"/transfers/{item['id']}/edr")
                status, digest, size = await pull(edr["endpoint"], edr["authorization"])
                assert (status, digest, size) == (200, backend.sha256, len(backend.data))
                await consumer.call("POST", f"/transfers/{item['id']}/complete")
                await consumer.wait("transfers", item["id"], {"COMPLETED"})

            async def provider_finished() -> bool:
                negotiations = await provider.listed("negotiations")
                transfers = await provider.listed("transfers")
                return all(n["state"] == "FINALIZED" for n in negotiations) and all(
                    t["state"] == "COMPLETED" for t in transfers
                )

            await _until(provider_finished, "every provider process to finish", 180)
            negotiations = await provider.listed("negotiations")
            assert len(negotiations) == FINISHED_NEGOTIATIONS + INFLIGHT_NEGOTIATIONS
            assert len(await provider.listed("transfers")) == 1 + len(pending_transfers)
            assert len(await provider.listed("agreements")) == len(negotiations)
            consumer_side = await consumer.listed("negotiations")
            assert sorted(n["state"] for n in consumer_side) == ["FINALIZED"] * len(negotiations)

            # The snapshot held the backup run itself with its dump in flight: restored, it
            # finds its backup published and finishes instead of failing.
            client = await connect(provider.edge.settings(**provider.env()))

            async def backup_run_finished() -> bool:
                runs = [w async for w in client.list_workflows("WorkflowType='ops.backup'")]
                return bool(runs) and all(
                    w.status == WorkflowExecutionStatus.COMPLETED for w in runs
                )

            await _until(backup_run_finished, "the restored backup run to finish")
        finally:
            await asyncio.gather(
                asyncio.to_thread(provider.edge.stop), asyncio.to_thread(consumer.edge.stop)
            )
    for stack in (provider, consumer):
        assert processes_mentioning(str(stack.edge.data_dir)) == []
