"""`connector issuer serve` over real loopback HTTP (decision 0024): the DID document through
the connector's resolver, credentials and the status list verified with joserfc under the
issuer's assertionMethod key, the Credential Issuance Protocol with real signed tokens, and the
write-back to a holder's Storage API that checks the issuer's own token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from joserfc.jws import extract_compact

from connector.core.errors import UnauthorizedError
from connector.core.issuer.statuslist import MIN_BITS, bit_is_set, decode_list
from connector.identity.did import select_key
from connector.identity.replay import MemoryReplayStore
from connector.identity.tokens import TokenIssuer, TokenVerifier, bearer
from connector.identity.trust import TrustConfig, TrustList
from tests.issuer.issuer_harness import (
    IssuerProcess,
    LoopbackHolder,
    init_issuer,
    issuer_cli,
    issuer_json,
    loopback_resolver,
    running_issuer,
    serving_issuer,
    utc_now,
)

DCP = "https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"
TTL = 45


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerProcess]:
    with running_issuer(tmp_path_factory.mktemp("issuer") / "data", status_ttl=TTL) as process:
        yield process


@pytest.fixture
async def holder(issuer: IssuerProcess) -> AsyncIterator[LoopbackHolder]:
    """A registered participant (added through the CLI while the issuer runs)."""
    async with LoopbackHolder(issuer.did).serving() as running:
        done = issuer_cli(issuer.data_dir, "participants", "add", running.did)
        assert done.returncode == 0, done.stderr
        yield running


async def verified(token: str, issuer_did: str) -> dict[str, Any]:
    """The claims of a JWT signed by a key under the issuer's `assertionMethod`."""
    header = extract_compact(token.encode()).protected
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert header["kid"].startswith(issuer_did + "#")
    document = await loopback_resolver("verifier").resolve(issuer_did)
    _vm, jwk = select_key(document, issuer_did, header["kid"], relationship="assertionMethod")
    public = ECKey.import_key({k: str(v) for k, v in jwk.items()})
    return dict(jwt.decode(token, public, algorithms=["ES256"]).claims)


def request_body(kind: str = "MembershipCredential", holder_pid: str = "h-1") -> dict[str, Any]:
    return {
        "@context": [DCP],
        "type": "CredentialRequestMessage",
        "holderPid": holder_pid,
        "credentials": [{"credentialType": kind, "format": "vc1_0_jwt"}],
    }


async def test_the_did_document_resolves_with_the_connectors_resolver(
    issuer: IssuerProcess,
) -> None:
    document = await loopback_resolver("verifier").resolve(issuer.did)
    assert document["id"] == issuer.did
    assert document["service"] == [
        {
            "id": f"{issuer.did}#issuer-service",
            "type": "IssuerService",
            "serviceEndpoint": issuer.url,
        }
    ]
    methods = document["verificationMethod"]
    assert isinstance(methods, list)
    assert len(methods) == 1
    assert methods[0]["type"] == "JsonWebKey2020"
    assert "d" not in methods[0]["publicKeyJwk"]
    for relationship in ("assertionMethod", "authentication", "capabilityInvocation"):
        assert document[relationship] == [methods[0]["id"]]


