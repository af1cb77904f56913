"""Every interleaving of one in-flight DSP message with the peer's reply (decisions 0006, 0010).

Workflow level, no HTTP: the negotiation and transfer workflows run on the Temporal dev server;
the counterparty is a scripted in-process peer registered under the real activity names
(send, delivery journal, projection), so each attempt's fate is chosen: delivered, refused
before a byte left, delivered with the answer lost, or delivered and never answered (the worker
that ran it was killed). The peer's own messages arrive as the real `receive` updates.

The three TERMINATED variants the crash campaign found (issue 14) are regression tests here:
the first try failed unsent after an earlier attempt (or a later retry) had delivered, and the
peer's correct next message was answered 400.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from connector.core import search_attributes
from connector.core.negotiation.aggregate import JsonObject, new_negotiation
from connector.core.negotiation.messages import MessageKind
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.core.transfer.aggregate import new_transfer
from connector.core.transfer.messages import MessageKind as TransferKind
from connector.core.transfer.record import TransferRecord
from workers.main import workflow_runner
from workflows import names
from workflows.contracts import (
    FlowResult,
    FlowStatus,
    FlowStop,
    InboundNegotiationMessage,
    InboundTransferMessage,
    NegotiationStart,
    OutboundNegotiationMessage,
    OutboundTransferMessage,
    RemoteAck,
    TransferStart,
)
from workflows.negotiation import NegotiationWorkflow
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.workflow

Fate = Literal["deliver", "refuse", "lost", "hang"]
OFFER: JsonObject = {"@id": "urn:uuid:offer-1", "@type": "Offer", "target": "urn:uuid:ds-1"}
AGREEMENT: JsonObject = {
    "@id": "urn:uuid:agr-1",
    "@type": "Agreement",
    "target": "urn:uuid:ds-1",
    "assigner": "did:web:provider",
    "assignee": "did:web:consumer",
}
ACK_DETAIL = "acknowledged by the counterparty's reply"


class ScriptedPeer:
    """The counterparty's side of our sends: each attempt's fate comes from a per-message plan
    (the last entry repeats); the delivery journal is kept as the real activity keeps it."""

    def __init__(self, plan: dict[str, Sequence[Fate]], peer_pid: str) -> None:
        self.plan = plan
        self.peer_pid = peer_pid
        self.attempts: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.journal: set[str] = set()
        self.projected: list[Any] = []
        self._release = asyncio.Event()
        # A projection of this state waits until `hold` is set (a slow Postgres write).
        self.hold_state: str | None = None
        self.hold = asyncio.Event()
        self.holding = False
        # The data plane's preparation of a flow waits until `prepared` is set, when given.
        self.prepare_gate: asyncio.Event | None = None
        self.preparing = False
        self.stops: list[FlowStop] = []

    def release(self) -> None:
        self._release.set()

    async def _send(self, kind: str, key: str) -> RemoteAck:
        fates = self.plan.get(kind, ["deliver"])
        fate = fates[min(self.attempts[kind], len(fates) - 1)]
        self.attempts[kind] += 1
        if fate == "refuse":
            raise ApplicationError("connection refused", type=names.ERR_PEER_NOT_CONNECTED)
        if key:
            self.journal.add(key)  # marked before the request is written
        self.delivered[kind] += 1
        if fate == "lost":
            raise ApplicationError("server disconnected", type=names.ERR_PEER_UNREACHABLE)
        if fate == "hang":
            await self._release.wait()
            raise ApplicationError("worker gone", type=names.ERR_PEER_UNREACHABLE)
        return RemoteAck(status=200, peer_pid=self.peer_pid)

    @activity.defn(name=names.ACT_SEND_NEGOTIATION_MESSAGE)
    async def send_negotiation(self, out: OutboundNegotiationMessage) -> RemoteAck:
        return await self._send(out.action.message_kind.value, out.delivery_key)

    @activity.defn(name=names.ACT_SEND_TRANSFER_MESSAGE)
    async def send_transfer(self, out: OutboundTransferMessage) -> RemoteAck:
        return await self._send(out.action.message_kind.value, out.delivery_key)

    @activity.defn(name=names.ACT_DELIVERY_SENT)
    async def delivery_sent(self, key: str) -> bool:
        return key in self.journal

    @activity.defn(name=names.ACT_PROJECT_NEGOTIATION)
    async def project_negotiation(self, record: NegotiationRecord) -> bool:
        self.projected.append(record)
        return True

    @activity.defn(name=names.ACT_PROJECT_TRANSFER)
    async def project_transfer(self, record: TransferRecord) -> bool:
        if record.transfer.state.value == self.hold_state:
            self.holding = True
            await self.hold.wait()
        self.projected.append(record)
        return True

    @activity.defn(name=names.ACT_DATAPLANE_START)
    async def dataplane_start(self, flow: object) -> FlowResult:
        if self.prepare_gate is not None:
            self.preparing = True
            await self.prepare_gate.wait()
        return FlowResult(state="STARTED")

    @activity.defn(name=names.ACT_DATAPLANE_STOP)
    async def dataplane_stop(self, stop: FlowStop) -> None:
        self.stops.append(stop)

    @activity.defn(name=names.ACT_DATAPLANE_AWAIT)
    async def dataplane_await(self, process_id: str) -> FlowStatus:
        await self._release.wait()
        return FlowStatus(state="COMPLETED")

    def activities(self) -> list[Any]:
        return [
            self.send_negotiation,
            self.send_transfer,
            self.delivery_sent,
            self.project_negotiation,
            self.project_transfer,
            self.dataplane_start,
            self.dataplane_stop,
            self.dataplane_await,
        ]


@pytest.fixture(scope="module")
async def client(temporal_address: str) -> Client:
    # The dev server, not the SDK's time-skipping test server: the latter loses updates whose
    # handler awaits an activity or a timer ("update ... not found"), which is what these are.
    return await Client.connect(
        temporal_address, namespace="connector", data_converter=pydantic_data_converter
    )


class Run:
    def __init__(self, client: Client, peer: ScriptedPeer, queue: str) -> None:
        self.client, self.peer, self.queue = client, peer, queue
        self.handle: WorkflowHandle[Any, Any] | None = None

    async def until(self, check: Any, *, within: float = 60.0) -> None:
        """Wait until `check()` holds."""
        for _ in range(int(within / 0.05)):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("condition never held")


@asynccontextmanager
async def running(client: Client, peer: ScriptedPeer) -> AsyncIterator[Run]:
    queue = f"delivery-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[NegotiationWorkflow, TransferWorkflow],
        activities=peer.activities(),
        workflow_runner=workflow_runner(sandbox=True),
    ):
        try:
            yield Run(client, peer, queue)
        finally:
            peer.release()


def _now() -> datetime:
    return datetime.now(UTC)


def consumer_start() -> NegotiationStart:
    n = new_negotiation(
        role=Role.CONSUMER,
        initiator=Role.CONSUMER,
        own_pid=f"urn:uuid:{uuid.uuid4()}",
        participant_id="did:web:consumer",
        counterparty_id="did:web:provider",
        counterparty_address="http://provider.test/dsp/2025-1",
        offer=OFFER,
        at=_now(),
    )
    record = NegotiationRecord(negotiation=n, deadline_at=_now() + timedelta(hours=1))
    return NegotiationStart(record=record, callback_address="http://consumer.test/dsp/2025-1")


def provider_start(consumer_pid: str) -> NegotiationStart:
    n = new_negotiation(
        role=Role.PROVIDER,
        initiator=Role.CONSUMER,
        own_pid=f"urn:uuid:{uuid.uuid4()}",
        participant_id="did:web:provider",
        counterparty_id="did:web:consumer",
        at=_now(),
    )
    request = InboundNegotiationMessage(
        kind=MessageKind.CONTRACT_REQUEST,
        sender=Role.CONSUMER,
        consumer_pid=consumer_pid,
        counterparty_address="http://consumer.test/dsp/2025-1",
        offer=OFFER,
    )
    opened = request.apply_to(n, at=n.created_at)
    record = NegotiationRecord(negotiation=opened, deadline_at=_now() + timedelta(hours=1))
    return NegotiationStart(
        record=record, callback_address="http://provider.test/dsp/2025-1", policy_allowed=True
    )


async def start_negotiation(run: Run, start: NegotiationStart) -> str:
    own = start.record.own_pid
    run.handle = await run.client.start_workflow(
        names.WF_NEGOTIATION,
        start,
        id=f"negotiation:{start.record.negotiation.role.value}:{own}",
        task_queue=run.queue,
        result_type=NegotiationRecord,
    )
    return own


def view(run: Run) -> Any:
    return run.peer.projected[-1]


async def state_of(run: Run) -> str:
    assert run.handle is not None
    record: NegotiationRecord = await run.handle.query(
        names.QRY_NEGOTIATION_VIEW, result_type=NegotiationRecord
    )
    return record.negotiation.state.value


async def start_consumer_transfer(run: Run) -> str:
    """A consumer transfer under an agreement: its workflow starts by sending the request."""
    own = f"urn:uuid:{uuid.uuid4()}"
    t = new_transfer(
        role=Role.CONSUMER,
        own_pid=own,
        agreement_id="urn:uuid:agr-1",
        format="HttpData-PULL",
        counterparty_id="did:web:provider",
        counterparty_address="http://provider.test/dsp/2025-1",
        at=_now(),
    )
    start = TransferStart(
        record=TransferRecord(transfer=t), callback_address="http://consumer.test/dsp/2025-1"
    )
    run.handle = await run.client.start_workflow(
        names.WF_TRANSFER,
        start,
        id=f"transfer:consumer:{own}",
        task_queue=run.queue,
        result_type=TransferRecord,
    )
    return own


def start_from_provider(consumer_pid: str, provider_pid: str) -> InboundTransferMessage:
    return InboundTransferMessage(
        kind=TransferKind.TRANSFER_START,
        sender=Role.PROVIDER,
        consumer_pid=consumer_pid,
        provider_pid=provider_pid,
        data_address={"endpoint": "http://provider.test/public", "type": "https"},
    )


def agreement_from_provider(consumer_pid: str, provider_pid: str) -> InboundNegotiationMessage:
    return InboundNegotiationMessage(
        kind=MessageKind.AGREEMENT,
        sender=Role.PROVIDER,
        consumer_pid=consumer_pid,
        provider_pid=provider_pid,
        agreement=AGREEMENT,
    )


def event_from_provider(
    kind: MessageKind, consumer_pid: str, provider_pid: str
) -> InboundNegotiationMessage:
    return InboundNegotiationMessage(
        kind=kind, sender=Role.PROVIDER, consumer_pid=consumer_pid, provider_pid=provider_pid
    )


def details(record: NegotiationRecord | TransferRecord) -> list[str | None]:
    inner = record.negotiation if isinstance(record, NegotiationRecord) else record.transfer
    return [e.detail for e in inner.timeline]


async def finished(run: Run) -> Any:
    assert run.handle is not None
    return await run.handle.result()


# --- the three TERMINATED variants of the crash campaign -------------------------------------


async def test_request_first_try_unsent_after_an_earlier_attempt_delivered(
    client: Client,
) -> None:
    """Variant (b): the consumer's request reached the provider on the first attempt (answer
    lost), the second attempt was refused and the retries too (the provider's control plane
    restarting). The provider's agreement must be taken as the request's acknowledgement,
    not answered 400 ("INITIAL cannot accept ContractAgreementMessage")."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"contract_request": ["lost", "refuse"]}, provider_pid)
    async with running(client, peer) as run:
        own = await start_negotiation(run, consumer_start())
        await run.until(lambda: peer.attempts["contract_request"] >= 3)  # retries are running
        agreed = await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            agreement_from_provider(own, provider_pid),
            result_type=NegotiationRecord,
        )
        assert agreed.negotiation.state.value == "AGREED"
        assert ACK_DETAIL in details(agreed)
        await run.until(lambda: peer.delivered["verification"] >= 1)
        await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            event_from_provider(MessageKind.FINALIZED_EVENT, own, provider_pid),
            result_type=NegotiationRecord,
        )
        done = await finished(run)
        assert done.negotiation.state.value == "FINALIZED"
        assert peer.delivered["contract_request"] == 1


