"""DSP 2025-1 Contract Negotiation Protocol messages and ODRL profile (negotiation/*-schema.json).

Offer and Agreement keep their rules as JSON dicts: `connector.core.policy` parses them. State and
event values are the bare 2025-1 terms (`REQUESTED`, not `dspace:REQUESTED`, dsp.md §13.5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Self

from pydantic import ConfigDict, Field, model_validator

from connector.core.dsp.common import DspModel, JsonObject, JsonValue, Reasons

__all__ = [
    "Agreement",
    "ContractAgreementMessage",
    "ContractAgreementVerificationMessage",
    "ContractNegotiation",
    "ContractNegotiationError",
    "ContractNegotiationEventMessage",
    "ContractNegotiationStateValue",
    "ContractNegotiationTerminationMessage",
    "ContractOfferMessage",
    "ContractRequestMessage",
    "NegotiationEventType",
    "Offer",
]

ContractNegotiationStateValue = Literal[
    "REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "FINALIZED", "TERMINATED"
]
NegotiationEventType = Literal["ACCEPTED", "FINALIZED"]


class _PolicyClass(DspModel):
    """ODRL `PolicyClass` (contract-schema.json): header fields typed, rules kept as JSON."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(alias="@id")
    profile: str | list[str] | None = None
    permission: list[JsonObject] | None = Field(default=None, min_length=1)
    prohibition: list[JsonObject] | None = Field(default=None, min_length=1)
    obligation: list[JsonObject] | None = Field(default=None, min_length=1)

    @property
    def policy(self) -> JsonObject:
        """The whole policy as a compacted 2025-1 JSON dict (input of the policy engine)."""
        dumped: JsonObject = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped

    @classmethod
    def from_policy(cls, policy: Mapping[str, JsonValue]) -> Self:
        """Build from a compacted 2025-1 policy dict. Raises pydantic.ValidationError."""
        return cls.model_validate(dict(policy))


class Offer(_PolicyClass):
    """ODRL Offer: catalog `Offer` (no `target`) and `MessageOffer` (with `target`), dsp.md §11."""

    type: Literal["Offer"] = Field(default="Offer", alias="@type")
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None


class Agreement(_PolicyClass):
    """ODRL Agreement: bound to one Dataset (`target`) and both participants."""

    type: Literal["Agreement"] = Field(default="Agreement", alias="@type")
    target: str
    assigner: str
    assignee: str
    # Kept as the wire string: the schema pattern allows zone-less values a datetime would alter.
    timestamp: str | None = None


class ContractRequestMessage(DspModel):
    type: Literal["ContractRequestMessage"] = Field(default="ContractRequestMessage", alias="@type")
    consumer_pid: str
    provider_pid: str | None = None
    offer: Offer
    callback_address: str | None = None

    @model_validator(mode="after")
    def _initial_or_counter(self) -> Self:
        # 2025-1 allows exactly one of the two (schema oneOf); 0.8 always sent callbackAddress.
        if self.provider_pid is None and self.callback_address is None:
            raise ValueError(
                "an initial request needs callbackAddress, a counter-request providerPid"
            )
        return self


class ContractOfferMessage(DspModel):
    type: Literal["ContractOfferMessage"] = Field(default="ContractOfferMessage", alias="@type")
    provider_pid: str
    consumer_pid: str | None = None
    offer: Offer
    callback_address: str | None = None

    @model_validator(mode="after")
    def _initial_or_counter(self) -> Self:
        if self.consumer_pid is None and self.callback_address is None:
            raise ValueError("an initial offer needs callbackAddress, a counter-offer consumerPid")
        return self


class ContractAgreementMessage(DspModel):
    type: Literal["ContractAgreementMessage"] = Field(
        default="ContractAgreementMessage", alias="@type"
    )
    provider_pid: str
    consumer_pid: str
    agreement: Agreement


class ContractAgreementVerificationMessage(DspModel):
    type: Literal["ContractAgreementVerificationMessage"] = Field(
        default="ContractAgreementVerificationMessage", alias="@type"
    )
    provider_pid: str
    consumer_pid: str


class ContractNegotiationEventMessage(DspModel):
    type: Literal["ContractNegotiationEventMessage"] = Field(
        default="ContractNegotiationEventMessage", alias="@type"
    )
    provider_pid: str
    consumer_pid: str
    event_type: NegotiationEventType


class ContractNegotiationTerminationMessage(DspModel):
    type: Literal["ContractNegotiationTerminationMessage"] = Field(
        default="ContractNegotiationTerminationMessage", alias="@type"
    )
    provider_pid: str
    consumer_pid: str
    code: str | None = None
    reason: Reasons | None = None


class ContractNegotiation(DspModel):
    """The ACK body returned by GET and by the 201 of an initial request/offer."""

    type: Literal["ContractNegotiation"] = Field(default="ContractNegotiation", alias="@type")
    provider_pid: str
    consumer_pid: str
    state: ContractNegotiationStateValue


class ContractNegotiationError(DspModel):
    """Error body: both pids are schema-required; `reason`, when present, is non-empty."""

    type: Literal["ContractNegotiationError"] = Field(
        default="ContractNegotiationError", alias="@type"
    )
    provider_pid: str
    consumer_pid: str
    code: str | None = None
    reason: Reasons | None = None
