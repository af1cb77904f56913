"""The data plane's public endpoint on a real uvicorn listener, in front of a real backend on
loopback that records every request it receives.

- Sub-path traversal (issue 16, finding 1): `..`, `%2e%2e`, `..%2F`, `%252e`, backslashes,
  `%5C`, `%3F`, `%23`, `%00`, `..;`, fullwidth dots, overlong UTF-8 are refused with 400 and
  the backend never sees a request for them; the provider's secret header only ever reaches
  paths below the source's base path.
- The proxy options: `proxyQueryParams` (ignored without it; a fixed parameter cannot be given
  again), `proxyMethod` (405 + `Allow: GET, HEAD` without it), `proxyBody` (streamed: the
  backend has the first chunk before the consumer sent the rest).
- Several ranges: the first satisfiable one (file and HTTP source), the backend asked for one.
- `completeOnFirstRead`: default, off, and readers under way when the transfer completes.
- 405 with `Allow` on the data plane's own routes.

Requests that an HTTP client would normalise (`..`) go out on a raw socket, byte for byte."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from connector.data_address import PROXY_METHODS
from connector.runtime.embedded import free_port
from connector.settings import load_settings
from connector.stores.migrate import migrate
from dataplane.app import create_app as create_dataplane
from dataplane.signaling import PREFIX

pytestmark = pytest.mark.integration

SECRET = "public-endpoint-test-signaling-secret-0123456789"
PROVIDER_SECRET = "provider-secret-header-value"
BASE_PATH = "/api/v1/data"
PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


# --------------------------------------------------------------------------- the backend


@dataclass
class Seen:
    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False


class Backend:
    """An ASGI app that records every request (raw path, query, headers, body as it streams
    in) and answers PAYLOAD, honouring one `bytes=a-b` range."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen = Seen(
            method=scope["method"],
            raw_path=scope["raw_path"].decode("latin-1"),
            query=scope["query_string"].decode("latin-1"),
            headers={k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]},
        )
        self.seen.append(seen)
        more = True
        while more:
            message = await receive()
            seen.body += message.get("body", b"")
            more = message.get("more_body", False)
        seen.complete = True
        status, headers, body = 200, [(b"content-type", b"application/octet-stream")], PAYLOAD
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", seen.headers.get("range", ""))
        if match:
            first, last = int(match.group(1)), min(int(match.group(2)), len(PAYLOAD) - 1)
            status, body = 206, PAYLOAD[first : last + 1]
            headers.append((b"content-range", f"bytes {first}-{last}/{len(PAYLOAD)}".encode()))
        if seen.method == "POST":
            body = b"received %d" % len(seen.body)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if seen.method == "HEAD" else body})

    def secret_paths(self) -> list[str]:
        return [s.raw_path for s in self.seen if s.headers.get("x-secret") == PROVIDER_SECRET]


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task


async def _stop(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await task


@pytest.fixture
async def backend() -> AsyncIterator[tuple[Backend, str]]:
    app = Backend()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await _stop(server, task)


# --------------------------------------------------------------------------- the data plane


@dataclass
class DataPlane:
    port: int
    client: httpx.AsyncClient
    files: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, source: dict[str, Any], *, finite: bool = True) -> tuple[str, str]:
        """(flow id, access token) of a new pull flow over `source`."""
        flow_id = f"urn:uuid:{uuid.uuid4()}"
        body = {
            "processId": flow_id,
            "agreementId": "agreement-1",
            "participantId": "did:web:consumer.example",
            "transferType": "HttpData-PULL",
            "flowType": "PULL",
            "finite": finite,
            "sourceDataAddress": source,
        }
        resp = await self.signal("POST", PREFIX, body)
        assert resp.status_code == 200, resp.text
        props = resp.json()["dataAddress"]["endpointProperties"]
        token = next(p["value"] for p in props if p["name"] == "authorization")
        return flow_id, token

    async def signal(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {SECRET}"}
        return await self.client.request(method, self.url + path, json=body, headers=headers)

    async def state(self, flow_id: str) -> str:
        resp = await self.signal("GET", f"{PREFIX}/{flow_id}")
        assert resp.status_code == 200, resp.text
        state: str = resp.json()["state"]
        return state

    async def wait_state(self, flow_id: str, state: str) -> None:
        for _ in range(200):
            if await self.state(flow_id) == state:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"flow {flow_id} never reached {state}")


