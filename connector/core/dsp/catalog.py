"""DSP 2025-1 Catalog Protocol messages and DCAT shapes (catalog/*-schema.json, dsp.md §7).

Optional arrays are absent rather than empty (`minItems: 1`); catalog Offers carry no `target`,
the enclosing Dataset is the target (negotiation/contract-schema.json `Offer`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from connector.core.dsp.common import DcatModel, DspModel, JsonValue, Reasons
from connector.core.dsp.negotiation import Offer

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogRequestMessage",
    "DataService",
    "Dataset",
    "DatasetRequestMessage",
    "Distribution",
]


def _offers_without_target(offers: list[Offer] | None) -> list[Offer] | None:
    if offers and any(o.target is not None for o in offers):
        raise ValueError("catalog offers must not carry target; the Dataset is the target")
    return offers


class CatalogRequestMessage(DspModel):
    type: Literal["CatalogRequestMessage"] = Field(default="CatalogRequestMessage", alias="@type")
    # Implementation-specific; an unsupported filter is answered with 400 by the API.
    filter: list[JsonValue] | None = None


class DatasetRequestMessage(DspModel):
    """Abstract in the HTTPS binding (the dataset id travels in the path), kept for completeness."""

    type: Literal["DatasetRequestMessage"] = Field(default="DatasetRequestMessage", alias="@type")
    dataset: str


class DataService(DcatModel):
    id: str = Field(alias="@id")
    type: Literal["DataService"] = Field(default="DataService", alias="@type")
    endpoint_url: str = Field(alias="endpointURL")
    endpoint_description: str | None = None
    serves_dataset: list[Dataset] | None = Field(default=None, min_length=1)


class Distribution(DcatModel):
    type: Literal["Distribution"] = Field(default="Distribution", alias="@type")
    # The value a consumer later sends as TransferRequestMessage.format (e.g. `HttpData-PULL`).
    format: str
    # A DataService `@id` or an embedded DataService.
    access_service: str | DataService
    has_policy: list[Offer] | None = Field(default=None, min_length=1)

    _no_target = field_validator("has_policy")(_offers_without_target)


class Dataset(DcatModel):
    id: str = Field(alias="@id")
    type: Literal["Dataset"] = Field(default="Dataset", alias="@type")
    has_policy: list[Offer] = Field(min_length=1)
    distribution: list[Distribution] = Field(min_length=1)

    _no_target = field_validator("has_policy")(_offers_without_target)


class Catalog(DcatModel):
    """A root Catalog needs `participantId` (schema RootCatalog); nested catalogs do not."""

    id: str = Field(alias="@id")
    type: Literal["Catalog"] = Field(default="Catalog", alias="@type")
    participant_id: str | None = None
    dataset: list[Dataset] | None = Field(default=None, min_length=1)
    service: list[DataService] | None = Field(default=None, min_length=1)
    catalog: list[Catalog] | None = Field(default=None, min_length=1)
    distribution: list[Distribution] | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "hasPolicy" in data:
            raise ValueError("a Catalog must not have hasPolicy (catalog-schema.json)")
        return data


class CatalogError(DspModel):
    type: Literal["CatalogError"] = Field(default="CatalogError", alias="@type")
    code: str | None = None
    reason: Reasons | None = None


DataService.model_rebuild()
