"""The provider's catalog (DSP 2025-1 Catalog Protocol, dsp.md §7) and its management write path.

`CatalogService` is what the API and the negotiation activities use:

* **Writes** go straight to its Postgres stores (`assets`, `policies`, `offers`;
  `connector.stores.catalog`), which it builds to bump the catalog *generation* in Redis after
  each committed write, so the next catalog request cannot be served from a page cached before
  the write. Policies are stored in the canonical form `normalise_policy` returns.
* **Catalog pages** (`catalog_page`): every *distinct* access policy is evaluated once per
  request (scope `catalog`, facts from the verified caller: participant id, claims, now); the set
  of admitted access-policy ids is the caller's *class*. One SQL statement returns the page of
  datasets with their offers aggregated. Pages are cached in Redis under
  `connector:{participant}:catalog:{generation}:{class}:{page}` with a TTL. Keying by the
  admitted set rather than by the raw caller facts is exact (the page depends on nothing else)
  and stays correct for time-dependent constraints; callers that are admitted alike share pages.
  Parsed access policies are memoised per generation in the process; when none of them depends
  on time (no `dateTime` operand), the admitted set is memoised per caller class too (hash of
  participant id + claims). Pages are also kept in a small in-process LRU under the same key,
  so a steady-state request costs one Redis GET (the generation).
* **Redis is never required**: any Redis failure degrades to the database for a few seconds
  (`REDIS_RETRY_AFTER`), it never fails a request.
* **Offer ids**: each catalog Offer's `@id` encodes (offer definition id, asset id), see
  `offer_id_for` / `parse_offer_id`; `resolve_offer_id` maps it back to the offer definition,
  the asset and both policies (the negotiation workflow's activities use it).

Pagination tokens (`continuationToken`) are opaque base64url JSON: `{"a": <last id>}` (next page)
or `{"b": <first id>}` (previous page); datasets are ordered by id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import httpx
from pydantic import JsonValue, ValidationError
from redis.asyncio import Redis

from connector.core import cursor as cursor_codec
from connector.core.clock import Clock
from connector.core.dsp import (
    Catalog,
    CatalogRequestMessage,
    DataService,
    Dataset,
    Distribution,
    Offer,
)
from connector.core.dsp.version import DspVersion
from connector.core.errors import (
    BadRequestError,
    ConnectorError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    UnprocessableError,
)
from connector.core.identity.claims import VerifiedCaller
from connector.core.jsonld import decode, encode
from connector.core.policy import (
    Decision,
    Policy,
    PolicyContext,
    Scope,
    evaluate,
    parse_policy,
    to_json,
    validate_policy,
)
from connector.core.policy.functions import canonical_left_operand, is_credential_operand
from connector.http.outbound import GuardedHttp, OutboundRefusedError
from connector.runtime.clock import utc_now
from connector.runtime.logging import get_logger
from connector.services.catalog_cache import CatalogCache, generation_key, page_key
from connector.stores.catalog import (
    ASSET_FIELDS,
    MAX_PAGE_SIZE,
    PROPERTIES_PREFIX,
    Criterion,
    DatasetRow,
    PgAssetStore,
    PgCatalogReadModel,
    PgOfferStore,
    PgPolicyStore,
    ResolvedOffer,
    parse_criteria,
)

__all__ = [
    "CACHE_TTL",
    "DEFAULT_FORMATS",
    "DEFAULT_PAGE_SIZE",
    "OFFER_ID_PREFIX",
    "CallerFacts",
    "CatalogPage",
    "CatalogService",
    "generation_key",
    "normalise_policy",
    "offer_id_for",
    "page_key",
    "parse_offer_id",
    "policy_context",
    "request_catalog",
    "resolve_offer_id",
]

log = get_logger(__name__)

CACHE_TTL: Final = timedelta(seconds=60)
DEFAULT_PAGE_SIZE: Final = 50
LOCAL_PAGES: Final = 512  # pages kept in process (keyed like Redis, generation included)
MEMO_CALLER_CLASSES: Final = 10_000
DEFAULT_FORMATS: Final = ("HttpData-PULL",)
OFFER_ID_PREFIX: Final = "urn:connector:offer:"
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
# JWT registered claims differ per token; policies never see them (and they would defeat caching).
REGISTERED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "jti", "iat", "exp", "nbf"})
# Unprefixed asset properties published under a DCAT/DCT term; other unprefixed keys stay private.
PROPERTY_TERMS: Final[Mapping[str, str]] = {
    "name": "dct:title",
    "description": "dct:description",
    "contenttype": "dcat:mediaType",
}

# Catalog Offers carry no target (the Dataset is) and no assignee (anyone admitted may accept).
_NOT_IN_OFFERS: Final = frozenset({"target", "assignee"})


# --------------------------------------------------------------------------- offer ids


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def _unb64(part: str) -> str:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def offer_id_for(offer_id: str, asset_id: str) -> str:
    """The catalog Offer `@id` for (offer definition, asset):
    `urn:connector:offer:<b64url(offer id)>.<b64url(asset id)>` (no padding). Stable across
    policy edits; unique per dataset as dsp.md §11 requires."""
    return f"{OFFER_ID_PREFIX}{_b64(offer_id)}.{_b64(asset_id)}"


def parse_offer_id(dsp_offer_id: str) -> tuple[str, str]:
    """(offer definition id, asset id) from a catalog Offer `@id`.

    Raises:
        NotFoundError: not an offer id this connector issued.
    """
    if dsp_offer_id.startswith(OFFER_ID_PREFIX):
        offer_part, sep, asset_part = dsp_offer_id[len(OFFER_ID_PREFIX) :].partition(".")
        if sep and _B64URL.fullmatch(offer_part) and _B64URL.fullmatch(asset_part):
            try:
                offer_id, asset_id = _unb64(offer_part), _unb64(asset_part)
            except (binascii.Error, UnicodeDecodeError, ValueError):
                offer_id = asset_id = ""
            if offer_id and asset_id:
                return offer_id, asset_id
    raise NotFoundError(f"unknown offer {dsp_offer_id!r}")


async def resolve_offer_id(read_model: PgCatalogReadModel, dsp_offer_id: str) -> ResolvedOffer:
    """Resolve a catalog Offer `@id` (as a consumer sends it in a ContractRequestMessage) back to
    the offer definition, the asset (dataset) and the access and contract policies.

    The contract policy is the current one: compare it with the offer the consumer sent.
    Raises:
        NotFoundError: malformed id, or the offer no longer covers that asset.
    """
    offer_id, asset_id = parse_offer_id(dsp_offer_id)
    resolved = await read_model.resolve(offer_id, asset_id)
    if resolved is None:
        raise NotFoundError(f"unknown offer {dsp_offer_id!r}")
    return resolved


# --------------------------------------------------------------------------- policies


def normalise_policy(
    policy_id: str, policy: object, *, pointer: str = "/policy"
) -> dict[str, JsonValue]:
    """Validate an ODRL policy (compact 2025-1) and return its canonical form.

    A missing `@id` defaults to `policy_id`.
    Raises:
        UnprocessableError: every problem, each as "<pointer>: <message>" below `pointer`.
    """
    if isinstance(policy, dict) and "@id" not in policy and "uid" not in policy:
        policy = {"@id": policy_id, **policy}
    problems = validate_policy(policy)
    if problems:
        raise UnprocessableError(
            *(f"{pointer}{p.pointer}: {p.message}" for p in problems),
            pointer=pointer + problems[0].pointer,
        )
    return to_json(parse_policy(policy))


@dataclass(frozen=True, slots=True)
class CallerFacts:
    """What a policy may know about a caller (management dry runs build these by hand)."""

    participant_id: str
    claims: Mapping[str, JsonValue]
    purpose: str | None = None
    spatial: str | None = None


def _json_claims(claims: Mapping[str, object]) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    for name, value in claims.items():
        if name in REGISTERED_CLAIMS:
            continue
        try:
            out[name] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            continue
    return out


def caller_facts(caller: VerifiedCaller) -> CallerFacts:
    return CallerFacts(caller.participant_id, _json_claims(caller.claims))


# Left operands whose value depends only on the caller (participant id, claims), never on time.
CALLER_ONLY_OPERANDS: Final = frozenset(
    {"participantId", "assignee", "membership", "credential", "credentialType", "purpose"}
    | {"spatial"}
)


def caller_only(policy: JsonValue) -> bool:
    """True when every left operand in the (compact) policy depends on the caller alone, so its
    decision for a caller cannot change until the policy does (it may then be memoised)."""
    if isinstance(policy, dict):
        for key, value in policy.items():
            if key == "leftOperand":
                name = canonical_left_operand(value) if isinstance(value, str) else ""
                if (
                    name not in CALLER_ONLY_OPERANDS
                    and not name.startswith("claim:")
                    and not is_credential_operand(name)
                ):
                    return False
            elif not caller_only(value):
                return False
    elif isinstance(policy, list):
        return all(caller_only(v) for v in policy)
    return True


def decode_catalog_request(body: object, version: DspVersion) -> CatalogRequestMessage:
    """Decode a CatalogRequestMessage. The schema check is skipped for the bare message
    (`@context` + `@type` only): the codec's context and type checks already cover it.

    Raises:
        BadRequestError: not a valid CatalogRequestMessage of `version`.
    """
    bare = isinstance(body, dict) and set(body) <= {"@context", "@type"}
    return decode(body, CatalogRequestMessage, version, check_schema=not bare)


def policy_context(facts: CallerFacts, scope: Scope, now: datetime) -> PolicyContext:
    return PolicyContext(
        scope=scope,
        participant_id=facts.participant_id,
        now=now,
        claims=dict(facts.claims),
        purpose=facts.purpose,
        spatial=facts.spatial,
    )


# --------------------------------------------------------------------------- cache keys


def _digest(*parts: object) -> str:
    raw = json.dumps(parts, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class _Digests:
    """Cache keys already computed, by a hashable stand-in for their parts (the hot path asks
    for the same few again and again)."""

    LIMIT: Final = 4096

    def __init__(self) -> None:
        self._known: dict[tuple[object, ...], str] = {}

    def get(self, key: tuple[object, ...] | None, compute: Callable[[], str]) -> str:
        if key is None:
            return compute()
        digest = self._known.get(key)
        if digest is None:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            digest = self._known[key] = compute()
        return digest


# --------------------------------------------------------------------------- catalog bodies


@dataclass(frozen=True, slots=True)
class CatalogPage:
    """A serialised catalog page and the continuation tokens of its neighbours."""

    body: bytes
    next_token: str | None
    previous_token: str | None

    def to_cache(self) -> bytes:
        head = json.dumps({"n": self.next_token, "p": self.previous_token})
        return head.encode() + b"\n" + self.body

    @classmethod
    def from_cache(cls, raw: bytes) -> CatalogPage:
        head, _, body = raw.partition(b"\n")
        links = json.loads(head)
        return cls(body, links.get("n"), links.get("p"))


def is_public_property(key: str) -> bool:
    return not key.startswith("@") and (":" in key or key in PROPERTY_TERMS)


def dataset_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The asset properties a catalog shows: prefixed/IRI keys as they are, plus PROPERTY_TERMS."""
    out = {k: v for k, v in properties.items() if not k.startswith("@") and ":" in k}
    for key, term in PROPERTY_TERMS.items():
        if key in properties:
            out.setdefault(term, properties[key])
    return out


