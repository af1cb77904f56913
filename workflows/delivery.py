"""One outbound DSP message in flight, and what we know of its delivery (decisions 0006, 0010).

Shared by the negotiation and transfer workflows. A message goes out as a quick first try (see
`sending.first_try`), then as the retrying activity until delivered, rejected or out of time.
While it is in flight, a peer's message that is legal only in the state ours leads to proves
that the peer has ours (its acknowledgement was lost, or is still on its way), unless we know
that nothing was ever sent. "Nothing was sent" is known only when the first try failed before a
byte left AND the delivery journal holds no mark for the message: every attempt (of the first
try, of the retries, or of a run lost in a worker crash) marks it durably before it writes the
request (`activities.dsp_client`). Anything else counts as "delivered or unknown".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import names, options, sending
    from workflows.contracts import RemoteAck
    from workflows.sending import SendFailure

A = TypeVar("A")
S = TypeVar("S")


@dataclass(frozen=True)
class Sent:
    """The peer acknowledged the message (2xx)."""

    ack: RemoteAck


@dataclass(frozen=True)
class Superseded:
    """The peer's reply acknowledged it, or a termination made it moot, while it was in flight."""


@dataclass(frozen=True)
class Failed:
    """Rejected by the peer (4xx), refused by our outbound guard, or out of time."""

    error: BaseException


Outcome = Sent | Superseded | Failed


class DeadlinePassed(Exception):
    """Retrying the send would outlive the process's deadline."""


def failure_text(err: BaseException) -> str:
    cause = sending.cause_of(err)
    return str(cause) or type(cause).__name__


def rejection(err: BaseException) -> ApplicationError | None:
    """The peer's (or our guard's) final no, if that is what `err` is."""
    cause = sending.cause_of(err)
    if isinstance(cause, ApplicationError) and cause.type in options.NON_RETRYABLE:
        return cause
    return None


def journal_key(version: int, message_kind: str) -> str:
    """The delivery journal's key of the message sent at `version` (unique per workflow)."""
    return f"{workflow.info().workflow_id}/{version}/{message_kind}"


class Delivery(Generic[A, S]):
    """The one message in flight: the action, its target state, and what we know of it."""

    def __init__(self, activity: str) -> None:
        self._activity = activity
        # The action in flight and the state it leads to once acknowledged (None: nothing).
        self.action: A | None = None
        self.target: S | None = None
        self.last_error: str | None = None
        self._key = ""
        # Whether a reply legal only in `target` may stand for the acknowledgement (not for a
        # transfer restart, which the peer answers with nothing of its own).
        self._acknowledgeable = False
        self._task: asyncio.Task[RemoteAck] | None = None
        self._seq = 0
        # The first try failed before sending a byte; retries may have sent since (the journal).
        self._first_try_unsent = False

    @property
    def in_flight(self) -> bool:
        return self.target is not None

    def expect(self, action: A, target: S) -> None:
        """`action` is about to be sent: a reply legal in `target` already acknowledges it."""
        self._seq += 1
        self.action, self.target = action, target
        self._key, self._acknowledgeable = "", True

    async def send(
        self,
        action: A,
        message: object,
        *,
        target: S,
        key: str,
        answering: bool,
        acknowledgeable: bool = True,
        deadline: timedelta | None = None,
        before_retries: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Deliver `message` (first try, then retries until `deadline` from now)."""
        self._seq += 1
        seq = self._seq
        self.action, self.target = action, target
        self._key, self._acknowledgeable = key, acknowledgeable
        self._first_try_unsent = False
        self._task = asyncio.create_task(
            self._deliver(
                message, seq, answering=answering, deadline=deadline, before=before_retries
            )
        )
        try:
            ack = await self._task
        except BaseException as err:
            if self._seq != seq:
                return Superseded()
            self._clear()
            if isinstance(err, (*SendFailure, DeadlinePassed)):
                return Failed(err)
            raise
        finally:
            if self._seq == seq:
                self._task = None
        if self._seq != seq:
            return Superseded()
        self._clear()
        self.last_error = None
        return Sent(ack)

    async def _deliver(
        self,
        message: object,
        seq: int,
        *,
        answering: bool,
        deadline: timedelta | None,
        before: Callable[[], Awaitable[None]] | None,
    ) -> RemoteAck:
        started = workflow.now()
        pause: timedelta | None = None
        try:
            return await sending.first_try(self._activity, message, answering=answering)
        except SendFailure as err:
            if self._seq != seq:
                # Superseded while the first try ran: cancelling it surfaces as its failure,
                # which must not start the retries (a second copy of the message).
                raise asyncio.CancelledError from None
            if rejection(err) is not None:
                raise
            self.last_error = failure_text(err)
            self._first_try_unsent = sending.not_sent(err)
            pause = sending.asked_pause(err)
        if pause:
            # The peer's Retry-After holds for the retries too (the activity's own retries
            # honour it through the same failure).
            left = None if deadline is None else deadline - (workflow.now() - started)
            if left is None or left > timedelta(0):
                await workflow.sleep(pause if left is None else min(pause, left))
        remaining = None if deadline is None else deadline - (workflow.now() - started)
        if remaining is not None and remaining <= options.SEND_MIN_REMAINING:
            raise DeadlinePassed(self.last_error or "deadline passed")
        if before is not None:
            await before()
        return await sending.with_retries(self._activity, message, schedule_to_close=remaining)

    async def reply_proves_receipt(self) -> bool:
        """Whether a peer message legal only in `target` may stand for our acknowledgement.

        Call it only for such a message. False only when we know the peer cannot have ours.
        """
        if self.target is None or not self._acknowledgeable:
            return False
        if not self._first_try_unsent:
            return True
        try:
            sent: bool = await workflow.execute_local_activity(
                names.ACT_DELIVERY_SENT,
                self._key,
                result_type=bool,
                start_to_close_timeout=options.JOURNAL_TIMEOUT,
                retry_policy=options.JOURNAL_RETRY,
            )
        except (ActivityError, ApplicationError):
            return True  # the journal cannot say: unknown counts as delivered
        return sent

    def settle(self) -> None:
        """The message is acknowledged by the peer's reply, or moot: stop delivering it."""
        task = self._task
        self._seq += 1
        self._clear()
        self.last_error = None
        if task is not None:
            task.cancel()

    async def settled(self, within: timedelta) -> None:
        """Wait up to `within` for the message in flight to be acknowledged or to fail."""
        if self.target is None:
            return
        seq = self._seq
        try:
            await workflow.wait_condition(
                lambda: self._seq != seq or self.target is None, timeout=within
            )
        except TimeoutError:
            return

    def _clear(self) -> None:
        self.action = None
        self.target = None
        self._key = ""
        self._acknowledgeable = False
        self._first_try_unsent = False
        self._task = None
