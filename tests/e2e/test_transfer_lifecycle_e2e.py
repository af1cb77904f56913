"""Tokens follow the transfer: suspend revokes at once (also mid-pull), resume issues a new
token, terminate revokes it; push delivers a file to an HTTP sink; file addresses stay confined."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from tests.e2e.transfer_helpers import (
    MIB,
    Sink,
    agreement_for,
    edr,
    pull,
    random_file,
    schema_problems,
    start_transfer,
    write_file,
)
from tests.twoconn import connector_pair

pytestmark = pytest.mark.e2e


async def test_suspend_mid_pull_resume_terminate(
    pg_server_url, redis_url, temporal_address, tmp_path
):
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        sha = write_file(base / "big.bin", 64 * MIB)
        agreement_id = await agreement_for(
            provider, consumer, "big", data_address={"type": "file", "path": "big.bin"}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        assert (await consumer.wait_transfer(transfer_id, {"STARTED"}))["state"] == "STARTED"
        old = await edr(consumer, transfer_id)
        headers = {"Authorization": f"Bearer {old['authorization']}"}

        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("GET", old["endpoint"], headers=headers) as resp:
                assert resp.status_code == 200
                stream = resp.aiter_raw(MIB)
                await anext(stream)  # the pull is under way
                suspended = await consumer.post(f"/transfers/{transfer_id}/suspend", {})
                assert suspended.status_code == 200, suspended.text
                assert suspended.json()["state"] == "SUSPENDED"
                # The old token is refused at once...
                again = await client.get(old["endpoint"], headers=headers)
                assert again.status_code == 403, again.text
                # ...and the running pull is cut short.
                with pytest.raises(httpx.HTTPError):
                    async for _ in stream:
                        pass
            provider_side = await provider.wait_transfer(
                suspended.json()["providerPid"], {"SUSPENDED"}
            )
            assert provider_side["state"] == "SUSPENDED"
            assert (await consumer.get(f"/transfers/{transfer_id}/edr")).status_code == 409

            resumed = await consumer.post(f"/transfers/{transfer_id}/resume", {})
            assert resumed.status_code == 200, resumed.text
            for _ in range(100):  # the provider's start with the new address follows the ack
                new = await edr(consumer, transfer_id)
                if new["authorization"] != old["authorization"]:
                    break
                await asyncio.sleep(0.05)
            assert new["authorization"] != old["authorization"]
            assert (await client.get(old["endpoint"], headers=headers)).status_code == 403
            ranged = await client.get(
                new["endpoint"],
                headers={"Authorization": f"Bearer {new['authorization']}", "Range": "bytes=10-19"},
            )
            assert ranged.status_code == 206
            assert ranged.headers["content-range"] == f"bytes 10-19/{64 * MIB}"
            assert len(ranged.content) == 10

            terminated = await consumer.post(
                f"/transfers/{transfer_id}/terminate", {"reason": "done"}
            )
            assert terminated.status_code == 200, terminated.text
            assert terminated.json()["state"] == "TERMINATED"
            revoked = await client.get(
                new["endpoint"], headers={"Authorization": f"Bearer {new['authorization']}"}
            )
            assert revoked.status_code == 403
        assert sha
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        assert schema_problems(exchanged) == []


async def test_provider_suspends_and_resumes_a_pull(
    pg_server_url, redis_url, temporal_address, tmp_path
):
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        sha = random_file(base / "f.bin", MIB)
        agreement_id = await agreement_for(
            provider, consumer, "f", data_address={"type": "file", "path": "f.bin"}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        started = await consumer.wait_transfer(transfer_id, {"STARTED"})
        old = await edr(consumer, transfer_id)
        provider_pid = started["providerPid"]
        resp = await provider.post(f"/transfers/{provider_pid}/suspend", {"reason": "maintenance"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "SUSPENDED"
        assert (await pull(old["endpoint"], old["authorization"]))[0] == 403
        await consumer.wait_transfer(transfer_id, {"SUSPENDED"})
        resp = await provider.post(f"/transfers/{provider_pid}/resume", {})
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "STARTED"
        await consumer.wait_transfer(transfer_id, {"STARTED"})
        new = await edr(consumer, transfer_id)
        assert new["authorization"] != old["authorization"]
        assert (await pull(old["endpoint"], old["authorization"]))[0] == 403
        status, digest, _ = await pull(new["endpoint"], new["authorization"])
        assert (status, digest) == (200, sha)
        done = await consumer.wait_transfer(transfer_id, {"COMPLETED"})
        assert done["state"] == "COMPLETED"


async def test_push_to_an_http_sink(pg_server_url, redis_url, temporal_address, tmp_path):
    async with (
        Sink() as sink,
        connector_pair(
            pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
        ) as (provider, consumer),
    ):
        base = provider.settings.dataplane.file_base_path
        sha = random_file(base / "push.bin", 5 * MIB + 7)
        agreement_id = await agreement_for(
            provider, consumer, "p", data_address={"type": "file", "path": "push.bin"}
        )
        transfer_id = await start_transfer(
            consumer,
            provider,
            agreement_id,
            "HttpData-PUSH",
            dataDestination=sink.address("out.bin"),
        )
        done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
        assert done["state"] == "COMPLETED", done
        assert sink.received["out.bin"] == (sha, 5 * MIB + 7)
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        assert schema_problems(exchanged) == []


async def test_file_outside_the_base_path_is_refused(
    pg_server_url, redis_url, temporal_address, tmp_path
):
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        secret = tmp_path / "secret.txt"
        secret.write_text("not for you")
        os.symlink(secret, base / "link.txt")
        for asset_id, path in (("dots", "../secret.txt"), ("link", "link.txt")):
            agreement_id = await agreement_for(
                provider, consumer, asset_id, data_address={"type": "file", "path": path}
            )
            transfer_id = await start_transfer(consumer, provider, agreement_id)
            done = await consumer.wait_transfer(transfer_id, {"STARTED", "TERMINATED"})
            assert done["state"] == "TERMINATED", done
            assert done["stateReason"]["code"] == "flow_failed"
