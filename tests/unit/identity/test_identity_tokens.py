import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from connector.core.errors import UnauthorizedError
from connector.identity.did import MemoryDidSource, build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.replay import MemoryReplayStore
from connector.identity.tokens import (
    AuthProfile,
    DevTokenIssuer,
    InsecureProfileError,
    TokenIssuer,
    TokenVerifier,
    bearer,
    check_profile,
)
from connector.identity.trust import TrustConfig, TrustList

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
US = "did:web:provider.example"
THEM = "did:web:consumer.example"
ISSUER = "did:web:authority.example"


def ring() -> KeyRing:
    key = generate_key()
    return KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    ring: KeyRing
    source: MemoryDidSource
    replay: MemoryReplayStore
    clock: Clock
    issuer: TokenIssuer

    def verifier(
        self, trust: TrustList | None = None, profile: AuthProfile = AuthProfile.SECURE
    ) -> TokenVerifier:
        return TokenVerifier(
            self.source, self.replay, trust or TrustList.of([THEM]), US, self.clock, profile
        )


@pytest.fixture
def world() -> World:
    their_ring = ring()
    docs = {THEM: build_did_document(THEM, [their_ring.current])}
    source = MemoryDidSource(docs)
    replay = MemoryReplayStore()
    clock = Clock()
    issuer = TokenIssuer(their_ring, THEM, clock=clock)
    return World(ring=their_ring, source=source, replay=replay, clock=clock, issuer=issuer)


def sign(ring_: KeyRing, claims: dict[str, object], **header: str) -> str:
    entry = ring_.current
    hdr = {"alg": "ES256", "typ": "JWT", "kid": f"{THEM}#{entry.key_id}", **header}
    return jwt.encode(hdr, claims, entry.key, algorithms=["ES256"])


def base_claims(**overrides: object) -> dict[str, object]:
    t = int(NOW.timestamp())
    claims: dict[str, object] = {
        "iss": THEM,
        "sub": THEM,
        "aud": US,
        "jti": "j-1",
        "iat": t,
        "exp": t + 300,
    }
    claims.update(overrides)
    return claims


async def test_round_trip(world: World) -> None:
    token = world.issuer.issue(US)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "JWT", "kid": f"{THEM}#{world.ring.current.key_id}"}
    caller = await world.verifier().verify(bearer(token))
    assert caller.did == caller.participant_id == THEM
    assert caller.key_id == f"{THEM}#{world.ring.current.key_id}"
    assert caller.claims["aud"] == US
    exp, iat = caller.claims["exp"], caller.claims["iat"]
    assert isinstance(exp, int)
    assert isinstance(iat, int)
    assert exp - iat == 300
    assert caller.insecure is False


def test_issuer_refuses_lifetime_over_five_minutes() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        TokenIssuer(ring(), THEM, clock=Clock(), lifetime=timedelta(minutes=6))


async def expect_reject(verifier: TokenVerifier, header: str | None, match: str) -> None:
    with pytest.raises(UnauthorizedError) as info:
        await verifier.verify(header)
    assert match in info.value.reasons[0], info.value.reasons


async def test_signature_by_another_key_is_rejected(world: World) -> None:
    other = ring()
    forged = jwt.encode(
        {"alg": "ES256", "kid": f"{THEM}#{world.ring.current.key_id}"},
        base_claims(),
        other.current.key,
        algorithms=["ES256"],
    )
    await expect_reject(world.verifier(), bearer(forged), "signature invalid")
    # One forced refresh first (the key may have been rotated under the same kid).
    assert world.source.calls == [(THEM, False), (THEM, True)]


class RotatingSource(MemoryDidSource):
    """Serves `stale` until a forced refresh, then the current documents."""

    def __init__(
        self, stale: dict[str, object], documents: Mapping[str, Mapping[str, object]]
    ) -> None:
        super().__init__(documents)
        self.stale = stale

    async def resolve(self, did: str, *, force_refresh: bool = False) -> dict[str, object]:
        document = await super().resolve(did, force_refresh=force_refresh)
        return document if force_refresh else self.stale


