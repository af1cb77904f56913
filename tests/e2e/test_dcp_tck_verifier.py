"""The DCP TCK's verifier cases (PresentationFlowSection4Test / Section5Test; the list in
identity.md §1.7) against a running connector in the `dcp` profile, as the TCK drives one: its
"trigger endpoint" is our DSP catalog request, the holders are real (keys, DID documents, a
Credential Service answering presentation queries, an issuer with a StatusList2021 list:
`tests/dcp_holder.py`), all over HTTP on loopback.

`credential_failures = refuse` (the default, DCP 1.0) and neither presentations nor status lists
cached, since the TCK changes a holder's credentials between its tests (decision 0022). Every
rejection is the generic 401 `CatalogError` with a correlation id; the reason, logged with that
id, proves each request was refused for the intended cause.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connector.core.dsp import DSP_CONTEXT_2025_1
from connector.runtime.embedded import free_port
from tests.dcp_holder import DcpWorld, Holder, dcp_world
from tests.twoconn import Connector, running_connector

pytestmark = pytest.mark.e2e

MEMBERSHIP = "MembershipCredential"
QUALITY = "QualityFrameworkCredential"
CATALOG = "/dsp/2025-1/catalog/request"
MESSAGE = {"@context": [DSP_CONTEXT_2025_1], "@type": "CatalogRequestMessage"}


@dataclass
class Tck:
    verifier: Connector
    dcp: DcpWorld

    async def trigger(self, authorization: str | None) -> httpx.Response:
        headers = {} if authorization is None else {"Authorization": authorization}
        return await self.verifier.http.post(CATALOG, json=MESSAGE, headers=headers)


@pytest.fixture(scope="module")
async def tck(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Tck]:
    async with dcp_world() as dcp:
        trusted = {dcp.issuer.did: [MEMBERSHIP, QUALITY], dcp.other_issuer.did: [QUALITY]}
        async with running_connector(
            "verifier",
            free_port(),
            "did:web:nobody.example",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            data_dir=tmp_path_factory.mktemp("dcp-tck"),
            inproc_workers=False,
            identity={
                "profile": "dcp",
                "trust": {"trusted_issuers": trusted},
                "dcp": {"presentation_cache_seconds": 0, "status_list_ttl_seconds": 0},
            },
        ) as verifier:
            yield Tck(verifier, dcp)


def later(seconds: int) -> int:
    return int(datetime.now(UTC).timestamp()) + seconds


def member(tck: Tck, name: str) -> Holder:
    holder = tck.dcp.holder(name)
    tck.dcp.credential(holder)
    return holder


# Prepares a holder (named after the case) and returns the request's Authorization header.
Case = Callable[[Tck, str], str | None]


def si(**claims: Any) -> Case:
    """A member whose self-issued token is changed by `claims`."""
    return lambda tck, name: member(tck, name).authorization(tck.verifier.did, **claims)


def holding(**credential: Any) -> Case:
    """A holder whose only credential is issued with `credential`."""

    def case(tck: Tck, name: str) -> str:
        holder = tck.dcp.holder(name)
        args = dict(credential)
        if args.pop("other_issuer", False):
            args["issuer"] = tck.dcp.other_issuer
        if args.pop("about_someone_else", False):
            args["subject_id"] = f"{tck.dcp.root}:holders:victim"
        tck.dcp.credential(holder, **args)
        return holder.authorization(tck.verifier.did)

    return case


def patched_document(tck: Tck, name: str) -> str:
    holder = member(tck, name)
    holder.document_patch = {"id": f"{tck.dcp.root}:holders:someone-else"}
    return holder.authorization(tck.verifier.did)


# case -> (how the holder is prepared, the reason the connector logs)
CASES: dict[str, tuple[Case, str]] = {
    # Section 4: the self-issued ID token.
    "4-no-bearer": (
        lambda tck, n: member(tck, n).authorization(tck.verifier.did).removeprefix("Bearer "),
        "not a Bearer token",
    ),
    "4-iss-ne-sub": (si(sub="did:web:someone.else"), "'iss' and 'sub'"),
    "4-wrong-aud": (
        lambda tck, n: member(tck, n).authorization("did:web:another.verifier"),
        "'aud'",
    ),
    "4-sub-ne-did-document-id": (patched_document, "id does not match"),
    "4-nbf-in-the-future": (si(nbf=later(600)), "not yet valid"),
    "4-expired": (si(iat=later(-900), exp=later(-600)), "expired"),
    "4-no-token-claim": (si(token=None), "no 'token' claim"),
    # Section 5: the presentation and its credentials.
    "5-missing-credential": (
        holding(credential_type=QUALITY),
        "requested credentials missing: MembershipCredential",
    ),
    "5-holder-ne-credential-subject": (
        holding(about_someone_else=True),
        "not the presentation holder",
    ),
    "5-expired-vc": (
        holding(valid_from=timedelta(days=-30), valid_for=timedelta(days=1)),
        "is expired",
    ),
    "5-not-yet-valid-vc": (
        holding(valid_from=timedelta(days=1), valid_for=timedelta(days=30)),
        "is not-yet-valid",
    ),
    "5-issuer-trusted-for-another-type": (holding(other_issuer=True), "is untrusted-issuer"),
    "5-schema-violation": (
        holding(vc={"credentialSubject": []}),
        "no single credentialSubject",
    ),
}


def logged_reasons(caplog: pytest.LogCaptureFixture, response: httpx.Response) -> list[str]:
    correlation = response.headers["X-Correlation-Id"]
    return [
        str(getattr(r, "reason", ""))
        for r in caplog.records
        if getattr(r, "correlation_id", None) == correlation
    ]


def assert_generic_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["@type"] == "CatalogError", body
    correlation = response.headers["X-Correlation-Id"]
    assert body["reason"] == [f"not authenticated (correlation id {correlation})"]


async def test_a_member_is_admitted(tck: Tck) -> None:
    holder = member(tck, "member")
    assert (await tck.trigger(holder.authorization(tck.verifier.did))).status_code == 200
    assert len(holder.queries) == 1


@pytest.mark.parametrize("case", list(CASES))
async def test_the_tck_rejection_cases(
    tck: Tck, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    prepare, reason = CASES[case]
    authorization = prepare(tck, case)
    with caplog.at_level(logging.INFO, logger="connector.identity.tokens"):
        response = await tck.trigger(authorization)
    assert_generic_401(response)
    assert any(reason in logged for logged in logged_reasons(caplog, response)), logged_reasons(
        caplog, response
    )
    assert reason not in response.text


async def test_a_missing_authorization_header(tck: Tck) -> None:
    assert_generic_401(await tck.trigger(None))


async def test_a_reused_jti(tck: Tck, caplog: pytest.LogCaptureFixture) -> None:
    authorization = member(tck, "replayer").authorization(tck.verifier.did)
    assert (await tck.trigger(authorization)).status_code == 200
    with caplog.at_level(logging.INFO, logger="connector.identity.tokens"):
        response = await tck.trigger(authorization)
    assert_generic_401(response)
    assert any("replay" in logged for logged in logged_reasons(caplog, response))


async def test_a_revoked_vc(tck: Tck, caplog: pytest.LogCaptureFixture) -> None:
    holder = tck.dcp.holder("revoked")
    tck.dcp.revoked.add(tck.dcp.credential(holder))
    with caplog.at_level(logging.INFO, logger="connector.identity.tokens"):
        response = await tck.trigger(holder.authorization(tck.verifier.did))
    assert_generic_401(response)
    assert any("is revoked" in logged for logged in logged_reasons(caplog, response))


async def test_extra_credentials_are_allowed(tck: Tck) -> None:
    """TCK 5.4.2: more than the requested credentials is no reason to refuse."""
    holder = member(tck, "extra")
    tck.dcp.credential(holder, QUALITY)
    # The holder presents its QualityFrameworkCredential too, although only the membership
    # was asked for.
    holder.vp_object = {"verifiableCredential": list(holder.credentials)}
    assert (await tck.trigger(holder.authorization(tck.verifier.did))).status_code == 200
