"""Temporal workflow ids of DSP processes (STYLE.md §4): stable, built from our own pid."""

from __future__ import annotations

from connector.core.negotiation.states import Role

__all__ = ["negotiation_workflow_id", "transfer_workflow_id"]


def negotiation_workflow_id(role: Role, own_pid: str) -> str:
    """Workflow id of one side of a negotiation: `negotiation:{role}:{own_pid}`."""
    return f"negotiation:{role.value}:{own_pid}"


def transfer_workflow_id(role: Role, own_pid: str) -> str:
    """Workflow id of one side of a transfer process: `transfer:{role}:{own_pid}`."""
    return f"transfer:{role.value}:{own_pid}"
