"""DSP 2025-1 Transfer Process Protocol messages (transfer/*-schema.json, dsp.md §9).

`dataAddress` travels in a TransferRequestMessage only for push, in a TransferStartMessage for
pull."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connector.core.dsp.common import DspModel, Reasons

__all__ = [
    "DataAddress",
    "EndpointProperty",
    "TransferCompletionMessage",
    "TransferError",
    "TransferProcess",
    "TransferProcessStateValue",
    "TransferRequestMessage",
    "TransferStartMessage",
    "TransferSuspensionMessage",
    "TransferTerminationMessage",
]

TransferProcessStateValue = Literal["REQUESTED", "STARTED", "TERMINATED", "COMPLETED", "SUSPENDED"]


class EndpointProperty(DspModel):
    """Conventional names: `authorization` (opaque token) and `authType` (e.g. `bearer`)."""

    type: Literal["EndpointProperty"] = Field(default="EndpointProperty", alias="@type")
    name: str
    value: str


class DataAddress(DspModel):
    type: Literal["DataAddress"] = Field(default="DataAddress", alias="@type")
    endpoint_type: str
    endpoint: str | None = None
    endpoint_properties: list[EndpointProperty] | None = Field(default=None, min_length=1)

    def property(self, name: str) -> str | None:
        """The value of the first endpoint property called `name`, if any."""
        for prop in self.endpoint_properties or ():
            if prop.name == name:
                return prop.value
        return None


class TransferRequestMessage(DspModel):
    type: Literal["TransferRequestMessage"] = Field(default="TransferRequestMessage", alias="@type")
    consumer_pid: str
    agreement_id: str
    format: str
    callback_address: str
    data_address: DataAddress | None = None


class TransferStartMessage(DspModel):
    type: Literal["TransferStartMessage"] = Field(default="TransferStartMessage", alias="@type")
    provider_pid: str
    consumer_pid: str
    data_address: DataAddress | None = None


class TransferSuspensionMessage(DspModel):
    type: Literal["TransferSuspensionMessage"] = Field(
        default="TransferSuspensionMessage", alias="@type"
    )
    provider_pid: str
    consumer_pid: str
    code: str | None = None
    reason: Reasons | None = None


class TransferCompletionMessage(DspModel):
    type: Literal["TransferCompletionMessage"] = Field(
        default="TransferCompletionMessage", alias="@type"
    )
    provider_pid: str
    consumer_pid: str


class TransferTerminationMessage(DspModel):
    type: Literal["TransferTerminationMessage"] = Field(
        default="TransferTerminationMessage", alias="@type"
    )
    provider_pid: str
    consumer_pid: str
    code: str | None = None
    reason: Reasons | None = None


class TransferProcess(DspModel):
    """The ACK body returned by GET and by the 201 of a TransferRequestMessage."""

    type: Literal["TransferProcess"] = Field(default="TransferProcess", alias="@type")
    provider_pid: str
    consumer_pid: str
    state: TransferProcessStateValue


class TransferError(DspModel):
    """Error body: both pids are schema-required; `reason`, when present, is non-empty."""

    type: Literal["TransferError"] = Field(default="TransferError", alias="@type")
    provider_pid: str
    consumer_pid: str
    code: str | None = None
    reason: Reasons | None = None
