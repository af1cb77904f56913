"""OIDC bearer tokens for the management API (`connector.identity.oidc`): a JWKS from a file and
from a real HTTP server on 127.0.0.1 through the guarded client (loopback allow-listed, as in the
other identity adapter tests); tokens minted with joserfc (`tests/oidc_tokens.py`)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from joserfc.jwk import ECKey

from connector.core.errors import UnauthorizedError, UnavailableError
from connector.core.identity.access_tokens import AccessTokenRules
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.identity.oidc import (
    REFRESH_INTERVAL_SECONDS,
    JwksError,
    OidcVerifier,
    RemoteJwks,
    load_jwks_file,
)
from connector.settings import OidcSettings
from tests.oidc_tokens import AUDIENCE, ISSUER, NOW, SCOPE, TestIdp

if TYPE_CHECKING:
    from tests.adapters.identity.conftest import LoopbackServer, MakeResolver, SpyBackend

LOOPBACK = OutboundConfig(allow_http=True, allow_cidrs=("127.0.0.0/8",))
RULES = AccessTokenRules(issuer=ISSUER, audience=AUDIENCE, leeway=30, required_scope=SCOPE)


@pytest.fixture
def idp() -> TestIdp:
    return TestIdp()


def file_verifier(idp: TestIdp, tmp_path: Path, **settings: object) -> OidcVerifier:
    oidc = OidcSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_path=idp.write_jwks(tmp_path / "jwks.json"),
        required_scope=SCOPE,
        **settings,
    )
    return OidcVerifier.from_settings(oidc, None, lambda: NOW)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve_jwks(loopback_server: LoopbackServer, idp: TestIdp, status: int = 200) -> str:
    body = json.dumps(idp.jwks()).encode()
    loopback_server.routes["/jwks"] = (status, {"Content-Type": "application/json"}, body)
    return f"http://idp.test:{loopback_server.port}/jwks"


def guarded(
    spy_backend: SpyBackend, make_resolver: MakeResolver, config: OutboundConfig = LOOPBACK
) -> GuardedHttp:
    return GuardedHttp(
        config,
        resolver=make_resolver({"idp.test": ["127.0.0.1"]}),
        network_backend=spy_backend,
    )


# --- JWKS file -------------------------------------------------------------------------------


async def test_valid_tokens_are_admitted_with_a_jwks_file(idp: TestIdp, tmp_path: Path) -> None:
    verifier = file_verifier(idp, tmp_path)
    assert await verifier.verify(f"Bearer {idp.token('ec-1')}") == "alice"
    assert await verifier.verify(f"bearer {idp.token('rsa-1', sub='ci-bot')}") == "ci-bot"
    # `aud` as a plain string, `scp` instead of `scope` (Okta/Entra style), skew within leeway.
    exp = int(NOW.timestamp()) - 20
    token = idp.token(aud=AUDIENCE, scope=None, scp=[SCOPE], exp=exp)
    assert await verifier.verify(f"Bearer {token}") == "alice"


def _rejections(idp: TestIdp) -> dict[str, tuple[str, str]]:
    """case -> (token, the reason it must be refused for)."""
    now = int(NOW.timestamp())
    other = TestIdp()
    return {
        "wrong audience": (idp.token(aud="another-api"), "'aud'"),
        "wrong issuer": (idp.token(iss="https://evil.example/realms/operators"), "'iss'"),
        "expired": (idp.token(exp=now - 31, iat=now - 400), "expired"),
        "not yet valid": (idp.token(nbf=now + 120), "nbf"),
        "issued in the future": (idp.token(iat=now + 120), "'iat'"),
        "alg none": (idp.unsigned(), "algorithm not allowed"),
        "alg none without kid": (idp.unsigned(kid=None), "algorithm not allowed"),
        "unknown kid": (idp.token("ec-1", header={"kid": "ec-2"}), "no key"),
        "other key under the real kid": (idp.token("ec-1", key=other.keys["ec-1"]), "signature"),
        "missing scope": (idp.token(scope="openid profile"), "scope"),
        "missing sub": (idp.token(sub=None), "'sub'"),
        "missing exp": (idp.token(exp=None), "'exp'"),
        "alg not in the allow-list": (
            idp.token("ec-1", alg="ES384", key=ECKey.generate_key("P-384")),
            "algorithm not allowed",
        ),
        "RS256 token naming an EC key": (idp.token("ec-1", key=idp.keys["rsa-1"]), "key type"),
        "jku header": (
            idp.token(header={"jku": "https://evil.example/jwks"}),
            "forbidden parameter",
        ),
        "embedded jwk header": (
            idp.token(header={"jwk": idp.jwks()["keys"][0]}),
            "forbidden parameter",
        ),
        "tampered claims": (_tamper(idp.token(), idp.token(sub="mallory")), "signature"),
        "not a JWS": ("abc.def", "compact JWS"),
    }


def _tamper(token: str, other: str) -> str:
    """The claims of `other` under the header and signature of `token`."""
    header, _payload, signature = token.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


@pytest.mark.parametrize("case", list(_rejections(TestIdp()).keys()))
async def test_bad_tokens_are_refused_with_the_reason_logged_not_the_token(
    case: str, idp: TestIdp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = file_verifier(idp, tmp_path)
    token, reason = _rejections(idp)[case]
    caplog.set_level(logging.INFO, logger="connector.identity.oidc")
    with pytest.raises(UnauthorizedError, match=reason):
        await verifier.verify(f"Bearer {token}")
    assert "rejected" in caplog.text
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in json.dumps(record.__dict__, default=str)


async def test_missing_or_non_bearer_authorization_is_refused(idp: TestIdp, tmp_path: Path) -> None:
    verifier = file_verifier(idp, tmp_path)
    for header in (None, "", "Bearer ", "Basic YWxpY2U6cHc=", f"Token {idp.token()}"):
        with pytest.raises(UnauthorizedError):
            await verifier.verify(header)
    with pytest.raises(UnauthorizedError, match="too large"):
        await verifier.verify("Bearer " + "a" * 9000)


async def test_required_role_is_read_from_a_dotted_claim(idp: TestIdp, tmp_path: Path) -> None:
    verifier = file_verifier(
        idp, tmp_path, required_role="connector-admin", roles_claim="realm_access.roles"
    )
    assert await verifier.verify(f"Bearer {idp.token()}") == "alice"
    for claims in ({"realm_access": {"roles": ["viewer"]}}, {"realm_access": None}):
        with pytest.raises(UnauthorizedError, match="role"):
            await verifier.verify(f"Bearer {idp.token(**claims)}")


async def test_algorithm_allow_list_is_enforced(idp: TestIdp, tmp_path: Path) -> None:
    verifier = file_verifier(idp, tmp_path, algorithms=["ES256"])
    assert await verifier.verify(f"Bearer {idp.token('ec-1')}") == "alice"
    with pytest.raises(UnauthorizedError, match="algorithm not allowed"):
        await verifier.verify(f"Bearer {idp.token('rsa-1')}")


def test_jwks_file_problems_are_reported(idp: TestIdp, tmp_path: Path) -> None:
    with pytest.raises(JwksError, match="cannot read"):
        load_jwks_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(JwksError, match="JSON"):
        load_jwks_file(bad)
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [idp.keys["ec-1"].as_dict(private=True)]}))
    with pytest.raises(JwksError, match="no usable"):  # private keys are never used
        load_jwks_file(private)
    mixed = tmp_path / "mixed.json"
    mixed.write_text(
        json.dumps(
            {
                "keys": [
                    {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                    {**idp.jwks()["keys"][0], "use": "enc", "kid": "enc"},
                    idp.jwks()["keys"][0],
                ]
            }
        )
    )
    assert [e.kid for e in load_jwks_file(mixed)] == ["ec-1"]


# --- JWKS URL (guarded client, loopback server) -------------------------------------------------


async def test_valid_token_admitted_with_a_jwks_url_and_the_jwks_is_cached(
    idp: TestIdp,
    loopback_server: LoopbackServer,
    spy_backend: SpyBackend,
    make_resolver: MakeResolver,
) -> None:
    url = serve_jwks(loopback_server, idp)
    clock = FakeMonotonic()
    async with guarded(spy_backend, make_resolver) as http:
        source = RemoteJwks(url, http, ttl=300, monotonic=clock)
        verifier = OidcVerifier(RULES, ["RS256", "ES256"], source, lambda: NOW)
        for kid in ("ec-1", "rsa-1", "ec-1"):
            assert await verifier.verify(f"Bearer {idp.token(kid)}") == "alice"
        assert source.fetches == 1
        clock.now += 301  # TTL over: fetched again
        assert await verifier.verify(f"Bearer {idp.token()}") == "alice"
        assert source.fetches == 2
    assert [r[1] for r in loopback_server.requests] == ["/jwks", "/jwks"]
    assert {host for host, _ in spy_backend.connects} == {"127.0.0.1"}


async def test_unknown_kid_refreshes_once_to_follow_key_rotation(
    idp: TestIdp,
    loopback_server: LoopbackServer,
    spy_backend: SpyBackend,
    make_resolver: MakeResolver,
) -> None:
    url = serve_jwks(loopback_server, idp)
    clock = FakeMonotonic()
    async with guarded(spy_backend, make_resolver) as http:
        source = RemoteJwks(url, http, ttl=300, monotonic=clock)
        verifier = OidcVerifier(RULES, ["ES256"], source, lambda: NOW)
        assert await verifier.verify(f"Bearer {idp.token()}") == "alice"
        clock.now += REFRESH_INTERVAL_SECONDS + 1
        idp.add("ec-2")  # the IdP rotates; our cached set does not know the key yet
        serve_jwks(loopback_server, idp)
        assert await verifier.verify(f"Bearer {idp.token('ec-2')}") == "alice"
        assert source.fetches == 2
        # Unknown kids cannot make us fetch more than once per interval.
        for _ in range(3):
            with pytest.raises(UnauthorizedError, match="no key"):
                await verifier.verify(f"Bearer {idp.token('ec-2', header={'kid': 'nope'})}")
        assert source.fetches == 2


async def test_foreign_issuer_never_triggers_a_fetch(
    idp: TestIdp,
    loopback_server: LoopbackServer,
    spy_backend: SpyBackend,
    make_resolver: MakeResolver,
) -> None:
    url = serve_jwks(loopback_server, idp)
    async with guarded(spy_backend, make_resolver) as http:
        source = RemoteJwks(url, http, ttl=300)
        verifier = OidcVerifier(RULES, ["ES256"], source, lambda: NOW)
        with pytest.raises(UnauthorizedError):
            await verifier.verify(f"Bearer {idp.token(iss='https://evil.example')}")
    assert source.fetches == 0
    assert spy_backend.connects == []


async def test_jwks_url_refused_by_the_ssrf_guard_is_unavailable_without_connecting(
    idp: TestIdp,
    loopback_server: LoopbackServer,
    spy_backend: SpyBackend,
    make_resolver: MakeResolver,
) -> None:
    url = serve_jwks(loopback_server, idp)
    async with guarded(spy_backend, make_resolver, OutboundConfig(allow_http=True)) as http:
        verifier = OidcVerifier(RULES, ["ES256"], RemoteJwks(url, http, ttl=300), lambda: NOW)
        with pytest.raises(UnavailableError):
            await verifier.verify(f"Bearer {idp.token()}")
    assert spy_backend.connects == []
    assert loopback_server.requests == []


async def test_failed_refresh_keeps_the_previous_keys(
    idp: TestIdp,
    loopback_server: LoopbackServer,
    spy_backend: SpyBackend,
    make_resolver: MakeResolver,
) -> None:
    url = serve_jwks(loopback_server, idp)
    clock = FakeMonotonic()
    async with guarded(spy_backend, make_resolver) as http:
        source = RemoteJwks(url, http, ttl=60, monotonic=clock)
        verifier = OidcVerifier(RULES, ["ES256"], source, lambda: NOW)
        assert await verifier.verify(f"Bearer {idp.token()}") == "alice"
        serve_jwks(loopback_server, idp, status=500)
        clock.now += 61
        assert await verifier.verify(f"Bearer {idp.token()}") == "alice"  # stale but known
        assert source.fetches == 2
        clock.now += 10  # within the back-off: no new attempt
        assert await verifier.verify(f"Bearer {idp.token()}") == "alice"
        assert source.fetches == 2


async def test_no_jwks_at_all_is_unavailable_and_backs_off(
    idp: TestIdp,
    loopback_server: LoopbackServer,
    spy_backend: SpyBackend,
    make_resolver: MakeResolver,
) -> None:
    url = serve_jwks(loopback_server, idp, status=503)
    clock = FakeMonotonic()
    async with guarded(spy_backend, make_resolver) as http:
        source = RemoteJwks(url, http, ttl=60, monotonic=clock)
        verifier = OidcVerifier(RULES, ["ES256"], source, lambda: NOW)
        for _ in range(3):
            with pytest.raises(UnavailableError):
                await verifier.verify(f"Bearer {idp.token()}")
        assert source.fetches == 1
        serve_jwks(loopback_server, idp)
        clock.now += timedelta(seconds=31).total_seconds()
        assert await verifier.verify(f"Bearer {idp.token()}") == "alice"
