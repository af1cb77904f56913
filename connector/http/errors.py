"""Errors to HTTP, in one place: each ErrorCode gets one status per surface, in its own shape.

DSP routes answer the protocol's `*Error` bodies (an illegal transition is 400, as DSP requires);
the management API answers RFC 9457 problem+json; everything else plain JSON.

A dependency outage that reaches a route as the library's own error (Postgres refused, lost,
hung or cancelling a statement; Redis refused or hung; Temporal unreachable) is `unavailable`,
503, like an `UnavailableError` (`outage`); every 503 carries `Retry-After`
(`server.retry_after_seconds`, unless the error brings its own).

A 401 (every surface) and a DSP 404 say nothing but a correlation id (also in `X-Correlation-Id`):
why a caller was refused (untrusted issuer, bad signature, unknown process, ...) is logged with
that id and never answered, so the answers tell an unauthenticated caller nothing about our trust
list or our processes (docs/security.md §2).
"""

from __future__ import annotations

import socket
import sys
import uuid
from enum import StrEnum
from typing import Any, Final

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from connector.core.errors import (
    ERROR_TYPES,
    BadRequestError,
    ConnectorError,
    ErrorCode,
    MethodNotAllowedError,
    OverloadedError,
    RangeNotSatisfiableError,
    RateLimitedError,
    UnavailableError,
    UnexpectedError,
)
from connector.runtime.logging import get_logger
from connector.stores.pool import POOL_ERROR_NOTE

log = get_logger(__name__)

DSP_CONTEXT_2025: Final = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_CONTEXT_08: Final = "https://w3id.org/dspace/v0.8/context.json"
PROBLEM_JSON: Final = "application/problem+json"
CORRELATION_HEADER: Final = "X-Correlation-Id"
# What a refused request is told instead of the reason (which only our log gets).
GENERIC_REASONS: Final[dict[int, str]] = {401: "not authenticated", 404: "not found"}


class Surface(StrEnum):
    DSP = "dsp"
    MANAGEMENT = "management"
    DATA_PLANE = "dataplane"
    OTHER = "other"


STATUS: Final[dict[Surface, dict[ErrorCode, int]]] = {
    Surface.DSP: {
        ErrorCode.BAD_REQUEST: 400,
        ErrorCode.UNPROCESSABLE: 400,
        ErrorCode.UNAUTHORIZED: 401,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.METHOD_NOT_ALLOWED: 405,
        ErrorCode.CONFLICT: 400,  # DSP: an invalid transition MUST be answered with 400
        ErrorCode.TOO_LARGE: 413,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
        ErrorCode.RATE_LIMITED: 429,
        ErrorCode.RANGE_NOT_SATISFIABLE: 400,  # only the data plane serves ranges
        ErrorCode.UNAVAILABLE: 503,
        ErrorCode.UNEXPECTED: 500,
    },
    Surface.MANAGEMENT: {
        ErrorCode.BAD_REQUEST: 400,
        ErrorCode.UNPROCESSABLE: 422,
        ErrorCode.UNAUTHORIZED: 401,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.METHOD_NOT_ALLOWED: 405,
        ErrorCode.CONFLICT: 409,
        ErrorCode.TOO_LARGE: 413,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
        ErrorCode.RATE_LIMITED: 429,
        ErrorCode.RANGE_NOT_SATISFIABLE: 400,  # only the data plane serves ranges
        ErrorCode.UNAVAILABLE: 503,
        ErrorCode.UNEXPECTED: 500,
    },
    Surface.DATA_PLANE: {
        ErrorCode.BAD_REQUEST: 400,
        ErrorCode.UNPROCESSABLE: 422,
        ErrorCode.UNAUTHORIZED: 401,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.METHOD_NOT_ALLOWED: 405,
        ErrorCode.CONFLICT: 409,
        ErrorCode.TOO_LARGE: 413,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
        ErrorCode.RATE_LIMITED: 429,
        ErrorCode.RANGE_NOT_SATISFIABLE: 416,  # RFC 9110 §15.5.17, with Content-Range
        ErrorCode.UNAVAILABLE: 503,
        ErrorCode.UNEXPECTED: 500,
    },
}
STATUS[Surface.OTHER] = STATUS[Surface.MANAGEMENT]

