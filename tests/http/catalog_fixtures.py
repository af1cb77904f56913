"""Fixtures and builders shared by the catalog HTTP tests (management API and DSP catalog).

Imported explicitly by the test modules (no conftest, so other tests/http modules stay free)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from connector.services.catalog import CatalogService
from connector.settings import load_settings
from connector.stores.migrate import migrate

KEY = "catalog-test-management-key-0123456789abcdef"
MGMT = "/management/v1"
HEADERS = {"X-Api-Key": KEY}


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    participant_id: str

    @property
    def service(self) -> CatalogService:
        service: CatalogService = self.app.state.catalog_service
        return service

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(MGMT + path, json=body, headers=HEADERS)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.client.put(MGMT + path, json=body, headers=HEADERS)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(MGMT + path, params=params, headers=HEADERS)

    async def delete(self, path: str) -> httpx.Response:
        return await self.client.delete(MGMT + path, headers=HEADERS)

    async def created(self, path: str, body: Any) -> dict[str, Any]:
        response = await self.post(path, body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


def settings_for(pg_url: str, redis_url: str, data_dir: Path, participant_id: str, **extra: Any):  # type: ignore[no-untyped-def]
    return load_settings(
        env={},
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={"address": "127.0.0.1:1"},
        management={"api_keys": [KEY]},
        identity={"profile": "dev", "allow_insecure": True, "participant_id": participant_id},
        data_dir=data_dir,
        **extra,
    )


async def migrated(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture
async def harness(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    await migrated(pg_url)
    participant_id = f"urn:test:provider:{uuid.uuid4().hex[:8]}"
    app = create_app(settings_for(pg_url, redis_url, tmp_path, participant_id))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # Build the service eagerly so tests can reach it through `harness.service`.
            await client.get(MGMT + "/assets", headers=HEADERS)
            yield Harness(app, client, participant_id)


def asset(asset_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "id": asset_id,
        "properties": {"name": asset_id, **properties},
        "dataAddress": {"type": "http", "baseUrl": f"https://data.example/{asset_id}"},
        "distributions": ["HttpData-PULL", "HttpData-PUSH"],
    }


def open_policy(policy_id: str) -> dict[str, Any]:
    return {"id": policy_id, "policy": {"@type": "Set", "permission": [{"action": "use"}]}}


def participant_policy(policy_id: str, participant: str) -> dict[str, Any]:
    constraint = {"leftOperand": "participantId", "operator": "eq", "rightOperand": participant}
    return {
        "id": policy_id,
        "policy": {"permission": [{"action": "use", "constraint": [constraint]}]},
    }


def claim_policy(policy_id: str, claim: str, value: str) -> dict[str, Any]:
    constraint = {"leftOperand": f"claim:{claim}", "operator": "eq", "rightOperand": value}
    return {
        "id": policy_id,
        "policy": {"permission": [{"action": "use", "constraint": [constraint]}]},
    }


def offer(offer_id: str, selector: list[Any], access: str, contract: str) -> dict[str, Any]:
    return {
        "id": offer_id,
        "assetSelector": selector,
        "accessPolicyId": access,
        "contractPolicyId": contract,
    }


def dev_token(participant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev:{participant}"}
