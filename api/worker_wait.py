"""How long an HTTP request may wait for a workflow worker to take a message.

Without a bound, a request that reaches us while no worker polls (all crashed, or being
redeployed) would hang until the client gives up, and would hold up a graceful shutdown. With
it, the counterparty gets a 503 and re-sends; update ids are content-derived, so the re-sent
message is the same update and is never applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateRPCTimeoutOrCancelledError

from connector.core.errors import UnavailableError

T = TypeVar("T")

# Below the 10 s read timeout our own DSP client uses (and peers' are rarely shorter).
WORKER_ANSWER_SECONDS: Final = 8.0


async def within_worker_wait(
    call: Callable[[], Awaitable[T]], seconds: float = WORKER_ANSWER_SECONDS
) -> T:
    """Await `call`, or raise UnavailableError once the wait (`seconds`) is over.

    Raises:
        UnavailableError: no worker answered within `seconds`.
    """
    try:
        async with asyncio.timeout(seconds):
            return await call()
    # The SDK turns the cancellation of a waiting update into its own error.
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise UnavailableError(
            f"no workflow worker took the message within {seconds:.0f} s; send it again shortly"
        ) from None


async def settle_start(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    """Retrieve the start half of an update-with-start, so its failure is never "unretrieved".

    Only the update's outcome matters (already raised or returned). When our wait bound cancelled
    the call, the start half is resolved as cancelled: that CancelledError is the operation's,
    not a cancellation of this task (the future is already done, so awaiting it cannot suspend).
    """
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await operation.workflow_handle()
