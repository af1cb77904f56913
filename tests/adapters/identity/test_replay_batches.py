"""The replay set in batches (decision 0020) and the resolver's in-process documents, against a
real Redis: a token is accepted only once Redis said its jti was new, whichever app instance sees
it, however many claims share a round trip; with Redis down every claim is refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.security import CallerDep
from connector.core.errors import UnauthorizedError, UnavailableError
from connector.http.errors import install_error_handlers
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.identity.did import DidResolver, MemoryDidSource, build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.replay import RedisReplayStore, jti_key
from connector.identity.tokens import TokenIssuer, TokenVerifier, bearer
from connector.identity.trust import TrustList
from connector.settings import load_settings

pytestmark = pytest.mark.integration

US = "did:web:provider.example"
PARTNER = "did:web:partner.example"
RING = KeyRing(current=(lambda k: KeyEntry(key=k, key_id=key_id(k)))(generate_key()))


def _now() -> datetime:
    return datetime.now(UTC)


def token() -> str:
    return bearer(TokenIssuer(RING, PARTNER, clock=_now).issue(US))


def dead_redis() -> Redis:
    """A client for a port nothing listens on, without client-side retries."""
    return Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def participant() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def app_instance(redis: Redis, participant: str) -> FastAPI:
    """One API replica: its own Redis client and replay store, the real caller dependency."""
    app = FastAPI()
    app.state.settings = load_settings(env={}, rate_limit={"requests_per_minute": 0})
    source = MemoryDidSource({PARTNER: build_did_document(PARTNER, [RING.current])})
    store = RedisReplayStore(redis, participant=participant)
    verifier = TokenVerifier(source, store, TrustList.of([PARTNER]), US, _now)
    app.state.identity = SimpleNamespace(verifier=verifier, participant_id=participant)
    app.state.resources = SimpleNamespace(redis=redis)
    app.state.replay = store
    install_error_handlers(app)

    @app.post("/whoami")
    async def whoami(caller: CallerDep) -> dict[str, str]:
        return {"did": caller.did}

    return app


@pytest.fixture
async def two_replicas(
    redis_url: str, participant: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    redis_a, redis_b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    a = httpx.AsyncClient(transport=httpx.ASGITransport(app_instance(redis_a, participant)))
    b = httpx.AsyncClient(transport=httpx.ASGITransport(app_instance(redis_b, participant)))
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()
        await redis_a.aclose()
        await redis_b.aclose()


async def post(client: httpx.AsyncClient, authorization: str) -> httpx.Response:
    return await client.post("http://t/whoami", headers={"Authorization": authorization})


async def test_a_token_accepted_by_one_replica_is_refused_by_the_other(
    two_replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_replicas
    authorization = token()
    first = await post(a, authorization)
    assert first.status_code == 200, first.text
    assert first.json() == {"did": PARTNER}
    assert (await post(b, authorization)).status_code == 401
    assert (await post(a, authorization)).status_code == 401


async def test_the_same_token_sent_to_both_replicas_at_once_gets_in_once(
    two_replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_replicas
    for _ in range(20):
        authorization = token()
        answers = await asyncio.gather(*(post(c, authorization) for c in (a, b, a, b)))
        assert sorted(r.status_code for r in answers) == [200, 401, 401, 401]


async def test_with_redis_down_every_token_is_refused_with_503(participant: str) -> None:
    dead = dead_redis()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app_instance(dead, participant)))
    try:
        answers = await asyncio.gather(*(post(client, token()) for _ in range(10)))
        assert [r.status_code for r in answers] == [503] * 10
    finally:
        await client.aclose()
        await dead.aclose()


async def test_concurrent_claims_share_round_trips_and_each_is_decided_by_redis(
    redis_client: Redis, participant: str
) -> None:
    store = RedisReplayStore(redis_client, participant=participant)
    jtis = [f"j-{i}" for i in range(200)]
    # Each jti twice in the same burst: exactly one of the two claims wins.
    claims = [store.claim(PARTNER, j, ttl_seconds=60) for j in jtis * 2]
    outcomes = await asyncio.gather(*claims, return_exceptions=True)
    accepted = [j for j, o in zip(jtis * 2, outcomes, strict=True) if o is None]
    refused = [o for o in outcomes if isinstance(o, UnauthorizedError)]
    assert sorted(accepted) == sorted(jtis)
    assert len(refused) == len(jtis)
    assert store.batches < len(claims) / 10
    for j in jtis[:5]:
        key = jti_key(participant, PARTNER, j)
        assert 0 < await redis_client.ttl(key) <= 60


async def test_a_claim_made_before_another_store_wrote_it_is_refused(
    redis_client: Redis, redis_url: str, participant: str
) -> None:
    other = Redis.from_url(redis_url)
    try:
        # Another replica claimed it (its batch already reached Redis).
        await RedisReplayStore(other, participant=participant).claim(PARTNER, "j", ttl_seconds=60)
        with pytest.raises(UnauthorizedError, match="replayed"):
            await RedisReplayStore(redis_client, participant=participant).claim(
                PARTNER, "j", ttl_seconds=60
            )
    finally:
        await other.aclose()


async def test_redis_down_refuses_the_whole_batch_and_recovers(
    redis_client: Redis, participant: str
) -> None:
    dead = dead_redis()
    try:
        store = RedisReplayStore(dead, participant=participant)
        outcomes = await asyncio.gather(
            *(store.claim(PARTNER, f"j-{i}", ttl_seconds=60) for i in range(50)),
            return_exceptions=True,
        )
        assert all(isinstance(o, UnavailableError) for o in outcomes), outcomes
        # Nothing was recorded: the same jtis are still new to a store that reaches Redis.
        live = RedisReplayStore(redis_client, participant=participant)
        await asyncio.gather(*(live.claim(PARTNER, f"j-{i}", ttl_seconds=60) for i in range(50)))
    finally:
        await dead.aclose()


async def test_a_cancelled_claim_does_not_disturb_the_others(
    redis_client: Redis, participant: str
) -> None:
    store = RedisReplayStore(redis_client, participant=participant)
    doomed = asyncio.ensure_future(store.claim(PARTNER, "gone", ttl_seconds=60))
    others = [
        asyncio.ensure_future(store.claim(PARTNER, f"k-{i}", ttl_seconds=60)) for i in range(5)
    ]
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.gather(*others)
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_verifier_with_batched_store_end_to_end(
    redis_client: Redis, participant: str
) -> None:
    source = MemoryDidSource({PARTNER: build_did_document(PARTNER, [RING.current])})
    store = RedisReplayStore(redis_client, participant=participant)
    verifier = TokenVerifier(source, store, TrustList.of([PARTNER]), US, _now)
    tokens = [token() for _ in range(30)]
    callers = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert {c.did for c in callers} == {PARTNER}
    replays = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, UnauthorizedError) for r in replays)


# --- the resolver's in-process copy ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_resolver_reads_redis_once_per_local_ttl_and_a_forced_refresh_reads_it_again(
    redis_client: Redis, participant: str
) -> None:
    did = "did:web:peer.example"
    old = build_did_document(did, [RING.current])
    new_ring = KeyRing(current=KeyEntry(key=generate_key(), key_id="k2"))
    new = build_did_document(did, [new_ring.current])
    http = GuardedHttp(OutboundConfig())
    clock = Clock()
    resolver = DidResolver(http, redis_client, participant=participant, monotonic=clock)
    await redis_client.set(resolver.cache_key(did), json.dumps(old), ex=300)
    try:
        assert await resolver.resolve(did) == old
        # Another replica refetched: this one keeps its copy for the local TTL...
        await redis_client.set(resolver.cache_key(did), json.dumps(new), ex=300)
        assert await resolver.resolve(did) == old
        # ...but a forced refresh (a kid it does not know) reads Redis at once (the refresh
        # interval is taken, so no fetch: nothing listens at peer.example here).
        await redis_client.set(f"connector:{participant}:did-refresh:{did}", b"1", ex=30)
        assert await resolver.resolve(did, force_refresh=True) == new
        assert await resolver.resolve(did) == new
        # And after the local TTL a plain read sees Redis again.
        await redis_client.set(resolver.cache_key(did), json.dumps(old), ex=300)
        clock.now += 5.1
        assert await resolver.resolve(did) == old
        # The copy never outlives the Redis entry it came from.
        await redis_client.set(resolver.cache_key(did), json.dumps(new), px=1500)
        clock.now += 5.1
        assert await resolver.resolve(did) == new
        await redis_client.delete(resolver.cache_key(did))
        await redis_client.set(f"connector:{participant}:did-miss:{did}", b"gone", ex=30)
        clock.now += 1.6
        with pytest.raises(UnauthorizedError, match="recently failed"):
            await resolver.resolve(did)
    finally:
        await http.aclose()


async def test_tokens_from_a_cached_peer_make_no_did_round_trip(
    redis_client: Redis, participant: str
) -> None:
    """The steady state the benchmark measures: one replay batch, no DID cache read."""
    did = "did:web:peer.example"
    http = GuardedHttp(OutboundConfig())
    resolver = DidResolver(http, redis_client, participant=participant)
    await redis_client.set(
        resolver.cache_key(did), json.dumps(build_did_document(did, [RING.current])), ex=300
    )
    store = RedisReplayStore(redis_client, participant=participant)
    verifier = TokenVerifier(resolver, store, TrustList.of([did]), US, _now)
    issuer = TokenIssuer(RING, did, clock=lambda: _now() - timedelta(seconds=1))
    await verifier.verify(bearer(issuer.issue(US)))
    await redis_client.delete(resolver.cache_key(did))  # the local copy answers now
    try:
        for _ in range(3):
            assert (await verifier.verify(bearer(issuer.issue(US)))).did == did
    finally:
        await http.aclose()


class CountingRedis(Redis):
    """Counts the DID cache reads (`MGET` in the resolver's pipeline)."""

    reads = 0

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None):  # type: ignore[no-untyped-def]
        CountingRedis.reads += 1
        return super().pipeline(transaction=transaction, shard_hint=shard_hint)


