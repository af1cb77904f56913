"""The `dcp` profile's verifier against a real loopback holder, issuer and status list (DCP TCK
verifier rejection list, identity.md §1.7; decision 0022): real keys, real HTTP through the
outbound guard, real Redis for the DID cache and the replay set."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from connector.core.errors import UnauthorizedError
from connector.core.identity.dcp import DEFAULT_SCOPES, scope_for
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.identity.did import DidResolver
from connector.identity.presentations import PresentationVerifier
from connector.identity.profile import AuthProfile
from connector.identity.replay import RedisReplayStore
from connector.identity.tokens import TokenVerifier
from connector.identity.trust import TrustList
from connector.runtime.embedded import free_port
from tests.dcp_holder import DcpWorld, Holder, dcp_world, ring

US = "did:web:verifier.example"
MEMBERSHIP = "MembershipCredential"
QUALITY = "QualityFrameworkCredential"


@pytest.fixture
async def world() -> AsyncIterator[DcpWorld]:
    async with dcp_world() as w:
        yield w


@pytest.fixture
async def http() -> AsyncIterator[GuardedHttp]:
    config = OutboundConfig(allow_http=True, allow_cidrs=("127.0.0.0/8",))
    async with GuardedHttp(config) as client:
        yield client


Build = Callable[..., tuple[TokenVerifier, PresentationVerifier]]


@pytest.fixture
def build(world: DcpWorld, http: GuardedHttp, redis_client: Redis) -> Build:
    def make(
        *,
        trusted: dict[str, tuple[str, ...]] | None = None,
        refuse: bool = True,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        cache_seconds: int = 0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> tuple[TokenVerifier, PresentationVerifier]:
        participant = f"verifier-{uuid.uuid4().hex[:8]}"
        resolver = DidResolver(
            http, redis_client, participant=participant, allow_http=True, allow_ip=True
        )
        trust = TrustList(
            trusted_issuers={
                k: frozenset(v)
                for k, v in (trusted or {world.issuer.did: (MEMBERSHIP, QUALITY)}).items()
            }
        )
        presentations = PresentationVerifier(
            resolver,
            http,
            ring(),
            US,
            trust,
            clock,
            scopes=scopes,
            refuse_failures=refuse,
            status_list_ttl=300,
            cache_seconds=cache_seconds,
        )
        verifier = TokenVerifier(
            resolver,
            RedisReplayStore(redis_client, participant=participant),
            trust,
            US,
            clock,
            AuthProfile.DCP,
            presentations=presentations,
        )
        return verifier, presentations

    return make


def member(world: DcpWorld, name: str = "member") -> Holder:
    holder = world.holder(name)
    world.credential(holder)
    return holder


async def test_a_member_is_admitted_with_its_credentials_as_claims(
    world: DcpWorld, build: Build
) -> None:
    holder = member(world)
    world.credential(holder, QUALITY, subject={"contractVersion": "1.0"})
    verifier, _ = build(scopes=(*DEFAULT_SCOPES, scope_for(QUALITY)))
    caller = await verifier.verify(holder.authorization(US))
    assert caller.participant_id == holder.did
    assert caller.claims == {
        MEMBERSHIP: "active",
        QUALITY: "active",
        f"{QUALITY}.contractVersion": ["1.0"],
        "credential_types": [MEMBERSHIP, QUALITY],
        "membership": "active",
    }
    (query,) = holder.queries
    assert query["body"] == {
        "@context": ["https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"],
        "type": "PresentationQueryMessage",
        "scope": [*DEFAULT_SCOPES, scope_for(QUALITY)],
    }
    assert query["token"]["iss"] == query["token"]["sub"] == US
    assert query["token"]["aud"] == holder.did


async def test_extra_credentials_are_allowed(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    world.credential(holder, QUALITY)
    verifier, _ = build(scopes=(*DEFAULT_SCOPES, scope_for(QUALITY)))
    assert (await verifier.verify(holder.authorization(US))).claims["credential_types"] == [
        MEMBERSHIP,
        QUALITY,
    ]


async def test_the_presentation_is_cached_per_caller(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    verifier, _ = build(cache_seconds=60)
    for _ in range(3):
        assert (await verifier.verify(holder.authorization(US))).claims[MEMBERSHIP] == "active"
    assert len(holder.queries) == 1
    assert world.status_fetches == 1


async def test_the_cache_ends_at_the_earliest_credential_expiry(
    world: DcpWorld, build: Build
) -> None:
    holder = world.holder("short")
    world.credential(holder, valid_from=timedelta(seconds=-10), valid_for=timedelta(seconds=60))
    now = [datetime.now(UTC)]
    _, presentations = build(cache_seconds=3600, clock=lambda: now[0])
    token = "unused-by-cache"
    await presentations.verify(holder.did, holder_access(holder))
    now[0] += timedelta(seconds=30)
    await presentations.verify(holder.did, token)
    assert len(holder.queries) == 1
    now[0] += timedelta(seconds=60)
    with pytest.raises(UnauthorizedError):
        await presentations.verify(holder.did, holder_access(holder))
    assert len(holder.queries) == 2


def holder_access(holder: Holder) -> str:
    from connector.identity.sts import issue_access_token

    return issue_access_token(holder.keys, holder.did, US, DEFAULT_SCOPES, datetime.now(UTC))


async def test_the_status_list_is_cached_for_its_ttl(world: DcpWorld, build: Build) -> None:
    first, second = member(world, "a"), member(world, "b")
    verifier, _ = build()
    await verifier.verify(first.authorization(US))
    await verifier.verify(second.authorization(US))
    assert world.status_fetches == 1


async def test_a_status_list_is_not_kept_past_its_own_exp(world: DcpWorld, build: Build) -> None:
    """The configured TTL (300 s here) is an upper bound: the issuer's `exp` on the list ends
    the reuse earlier, so a revocation reaches us within the issuer's TTL."""
    world.status_valid_for = timedelta(seconds=5)
    shift = timedelta()
    verifier, _ = build(clock=lambda: datetime.now(UTC) + shift)
    await verifier.verify(member(world, "a").authorization(US))
    await verifier.verify(member(world, "b").authorization(US))
    assert world.status_fetches == 1
    shift = timedelta(seconds=6)
    await verifier.verify(member(world, "c").authorization(US))
    assert world.status_fetches == 2