async def test_a_key_rotated_under_the_same_kid_verifies_after_the_forced_refresh(
    world: World,
) -> None:
    old = KeyRing(current=KeyEntry(key=generate_key(), key_id="k1"))
    new = KeyRing(current=KeyEntry(key=generate_key(), key_id="k1"))
    source = RotatingSource(
        build_did_document(THEM, [old.current]), {THEM: build_did_document(THEM, [new.current])}
    )
    verifier = TokenVerifier(source, world.replay, TrustList.of([THEM]), US, world.clock)
    caller = await verifier.verify(bearer(TokenIssuer(new, THEM, clock=world.clock).issue(US)))
    assert caller.key_id == f"{THEM}#k1"
    assert source.calls == [(THEM, False), (THEM, True)]


async def test_unknown_key_triggers_one_forced_refresh_then_rejects(world: World) -> None:
    token = TokenIssuer(ring(), THEM, clock=world.clock).issue(US)
    await expect_reject(world.verifier(), bearer(token), "signing key not found")
    assert world.source.calls == [(THEM, False), (THEM, True)]


async def test_other_audience_is_rejected(world: World) -> None:
    token = world.issuer.issue("did:web:someone-else.example")
    await expect_reject(world.verifier(), bearer(token), "does not name this participant")


async def test_expired_token_is_rejected(world: World) -> None:
    token = world.issuer.issue(US)
    world.clock.now = NOW + timedelta(seconds=306)
    await expect_reject(world.verifier(), bearer(token), "token expired")


async def test_replayed_token_is_rejected(world: World) -> None:
    token = world.issuer.issue(US)
    verifier = world.verifier()
    await verifier.verify(bearer(token))
    await expect_reject(verifier, bearer(token), "replayed")


async def test_not_yet_valid_token_is_rejected(world: World) -> None:
    t = int(NOW.timestamp())
    token = world.issuer.issue(US, extra_claims={"nbf": t + 60})
    await expect_reject(world.verifier(), bearer(token), "not yet valid")
    future = TokenIssuer(world.ring, THEM, clock=Clock(NOW + timedelta(minutes=2))).issue(US)
    await expect_reject(world.verifier(), bearer(future), "in the future")


async def test_too_long_lifetime_is_rejected(world: World) -> None:
    t = int(NOW.timestamp())
    token = sign(world.ring, base_claims(exp=t + 3600))
    await expect_reject(world.verifier(), bearer(token), "lifetime")


async def test_missing_capability_invocation_strict_vs_relaxed(world: World) -> None:
    doc = world.source.documents[THEM]
    doc["capabilityInvocation"] = []
    await expect_reject(world.verifier(), bearer(world.issuer.issue(US)), "capabilityInvocation")
    relaxed = TrustList.of([THEM], relaxed=[THEM])
    caller = await world.verifier(relaxed).verify(bearer(world.issuer.issue(US)))
    assert caller.did == THEM


async def test_untrusted_issuer_is_rejected_before_resolution(world: World) -> None:
    token = world.issuer.issue(US)
    await expect_reject(world.verifier(TrustList.of(["did:web:x"])), bearer(token), "not trusted")
    assert world.source.calls == []


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic abc", "not a Bearer"),
        ("Bearer ", "not a Bearer"),
        ("Bearer a.b", "compact JWS"),
        ("Bearer !!.!!.!!", "malformed"),
        ("Bearer dev:alice", "compact JWS"),
        ("Bearer " + "a" * 9000, "too large"),
    ],
)
async def test_malformed_headers_are_rejected(world: World, header: str | None, match: str) -> None:
    await expect_reject(world.verifier(), header, match)


async def test_raw_token_without_bearer_is_rejected(world: World) -> None:
    await expect_reject(world.verifier(), world.issuer.issue(US), "not a Bearer")


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def test_alg_none_and_hs256_confusion_are_rejected(world: World) -> None:
    none_token = f"{b64({'alg': 'none'})}.{b64(base_claims())}."
    await expect_reject(world.verifier(), bearer(none_token), "algorithm not allowed")
    public = json.dumps(world.ring.current.public_jwk()).encode()
    hs = jwt.encode(
        {"alg": "HS256"}, base_claims(), OctKey.import_key(public), algorithms=["HS256"]
    )
    await expect_reject(world.verifier(), bearer(hs), "algorithm not allowed")


