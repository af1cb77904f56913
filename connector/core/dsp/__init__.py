"""DSP 2025-1 wire models, one module per spec chapter (catalog, negotiation, transfer, common).

Bodies are parsed and written through `connector.core.jsonld` (`decode` / `encode`), which owns
`@context` and the 0.8 wire form; `validate_against_schema` checks bodies against the official
schemas vendored under `schemas/`."""

from __future__ import annotations

from typing import Final

from connector.core.dsp.catalog import (
    Catalog,
    CatalogError,
    CatalogRequestMessage,
    DataService,
    Dataset,
    DatasetRequestMessage,
    Distribution,
)
from connector.core.dsp.common import (
    DSP_CONTEXT_0_8,
    DSP_CONTEXT_2025_1,
    ODRL_PROFILE_CONTEXT_2025_1,
    DcatModel,
    DspModel,
    JsonObject,
    JsonValue,
    dsp_type_of,
)
from connector.core.dsp.negotiation import (
    Agreement,
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationError,
    ContractNegotiationEventMessage,
    ContractNegotiationStateValue,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    NegotiationEventType,
    Offer,
)
from connector.core.dsp.transfer import (
    DataAddress,
    EndpointProperty,
    TransferCompletionMessage,
    TransferError,
    TransferProcess,
    TransferProcessStateValue,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.core.dsp.validation import schema_name_for, validate_against_schema
from connector.core.dsp.version import Auth, DspVersion, Version, VersionResponse

__all__ = [
    "DSP_CONTEXT_0_8",
    "DSP_CONTEXT_2025_1",
    "DSP_VERSION",
    "MESSAGE_TYPES",
    "ODRL_PROFILE_CONTEXT_2025_1",
    "Agreement",
    "Auth",
    "Catalog",
    "CatalogError",
    "CatalogRequestMessage",
    "ContractAgreementMessage",
    "ContractAgreementVerificationMessage",
    "ContractNegotiation",
    "ContractNegotiationError",
    "ContractNegotiationEventMessage",
    "ContractNegotiationStateValue",
    "ContractNegotiationTerminationMessage",
    "ContractOfferMessage",
    "ContractRequestMessage",
    "DataAddress",
    "DataService",
    "Dataset",
    "DatasetRequestMessage",
    "DcatModel",
    "Distribution",
    "DspModel",
    "DspVersion",
    "EndpointProperty",
    "JsonObject",
    "JsonValue",
    "NegotiationEventType",
    "Offer",
    "TransferCompletionMessage",
    "TransferError",
    "TransferProcess",
    "TransferProcessStateValue",
    "TransferRequestMessage",
    "TransferStartMessage",
    "TransferSuspensionMessage",
    "TransferTerminationMessage",
    "Version",
    "VersionResponse",
    "dsp_type_of",
    "schema_name_for",
    "validate_against_schema",
]

DSP_VERSION: Final = "2025-1"

_TOP_LEVEL: Final[tuple[type[DspModel], ...]] = (
    CatalogRequestMessage,
    DatasetRequestMessage,
    Catalog,
    Dataset,
    CatalogError,
    ContractRequestMessage,
    ContractOfferMessage,
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractNegotiation,
    ContractNegotiationError,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferCompletionMessage,
    TransferTerminationMessage,
    TransferProcess,
    TransferError,
)

# `@type` -> model, for every body that can be the root of a DSP request or response.
MESSAGE_TYPES: Final[dict[str, type[DspModel]]] = {
    t: m for m in _TOP_LEVEL if (t := dsp_type_of(m)) is not None
}