# --- the SI token (DCP TCK §4) -----------------------------------------------------------


def later(seconds: int) -> int:
    return int(datetime.now(UTC).timestamp()) + seconds


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (lambda h: h.authorization(US).removeprefix("Bearer "), "not a Bearer token"),
        (lambda h: None, "missing Authorization"),
        (lambda h: h.authorization(US, sub="did:web:someone.else"), "'iss' and 'sub'"),
        (lambda h: h.authorization("did:web:another.verifier"), "'aud'"),
        (lambda h: h.authorization(US, nbf=later(600)), "not yet valid"),
        (lambda h: h.authorization(US, iat=later(-900), exp=later(-600)), "expired"),
        (lambda h: h.authorization(US, token=None), "no 'token' claim"),
        (lambda h: h.authorization(US, keys=ring()), "signing key not found"),
    ],
    ids=["no-bearer", "no-header", "iss-ne-sub", "wrong-aud", "nbf", "expired", "no-token", "key"],
)
async def test_bad_si_tokens_are_refused_before_any_query(
    world: DcpWorld, build: Build, header: Callable[[Holder], str | None], reason: str
) -> None:
    holder = member(world)
    verifier, _ = build()
    with pytest.raises(UnauthorizedError) as refused:
        await verifier.verify(header(holder))
    assert reason in refused.value.reasons[0]
    assert holder.queries == []