async def test_forbidden_header_parameters_are_rejected(world: World) -> None:
    token = sign(world.ring, base_claims(), jku="https://evil.example/jwks")
    await expect_reject(world.verifier(), bearer(token), "forbidden parameter")


async def test_kid_of_another_did_is_rejected(world: World) -> None:
    token = sign(world.ring, base_claims(), kid="did:web:consumerXexample#k")
    await expect_reject(world.verifier(), bearer(token), "kid does not belong")


async def test_iss_sub_mismatch_and_non_did_web_issuer(world: World) -> None:
    token = sign(world.ring, base_claims(sub="did:web:other.example"))
    await expect_reject(world.verifier(), bearer(token), "'iss' and 'sub'")
    token = sign(world.ring, base_claims(iss="did:key:z6", sub="did:key:z6"), kid="did:key:z6#k")
    await expect_reject(world.verifier(), bearer(token), "not a did:web")


async def test_rejection_is_logged_without_the_token(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    token = world.issuer.issue("did:web:someone-else.example")
    with (
        caplog.at_level(logging.INFO, logger="connector.identity.tokens"),
        pytest.raises(UnauthorizedError),
    ):
        await world.verifier().verify(bearer(token))
    assert caplog.records
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token.split(".")[2] not in str(record.__dict__)
    assert getattr(caplog.records[-1], "iss", None) == THEM


# --- membership credentials ------------------------------------------------------------------


def membership_vc(
    issuer_ring: KeyRing, issuer_did: str, subject: str, *, signer: KeyRing | None = None
) -> str:
    t = int(NOW.timestamp())
    claims = {
        "iss": issuer_did,
        "sub": subject,
        "nbf": t - 60,
        "exp": t + 86400,
        "vc": {
            "type": ["VerifiableCredential", "MembershipCredential"],
            "credentialSubject": {"id": subject},
        },
    }
    header = {"alg": "ES256", "kid": f"{issuer_did}#{issuer_ring.current.key_id}"}
    key = (signer or issuer_ring).current.key
    return jwt.encode(header, claims, key, algorithms=["ES256"])


@pytest.fixture
def authority(world: World) -> KeyRing:
    authority_ring = ring()
    world.source.documents[ISSUER] = build_did_document(ISSUER, [authority_ring.current])
    return authority_ring


def membership_trust() -> TrustList:
    return TrustList.from_config(TrustConfig(trusted_issuers={ISSUER: ("MembershipCredential",)}))


async def test_member_of_a_trusted_issuer_is_accepted(world: World, authority: KeyRing) -> None:
    vc = membership_vc(authority, ISSUER, THEM)
    token = world.issuer.issue(US, extra_claims={"membership": vc})
    caller = await world.verifier(membership_trust()).verify(bearer(token))
    assert caller.did == THEM


async def test_membership_from_untrusted_issuer_or_for_someone_else_is_rejected(
    world: World, authority: KeyRing
) -> None:
    rogue_ring = ring()
    rogue = "did:web:rogue.example"
    world.source.documents[rogue] = build_did_document(rogue, [rogue_ring.current])
    token = world.issuer.issue(
        US, extra_claims={"membership": membership_vc(rogue_ring, rogue, THEM)}
    )
    await expect_reject(world.verifier(membership_trust()), bearer(token), "trusted issuer")

    token = world.issuer.issue(
        US, extra_claims={"membership": membership_vc(authority, ISSUER, "did:web:x.example")}
    )
    await expect_reject(world.verifier(membership_trust()), bearer(token), "another participant")

    forged = membership_vc(authority, ISSUER, THEM, signer=rogue_ring)
    token = world.issuer.issue(US, extra_claims={"membership": forged})
    await expect_reject(world.verifier(membership_trust()), bearer(token), "signature invalid")


async def test_no_membership_and_not_allow_listed_is_rejected(
    world: World, authority: KeyRing
) -> None:
    await expect_reject(
        world.verifier(membership_trust()), bearer(world.issuer.issue(US)), "not trusted"
    )


# --- profiles ----------------------------------------------------------------------------------


def test_dev_profile_refuses_to_start_without_the_insecure_flag() -> None:
    with pytest.raises(InsecureProfileError, match="refusing to start"):
        check_profile("dev", allow_insecure=False)
    assert check_profile("secure", allow_insecure=False) is AuthProfile.SECURE


def test_dev_profile_logs_a_warning_at_every_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert check_profile(AuthProfile.DEV, allow_insecure=True) is AuthProfile.DEV
        check_profile(AuthProfile.DEV, allow_insecure=True)
    assert sum("INSECURE" in r.getMessage() for r in caplog.records) == 2


async def test_dev_profile_accepts_unsigned_dev_tokens_and_tck_mock_tokens(world: World) -> None:
    verifier = world.verifier(profile=AuthProfile.DEV)
    token = DevTokenIssuer("alice").issue(US)
    assert token == "dev:alice"
    caller = await verifier.verify(bearer(token))
    assert (caller.participant_id, caller.insecure) == ("alice", True)
    tck = '{"region": "any", "audience": "any", "clientId": "TCK_PARTICIPANT"}'
    assert (await verifier.verify(tck)).participant_id == "TCK_PARTICIPANT"
    # Signed tokens are still fully verified in dev.
    assert (await verifier.verify(bearer(world.issuer.issue(US)))).insecure is False
    await expect_reject(verifier, "Bearer dev:", "without participant")


async def test_secure_profile_rejects_dev_tokens(world: World) -> None:
    await expect_reject(world.verifier(), "Bearer dev:alice", "compact JWS")
    await expect_reject(world.verifier(), '{"clientId": "x"}', "not a Bearer")


# --- the signature check made on the key object itself (decision 0026) ---------------------


async def test_a_tampered_payload_or_signature_is_rejected(world: World) -> None:
    header, payload, signature = sign(world.ring, base_claims()).split(".")
    other_payload = b64(base_claims(jti="j-2"))
    await expect_reject(
        world.verifier(), bearer(f"{header}.{other_payload}.{signature}"), "signature invalid"
    )
    raw = base64.urlsafe_b64decode(signature + "==")
    flipped = base64.urlsafe_b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).rstrip(b"=").decode()
    await expect_reject(
        world.verifier(), bearer(f"{header}.{payload}.{flipped}"), "signature invalid"
    )


