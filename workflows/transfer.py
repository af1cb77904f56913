"""One side (provider or consumer) of one DSP transfer process, until COMPLETED or TERMINATED.

DSP 2025-1 Transfer Process Protocol (dsp.md §9). Inbound messages arrive as the
`transfer.receive` update (validated against the state machine before anything is written);
operator commands (suspend, resume, terminate, complete) as `transfer.command`. The provider
drives its data plane through Data Plane Signaling activities: it prepares the flow before it
sends TransferStartMessage (pull: endpoint + token), revokes tokens before it acknowledges or
sends a suspension/termination/completion, gets new ones on resume, and watches finite flows
until the data plane reports the bytes delivered (then it sends TransferCompletionMessage) or
failed (then it restarts a push, up to `push_max_attempts`, and else terminates with the reason).

Provider start mode (decision 0013): in `approve` mode the consumer's request is held in
REQUESTED for an operator's `start` or `terminate` (the rule is `connector.core.transfer.hold`);
the hold is visible as the DspAwaitingOperator search attribute and the projection's `awaiting`,
the operator webhook is told when it begins, and past its deadline the transfer terminates.

Consumer shortcut: given an offer instead of an agreement, the negotiation runs first as a child
workflow (decision 0005), then the transfer proceeds with the agreement it produced.

What happens next is decided by `connector.core.transfer.decide`; this workflow executes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from connector.core import search_attributes
    from connector.core.errors import ConnectorError, IllegalTransitionError
    from connector.core.ids import negotiation_workflow_id
    from connector.core.negotiation.record import NegotiationRecord
    from connector.core.transfer import decide, hold, machine
    from connector.core.transfer.actions import Action, SendRequest, SendStart
    from connector.core.transfer.aggregate import JsonObject, Transfer
    from connector.core.transfer.record import PENDING_AGREEMENT, TransferRecord
    from connector.core.transfer.states import Role, TransferState
    from workflows import names, options, sending
    from workflows.contracts import (
        FlowResult,
        FlowStart,
        FlowStatus,
        FlowStop,
        InboundTransferMessage,
        OutboundTransferMessage,
        RemoteAck,
        TransferCommand,
        TransferStart,
    )
    from workflows.delivery import Delivery, Failed, Sent, failure_text, journal_key, rejection
    from workflows.operator_notice import notify_operator, transfer_notice
    from workflows.search import AGREEMENT, ASSET, COUNTERPARTY, ROLE

STATE = SearchAttributeKey.for_keyword(search_attributes.TRANSFER_STATE)
AWAITING = SearchAttributeKey.for_keyword(search_attributes.AWAITING_OPERATOR)


def _as_update_error(exc: ConnectorError) -> ApplicationError:
    kind = (
        names.ERR_ILLEGAL_TRANSITION
        if isinstance(exc, IllegalTransitionError)
        else names.ERR_BAD_REQUEST
    )
    return ApplicationError("; ".join(exc.reasons), type=kind, non_retryable=True)


def _failure_text(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError) and err.cause else err
    return str(cause) or type(cause).__name__


def _application_error(err: BaseException) -> ApplicationError | None:
    # A local activity's failure may surface as the ApplicationError itself, not wrapped.
    cause = err.cause if isinstance(err, ActivityError) else err
    return cause if isinstance(cause, ApplicationError) else None


def _legal(state: TransferState, msg: InboundTransferMessage) -> bool:
    try:
        machine.check(state, msg.kind, msg.sender)
    except ConnectorError:
        return False
    return True


def _rejected(err: BaseException) -> bool:
    cause = _application_error(err)
    return cause is not None and (
        cause.type in options.NON_RETRYABLE or cause.type == names.ERR_DATAPLANE_REFUSED
    )


# What a failed activity raises in the workflow.
_FAILED = sending.SendFailure


@workflow.defn(name=names.WF_TRANSFER)
class TransferWorkflow:
    @workflow.init
    def __init__(self, start: TransferStart) -> None:
        self._start = start
        self._record = start.record
        self._delivery: Delivery[Action, TransferState] = Delivery(names.ACT_SEND_TRANSFER_MESSAGE)
        self._projected_version = -1
        self._sent_last = False
        # An update was accepted since our last send (see NegotiationWorkflow._answers_update).
        self._updated = False
        self._commands: list[TransferCommand] = []
        # Provider: the data flow as last prepared (the rest of decide.Facts is read when asked).
        self._facts = decide.Facts()
        # Provider: what the data plane reported for the running flow (None = still moving).
        self._flow_status: FlowStatus | None = None
        self._flow_attempts = 1
        # Provider: a new DataAddress owed to a consumer that resumed.
        self._owed_address: JsonObject | None = None
        # Provider: a data plane stop that failed inside an update handler, retried by run().
        self._owed_stop: FlowStop | None = None
        # Provider: the operator hold's deadline timer fired.
        self._hold_timed_out = False
        # The timeline detail of the next message we send (who commanded it).
        self._detail: str | None = None
        # What DspAwaitingOperator says now (None: not set yet), and the last wait notified.
        self._awaiting_shown: str | None = None
        self._noticed: hold.Awaiting | None = None
        t = self._record.transfer
        if t.agreement_id != PENDING_AGREEMENT:
            first = decide.next_action(t, self._facts)
            if isinstance(first, SendRequest):
                # The consumer's request: until acknowledged, the provider's answer is judged
                # against the state it leads to, even before `run` gets to send it (a worker
                # that died after the local send re-runs this task with the start waiting).
                self._delivery.expect(first, machine.check(t.state, first.message_kind, t.role))

    @property
    def _t(self) -> Transfer:
        return self._record.transfer

    def _facts_now(self) -> decide.Facts:
        report = self._flow_status
        return self._facts.model_copy(
            update={
                "finite": self._record.finite,
                "push": self._record.push,
                "flow_report": None
                if report is None
                else decide.FlowReport(state=report.state, error=report.error),
                "flow_attempts": self._flow_attempts,
                "max_attempts": self._start.push_max_attempts,
                "owed_address": self._owed_address,
                "awaiting": self._record.awaiting,
                "hold_timed_out": self._hold_timed_out,
                "now": workflow.now(),
            }
        )

    def _set(self, t: Transfer, **extra: object) -> None:
        record = self._record.model_copy(update={"transfer": t, **extra})
        # A hold lasts as long as the state it was entered in (any move ends it).
        held = hold.still_held(record.awaiting, t)
        if held is not record.awaiting:
            record = record.model_copy(update={"awaiting": held})
        self._record = record

    # --- messages from the counterparty and the operator -------------------------------------

    @workflow.query(name=names.QRY_TRANSFER_VIEW)
    def view(self) -> TransferRecord:
        return self._record

    @workflow.update(name=names.UPD_TRANSFER_RECEIVE)
    async def receive(self, msg: InboundTransferMessage) -> TransferRecord:
        self._updated = True
        if self._delivery.in_flight:
            # A reply legal only after our in-flight message proves the peer has it; its own
            # acknowledgement may be waiting for our answer to this very reply.
            await self._acknowledged_by_reply(msg)
        if self._delivery.in_flight:
            # Not (yet) an acknowledgement: give our send a moment to settle, then judge again
            # (an illegal message is then a DSP 400).
            await self._delivery.settled(options.INFLIGHT_WAIT)
            await self._acknowledged_by_reply(msg)
        before = self._t.state
        try:
            if machine.is_restart(self._t, msg.kind, msg.sender, msg.data_address):
                t = machine.apply_restart(
                    self._t, msg.sender, at=workflow.now(), data_address=msg.data_address
                )
            else:
                t = machine.apply(
                    self._t,
                    msg.kind,
                    msg.sender,
                    at=workflow.now(),
                    consumer_pid=msg.consumer_pid,
                    provider_pid=msg.provider_pid,
                    counterparty_address=msg.counterparty_address,
                    data_address=msg.data_address,
                    code=msg.code,
                    reason=msg.reason,
                )
        except ConnectorError as exc:
            raise _as_update_error(exc) from None
        follow = decide.flow_after_inbound(before, t, self._facts_now(), msg.code or msg.kind.value)
        if isinstance(follow, decide.StopFlow):
            # Tokens die before the consumer hears our acknowledgement (and before run() sees
            # the new state).
            await self._data_plane_stop(self._stop(follow), local=True)
        elif isinstance(follow, decide.ResumeFlow):
            address = await self._resume_flow(self._record.own_pid)
            if address is not None:
                self._owed_address = address
        if before is TransferState.INITIAL:
            # The consumer's request: in `approve` mode it waits for an operator from here, and
            # the answer to this update already says so.
            awaiting = hold.hold_for(
                t, self._start.start_mode, at=workflow.now(), timeout=self._start.hold_timeout
            )
            self._set(t, awaiting=awaiting)
        else:
            self._set(t)
        if t.is_terminal and self._delivery.in_flight:
            # Ended by the peer while our message was still in flight: it is moot now.
            self._delivery.settle()
        return self._record

    async def _acknowledged_by_reply(self, msg: InboundTransferMessage) -> None:
        """Count the peer's message as the acknowledgement of our in-flight one, if it is one.

        A message legal only in the state our in-flight message leads to can only come from a
        peer that received ours; its acknowledgement was lost (our worker died mid-send, say)
        or is still on its way (decision 0010).
        """
        delivery = self._delivery
        action, target = delivery.action, delivery.target
        if action is None or target is None:
            return
        if _legal(self._t.state, msg) or not _legal(target, msg):
            return
        if not await delivery.reply_proves_receipt() or delivery.action is not action:
            return
        t = self._t
        pid = msg.provider_pid if t.role is Role.CONSUMER else msg.consumer_pid
        peer = {"provider_pid" if t.role is Role.CONSUMER else "consumer_pid": pid}
        detail = "acknowledged by the counterparty's reply"
        try:
            acked = machine.apply_outbound(t, action, at=workflow.now(), detail=detail, **peer)
        except ConnectorError:
            return
        self._set(acked)
        self._sent_last = True
        delivery.settle()

    @receive.validator
    def _validate_receive(self, msg: InboundTransferMessage) -> None:
        # Rejected here, an illegal message never reaches history (the API answers DSP 400).
        try:
            state = decide.inbound_judged_against(
                self._t, self._delivery.target, msg.kind, msg.sender, msg.data_address
            )
            if state is not None:
                machine.check(state, msg.kind, msg.sender)
        except ConnectorError as exc:
            raise _as_update_error(exc) from None

    @workflow.update(name=names.UPD_TRANSFER_COMMAND)
    def command(self, cmd: TransferCommand) -> TransferRecord:
        self._updated = True
        self._commands.append(cmd)
        return self._record

    @command.validator
    def _validate_command(self, cmd: TransferCommand) -> None:
        # Judged against where our in-flight message takes us: the counterparty may already
        # show that state (the provider's start is acknowledged, not yet recorded here).
        state = self._delivery.target or self._t.state
        refusal = hold.command_refusal(
            state, self._record.awaiting, cmd.command, pending=bool(self._commands)
        )
        if refusal is not None:
            raise ApplicationError(refusal, type=names.ERR_ILLEGAL_TRANSITION)

    # --- the run loop -------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: TransferStart) -> TransferRecord:
        if start.negotiation is not None and self._t.agreement_id == PENDING_AGREEMENT:
            await self._negotiate(start)
        while True:
            await self._project()
            if self._t.is_terminal:
                break
            if self._owed_stop is not None:
                await self._data_plane_stop(self._owed_stop, local=False)
                continue
            action = await self._next_action()
            if action is None:
                self._sent_last = False
                await self._wait_for_change()
                continue
            await self._send(action)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._project()
        return self._record

    async def _next_action(self) -> Action | None:
        if self._commands:
            cmd = self._commands.pop(0)
            step = decide.command_step(
                self._t, cmd.command, self._facts_now(), reason=cmd.reason, operator=cmd.operator
            )
            return await self._execute(step)
        step = decide.next_step(self._t, self._facts_now())
        if isinstance(step, decide.PrepareFlow):
            await self._prepare_flow()
            step = decide.next_step(self._t, self._facts_now())
        return await self._execute(step)

    async def _execute(self, step: decide.Step) -> Action | None:
        """Carry out a step of `decide`; the message to send, if any."""
        match step:
            case decide.Act():
                if step.stop is not None:
                    await self._data_plane_stop(self._stop(step.stop), local=True)
                self._detail = step.detail
                return step.action
            case decide.RetryFlow():
                self._flow_attempts = step.attempt
                self._flow_status = None
                self._facts = decide.Facts()
                await self._prepare_flow()
                return await self._execute(decide.after_retry(self._facts_now()))
            case decide.Rewatch():
                self._flow_status = None
            case decide.ApproveStart():
                self._set(self._t, awaiting=None)
                self._show_awaiting()
                await self._prepare_flow()
                return await self._execute(
                    decide.after_approval(self._t, self._facts_now(), step.detail)
                )
            case decide.ResumeFlow():
                address = await self._resume_flow(self._t.provider_pid)
                self._detail = step.detail
                return SendStart(data_address=address)
            case decide.EndHere():
                self._end_here(step)
        return None

    def _stop(self, stop: decide.StopFlow) -> FlowStop:
        return FlowStop(process_id=self._record.own_pid, how=stop.how, reason=stop.reason)

    async def _prepare_flow(self) -> None:
        """Provider, REQUESTED: ask the data plane for the pull endpoint, or to start pushing."""
        t = self._t
        flow = FlowStart(
            process_id=self._record.own_pid,
            agreement_id=t.agreement_id,
            asset_id=self._record.asset_id,
            consumer_id=t.counterparty_id,
            format=t.format,
            push=self._record.push,
            finite=self._record.finite,
            source=self._record.source or {},
            destination=t.data_address if self._record.push else None,
        )
        try:
            result = await self._data_plane(names.ACT_DATAPLANE_START, flow, raise_errors=True)
        except _FAILED as err:
            self._facts = decide.Facts(flow_error=_failure_text(err))
            return
        address = result.data_address if result is not None else None
        self._facts = decide.Facts(flow_prepared=True, data_address=address)
        ended = decide.stop_if_ended(self._t, self._facts_now())
        if ended is not None:
            await self._data_plane_stop(self._stop(ended), local=False)
            self._facts = decide.Facts()

    async def _wait_for_change(self) -> None:
        # Against the projected version: a message applied while the last projection ran must
        # wake us, or the projection and the search attributes would keep the older state.
        version, commands = self._projected_version, len(self._commands)

        def changed() -> bool:
            return (
                self._t.version != version
                or len(self._commands) != commands
                or self._owed_stop is not None
                or self._owed_address is not None
            )

        if not decide.watches_flow(self._t, self._facts_now()):
            timeout = decide.hold_wait(self._t, self._record.awaiting, workflow.now())
            if timeout is not None and timeout <= timedelta(0):
                self._hold_timed_out = True
                return
            try:
                await workflow.wait_condition(changed, timeout=timeout)
            except TimeoutError:
                self._hold_timed_out = True
            return
        watch = workflow.start_activity(
            names.ACT_DATAPLANE_AWAIT,
            self._record.own_pid,
            result_type=FlowStatus,
            start_to_close_timeout=options.WATCH_TIMEOUT,
            heartbeat_timeout=options.WATCH_HEARTBEAT,
            retry_policy=options.WATCH_RETRY,
        )
        await workflow.wait_condition(lambda: changed() or watch.done())
        if watch.done():
            try:
                self._flow_status = watch.result()
            except _FAILED as err:
                self._flow_status = FlowStatus(state="FAILED", error=_failure_text(err))
            return
        watch.cancel()
        with contextlib.suppress(ActivityError, asyncio.CancelledError):
            await watch

    async def _send(self, action: Action) -> None:
        t = self._t
        try:
            target, restart = decide.outbound_target(t, action)
        except ConnectorError as exc:  # pragma: no cover - we only propose legal moves
            raise ApplicationError(str(exc), non_retryable=True) from None
        if decide.pauses_before_send(self._sent_last, self._start.back_to_back_pause):
            await workflow.sleep(self._start.back_to_back_pause)
            t = self._t
        # A send after an update (a message or an operator command) is a scheduled activity:
        # the update is durable only once this workflow task completes, and a local send would
        # escape before it (and hold back the update's answer, which the peer may wait for).
        # The provider's start answers the request it was opened with (decision 0010).
        answers_inbound = decide.answers_inbound(t, updated=self._updated)
        self._updated = False
        key = journal_key(t.version, action.message_kind.value)
        outcome = await self._delivery.send(
            action,
            self._outbound(action, key),
            target=target,
            key=key,
            answering=answers_inbound,
            # A restart is answered by nothing of the peer's own that could stand for its ack.
            acknowledgeable=not restart,
            deadline=self._start.send_deadline,
        )
        detail, self._detail = self._detail, None
        if isinstance(outcome, Failed):
            await self._after_failed_send(action, outcome.error, detail)
            return
        if not isinstance(outcome, Sent):
            return  # the peer's reply acknowledged it (applied in `receive`), or it is moot
        if restart:
            n = machine.apply_restart(
                self._t,
                t.role,
                at=workflow.now(),
                data_address=getattr(action, "data_address", None),
            )
            self._owed_address = None
        else:
            peer_pid = outcome.ack.peer_pid
            peer = {"provider_pid" if t.role is Role.CONSUMER else "consumer_pid": peer_pid}
            n = machine.apply_outbound(self._t, action, at=workflow.now(), detail=detail, **peer)
        self._sent_last = True
        self._set(n)

    def _outbound(self, action: Action, key: str = "") -> OutboundTransferMessage:
        return OutboundTransferMessage(
            transfer=self._t,
            action=action,
            callback_address=self._start.callback_address,
            dsp_version=self._record.dsp_version,
            delivery_key=key,
        )

    async def _after_failed_send(
        self, action: Action, err: BaseException, detail: str | None = None
    ) -> None:
        step = decide.after_failed_send(
            self._t,
            self._facts_now(),
            action,
            error=failure_text(err),
            rejected=rejection(err) is not None,
            detail=detail,
        )
        if isinstance(step, decide.EndHere):
            self._end_here(step)
            return
        await self._give_up(step)

    async def _give_up(self, step: decide.GiveUp) -> None:
        """End the transfer on our side and tell the counterparty, best effort."""
        if step.stop is not None:
            await self._data_plane_stop(self._stop(step.stop), local=True)
        detail = step.detail
        if step.tell_peer:
            try:
                await workflow.execute_local_activity(
                    names.ACT_SEND_TRANSFER_MESSAGE,
                    self._outbound(step.action),
                    result_type=RemoteAck,
                    start_to_close_timeout=options.NOTIFY_TIMEOUT,
                    retry_policy=options.NOTIFY_RETRY,
                )
            except _FAILED as err:
                detail = f"{step.detail} (counterparty not told: {_failure_text(err)})"
        self._set(machine.apply_outbound(self._t, step.action, at=workflow.now(), detail=detail))

    def _end_here(self, step: decide.EndHere) -> None:
        self._set(
            machine.apply_outbound(self._t, step.action, at=workflow.now(), detail=step.detail)
        )

    # --- the data plane (provider) ------------------------------------------------------------

    async def _resume_flow(self, process_id: str | None) -> JsonObject | None:
        """Resume the data flow; the new DataAddress the data plane gave, if any."""
        resumed = await self._data_plane(names.ACT_DATAPLANE_RESUME, process_id)
        self._flow_status = None
        return resumed.data_address if resumed is not None else None

    async def _data_plane(
        self, activity: str, arg: object, *, raise_errors: bool = False
    ) -> FlowResult | None:
        """A signaling call: local first, then scheduled with retries (see options)."""
        try:
            result: FlowResult = await workflow.execute_local_activity(
                activity,
                arg,
                result_type=FlowResult,
                start_to_close_timeout=options.DATAPLANE_LOCAL_TIMEOUT,
                retry_policy=options.DATAPLANE_LOCAL_RETRY,
            )
            return result
        except _FAILED as err:
            if _rejected(err):
                if raise_errors:
                    raise
                return None
        try:
            slow: FlowResult = await workflow.execute_activity(
                activity,
                arg,
                result_type=FlowResult,
                start_to_close_timeout=options.DATAPLANE_TIMEOUT,
                retry_policy=options.DATAPLANE_RETRY,
            )
            return slow
        except _FAILED:
            if raise_errors:
                raise
            return None

    async def _data_plane_stop(self, stop: FlowStop, *, local: bool) -> None:
        """Stop the flow; from an update handler (local) a failure is left for run() to retry."""
        if local:
            try:
                await workflow.execute_local_activity(
                    names.ACT_DATAPLANE_STOP,
                    stop,
                    start_to_close_timeout=options.DATAPLANE_LOCAL_TIMEOUT,
                    retry_policy=options.DATAPLANE_LOCAL_RETRY,
                )
                self._owed_stop = None
            except _FAILED as err:
                workflow.logger.warning("data plane stop failed: %s", _failure_text(err))
                self._owed_stop = stop
            return
        try:
            await workflow.execute_activity(
                names.ACT_DATAPLANE_STOP,
                stop,
                start_to_close_timeout=options.DATAPLANE_TIMEOUT,
                retry_policy=options.DATAPLANE_RETRY,
            )
        except _FAILED as err:
            workflow.logger.error("data plane stop abandoned: %s", _failure_text(err))
        self._owed_stop = None

    # --- consumer shortcut: negotiate first -----------------------------------------------

    async def _negotiate(self, start: TransferStart) -> None:
        negotiation = start.negotiation
        if negotiation is None:  # pragma: no cover - checked by the caller
            return
        try:
            result: NegotiationRecord = await workflow.execute_child_workflow(
                names.WF_NEGOTIATION,
                negotiation,
                id=negotiation_workflow_id(
                    negotiation.record.negotiation.role, negotiation.record.own_pid
                ),
                result_type=NegotiationRecord,
            )
        except ChildWorkflowError as err:
            self._end_here(decide.negotiation_failed(_failure_text(err)))
            return
        outcome = decide.after_negotiation(result.negotiation)
        if isinstance(outcome, decide.EndHere):
            self._end_here(outcome)
            return
        self._set(self._t.model_copy(update={"agreement_id": outcome}))

    # --- projection ---------------------------------------------------------------------------

    def _show_awaiting(self) -> None:
        """DspAwaitingOperator follows the hold (also between versions: an operator's start
        clears it before the start message is acknowledged); a new hold is notified once."""
        awaiting = self._record.awaiting
        shown = awaiting.kind if awaiting is not None else ""
        if shown != self._awaiting_shown:
            workflow.upsert_search_attributes([AWAITING.value_set(shown)])
            self._awaiting_shown = shown
        if awaiting is None or awaiting == self._noticed:
            return
        self._noticed = awaiting
        notice = transfer_notice(self._record)
        if notice is not None:
            notify_operator(notice)

    async def _project(self) -> None:
        self._show_awaiting()
        if self._projected_version == self._t.version and self._projected_version >= 0:
            return
        t = self._t
        updates = [
            STATE.value_set(t.state.value),
            COUNTERPARTY.value_set(t.counterparty_id),
            ROLE.value_set(t.role.value),
            AGREEMENT.value_set(t.agreement_id),
        ]
        if self._record.asset_id:
            updates.append(ASSET.value_set(self._record.asset_id))
        workflow.upsert_search_attributes(updates)
        await workflow.execute_local_activity(
            names.ACT_PROJECT_TRANSFER,
            self._record,
            start_to_close_timeout=options.PROJECT_TIMEOUT,
            retry_policy=options.PROJECT_RETRY,
        )
        self._projected_version = t.version