def _token(data: Mapping[str, str]) -> str:
    return cursor_codec.encode(dict(data))


def _parse_token(token: str) -> tuple[str | None, str | None]:
    try:
        data = cursor_codec.decode(token)
    except ValueError:
        data = None
    if isinstance(data, dict) and len(data) == 1:
        after, before = data.get("a"), data.get("b")
        if isinstance(after, str) or isinstance(before, str):
            return (after if isinstance(after, str) else None), (
                before if isinstance(before, str) else None
            )
    raise BadRequestError("malformed continuationToken")


def catalog_criteria(message: CatalogRequestMessage) -> list[Criterion]:
    """The supported DSP `filter`: criteria on `id` and on published properties.

    Raises:
        BadRequestError: any other filter (DSP: an unsupported filter MUST be 400).
    """
    if not message.filter:
        return []
    try:
        criteria = parse_criteria(
            message.filter, ASSET_FIELDS, pointer="/filter", error=BadRequestError
        )
    except BadRequestError as exc:
        raise BadRequestError(
            f"unsupported filter: {exc.reasons[0]}", pointer=exc.pointer
        ) from None
    for i, c in enumerate(criteria):
        key = c.operand_left[len(PROPERTIES_PREFIX) :]
        if c.operand_left.startswith(PROPERTIES_PREFIX) and not is_public_property(key):
            raise BadRequestError(
                f"unsupported filter: property {key!r} is not published",
                pointer=f"/filter/{i}/operandLeft",
            )
    return criteria


