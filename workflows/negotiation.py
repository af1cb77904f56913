"""One side (provider or consumer) of one DSP contract negotiation, until FINALIZED or TERMINATED.

DSP 2025-1 Contract Negotiation Protocol (dsp.md §8). Inbound messages arrive as the
`negotiation.receive` update (validated against the state machine before anything is written);
what we send next is decided by `connector.core.negotiation.decide`; sends are activities whose
acknowledgement moves our state. Every state change is projected to Postgres and to search
attributes, so an operator can always see where a negotiation is and why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from connector.core.errors import ConnectorError, IllegalTransitionError
    from connector.core.negotiation import decide, machine
    from connector.core.negotiation.actions import Action, SendTermination
    from connector.core.negotiation.aggregate import JsonObject, Negotiation
    from connector.core.negotiation.decide import WITH_OFFER, Decision
    from connector.core.negotiation.messages import MessageKind
    from connector.core.negotiation.record import DecisionEntry, NegotiationRecord
    from connector.core.negotiation.states import NegotiationState, Role
    from workflows import names, options
    from workflows.alarm import Alarm
    from workflows.contracts import (
        InboundNegotiationMessage,
        NegotiationStart,
        OperatorDecision,
        OutboundNegotiationMessage,
        RemoteAck,
    )
    from workflows.delivery import (
        Delivery,
        Failed,
        Sent,
        failure_text,
        journal_key,
        rejection,
    )
    from workflows.operator_notice import negotiation_notice, notify_operator
    from workflows.search import negotiation_attributes
    from workflows.sending import SendFailure

CODE_DEADLINE = "deadline_exceeded"
CODE_OPERATOR = "terminated_by_operator"
CODE_HOLD_EXPIRED = "hold_expired"


def _as_update_error(exc: ConnectorError) -> ApplicationError:
    kind = (
        names.ERR_ILLEGAL_TRANSITION
        if isinstance(exc, IllegalTransitionError)
        else names.ERR_BAD_REQUEST
    )
    return ApplicationError("; ".join(exc.reasons), type=kind, non_retryable=True)


def _legal(state: NegotiationState, msg: InboundNegotiationMessage) -> bool:
    try:
        machine.check(state, msg.kind, msg.sender)
    except ConnectorError:
        return False
    return True


@workflow.defn(name=names.WF_NEGOTIATION)
class NegotiationWorkflow:
    @workflow.init
    def __init__(self, start: NegotiationStart) -> None:
        self._start = start
        self._record = start.record
        # Versions up to here were made at the edge (decision 0008: the counterparty's opening
        # message); later inbound ones came as updates, whose answers a workflow task holds.
        self._start_version = start.record.negotiation.version
        self._policy_allowed = start.policy_allowed
        self._policy_reasons = start.policy_reasons
        self._auto_accept = start.auto_accept
        self._request_differs = start.request_differs
        # The hold last sent to the operator webhook.
        self._noticed: decide.Awaiting | None = None
        # The operator's latest decision other than `terminate`, with the version it was taken
        # at: it answers that state's hold only (decision 0012).
        self._decided: tuple[int, OperatorDecision, JsonObject | None] | None = None
        self._operator_termination: str | None = None
        self._decisions = 0
        # Every wait's deadline, on one timer (decision 0025).
        self._alarm = Alarm()
        self._delivery: Delivery[Action, NegotiationState] = Delivery(
            names.ACT_SEND_NEGOTIATION_MESSAGE
        )
        self._agreement_id: str | None = None
        # An update was accepted since our last send: its effect is durable only once the
        # workflow task completes, so the next send must not go out before (decision 0010).
        self._updated = False
        self._projected: tuple[int, int, object] | None = None
        self._sent_last = False
        first = self._next_action()
        if first is not None:
            # Our first message: until it is acknowledged, a fast peer's answer is judged
            # against the state it leads to (see `receive`), even before `run` gets to send it.
            # The answer may also come before `run` has recorded sending it at all: a worker that
            # died after a local activity's send re-runs this task with the reply already
            # waiting (the reply then acknowledges it).
            n = self._record.negotiation
            self._delivery.expect(first, machine.check(n.state, first.message_kind, n.role))

    @property
    def _n(self) -> Negotiation:
        return self._record.negotiation

    def _set(self, n: Negotiation) -> None:
        ended = self._operator_termination is not None
        held = None if ended else decide.awaiting(n, self._facts(n))
        self._record = self._record.model_copy(
            update={"negotiation": n, "awaiting": held, "awaiting_decision": held is not None}
        )

    def _facts(self, n: Negotiation) -> decide.Facts:
        decided: Decision | None = None
        counter_offer: JsonObject | None = None
        if self._decided is not None and self._decided[0] == n.version:
            _, decision, counter_offer = self._decided
            decided = None if decision.decision in WITH_OFFER else decision.decision
        return decide.Facts(
            policy_allowed=self._policy_allowed,
            policy_reasons=self._policy_reasons,
            agreement_id=self._agreement_id,
            # The agreement is concluded on the state last reached (for an opening request, the
            # policy decision made at the edge). Unlike workflow.now(), this time is durable: a
            # workflow task retried after a crash re-sends a local activity's agreement with the
            # same content, which the peer then recognises as a retry (decision 0003).
            now=n.updated_at,
            auto_accept=self._auto_accept,
            counter_offer=counter_offer,
            request_differs=self._request_differs,
            holds=self._start.holds,
            decided=decided,
        )

    # --- messages from the counterparty and the operator -------------------------------------

    @workflow.query(name=names.QRY_NEGOTIATION_VIEW)
    def view(self) -> NegotiationRecord:
        return self._record

    @workflow.update(name=names.UPD_NEGOTIATION_RECEIVE)
    async def receive(self, msg: InboundNegotiationMessage) -> NegotiationRecord:
        self._updated = True
        if self._delivery.in_flight:
            # A reply legal only after our in-flight message proves the peer has it. Its own
            # acknowledgement may be waiting for our answer to this very reply (the peer sends
            # it from a local activity, decision 0008), so do not wait for it.
            await self._acknowledged_by_reply(msg)
        if self._delivery.in_flight:
            # Our message is in flight and the peer's cannot count as its acknowledgement yet:
            # give our send a moment to settle, then judge again (an illegal message is then a
            # DSP 400).
            await self._delivery.settled(options.INFLIGHT_WAIT)
            await self._acknowledged_by_reply(msg)
        try:
            n = msg.apply_to(self._n, at=workflow.now())
        except ConnectorError as exc:
            raise _as_update_error(exc) from None
        if msg.policy_allowed is not None:
            self._policy_allowed = msg.policy_allowed
            self._policy_reasons = msg.policy_reasons
        if msg.kind is MessageKind.CONTRACT_REQUEST:
            self._request_differs = msg.request_differs
        self._set(n)
        if n.is_terminal and self._delivery.in_flight:
            # Ended by the peer while our message was still in flight: it is moot now.
            self._delivery.settle()
        return self._record

    async def _acknowledged_by_reply(self, msg: InboundNegotiationMessage) -> None:
        """Count the peer's message as the acknowledgement of our in-flight one, if it is one.

        A message legal only in the state our in-flight message leads to can only have been sent
        by a peer that received ours: its acknowledgement was lost (our worker died mid-send,
        say) or is still on its way. Waiting for our retry would make us answer 400 to a correct
        peer and end the negotiation on both sides (decision 0010).
        """
        delivery = self._delivery
        action, target = delivery.action, delivery.target
        if action is None or target is None:
            return
        if _legal(self._n.state, msg) or not _legal(target, msg):
            return
        if not await delivery.reply_proves_receipt() or delivery.action is not action:
            return
        n = self._n
        pid = msg.provider_pid if n.role is Role.CONSUMER else msg.consumer_pid
        peer = {"provider_pid" if n.role is Role.CONSUMER else "consumer_pid": pid}
        detail = "acknowledged by the counterparty's reply"
        try:
            acked = machine.apply_outbound(n, action, at=workflow.now(), detail=detail, **peer)
        except ConnectorError:
            return
        self._set(acked)
        self._sent_last = True
        delivery.settle()

    @receive.validator
    def _validate_receive(self, msg: InboundNegotiationMessage) -> None:
        # Rejected here, an illegal message never reaches history (the API answers DSP 400).
        state = self._delivery.target or self._n.state
        try:
            machine.check(state, msg.kind, msg.sender)
        except ConnectorError as exc:
            raise _as_update_error(exc) from None

    @workflow.update(name=names.UPD_NEGOTIATION_DECIDE)
    def decide(self, decision: OperatorDecision) -> NegotiationRecord:
        self._updated = True
        n = self._n
        now = workflow.now()
        if decision.decision is Decision.TERMINATE:
            self._operator_termination = decision.reason or "terminated by the operator"
        else:
            offer = None
            if decision.decision in WITH_OFFER and decision.offer is not None:
                offer = decide.complete_offer(
                    decision.offer, n, offer_id=f"urn:uuid:{workflow.uuid4()}"
                )
            self._decided = (n.version, decision, offer)
        entry = DecisionEntry(
            at=now,
            decision=decision.decision,
            operator=decision.operator or "unknown",
            state=n.state,
            version=n.version,
            reason=decision.reason,
            offer=decision.offer,
        )
        update: dict[str, object] = {"decisions": (*self._record.decisions, entry)}
        deadline = self._record.deadline_at
        if self._start.deadline is not None and deadline is not None:
            # A hold may have outlasted the first deadline: the rest gets a full one again.
            update["deadline_at"] = max(deadline, now + self._start.deadline)
        self._record = self._record.model_copy(update=update)
        self._decisions += 1
        self._set(n)
        # The Temporal UI's queue loses it now, not after the send the decision leads to.
        self._upsert_attributes()
        return self._record

    @decide.validator
    def _validate_decide(self, decision: OperatorDecision) -> None:
        n = self._n
        problem = decide.decision_problem(
            n, self._facts(n), decision.decision, has_offer=bool(decision.offer)
        )
        if self._operator_termination is not None and problem is None:
            problem = (True, "the operator already terminated this negotiation")
        if problem is not None:
            illegal, text = problem
            kind = names.ERR_ILLEGAL_TRANSITION if illegal else names.ERR_BAD_REQUEST
            raise ApplicationError(text, type=kind, non_retryable=True)

    # --- the run loop -------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: NegotiationStart) -> NegotiationRecord:
        # Decision 0008: the edge projected the start's record before answering, and a state
        # about to be left by a quick (local) send is projected once, after it.
        self._projected = (self._start_version, 0, self._record.awaiting)
        while not self._n.is_terminal:
            version = self._n.version
            action = self._next_action()
            pause = self._sent_last and self._start.back_to_back_pause > timedelta(0)
            if action is None or pause:
                # Shown while we wait. Not before a send: a state reached by an update is
                # projected by the edge that answers it (the only sends not local answer one),
                # and any other is projected after the quick send, or before it is retried.
                await self._project()
                if self._n.version != version:
                    continue  # a message arrived meanwhile: decide again
            if action is None:
                self._sent_last = False
                held = self._record.awaiting
                self._notify_hold()
                if not await self._wait_for_change():
                    if held is not None and self._record.awaiting == held:
                        await self._give_up(
                            CODE_HOLD_EXPIRED,
                            f"no operator decision on {held.kind.value} "
                            f"by {held.deadline.isoformat()}",
                        )
                    else:
                        await self._give_up(CODE_DEADLINE, "the negotiation's deadline passed")
                continue
            await self._send(action, local=not self._answers_update())
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._project()
        return self._record

    def _next_action(self) -> Action | None:
        if self._operator_termination is not None:
            return SendTermination(code=CODE_OPERATOR, reason=(self._operator_termination,))
        n = self._n
        if n.role is Role.PROVIDER and self._agreement_id is None:
            self._agreement_id = f"urn:uuid:{workflow.uuid4()}"
        return decide.next_action(n, self._facts(n))

    def _deadline(self) -> datetime | None:
        # A hold is bounded by its own deadline, not the negotiation's (decision 0012).
        held = self._record.awaiting
        return held.deadline if held is not None else self._record.deadline_at

    def _remaining(self) -> timedelta | None:
        deadline = self._deadline()
        return None if deadline is None else deadline - workflow.now()

    async def _wait_for_change(self) -> bool:
        """Wait for the state or an operator decision to change; False when the deadline passed."""
        version, decisions = self._n.version, self._decisions
        return await self._alarm.wait(
            lambda: self._n.version != version or self._decisions != decisions, self._deadline()
        )

    def _answers_update(self) -> bool:
        """Whether our next send follows an update (then it must not go out locally).

        A local activity runs inside the workflow task that accepted the update, before that
        task is recorded: if the task is then lost (the server or our worker dies, or it fails
        as UNHANDLED_COMMAND because an activity result arrived meanwhile), the update is gone
        while the peer already holds what we sent, and the two sides disagree for good (the
        chaos suite saw providers stuck AGREED after their FINALIZED went out). A local send
        would also hold back the update's answer, which the peer may wait for before it takes
        our message. So a send after an update is a scheduled activity: the task completes
        first (decision 0010). The opening message came with the start, not an update.
        """
        updated, self._updated = self._updated, False
        return updated

    async def _send(self, action: Action, *, local: bool) -> None:
        n = self._n
        try:
            target = machine.check(n.state, action.message_kind, n.role)
        except ConnectorError as exc:  # pragma: no cover - decide only proposes legal moves
            raise ApplicationError(str(exc), non_retryable=True) from None
        if self._sent_last and self._start.back_to_back_pause > timedelta(0):
            await workflow.sleep(self._start.back_to_back_pause)
            n = self._n
        key = journal_key(n.version, action.message_kind.value)
        out = self._outbound(action, key)
        # Retrying may take long: the state we are in (its projection deferred past a quick
        # send, see `run`) is shown meanwhile.
        outcome = await self._delivery.send(
            action,
            out,
            target=target,
            key=key,
            answering=not local,
            deadline=self._remaining(),
            before_retries=self._project,
        )
        if isinstance(outcome, Failed):
            await self._after_failed_send(action, outcome.error)
        elif isinstance(outcome, Sent):
            peer_pid = outcome.ack.peer_pid
            peer = {"provider_pid" if n.role is Role.CONSUMER else "consumer_pid": peer_pid}
            self._sent_last = True
            self._set(machine.apply_outbound(self._n, action, at=workflow.now(), **peer))
        # Superseded: the peer's reply acknowledged it (applied in `receive`), or it is moot.

    def _outbound(self, action: Action, key: str = "") -> OutboundNegotiationMessage:
        return OutboundNegotiationMessage(
            negotiation=self._n,
            action=action,
            callback_address=self._start.callback_address,
            dsp_version=self._record.dsp_version,
            delivery_key=key,
        )

    async def _after_failed_send(self, action: Action, err: BaseException) -> None:
        if isinstance(action, SendTermination):
            # We were ending it anyway; the peer's answer does not change that.
            self._set(
                machine.apply_outbound(
                    self._n, action, at=workflow.now(), detail=f"peer: {failure_text(err)}"
                )
            )
            return
        refused = rejection(err)
        if refused is not None:
            await self._give_up(
                "peer_rejected",
                f"the counterparty rejected our {action.message_kind.wire_name}: {refused}",
            )
        else:
            await self._give_up(
                CODE_DEADLINE,
                f"could not deliver {action.message_kind.wire_name} before the deadline: "
                f"{self._delivery.last_error or failure_text(err)}",
            )

    async def _give_up(self, code: str, reason: str) -> None:
        """End the negotiation on our side and tell the counterparty, best effort."""
        action = SendTermination(code=code, reason=(reason,))
        detail = reason
        if self._n.counterparty_pid is not None and self._n.counterparty_address:
            try:
                await workflow.execute_local_activity(
                    names.ACT_SEND_NEGOTIATION_MESSAGE,
                    self._outbound(action),
                    result_type=RemoteAck,
                    start_to_close_timeout=options.NOTIFY_TIMEOUT,
                    retry_policy=options.NOTIFY_RETRY,
                )
            except SendFailure as err:
                detail = f"{reason} (counterparty not told: {failure_text(err)})"
        self._set(machine.apply_outbound(self._n, action, at=workflow.now(), detail=detail))

    def _notify_hold(self) -> None:
        """A hold that has just begun goes to the operator webhook, once (decision 0013)."""
        held = self._record.awaiting
        if held is None or held == self._noticed:
            return
        self._noticed = held
        notice = negotiation_notice(self._record)
        if notice is not None:
            notify_operator(notice)

    async def _project(self) -> None:
        # A decision changes what is awaited, not the version: it is shown too.
        shown = (self._n.version, len(self._record.decisions), self._record.awaiting)
        if self._projected == shown:
            return
        self._upsert_attributes()
        await workflow.execute_local_activity(
            names.ACT_PROJECT_NEGOTIATION,
            self._record,
            start_to_close_timeout=options.PROJECT_TIMEOUT,
            retry_policy=options.PROJECT_RETRY,
        )
        self._projected = shown

    def _upsert_attributes(self) -> None:
        # Only what changed since the start's attributes and the last upsert, and nothing when
        # nothing did: each upsert is a history event and a visibility write (decision 0025).
        shown = workflow.info().typed_search_attributes
        changed = [
            pair.key.value_set(pair.value)
            for pair in negotiation_attributes(self._record)
            if shown.get(pair.key) != pair.value
        ]
        if changed:
            workflow.upsert_search_attributes(changed)
