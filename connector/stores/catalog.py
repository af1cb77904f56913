"""Catalog write model and DSP read side in Postgres (asyncpg, plain SQL; dsp.md §7).

Tables (migration 0002_catalog): `assets`, `policies`, `offers` (EDC's contract definitions) and
`offer_assets`, the denormalised "offer O covers asset A under access policy P" relation. Every
offer write rewrites the offer's rows; every asset write re-matches the asset against the
criteria-based offers. The DSP catalog page is therefore one index-ordered query over
`offer_assets (asset_id, access_policy_id)` with the offers aggregated per dataset (`json_agg`).

Asset selectors are either a list of asset ids or property criteria
(`{"operandLeft": "properties.name", "operator": "=" | "in" | "like", "operandRight": ...}`, all
ANDed); the same criteria drive the management list filters and the DSP catalog `filter`.
Values compare as text (`properties ->> key`; non-string right operands as their JSON text).

Referential rules: a policy used by an offer cannot be deleted (409); an asset named by an
id-list offer cannot be deleted (409), one matched only by criteria can (its rows go with it);
an offer naming unknown policies or assets is 422.

Each repository method is one statement or one explicit transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, Literal, TypeVar

import asyncpg

from connector.core import cursor as cursor_codec
from connector.core.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableError,
)

__all__ = [
    "ASSETS_TABLE",
    "ASSET_FIELDS",
    "MAX_PAGE_SIZE",
    "OFFERS_TABLE",
    "OFFER_ASSETS_TABLE",
    "OFFER_FIELDS",
    "OPERATORS",
    "POLICIES_TABLE",
    "POLICY_FIELDS",
    "AssetRecord",
    "CatalogOffer",
    "Criterion",
    "DatasetRow",
    "ListQuery",
    "OfferRecord",
    "Page",
    "PgAssetStore",
    "PgCatalogReadModel",
    "PgOfferStore",
    "PgPolicyStore",
    "PolicyRecord",
    "ResolvedOffer",
    "criteria_sql",
    "parse_criteria",
    "parse_selector",
]

ASSETS_TABLE: Final = "assets"
POLICIES_TABLE: Final = "policies"
OFFERS_TABLE: Final = "offers"
OFFER_ASSETS_TABLE: Final = "offer_assets"

MAX_PAGE_SIZE: Final = 200
OPERATORS: Final = ("=", "in", "like")

# Left operands each resource can be filtered on -> SQL column. `properties.<key>` is assets-only.
PROPERTIES_PREFIX: Final = "properties."
ASSET_FIELDS: Final[Mapping[str, str]] = {"id": "id", PROPERTIES_PREFIX: "properties"}
POLICY_FIELDS: Final[Mapping[str, str]] = {"id": "id"}
OFFER_FIELDS: Final[Mapping[str, str]] = {
    "id": "id",
    "accessPolicyId": "access_policy_id",
    "contractPolicyId": "contract_policy_id",
}
SORT_COLUMNS: Final[Mapping[str, str]] = {"id": "id", "createdAt": "created_at"}


# --------------------------------------------------------------------------- criteria


@dataclass(frozen=True, slots=True)
class Criterion:
    """One condition; `operand_right` is a string (`=`, `like`) or a list of strings (`in`)."""

    operand_left: str
    operator: Literal["=", "in", "like"]
    operand_right: str | tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        right: Any = list(self.operand_right) if self.operator == "in" else self.operand_right
        return {"operandLeft": self.operand_left, "operator": self.operator, "operandRight": right}


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_criteria(
    value: object,
    fields: Mapping[str, str],
    *,
    pointer: str = "",
    error: type[BadRequestError] = UnprocessableError,
) -> list[Criterion]:
    """Parse a JSON list of criteria objects; raises `error` with the pointer of the problem."""
    if not isinstance(value, list):
        raise error("criteria must be a JSON array", pointer=pointer)
    out: list[Criterion] = []
    for i, item in enumerate(value):
        ptr = f"{pointer}/{i}"
        if not isinstance(item, dict) or set(item) != {"operandLeft", "operator", "operandRight"}:
            raise error(
                f"{ptr}: a criterion is an object with exactly operandLeft, operator, operandRight",
                pointer=ptr,
            )
        left, op, right = item["operandLeft"], item["operator"], item["operandRight"]
        out.append(_criterion(left, op, right, fields, ptr, error))
    return out


def _criterion(
    left: object,
    op: object,
    right: object,
    fields: Mapping[str, str],
    ptr: str,
    error: type[BadRequestError],
) -> Criterion:
    if not isinstance(left, str) or _column(left, fields) is None:
        allowed = ", ".join(f"{k}<key>" if k.endswith(".") else k for k in fields)
        raise error(
            f"{ptr}/operandLeft: unsupported operand {left!r} (allowed: {allowed})",
            pointer=f"{ptr}/operandLeft",
        )
    if op not in OPERATORS:
        raise error(
            f"{ptr}/operator: unsupported operator {op!r} (allowed: {', '.join(OPERATORS)})",
            pointer=f"{ptr}/operator",
        )
    if op == "in":
        if not isinstance(right, list) or not right:
            raise error(
                f"{ptr}/operandRight: 'in' needs a non-empty array", pointer=f"{ptr}/operandRight"
            )
        return Criterion(left, "in", tuple(_text(v) for v in right))
    if isinstance(right, dict | list) or right is None:
        raise error(f"{ptr}/operandRight: must be a scalar", pointer=f"{ptr}/operandRight")
    if op == "like" and not isinstance(right, str):
        raise error(
            f"{ptr}/operandRight: 'like' needs a string pattern", pointer=f"{ptr}/operandRight"
        )
    return Criterion(left, "like" if op == "like" else "=", _text(right))


def _column(left: str, fields: Mapping[str, str]) -> str | None:
    if left in fields and not left.endswith("."):
        return fields[left]
    if (
        PROPERTIES_PREFIX in fields
        and left.startswith(PROPERTIES_PREFIX)
        and len(left) > len(PROPERTIES_PREFIX)
    ):
        return fields[PROPERTIES_PREFIX]
    return None


def criteria_sql(
    criteria: Sequence[Criterion], fields: Mapping[str, str], *, first: int = 1, alias: str = ""
) -> tuple[str, list[Any]]:
    """A SQL boolean expression (`TRUE` when empty) and its parameters, numbered from `first`."""
    parts: list[str] = []
    params: list[Any] = []
    prefix = f"{alias}." if alias else ""
    for c in criteria:
        column = _column(c.operand_left, fields)
        if column is None:  # pragma: no cover - parse_criteria already refused it
            raise BadRequestError(f"unsupported operand {c.operand_left!r}")
        if c.operand_left.startswith(PROPERTIES_PREFIX) and column == "properties":
            params.append(c.operand_left[len(PROPERTIES_PREFIX) :])
            expr = f"({prefix}properties ->> ${first + len(params) - 1})"
        else:
            expr = f"{prefix}{column}"
        params.append(list(c.operand_right) if c.operator == "in" else c.operand_right)
        n = first + len(params) - 1
        if c.operator == "=":
            parts.append(f"{expr} = ${n}::text")
        elif c.operator == "in":
            parts.append(f"{expr} = ANY(${n}::text[])")
        else:
            parts.append(f"{expr} LIKE ${n}::text")
    return (" AND ".join(parts) or "TRUE"), params


def parse_selector(value: object, *, pointer: str = "/assetSelector") -> dict[str, Any]:
    """An offer's asset selector as stored: `{"assetIds": [...]}` or `{"criteria": [...]}`.

    Raises:
        UnprocessableError: neither a non-empty list of ids nor a list of criteria.
    """
    if not isinstance(value, list) or not value:
        raise UnprocessableError(
            "assetSelector must be a non-empty array of asset ids or of criteria", pointer=pointer
        )
    if all(isinstance(v, str) for v in value):
        ids = list(dict.fromkeys(value))
        if any(not v for v in ids):
            raise UnprocessableError("asset ids must be non-empty", pointer=pointer)
        return {"assetIds": ids}
    criteria = parse_criteria(value, ASSET_FIELDS, pointer=pointer)
    return {"criteria": [c.to_json() for c in criteria]}


def selector_to_wire(stored: Mapping[str, Any]) -> list[Any]:
    return list(stored.get("assetIds") or stored.get("criteria") or [])


# --------------------------------------------------------------------------- list queries


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filter (ANDed criteria), sort (`createdAt` or `id`, asc/desc), keyset cursor and limit."""

    criteria: tuple[Criterion, ...] = ()
    sort_field: str = "createdAt"
    descending: bool = False
    cursor: str | None = None
    limit: int = 50

    @property
    def sort_spec(self) -> str:
        return f"{self.sort_field}:{'desc' if self.descending else 'asc'}"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    next_cursor: str | None