@dataclass
class _PolicyMemo:
    """Parsed access policies of one generation, and admitted sets per caller class."""

    generation: int | None
    loaded_at: float
    policies: list[tuple[str, Policy]]
    caller_only: bool
    admitted: dict[str, list[str]] = field(default_factory=dict)


class CatalogService:
    """Catalog reads for counterparties and writes for operators (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        *,
        participant_id: str,
        base_url: str,
        clock: Clock = utc_now,
        cache_ttl: timedelta = CACHE_TTL,
    ) -> None:
        self.pool = pool
        self.participant_id = participant_id
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._cache = CatalogCache(redis, participant_id, cache_ttl)
        self.assets = PgAssetStore(pool, on_write=self._cache.bump)
        self.policies = PgPolicyStore(pool, on_write=self._cache.bump)
        self.offers = PgOfferStore(pool, on_write=self._cache.bump)
        self.read_model = PgCatalogReadModel(pool)
        self._memo_ttl = cache_ttl.total_seconds()
        self._memo: _PolicyMemo | None = None
        self._pages: OrderedDict[str, tuple[float, CatalogPage]] = OrderedDict()
        self._digests = _Digests()

    def start_watch(self) -> None:
        """Keep the catalog generation in process (the app's lifespan; see catalog_cache)."""
        self._cache.start_watch()

    async def aclose(self) -> None:
        await self._cache.stop_watch()

    # ---- policy evaluation ---------------------------------------------------------------

    async def _access_policies(self, generation: int | None) -> _PolicyMemo:
        now = time.monotonic()
        memo = self._memo
        if (
            generation is not None
            and memo is not None
            and memo.generation == generation
            and now - memo.loaded_at < self._memo_ttl
        ):
            return memo
        rows = await self.read_model.access_policies()
        loaded = _PolicyMemo(
            generation,
            now,
            [(pid, parse_policy(p)) for pid, p in rows],
            all(caller_only(p) for _, p in rows),
        )
        if generation is not None:
            self._memo = loaded
        return loaded

    async def admitted_policies(
        self, facts: CallerFacts, generation: int | None = None
    ) -> list[str]:
        """Ids of the access policies that admit the caller now (each evaluated once).

        When no access policy depends on anything but the caller, the result is memoised per
        generation and caller class (participant id + claims)."""
        memo = await self._access_policies(generation)
        key = (
            _digest(facts.participant_id, facts.claims, facts.purpose, facts.spatial)
            if memo.caller_only
            else None
        )
        if key is not None and key in memo.admitted:
            return memo.admitted[key]
        ctx = policy_context(facts, Scope.CATALOG, self._clock())
        admitted = [pid for pid, policy in memo.policies if evaluate(policy, ctx).allowed]
        if key is not None and len(memo.admitted) < MEMO_CALLER_CLASSES:
            memo.admitted[key] = admitted
        return admitted

    async def evaluate_policy(
        self, policy_id: str, facts: CallerFacts, scope: Scope, now: datetime | None = None
    ) -> Decision:
        """Dry run of one stored policy (management `evaluate`)."""
        record = await self.policies.get(policy_id)
        ctx = policy_context(facts, scope, now or self._clock())
        return evaluate(parse_policy(record.policy), ctx)

    async def explain(
        self, dataset_id: str, facts: CallerFacts, now: datetime | None = None
    ) -> dict[str, Any]:
        """Why a caller does (not) see a dataset: every covering offer's access policy
        (scope catalog) and contract policy (scope negotiation) evaluated for the caller."""
        when = now or self._clock()
        offers: list[dict[str, Any]] = []
        for o in await self.read_model.offers_of_asset(dataset_id):
            access = evaluate(
                parse_policy(o.access_policy), policy_context(facts, Scope.CATALOG, when)
            )
            contract = evaluate(
                parse_policy(o.contract_policy), policy_context(facts, Scope.NEGOTIATION, when)
            )
            offers.append(
                {
                    "offerId": o.offer_id,
                    "dspOfferId": offer_id_for(o.offer_id, dataset_id),
                    "accessPolicyId": o.access_policy_id,
                    "contractPolicyId": o.contract_policy_id,
                    "access": access.model_dump(mode="json"),
                    "contract": contract.model_dump(mode="json"),
                }
            )
        return {
            "datasetId": dataset_id,
            "participantId": facts.participant_id,
            "visible": any(o["access"]["allowed"] for o in offers),
            "offers": offers,
        }

    # ---- DSP reads -----------------------------------------------------------------------

    def endpoint_url(self, version: DspVersion) -> str:
        return f"{self.base_url}{version.path_segment}"

    def _service(self, version: DspVersion) -> DataService:
        url = self.endpoint_url(version)
        return DataService.model_validate({"@id": url, "endpointURL": url})

    def _dataset(self, row: DatasetRow, service_id: str) -> Dataset:
        offers = [
            Offer.model_validate(
                {
                    **{
                        k: v
                        for k, v in o.contract_policy.items()
                        if k not in ("target", "assignee")
                    },
                    "@id": offer_id_for(o.offer_id, row.asset_id),
                    "@type": "Offer",
                    "assigner": self.participant_id,
                }
            )
            for o in row.offers
        ]
        formats = row.distributions or list(DEFAULT_FORMATS)
        distributions = [Distribution(format=f, access_service=service_id) for f in formats]
        return Dataset.model_validate(
            {
                **dataset_properties(row.properties),
                "@id": row.asset_id,
                "hasPolicy": offers,
                "distribution": distributions,
            }
        )

    async def catalog_page(
        self,
        caller: VerifiedCaller,
        version: DspVersion,
        message: CatalogRequestMessage,
        *,
        token: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> CatalogPage:
        """One page of the catalog the caller may see, encoded for `version`.

        Raises:
            BadRequestError: unsupported filter, malformed token or limit.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise BadRequestError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        criteria = catalog_criteria(message)
        after, before = _parse_token(token) if token else (None, None)
        generation = await self._cache.generation()
        admitted = await self.admitted_policies(caller_facts(caller), generation)
        key = None
        if generation is not None:
            caller_class = self._digests.get(
                ("class", *admitted), lambda: _digest(sorted(admitted))
            )
            page = self._digests.get(
                (version.value, limit, token) if not criteria and len(token or "") < 256 else None,
                lambda: _digest(version.value, limit, token, [c.to_json() for c in criteria]),
            )
            key = page_key(self.participant_id, generation, caller_class, page)
            local = self._local_page(key)
            if local is not None:
                return local
            cached = await self._cache.get(key)
            if cached is not None:
                return self._remember(key, CatalogPage.from_cache(cached))
        result = await self._build_page(version, admitted, criteria, after, before, limit)
        if key is not None:
            await self._cache.put(key, result.to_cache())
            self._remember(key, result)
        return result

    def _local_page(self, key: str) -> CatalogPage | None:
        hit = self._pages.get(key)
        if hit is None or time.monotonic() - hit[0] >= self._memo_ttl:
            return None
        return hit[1]

    def _remember(self, key: str, page: CatalogPage) -> CatalogPage:
        self._pages[key] = (time.monotonic(), page)
        if len(self._pages) > LOCAL_PAGES:
            self._pages.popitem(last=False)
        return page

    async def _build_page(
        self,
        version: DspVersion,
        admitted: list[str],
        criteria: list[Criterion],
        after: str | None,
        before: str | None,
        limit: int,
    ) -> CatalogPage:
        rows: list[DatasetRow] = []
        if admitted:
            rows = await self.read_model.dataset_page(
                admitted, after=after, before=before, limit=limit + 1, criteria=criteria
            )
        more = len(rows) > limit
        if before is not None:
            rows = rows[-limit:] if more else rows
            has_next, has_previous = True, more
        else:
            rows = rows[:limit]
            has_next, has_previous = more, after is not None
        service = self._service(version)
        catalog = Catalog.model_validate(
            {
                "@id": f"urn:connector:catalog:{_b64(self.participant_id)}",
                "participantId": self.participant_id,
                "service": [service],
                "dataset": [self._dataset(r, service.id) for r in rows] or None,
            }
        )
        body = json.dumps(encode(catalog, version), separators=(",", ":")).encode()
        return CatalogPage(
            body,
            _token({"a": rows[-1].asset_id}) if has_next and rows else None,
            _token({"b": rows[0].asset_id}) if has_previous and rows else None,
        )

    async def dataset(
        self, caller: VerifiedCaller, version: DspVersion, dataset_id: str
    ) -> dict[str, Any]:
        """The Dataset body for `version`.

        Raises:
            NotFoundError: unknown, or no offer the caller is admitted to covers it.
        """
        generation = await self._cache.generation()
        admitted = await self.admitted_policies(caller_facts(caller), generation)
        row = await self.read_model.dataset(dataset_id, admitted) if admitted else None
        if row is None:
            raise NotFoundError(f"dataset {dataset_id!r} not found")
        return encode(self._dataset(row, self.endpoint_url(version)), version)


def policy_or_422(value: object, pointer: str) -> Mapping[str, Any]:
    """A JSON object or UnprocessableError at `pointer` (helper for request models)."""
    if not isinstance(value, dict):
        raise UnprocessableError(f"{pointer}: must be a JSON object", pointer=pointer)
    return value


def validation_to_400(exc: ValidationError) -> BadRequestError:
    """A pydantic error of a management body as 400 with the pointer of the first problem."""
    err = exc.errors()[0]
    pointer = "".join(f"/{p}" for p in err["loc"])
    return BadRequestError(f"{pointer or '/'}: {err['msg']}", pointer=pointer)


# --------------------------------------------------------------------------- consumer side

MAX_REMOTE_PAGES: Final = 20


def _remote_error(status: int, url: str) -> ConnectorError:
    if status == 404:
        return NotFoundError(f"counterparty answered 404 for {url}")
    if status in (401, 403):
        return ForbiddenError(f"counterparty refused our credentials ({status})")
    if status < 500:
        return BadRequestError(f"counterparty rejected the catalog request ({status})")
    return UnavailableError(f"counterparty failed ({status})")


async def request_catalog(
    http: GuardedHttp,
    authorization: Callable[[], str],
    counterparty_address: str,
    *,
    filter: list[JsonValue] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Fetch a counterparty's catalog (following `Link: rel="next"`), as a 2025-1 body.

    The version comes from the address (`.../0.8` = DSP 0.8, else 2025-1). Pages are merged
    until no `next` link, `limit` datasets, or MAX_REMOTE_PAGES pages. `authorization` is called
    for each request (tokens are single-use).
    Raises:
        OutboundRefusedError (400): the SSRF guard refused the address.
        NotFoundError / ForbiddenError / BadRequestError: the counterparty answered 404 / 401
            or 403 / another 4xx.
        UnavailableError: unreachable, 5xx, or not a valid DSP Catalog.
    """
    base = counterparty_address.rstrip("/")
    version = DspVersion.V0_8 if base.endswith("/0.8") else DspVersion.V2025_1
    message = encode(CatalogRequestMessage(filter=filter), version)
    try:
        url = httpx.URL(base + "/catalog/request")
    except httpx.InvalidURL as exc:  # e.g. control characters: refuse like the guard would
        raise OutboundRefusedError(f"invalid counterparty address ({exc})") from None
    first: Catalog | None = None
    datasets: list[Dataset] = []
    for _ in range(MAX_REMOTE_PAGES):
        try:
            response = await http.request(
                "POST", url, json=message, headers={"Authorization": authorization()}
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            raise UnavailableError(f"counterparty unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise _remote_error(response.status_code, str(url))
        try:
            page = decode(response.json(), Catalog, version, check_schema=False)
        except (ValueError, BadRequestError) as exc:
            reason = exc.reasons[0] if isinstance(exc, BadRequestError) else "invalid JSON"
            raise UnavailableError(f"counterparty sent an invalid catalog: {reason}") from exc
        first = first or page
        datasets.extend(page.dataset or [])
        nxt = response.links.get("next", {}).get("url")
        if not nxt or (limit is not None and len(datasets) >= limit):
            break
        try:
            url = url.join(nxt)
        except httpx.InvalidURL as exc:
            raise UnavailableError(f"counterparty sent an invalid next link ({exc})") from None
    assert first is not None  # noqa: S101 - the loop ran at least once
    kept = datasets[:limit] if limit is not None else datasets
    merged = first.model_copy(update={"dataset": kept or None})
    return encode(merged, DspVersion.V2025_1)