async def test_verification_retry_delivered_while_its_answer_is_held(
    client: Client,
) -> None:
    """Variant (a): the consumer's verification (answering the agreement) was refused on its
    first try; a retry delivered it, and the provider holds that answer until its FINALIZED is
    taken. FINALIZED must be the verification's acknowledgement, not a 400 ("AGREED cannot
    accept FINALIZED")."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"verification": ["refuse", "hang"]}, provider_pid)
    async with running(client, peer) as run:
        own = await start_negotiation(run, consumer_start())
        await run.until(lambda: peer.delivered["contract_request"] == 1)
        await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            agreement_from_provider(own, provider_pid),
            result_type=NegotiationRecord,
        )
        await run.until(lambda: peer.delivered["verification"] == 1)  # the retry's attempt
        finalized = await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            event_from_provider(MessageKind.FINALIZED_EVENT, own, provider_pid),
            result_type=NegotiationRecord,
        )
        assert finalized.negotiation.state.value == "FINALIZED"
        assert ACK_DETAIL in details(finalized)
        assert (await finished(run)).negotiation.state.value == "FINALIZED"


async def test_agreement_first_try_unsent_after_an_earlier_attempt_delivered(
    client: Client,
) -> None:
    """Variant (c): the provider's agreement reached the consumer on the first attempt (answer
    lost), the second was refused (the consumer's control plane restarting). The consumer's
    verification must be the agreement's acknowledgement, not a 400 ("REQUESTED cannot accept
    ContractAgreementVerificationMessage")."""
    consumer_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"agreement": ["lost", "refuse"]}, consumer_pid)
    async with running(client, peer) as run:
        own = await start_negotiation(run, provider_start(consumer_pid))
        await run.until(lambda: peer.attempts["agreement"] >= 3)
        verified = await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            InboundNegotiationMessage(
                kind=MessageKind.VERIFICATION,
                sender=Role.CONSUMER,
                consumer_pid=consumer_pid,
                provider_pid=own,
            ),
            result_type=NegotiationRecord,
        )
        assert verified.negotiation.state.value == "VERIFIED"
        assert ACK_DETAIL in details(verified)
        done = await finished(run)
        assert done.negotiation.state.value == "FINALIZED"
        assert peer.delivered["finalized_event"] == 1


