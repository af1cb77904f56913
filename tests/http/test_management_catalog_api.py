"""Management API `/management/v1`: assets, policies, offers, evaluate, explain (PG + Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.catalog_fixtures import (
    HEADERS,
    MGMT,
    Harness,
    asset,
    offer,
    open_policy,
    participant_policy,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:connector:error:")
    return body


async def count(h: Harness, kind: str) -> int:
    response = await h.get(f"/{kind}")
    total: int = response.json()["total"]
    return total


async def test_every_route_requires_the_api_key(harness: Harness) -> None:
    client = harness.client
    for method, path in [
        ("GET", "/assets"),
        ("POST", "/assets"),
        ("GET", "/policies/x"),
        ("PUT", "/offers/x"),
        ("DELETE", "/policies/x"),
        ("POST", "/policies/x/evaluate"),
        ("POST", "/catalog/explain"),
        ("POST", "/catalog/request"),
    ]:
        missing = await client.request(method, MGMT + path, json={})
        assert_problem(missing, 401)
        wrong = await client.request(method, MGMT + path, json={}, headers={"X-Api-Key": "no"})
        assert_problem(wrong, 401)


async def test_openapi_documents_the_management_routes(harness: Harness) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    assert "/management/v1/assets" in spec["paths"]
    assert "/management/v1/policies/{policy_id}/evaluate" in spec["paths"]
    assert "/dsp/2025-1/catalog/request" in spec["paths"]


async def test_asset_crud_round_trip(harness: Harness) -> None:
    h = harness
    created = await h.created("/assets", asset("a1", description="first"))
    assert created["version"] == 1
    assert created["dataAddress"]["type"] == "http"
    assert (await h.get("/assets/a1")).json() == created

    body = asset("a1", description="second")
    replaced = (await h.put("/assets/a1", body)).json()
    assert replaced["version"] == 2
    assert replaced["properties"]["description"] == "second"

    assert (await h.delete("/assets/a1")).status_code == 204
    assert_problem(await h.get("/assets/a1"), 404)
    assert_problem(await h.delete("/assets/a1"), 404)
    assert_problem(await h.put("/assets/a1", body), 404)


async def test_ids_taken_are_409(harness: Harness) -> None:
    h = harness
    await h.created("/assets", asset("a1"))
    await h.created("/policies", open_policy("p1"))
    await h.created("/offers", offer("o1", ["a1"], "p1", "p1"))
    assert_problem(await h.post("/assets", asset("a1")), 409)
    assert_problem(await h.post("/policies", open_policy("p1")), 409)
    assert_problem(await h.post("/offers", offer("o1", ["a1"], "p1", "p1")), 409)


async def test_referenced_policies_and_assets_cannot_be_deleted(harness: Harness) -> None:
    h = harness
    await h.created("/assets", asset("a1"))
    await h.created("/assets", asset("a2"))
    await h.created("/policies", open_policy("p1"))
    await h.created("/offers", offer("o1", ["a1"], "p1", "p1"))
    crit = [{"operandLeft": "properties.name", "operator": "=", "operandRight": "a2"}]
    await h.created("/offers", offer("o2", crit, "p1", "p1"))

    body = assert_problem(await h.delete("/policies/p1"), 409)
    assert "o1" in body["detail"]
    assert_problem(await h.delete("/assets/a1"), 409)  # named by id
    assert (await h.delete("/assets/a2")).status_code == 204  # matched by criteria only

    assert (await h.delete("/offers/o1")).status_code == 204
    assert (await h.delete("/offers/o2")).status_code == 204
    assert (await h.delete("/assets/a1")).status_code == 204
    assert (await h.delete("/policies/p1")).status_code == 204


async def test_invalid_policy_is_422_naming_the_exact_path(harness: Harness) -> None:
    h = harness
    bad = {
        "id": "p-bad",
        "policy": {
            "permission": [
                {"action": "use"},
                {"action": "use", "constraint": [{"leftOperand": "spatial", "operator": "eq"}]},
            ]
        },
    }
    body = assert_problem(await h.post("/policies", bad), 422)
    assert body["pointer"] == "/policy/permission/1/constraint/0/rightOperand"
    assert any(e.startswith("/policy/permission/1/constraint/0") for e in body["errors"])
    assert await count(h, "policies") == 0


async def test_offer_with_unknown_policy_or_asset_is_422(harness: Harness) -> None:
    h = harness
    await h.created("/assets", asset("a1"))
    await h.created("/policies", open_policy("p1"))
    body = assert_problem(await h.post("/offers", offer("o1", ["a1"], "nope", "p1")), 422)
    assert body["pointer"] == "/accessPolicyId"
    body = assert_problem(await h.post("/offers", offer("o1", ["a1", "zz"], "p1", "p1")), 422)
    assert body["pointer"] == "/assetSelector/1"
    bad_criteria = [{"operandLeft": "owner", "operator": "=", "operandRight": "x"}]
    body = assert_problem(await h.post("/offers", offer("o1", bad_criteria, "p1", "p1")), 422)
    assert body["pointer"] == "/assetSelector/0/operandLeft"
    assert await count(h, "offers") == 0


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"", "application/json", 400),
        (b"[" * 1000 + b"]" * 1000, "application/json", 400),
        (b'{"id": "x", "id": "y"}', "application/json", 400),
    ],
)
async def test_malformed_bodies_are_4xx_and_store_nothing(
    harness: Harness, raw: bytes, content_type: str, status: int
) -> None:
    h = harness
    for kind in ("assets", "policies", "offers"):
        response = await h.client.post(
            f"{MGMT}/{kind}", content=raw, headers={**HEADERS, "Content-Type": content_type}
        )
        assert_problem(response, status)
        assert await count(h, kind) == 0


async def test_oversized_body_is_413(harness: Harness) -> None:
    h = harness
    raw = b'{"id": "x", "properties": {"blob": "' + b"a" * (10 * 1024 * 1024) + b'"}}'
    json_headers = {**HEADERS, "Content-Type": "application/json"}  # else 415
    response = await h.client.post(f"{MGMT}/assets", content=raw, headers=json_headers)
    assert_problem(response, 413)
    assert await count(h, "assets") == 0


async def test_shape_errors_are_400_with_a_pointer(harness: Harness) -> None:
    h = harness
    body = assert_problem(
        await h.post("/assets", {"id": "a1", "dataAddress": {"type": "ftp"}}), 400
    )
    assert body["pointer"].startswith("/dataAddress/type")
    body = assert_problem(await h.post("/assets", {"dataAddress": {"type": "http"}}), 400)
    assert body["pointer"] == "/id"
    body = assert_problem(await h.put("/assets/a1", {**asset("a2")}), 400)
    assert body["pointer"] == "/id"


async def test_cursor_pagination_walks_every_item_once_with_totals(harness: Harness) -> None:
    h = harness
    ids = [f"asset-{i:02d}" for i in range(23)]
    for asset_id in ids:
        await h.created("/assets", asset(asset_id))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, "sort": "id:desc"}
        if cursor:
            params["cursor"] = cursor
        page = (await h.get("/assets", **params)).json()
        assert page["total"] == 23
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == sorted(ids, reverse=True)


async def test_sorting_by_creation_time_and_id(harness: Harness) -> None:
    h = harness
    for asset_id in ("b", "c", "a"):
        await h.created("/assets", asset(asset_id))
    by_created = [a["id"] for a in (await h.get("/assets")).json()["items"]]
    assert by_created == ["b", "c", "a"]
    newest_first = (await h.get("/assets", sort="createdAt:desc")).json()["items"]
    assert [a["id"] for a in newest_first] == ["a", "c", "b"]
    assert [a["id"] for a in (await h.get("/assets", sort="id:asc")).json()["items"]] == [
        "a",
        "b",
        "c",
    ]
    assert_problem(await h.get("/assets", sort="name:asc"), 400)
    cursor = (await h.get("/assets", sort="id:asc", limit=1)).json()["nextCursor"]
    assert_problem(await h.get("/assets", sort="createdAt:asc", cursor=cursor), 400)
    assert_problem(await h.get("/assets", cursor="!!!"), 400)
    assert_problem(await h.get("/assets", limit=201), 400)


async def test_filters_by_equality_like_in_and_json(harness: Harness) -> None:
    h = harness
    await h.created("/assets", asset("a1", kind="weather"))
    await h.created("/assets", asset("a2", kind="traffic"))
    await h.created("/assets", asset("a3", kind="weather-eu"))

    def ids(response: Any) -> list[str]:
        return sorted(a["id"] for a in response.json()["items"])

    assert ids(await h.get("/assets", filter="properties.kind=weather")) == ["a1"]
    assert ids(await h.get("/assets", filter="properties.kind~=weather%")) == ["a1", "a3"]
    assert ids(await h.get("/assets", filter="id@=a2,a3")) == ["a2", "a3"]
    both = await h.client.get(
        f"{MGMT}/assets",
        params=[("filter", "properties.kind~=weather%"), ("filter", "id=a3")],
        headers=HEADERS,
    )
    assert ids(both) == ["a3"]
    assert both.json()["total"] == 1
    as_json = '[{"operandLeft": "properties.kind", "operator": "in", "operandRight": ["traffic"]}]'
    assert ids(await h.get("/assets", filter=as_json)) == ["a2"]
    assert_problem(await h.get("/assets", filter="owner=x"), 400)
    assert_problem(await h.get("/assets", filter="nothing"), 400)

    await h.created("/policies", open_policy("p1"))
    await h.created("/policies", open_policy("p2"))
    await h.created("/offers", offer("o1", ["a1"], "p1", "p2"))
    await h.created("/offers", offer("o2", ["a2"], "p2", "p2"))
    offers = (await h.get("/offers", filter="accessPolicyId=p1")).json()
    assert [o["id"] for o in offers["items"]] == ["o1"]
    assert offers["items"][0]["assetSelector"] == ["a1"]
    assert (await h.get("/policies", filter="id=p2")).json()["total"] == 1


async def test_evaluate_explains_allow_and_deny(harness: Harness) -> None:
    h = harness
    await h.created("/policies", participant_policy("p-partner", "urn:partner:x"))
    allowed = await h.post("/policies/p-partner/evaluate", {"participantId": "urn:partner:x"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["allowed"] is True
    assert allowed.json()["scope"] == "catalog"
    denied = (
        await h.post(
            "/policies/p-partner/evaluate",
            {"participantId": "urn:partner:y", "scope": "negotiation"},
        )
    ).json()
    assert denied["allowed"] is False
    assert denied["scope"] == "negotiation"
    assert denied["trace"][0]["left_operand"] == "participantId"
    assert denied["trace"][0]["satisfied"] is False
    assert denied["reasons"]
    assert_problem(await h.post("/policies/nope/evaluate", {"participantId": "x"}), 404)
    assert_problem(await h.post("/policies/p-partner/evaluate", {}), 400)


async def test_explain_says_why_a_partner_cannot_see_a_dataset(harness: Harness) -> None:
    h = harness
    await h.created("/assets", asset("a1"))
    await h.created("/policies", participant_policy("p-x", "urn:partner:x"))
    await h.created("/policies", open_policy("p-contract"))
    await h.created("/offers", offer("o1", ["a1"], "p-x", "p-contract"))
    seen = await h.post("/catalog/explain", {"datasetId": "a1", "participantId": "urn:partner:x"})
    assert seen.status_code == 200, seen.text
    assert seen.json()["visible"] is True
    hidden = (
        await h.post("/catalog/explain", {"datasetId": "a1", "participantId": "urn:partner:y"})
    ).json()
    assert hidden["visible"] is False
    (explained,) = hidden["offers"]
    assert explained["offerId"] == "o1"
    assert explained["access"]["allowed"] is False
    assert explained["access"]["reasons"]
    assert explained["contract"]["allowed"] is True
    missing = await h.post("/catalog/explain", {"datasetId": "zz", "participantId": "x"})
    assert_problem(missing, 404)