async def test_a_reused_jti_is_refused(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    verifier, _ = build()
    token = holder.authorization(US)
    await verifier.verify(token)
    with pytest.raises(UnauthorizedError, match="replay"):
        await verifier.verify(token)
    assert len(holder.queries) == 1


async def test_sub_not_the_did_document_id_is_refused(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    holder.document_patch = {"id": f"{world.root}:holders:someone-else"}
    verifier, _ = build()
    with pytest.raises(UnauthorizedError, match="id does not match"):
        await verifier.verify(holder.authorization(US))


# --- the presentation (DCP TCK §5) -------------------------------------------------------


async def refused(verifier: TokenVerifier, holder: Holder) -> str:
    with pytest.raises(UnauthorizedError) as exc:
        await verifier.verify(holder.authorization(US))
    return exc.value.reasons[0]


async def test_missing_credentials_are_refused(world: DcpWorld, build: Build) -> None:
    holder = world.holder("nobody")
    world.credential(holder, QUALITY)
    verifier, _ = build()
    assert "requested credentials missing: MembershipCredential" in await refused(verifier, holder)


async def test_a_credential_about_someone_else_is_refused(world: DcpWorld, build: Build) -> None:
    holder = world.holder("thief")
    world.credential(holder, subject_id=f"{world.root}:holders:victim")
    verifier, _ = build()
    assert "not the presentation holder" in await refused(verifier, holder)


@pytest.mark.parametrize(
    ("valid_from", "valid_for", "standing"),
    [
        (timedelta(days=-30), timedelta(days=1), "expired"),
        (timedelta(days=1), timedelta(days=30), "not-yet-valid"),
    ],
)
async def test_credentials_out_of_their_validity_are_refused(
    world: DcpWorld, build: Build, valid_from: timedelta, valid_for: timedelta, standing: str
) -> None:
    holder = world.holder("late")
    world.credential(holder, valid_from=valid_from, valid_for=valid_for)
    verifier, _ = build()
    assert f"is {standing}" in await refused(verifier, holder)


async def test_a_revoked_credential_is_refused(world: DcpWorld, build: Build) -> None:
    holder = world.holder("revoked")
    world.revoked.add(world.credential(holder))
    verifier, _ = build()
    assert "is revoked" in await refused(verifier, holder)


async def test_an_untrusted_issuer_is_refused_without_resolving_it(
    world: DcpWorld, build: Build
) -> None:
    holder = world.holder("forged")
    world.credential(holder, issuer=world.other_issuer)
    verifier, _ = build()
    assert "is untrusted-issuer" in await refused(verifier, holder)


async def test_an_issuer_trusted_for_another_type_only_is_refused(
    world: DcpWorld, build: Build
) -> None:
    holder = world.holder("wrong-type")
    world.credential(holder, issuer=world.other_issuer)
    verifier, _ = build(
        trusted={world.issuer.did: (MEMBERSHIP,), world.other_issuer.did: (QUALITY,)}
    )
    assert "is untrusted-issuer" in await refused(verifier, holder)


async def test_a_vc_not_signed_by_its_issuer_is_refused(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    # The issuer's document lists another public key under the signing key's id.
    document = world.issuer.document()
    document["verificationMethod"][0]["publicKeyJwk"] = ring().current.public_jwk()
    world.issuer.document_patch = {"verificationMethod": document["verificationMethod"]}
    verifier, _ = build()
    assert "signature invalid (assertionMethod" in await refused(verifier, holder)


async def test_an_issuer_key_not_for_assertions_is_refused(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    world.issuer.relationships = ("authentication",)
    verifier, _ = build()
    assert "assertionMethod" in await refused(verifier, holder)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"vp_claims": {"aud": "did:web:another.verifier"}}, "'aud' does not name"),
        ({"vp_claims": {"iss": "did:web:x", "sub": "did:web:x"}}, "not issued by the caller"),
        ({"vp_object": {"holder": "did:web:x"}}, "holder is not the caller"),
        ({"vp_claims": {"exp": later(-600), "iat": later(-900)}}, "presentation expired"),
        ({"vp_keys": ring()}, "signature invalid (authentication"),
        ({"relationships": ("assertionMethod", "capabilityInvocation")}, "authentication"),
        ({"answer_status": 500}, "answered 500"),
    ],
    ids=["aud", "iss", "holder", "expired", "key", "not-authentication", "cs-down"],
)
async def test_bad_presentations_are_refused(
    world: DcpWorld, build: Build, change: dict[str, Any], reason: str
) -> None:
    holder = member(world)
    for name, value in change.items():
        setattr(holder, name, value)
    verifier, _ = build()
    assert reason in await refused(verifier, holder)


