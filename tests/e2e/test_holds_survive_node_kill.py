"""Held processes survive a kill -9 of EVERY process of an edge node, and their deadlines fire
(issue 15, decisions 0012, 0013, 0016).

`connector up` runs as an operator runs it (one connector process, its embedded Postgres, Redis
and Temporal dev server as children, all on one data dir); a scripted peer, trusted by the node,
plays the consumer. The node holds negotiations (`negotiation.provider_decision=approve`) and
transfers (`transfer.provider_start=approve`) for its operator:

1. an agreement is negotiated first (an offer with `providerDecision: auto`); then a negotiation
   and a transfer are held in REQUESTED with a one-hour hold (the "decided" pair);
2. power cut: every process of the node (the connector process and every descendant: Postgres
   with its backends, Redis, Temporal) is frozen with SIGSTOP and then SIGKILLed, so none can
   react (no parent-death clean-up, no fast shutdown); none is left;
3. the node starts again on the same data dir, now with a hold timeout of a few seconds (hold
   timeouts are fixed when a process starts, so the decided pair keeps its hour): the pair is
   still in the awaiting queues with its original `since` and deadline; a second pair is held
   (the "expiring" pair) and every process is killed again the same way;
4. the node stays down until the expiring pair's deadlines have passed, then starts again;
5. the operator agrees to the held negotiation and starts the held transfer: the peer receives
   the ContractAgreementMessage and the TransferStartMessage;
6. the expiring pair's timers fire after the restart: TERMINATED with `hold_expired` on both
   sides (the peer gets the termination messages), no earlier than their deadlines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from connector.core.peer_reasons import PEER_REASONS
from tests.backup.node_support import OPEN_POLICY, NodeStack
from tests.edge import pid_alive, processes_mentioning
from tests.scripted_peer import (
    CONTEXT,
    Received,
    ScriptedPeer,
    new_pid,
    request_message,
    scripted_peer,
    verification_message,
)

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
FORMAT = "HttpData-PULL"
LONG_HOLD = 3600
SHORT_HOLD = 8


def _children() -> dict[int, list[int]]:
    """Every live process's children, from /proc (pid -> child pids)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree(root: int) -> set[int]:
    """`root` and all its descendants that are alive now."""
    children = _children()
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found or not pid_alive(pid):
            continue
        found.add(pid)
        todo += children.get(pid, [])
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def kill_every_process(node: NodeStack) -> dict[int, str]:
    """Power cut: freeze the node's whole process tree, then SIGKILL every process of it. The
    tree is walked again after each freeze until it stops growing, so a process forked meanwhile
    is caught too. Returns what was killed (pid -> command line)."""
    process = node.edge.process
    assert process is not None
    assert process.poll() is None, node.edge.log()[-3000:]
    services = node.edge.pids()  # the connector process and its services, as it wrote them
    frozen: dict[int, str] = {}
    while True:
        fresh = _tree(process.pid) - frozen.keys()
        if not fresh:
            break
        for pid in fresh:
            frozen[pid] = _cmdline(pid)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
    # Every service the node started is one of them (none was started outside the tree).
    assert set(services.values()) <= frozen.keys(), (services, frozen)
    assert {"connector", "postgres", "redis", "temporal"} <= services.keys(), services
    for pid in frozen:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.returncode
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # Gone, not only dead: until the init process reaps a killed postmaster, its zombie
        # keeps its pid in use and a new postmaster takes the stale lock file for a live one.
        left = [pid for pid in frozen if Path(f"/proc/{pid}").exists()]
        if not left and not processes_mentioning(str(node.edge.data_dir)):
            return frozen
        time.sleep(0.1)
    raise AssertionError(
        f"left after kill -9: {[frozen[p] for p in frozen if pid_alive(p)]} "
        f"{processes_mentioning(str(node.edge.data_dir))}"
    )


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _valid(received: Received, type_name: str) -> None:
    assert validate_against_schema(received.body, type_name, DspVersion.V2025_1) == [], (
        received.body
    )