def _unb64(token: str) -> Any:
    try:
        return cursor_codec.decode(token)
    except ValueError as exc:
        raise BadRequestError("malformed cursor", pointer="/cursor") from exc


def _encode_cursor(query: ListQuery, row: asyncpg.Record) -> str:
    column = SORT_COLUMNS[query.sort_field]
    key = row[column]
    value = key.isoformat() if isinstance(key, datetime) else key
    return cursor_codec.encode({"s": query.sort_spec, "k": value, "id": row["id"]})


def _decode_cursor(query: ListQuery) -> tuple[Any, str] | None:
    if query.cursor is None:
        return None
    data = _unb64(query.cursor)
    if not isinstance(data, dict) or data.get("s") != query.sort_spec or "k" not in data:
        raise BadRequestError("cursor does not belong to this sort order", pointer="/cursor")
    key, last_id = data["k"], data.get("id")
    if not isinstance(last_id, str):
        raise BadRequestError("malformed cursor", pointer="/cursor")
    if query.sort_field == "createdAt":
        try:
            key = datetime.fromisoformat(str(key))
        except ValueError as exc:
            raise BadRequestError("malformed cursor", pointer="/cursor") from exc
    return key, last_id


async def _list(
    conn: asyncpg.Connection,
    table: str,
    columns: str,
    fields: Mapping[str, str],
    query: ListQuery,
) -> tuple[list[asyncpg.Record], int, str | None]:
    where, params = criteria_sql(query.criteria, fields)
    count_sql = f"SELECT count(*) FROM {table} WHERE {where}"  # noqa: S608 - constants only
    sort_col = SORT_COLUMNS[query.sort_field]
    direction = "DESC" if query.descending else "ASC"
    page_where = where
    page_params = list(params)
    after = _decode_cursor(query)
    if after is not None:
        cmp = "<" if query.descending else ">"
        n = len(page_params)
        page_where += f" AND ({sort_col}, id) {cmp} (${n + 1}, ${n + 2})"
        page_params += list(after)
    page_params.append(query.limit + 1)
    page_sql = (
        f"SELECT {columns} FROM {table} WHERE {page_where} "  # noqa: S608 - constants only
        f"ORDER BY {sort_col} {direction}, id {direction} LIMIT ${len(page_params)}"
    )
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total = await conn.fetchval(count_sql, *params)
        rows = await conn.fetch(page_sql, *page_params)
    nxt = _encode_cursor(query, rows[query.limit - 1]) if len(rows) > query.limit else None
    return list(rows[: query.limit]), int(total), nxt


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------- assets