async def test_no_credential_service_is_refused(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    holder.services = []
    verifier, _ = build()
    assert "no CredentialService" in await refused(verifier, holder)


# --- credential_failures = policy: standings reach the policy ------------------------------


async def test_policy_mode_passes_standings_to_the_policy(world: DcpWorld, build: Build) -> None:
    revoked = world.holder("revoked-member")
    world.revoked.add(world.credential(revoked))
    nobody = world.holder("non-member")
    world.credential(nobody, QUALITY)
    forged = world.holder("forged-member")
    world.credential(forged, issuer=world.other_issuer)
    verifier, _ = build(refuse=False)
    assert (await verifier.verify(revoked.authorization(US))).claims == {
        MEMBERSHIP: "revoked",
        "credential_types": [],
        "membership": "revoked",
    }
    assert (await verifier.verify(nobody.authorization(US))).claims == {"credential_types": []}
    assert (await verifier.verify(forged.authorization(US))).claims[MEMBERSHIP] == (
        "untrusted-issuer"
    )
    thief = world.holder("thief")
    world.credential(thief, subject_id=revoked.did)
    # Forged or unbound credentials refuse in both modes.
    assert "not the presentation holder" in await refused(verifier, thief)


# --- the Credential Service and the status list are untrusted endpoints --------------------


async def test_a_credential_service_answer_that_is_not_json_is_refused(
    world: DcpWorld, build: Build
) -> None:
    holder = member(world)
    holder.answer_body = b"<html>"
    verifier, _ = build()
    assert "not JSON" in await refused(verifier, holder)


async def test_a_credential_service_off_the_allowed_network_is_never_contacted(
    world: DcpWorld, build: Build
) -> None:
    holder = member(world)
    holder.services = [
        {
            "id": f"{holder.did}#credential-service",
            "type": "CredentialService",
            "serviceEndpoint": "http://169.254.169.254/dcp",
        }
    ]
    verifier, _ = build()
    assert "presentation query refused" in await refused(verifier, holder)


async def test_an_unreachable_credential_service_is_refused(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    holder.services = [
        {
            "id": f"{holder.did}#credential-service",
            "type": "CredentialService",
            "serviceEndpoint": f"http://127.0.0.1:{free_port()}/dcp",
        }
    ]
    verifier, _ = build()
    assert "presentation query failed" in await refused(verifier, holder)


@pytest.mark.parametrize(
    ("status_url", "reason"),
    [
        ("http://10.0.0.1/status/1", "status list fetch refused"),
        ("{base}/status/missing", "status list fetch answered 404"),
    ],
)
async def test_status_lists_come_through_the_guard(
    world: DcpWorld, build: Build, status_url: str, reason: str
) -> None:
    holder = world.holder("listed-elsewhere")
    world.credential(holder, status_url=status_url.format(base=world.base))
    verifier, _ = build()
    assert reason in await refused(verifier, holder)


async def test_a_status_list_signed_by_someone_else_is_refused(
    world: DcpWorld, build: Build
) -> None:
    holder = member(world)
    world.status_signer = world.other_issuer
    verifier, _ = build()
    assert "kid does not belong to its signer" in await refused(verifier, holder)


async def test_an_expired_status_list_is_refused(world: DcpWorld, build: Build) -> None:
    holder = member(world)
    world.status_valid_for = timedelta(minutes=-10)
    verifier, _ = build()
    assert "status list credential expired" in await refused(verifier, holder)


async def test_a_burst_before_the_cache_is_filled_queries_once(
    world: DcpWorld, build: Build
) -> None:
    holder = member(world)
    verifier, _ = build(cache_seconds=60)
    callers = await asyncio.gather(*(verifier.verify(holder.authorization(US)) for _ in range(5)))
    assert {c.claims[MEMBERSHIP] for c in callers} == {"active"}
    assert len(holder.queries) == 1


async def test_a_refusal_is_shared_by_the_burst_and_not_cached(
    world: DcpWorld, build: Build
) -> None:
    holder = world.holder("burst-revoked")
    world.revoked.add(world.credential(holder))
    verifier, _ = build(cache_seconds=60)
    results = await asyncio.gather(
        *(verifier.verify(holder.authorization(US)) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, UnauthorizedError) for r in results), results
    assert len(holder.queries) == 1
    assert "is revoked" in await refused(verifier, holder)
    assert len(holder.queries) == 2