async def test_transfer_request_first_try_unsent_after_an_earlier_attempt_delivered(
    client: Client,
) -> None:
    """The transfer variant: the consumer's request reached the provider (answer lost), later
    attempts were refused; the provider's start must acknowledge it ("transfer in state INITIAL
    cannot accept TransferStartMessage" before)."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"transfer_request": ["lost", "refuse"]}, provider_pid)
    async with running(client, peer) as run:
        own = await start_consumer_transfer(run)
        await run.until(lambda: peer.attempts["transfer_request"] >= 3)
        assert run.handle is not None
        started = await run.handle.execute_update(
            names.UPD_TRANSFER_RECEIVE,
            start_from_provider(own, provider_pid),
            result_type=TransferRecord,
        )
        assert started.transfer.state.value == "STARTED"
        assert ACK_DETAIL in details(started)
        assert peer.delivered["transfer_request"] == 1


# --- the other interleavings -----------------------------------------------------------------


async def test_never_sent_reply_is_refused_and_the_state_kept(client: Client) -> None:
    """Every attempt refused before a byte left (the journal has no mark): the peer cannot
    have our request, so its agreement is illegal (DSP 400) and changes nothing."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"contract_request": ["refuse"]}, provider_pid)
    async with running(client, peer) as run:
        own = await start_negotiation(run, consumer_start())
        await run.until(lambda: peer.attempts["contract_request"] >= 3)
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await run.handle.execute_update(  # type: ignore[union-attr]
                names.UPD_NEGOTIATION_RECEIVE,
                agreement_from_provider(own, provider_pid),
                result_type=NegotiationRecord,
            )
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == names.ERR_ILLEGAL_TRANSITION
        assert await state_of(run) == "INITIAL"
        assert peer.delivered["contract_request"] == 0


