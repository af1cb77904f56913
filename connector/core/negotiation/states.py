"""Contract negotiation states and party roles (DSP 2025-1 Contract Negotiation Protocol, States;
dsp.md §8). State values are the bare DSP terms the ACK `state` field carries (dsp.md §13.5)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["TERMINAL", "Direction", "NegotiationState", "Role"]


class Role(StrEnum):
    """Which side of a process we (or a message sender) are; shared by negotiation and transfer."""

    PROVIDER = "provider"
    CONSUMER = "consumer"

    @property
    def counterparty(self) -> Role:
        return Role.CONSUMER if self is Role.PROVIDER else Role.PROVIDER


class Direction(StrEnum):
    """Whether a timeline entry records a message we received or one we sent."""

    IN = "in"
    OUT = "out"


class NegotiationState(StrEnum):
    # INITIAL is ours, not DSP's: the aggregate exists (pid allocated) but no message has been
    # exchanged yet. It never appears on the wire.
    INITIAL = "INITIAL"
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: Final[frozenset[NegotiationState]] = frozenset(
    {NegotiationState.FINALIZED, NegotiationState.TERMINATED}
)