class Held:
    """The node's held processes, as the peer (the consumer) and the operator see them."""

    def __init__(self, node: NodeStack, peer: ScriptedPeer) -> None:
        self.node = node
        self.peer = peer

    async def dsp(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """A DSP message from the peer to the node, signed for the node's DID."""
        return await self.peer.http.request(
            method,
            self.node.dsp.removesuffix(DSP) + path,
            json=body,
            headers={"Authorization": self.peer.authorization(self.node.did)},
        )

    async def publish(self, asset_id: str, decision: str | None) -> dict[str, Any]:
        """An asset under an offer (`providerDecision` = `decision`, or the node's default);
        its catalog Offer as the peer reads it."""
        await self.node.call("POST", "/policies", {"id": "open", "policy": OPEN_POLICY}, ok=False)
        await self.node.call(
            "POST",
            "/assets",
            {
                "id": asset_id,
                "properties": {"name": asset_id},
                "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                "distributions": [FORMAT],
            },
        )
        offer = {
            "id": f"offer-{asset_id}",
            "assetSelector": [asset_id],
            "accessPolicyId": "open",
            "contractPolicyId": "open",
        }
        if decision is not None:
            offer["providerDecision"] = decision
        await self.node.call("POST", "/offers", offer)
        resp = await self.dsp("GET", f"{DSP}/catalog/datasets/{asset_id}")
        assert resp.status_code == 200, resp.text
        policies = resp.json()["hasPolicy"]
        found = dict(policies[0] if isinstance(policies, list) else policies)
        return {**found, "@type": "Offer", "target": asset_id}

    async def request(self, offer: dict[str, Any]) -> tuple[str, str]:
        """The peer's ContractRequestMessage: (the node's pid, the peer's pid)."""
        cpid = new_pid()
        message = request_message(offer, cpid, callback_address=self.peer.callback)
        resp = await self.dsp("POST", f"{DSP}/negotiations/request", message)
        assert resp.status_code == 201, resp.text
        assert resp.json()["state"] == "REQUESTED", resp.text
        return str(resp.json()["providerPid"]), cpid

    async def agreement(self, offer: dict[str, Any]) -> str:
        """A negotiation the node agrees to at once (auto), verified and finalized: its id."""
        ppid, cpid = await self.request(offer)
        [agreed] = await self.peer.wait_for("ContractAgreementMessage", pid=cpid, timeout=60)
        resp = await self.dsp(
            "POST",
            f"{DSP}/negotiations/{ppid}/agreement/verification",
            verification_message(ppid, cpid),
        )
        assert resp.status_code == 200, resp.text
        await self.peer.wait_for(
            "ContractNegotiationEventMessage", pid=cpid, timeout=60
        )  # FINALIZED
        await self.node.wait("negotiations", ppid, {"FINALIZED"})
        return str(agreed.body["agreement"]["@id"])

    async def transfer(self, agreement_id: str) -> tuple[str, str]:
        """The peer's TransferRequestMessage: (the node's pid, the peer's pid)."""
        cpid = new_pid()
        body = {
            "@context": CONTEXT,
            "@type": "TransferRequestMessage",
            "consumerPid": cpid,
            "agreementId": agreement_id,
            "format": FORMAT,
            "callbackAddress": self.peer.callback,
        }
        resp = await self.dsp("POST", f"{DSP}/transfers/request", body)
        assert resp.status_code == 201, resp.text
        assert resp.json()["state"] == "REQUESTED", resp.text
        return str(resp.json()["providerPid"]), cpid

    async def queue(self, kind: str) -> dict[str, dict[str, Any]]:
        """The awaiting=operator queue of `kind` (negotiations | transfers), by id."""
        page = await self.node.call("GET", f"/{kind}", awaiting="operator", limit=200)
        return {item["id"]: item for item in page["items"]}

    async def queued(self, kind: str, pids: set[str], timeout: float = 60) -> dict[str, Any]:
        """The queue once it holds exactly `pids`."""
        deadline = time.monotonic() + timeout
        while True:
            queue = await self.queue(kind)
            if queue.keys() == pids:
                return queue
            assert time.monotonic() < deadline, (kind, pids, queue)
            await asyncio.sleep(0.2)


async def test_held_processes_survive_a_kill_9_of_every_process_and_their_deadlines_fire(
    tmp_path: Path,
) -> None:
    async with scripted_peer(tmp_path / "peer") as peer:
        node = NodeStack("node", tmp_path)
        node.peer_did = peer.did
        node.extra = {
            "CONNECTOR_NEGOTIATION__PROVIDER_DECISION": "approve",
            "CONNECTOR_TRANSFER__PROVIDER_START": "approve",
            "CONNECTOR_NEGOTIATION__HOLD_TIMEOUT_SECONDS": str(LONG_HOLD),
            "CONNECTOR_TRANSFER__HOLD_TIMEOUT_SECONDS": str(LONG_HOLD),
        }
        held = Held(node, peer)
        node.start()
        try:
            await asyncio.to_thread(node.ready)
            # 1. An agreement (auto), then a held negotiation and a held transfer (one hour).
            agreement_id = await held.agreement(await held.publish("agreed-asset", "auto"))
            offer = await held.publish("held-asset", None)  # the node's default: approve
            neg, neg_cpid = await held.request(offer)
            tra, tra_cpid = await held.transfer(agreement_id)
            negotiations = await held.queued("negotiations", {neg})
            transfers = await held.queued("transfers", {tra})
            neg_hold = negotiations[neg]["awaiting"]
            tra_hold = transfers[tra]["awaiting"]
            assert neg_hold["kind"] == "approve-request", neg_hold
            assert tra_hold["kind"] == "start", tra_hold
            for hold in (neg_hold, tra_hold):
                assert _epoch(hold["deadline"]) - _epoch(hold["since"]) == pytest.approx(LONG_HOLD)

            # 2. Power cut while both wait.
            killed = await asyncio.to_thread(kill_every_process, node)
            assert len(killed) > 4, killed  # Postgres runs backends besides its postmaster

            # 3. Back with a hold timeout of seconds: the pair is held as it was.
            node.extra["CONNECTOR_NEGOTIATION__HOLD_TIMEOUT_SECONDS"] = str(SHORT_HOLD)
            node.extra["CONNECTOR_TRANSFER__HOLD_TIMEOUT_SECONDS"] = str(SHORT_HOLD)
            node.start()
            await asyncio.to_thread(node.ready)
            assert (await held.queued("negotiations", {neg}))[neg]["awaiting"] == neg_hold
            assert (await held.queued("transfers", {tra}))[tra]["awaiting"] == tra_hold
            # The expiring pair, held for SHORT_HOLD seconds; then the power is cut again.
            expiring_neg, expiring_neg_cpid = await held.request(offer)
            expiring_tra, expiring_tra_cpid = await held.transfer(agreement_id)
            negotiations = await held.queued("negotiations", {neg, expiring_neg})
            transfers = await held.queued("transfers", {tra, expiring_tra})
            expiring_neg_hold = negotiations[expiring_neg]["awaiting"]
            neg_deadline = _epoch(expiring_neg_hold["deadline"])
            tra_deadline = _epoch(transfers[expiring_tra]["awaiting"]["deadline"])
            await asyncio.to_thread(kill_every_process, node)

            # 4. Down until both deadlines have passed; then up again.
            while time.time() <= max(neg_deadline, tra_deadline) + 1:
                await asyncio.sleep(0.2)
            assert not processes_mentioning(str(node.edge.data_dir))
            node.start()
            await asyncio.to_thread(node.ready)

            # 5. The pair still waits, since when it began; the operator decides.
            negotiations = await held.queue("negotiations")
            transfers = await held.queue("transfers")
            assert negotiations[neg]["awaiting"] == neg_hold, negotiations
            assert transfers[tra]["awaiting"] == tra_hold, transfers
            assert peer.messages(pid=neg_cpid) == []
            assert peer.messages(pid=tra_cpid) == []
            await node.call(
                "POST", f"/negotiations/{neg}/decision", {"decision": "agree", "reason": "known"}
            )
            [agreement] = await peer.wait_for("ContractAgreementMessage", pid=neg_cpid, timeout=60)
            _valid(agreement, "ContractAgreementMessage")
            await node.wait("negotiations", neg, {"AGREED"})
            await node.call("POST", f"/transfers/{tra}/start", {"reason": "known"})
            [start] = await peer.wait_for("TransferStartMessage", pid=tra_cpid, timeout=60)
            _valid(start, "TransferStartMessage")
            assert start.get("dataAddress") is not None, start.body
            started = await node.wait("transfers", tra, {"STARTED"})
            assert started["awaiting"] is None, started
            assert started["timeline"][-1]["detail"].startswith("start by operator "), started

            # 6. The expiring pair's deadlines fired after the restart, on both sides.
            [term] = await peer.wait_for(
                "ContractNegotiationTerminationMessage", pid=expiring_neg_cpid, timeout=120
            )
            _valid(term, "ContractNegotiationTerminationMessage")
            assert term.get("code") == "hold_expired", term.body
            assert term.get("reason") == [PEER_REASONS["hold_expired"]], term.body
            ended = await node.wait("negotiations", expiring_neg, {"TERMINATED"})
            assert ended["termination"]["code"] == "hold_expired", ended
            assert "approve-request" in ended["termination"]["reason"][0], ended
            assert expiring_neg_hold["deadline"] in ended["termination"]["reason"][0], ended
            assert ended["awaiting"] is None, ended
            assert _epoch(ended["timeline"][-1]["at"]) >= neg_deadline, ended["timeline"]

            [term] = await peer.wait_for(
                "TransferTerminationMessage", pid=expiring_tra_cpid, timeout=120
            )
            _valid(term, "TransferTerminationMessage")
            assert term.get("code") == "hold_expired", term.body
            ended = await node.wait("transfers", expiring_tra, {"TERMINATED"})
            assert ended["stateReason"]["code"] == "hold_expired", ended
            assert ended["awaiting"] is None, ended
            assert ended["timeline"][-1]["detail"].startswith("no operator decision (start) by ")
            assert _epoch(ended["timeline"][-1]["at"]) >= tra_deadline, ended["timeline"]
            # The peer got nothing else about them.
            assert [r.type for r in peer.messages(pid=expiring_neg_cpid)] == [
                "ContractNegotiationTerminationMessage"
            ]
            assert [r.type for r in peer.messages(pid=expiring_tra_cpid)] == [
                "TransferTerminationMessage"
            ]
            assert await held.queue("negotiations") == {}
            assert await held.queue("transfers") == {}
            # Both cuts were hard: Postgres found its data dir not shut down, twice.
            postgres_log = (node.edge.data_dir / "postgres" / "postgres.log").read_text()
            assert postgres_log.count("not properly shut down") == 2, postgres_log[-3000:]
        finally:
            await asyncio.to_thread(node.edge.stop)
    assert processes_mentioning(str(node.edge.data_dir)) == []