# The DSP error type depends on the router family the path belongs to.
DSP_ERROR_TYPES: Final[dict[str, str]] = {
    "catalog": "CatalogError",
    "negotiations": "ContractNegotiationError",
    "transfers": "TransferError",
}


def surface_of(path: str) -> Surface:
    if path.startswith("/dsp/"):
        return Surface.DSP
    if path.startswith("/management/"):
        return Surface.MANAGEMENT
    if path.startswith(("/public/", "/signaling/")):
        return Surface.DATA_PLANE
    return Surface.OTHER


def process_pid(path: str) -> str | None:
    """The pid a DSP process path names (`/dsp/<v>/negotiations/<pid>/<message>`, also for a
    request no route took), None for the opening paths and everything else."""
    parts = path.split("/")
    if len(parts) >= 6 and parts[3] in ("negotiations", "transfers") and parts[4]:
        return parts[4]
    return None


def dsp_error_body(
    path: str,
    status: int,
    reasons: list[str],
    pids: dict[str, str] | None = None,
    path_pid: str | None = None,
) -> dict[str, Any]:
    """A DSP `*Error` body for the router family of `path`, in that version's shape.

    Negotiation and transfer errors echo the pids the request named (`pids`, from its message);
    the pid in the path (`path_pid`, ours whichever role we play) stands in for each one the
    message did not name. A pid the request did not name at all is left out, never invented
    (decision 0002)."""
    parts = path.split("/")
    version = parts[2] if len(parts) > 2 else "2025-1"
    family = parts[3] if len(parts) > 3 else "catalog"
    error_type = DSP_ERROR_TYPES.get(family, "CatalogError")
    pids = dict(pids or {})
    if error_type != "CatalogError" and path_pid:
        for key in ("consumerPid", "providerPid"):
            pids.setdefault(key, path_pid)
    if version == "0.8":
        body: dict[str, Any] = {
            "@context": DSP_CONTEXT_08,
            "@type": f"dspace:{error_type}",
            "dspace:code": str(status),
            "dspace:reason": [{"@value": r, "@language": "en"} for r in reasons],
        }
        for key, value in pids.items():
            body[f"dspace:{key}"] = value
        return body
    body = {
        "@context": [DSP_CONTEXT_2025],
        "@type": error_type,
        "code": str(status),
        "reason": reasons,
    }
    if error_type != "CatalogError":
        body.update({k: pids[k] for k in ("consumerPid", "providerPid") if pids.get(k)})
    return body


# asyncpg's InterfaceError also means misuse (a bug); only these messages mean "gone".
_CLOSED_MESSAGES: Final = ("connection is closed", "pool is closing", "pool is closed")
# asyncpg's InternalClientError with these messages: a connection whose server went away in the
# middle of an operation (seen on routes in the chaos suite, Postgres killed with -9).
_BROKEN_PREFIXES: Final = ("cannot switch to state", "not connected")
# What the Temporal SDK answers when the server cannot be reached or does not answer in time.
_TEMPORAL_OUTAGE_STATUSES: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
# Registered with the app: the library errors an outage raises (refined by `outage`).
OUTAGE_TYPES: Final[tuple[type[Exception], ...]] = (
    asyncpg.PostgresConnectionError,  # class 08: refused, lost ("does not exist")
    asyncpg.exceptions.OperatorInterventionError,  # 57: statement_timeout, shutdown, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    RedisConnectionError,
    RedisTimeoutError,
    OSError,  # TimeoutError (pool acquire, command_timeout), ConnectionError, DNS
    RuntimeError,  # the Temporal SDK's "Failed client connect" (a lazy client's first call)
)


def outage(exc: BaseException) -> str | None:
    """The dependency an unhandled `exc` says is unreachable, hung or overloaded (`database`,
    `redis`, `workflow engine`, or `a dependency` for a bare timeout or socket error); None when
    `exc` means something else, which stays an unexpected error (500)."""
    if isinstance(exc, asyncpg.InterfaceError):
        return "database" if str(exc) in _CLOSED_MESSAGES else None
    if isinstance(exc, asyncpg.InternalClientError):
        return "database" if str(exc).startswith(_BROKEN_PREFIXES) else None
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    ):
        return "database"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "redis"
    if _temporal_outage(exc):
        return "workflow engine"
    if isinstance(exc, TimeoutError | ConnectionError | socket.gaierror) or type(exc) is OSError:
        # asyncpg's connect and acquire timeouts and command_timeout, refused connections, and
        # the plain OSError asyncio raises when every address of a host refused. File errors
        # (FileNotFoundError, PermissionError, ...) are OSError subclasses and stay 500.
        return "database" if POOL_ERROR_NOTE in getattr(exc, "__notes__", ()) else "a dependency"
    return None


