"""An update the server aborted because its workflow task failed is sent again (decision 0019);
any other engine error is answered at once."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from api.process_gateway import _RESENT_AFTER_ABORT, ProcessGateway, ProcessKind
from connector.core.errors import UnavailableError

ABORTED = "Unable to perform workflow execution update due to unexpected workflow task failure."


def _gateway() -> ProcessGateway[Any]:
    kind: ProcessKind[Any] = ProcessKind(
        name="negotiation",
        workflow="wf",
        receive_update="upd",
        record_type=object,
        load=lambda *_: None,  # type: ignore[arg-type]
        store=lambda *_: None,  # type: ignore[arg-type]
        ended_in=lambda _: None,
    )
    return ProcessGateway(client=None, pool=None, task_queue="q", kind=kind)  # type: ignore[arg-type]


class Calls:
    def __init__(self, failures: int, message: str = ABORTED) -> None:
        self.failures = failures
        self.message = message
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        if self.count <= self.failures:
            raise RPCError(self.message, RPCStatusCode.INTERNAL, b"")
        return "applied"


async def test_an_update_aborted_by_a_failed_task_is_sent_again() -> None:
    calls = Calls(failures=2)
    assert await _gateway()._call("pid", calls) == "applied"
    assert calls.count == 3


async def test_the_retries_are_bounded() -> None:
    calls = Calls(failures=100)
    with pytest.raises(UnavailableError, match="unexpected workflow task failure"):
        await _gateway()._call("pid", calls)
    assert calls.count == 5


async def test_other_engine_errors_are_not_retried() -> None:
    calls = Calls(failures=1, message="namespace is being deleted")
    with pytest.raises(UnavailableError, match="namespace is being deleted"):
        await _gateway()._call("pid", calls)
    assert calls.count == 1


async def test_a_resent_update_is_remembered_for_the_answer() -> None:
    # `_deliver_message` answers 2xx when the resent copy finds the first one applied.
    _RESENT_AFTER_ABORT.set(False)
    await _gateway()._call("pid", Calls(failures=0))
    assert _RESENT_AFTER_ABORT.get() is False
    await _gateway()._call("pid", Calls(failures=1))
    assert _RESENT_AFTER_ABORT.get() is True
