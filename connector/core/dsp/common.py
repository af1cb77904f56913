"""Shared base of the DSP 2025-1 wire models (2025-1 "Common Functionality", Schemas & Contexts).

Attributes are snake_case; aliases are the compacted 2025-1 terms (camelCase, `@id`, `@type`).
`@context` is not a model field: it depends on the protocol version, so `connector.core.jsonld`
writes and checks it (`encode` / `decode`)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

__all__ = [
    "DSP_CONTEXT_0_8",
    "DSP_CONTEXT_2025_1",
    "DSP_NAMESPACE_2025_1",
    "ODRL_PROFILE_CONTEXT_2025_1",
    "DcatModel",
    "DspModel",
    "JsonObject",
    "JsonValue",
    "Reasons",
    "dsp_type_of",
]

DSP_NAMESPACE_2025_1: Final = "https://w3id.org/dspace/2025/1/"
DSP_CONTEXT_2025_1: Final = "https://w3id.org/dspace/2025/1/context.jsonld"
ODRL_PROFILE_CONTEXT_2025_1: Final = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
DSP_CONTEXT_0_8: Final = "https://w3id.org/dspace/v0.8/context.json"

JsonObject = dict[str, JsonValue]

# Error and termination `reason`: `array, minItems 1, items: any` (2025-1); strings in practice.
Reasons = Annotated[list[JsonValue], Field(min_length=1)]


class DspModel(BaseModel):
    """Base of every DSP wire model: aliases in, aliases out, unknown properties ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The compacted 2025-1 body without `@context` (the codec adds it)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class DcatModel(DspModel):
    """DCAT resources keep extra properties (`dct:title`, …): servers MAY process them (§7)."""

    model_config = ConfigDict(extra="allow")


def dsp_type_of(model: type[BaseModel]) -> str | None:
    """The `@type` a model class is bound to; None for plain-JSON bodies (VersionResponse)."""
    field = model.model_fields.get("type")
    if field is None or not isinstance(field.default, str):
        return None
    return field.default
