"""Transfer holds for the operator (transfer.provider_start=approve, decision 0013), end to end:
the awaiting queue, the search attribute, the operator's start and its identity on the timeline,
illegal commands, the operator webhook (a real HTTP receiver checks the HMAC signature and fails
the first attempt), the SSRF guard in front of the webhook, and a hold that survives a kill -9 of
its worker and whose deadline fires."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer

from activities.operator_webhook import OperatorWebhookActivities
from connector.core.ids import transfer_workflow_id
from connector.core.transfer.states import Role
from connector.core.webhook_signature import HEADER, ID_HEADER, verify
from connector.http.outbound import GuardedHttp
from connector.settings import OperatorWebhookSettings
from connector.temporal.client import connect
from connector.temporal.codec import data_converter
from tests.e2e.test_conformance_transfer import (
    DSP,
    FORMAT,
    Process,
    TransferPeer,
    _publish,
    _seed_agreement,
    assert_valid,
)
from tests.scripted_peer import CONTEXT, connector_trusting, new_pid
from tests.twoconn import Connector, WorkerProcess
from tests.webhook_receiver import WebhookReceiver as Receiver
from workers.main import workflow_runner
from workflows import names
from workflows.contracts import OperatorNotice
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.e2e

SECRET = "operator-webhook-secret-0123456789"


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver(fail_first=True).serving() as r:
        yield r


@dataclass
class World:
    peer: TransferPeer
    cut: Connector
    agreement_id: str
    consumer_agreement_id: str

    async def held(self) -> Process:
        consumer_pid = new_pid()
        body = {
            "@context": CONTEXT,
            "@type": "TransferRequestMessage",
            "consumerPid": consumer_pid,
            "agreementId": self.agreement_id,
            "format": FORMAT,
            "callbackAddress": self.peer.callback,
        }
        resp = await self.peer.post(self.cut, f"{DSP}/transfers/request", body)
        assert resp.status_code == 201, resp.text
        answer = resp.json()
        assert_valid(answer, "TransferProcess")
        return Process(self.cut, self.peer, answer["providerPid"], consumer_pid, True)


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
    receiver: Receiver,
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("holds")
    peer = TransferPeer(tmp / "peer")
    await peer.start()
    try:
        async with connector_trusting(
            peer,
            tmp / "cut",
            name="provider",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            dataplane="inproc",
            transfer={"provider_start": "approve", "hold_timeout_seconds": 3600},
            operator_webhook={"url": receiver.url, "secret": SECRET},
        ) as cut:
            await _publish(cut)
            agreement_id = await _seed_agreement(cut, peer, "provider")
            consumer_agreement_id = await _seed_agreement(cut, peer, "consumer")
            yield World(peer, cut, agreement_id, consumer_agreement_id)
    finally:
        await peer.stop()


async def awaiting_queue(cut: Connector) -> dict[str, Any]:
    resp = await cut.get("/transfers", awaiting="operator")
    assert resp.status_code == 200, resp.text
    return {t["id"]: t for t in resp.json()["items"]}


async def listed_as_awaiting(cut: Connector, workflow_id: str, value: str) -> bool:
    client = await connect(cut.settings)
    query = f'WorkflowId = "{workflow_id}" AND DspAwaitingOperator = "{value}"'
    return [w.id async for w in client.list_workflows(query)] == [workflow_id]


async def eventually(check: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.2)


async def test_a_held_request_is_queued_notified_and_started_by_the_operator(
    world: World, receiver: Receiver
) -> None:
    p = await world.held()
    pid = p.provider_pid
    # The queue: what it waits for, since when, until when, and the answers.
    queue = await awaiting_queue(world.cut)
    assert pid in queue, queue
    awaiting = queue[pid]["awaiting"]
    assert awaiting["kind"] == "start"
    assert awaiting["commands"] == ["start", "terminate"]
    since = awaiting["since"]
    assert time.time() - 60 < _epoch(since) <= time.time()
    assert _epoch(awaiting["deadline"]) - _epoch(since) == pytest.approx(3600)
    assert await p.get() == "REQUESTED"
    await world.peer.quiet(0.5)
    assert p.kinds_received() == []  # nothing is started while held

    # The Temporal UI's queue: DspAwaitingOperator = "start".
    workflow_id = transfer_workflow_id(Role.PROVIDER, pid)
    await eventually(lambda: listed_as_awaiting(world.cut, workflow_id, "start"))

    # The webhook: first attempt 503, the retry 200; both signed, same notice id.
    async def notified_twice() -> bool:
        return len(receiver.for_notice(pid)) >= 2

    await eventually(notified_twice)
    calls = receiver.for_notice(pid)
    assert [status for _, _, status in calls] == [503, 200]
    first_id = json.loads(calls[0][1])["id"]
    for headers, raw, _ in calls:
        signature = headers[HEADER.lower()]
        assert verify(signature, SECRET.encode(), raw, now=int(time.time()))
        assert not verify(signature, b"not-the-secret-0123456", raw, now=int(time.time()))
        data = json.loads(raw)
        assert headers[ID_HEADER.lower()] == data["id"]
        assert data == {
            "id": first_id,
            "process": "transfer",
            "processId": pid,
            "role": "provider",
            "state": "REQUESTED",
            "awaiting": "start",
            "since": data["since"],
            "deadline": data["deadline"],
            "counterPartyId": world.peer.did,
            "commands": ["start", "terminate"],
        }
        assert _epoch(data["since"]) == pytest.approx(_epoch(since))

    # Illegal commands on the held transfer: 409 problem+json, nothing changes.
    for command in ("suspend", "complete", "resume"):
        resp = await world.cut.post(f"/transfers/{pid}/{command}", {})
        assert resp.status_code == 409, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await world.cut.post(f"/transfers/{pid}/launch", {})
    assert 400 <= resp.status_code < 500, resp.text

    # The operator's start: the flow is prepared and the start sent; the hold is over.
    view = await p.command("start", "approved by ops")
    assert view["state"] == "STARTED"
    assert view["awaiting"] is None
    [start] = await p.received("TransferStartMessage")
    assert start.get("dataAddress") is not None
    assert pid not in await awaiting_queue(world.cut)
    await eventually(lambda: listed_as_awaiting(world.cut, workflow_id, ""))
    timeline = (await world.cut.get(f"/transfers/{pid}")).json()["timeline"]
    assert timeline[-1]["kind"] == "transfer_start"
    assert timeline[-1]["detail"] == "start by operator key-1; approved by ops"
    # A second start is illegal now.
    again = await world.cut.post(f"/transfers/{pid}/start", {})
    assert again.status_code == 409, again.text

    # The webhook secret is in no workflow history (it is read inside the activity).
    client = await connect(world.cut.settings)
    events = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
    assert events
    assert not any(SECRET.encode() in e.SerializeToString() for e in events)


async def test_the_operator_terminates_a_held_request_with_a_reason(world: World) -> None:
    p = await world.held()
    view = await p.command("terminate", "unknown partner")
    assert view["state"] == "TERMINATED"
    [term] = await p.received("TransferTerminationMessage")
    # The peer gets the fixed text of the code; the operator's words stay in our timeline.
    assert term.get("code") == "terminated_by_operator"
    assert "unknown partner" not in json.dumps(term.body)
    timeline = (await world.cut.get(f"/transfers/{p.provider_pid}")).json()["timeline"]
    assert timeline[-1]["detail"] == "terminate by operator key-1; unknown partner"
    assert p.provider_pid not in await awaiting_queue(world.cut)


async def test_start_is_illegal_where_nothing_awaits_it(world: World) -> None:
    # A consumer transfer never waits for a start of ours.
    resp = await world.cut.post(
        "/transfers",
        {
            "counterPartyAddress": world.peer.dsp,
            "counterPartyId": world.peer.did,
            "agreementId": world.consumer_agreement_id,
            "format": FORMAT,
        },
    )
    assert resp.status_code == 201, resp.text
    own = resp.json()["id"]
    refused = await world.cut.post(f"/transfers/{own}/start", {})
    assert refused.status_code == 409, refused.text
    assert "awaits no start" in refused.text
    assert own not in await awaiting_queue(world.cut)


async def test_the_webhook_goes_through_the_ssrf_guard(receiver: Receiver) -> None:
    """The activity with the default outbound rules: the loopback receiver is refused for good
    (non-retryable), and it gets nothing."""
    calls = len(receiver.calls)
    settings = OperatorWebhookSettings(url=receiver.url, secret=SECRET)
    async with GuardedHttp() as http:
        activities = OperatorWebhookActivities(settings, http)
        notice = OperatorNotice(
            id="n1",
            process="transfer",
            process_id="urn:uuid:p",
            role="provider",
            state="REQUESTED",
            awaiting="start",
            since=datetime.now(UTC),
            deadline=None,
            counterparty_id="did:web:x",
        )
        with pytest.raises(ApplicationError) as refused:
            await ActivityEnvironment().run(activities.notify, notice)
    assert refused.value.type == names.ERR_OUTBOUND_REFUSED
    assert refused.value.non_retryable
    assert len(receiver.calls) == calls
    # Without a URL the activity does nothing.
    async with GuardedHttp() as http:
        off = OperatorWebhookActivities(OperatorWebhookSettings(), http)
        assert await ActivityEnvironment().run(off.notify, notice) is False


async def test_a_hold_survives_a_worker_kill_and_its_deadline_fires(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("hold-kill")
    peer = TransferPeer(tmp / "peer")
    await peer.start()
    try:
        async with connector_trusting(
            peer,
            tmp / "cut",
            name="consumer",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            dataplane="inproc",
            inproc_workers=False,
            transfer={"provider_start": "approve", "hold_timeout_seconds": 25},
        ) as cut:
            worker = WorkerProcess(cut)
            worker.start()
            try:
                await worker.ready()
                await _publish(cut)
                w = World(peer, cut, await _seed_agreement(cut, peer, "provider"), "")
                approved, forgotten = await w.held(), await w.held()
                queue = await awaiting_queue(cut)
                assert {approved.provider_pid, forgotten.provider_pid} <= queue.keys()
                deadline = _epoch(queue[forgotten.provider_pid]["awaiting"]["deadline"])

                worker.kill()  # kill -9 while both wait for the operator
                worker = WorkerProcess(cut)
                worker.start()
                await worker.ready()

                # Still held after the restart; the operator's start is acted on.
                assert await approved.get() == "REQUESTED"
                assert {approved.provider_pid, forgotten.provider_pid} <= (
                    await awaiting_queue(cut)
                ).keys()
                resp = await cut.post(f"/transfers/{approved.provider_pid}/start", {})
                assert resp.status_code in (200, 202), resp.text
                await approved.received("TransferStartMessage")
                await approved.expect_state("STARTED")

                # The other one's deadline fires: terminated on both sides, with the reason.
                [term] = await forgotten.peer.wait_for(
                    "TransferTerminationMessage", pid=forgotten.consumer_pid, timeout=60
                )
                assert_valid(term.body, "TransferTerminationMessage")
                assert term.get("code") == "hold_expired"
                assert time.time() >= deadline - 1
                # Recorded once our message is acknowledged (a moment after the peer has it).
                await forgotten.expect_state("TERMINATED")
                view = (await cut.get(f"/transfers/{forgotten.provider_pid}")).json()
                assert view["stateReason"]["code"] == "hold_expired"
                assert view["awaiting"] is None
                assert view["timeline"][-1]["detail"].startswith("no operator decision (start) by ")
                assert forgotten.kinds_received() == ["TransferTerminationMessage"]

                # Both histories (the crash, the operator's start, the expired timer) replay in
                # the sandbox: the hold is deterministic.
                replayer = Replayer(
                    workflows=[TransferWorkflow],
                    workflow_runner=workflow_runner(sandbox=True),
                    data_converter=data_converter(cut.settings),
                )
                client = await connect(cut.settings)
                for pid in (forgotten.provider_pid, approved.provider_pid):
                    handle = client.get_workflow_handle(transfer_workflow_id(Role.PROVIDER, pid))
                    history = await handle.fetch_history()
                    replayed = await replayer.replay_workflow(
                        history, raise_on_replay_failure=False
                    )
                    assert replayed.replay_failure is None, (pid, replayed.replay_failure)
            finally:
                worker.stop()
    finally:
        await peer.stop()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def test_the_queue_and_the_start_command_are_in_the_openapi_document(world: World) -> None:
    resp = await world.cut.http.get("/openapi.json")
    assert resp.status_code == 200, resp.text
    paths = resp.json()["paths"]
    listing = paths["/management/v1/transfers"]["get"]
    awaiting = next(p for p in listing["parameters"] if p["name"] == "awaiting")
    assert "operator" in json.dumps(awaiting["schema"])
    command = paths["/management/v1/transfers/{transfer_id}/{command}"]["post"]
    param = next(p for p in command["parameters"] if p["name"] == "command")
    assert set(json.dumps(param["schema"]).split('"')) >= {
        "start",
        "suspend",
        "resume",
        "terminate",
        "complete",
    }
    assert "409" in command["responses"]
