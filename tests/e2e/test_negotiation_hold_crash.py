"""A held negotiation outlives a kill -9 of the worker process, and its hold deadline fires
(decision 0012). The connector's worker runs as its own OS process; the scripted peer plays the
consumer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from connector.core.peer_reasons import PEER_REASONS
from tests.scripted_peer import connector_trusting, new_pid, request_message, scripted_peer
from tests.twoconn import Connector, WorkerProcess, publish_offer

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
HOLD_SECONDS = 40


async def _awaiting(cut: Connector, pid: str) -> dict[str, Any]:
    view = (await cut.get(f"/negotiations/{pid}")).json()
    assert view["state"] == "REQUESTED", view
    assert view["awaiting"]["kind"] == "approve-request", view
    return dict(view)


async def test_held_negotiation_survives_worker_kill_and_its_deadline_fires(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Any
) -> None:
    async with (
        scripted_peer(tmp_path / "peer") as peer,
        connector_trusting(
            peer,
            tmp_path / "cut",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            inproc_workers=False,
            negotiation={"provider_decision": "approve", "hold_timeout_seconds": HOLD_SECONDS},
        ) as cut,
    ):
        worker = WorkerProcess(cut)
        worker.start()
        try:
            await worker.ready()
            await publish_offer(cut, "asset-held")
            resp = await peer.get(cut, f"{DSP}/catalog/datasets/asset-held")
            policies = resp.json()["hasPolicy"]
            offer = {**(policies[0] if isinstance(policies, list) else policies)}
            offer.update({"@type": "Offer", "target": "asset-held"})
            pids = []
            for _ in range(2):
                cpid = new_pid()
                message = request_message(offer, cpid, callback_address=peer.callback)
                resp = await peer.post(cut, f"{DSP}/negotiations/request", message)
                assert resp.status_code == 201, resp.text
                pids.append((resp.json()["providerPid"], cpid))
            (decided, decided_cpid), (expiring, expiring_cpid) = pids
            # Both held, their workflows waiting on a timer; then the worker dies.
            for ppid, _ in pids:
                await _awaiting(cut, ppid)
            await asyncio.sleep(0.5)
            worker.kill()
            started = time.monotonic()
            worker.start()
            await worker.ready()
            # Still held after the crash: the operator's decision is taken and acted on.
            view = await _awaiting(cut, decided)
            resp = await cut.post(
                f"/negotiations/{decided}/decision", {"decision": "agree", "reason": "known"}
            )
            assert resp.status_code == 200, resp.text
            [agreement] = await peer.wait_for("ContractAgreementMessage", pid=decided_cpid)
            assert (
                validate_against_schema(
                    agreement.body, "ContractAgreementMessage", DspVersion.V2025_1
                )
                == []
            )
            await cut.wait_state(decided, {"AGREED"})
            # The other is left alone: its hold deadline ends it on both sides.
            view = await _awaiting(cut, expiring)
            deadline = view["awaiting"]["deadline"]
            assert time.monotonic() - started < HOLD_SECONDS, "restart took the whole hold"
            [term] = await peer.wait_for(
                "ContractNegotiationTerminationMessage",
                pid=expiring_cpid,
                timeout=HOLD_SECONDS + 30,
            )
            assert term.get("code") == "hold_expired", term.body
            assert term.get("reason") == [PEER_REASONS["hold_expired"]], term.body
            assert (
                validate_against_schema(
                    term.body, "ContractNegotiationTerminationMessage", DspVersion.V2025_1
                )
                == []
            )
            ended = await cut.wait_state(expiring, {"TERMINATED"})
            assert ended["termination"]["code"] == "hold_expired", ended
            assert "approve-request" in ended["termination"]["reason"][0], ended
            assert deadline in ended["termination"]["reason"][0], ended
            assert ended["awaiting"] is None, ended
            queue = (await cut.get("/negotiations", awaiting="operator")).json()
            assert queue["total"] == 0, queue
        finally:
            worker.stop()