async def test_a_credential_verifies_and_revocation_sets_its_status_bit(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    done = issuer_cli(issuer.data_dir, "issue", holder.did)
    assert done.returncode == 0, done.stderr
    claims = await verified(done.stdout.strip(), issuer.did)
    vc = claims["vc"]
    assert claims["iss"] == issuer.did
    assert claims["sub"] == holder.did
    assert vc["credentialSubject"]["id"] == holder.did
    assert vc["credentialSubject"]["memberOf"] == "test-space"
    (registered,) = [
        p for p in issuer_json(issuer.data_dir, "participants", "list") if p["did"] == holder.did
    ]
    since = datetime.fromisoformat(str(registered["addedAt"])).replace(microsecond=0)
    assert vc["credentialSubject"]["since"] == since.strftime("%Y-%m-%dT%H:%M:%SZ")
    status = vc["credentialStatus"]
    index = int(status["statusListIndex"])
    assert status["id"] == f"{status['statusListCredential']}#{index}"

    async def revoked() -> bool:
        async with httpx.AsyncClient() as client:
            answer = await client.get(status["statusListCredential"])
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/vc+jwt"
        listed = await verified(answer.text, issuer.did)
        assert listed["exp"] - listed["iat"] == TTL
        assert listed["vc"]["type"] == ["VerifiableCredential", "StatusList2021Credential"]
        subject = listed["vc"]["credentialSubject"]
        assert subject["id"] == f"{status['statusListCredential']}#list"
        assert subject["statusPurpose"] == "revocation"
        bits = decode_list(subject["encodedList"])
        assert len(bits) * 8 >= MIN_BITS
        return bit_is_set(bits, index)

    assert not await revoked()
    assert issuer_cli(issuer.data_dir, "revoke", claims["jti"]).returncode == 0
    assert await revoked()


async def test_a_credential_request_is_accepted_and_written_to_the_holders_storage(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{issuer.url}/credentials",
            json=request_body(holder_pid="holder-pid-1"),
            headers={"Authorization": holder.token()},
        )
        assert answer.status_code == 201, answer.text
        location = answer.headers["location"]
        issuer_pid = location.rsplit("/", 1)[1]
        assert location == f"{issuer.url}/requests/{issuer_pid}"

        await holder.wait_for_deliveries()
        token_claims, message = holder.deliveries[0]
        credentials = message["credentials"]
        assert isinstance(credentials, list)
        assert token_claims["iss"] == token_claims["sub"] == issuer.did
        assert token_claims["aud"] == holder.did
        assert message["type"] == "CredentialMessage"
        assert message["status"] == "ISSUED"
        assert message["issuerPid"] == issuer_pid
        assert message["holderPid"] == "holder-pid-1"
        (delivered,) = credentials
        assert delivered["credentialType"] == "MembershipCredential"
        assert delivered["format"] == "vc1_0_jwt"
        vc_claims = await verified(delivered["payload"], issuer.did)
        assert vc_claims["sub"] == holder.did
        assert "MembershipCredential" in vc_claims["vc"]["type"]

        for pid in (issuer_pid, "holder-pid-1"):
            status = await client.get(
                f"{issuer.url}/requests/{pid}", headers={"Authorization": holder.token()}
            )
            assert status.status_code == 200
            assert status.json() == {
                "@context": [DCP],
                "type": "CredentialStatus",
                "issuerPid": issuer_pid,
                "holderPid": "holder-pid-1",
                "status": "ISSUED",
            }
    listed = {r["issuerPid"]: r for r in issuer_json(issuer.data_dir, "requests")}
    assert listed[issuer_pid]["status"] == "ISSUED"
    issued = [c for c in issuer_json(issuer.data_dir, "list") if c["holder"] == holder.did]
    assert [c["credentialId"] for c in issued] == [vc_claims["jti"]]


async def test_the_write_back_is_retried_until_the_holder_storage_accepts_it(
    issuer: IssuerProcess,
) -> None:
    async with LoopbackHolder(issuer.did, fail_first=2).serving() as flaky:
        assert issuer_cli(issuer.data_dir, "participants", "add", flaky.did).returncode == 0
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{issuer.url}/credentials",
                json=request_body(),
                headers={"Authorization": flaky.token()},
            )
        assert answer.status_code == 201, answer.text
        await flaky.wait_for_deliveries()
    assert flaky.answered == [503, 503, 200]
    issuer_pid = answer.headers["location"].rsplit("/", 1)[1]
    record = {r["issuerPid"]: r for r in issuer_json(issuer.data_dir, "requests")}[issuer_pid]
    assert record["status"] == "ISSUED"
    assert record["attempts"] == 3


async def test_an_unsupported_credential_type_is_accepted_and_rejected(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{issuer.url}/credentials",
            json=request_body(kind="DriverLicenceCredential"),
            headers={"Authorization": holder.token()},
        )
        assert answer.status_code == 201
        status = await client.get(
            answer.headers["location"], headers={"Authorization": holder.token()}
        )
    assert status.json()["status"] == "REJECTED"
    assert holder.deliveries == []


async def test_a_non_participant_is_refused_with_403(issuer: IssuerProcess) -> None:
    async with LoopbackHolder(issuer.did).serving() as stranger, httpx.AsyncClient() as client:
        answer = await client.post(
            f"{issuer.url}/credentials",
            json=request_body(),
            headers={"Authorization": stranger.token()},
        )
    assert answer.status_code == 403
    assert answer.json()["type"] == "forbidden"
    assert all(r["holder"] != stranger.did for r in issuer_json(issuer.data_dir, "requests"))