@pytest.fixture
async def dataplane(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[DataPlane]:
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    files = tmp_path / "files"
    files.mkdir()
    port = free_port()
    settings = load_settings(
        env={},
        data_dir=tmp_path,
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={"address": "127.0.0.1:1"},
        outbound={"allow_cidrs": ["127.0.0.0/8"], "allow_http": True},
        dataplane={
            "port": port,
            "signaling_secret": SECRET,
            "file_base_path": str(files),
            "chunk_bytes": 64 * 1024,
        },
    )
    server, task = await _serve(create_dataplane(settings), port)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            yield DataPlane(port, client, files)
    finally:
        await _stop(server, task)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    """One HTTP/1.1 request with the request target exactly as given (no normalisation)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding") == "chunked":
        out = bytearray()
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2 :]
        rest = bytes(out)
    return Answer(int(status_line.split(" ")[1]), parsed, rest)


def proxy_source(backend_url: str, **options: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "baseUrl": backend_url + BASE_PATH,
        "headers": {"X-Secret": PROVIDER_SECRET},
        **options,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- sub-paths

TRAVERSALS = [
    "../../admin/secret",
    "..%2F..%2Fadmin%2Fsecret",
    "..%2f..%2fadmin%2fsecret",
    "%2e%2e/%2e%2e/admin/secret",
    "%2E%2E/%2E%2E/admin/secret",
    ".%2e/.%2e/admin/secret",
    "%252e%252e/%252e%252e/admin/secret",  # double-encoded dots
    "%252e%252e%252f%252e%252e%252fadmin",  # double-encoded slashes
    "..\\..\\admin\\secret",  # raw backslashes
    "..%5C..%5Cadmin%5Csecret",  # encoded backslashes
    "%5C%5Cevil.example%5Cx",
    "report%3Fadmin=1",  # '?' smuggled into the path
    "report%23fragment",
    "report%00.csv",  # NUL
    "report%0d%0aX-Injected:%201",  # CR LF
    "..;/..;/admin/secret",  # Tomcat path parameters
    "%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/admin",  # fullwidth full stops
    "%c0%ae%c0%ae/%c0%ae%c0%ae/admin",  # overlong UTF-8 dots
    "./report.csv",
    ".../admin",
    "reports//..//admin",
    "reports/../../admin/secret",
]


async def test_a_sub_path_below_the_base_reaches_the_backend_with_the_secret(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    recorder, url = backend
    flow_id, token = await dataplane.start(proxy_source(url, proxyPath=True), finite=False)
    for sub, expected in [
        ("reports/2024.csv", "reports/2024.csv"),
        ("caf%C3%A9/a%20b.txt", "caf%C3%A9/a%20b.txt"),
        ("dir/", "dir/"),
        ("100%25", "100%25"),
        ("a;b", "a%3Bb"),  # ';' re-encoded: never a path parameter at the backend
    ]:
        answer = await raw(dataplane.port, "GET", f"/public/{flow_id}/{sub}", bearer(token))
        assert answer.status == 200, (sub, answer)
        assert answer.body == PAYLOAD
        seen = recorder.seen[-1]
        assert seen.raw_path == f"{BASE_PATH}/{expected}"
        assert seen.headers["x-secret"] == PROVIDER_SECRET
        # The consumer's token never travels on.
        assert token not in str(seen.headers)
    assert await dataplane.state(flow_id) == "STARTED"


@pytest.mark.parametrize("sub", TRAVERSALS)
async def test_a_sub_path_that_could_leave_the_base_is_refused_before_the_backend(
    dataplane: DataPlane, backend: tuple[Backend, str], sub: str
) -> None:
    recorder, url = backend
    flow_id, token = await dataplane.start(proxy_source(url, proxyPath=True), finite=False)
    answer = await raw(dataplane.port, "GET", f"/public/{flow_id}/{sub}", bearer(token))
    # A decoded CR LF matches no route at all (404); everything else is our 400.
    assert answer.status == (404 if "%0d%0a" in sub else 400), (sub, answer)
    assert recorder.seen == [], [s.raw_path for s in recorder.seen]


async def test_the_secret_header_never_reaches_a_path_outside_the_base(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    recorder, url = backend
    flow_id, token = await dataplane.start(
        proxy_source(url, proxyPath=True, proxyQueryParams=True), finite=False
    )
    for sub in [*TRAVERSALS, "ok/one", "ok/two?x=1", "x%3F/..%2F"]:
        await raw(dataplane.port, "GET", f"/public/{flow_id}/{sub}", bearer(token))
    paths = recorder.secret_paths()
    assert paths, "the valid sub-paths reached the backend"
    assert all(p.startswith(BASE_PATH + "/") for p in paths), paths
    assert all(".." not in p and "%2" not in p.lower() for p in paths), paths


async def test_a_source_without_proxy_path_serves_no_sub_paths(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    recorder, url = backend
    flow_id, token = await dataplane.start(proxy_source(url), finite=False)
    for sub in ("reports/2024.csv", "../../admin/secret"):
        answer = await raw(dataplane.port, "GET", f"/public/{flow_id}/{sub}", bearer(token))
        assert answer.status in (400, 404), (sub, answer)
    assert recorder.seen == []
    file_flow, file_token = await _file_flow(dataplane, b"data")
    answer = await raw(dataplane.port, "GET", f"/public/{file_flow}/other.bin", bearer(file_token))
    assert answer.status == 404  # a file source has no sub-paths either (not the whole file)


# --------------------------------------------------------------------------- query, method, body


async def test_the_query_is_forwarded_only_with_proxy_query_params(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    recorder, url = backend
    plain, plain_token = await dataplane.start(proxy_source(url), finite=False)
    answer = await raw(dataplane.port, "GET", f"/public/{plain}?admin=1&x=2", bearer(plain_token))
    assert answer.status == 200
    assert (recorder.seen[-1].raw_path, recorder.seen[-1].query) == (BASE_PATH, "")

    source = proxy_source(url, proxyQueryParams=True)
    source["baseUrl"] += "?tenant=acme"
    flow_id, token = await dataplane.start(source, finite=False)
    answer = await raw(dataplane.port, "GET", f"/public/{flow_id}?page=2&q=a%20b", bearer(token))
    assert answer.status == 200
    assert recorder.seen[-1].query == "tenant=acme&page=2&q=a%20b"
    count = len(recorder.seen)
    for query in ("tenant=evil", "page=1&tenant=evil", 'q="x"', "q=<x>"):
        answer = await raw(dataplane.port, "GET", f"/public/{flow_id}?{query}", bearer(token))
        assert answer.status == 400, (query, answer)
    assert len(recorder.seen) == count


async def test_without_proxy_method_only_get_and_head_are_served(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    recorder, url = backend
    flow_id, token = await dataplane.start(proxy_source(url, proxyBody=True), finite=False)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = await raw(dataplane.port, method, f"/public/{flow_id}", bearer(token), b"x")
        assert answer.status == 405, (method, answer)
        assert answer.headers["allow"] == "GET, HEAD"
    assert recorder.seen == []
    head = await raw(dataplane.port, "HEAD", f"/public/{flow_id}", bearer(token))
    assert head.status == 200
    assert head.headers["content-length"] == str(len(PAYLOAD))
    assert head.body == b""
    assert [s.method for s in recorder.seen] == ["HEAD"]
    # Without a token: 401 first, whatever the method.
    assert (await raw(dataplane.port, "DELETE", f"/public/{flow_id}")).status == 401


async def test_proxy_method_forwards_the_method_and_proxy_body_streams_the_body(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    recorder, url = backend
    flow_id, token = await dataplane.start(
        proxy_source(url, proxyMethod=True, proxyBody=True, proxyPath=True), finite=False
    )
    delete = await raw(dataplane.port, "DELETE", f"/public/{flow_id}/items/7", bearer(token))
    assert delete.status == 200
    assert recorder.seen[-1].method == "DELETE"
    assert recorder.seen[-1].raw_path == BASE_PATH + "/items/7"
    assert (await raw(dataplane.port, "TRACE", f"/public/{flow_id}", bearer(token))).status == 405

    # A chunked body: the backend has the first chunk before the consumer sends the rest.
    first, second = os.urandom(256 * 1024), os.urandom(300 * 1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", dataplane.port)
    head = (
        f"POST /public/{flow_id}/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(head.encode() + b"%x\r\n" % len(first) + first + b"\r\n")
    await writer.drain()
    for _ in range(500):
        last = recorder.seen[-1] if recorder.seen else None
        if last is not None and last.raw_path.endswith("/upload") and len(last.body) >= len(first):
            break
        await asyncio.sleep(0.01)
    upload = recorder.seen[-1]
    assert upload.raw_path == BASE_PATH + "/upload"
    assert len(upload.body) >= len(first)
    assert not upload.complete  # streamed through, not buffered first
    writer.write(b"%x\r\n" % len(second) + second + b"\r\n0\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert b" 200 " in answer.split(b"\r\n", 1)[0]
    assert answer.endswith(b"received %d" % (len(first) + len(second)))
    assert upload.complete
    assert bytes(upload.body) == first + second
    assert upload.headers["content-type"] == "text/csv"
    assert upload.headers["x-secret"] == PROVIDER_SECRET
    assert token not in str(upload.headers)


async def test_without_proxy_body_no_body_is_forwarded(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    recorder, url = backend
    flow_id, token = await dataplane.start(proxy_source(url, proxyMethod=True), finite=False)
    answer = await raw(dataplane.port, "POST", f"/public/{flow_id}", bearer(token), b"payload")
    assert answer.status == 200
    assert (recorder.seen[-1].method, bytes(recorder.seen[-1].body)) == ("POST", b"")


# --------------------------------------------------------------------------- ranges


async def _file_flow(
    dataplane: DataPlane, data: bytes, *, finite: bool = True, **options: Any
) -> tuple[str, str]:
    name = f"{uuid.uuid4().hex}.bin"
    (dataplane.files / name).write_bytes(data)
    return await dataplane.start({"type": "file", "path": name, **options}, finite=finite)


async def test_several_ranges_get_the_first_satisfiable_one_never_the_whole_file(
    dataplane: DataPlane, backend: tuple[Backend, str]
) -> None:
    data = os.urandom(100)
    flow_id, token = await _file_flow(dataplane, data)
    endpoint = f"{dataplane.url}/public/{flow_id}"
    for header, first, last in [("bytes=0-1,5-6", 0, 1), ("bytes=500-,90-", 90, 99)]:
        resp = await dataplane.client.get(endpoint, headers={**bearer(token), "Range": header})
        assert resp.status_code == 206, resp.text
        assert resp.headers["content-range"] == f"bytes {first}-{last}/100"
        assert resp.content == data[first : last + 1]
    resp = await dataplane.client.get(
        endpoint, headers={**bearer(token), "Range": "bytes=100-,200-"}
    )
    assert resp.status_code == 416
    assert resp.headers["content-range"] == "bytes */100"
    # Range reads never complete the transfer.
    assert await dataplane.state(flow_id) == "STARTED"

    recorder, url = backend
    http_flow, http_token = await dataplane.start(proxy_source(url), finite=False)
    resp = await dataplane.client.get(
        f"{dataplane.url}/public/{http_flow}",
        headers={**bearer(http_token), "Range": "bytes=10-19,30-39"},
    )
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes 10-19/{len(PAYLOAD)}"
    assert resp.content == PAYLOAD[10:20]
    assert recorder.seen[-1].headers["range"] == "bytes=10-19"  # one range asked for


# --------------------------------------------------------------------------- completion


async def test_the_first_whole_read_completes_a_finite_pull_by_default(
    dataplane: DataPlane,
) -> None:
    data = os.urandom(1000)
    flow_id, token = await _file_flow(dataplane, data)
    endpoint = f"{dataplane.url}/public/{flow_id}"
    head = await dataplane.client.head(endpoint, headers=bearer(token))
    assert head.status_code == 200
    assert head.headers["content-length"] == "1000"
    assert await dataplane.state(flow_id) == "STARTED"  # HEAD reads nothing
    resp = await dataplane.client.get(endpoint, headers=bearer(token))
    assert resp.content == data
    await dataplane.wait_state(flow_id, "COMPLETED")
    assert (await dataplane.client.get(endpoint, headers=bearer(token))).status_code == 403


async def test_a_pull_delivered_during_a_database_outage_is_still_recorded_complete(
    dataplane: DataPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes reached the consumer while Postgres refused connections: the COMPLETED record
    is written once it answers again, or the transfer would wait for it forever."""
    from connector.stores import dataplane as flow_store

    data = os.urandom(1000)
    flow_id, token = await _file_flow(dataplane, data)
    real_set_state = flow_store.set_state
    refusals = 2

    async def refusing_set_state(*args: Any, **kwargs: Any) -> Any:
        nonlocal refusals
        if refusals and args[2] == "COMPLETED":
            refusals -= 1
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
        return await real_set_state(*args, **kwargs)

    monkeypatch.setattr(flow_store, "set_state", refusing_set_state)
    resp = await dataplane.client.get(f"{dataplane.url}/public/{flow_id}", headers=bearer(token))
    assert resp.content == data
    await dataplane.wait_state(flow_id, "COMPLETED")
    assert refusals == 0


async def test_complete_on_first_read_false_keeps_the_pull_open(dataplane: DataPlane) -> None:
    data = os.urandom(1000)
    flow_id, token = await _file_flow(dataplane, data, completeOnFirstRead=False)
    endpoint = f"{dataplane.url}/public/{flow_id}"
    for _ in range(3):
        resp = await dataplane.client.get(endpoint, headers=bearer(token))
        assert (resp.status_code, resp.content) == (200, data)
    await asyncio.sleep(0.2)
    assert await dataplane.state(flow_id) == "STARTED"


async def test_readers_under_way_finish_when_the_transfer_completes(
    dataplane: DataPlane,
) -> None:
    data = os.urandom(8 * 1024 * 1024)
    flow_id, token = await _file_flow(dataplane, data)
    endpoint = f"{dataplane.url}/public/{flow_id}"
    async with (
        httpx.AsyncClient(timeout=30) as slow_client,
        slow_client.stream("GET", endpoint, headers=bearer(token)) as slow,
    ):
        assert slow.status_code == 200
        chunks = slow.aiter_raw(64 * 1024)
        received = bytearray(await anext(chunks))  # under way, then pausing
        whole = await dataplane.client.get(endpoint, headers=bearer(token))
        assert whole.content == data
        await dataplane.wait_state(flow_id, "COMPLETED")
        # What the control plane does next: complete the flow (tokens revoked).
        resp = await dataplane.signal("POST", f"{PREFIX}/{flow_id}/complete", {})
        assert resp.status_code == 200, resp.text
        assert (await dataplane.client.get(endpoint, headers=bearer(token))).status_code == 403
        async for chunk in chunks:
            received += chunk
    assert bytes(received) == data  # not cut off


# --------------------------------------------------------------------------- 405


async def test_a_wrong_method_on_a_data_plane_route_is_405_with_allow(
    dataplane: DataPlane,
) -> None:
    for method, path, allow in [
        ("PUT", "/health", "GET"),
        ("POST", "/ready", "GET"),
        ("GET", PREFIX, "POST"),
        ("DELETE", f"{PREFIX}/some-flow", "GET"),
        ("GET", f"{PREFIX}/some-flow/resume", "POST"),
        ("TRACE", "/public/some-flow/x", "DELETE, GET, HEAD, PATCH, POST, PUT"),
    ]:
        answer = await raw(dataplane.port, method, path, {"Authorization": f"Bearer {SECRET}"})
        assert answer.status == 405, (method, path, answer)
        assert answer.headers["allow"] == allow, (method, path)
        assert b'"method_not_allowed"' in answer.body
    # Every method of the public routes is its own OpenAPI operation (no duplicate ids).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = (await dataplane.client.get(f"{dataplane.url}/openapi.json")).json()
    assert not [w for w in caught if "Duplicate Operation ID" in str(w.message)]
    assert sorted(spec["paths"]["/public/{flow_id}"]) == sorted(m.lower() for m in PROXY_METHODS)
