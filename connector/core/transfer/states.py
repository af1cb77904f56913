"""Transfer process states (DSP 2025-1 Transfer Process Protocol, States; dsp.md §9).

`Role` and `Direction` are shared with the negotiation machine and re-exported here."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from connector.core.negotiation.states import Direction, Role

__all__ = ["TERMINAL", "Direction", "Role", "TransferState"]


class TransferState(StrEnum):
    # INITIAL is ours, not DSP's: the aggregate exists but no TransferRequestMessage has been
    # exchanged yet. It never appears on the wire.
    INITIAL = "INITIAL"
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: Final[frozenset[TransferState]] = frozenset(
    {TransferState.COMPLETED, TransferState.TERMINATED}
)
