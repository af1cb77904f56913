"""Issue 20's "Done when": two of our connectors in the `dcp` profile and the development issuer
(`connector issuer serve`), all on loopback, no test doubles.

Each connector obtains its MembershipCredential through its own credential request workflow
(decision 0023) from the issuer (decision 0024); the provider's verifier (decision 0022) reads
the consumer's credentials from the consumer's Credential Service. A members-only policy refuses
the consumer while the issuer does not know it, admits it (catalog, negotiation FINALIZED on
both sides, an HTTP pull through the data plane) once it holds the credential, and refuses it
again within the status list's validity once the issuer revoked the credential; the refusals
are TERMINATED with the reason in the provider's record (`credential_failures = policy`). The
renewal Schedule renews the provider's credential with the same issuer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow

from connector.temporal.client import connect
from tests.dcp_space import MEMBERS_POLICY, DcpSpace, dcp_space, wait_request
from tests.e2e.transfer_helpers import agreement_for, edr, pull, random_file, start_transfer
from tests.twoconn import OPEN_POLICY, Connector, catalog_offer, publish_offer
from workflows import names
from workflows.credential_contracts import RenewalResult

pytestmark = [pytest.mark.e2e, pytest.mark.workflow]

# The issuer signs its status list valid for this long; the provider would keep a list for its
# default 300 s (identity.dcp.status_list_ttl_seconds) but never past the list's `exp`.
STATUS_TTL = 3
PRESENTATION_CACHE = 1
MEMBERS_ASSET = "members-data"  # access and contract policy: members only
MEMBERS_FILE = "members.bin"
LISTED_ASSET = "listed-for-all"  # listed for everybody, contract: members only
RENEWAL_WINDOW = 400 * 24 * 3600  # the issuer's credentials are valid 365 days


@pytest.fixture(scope="module")
async def space(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[DcpSpace]:
    async with dcp_space(
        pg_server_url,
        redis_url,
        temporal_address,
        tmp_path_factory.mktemp("dcp-space"),
        status_ttl=STATUS_TTL,
        provider_dcp={
            "credential_failures": "policy",
            "presentation_cache_seconds": PRESENTATION_CACHE,
        },
        provider_credentials={"renewal_window_seconds": RENEWAL_WINDOW},
        provider_dataplane="inproc",
    ) as space:
        # The consumer verifies the provider too (every DSP message it receives), so the
        # provider is a member from the start.
        await space.join(space.provider)
        provider = space.provider
        for path, body in (
            ("/policies", {"id": OPEN_POLICY["@id"], "policy": OPEN_POLICY}),
            ("/policies", {"id": MEMBERS_POLICY["@id"], "policy": MEMBERS_POLICY}),
            (
                "/assets",
                {
                    "id": LISTED_ASSET,
                    "properties": {"name": LISTED_ASSET},
                    "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                    "distributions": ["HttpData-PULL"],
                },
            ),
            (
                "/offers",
                {
                    "id": f"offer-{LISTED_ASSET}",
                    "assetSelector": [LISTED_ASSET],
                    "accessPolicyId": OPEN_POLICY["@id"],
                    "contractPolicyId": MEMBERS_POLICY["@id"],
                },
            ),
        ):
            resp = await provider.post(path, body)
            assert resp.status_code == 201, resp.text
        await publish_offer(
            provider,
            MEMBERS_ASSET,
            MEMBERS_POLICY,
            data_address={"type": "file", "path": MEMBERS_FILE},
            distributions=["HttpData-PULL"],
        )
        yield space


async def datasets(consumer: Connector, provider: Connector) -> set[str]:
    resp = await consumer.post(
        "/catalog/request", {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did}
    )
    assert resp.status_code == 200, resp.text
    raw = resp.json().get("dataset", [])
    return {d["@id"] for d in (raw if isinstance(raw, list) else [raw])}


async def refused_negotiation(space: DcpSpace) -> Any:
    """The consumer asks for the listed dataset's members-only contract; the provider's record
    of the negotiation, which must end TERMINATED."""
    consumer, provider = space.consumer, space.provider
    offer = await catalog_offer(consumer, provider, LISTED_ASSET)
    started = await consumer.post(
        "/negotiations",
        {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer},
    )
    assert started.status_code == 201, started.text
    ours = await consumer.wait_state(started.json()["id"], {"FINALIZED", "TERMINATED"}, 60)
    assert ours["state"] == "TERMINATED", ours
    theirs = await provider.wait_state(ours["providerPid"], {"FINALIZED", "TERMINATED"}, 60)
    assert theirs["state"] == "TERMINATED", theirs
    assert theirs["termination"]["code"] == "policy_denied", theirs
    return theirs


async def test_non_member_member_and_revoked_member(space: DcpSpace) -> None:
    consumer, provider = space.consumer, space.provider

    # 1. Not registered with the issuer: the issuer refuses the request, nothing is held, the
    #    members' dataset is not listed and the members-only contract is refused.
    rejected = await space.request_membership(consumer)
    assert rejected["status"] == "REJECTED", rejected
    assert "403" in rejected["error"], rejected
    assert (await consumer.get("/credentials")).json()["items"] == []
    assert await datasets(consumer, provider) == {LISTED_ASSET}
    record = await refused_negotiation(space)
    reasons = " ".join(record["termination"]["reason"])
    assert "MembershipCredential" in reasons, record

    # 2. A member: registered, credential issued through the request workflow and written to
    #    the consumer's Storage API; the provider reads it from the consumer's Credential Service.
    credential_id = await space.join(consumer)
    deadline = time.monotonic() + PRESENTATION_CACHE + 10
    while MEMBERS_ASSET not in await datasets(consumer, provider):
        assert time.monotonic() < deadline, "the member never saw the members' dataset"
        await asyncio.sleep(0.2)
    base = provider.settings.dataplane.file_base_path
    assert base is not None
    digest = random_file(base / MEMBERS_FILE, 256 * 1024)
    agreement_id = await agreement_for(
        provider,
        consumer,
        MEMBERS_ASSET,
        data_address={"type": "file", "path": MEMBERS_FILE},
        distributions=["HttpData-PULL"],
        policy=MEMBERS_POLICY,
    )
    agreement = (await provider.get(f"/agreements/{agreement_id}")).json()
    assert (agreement["role"], agreement["consumerId"]) == ("provider", consumer.did), agreement
    transfer_id = await start_transfer(consumer, provider, agreement_id)
    await consumer.wait_transfer(transfer_id, {"STARTED"}, 60)
    token = await edr(consumer, transfer_id)
    status, received, size = await pull(token["endpoint"], token["authorization"])
    assert (status, received, size) == (200, digest, 256 * 1024)

    # 3. Revoked (`connector issuer revoke`): within the status list's validity plus the
    #    presentation cache the provider sees it, and refuses with the reason on its record.
    assert credential_id in space.revoke(credential_id)
    revoked_at = time.monotonic()
    # Two seconds of slack for the catalog round trip on a loaded machine.
    bound = STATUS_TTL + PRESENTATION_CACHE + 2
    while MEMBERS_ASSET in await datasets(consumer, provider):
        took = time.monotonic() - revoked_at
        assert took <= bound, f"still admitted {took:.1f} s after the revocation"
        await asyncio.sleep(0.2)
    record = await refused_negotiation(space)
    reasons = " ".join(record["termination"]["reason"])
    assert "MembershipCredential" in reasons, record
    assert "revoked" in reasons, record


async def test_the_renewal_schedule_renews_with_the_dev_issuer(space: DcpSpace) -> None:
    from workers.credential_ops import ensure_renewal_schedule

    provider = space.provider
    original = space.held[provider.name]
    client = await connect(provider.settings)
    await ensure_renewal_schedule(client, provider.settings)
    handle = client.get_schedule_handle(names.SCHEDULE_CREDENTIAL_RENEWAL)
    try:
        await handle.trigger()
        deadline = time.monotonic() + 30
        while not (described := await handle.describe()).info.recent_actions:
            assert time.monotonic() < deadline, "the Schedule never started its workflow"
            await asyncio.sleep(0.2)
        (recent,) = described.info.recent_actions
        started = recent.action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        run = client.get_workflow_handle(started.workflow_id, result_type=RenewalResult)
        result = await run.result()
    finally:
        await handle.delete()
    (holder_pid,) = result.requested
    renewal = await wait_request(provider, holder_pid)
    assert renewal["status"] == "ISSUED", renewal
    assert renewal["renewalOf"] == original, renewal
    (renewed,) = renewal["credentialIds"]
    assert renewed != original
    held = {c["id"]: c for c in (await provider.get("/credentials")).json()["items"]}
    assert {original, renewed} <= set(held)
    assert held[renewed]["issuerDid"] == space.issuer.did
