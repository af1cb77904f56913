"""Process and participant identifiers (dsp.md §6) and Temporal workflow-id builders (STYLE.md §4).

Pure: `new_pid` formats a uuid the caller generated (`workflow.uuid4()` in workflows)."""

from __future__ import annotations

import uuid
from typing import NewType

from connector.core.negotiation.states import Role

__all__ = [
    "AgreementId",
    "ConsumerPid",
    "ParticipantId",
    "ProviderPid",
    "negotiation_workflow_id",
    "new_pid",
    "transfer_workflow_id",
]

ConsumerPid = NewType("ConsumerPid", str)
ProviderPid = NewType("ProviderPid", str)
ParticipantId = NewType("ParticipantId", str)
AgreementId = NewType("AgreementId", str)


def new_pid(uuid_hex: str) -> str:
    """Return `urn:uuid:<canonical uuid>` for a caller-supplied uuid (dashed or plain hex).

    `urn:uuid:` is the spec's recommended form and is URL-path-safe (the TCK matches `[^/]+`).

    Raises:
        ValueError: `uuid_hex` is not a uuid.
    """
    return f"urn:uuid:{uuid.UUID(hex=uuid_hex)}"


def negotiation_workflow_id(role: Role, own_pid: str) -> str:
    """Workflow id of one side of a negotiation: `negotiation:{role}:{own_pid}`."""
    return f"negotiation:{role.value}:{own_pid}"


def transfer_workflow_id(role: Role, own_pid: str) -> str:
    """Workflow id of one side of a transfer process: `transfer:{role}:{own_pid}`."""
    return f"transfer:{role.value}:{own_pid}"