@dataclass(frozen=True, slots=True)
class AssetRecord:
    asset_id: str
    properties: dict[str, Any]
    data_address: dict[str, Any]
    distributions: list[str]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AssetRecord:
        return cls(
            asset_id=row["id"],
            properties=_loads(row["properties"]),
            data_address=_loads(row["data_address"]),
            distributions=list(row["distributions"]),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


_ASSET_COLUMNS: Final = (
    "id, properties, data_address, distributions, version, created_at, updated_at"
)
_INSERT_ASSET: Final = f"""
    INSERT INTO {ASSETS_TABLE} (id, properties, data_address, distributions)
    VALUES ($1, $2::jsonb, $3::jsonb, $4::text[])
    ON CONFLICT (id) DO NOTHING
    RETURNING {_ASSET_COLUMNS}"""  # noqa: S608 - constants only
_UPDATE_ASSET: Final = f"""
    UPDATE {ASSETS_TABLE}
    SET properties = $2::jsonb, data_address = $3::jsonb, distributions = $4::text[],
        version = version + 1, updated_at = now()
    WHERE id = $1
    RETURNING {_ASSET_COLUMNS}"""  # noqa: S608 - constants only
_GET_ASSET: Final = f"SELECT {_ASSET_COLUMNS} FROM {ASSETS_TABLE} WHERE id = $1"  # noqa: S608
_CRITERIA_OFFERS: Final = f"""
    SELECT id, access_policy_id, asset_selector -> 'criteria' AS criteria
    FROM {OFFERS_TABLE} WHERE asset_selector ? 'criteria'"""  # noqa: S608 - constants only
_UNLINK_CRITERIA_OFFERS: Final = f"""
    DELETE FROM {OFFER_ASSETS_TABLE} oa USING {OFFERS_TABLE} o
    WHERE oa.offer_id = o.id AND oa.asset_id = $1
      AND o.asset_selector ? 'criteria'"""  # noqa: S608 - constants only
_OFFERS_NAMING_ASSET: Final = f"""
    SELECT id FROM {OFFERS_TABLE}
    WHERE asset_selector -> 'assetIds' ? $1 ORDER BY id LIMIT 5"""  # noqa: S608 - constants only
_DELETE_ASSET: Final = f"DELETE FROM {ASSETS_TABLE} WHERE id = $1 RETURNING id"  # noqa: S608


async def _link_asset_to_criteria_offers(conn: asyncpg.Connection, asset_id: str) -> None:
    """(Re)insert the offer_assets rows of every criteria-based offer that matches the asset."""
    for offer in await conn.fetch(_CRITERIA_OFFERS):
        criteria = parse_criteria(_loads(offer["criteria"]), ASSET_FIELDS)
        where, params = criteria_sql(criteria, ASSET_FIELDS, first=4, alias="a")
        await conn.execute(
            f"INSERT INTO {OFFER_ASSETS_TABLE} (offer_id, asset_id, access_policy_id) "  # noqa: S608
            f"SELECT $1, a.id, $2 FROM {ASSETS_TABLE} a WHERE a.id = $3 AND {where} "
            "ON CONFLICT DO NOTHING",
            offer["id"],
            offer["access_policy_id"],
            asset_id,
            *params,
        )


class _WriteStore:
    """A store whose committed writes are announced: `on_write` runs after each one (the catalog
    service bumps the catalog generation there, so no page cached before a write is served after
    it). A store used only to read needs none."""

    def __init__(
        self, pool: asyncpg.Pool, *, on_write: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._pool = pool
        self._on_write = on_write

    async def _written(self) -> None:
        if self._on_write is not None:
            await self._on_write()


class PgAssetStore(_WriteStore):
    """Assets (the datasets of our catalog) and their `offer_assets` rows."""

    async def create(
        self,
        asset_id: str,
        properties: Mapping[str, Any],
        data_address: Mapping[str, Any],
        distributions: Sequence[str],
    ) -> AssetRecord:
        """Raises ConflictError when the id is taken."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _INSERT_ASSET,
                asset_id,
                _dumps(properties),
                _dumps(data_address),
                list(distributions),
            )
            if row is None:
                raise ConflictError(f"asset {asset_id!r} already exists", pointer="/id")
            await _link_asset_to_criteria_offers(conn, asset_id)
        await self._written()
        return AssetRecord.from_row(row)

    async def replace(
        self,
        asset_id: str,
        properties: Mapping[str, Any],
        data_address: Mapping[str, Any],
        distributions: Sequence[str],
    ) -> AssetRecord:
        """Raises NotFoundError for an unknown id."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _UPDATE_ASSET,
                asset_id,
                _dumps(properties),
                _dumps(data_address),
                list(distributions),
            )
            if row is None:
                raise NotFoundError(f"asset {asset_id!r} not found")
            await conn.execute(_UNLINK_CRITERIA_OFFERS, asset_id)
            await _link_asset_to_criteria_offers(conn, asset_id)
        await self._written()
        return AssetRecord.from_row(row)

    async def get(self, asset_id: str) -> AssetRecord:
        """Raises NotFoundError for an unknown id."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_GET_ASSET, asset_id)
        if row is None:
            raise NotFoundError(f"asset {asset_id!r} not found")
        return AssetRecord.from_row(row)

    async def delete(self, asset_id: str) -> None:
        """Raises NotFoundError (unknown) or ConflictError (named by an id-list offer)."""
        async with self._pool.acquire() as conn, conn.transaction():
            naming = [r["id"] for r in await conn.fetch(_OFFERS_NAMING_ASSET, asset_id)]
            if naming:
                raise ConflictError(
                    f"asset {asset_id!r} is named by offer(s) {', '.join(naming)}; "
                    "change or delete those offers first"
                )
            if await conn.fetchval(_DELETE_ASSET, asset_id) is None:
                raise NotFoundError(f"asset {asset_id!r} not found")
        await self._written()

    async def list(self, query: ListQuery) -> Page[AssetRecord]:
        async with self._pool.acquire() as conn:
            rows, total, nxt = await _list(conn, ASSETS_TABLE, _ASSET_COLUMNS, ASSET_FIELDS, query)
        return Page([AssetRecord.from_row(r) for r in rows], total, nxt)


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    policy_id: str
    policy: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> PolicyRecord:
        return cls(
            policy_id=row["id"],
            policy=_loads(row["policy"]),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


_POLICY_COLUMNS: Final = "id, policy, version, created_at, updated_at"
_INSERT_POLICY: Final = f"""
    INSERT INTO {POLICIES_TABLE} (id, policy) VALUES ($1, $2::jsonb)
    ON CONFLICT (id) DO NOTHING RETURNING {_POLICY_COLUMNS}"""  # noqa: S608 - constants only
_UPDATE_POLICY: Final = f"""
    UPDATE {POLICIES_TABLE} SET policy = $2::jsonb, version = version + 1, updated_at = now()
    WHERE id = $1 RETURNING {_POLICY_COLUMNS}"""  # noqa: S608 - constants only
_GET_POLICY: Final = f"SELECT {_POLICY_COLUMNS} FROM {POLICIES_TABLE} WHERE id = $1"  # noqa: S608
_OFFERS_USING_POLICY: Final = f"""
    SELECT id FROM {OFFERS_TABLE} WHERE access_policy_id = $1 OR contract_policy_id = $1
    ORDER BY id LIMIT 5"""  # noqa: S608 - constants only
_DELETE_POLICY: Final = f"DELETE FROM {POLICIES_TABLE} WHERE id = $1 RETURNING id"  # noqa: S608


class PgPolicyStore(_WriteStore):
    """ODRL policies (stored in the canonical compact 2025-1 form)."""

    async def create(self, policy_id: str, policy: Mapping[str, Any]) -> PolicyRecord:
        """Raises ConflictError when the id is taken."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_INSERT_POLICY, policy_id, _dumps(policy))
        if row is None:
            raise ConflictError(f"policy {policy_id!r} already exists", pointer="/id")
        await self._written()
        return PolicyRecord.from_row(row)

    async def replace(self, policy_id: str, policy: Mapping[str, Any]) -> PolicyRecord:
        """Raises NotFoundError for an unknown id."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_UPDATE_POLICY, policy_id, _dumps(policy))
        if row is None:
            raise NotFoundError(f"policy {policy_id!r} not found")
        await self._written()
        return PolicyRecord.from_row(row)

    async def get(self, policy_id: str) -> PolicyRecord:
        """Raises NotFoundError for an unknown id."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_GET_POLICY, policy_id)
        if row is None:
            raise NotFoundError(f"policy {policy_id!r} not found")
        return PolicyRecord.from_row(row)

    async def delete(self, policy_id: str) -> None:
        """Raises NotFoundError (unknown) or ConflictError (used by an offer)."""
        async with self._pool.acquire() as conn, conn.transaction():
            users = [r["id"] for r in await conn.fetch(_OFFERS_USING_POLICY, policy_id)]
            if users:
                raise ConflictError(f"policy {policy_id!r} is used by offer(s) {', '.join(users)}")
            try:
                deleted = await conn.fetchval(_DELETE_POLICY, policy_id)
            except asyncpg.ForeignKeyViolationError as exc:  # an offer raced us
                raise ConflictError(f"policy {policy_id!r} is used by an offer") from exc
            if deleted is None:
                raise NotFoundError(f"policy {policy_id!r} not found")
        await self._written()

    async def list(self, query: ListQuery) -> Page[PolicyRecord]:
        async with self._pool.acquire() as conn:
            rows, total, nxt = await _list(
                conn, POLICIES_TABLE, _POLICY_COLUMNS, POLICY_FIELDS, query
            )
        return Page([PolicyRecord.from_row(r) for r in rows], total, nxt)


# --------------------------------------------------------------------------- offers


@dataclass(frozen=True, slots=True)
class OfferRecord:
    offer_id: str
    asset_selector: dict[str, Any]
    access_policy_id: str
    contract_policy_id: str
    version: int
    created_at: datetime
    updated_at: datetime
    # How the provider answers requests for it (None: the connector's default; decision 0012).
    provider_decision: str | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> OfferRecord:
        return cls(
            offer_id=row["id"],
            asset_selector=_loads(row["asset_selector"]),
            access_policy_id=row["access_policy_id"],
            contract_policy_id=row["contract_policy_id"],
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            provider_decision=row["provider_decision"],
        )


_OFFER_COLUMNS: Final = (
    "id, asset_selector, access_policy_id, contract_policy_id, version, created_at, updated_at, "
    "provider_decision"
)
_INSERT_OFFER: Final = f"""
    INSERT INTO {OFFERS_TABLE}
        (id, asset_selector, access_policy_id, contract_policy_id, provider_decision)
    VALUES ($1, $2::jsonb, $3, $4, $5)
    ON CONFLICT (id) DO NOTHING RETURNING {_OFFER_COLUMNS}"""  # noqa: S608 - constants only
_UPDATE_OFFER: Final = f"""
    UPDATE {OFFERS_TABLE}
    SET asset_selector = $2::jsonb, access_policy_id = $3, contract_policy_id = $4,
        provider_decision = $5, version = version + 1, updated_at = now()
    WHERE id = $1 RETURNING {_OFFER_COLUMNS}"""  # noqa: S608 - constants only
_GET_OFFER: Final = f"SELECT {_OFFER_COLUMNS} FROM {OFFERS_TABLE} WHERE id = $1"  # noqa: S608
_OFFER_EXISTS: Final = f"SELECT id FROM {OFFERS_TABLE} WHERE id = $1 FOR UPDATE"  # noqa: S608
_DELETE_OFFER: Final = f"DELETE FROM {OFFERS_TABLE} WHERE id = $1 RETURNING id"  # noqa: S608
_KNOWN_POLICIES: Final = f"SELECT id FROM {POLICIES_TABLE} WHERE id = ANY($1::text[])"  # noqa: S608
_UNKNOWN_ASSETS: Final = f"""
    SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS t(x, n)
    WHERE NOT EXISTS (SELECT 1 FROM {ASSETS_TABLE} a WHERE a.id = t.x)
    ORDER BY n"""  # noqa: S608 - constants only
_UNLINK_OFFER: Final = f"DELETE FROM {OFFER_ASSETS_TABLE} WHERE offer_id = $1"  # noqa: S608
_LINK_OFFER_IDS: Final = f"""
    INSERT INTO {OFFER_ASSETS_TABLE} (offer_id, asset_id, access_policy_id)
    SELECT $1, x, $2 FROM unnest($3::text[]) AS x"""  # noqa: S608 - constants only


async def _check_offer_refs(
    conn: asyncpg.Connection, selector: Mapping[str, Any], access: str, contract: str
) -> None:
    known = {r["id"] for r in await conn.fetch(_KNOWN_POLICIES, [access, contract])}
    for field, policy_id in (("accessPolicyId", access), ("contractPolicyId", contract)):
        if policy_id not in known:
            raise UnprocessableError(f"/{field}: unknown policy {policy_id!r}", pointer=f"/{field}")
    ids = selector.get("assetIds")
    if ids:
        unknown = [r["x"] for r in await conn.fetch(_UNKNOWN_ASSETS, ids)]
        if unknown:
            index = list(ids).index(unknown[0])
            raise UnprocessableError(
                f"/assetSelector/{index}: unknown asset {unknown[0]!r}",
                pointer=f"/assetSelector/{index}",
            )


async def _link_offer(
    conn: asyncpg.Connection, offer_id: str, selector: Mapping[str, Any], access: str
) -> None:
    ids = selector.get("assetIds")
    if ids:
        await conn.execute(_LINK_OFFER_IDS, offer_id, access, list(ids))
        return
    criteria = parse_criteria(selector.get("criteria"), ASSET_FIELDS)
    where, params = criteria_sql(criteria, ASSET_FIELDS, first=3)
    await conn.execute(
        f"INSERT INTO {OFFER_ASSETS_TABLE} (offer_id, asset_id, access_policy_id) "  # noqa: S608
        f"SELECT $1, id, $2 FROM {ASSETS_TABLE} WHERE {where}",
        offer_id,
        access,
        *params,
    )


class PgOfferStore(_WriteStore):
    """Offers (contract definitions) and their `offer_assets` rows, kept in sync on each write."""

    async def create(
        self,
        offer_id: str,
        selector: Mapping[str, Any],
        access: str,
        contract: str,
        provider_decision: str | None = None,
    ) -> OfferRecord:
        """Raises ConflictError (id taken) or UnprocessableError (unknown policy or asset)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _check_offer_refs(conn, selector, access, contract)
            try:
                row = await conn.fetchrow(
                    _INSERT_OFFER, offer_id, _dumps(selector), access, contract, provider_decision
                )
            except asyncpg.ForeignKeyViolationError as exc:  # a policy deleted meanwhile
                raise UnprocessableError("unknown policy") from exc
            if row is None:
                raise ConflictError(f"offer {offer_id!r} already exists", pointer="/id")
            await _link_offer(conn, offer_id, selector, access)
        await self._written()
        return OfferRecord.from_row(row)

    async def replace(
        self,
        offer_id: str,
        selector: Mapping[str, Any],
        access: str,
        contract: str,
        provider_decision: str | None = None,
    ) -> OfferRecord:
        """Raises NotFoundError (unknown id) or UnprocessableError (unknown policy or asset)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(_OFFER_EXISTS, offer_id) is None:
                raise NotFoundError(f"offer {offer_id!r} not found")
            await _check_offer_refs(conn, selector, access, contract)
            try:
                row = await conn.fetchrow(
                    _UPDATE_OFFER, offer_id, _dumps(selector), access, contract, provider_decision
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise UnprocessableError("unknown policy") from exc
            if row is None:
                raise NotFoundError(f"offer {offer_id!r} not found")
            await conn.execute(_UNLINK_OFFER, offer_id)
            await _link_offer(conn, offer_id, selector, access)
        await self._written()
        return OfferRecord.from_row(row)

    async def get(self, offer_id: str) -> OfferRecord:
        """Raises NotFoundError for an unknown id."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_GET_OFFER, offer_id)
        if row is None:
            raise NotFoundError(f"offer {offer_id!r} not found")
        return OfferRecord.from_row(row)

    async def delete(self, offer_id: str) -> None:
        """Raises NotFoundError for an unknown id (its offer_assets rows cascade)."""
        async with self._pool.acquire() as conn:
            if await conn.fetchval(_DELETE_OFFER, offer_id) is None:
                raise NotFoundError(f"offer {offer_id!r} not found")
        await self._written()

    async def list(self, query: ListQuery) -> Page[OfferRecord]:
        async with self._pool.acquire() as conn:
            rows, total, nxt = await _list(conn, OFFERS_TABLE, _OFFER_COLUMNS, OFFER_FIELDS, query)
        return Page([OfferRecord.from_row(r) for r in rows], total, nxt)


# --------------------------------------------------------------------------- DSP read side


@dataclass(frozen=True, slots=True)
class CatalogOffer:
    """One offer definition covering a dataset, with its contract policy (compact 2025-1)."""

    offer_id: str
    contract_policy_id: str
    contract_policy: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DatasetRow:
    asset_id: str
    properties: dict[str, Any]
    distributions: list[str]
    offers: list[CatalogOffer]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DatasetRow:
        offers = [
            CatalogOffer(o["offerId"], o["contractPolicyId"], o["policy"])
            for o in _loads(row["offers"]) or []
        ]
        return cls(row["id"], _loads(row["properties"]), list(row["distributions"]), offers)


@dataclass(frozen=True, slots=True)
class ResolvedOffer:
    """What a DSP offer id stands for: the offer definition, the asset and both policies."""

    offer_id: str
    asset_id: str
    access_policy_id: str
    access_policy: dict[str, Any]
    contract_policy_id: str
    contract_policy: dict[str, Any]
    asset: AssetRecord
    provider_decision: str | None = None


_ACCESS_POLICIES: Final = f"""
    SELECT p.id, p.policy FROM {POLICIES_TABLE} p
    WHERE EXISTS (SELECT 1 FROM {OFFERS_TABLE} o WHERE o.access_policy_id = p.id)
    ORDER BY p.id"""  # noqa: S608 - constants only

# Offers of one dataset admitted by $2 (access policy ids), aggregated; shared by page and item.
_OFFERS_AGG: Final = f"""
    (SELECT json_agg(json_build_object(
                'offerId', o.id, 'contractPolicyId', p.id, 'policy', p.policy) ORDER BY o.id)
       FROM {OFFER_ASSETS_TABLE} x
       JOIN {OFFERS_TABLE} o ON o.id = x.offer_id
       JOIN {POLICIES_TABLE} p ON p.id = o.contract_policy_id
      WHERE x.asset_id = a.id AND x.access_policy_id = ANY($1::text[]))"""  # noqa: S608

_DATASET: Final = f"""
    SELECT a.id, a.properties, a.distributions, {_OFFERS_AGG} AS offers
    FROM {ASSETS_TABLE} a
    WHERE a.id = $2 AND EXISTS (
        SELECT 1 FROM {OFFER_ASSETS_TABLE} x
        WHERE x.asset_id = a.id AND x.access_policy_id = ANY($1::text[]))"""  # noqa: S608

_RESOLVE_OFFER: Final = f"""
    SELECT o.id AS offer_id, ap.id AS access_id, ap.policy AS access_policy,
           cp.id AS contract_id, cp.policy AS contract_policy, o.provider_decision,
           {", ".join(f"a.{c}" for c in _ASSET_COLUMNS.split(", "))}
    FROM {OFFER_ASSETS_TABLE} x
    JOIN {OFFERS_TABLE} o ON o.id = x.offer_id
    JOIN {POLICIES_TABLE} ap ON ap.id = o.access_policy_id
    JOIN {POLICIES_TABLE} cp ON cp.id = o.contract_policy_id
    JOIN {ASSETS_TABLE} a ON a.id = x.asset_id
    WHERE x.offer_id = $1 AND x.asset_id = $2"""  # noqa: S608 - constants only

_OFFERS_OF_ASSET: Final = f"""
    SELECT o.id AS offer_id, ap.id AS access_id, ap.policy AS access_policy,
           cp.id AS contract_id, cp.policy AS contract_policy
    FROM {OFFER_ASSETS_TABLE} x
    JOIN {OFFERS_TABLE} o ON o.id = x.offer_id
    JOIN {POLICIES_TABLE} ap ON ap.id = o.access_policy_id
    JOIN {POLICIES_TABLE} cp ON cp.id = o.contract_policy_id
    WHERE x.asset_id = $1 ORDER BY o.id"""  # noqa: S608 - constants only


class PgCatalogReadModel:
    """The DSP catalog queries: one statement per page, per dataset, per offer resolution."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def access_policies(self) -> list[tuple[str, dict[str, Any]]]:
        """Every distinct policy used as an access policy by some offer: (id, policy JSON)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_ACCESS_POLICIES)
        return [(r["id"], _loads(r["policy"])) for r in rows]

    async def dataset_page(
        self,
        admitted: Sequence[str],
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
        criteria: Sequence[Criterion] = (),
    ) -> list[DatasetRow]:
        """Up to `limit` datasets (ordered by id) covered by an offer with an admitted access
        policy, keyset-paged after `after` (or, backwards, before `before`)."""
        params: list[Any] = [list(admitted)]
        keyset = ""
        if after is not None or before is not None:
            params.append(after if after is not None else before)
            keyset = f"AND x.asset_id {'>' if before is None else '<'} $2"
        order = "DESC" if before is not None else "ASC"
        join, where = "", ""
        if criteria:
            cond, extra = criteria_sql(criteria, ASSET_FIELDS, first=len(params) + 1, alias="f")
            join = f"JOIN {ASSETS_TABLE} f ON f.id = x.asset_id"
            where = f"AND {cond}"
            params.extend(extra)
        params.append(limit)
        sql = f"""
            WITH page AS (
                SELECT DISTINCT x.asset_id FROM {OFFER_ASSETS_TABLE} x {join}
                WHERE x.access_policy_id = ANY($1::text[]) {keyset} {where}
                ORDER BY x.asset_id {order} LIMIT ${len(params)})
            SELECT a.id, a.properties, a.distributions, {_OFFERS_AGG} AS offers
            FROM page JOIN {ASSETS_TABLE} a ON a.id = page.asset_id
            ORDER BY a.id"""  # noqa: S608 - constants and numbered parameters only
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql, *params)
        return [DatasetRow.from_row(r) for r in rows]

    async def dataset(self, asset_id: str, admitted: Sequence[str]) -> DatasetRow | None:
        """The dataset with its admitted offers, or None when no admitted offer covers it."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_DATASET, list(admitted), asset_id)
        return None if row is None else DatasetRow.from_row(row)

    async def resolve(self, offer_id: str, asset_id: str) -> ResolvedOffer | None:
        """The offer definition, asset and policies behind (offer_id, asset_id), if it exists."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_RESOLVE_OFFER, offer_id, asset_id)
        if row is None:
            return None
        return ResolvedOffer(
            offer_id=row["offer_id"],
            asset_id=row["id"],
            access_policy_id=row["access_id"],
            access_policy=_loads(row["access_policy"]),
            contract_policy_id=row["contract_id"],
            contract_policy=_loads(row["contract_policy"]),
            asset=AssetRecord.from_row(row),
            provider_decision=row["provider_decision"],
        )

    async def offers_of_asset(self, asset_id: str) -> list[ResolvedOffer]:
        """Every offer covering the asset, whatever the caller (for explanations)."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            asset_row = await conn.fetchrow(_GET_ASSET, asset_id)
            if asset_row is None:
                raise NotFoundError(f"asset {asset_id!r} not found")
            rows = await conn.fetch(_OFFERS_OF_ASSET, asset_id)
        asset = AssetRecord.from_row(asset_row)
        return [
            ResolvedOffer(
                offer_id=r["offer_id"],
                asset_id=asset_id,
                access_policy_id=r["access_id"],
                access_policy=_loads(r["access_policy"]),
                contract_policy_id=r["contract_id"],
                contract_policy=_loads(r["contract_policy"]),
                asset=asset,
            )
            for r in rows
        ]