async def test_reply_before_the_ack_counts_once_and_starts_no_retry(
    client: Client,
) -> None:
    """Delivered, answer not back yet (the peer holds it, or our worker died holding it): the
    peer's FINALIZED acknowledges the verification at once; no retry sends a second copy."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"verification": ["hang"]}, provider_pid)
    async with running(client, peer) as run:
        own = await start_negotiation(run, consumer_start())
        await run.until(lambda: peer.delivered["contract_request"] == 1)
        await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            agreement_from_provider(own, provider_pid),
            result_type=NegotiationRecord,
        )
        await run.until(lambda: peer.delivered["verification"] == 1)
        finalized = await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            event_from_provider(MessageKind.FINALIZED_EVENT, own, provider_pid),
            result_type=NegotiationRecord,
        )
        assert finalized.negotiation.state.value == "FINALIZED"
        assert (await finished(run)).negotiation.state.value == "FINALIZED"
        assert peer.attempts["verification"] == 1  # the acknowledged send started no retry


async def test_worker_lost_mid_send_the_retry_delivers(client: Client) -> None:
    """The attempt delivered but its worker died before answering (start-to-close timeout):
    unknown counts as maybe-delivered; the retry delivers again (the peer deduplicates) and the
    negotiation goes on."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"verification": ["hang", "deliver"]}, provider_pid)
    async with running(client, peer) as run:
        own = await start_negotiation(run, consumer_start())
        await run.until(lambda: peer.delivered["contract_request"] == 1)
        await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            agreement_from_provider(own, provider_pid),
            result_type=NegotiationRecord,
        )
        await run.until(lambda: peer.delivered["verification"] == 2)
        await run.until(lambda: view(run).negotiation.state.value == "VERIFIED")
        await run.handle.execute_update(  # type: ignore[union-attr]
            names.UPD_NEGOTIATION_RECEIVE,
            event_from_provider(MessageKind.FINALIZED_EVENT, own, provider_pid),
            result_type=NegotiationRecord,
        )
        assert (await finished(run)).negotiation.state.value == "FINALIZED"