def _temporal_outage(exc: BaseException) -> bool:
    # The SDK is never imported here: the data plane does not load it, and an exception of
    # one of its types can only exist once it is loaded.
    service = sys.modules.get("temporalio.service")
    if service is not None and isinstance(exc, service.RPCError):
        return exc.status.name in _TEMPORAL_OUTAGE_STATUSES
    client = sys.modules.get("temporalio.client")
    if client is not None and isinstance(exc, client.RPCTimeoutOrCancelledError):
        return True
    return (
        isinstance(exc, RuntimeError)
        and type(exc).__module__ == "builtins"
        and str(exc).startswith("Failed client connect")
        and "temporalio" in sys.modules
    )


def retry_after(request: Request) -> int:
    """Seconds a client should wait before retrying a 503 (`server.retry_after_seconds`)."""
    settings = getattr(request.app.state, "settings", None)
    server = getattr(settings, "server", None)
    value = getattr(server, "retry_after_seconds", 1)
    return value if isinstance(value, int) else 1


def challenge(request: Request, surface: Surface) -> str:
    """The `WWW-Authenticate` value of a 401 (RFC 9110 §11.6.1: a 401 must carry one).

    Management: the API key header, and a bearer token when OIDC is configured for it."""
    if surface is Surface.MANAGEMENT:
        settings = getattr(request.app.state, "settings", None)
        management = getattr(settings, "management", None)
        schemes = ['ApiKey realm="management", header="X-Api-Key"']
        if getattr(management, "oidc", None) is not None:
            schemes.append('Bearer realm="management"')
        return ", ".join(schemes)
    if surface is Surface.DSP:
        return 'Bearer realm="dsp"'
    if surface is Surface.DATA_PLANE:
        return 'Bearer realm="data-plane"'
    return "Bearer"


def correlation_id(request: Request) -> str:
    """The id that ties a refused request's answer to our log line with the reason (one per
    request, made on first use)."""
    existing = getattr(request.state, "correlation_id", None)
    if isinstance(existing, str):
        return existing
    new = uuid.uuid4().hex
    request.state.correlation_id = new
    return new