async def test_a_malformed_message_is_a_bad_request(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    async with httpx.AsyncClient() as client:
        no_pid = request_body()
        del no_pid["holderPid"]
        missing = await client.post(
            f"{issuer.url}/credentials", json=no_pid, headers={"Authorization": holder.token()}
        )
        garbage = await client.post(
            f"{issuer.url}/credentials",
            content=b"{not json",
            headers={"Authorization": holder.token(), "Content-Type": "application/json"},
        )
    assert missing.status_code == 400
    assert "holderPid" in missing.json()["detail"]
    assert garbage.status_code == 400


async def test_tokens_for_another_audience_replayed_or_missing_are_refused(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    url = f"{issuer.url}/credentials"
    async with httpx.AsyncClient() as client:
        wrong_aud = await client.post(
            url, json=request_body(), headers={"Authorization": holder.token("did:web:elsewhere")}
        )
        token = holder.token()
        first = await client.post(url, json=request_body(), headers={"Authorization": token})
        replayed = await client.post(url, json=request_body(), headers={"Authorization": token})
        missing = await client.post(url, json=request_body())
    assert wrong_aud.status_code == 401
    assert wrong_aud.json()["detail"] == "not authenticated"  # the reason stays in the log
    assert first.status_code == 201
    assert replayed.status_code == 401
    assert missing.status_code == 401


async def test_a_token_signed_by_another_key_is_refused(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    impostor = LoopbackHolder(issuer.did, port=holder.port)  # same DID, a key it never published
    forged = TokenIssuer(impostor.ring, holder.did, clock=utc_now, lifetime=timedelta(minutes=1))
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{issuer.url}/credentials",
            json=request_body(),
            headers={"Authorization": bearer(forged.issue(issuer.did))},
        )
    assert answer.status_code == 401


async def test_a_holder_cannot_read_another_holders_request(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    async with LoopbackHolder(issuer.did).serving() as other:
        assert issuer_cli(issuer.data_dir, "participants", "add", other.did).returncode == 0
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{issuer.url}/credentials",
                json=request_body(),
                headers={"Authorization": holder.token()},
            )
            location = answer.headers["location"]
            peek = await client.get(location, headers={"Authorization": other.token()})
            own = await client.get(location, headers={"Authorization": holder.token()})
    assert peek.status_code == 404
    assert own.status_code == 200


async def test_an_unknown_status_list_is_404(issuer: IssuerProcess) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{issuer.url}/status/nope")
    assert answer.status_code == 404


async def test_an_undelivered_request_is_delivered_after_the_issuer_restarts(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "restarting"
    did, port = init_issuer(data_dir)
    async with LoopbackHolder(did, fail_first=1_000).serving() as holder:
        assert issuer_cli(data_dir, "participants", "add", holder.did).returncode == 0
        with serving_issuer(data_dir, did, port) as issuer:
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    f"{issuer.url}/credentials",
                    json=request_body(),
                    headers={"Authorization": holder.token()},
                )
            assert answer.status_code == 201
            while not holder.answered:  # the first write-back reached the (failing) holder
                await asyncio.sleep(0.05)
        issuer_pid = answer.headers["location"].rsplit("/", 1)[1]
        before = {r["issuerPid"]: r for r in issuer_json(data_dir, "requests")}[issuer_pid]
        assert before["status"] == "RECEIVED"
        (credential,) = issuer_json(data_dir, "list")

        holder.fail_first = 0
        with serving_issuer(data_dir, did, port):
            await holder.wait_for_deliveries()
            _claims, message = holder.deliveries[0]
            credentials = message["credentials"]
            assert isinstance(credentials, list)
            delivered = await verified(credentials[0]["payload"], did)
        after = {r["issuerPid"]: r for r in issuer_json(data_dir, "requests")}[issuer_pid]
    assert after["status"] == "ISSUED"
    assert message["issuerPid"] == issuer_pid
    assert delivered["jti"] == credential["credentialId"]  # the same credential, not a new one
    assert len(issuer_json(data_dir, "list")) == 1


async def test_an_issued_membership_credential_admits_its_holder_at_a_connector(
    issuer: IssuerProcess, holder: LoopbackHolder
) -> None:
    """A connector that trusts the issuer (identity.trust.trusted_issuers) and does not list the
    holder accepts the holder's token carrying the credential, and not another participant's
    token carrying the same credential."""
    done = issuer_cli(issuer.data_dir, "issue", holder.did)
    assert done.returncode == 0, done.stderr
    credential = done.stdout.strip()
    connector_did = "did:web:127.0.0.1%3A1"  # the verifying connector (never contacted)
    trust = TrustList.from_config(
        TrustConfig(trusted_issuers={issuer.did: ("MembershipCredential",)})
    )
    verifier = TokenVerifier(
        loopback_resolver("connector"), MemoryReplayStore(), trust, connector_did, utc_now
    )
    token = holder.tokens.issue(connector_did, extra_claims={"membership": credential})
    caller = await verifier.verify(bearer(token))
    assert caller.did == holder.did

    async with LoopbackHolder(issuer.did).serving() as other:
        borrowed = other.tokens.issue(connector_did, extra_claims={"membership": credential})
        with pytest.raises(UnauthorizedError):
            await verifier.verify(bearer(borrowed))  # a credential about somebody else


async def test_after_a_key_rotation_old_and_new_credentials_both_verify(tmp_path: Path) -> None:
    data_dir = tmp_path / "rotating"
    holder = "did:web:127.0.0.1%3A7399"
    did, port = init_issuer(data_dir)
    assert issuer_cli(data_dir, "participants", "add", holder).returncode == 0
    old = issuer_cli(data_dir, "issue", holder).stdout.strip()
    rotated = issuer_cli(data_dir, "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "still published" in rotated.stdout
    new = issuer_cli(data_dir, "issue", holder).stdout.strip()
    old_kid = extract_compact(old.encode()).protected["kid"]
    new_kid = extract_compact(new.encode()).protected["kid"]
    assert old_kid != new_kid
    assert new_kid in rotated.stdout
    with serving_issuer(data_dir, did, port):
        document = await loopback_resolver("verifier").resolve(did)
        methods = document["assertionMethod"]
        assert isinstance(methods, list)
        assert set(methods) == {old_kid, new_kid}
        assert (await verified(old, did))["sub"] == holder
        assert (await verified(new, did))["sub"] == holder
