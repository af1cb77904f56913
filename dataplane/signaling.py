"""Data Plane Signaling messages between the control plane's workers and the data plane.

Shaped after the Eclipse Data Plane Signaling spec (DataFlowStartMessage, DataFlowResponseMessage,
suspend / terminate, status), over HTTP under `/signaling/v1`, authenticated with a shared secret
(`Authorization: Bearer <secret>`). The flow id is the provider's transfer pid.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from connector.settings import Settings

__all__ = [
    "FLOW_STATES",
    "PREFIX",
    "DataFlowResponseMessage",
    "DataFlowStartMessage",
    "DataFlowStatusMessage",
    "DataFlowStopMessage",
    "secret_matches",
    "signaling_secret",
]

PREFIX: Final = "/signaling/v1/dataflows"
SECRET_FILE: Final = "dataplane-signaling-key"  # noqa: S105 - a file name
FLOW_STATES: Final = ("STARTED", "SUSPENDED", "COMPLETED", "TERMINATED", "FAILED")

FlowState = Literal["STARTED", "SUSPENDED", "COMPLETED", "TERMINATED", "FAILED"]


class _Message(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        frozen=True,
        extra="ignore",
    )


class DataFlowStartMessage(_Message):
    type: Literal["DataFlowStartMessage"] = Field(default="DataFlowStartMessage", alias="@type")
    process_id: str
    agreement_id: str
    dataset_id: str | None = None
    participant_id: str
    # `<format>` as in the DSP request, e.g. HttpData-PULL; `flow_type` says pull or push.
    transfer_type: str
    flow_type: Literal["PULL", "PUSH"]
    finite: bool = True
    source_data_address: dict[str, Any]
    destination_data_address: dict[str, Any] | None = None


class DataFlowResponseMessage(_Message):
    type: Literal["DataFlowResponseMessage"] = Field(
        default="DataFlowResponseMessage", alias="@type"
    )
    process_id: str
    state: FlowState
    # Pull: the DSP DataAddress the consumer pulls from (endpoint + token).
    data_address: dict[str, Any] | None = None
    attempt: int = 1


class DataFlowStopMessage(_Message):
    """Suspend / terminate / complete a flow."""

    reason: str | None = None


class DataFlowStatusMessage(_Message):
    type: Literal["DataFlowStatusMessage"] = Field(default="DataFlowStatusMessage", alias="@type")
    process_id: str
    state: FlowState
    bytes_moved: int = 0
    attempt: int = 1
    error: str | None = None


def signaling_secret(settings: Settings) -> str:
    """The configured secret, or the one kept in <data dir>/dataplane-signaling-key (created)."""
    if settings.dataplane.signaling_secret is not None:
        return settings.dataplane.signaling_secret.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        try:
            fd = path.open("x", encoding="utf-8")
        except FileExistsError:  # another process won the race
            return path.read_text(encoding="utf-8").strip()
        with fd:
            fd.write(value)
        path.chmod(0o600)
        return value


def secret_matches(authorization: str | None, secret: str) -> bool:
    """Constant-time check of `Authorization: Bearer <secret>`."""
    if not authorization:
        return False
    presented = authorization.removeprefix("Bearer ").strip()
    return hmac.compare_digest(presented.encode(), secret.encode())
