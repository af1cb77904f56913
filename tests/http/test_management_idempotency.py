"""`Idempotency-Key` on the catalog's creating POSTs (assets, policies, offers) on real Postgres
and Redis: replayed answers, 422 for another body, concurrent requests, expiry, scopes, a key
left unanswered by a crashed control plane, and header validation (decision 0009)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.idempotency import purge_periodically
from connector.settings import load_settings
from tests.http.catalog_fixtures import (
    HEADERS,
    KEY,
    MGMT,
    Harness,
    asset,
    migrated,
    offer,
    open_policy,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def keyed(key: str, headers: dict[str, str] = HEADERS) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def post(h: Harness, path: str, body: Any, key: str) -> httpx.Response:
    return await h.client.post(MGMT + path, json=body, headers=keyed(key))


async def total(h: Harness, kind: str) -> int:
    count: int = (await h.get(f"/{kind}")).json()["total"]
    return count


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def sql(h: Harness, statement: str) -> None:
    conn = await asyncpg.connect(h.app.state.settings.database.url.get_secret_value())
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("assets", lambda: asset("a1")),
        ("policies", lambda: open_policy("p1")),
        ("offers", lambda: offer("o1", ["a0"], "p0", "p0")),
    ],
)
async def test_same_key_and_body_answers_the_first_answer_again(
    harness: Harness, kind: str, make: Callable[[], dict[str, Any]]
) -> None:
    h = harness
    await h.created("/assets", asset("a0"))
    await h.created("/policies", open_policy("p0"))
    before = await total(h, kind)

    first = await post(h, f"/{kind}", make(), "key-1")
    assert first.status_code == 201, first.text
    again = await post(h, f"/{kind}", make(), "key-1")
    assert again.status_code == 201, again.text
    assert again.content == first.content  # byte for byte
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await total(h, kind) == before + 1

    # Without the key the same POST is a second create: the id is taken.
    assert_problem(await h.post(f"/{kind}", make()), 409)


async def test_same_key_with_another_body_is_422(harness: Harness) -> None:
    h = harness
    assert (await post(h, "/assets", asset("a1"), "key-1")).status_code == 201
    body = assert_problem(await post(h, "/assets", asset("a2"), "key-1"), 422)
    assert "Idempotency-Key" in body["detail"]
    assert (await h.get("/assets/a2")).status_code == 404
    # Key order and whitespace are not a different body.
    reordered = dict(reversed(list(asset("a1").items())))
    assert (await post(h, "/assets", reordered, "key-1")).status_code == 201


async def test_keys_are_scoped_per_route(harness: Harness) -> None:
    h = harness
    assert (await post(h, "/assets", asset("a1"), "shared")).status_code == 201
    assert (await post(h, "/policies", open_policy("p1"), "shared")).status_code == 201
    assert await total(h, "policies") == 1


async def test_concurrent_requests_with_one_key_create_one_resource(harness: Harness) -> None:
    h = harness
    answers = await asyncio.gather(*(post(h, "/assets", asset("a1"), "key-1") for _ in range(8)))
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert await total(h, "assets") == 1


async def test_an_error_is_not_stored_and_the_retry_runs_again(harness: Harness) -> None:
    h = harness
    body = offer("o1", ["a1"], "p1", "p1")
    assert_problem(await post(h, "/offers", body, "key-1"), 422)  # unknown policy and asset
    await h.created("/assets", asset("a1"))
    await h.created("/policies", open_policy("p1"))
    created = await post(h, "/offers", body, "key-1")
    assert created.status_code == 201, created.text
    assert (await post(h, "/offers", body, "key-1")).json() == created.json()


async def test_an_expired_key_is_a_new_key(harness: Harness) -> None:
    h = harness
    assert (await post(h, "/assets", asset("a1"), "key-1")).status_code == 201
    assert_problem(await post(h, "/assets", asset("a2"), "key-1"), 422)
    await sql(h, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    # Neither replayed nor bound to the first body any more.
    assert (await post(h, "/assets", asset("a2"), "key-1")).status_code == 201
    assert await total(h, "assets") == 2


async def test_a_key_left_unanswered_by_a_crash_after_the_create_answers_the_resource(
    harness: Harness,
) -> None:
    h = harness
    first = await post(h, "/assets", asset("a1"), "key-1")
    assert first.status_code == 201
    # What a control plane killed after the INSERT but before storing the answer leaves behind.
    await sql(
        h,
        "UPDATE idempotency_keys SET status = NULL, response = NULL, "
        "leased_until = now() + interval '1 hour'",
    )
    # Its lease still holds: the retry waits briefly, then 409 with Retry-After.
    busy = await post(h, "/assets", asset("a1"), "key-1")
    assert_problem(busy, 409)
    assert int(busy.headers["retry-after"]) >= 1
    # The lease runs out: the retry runs again and finds its own asset, not "id taken".
    await sql(h, "UPDATE idempotency_keys SET leased_until = now() - interval '1 second'")
    retried = await post(h, "/assets", asset("a1"), "key-1")
    assert retried.status_code == 201, retried.text
    assert retried.json() == first.json()
    assert await total(h, "assets") == 1
    assert (await post(h, "/assets", asset("a1"), "key-1")).json() == first.json()


async def test_a_key_left_unanswered_by_a_crash_before_the_create_creates_it(
    harness: Harness,
) -> None:
    h = harness
    await post(h, "/policies", open_policy("p1"), "key-1")
    # Killed after reserving the key, before the INSERT.
    assert (await h.delete("/policies/p1")).status_code == 204
    await sql(
        h,
        "UPDATE idempotency_keys SET status = NULL, response = NULL, "
        "leased_until = now() - interval '1 second'",
    )
    retried = await post(h, "/policies", open_policy("p1"), "key-1")
    assert retried.status_code == 201, retried.text
    assert await total(h, "policies") == 1


async def test_an_id_taken_before_the_key_was_reserved_stays_409(harness: Harness) -> None:
    h = harness
    await h.created("/assets", asset("a1"))
    assert_problem(await post(h, "/assets", asset("a1"), "key-1"), 409)
    await sql(h, "UPDATE idempotency_keys SET leased_until = now() - interval '1 second'")
    assert_problem(await post(h, "/assets", asset("a1"), "key-1"), 409)


async def test_expired_keys_are_purged_in_the_background(harness: Harness) -> None:
    h = harness
    await post(h, "/assets", asset("a1"), "old")
    await post(h, "/assets", asset("a2"), "live")
    await sql(
        h, "UPDATE idempotency_keys SET expires_at = now() - interval '1 s' WHERE key = 'old'"
    )
    pool = h.app.state.resources.pool
    purger = asyncio.create_task(purge_periodically(pool, interval=0.01))
    try:
        for _ in range(300):
            keys = [r["key"] for r in await pool.fetch("SELECT key FROM idempotency_keys")]
            if keys == ["live"]:
                break
            await asyncio.sleep(0.01)
    finally:
        purger.cancel()
    assert keys == ["live"]


@pytest.mark.parametrize(
    "key",
    [b"", b"x" * 256, "schl\u00fcssel".encode("latin-1"), b"tab\there", b"del\x7f"],
    ids=["empty", "256 characters", "not ASCII", "tab", "DEL"],
)
async def test_an_invalid_key_is_400(harness: Harness, key: bytes) -> None:
    h = harness
    response = await h.client.post(
        MGMT + "/assets",
        json=asset("a1"),
        headers={**{k.encode(): v.encode() for k, v in HEADERS.items()}, b"Idempotency-Key": key},
    )
    body = assert_problem(response, 400)
    assert "Idempotency-Key" in body["detail"]
    assert await total(h, "assets") == 0


async def test_the_longest_valid_key_is_accepted(harness: Harness) -> None:
    h = harness
    key = "".join(chr(c) for c in range(0x20, 0x7F)) * 3  # every printable character
    assert len(key) == 285
    assert (await post(h, "/assets", asset("a1"), key[:255])).status_code == 201
    assert (await post(h, "/assets", asset("a1"), key[:255])).headers["idempotent-replayed"]


async def test_openapi_documents_the_header_on_the_creating_posts(harness: Harness) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    for path in ("assets", "policies", "offers", "negotiations", "transfers"):
        params = spec["paths"][f"{MGMT}/{path}"]["post"]["parameters"]
        header = next(p for p in params if p["name"] == "Idempotency-Key")
        assert header["in"] == "header"
        assert "422" in header["description"]
    assert "202" in spec["paths"][f"{MGMT}/negotiations"]["post"]["responses"]


OTHER_KEY = "second-management-key-0123456789abcdefghij"


@pytest.fixture
async def two_principals(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    await migrated(pg_url)
    participant_id = f"urn:test:provider:{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        env={},
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={"address": "127.0.0.1:1"},
        management={"api_keys": [KEY, OTHER_KEY]},
        identity={"profile": "dev", "allow_insecure": True, "participant_id": participant_id},
        data_dir=tmp_path,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, participant_id)


async def test_keys_are_scoped_per_principal(two_principals: Harness) -> None:
    h = two_principals
    mine = await post(h, "/assets", asset("a1"), "shared")
    assert mine.status_code == 201
    theirs = await h.client.post(
        MGMT + "/assets", json=asset("a2"), headers=keyed("shared", {"X-Api-Key": OTHER_KEY})
    )
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] == "a2"