def error_response(request: Request, exc: ConnectorError) -> JSONResponse:
    path = request.url.path
    surface = surface_of(path)
    status = STATUS[surface][exc.code]
    headers: dict[str, str] = {}
    generic = status == 401 or (status == 404 and surface is Surface.DSP)
    reasons = exc.reasons
    if generic:
        correlation = correlation_id(request)
        headers[CORRELATION_HEADER] = correlation
        log.info(
            "request refused",
            status=status,
            correlation_id=correlation,
            method=request.method,
            path=path,
            reason="; ".join(exc.reasons),
        )
        reasons = [f"{GENERIC_REASONS[status]} (correlation id {correlation})"]
    if status == 401:
        headers["WWW-Authenticate"] = challenge(request, surface)
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = ", ".join(exc.allow)  # RFC 9110 §15.5.6: a 405 must carry it
    if isinstance(exc, RangeNotSatisfiableError) and status == 416:
        headers["Content-Range"] = f"bytes */{exc.size}"  # RFC 9110 §14.4: the current length
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(exc.retry_after)
    elif status == 503:
        headers["Retry-After"] = str(retry_after(request))  # RFC 9110 §10.2.3
    if surface is Surface.DSP:
        pids = getattr(request.state, "dsp_pids", None)
        path_pid = request.path_params.get("pid") or process_pid(path)
        body = dsp_error_body(path, status, reasons, pids, path_pid)
        return JSONResponse(body, status, headers)
    if surface is Surface.MANAGEMENT:
        problem: dict[str, Any] = {
            "type": f"urn:connector:error:{exc.code.value}",
            "title": exc.code.value.replace("_", " "),
            "status": status,
            "detail": "; ".join(reasons),
            "errors": reasons,
        }
        if exc.pointer is not None and not generic:
            problem["pointer"] = exc.pointer
        if generic:
            problem["correlationId"] = headers[CORRELATION_HEADER]  # RFC 9457 §3.2 extension
        return JSONResponse(problem, status, headers, media_type=PROBLEM_JSON)
    return JSONResponse({"error": exc.code.value, "reasons": reasons}, status, headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_connector_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, ConnectorError):  # pragma: no cover - registered for this type
            raise exc
        return error_response(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        reasons = [
            f"{'/'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in errors
        ] or ["invalid request"]
        pointer = "/" + "/".join(str(p) for p in errors[0]["loc"][1:]) if errors else None
        return error_response(request, BadRequestError(*reasons, pointer=pointer))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        if status == 405:
            allow = allowed_methods(request)
            return error_response(
                request,
                MethodNotAllowedError(
                    f"method {request.method} is not allowed here; allowed: {', '.join(allow)}",
                    allow=allow,
                ),
            )
        code = {
            400: ErrorCode.BAD_REQUEST,
            401: ErrorCode.UNAUTHORIZED,
            403: ErrorCode.FORBIDDEN,
            404: ErrorCode.NOT_FOUND,
            413: ErrorCode.TOO_LARGE,
            415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            422: ErrorCode.UNPROCESSABLE,
            429: ErrorCode.RATE_LIMITED,
            503: ErrorCode.UNAVAILABLE,
        }.get(status, ErrorCode.UNEXPECTED)
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
        return error_response(request, ERROR_TYPES[code](str(detail)))

    async def on_unstorable_text(request: Request, exc: Exception) -> JSONResponse:
        # Postgres text and jsonb cannot hold NUL (U+0000); such input reaches the store only in
        # a query parameter, path segment or JSON string a client sent: its fault, not ours.
        return error_response(
            request, BadRequestError("text must not contain NUL characters (U+0000)")
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        dependency = outage(exc)
        if dependency is not None:
            return unavailable(request, exc, dependency)
        error_id = str(uuid.uuid4())
        log.error("unexpected error", error_id=error_id, path=request.url.path, exc_info=exc)
        return error_response(request, UnexpectedError(f"error id {error_id}"))

    async def on_library_error(request: Request, exc: Exception) -> JSONResponse:
        # An outage is answered here, inside the middleware stack: an answer, not a crash.
        # Anything else of these types goes on to `on_unexpected` as before (500, re-raised).
        dependency = outage(exc)
        if dependency is None:
            raise exc
        return unavailable(request, exc, dependency)

    app.add_exception_handler(ConnectorError, on_connector_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(asyncpg.CharacterNotInRepertoireError, on_unstorable_text)
    app.add_exception_handler(asyncpg.UntranslatableCharacterError, on_unstorable_text)
    for outage_type in (*OUTAGE_TYPES, *_temporal_outage_types()):
        app.add_exception_handler(outage_type, on_library_error)
    app.add_exception_handler(Exception, on_unexpected)


_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> tuple[str, ...]:
    """Every method some route of the app serves at the request's path (the router's own 405
    names only the first route that matched the path). Asked of the routes themselves, one
    method at a time, so routers included in any way are covered."""
    routes = getattr(getattr(request.scope.get("app"), "router", None), "routes", ())
    return tuple(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def unavailable(request: Request, exc: BaseException, dependency: str) -> JSONResponse:
    """503 for a dependency outage; the wire names the dependency, never its address."""
    log.warning(
        "dependency unavailable",
        dependency=dependency,
        path=request.url.path,
        error=f"{type(exc).__name__}: {exc}"[:300],
    )
    return error_response(
        request,
        UnavailableError(f"{dependency} unavailable ({type(exc).__name__}); retry shortly"),
    )


def _temporal_outage_types() -> tuple[type[Exception], ...]:
    """The Temporal SDK's error types, when this process has loaded it (the control plane)."""
    service = sys.modules.get("temporalio.service")
    client = sys.modules.get("temporalio.client")
    found: list[type[Exception]] = []
    if service is not None:
        found.append(service.RPCError)
    if client is not None:
        found.append(client.RPCTimeoutOrCancelledError)
    return tuple(found)
