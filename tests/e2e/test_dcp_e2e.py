"""A provider in the `dcp` profile (decision 0022) against holders with real credentials: a policy
requiring a membership credential admits a member and refuses a non-member and a revoked member,
in a catalog request and in a negotiation, with the reason in the provider's decision record.

The provider is a real control plane with its workers on loopback; the holders, their issuer
and its status list are `tests/dcp_holder.py` (real keys, real HTTP). `credential_failures =
policy` so a revoked credential reaches the policy (with `refuse` it is a 401, tested in
tests/adapters/identity/test_dcp_verifier.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from connector.core.dsp import DSP_CONTEXT_2025_1
from connector.runtime.embedded import free_port
from tests.dcp_holder import DcpWorld, Holder, dcp_world
from tests.scripted_peer import new_pid, request_message
from tests.twoconn import OPEN_POLICY, Connector, running_connector

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
MEMBERS_POLICY_ID = "members-only"
MEMBERS_POLICY: dict[str, Any] = {
    "@id": MEMBERS_POLICY_ID,
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": "MembershipCredential",
                    "operator": "eq",
                    "rightOperand": "active",
                }
            ],
        }
    ],
}
MEMBERS_ASSET = "members-catalog"
OPEN_ASSET = "open-catalog-members-contract"


@dataclass
class World:
    provider: Connector
    dcp: DcpWorld
    member: Holder
    non_member: Holder
    revoked: Holder


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("dcp")
    async with dcp_world() as dcp:
        member = dcp.holder("member")
        dcp.credential(member)
        non_member = dcp.holder("non-member")
        revoked = dcp.holder("revoked")
        dcp.revoked.add(dcp.credential(revoked))
        async with running_connector(
            "provider",
            free_port(),
            "did:web:nobody.example",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            data_dir=tmp / "provider",
            identity={
                "profile": "dcp",
                "trust": {"trusted_issuers": {dcp.issuer.did: ["MembershipCredential"]}},
                "dcp": {"credential_failures": "policy"},
            },
        ) as provider:
            for path, body in (
                ("/policies", {"id": OPEN_POLICY["@id"], "policy": OPEN_POLICY}),
                ("/policies", {"id": MEMBERS_POLICY["@id"], "policy": MEMBERS_POLICY}),
                *_published(MEMBERS_ASSET, MEMBERS_POLICY_ID),
                *_published(OPEN_ASSET, str(OPEN_POLICY["@id"])),
            ):
                resp = await provider.post(path, body)
                assert resp.status_code == 201, resp.text
            yield World(provider, dcp, member, non_member, revoked)


def _published(asset: str, access_policy: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "/assets",
            {
                "id": asset,
                "properties": {"name": asset},
                "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                "distributions": ["HttpData-PULL"],
            },
        ),
        (
            "/offers",
            {
                "id": f"offer-{asset}",
                "assetSelector": [asset],
                "accessPolicyId": access_policy,
                "contractPolicyId": MEMBERS_POLICY_ID,
            },
        ),
    ]


async def dsp_post(world: World, holder: Holder, path: str, body: Any) -> httpx.Response:
    headers = {"Authorization": holder.authorization(world.provider.did)}
    return await world.provider.http.post(f"{DSP}{path}", json=body, headers=headers)


async def catalog(world: World, holder: Holder) -> dict[str, dict[str, Any]]:
    """Dataset id -> its Offer (with target), as `holder` sees the provider's catalog."""
    resp = await dsp_post(
        world,
        holder,
        "/catalog/request",
        {"@context": [DSP_CONTEXT_2025_1], "@type": "CatalogRequestMessage"},
    )
    assert resp.status_code == 200, resp.text
    raw = resp.json().get("dataset", [])
    offers = {}
    for dataset in raw if isinstance(raw, list) else [raw]:
        policies = dataset["hasPolicy"]
        offer = dict(policies[0] if isinstance(policies, list) else policies)
        offer.update({"@type": "Offer", "target": dataset["@id"]})
        offers[dataset["@id"]] = offer
    return offers


def claims_of(compact: str) -> dict[str, Any]:
    part = compact.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def test_the_version_document_advertises_dcp(world: World) -> None:
    resp = await world.provider.http.get("/.well-known/dspace-version")
    assert resp.status_code == 200
    for version in resp.json()["protocolVersions"]:
        assert version["auth"] == {
            "protocol": "DCP",
            "version": "1.0",
            "profile": ["vc11-sl2021/jwt"],
        }


