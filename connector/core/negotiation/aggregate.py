"""The contract negotiation aggregate: one side's view of one negotiation (dsp.md §6, §8).

Immutable and JSON-serialisable (it travels through Temporal's pydantic data converter); only
`machine.apply` produces successors. Times are passed in, never read from a clock.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue

from connector.core.negotiation.messages import MessageKind
from connector.core.negotiation.states import Direction, NegotiationState, Role

__all__ = ["JsonObject", "Negotiation", "TimelineEntry", "new_negotiation"]

JsonObject = dict[str, JsonValue]


class TimelineEntry(BaseModel):
    """One accepted message, for the operator timeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    direction: Direction
    kind: MessageKind
    from_state: NegotiationState
    to_state: NegotiationState
    detail: str | None = None


class Negotiation(BaseModel):
    """One side of one contract negotiation.

    `counterparty_address` is where messages to the counterparty go: the provider's DSP base URL on
    the consumer side, the consumer's `callbackAddress` on the provider side. `offer` is the latest
    offer on the table (the consumer's request or the provider's offer); `agreement` is set once the
    provider's ContractAgreementMessage has been sent or received.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    # Which side sends the first message; decides who acts in INITIAL (decide.py).
    initiator: Role
    state: NegotiationState = NegotiationState.INITIAL
    consumer_pid: str | None = None
    provider_pid: str | None = None
    participant_id: str
    counterparty_id: str
    counterparty_address: str | None = None
    offer: JsonObject | None = None
    agreement: JsonObject | None = None
    version: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    termination_code: str | None = None
    termination_reason: tuple[str, ...] = ()
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

    @property
    def provider_id(self) -> str:
        """Participant id of the provider (the agreement's `assigner`)."""
        return self.participant_id if self.role is Role.PROVIDER else self.counterparty_id

    @property
    def consumer_id(self) -> str:
        """Participant id of the consumer (the agreement's `assignee`)."""
        return self.participant_id if self.role is Role.CONSUMER else self.counterparty_id


def new_negotiation(
    *,
    role: Role,
    initiator: Role,
    own_pid: str,
    participant_id: str,
    counterparty_id: str,
    at: datetime,
    counterparty_address: str | None = None,
    offer: JsonObject | None = None,
) -> Negotiation:
    """A negotiation in INITIAL: our pid allocated, no message exchanged yet.

    Raises:
        pydantic.ValidationError: e.g. `at` is naive.
    """
    pids = {"provider_pid" if role is Role.PROVIDER else "consumer_pid": own_pid}
    return Negotiation.model_validate(
        {
            "role": role,
            "initiator": initiator,
            **pids,
            "participant_id": participant_id,
            "counterparty_id": counterparty_id,
            "counterparty_address": counterparty_address,
            "offer": offer,
            "created_at": at,
            "updated_at": at,
        }
    )
