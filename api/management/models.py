"""Wire models of the management API `/management/v1` (JSON, camelCase) and list-query parsing.

List endpoints share one query language:

* `filter` (repeatable, ANDed): `<left>=<value>` (equals), `<left>~=<pattern>` (SQL LIKE, `%`
  and `_` wildcards), `<left>@=<v1>,<v2>` (in). Or a JSON array of criteria objects
  (`[{"operandLeft": "properties.name", "operator": "=", "operandRight": "x"}]`). Left operands:
  assets `id`, `properties.<key>`; policies `id`; offers `id`, `accessPolicyId`,
  `contractPolicyId`. Values compare as text.
* `sort`: `createdAt:asc` (default), `createdAt:desc`, `id:asc`, `id:desc`.
* `cursor`: the `nextCursor` of the previous page (opaque, bound to the sort order).
* `limit`: 1..200 (default 50).

Answers are `{"items": [...], "total": N, "nextCursor": "..." | null}`; `total` counts every
item matching the filter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic.alias_generators import to_camel

from connector.core.errors import BadRequestError
from connector.core.policy import Scope
from connector.services.catalog import CallerFacts, validation_to_400
from connector.stores.catalog import (
    MAX_PAGE_SIZE,
    AssetRecord,
    Criterion,
    ListQuery,
    OfferRecord,
    PolicyRecord,
    parse_criteria,
    selector_to_wire,
)

M = TypeVar("M", bound=BaseModel)


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def wire(model: BaseModel) -> Any:
    """A parsed body as JSON data (what an Idempotency-Key's body digest is taken of)."""
    return model.model_dump(mode="json", by_alias=True)


def created(out: BaseModel) -> JSONResponse:
    """201 with `out` as the route's response model would render it."""
    return JSONResponse(wire(out), status_code=201)


def parse_body(model: type[M], body: object) -> M:
    """Validate a management body; 400 problem+json with the pointer of the first problem."""
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object", pointer="")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_to_400(exc) from None


class DataAddressIn(BaseModel):
    """Where the data plane finds the data: `type` plus type-specific fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["http", "file", "s3"]


class AssetIn(_Wire):
    id: str | None = Field(default=None, min_length=1, max_length=512)
    properties: dict[str, JsonValue] = Field(default_factory=dict)
    data_address: DataAddressIn
    # Transfer formats offered as DCAT distributions, e.g. ["HttpData-PULL", "HttpData-PUSH"].
    distributions: list[str] = Field(default_factory=list, max_length=32)


class AssetOut(_Wire):
    id: str
    properties: dict[str, Any]
    data_address: dict[str, Any]
    distributions: list[str]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: AssetRecord) -> AssetOut:
        return cls(
            id=r.asset_id,
            properties=r.properties,
            data_address=r.data_address,
            distributions=r.distributions,
            version=r.version,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class PolicyIn(_Wire):
    id: str | None = Field(default=None, min_length=1, max_length=512)
    # ODRL in the compact 2025-1 form (validated separately: 422 with the exact pointer).
    policy: JsonValue


class PolicyOut(_Wire):
    id: str
    policy: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: PolicyRecord) -> PolicyOut:
        return cls(
            id=r.policy_id,
            policy=r.policy,
            version=r.version,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class OfferIn(_Wire):
    id: str | None = Field(default=None, min_length=1, max_length=512)
    # Asset ids, or criteria objects {operandLeft, operator (=, in, like), operandRight}.
    asset_selector: JsonValue
    access_policy_id: str = Field(min_length=1)
    contract_policy_id: str = Field(min_length=1)
    # How the provider answers contract requests for this offer (decision 0012); absent: the
    # connector's `negotiation.provider_decision`.
    provider_decision: Literal["auto", "approve", "rules"] | None = None


class OfferOut(_Wire):
    id: str
    asset_selector: list[Any]
    access_policy_id: str
    contract_policy_id: str
    provider_decision: Literal["auto", "approve", "rules"] | None = None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: OfferRecord) -> OfferOut:
        return cls(
            id=r.offer_id,
            asset_selector=selector_to_wire(r.asset_selector),
            access_policy_id=r.access_policy_id,
            contract_policy_id=r.contract_policy_id,
            provider_decision=r.provider_decision,
            version=r.version,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class AssetPage(_Wire):
    items: list[AssetOut]
    total: int
    next_cursor: str | None


class PolicyPage(_Wire):
    items: list[PolicyOut]
    total: int
    next_cursor: str | None


class OfferPage(_Wire):
    items: list[OfferOut]
    total: int
    next_cursor: str | None


class CallerContextIn(_Wire):
    """A hypothetical caller for dry runs ("why can't partner X see dataset Y")."""

    participant_id: str = Field(min_length=1)
    claims: dict[str, JsonValue] = Field(default_factory=dict)
    purpose: str | None = None
    spatial: str | None = None
    date_time: AwareDatetime | None = None

    def facts(self) -> CallerFacts:
        return CallerFacts(self.participant_id, self.claims, self.purpose, self.spatial)


class EvaluateIn(CallerContextIn):
    scope: Scope = Scope.CATALOG


class ExplainIn(CallerContextIn):
    dataset_id: str = Field(min_length=1)


class CatalogRequestIn(_Wire):
    counter_party_address: str = Field(min_length=1, max_length=2048)
    counter_party_id: str = Field(min_length=1, max_length=2048)
    filter: list[JsonValue] | None = None
    limit: int | None = Field(default=None, ge=1, le=10_000)


def resolve_id(path_id: str | None, body_id: str | None) -> str:
    """The resource id for create (body) or replace (path; a body id must then agree)."""
    if path_id is None:
        if body_id is None:
            raise BadRequestError("/id: field required", pointer="/id")
        return body_id
    if body_id is not None and body_id != path_id:
        raise BadRequestError(f"/id: {body_id!r} differs from the path id", pointer="/id")
    return path_id


_OPS = (("~=", "like"), ("@=", "in"), ("=", "="))


def _filter_item(text: str, fields: Mapping[str, str], index: int) -> list[Criterion]:
    if text.lstrip().startswith(("[", "{")):
        try:
            value = json.loads(text)
        except ValueError:
            raise BadRequestError(f"filter {index}: invalid JSON", pointer="/filter") from None
        value = value if isinstance(value, list) else [value]
        return parse_criteria(value, fields, pointer="/filter", error=BadRequestError)
    for token, op in _OPS:
        left, sep, right = text.partition(token)
        if sep and left:
            operand: Any = right.split(",") if op == "in" else right
            item = {"operandLeft": left, "operator": op, "operandRight": operand}
            return parse_criteria([item], fields, pointer="/filter", error=BadRequestError)
    raise BadRequestError(
        f"filter {text!r}: expected <left>=<value>, <left>~=<pattern> or <left>@=<v1>,<v2>",
        pointer="/filter",
    )


def list_query(
    filters: list[str], sort: str, cursor: str | None, limit: int, fields: Mapping[str, str]
) -> ListQuery:
    criteria = [c for i, f in enumerate(filters) for c in _filter_item(f, fields, i)]
    field, _, direction = sort.partition(":")
    if field not in ("createdAt", "id") or direction not in ("", "asc", "desc"):
        raise BadRequestError(
            "sort must be createdAt or id, optionally :asc or :desc", pointer="/sort"
        )
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadRequestError(f"limit must be between 1 and {MAX_PAGE_SIZE}", pointer="/limit")
    return ListQuery(tuple(criteria), field, direction == "desc", cursor, limit)


class ListParams(BaseModel):
    """The raw list query parameters (see the module docstring)."""

    filters: list[str]
    sort: str
    cursor: str | None
    limit: int

    def query(self, fields: Mapping[str, str]) -> ListQuery:
        return list_query(self.filters, self.sort, self.cursor, self.limit, fields)


# async: a plain `def` dependency would run in FastAPI's thread pool (a thread hop per request).
async def list_params(
    filter: Annotated[
        list[str],
        Query(description="`<left>=<v>`, `<left>~=<like>`, `<left>@=<v1>,<v2>` or JSON; ANDed"),
    ] = [],  # noqa: B006 - FastAPI copies defaults
    sort: Annotated[str, Query(description="createdAt|id, then :asc|:desc")] = "createdAt:asc",
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
    limit: Annotated[int, Query(description=f"1..{MAX_PAGE_SIZE}")] = 50,
) -> ListParams:
    return ListParams(filters=filter, sort=sort, cursor=cursor, limit=limit)


ListParamsDep = Annotated[ListParams, Depends(list_params)]