async def test_the_members_dataset_is_listed_for_members_only(world: World) -> None:
    assert set(await catalog(world, world.member)) == {MEMBERS_ASSET, OPEN_ASSET}
    assert set(await catalog(world, world.non_member)) == {OPEN_ASSET}
    assert set(await catalog(world, world.revoked)) == {OPEN_ASSET}
    assert world.member.queries, "the provider asked the member's Credential Service"


async def test_a_caller_without_a_token_claim_is_refused(world: World) -> None:
    headers = {"Authorization": world.member.authorization(world.provider.did, token=None)}
    resp = await world.provider.http.post(
        f"{DSP}/catalog/request",
        json={"@context": [DSP_CONTEXT_2025_1], "@type": "CatalogRequestMessage"},
        headers=headers,
    )
    assert resp.status_code == 401, resp.text
    assert "token" not in resp.text.lower().replace("not authenticated", "")


async def negotiate(world: World, holder: Holder) -> tuple[str, dict[str, Any]]:
    """`holder` requests the open dataset's offer (members-only contract); the provider's
    negotiation id and its final management view."""
    offer = (await catalog(world, world.member))[OPEN_ASSET]
    consumer_pid = new_pid()
    resp = await dsp_post(
        world,
        holder,
        "/negotiations/request",
        request_message(offer, consumer_pid, callback_address=world.dcp.callback),
    )
    assert resp.status_code == 201, resp.text
    provider_pid = resp.json()["providerPid"]
    view = await world.provider.wait_state(provider_pid, {"AGREED", "TERMINATED"}, timeout=60)
    return provider_pid, view


async def test_a_member_gets_an_agreement(world: World) -> None:
    provider_pid, view = await negotiate(world, world.member)
    assert view["state"] == "AGREED", view
    agreement = [
        (path, auth)
        for path, auth, body in world.dcp.callbacks
        if body.get("@type") == "ContractAgreementMessage"
        and body.get("providerPid") == provider_pid
    ]
    assert agreement, world.dcp.callbacks
    # The provider's own outbound token carries its DCP access token for us.
    si = claims_of(agreement[0][1].removeprefix("Bearer "))
    access = claims_of(si["token"])
    assert si["iss"] == access["iss"] == access["aud"] == world.provider.did
    assert access["sub"] == si["aud"]
    assert access["scope"] == "org.eclipse.dspace.dcp.vc.type:MembershipCredential:read"


@pytest.mark.parametrize(
    ("who", "why"), [("non_member", "MembershipCredential"), ("revoked", "revoked")]
)
async def test_non_members_are_refused_with_the_reason_recorded(
    world: World, who: str, why: str
) -> None:
    _, view = await negotiate(world, getattr(world, who))
    assert view["state"] == "TERMINATED", view
    assert view["termination"]["code"] == "policy_denied", view
    reasons = " ".join(view["termination"]["reason"])
    assert "MembershipCredential" in reasons, view
    assert why in reasons, view


async def test_in_refuse_mode_a_revoked_member_gets_the_generic_401(
    world: World,
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    async with running_connector(
        "provider",
        free_port(),
        "did:web:nobody.example",
        pg_server_url=pg_server_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        data_dir=tmp_path_factory.mktemp("dcp-refuse"),
        inproc_workers=False,
        identity={
            "profile": "dcp",
            "trust": {"trusted_issuers": {world.dcp.issuer.did: ["MembershipCredential"]}},
        },
    ) as strict:
        message = {"@context": [DSP_CONTEXT_2025_1], "@type": "CatalogRequestMessage"}
        for holder, status in ((world.member, 200), (world.revoked, 401), (world.non_member, 401)):
            resp = await strict.http.post(
                f"{DSP}/catalog/request",
                json=message,
                headers={"Authorization": holder.authorization(strict.did)},
            )
            assert resp.status_code == status, resp.text
            if status == 401:
                body = resp.json()
                assert body["@type"] == "CatalogError", body
                correlation = resp.headers["X-Correlation-Id"]
                assert body["reason"] == [f"not authenticated (correlation id {correlation})"]
                assert "revoked" not in resp.text
                assert "Membership" not in resp.text
