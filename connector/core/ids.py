"""Ids of DSP processes: our pids derived from what identifies a process, and the Temporal
workflow ids built from them (STYLE.md §4: stable)."""

from __future__ import annotations

import uuid
from typing import Final

from connector.core.negotiation.states import Role

__all__ = ["derived_pid", "negotiation_workflow_id", "transfer_workflow_id"]

# Deterministic pids for a counterparty's initiating message: a re-sent identical request maps
# to the same process (idempotent), never to a second negotiation.
_PID_NAMESPACE: Final = uuid.UUID("6f0c2a8e-3b5d-4f1e-9a7c-2d4b8e6f1a30")


def derived_pid(*parts: str) -> str:
    """The pid (`urn:uuid:...`, a name-based UUID) that `parts` always map to."""
    return f"urn:uuid:{uuid.uuid5(_PID_NAMESPACE, '|'.join(parts))}"


def negotiation_workflow_id(role: Role, own_pid: str) -> str:
    """Workflow id of one side of a negotiation: `negotiation:{role}:{own_pid}`."""
    return f"negotiation:{role.value}:{own_pid}"


def transfer_workflow_id(role: Role, own_pid: str) -> str:
    """Workflow id of one side of a transfer process: `transfer:{role}:{own_pid}`."""
    return f"transfer:{role.value}:{own_pid}"