async def test_concurrent_requests_without_a_copy_share_one_redis_read(
    redis_url: str, participant: str
) -> None:
    """When a copy expires, the 64 requests of that moment make one read, not 64 (decision 0026)."""
    did = "did:web:peer.example"
    client = CountingRedis.from_url(redis_url)
    http = GuardedHttp(OutboundConfig())
    resolver = DidResolver(http, client, participant=participant)
    document = build_did_document(did, [RING.current])
    await client.set(resolver.cache_key(did), json.dumps(document), ex=300)
    CountingRedis.reads = 0
    try:
        documents = await asyncio.gather(*(resolver.resolve(did) for _ in range(64)))
        assert all(d == document for d in documents)
        assert CountingRedis.reads == 1
    finally:
        await http.aclose()
        await client.aclose()


async def test_a_copy_about_to_expire_is_read_again_in_the_background(
    redis_client: Redis, participant: str
) -> None:
    did = "did:web:peer.example"
    old = build_did_document(did, [RING.current])
    new = build_did_document(did, [KeyEntry(key=generate_key(), key_id="k2")])
    http = GuardedHttp(OutboundConfig())
    clock = Clock()
    resolver = DidResolver(http, redis_client, participant=participant, monotonic=clock)
    await redis_client.set(resolver.cache_key(did), json.dumps(old), ex=300)
    try:
        assert await resolver.resolve(did) == old
        await redis_client.set(resolver.cache_key(did), json.dumps(new), ex=300)
        clock.now += 4.5  # within the last fifth of the 5 s copy: answered from it, read behind
        assert await resolver.resolve(did) == old
        for _ in range(20):
            await asyncio.sleep(0.01)
            if await resolver.resolve(did) == new:
                break
        assert await resolver.resolve(did) == new
        # The new copy counts from its read: no request past the old expiry waited for Redis.
        clock.now += 1.0
        await redis_client.delete(resolver.cache_key(did))
        assert await resolver.resolve(did) == new
    finally:
        await http.aclose()
