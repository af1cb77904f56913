"""The transfer process aggregate: one side's view of one transfer process (dsp.md §6, §9).

Immutable and JSON-serialisable (it travels through Temporal's pydantic data converter); only
`machine.apply` produces successors. Times are passed in, never read from a clock.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue

from connector.core.transfer.messages import MessageKind
from connector.core.transfer.states import Direction, Role, TransferState

__all__ = ["JsonObject", "TimelineEntry", "Transfer", "new_transfer"]

JsonObject = dict[str, JsonValue]


class TimelineEntry(BaseModel):
    """One accepted message, for the operator timeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    direction: Direction
    kind: MessageKind
    from_state: TransferState
    to_state: TransferState
    detail: str | None = None


class Transfer(BaseModel):
    """One side of one transfer process.

    `counterparty_address` is where messages to the counterparty go: the provider's DSP base URL on
    the consumer side, the consumer's `callbackAddress` on the provider side. `data_address` is the
    latest DataAddress exchanged: the consumer's push target (TransferRequestMessage) or the
    provider's pull endpoint (TransferStartMessage). `code`/`reason` are those of the latest
    suspension or termination.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    state: TransferState = TransferState.INITIAL
    consumer_pid: str | None = None
    provider_pid: str | None = None
    agreement_id: str
    format: str
    data_address: JsonObject | None = None
    counterparty_id: str
    counterparty_address: str | None = None
    version: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    code: str | None = None
    reason: tuple[str, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def own_pid(self) -> str | None:
        return self.provider_pid if self.role is Role.PROVIDER else self.consumer_pid

    @property
    def counterparty_pid(self) -> str | None:
        return self.consumer_pid if self.role is Role.PROVIDER else self.provider_pid


def new_transfer(
    *,
    role: Role,
    own_pid: str,
    agreement_id: str,
    format: str,
    counterparty_id: str,
    at: datetime,
    counterparty_address: str | None = None,
    data_address: JsonObject | None = None,
) -> Transfer:
    """A transfer process in INITIAL: our pid allocated, no message exchanged yet.

    Raises:
        pydantic.ValidationError: e.g. `at` is naive.
    """
    pids = {"provider_pid" if role is Role.PROVIDER else "consumer_pid": own_pid}
    return Transfer.model_validate(
        {
            "role": role,
            **pids,
            "agreement_id": agreement_id,
            "format": format,
            "data_address": data_address,
            "counterparty_id": counterparty_id,
            "counterparty_address": counterparty_address,
            "created_at": at,
            "updated_at": at,
        }
    )