async def test_first_try_refused_then_a_retry_delivers(client: Client) -> None:
    """Refused, then delivered by the retrying activity: its ack moves the state, nothing else
    is sent twice."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({"contract_request": ["refuse", "refuse", "deliver"]}, provider_pid)
    async with running(client, peer) as run:
        await start_negotiation(run, consumer_start())
        await run.until(
            lambda: bool(peer.projected) and view(run).negotiation.state.value == "REQUESTED"
        )
        assert peer.delivered["contract_request"] == 1
        assert view(run).negotiation.provider_pid == provider_pid


# --- one truth for state ---------------------------------------------------------------------


async def test_a_message_applied_during_a_projection_is_projected_too(client: Client) -> None:
    """The provider's start arrives while the consumer's REQUESTED projection is being written:
    once settled, the projection and the search attribute both show STARTED (the campaign saw
    visibility stuck at REQUESTED)."""
    provider_pid = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({}, provider_pid)
    peer.hold_state = "REQUESTED"
    async with running(client, peer) as run:
        own = await start_consumer_transfer(run)
        await run.until(lambda: peer.holding)
        assert run.handle is not None
        started = await run.handle.execute_update(
            names.UPD_TRANSFER_RECEIVE,
            start_from_provider(own, provider_pid),
            result_type=TransferRecord,
        )
        assert started.transfer.state.value == "STARTED"
        peer.hold.set()
        await run.until(lambda: peer.projected[-1].transfer.state.value == "STARTED")
        key = SearchAttributeKey.for_keyword(search_attributes.TRANSFER_STATE)
        for _ in range(100):
            described = await run.handle.describe()
            if described.typed_search_attributes.get(key) == "STARTED":
                break
            await asyncio.sleep(0.05)
        assert described.typed_search_attributes.get(key) == "STARTED"


async def test_a_flow_prepared_for_a_transfer_ended_meanwhile_is_revoked(client: Client) -> None:
    """Provider, automatic start: the consumer terminates while the data plane prepares the pull
    endpoint. The prepared flow (its token) is revoked at once, and no start is sent."""
    consumer_pid = f"urn:uuid:{uuid.uuid4()}"
    own = f"urn:uuid:{uuid.uuid4()}"
    peer = ScriptedPeer({}, consumer_pid)
    peer.prepare_gate = asyncio.Event()
    async with running(client, peer) as run:
        t = new_transfer(
            role=Role.PROVIDER,
            own_pid=own,
            agreement_id="urn:uuid:agr-1",
            format="HttpData-PULL",
            counterparty_id="did:web:consumer",
            at=_now(),
        )
        start = TransferStart(
            record=TransferRecord(transfer=t), callback_address="http://provider.test/dsp/2025-1"
        )
        run.handle = await client.start_workflow(
            names.WF_TRANSFER,
            start,
            id=f"transfer:provider:{own}",
            task_queue=run.queue,
            result_type=TransferRecord,
        )
        requested = await run.handle.execute_update(
            names.UPD_TRANSFER_RECEIVE,
            InboundTransferMessage(
                kind=TransferKind.TRANSFER_REQUEST,
                sender=Role.CONSUMER,
                consumer_pid=consumer_pid,
                counterparty_address="http://consumer.test/dsp/2025-1",
            ),
            result_type=TransferRecord,
        )
        assert requested.transfer.state.value == "REQUESTED"
        await run.until(lambda: peer.preparing)
        ended = await run.handle.execute_update(
            names.UPD_TRANSFER_RECEIVE,
            InboundTransferMessage(
                kind=TransferKind.TRANSFER_TERMINATION,
                sender=Role.CONSUMER,
                consumer_pid=consumer_pid,
                provider_pid=own,
                code="consumer-gave-up",
            ),
            result_type=TransferRecord,
        )
        assert ended.transfer.state.value == "TERMINATED"
        assert peer.stops == []  # nothing was prepared yet when the termination came
        peer.prepare_gate.set()
        final: TransferRecord = await finished(run)
        assert final.transfer.state.value == "TERMINATED"
        assert [(s.process_id, s.how) for s in peer.stops] == [(own, "terminate")]
        assert peer.attempts["transfer_start"] == 0