@pytest.mark.parametrize("length", [0, 32, 63, 65, 72])
async def test_an_es256_signature_of_the_wrong_length_is_rejected(
    world: World, length: int
) -> None:
    header, payload, _ = sign(world.ring, base_claims()).split(".")
    signature = base64.urlsafe_b64encode(b"\x01" * length).rstrip(b"=").decode()
    await expect_reject(
        world.verifier(), bearer(f"{header}.{payload}.{signature}"), "signature invalid"
    )


@pytest.mark.parametrize(
    "segment", ["a+b", "ab==", "a", "ab/c", "ab\u00e9"], ids=["plus", "pad", "len", "slash", "utf8"]
)
async def test_segments_that_are_not_strict_base64url_are_malformed(
    world: World, segment: str
) -> None:
    header, payload, signature = sign(world.ring, base_claims()).split(".")
    for token in (f"{segment}.{payload}.{signature}", f"{header}.{payload}.{segment}"):
        await expect_reject(world.verifier(), bearer(token), "malformed token")


async def test_claims_that_are_not_a_json_object_are_malformed(world: World) -> None:
    header, _, signature = sign(world.ring, base_claims()).split(".")
    await expect_reject(
        world.verifier(), bearer(f"{header}.{b64(['iss'])}.{signature}"), "malformed token"
    )


async def test_a_key_whose_use_is_not_verification_is_refused(world: World) -> None:
    jwk = {**world.ring.current.public_jwk(), "key_ops": ["encrypt"]}
    doc = build_did_document(THEM, [world.ring.current])
    for vm in doc["verificationMethod"]:
        vm["publicKeyJwk"] = jwk
    world.source.documents[THEM] = doc
    token = world.issuer.issue(US)
    await expect_reject(world.verifier(), bearer(token), "signature invalid")
