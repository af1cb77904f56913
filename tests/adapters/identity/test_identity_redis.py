"""Replay set, DID resolution cache and the whole verifier against a real Redis and a real
loopback did:web server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from connector.core.errors import UnauthorizedError, UnavailableError
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.identity.did import DidResolutionError, DidResolver, build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.replay import RedisReplayStore, jti_key
from connector.identity.tokens import TokenIssuer, TokenVerifier, bearer
from connector.identity.trust import TrustList

if TYPE_CHECKING:
    from tests.adapters.identity.conftest import LoopbackServer, MakeResolver, SpyBackend

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
US = "did:web:provider.example"


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def participant() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def dead_redis() -> Redis:
    """A client for a port nothing listens on, without client-side retries."""
    return Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def ring() -> KeyRing:
    key = generate_key()
    return KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))


async def test_replay_set_claims_once_with_ttl(redis_client: Redis, participant: str) -> None:
    store = RedisReplayStore(redis_client, participant=participant)
    await store.claim("did:web:a", "j-1", ttl_seconds=120)
    with pytest.raises(UnauthorizedError, match="replayed"):
        await store.claim("did:web:a", "j-1", ttl_seconds=120)
    await store.claim("did:web:b", "j-1", ttl_seconds=120)  # other issuer, same jti
    key = jti_key(participant, "did:web:a", "j-1")
    assert key.startswith(f"connector:{participant}:jti:")
    assert 0 < await redis_client.ttl(key) <= 120


async def test_replay_set_fails_closed_when_redis_is_down(participant: str) -> None:
    dead = dead_redis()
    store = RedisReplayStore(dead, participant=participant)
    with pytest.raises(UnavailableError):
        await store.claim("did:web:a", "j-1", ttl_seconds=60)
    await dead.aclose()


@pytest.fixture
def did_host(
    loopback_server: LoopbackServer, make_resolver: MakeResolver, spy_backend: SpyBackend
) -> GuardedHttp:
    """did:web:localhost%3A<port> served by the loopback server (loopback + http allowed)."""
    http = GuardedHttp(
        OutboundConfig(allow_http=True, allow_cidrs=("127.0.0.0/8",)),
        resolver=make_resolver({"localhost": ["127.0.0.1"], "internal.corp": ["10.0.0.7"]}),
        network_backend=spy_backend,
    )
    return http


def serve(
    server: LoopbackServer,
    path: str,
    document: Mapping[str, object],
    content_type: str = "application/did+json",
) -> None:
    server.routes[path] = (200, {"Content-Type": content_type}, json.dumps(document).encode())


async def test_resolver_fetches_validates_and_caches(
    loopback_server: LoopbackServer, did_host: GuardedHttp, redis_client: Redis, participant: str
) -> None:
    did = f"did:web:localhost%3A{loopback_server.port}"
    doc = build_did_document(did, [ring().current])
    serve(loopback_server, "/.well-known/did.json", doc)
    resolver = DidResolver(did_host, redis_client, 300, participant=participant, allow_http=True)
    assert await resolver.resolve(did) == doc
    assert await resolver.resolve(did) == doc
    assert len(loopback_server.requests) == 1
    key = f"connector:{participant}:did:{did}"
    assert 0 < await redis_client.ttl(key) <= 300
    # A forced refresh refetches, at most once per interval; the fetch on the miss counted.
    await resolver.resolve(did, force_refresh=True)
    assert len(loopback_server.requests) == 1
    refresh = f"connector:{participant}:did-refresh:{did}"
    assert 0 < await redis_client.ttl(refresh) <= 30
    await redis_client.delete(refresh)  # the interval has passed
    await resolver.resolve(did, force_refresh=True)
    await resolver.resolve(did, force_refresh=True)
    assert len(loopback_server.requests) == 2
    await did_host.aclose()


async def test_resolver_path_dids(
    loopback_server: LoopbackServer, did_host: GuardedHttp, redis_client: Redis, participant: str
) -> None:
    did = f"did:web:localhost%3A{loopback_server.port}:tenants:acme"
    doc = build_did_document(did, [ring().current])
    serve(loopback_server, "/tenants/acme/did.json", doc, "application/json")
    resolver = DidResolver(did_host, None, participant=participant, allow_http=True)
    assert (await resolver.resolve(did))["id"] == did


async def test_resolver_rejects_mismatched_id_and_negative_caches(
    loopback_server: LoopbackServer, did_host: GuardedHttp, redis_client: Redis, participant: str
) -> None:
    did = f"did:web:localhost%3A{loopback_server.port}"
    serve(loopback_server, "/.well-known/did.json", build_did_document("did:web:evil", []))
    resolver = DidResolver(did_host, redis_client, participant=participant, allow_http=True)
    with pytest.raises(DidResolutionError, match="does not match"):
        await resolver.resolve(did)
    with pytest.raises(DidResolutionError, match="recently failed"):
        await resolver.resolve(did)
    assert len(loopback_server.requests) == 1


@pytest.mark.parametrize(
    ("status", "headers", "body", "match"),
    [
        (404, {}, b"", "returned 404"),
        (200, {"Content-Type": "text/html"}, b"{}", "content type"),
        (200, {"Content-Type": "application/json"}, b"[" * 100, "acceptable JSON"),
        (302, {"Location": "/elsewhere"}, b"", "returned 302"),
    ],
)
async def test_resolver_rejects_bad_responses(
    loopback_server: LoopbackServer,
    did_host: GuardedHttp,
    participant: str,
    status: int,
    headers: dict[str, str],
    body: bytes,
    match: str,
) -> None:
    did = f"did:web:localhost%3A{loopback_server.port}"
    loopback_server.routes["/.well-known/did.json"] = (status, headers, body)
    resolver = DidResolver(did_host, None, participant=participant, allow_http=True)
    with pytest.raises(DidResolutionError, match=match):
        await resolver.resolve(did)


async def test_resolver_works_without_redis(
    loopback_server: LoopbackServer, did_host: GuardedHttp, participant: str
) -> None:
    did = f"did:web:localhost%3A{loopback_server.port}"
    serve(loopback_server, "/.well-known/did.json", build_did_document(did, [ring().current]))
    dead = dead_redis()
    resolver = DidResolver(did_host, dead, participant=participant, allow_http=True)
    assert (await resolver.resolve(did))["id"] == did
    await dead.aclose()


async def test_token_from_internal_did_is_rejected_without_connecting(
    did_host: GuardedHttp, spy_backend: SpyBackend, redis_client: Redis, participant: str
) -> None:
    their = ring()
    did = "did:web:internal.corp"
    resolver = DidResolver(did_host, redis_client, participant=participant, allow_http=True)
    verifier = TokenVerifier(
        resolver,
        RedisReplayStore(redis_client, participant=participant),
        TrustList.of([did]),
        US,
        lambda: NOW,
    )
    token = TokenIssuer(their, did, clock=lambda: NOW).issue(US)
    with pytest.raises(UnauthorizedError, match="refused"):
        await verifier.verify(bearer(token))
    assert spy_backend.connects == []


async def test_end_to_end_verification_with_redis(
    loopback_server: LoopbackServer, did_host: GuardedHttp, redis_client: Redis, participant: str
) -> None:
    their = ring()
    did = f"did:web:localhost%3A{loopback_server.port}"
    serve(loopback_server, "/.well-known/did.json", build_did_document(did, [their.current]))
    verifier = TokenVerifier(
        DidResolver(did_host, redis_client, participant=participant, allow_http=True),
        RedisReplayStore(redis_client, participant=participant),
        TrustList.of([did]),
        US,
        lambda: NOW,
    )
    token = TokenIssuer(their, did, clock=lambda: NOW - timedelta(seconds=10)).issue(US)
    caller = await verifier.verify(bearer(token))
    assert caller.did == did
    with pytest.raises(UnauthorizedError, match="replayed"):
        await verifier.verify(bearer(token))


# --- a partner rotates its key under the same kid (issue 16, finding 6) -------------------------


def same_kid_ring(kid: str = "key-1") -> KeyRing:
    return KeyRing(current=KeyEntry(key=generate_key(), key_id=kid))


def rotation_world(
    loopback_server: LoopbackServer,
    did_host: GuardedHttp,
    redis_client: Redis,
    participant: str,
    *,
    refresh_interval: int = 30,
) -> tuple[str, TokenVerifier]:
    did = f"did:web:localhost%3A{loopback_server.port}"
    resolver = DidResolver(
        did_host,
        redis_client,
        participant=participant,
        allow_http=True,
        refresh_interval=refresh_interval,
    )
    verifier = TokenVerifier(
        resolver,
        RedisReplayStore(redis_client, participant=participant),
        TrustList.of([did]),
        US,
        lambda: NOW,
    )
    return did, verifier


def token(keyring: KeyRing, did: str) -> str:
    return bearer(TokenIssuer(keyring, did, clock=lambda: NOW - timedelta(seconds=10)).issue(US))


async def expire_refresh_mark(redis_client: Redis, participant: str, did: str) -> None:
    """As if `did_refresh_interval_seconds` had passed since the document was fetched."""
    await redis_client.delete(f"connector:{participant}:did-refresh:{did}")


async def test_a_key_rotated_under_the_same_kid_is_accepted_after_one_refetch(
    loopback_server: LoopbackServer, did_host: GuardedHttp, redis_client: Redis, participant: str
) -> None:
    did, verifier = rotation_world(loopback_server, did_host, redis_client, participant)
    old, new = same_kid_ring(), same_kid_ring()
    serve(loopback_server, "/.well-known/did.json", build_did_document(did, [old.current]))
    assert (await verifier.verify(token(old, did))).did == did  # cached now, for 300 s
    await expire_refresh_mark(redis_client, participant, did)

    # The partner publishes a new key under the same kid and signs with it.
    serve(loopback_server, "/.well-known/did.json", build_did_document(did, [new.current]))
    caller = await verifier.verify(token(new, did))
    assert caller.did == did
    assert caller.key_id == f"{did}#key-1"
    assert len(loopback_server.requests) == 2  # one re-fetch
    # The refreshed document is what the cache holds now: no more fetches.
    assert (await verifier.verify(token(new, did))).did == did
    assert len(loopback_server.requests) == 2


async def test_bad_signatures_refetch_at_most_once_per_interval_per_did(
    loopback_server: LoopbackServer, did_host: GuardedHttp, redis_client: Redis, participant: str
) -> None:
    did, verifier = rotation_world(loopback_server, did_host, redis_client, participant)
    real, forger = same_kid_ring(), same_kid_ring()
    serve(loopback_server, "/.well-known/did.json", build_did_document(did, [real.current]))
    # Right after the fetch a bad signature is refused without a second one.
    with pytest.raises(UnauthorizedError, match="token signature invalid"):
        await verifier.verify(token(forger, did))
    assert len(loopback_server.requests) == 1
    await expire_refresh_mark(redis_client, participant, did)
    # Anyone can claim a trusted DID; however many forged tokens come, one fetch per interval.
    for _ in range(5):
        with pytest.raises(UnauthorizedError, match="token signature invalid"):
            await verifier.verify(token(forger, did))
    assert len(loopback_server.requests) == 2
    assert (await verifier.verify(token(real, did))).did == did
    assert len(loopback_server.requests) == 2


async def test_the_refetch_waits_for_the_configured_interval(
    loopback_server: LoopbackServer, did_host: GuardedHttp, redis_client: Redis, participant: str
) -> None:
    did, verifier = rotation_world(
        loopback_server, did_host, redis_client, participant, refresh_interval=1
    )
    old, new = same_kid_ring(), same_kid_ring()
    serve(loopback_server, "/.well-known/did.json", build_did_document(did, [old.current]))
    assert (await verifier.verify(token(old, did))).did == did
    serve(loopback_server, "/.well-known/did.json", build_did_document(did, [new.current]))
    # Within the interval of the last fetch: refused on the cached key, no fetch.
    with pytest.raises(UnauthorizedError, match="token signature invalid"):
        await verifier.verify(token(new, did))
    assert len(loopback_server.requests) == 1
    await asyncio.sleep(1.2)
    assert (await verifier.verify(token(new, did))).did == did
    assert len(loopback_server.requests) == 2
