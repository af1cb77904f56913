"""The one mapping of dependency outages to HTTP (connector.http.errors): the errors asyncpg,
redis-py and the Temporal SDK raise when their server is down, hung or refusing work answer 503
with `Retry-After` (`server.retry_after_seconds`) in each surface's shape; anything else of the
same Python types (a bug, a missing file, misuse of asyncpg) stays an unexpected 500.

A bare app with the real error handlers and routes that raise: no services needed. The same
answers against real stopped and hung services: tests/e2e/test_dependency_outages.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from connector.core.dsp import DspVersion, validate_against_schema
from connector.core.errors import OverloadedError, UnavailableError
from connector.http.errors import install_error_handlers, outage
from connector.runtime.redis_outage import RedisOutage
from connector.settings import load_settings
from connector.stores.pool import POOL_ERROR_NOTE

RETRY_AFTER = 7


def _noted(exc: OSError) -> OSError:
    exc.add_note(POOL_ERROR_NOTE)
    return exc


def _fail_fast() -> RedisConnectionError:
    latch = RedisOutage(5.0)
    latch.failed(RedisTimeoutError("Timeout reading from 127.0.0.1:6379"))
    with pytest.raises(RedisConnectionError) as caught:
        latch.check()
    return caught.value


OUTAGES: dict[str, tuple[Callable[[], BaseException], str]] = {
    "pg refused (pool)": (lambda: _noted(ConnectionRefusedError(111, "refused")), "database"),
    "pg hung (command_timeout)": (lambda: _noted(TimeoutError()), "database"),
    "pg every address refused": (lambda: _noted(OSError("Multiple exceptions: ...")), "database"),
    "pg lost": (
        lambda: asyncpg.ConnectionDoesNotExistError("connection was closed"),
        "database",
    ),
    "pg starting": (lambda: asyncpg.CannotConnectNowError("starting up"), "database"),
    "pg shutting down": (lambda: asyncpg.AdminShutdownError("terminating"), "database"),
    "pg statement_timeout": (lambda: asyncpg.QueryCanceledError("canceling"), "database"),
    "pg too many connections": (lambda: asyncpg.TooManyConnectionsError("sorry"), "database"),
    "pg pool closing": (lambda: asyncpg.InterfaceError("pool is closing"), "database"),
    "pg connection closed": (lambda: asyncpg.InterfaceError("connection is closed"), "database"),
    "pg connection broken": (
        lambda: asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        "database",
    ),
    "redis refused": (lambda: RedisConnectionError("Error 111 connecting"), "redis"),
    "redis hung": (lambda: RedisTimeoutError("Timeout reading from socket"), "redis"),
    "redis loading": (lambda: BusyLoadingError("loading"), "redis"),
    "redis fail fast": (_fail_fast, "redis"),
    "temporal unavailable": (
        lambda: RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b""),
        "workflow engine",
    ),
    "temporal deadline": (
        lambda: RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""),
        "workflow engine",
    ),
    "temporal rpc timeout": (WorkflowUpdateRPCTimeoutOrCancelledError, "workflow engine"),
    "temporal lazy connect": (
        lambda: RuntimeError("Failed client connect: Server connection error"),
        "workflow engine",
    ),
    "bare timeout": (TimeoutError, "a dependency"),
    "dns": (lambda: socket.gaierror(-2, "Name or service not known"), "a dependency"),
}

NOT_OUTAGES: dict[str, Callable[[], BaseException]] = {
    "missing file": lambda: FileNotFoundError(2, "No such file"),
    "permission": lambda: PermissionError(13, "denied"),
    "asyncpg misuse": lambda: asyncpg.InterfaceError("another operation is in progress"),
    "bad query argument": lambda: asyncpg.DataError("invalid input for query argument $1"),
    "asyncpg internal": lambda: asyncpg.InternalClientError("unexpected message type"),
    "constraint": lambda: asyncpg.UniqueViolationError("duplicate key"),
    "temporal not found": lambda: RPCError("not found", RPCStatusCode.NOT_FOUND, b""),
    "a bug": lambda: RuntimeError("dictionary changed size during iteration"),
    "another bug": lambda: KeyError("x"),
}


@pytest.mark.parametrize(("make", "dependency"), OUTAGES.values(), ids=OUTAGES.keys())
def test_outages_are_classified_by_dependency(
    make: Callable[[], BaseException], dependency: str
) -> None:
    assert outage(make()) == dependency


@pytest.mark.parametrize("make", NOT_OUTAGES.values(), ids=NOT_OUTAGES.keys())
def test_other_errors_of_the_same_types_are_not_outages(make: Callable[[], BaseException]) -> None:
    assert outage(make()) is None


def _app() -> FastAPI:
    app = FastAPI()
    app.state.settings = load_settings(env={}, server={"retry_after_seconds": RETRY_AFTER})
    install_error_handlers(app)
    raising: dict[str, BaseException] = {}

    # Like the real DSP routes, a process path names its pid (the error body echoes it); the
    # inner decorator registers first, so that route is tried first.
    @app.api_route("/{path:path}", methods=["GET", "POST"])
    @app.api_route("/dsp/{version}/negotiations/{pid}/{rest:path}", methods=["GET", "POST"])
    async def fail() -> None:
        raise raising["next"]

    app.state.raising = raising
    return app


async def _answer(exc: BaseException, path: str) -> httpx.Response:
    app = _app()
    app.state.raising["next"] = exc
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post(path, json={"providerPid": "urn:p", "consumerPid": "urn:c"})


@pytest.mark.parametrize(("make", "dependency"), OUTAGES.values(), ids=OUTAGES.keys())
async def test_management_answers_problem_json_503_with_retry_after(
    make: Callable[[], BaseException], dependency: str
) -> None:
    resp = await _answer(make(), "/management/v1/negotiations")
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == str(RETRY_AFTER)
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["type"] == "urn:connector:error:unavailable"
    assert problem["status"] == 503
    assert problem["detail"].startswith(f"{dependency} unavailable (")
    # The wire names the dependency and the error's type, never an address or a message.
    assert "127.0.0.1" not in resp.text


@pytest.mark.parametrize(("make", "dependency"), OUTAGES.values(), ids=OUTAGES.keys())
async def test_dsp_answers_its_error_body_503_with_retry_after(
    make: Callable[[], BaseException], dependency: str
) -> None:
    resp = await _answer(make(), "/dsp/2025-1/negotiations/urn:p/request")
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == str(RETRY_AFTER)
    body = resp.json()
    assert body["@type"] == "ContractNegotiationError"
    assert body["code"] == "503"
    assert validate_against_schema(body, "ContractNegotiationError", DspVersion.V2025_1) == []


async def test_dsp_08_and_data_plane_503_carry_retry_after_too() -> None:
    resp = await _answer(RedisTimeoutError("hung"), "/dsp/0.8/catalog/request")
    assert (resp.status_code, resp.headers["Retry-After"]) == (503, str(RETRY_AFTER))
    assert resp.json()["dspace:code"] == "503"
    resp = await _answer(_noted(TimeoutError()), "/public/flow-1")
    assert (resp.status_code, resp.headers["Retry-After"]) == (503, str(RETRY_AFTER))
    assert resp.json()["error"] == "unavailable"


async def test_every_unavailable_error_carries_retry_after() -> None:
    resp = await _answer(UnavailableError("no worker took the message"), "/dsp/2025-1/x")
    assert (resp.status_code, resp.headers["Retry-After"]) == (503, str(RETRY_AFTER))
    resp = await _answer(UnavailableError("refresh endpoint unreachable"), "/management/v1/x")
    assert (resp.status_code, resp.headers["Retry-After"]) == (503, str(RETRY_AFTER))


@pytest.mark.parametrize("make", NOT_OUTAGES.values(), ids=NOT_OUTAGES.keys())
async def test_other_errors_stay_unexpected_500_without_retry_after(
    make: Callable[[], BaseException],
) -> None:
    resp = await _answer(make(), "/management/v1/negotiations")
    assert resp.status_code == 500, resp.text
    assert "Retry-After" not in resp.headers
    assert resp.json()["detail"].startswith("error id ")


async def test_a_refused_start_carries_the_admission_retry_after() -> None:
    """At capacity (decision 0032) the refusal names its own `Retry-After`, in each shape."""
    refused = OverloadedError("the connector is at capacity", retry_after=RETRY_AFTER + 5)
    resp = await _answer(refused, "/dsp/2025-1/negotiations/request")
    assert (resp.status_code, resp.headers["Retry-After"]) == (503, str(RETRY_AFTER + 5))
    body = resp.json()
    assert (body["@type"], body["code"]) == ("ContractNegotiationError", "503")
    assert body["reason"] == ["the connector is at capacity"], body
    resp = await _answer(refused, "/management/v1/negotiations")
    assert (resp.status_code, resp.headers["Retry-After"]) == (503, str(RETRY_AFTER + 5))
    assert resp.json()["type"] == "urn:connector:error:unavailable"
