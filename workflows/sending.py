"""How a workflow delivers one DSP message to its counterparty: one quick try, then retries.

Used by `workflows.delivery` for both workflows (decisions 0003, 0006 and 0010):
- a message sent on our own initiative goes first as a local activity (no activity task on the
  server: the fast path);
- one answering the peer's message goes first as ONE scheduled attempt (a local activity would
  hold back the answer to the peer's update);
- after either fails, a scheduled activity retries with back-off, visible with its last failure
  and next attempt in the Temporal UI and the management API.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import names, options
    from workflows.contracts import RemoteAck

# A failed regular activity raises ActivityError (the cause inside); a failed local activity
# raises the activity's ApplicationError itself. Both are handled alike.
SendFailure = (ActivityError, ApplicationError)


def cause_of(err: BaseException) -> BaseException:
    return err.cause if isinstance(err, ActivityError) and err.cause else err


def not_sent(err: BaseException) -> bool:
    """The attempt failed before a byte of the request left: it cannot have delivered."""
    cause = cause_of(err)
    return isinstance(cause, ApplicationError) and cause.type == names.ERR_PEER_NOT_CONNECTED


def asked_pause(err: BaseException) -> timedelta | None:
    """The pause the peer asked for with its refusal (`Retry-After`, decision 0032)."""
    cause = cause_of(err)
    return cause.next_retry_delay if isinstance(cause, ApplicationError) else None


async def first_try(activity: str, message: object, *, answering: bool) -> RemoteAck:
    """The quick try: a local activity, or one scheduled attempt when `answering` the peer."""
    if answering:
        once: RemoteAck = await workflow.execute_activity(
            activity,
            message,
            result_type=RemoteAck,
            start_to_close_timeout=options.SEND_TIMEOUT,
            retry_policy=options.SEND_ONCE,
        )
        return once
    local: RemoteAck = await workflow.execute_local_activity(
        activity,
        message,
        result_type=RemoteAck,
        start_to_close_timeout=options.SEND_LOCAL_TIMEOUT,
        retry_policy=options.SEND_LOCAL_RETRY,
    )
    return local


async def with_retries(
    activity: str, message: object, *, schedule_to_close: timedelta | None
) -> RemoteAck:
    """Retried with back-off until delivered, rejected (4xx) or out of time."""
    ack: RemoteAck = await workflow.execute_activity(
        activity,
        message,
        result_type=RemoteAck,
        start_to_close_timeout=options.SEND_TIMEOUT,
        schedule_to_close_timeout=schedule_to_close,
        retry_policy=options.SEND_RETRY,
    )
    return ack
