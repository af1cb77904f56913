"""The data plane process: moves bytes near the data. `create_app(settings)` builds it.

Two surfaces:
- `/signaling/v1/dataflows/...` for the control plane's workers (Data Plane Signaling shaped;
  `Authorization: Bearer <shared secret>`): start, suspend, resume, terminate, complete, status;
- `/public/{transfer id}[/sub/path]` for consumers: streams the data, admitting only a valid
  access token bound to that transfer (HTTP Range supported; several ranges are answered with
  the first satisfiable one), and `/public/token` to refresh it. GET and HEAD always; an HTTP
  source's proxy options decide whether a sub-path, the query, another method and the body
  reach it (`dataplane.proxy`).

A method a route does not serve is answered 405 with `Allow` (also when the flow's source
accepts only GET and HEAD), in the data plane's error shape.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from connector import __version__
from connector.core.errors import BadRequestError, UnauthorizedError
from connector.data_address import PROXY_METHODS
from connector.http.errors import install_error_handlers
from connector.http.outbound import GuardedHttp
from connector.runtime import health
from connector.runtime.metrics import HttpMetricsMiddleware, Metrics, child_registry
from connector.runtime.resources import Resources, borrowed, open_resources
from connector.settings import Settings
from dataplane.flows import FlowManager, MethodNotAllowedError
from dataplane.proxy import PullRequest
from dataplane.signaling import (
    PREFIX,
    DataFlowStartMessage,
    DataFlowStopMessage,
    secret_matches,
    signaling_secret,
)
from dataplane.tokens import TokenService

ROLE = "data-plane"


def _checks(resources: Resources) -> dict[str, health.Check]:
    return {
        "database": health.database_check(resources.pool),
        "redis": health.redis_check(resources.redis),
    }


def _flows(request: Request) -> FlowManager:
    flows: FlowManager = request.app.state.flows
    return flows


async def _signaling_caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    if not secret_matches(authorization, request.app.state.signaling_secret):
        raise UnauthorizedError("missing or invalid signaling credentials")


FlowsDep = Annotated[FlowManager, Depends(_flows)]
SignalingDep = Annotated[None, Depends(_signaling_caller)]


def _raw_sub_path(request: Request, flow_id: str) -> str | None:
    """The sub-path after `/public/<flow id>/` as the client sent it (still percent-encoded):
    the decoded path cannot tell `a%2Fb` from `a/b`. None when there is none."""
    raw = request.scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    segments = text.split("/")
    for i in range(len(segments) - 1):
        if segments[i] == "public" and unquote(segments[i + 1]) == flow_id:
            rest = "/".join(segments[i + 2 :])
            return rest or None
    return None


def method_not_allowed(method: str, allow: set[str] | tuple[str, ...]) -> JSONResponse:
    """405 in the data plane's error shape, `Allow` listing what is served (RFC 9110 §15.5.6)."""
    listed = ", ".join(sorted(allow))
    return JSONResponse(
        {
            "error": "method_not_allowed",
            "reasons": [f"method {method} is not allowed here; allowed: {listed}"],
        },
        status_code=405,
        headers={"Allow": listed},
    )


def _route_methods(app: FastAPI, request: Request) -> set[str]:
    """Every method some route serves at this path (the router names only the first route)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return methods


def create_app(
    settings: Settings, *, metrics: Metrics | None = None, resources: Resources | None = None
) -> FastAPI:
    """`resources`: opened (and closed) by the caller, shared with other parts of the process;
    by default the app's lifespan opens its own (no Temporal client)."""
    metrics = metrics or Metrics(child_registry(), ROLE)
    shared = resources

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = open_resources(settings, temporal=False) if shared is None else borrowed(shared)
        async with opened as resources:
            app.state.resources = resources
            # Pushes stream for minutes: reads and writes may wait longer than a DSP call.
            timeout = max(settings.outbound.read_timeout, settings.dataplane.push_timeout_seconds)
            http = GuardedHttp(settings.outbound.model_copy(update={"read_timeout": timeout}))
            participant = settings.identity.resolved_participant_id(settings.server)
            tokens = TokenService(resources.pool, resources.redis, settings.dataplane, participant)
            flows = FlowManager(resources.pool, settings.dataplane, http, tokens, metrics)
            app.state.tokens = tokens
            app.state.flows = flows
            try:
                yield
            finally:
                await flows.close()
                await http.aclose()

    app = FastAPI(
        title="Lightweight dataspace connector — data plane",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.signaling_secret = signaling_secret(settings)
    install_error_handlers(app)
    on_http_error = app.exception_handlers[StarletteHTTPException]

    async def on_http_error_405(request: Request, exc: Exception) -> Response:
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
            allow = _route_methods(app, request) or set(
                (exc.headers or {}).get("Allow", "").split(", ")
            )
            return method_not_allowed(request.method, allow)
        response = on_http_error(request, exc)
        return await response if inspect.isawaitable(response) else response

    async def on_method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        allow = exc.allow if isinstance(exc, MethodNotAllowedError) else ("GET", "HEAD")
        return method_not_allowed(request.method, allow)

    app.add_exception_handler(StarletteHTTPException, on_http_error_405)
    app.add_exception_handler(MethodNotAllowedError, on_method_not_allowed)

    @app.get("/live", summary="Liveness: the process answers (no dependency checked)")
    async def get_live() -> JSONResponse:
        status, body = health.live()
        return JSONResponse(body, status_code=status)

    @app.get("/health", summary="Dependency health")
    async def get_health(request: Request) -> JSONResponse:
        status, body = await health.health(_checks(request.app.state.resources))
        return JSONResponse(body, status_code=status)

    @app.get("/ready", summary="Readiness")
    async def get_ready(request: Request) -> JSONResponse:
        resources: Resources = request.app.state.resources
        status, body = await health.ready(
            _checks(resources), health.migrations_check(resources.pool)
        )
        return JSONResponse(body, status_code=status)

    # --- signaling (control plane -> data plane) -----------------------------------------

    @app.post(PREFIX, summary="DataFlowStartMessage: prepare a pull or start a push")
    async def start_flow(body: DataFlowStartMessage, _: SignalingDep, flows: FlowsDep) -> Any:
        return (await flows.start(body)).model_dump(mode="json", by_alias=True)

    @app.post(PREFIX + "/{flow_id}/resume", summary="Resume: new token (pull) or restart (push)")
    async def resume_flow(flow_id: str, _: SignalingDep, flows: FlowsDep) -> Any:
        return (await flows.resume(flow_id)).model_dump(mode="json", by_alias=True)

    @app.post(PREFIX + "/{flow_id}/{how}", summary="Suspend, terminate or complete a flow")
    async def stop_flow(
        flow_id: str, how: str, body: DataFlowStopMessage, _: SignalingDep, flows: FlowsDep
    ) -> Any:
        await flows.stop(flow_id, how, body.reason)
        return (await flows.status(flow_id)).model_dump(mode="json", by_alias=True)

    @app.get(PREFIX + "/{flow_id}", summary="DataFlowStatusMessage")
    async def flow_status(flow_id: str, _: SignalingDep, flows: FlowsDep) -> Any:
        return (await flows.status(flow_id)).model_dump(mode="json", by_alias=True)

    # --- public (consumer -> data plane) ---------------------------------------------------

    @app.post("/public/token", summary="Refresh an access token (OAuth2 refresh_token grant)")
    async def refresh_token(request: Request) -> JSONResponse:
        # Form body (Tractus-X) or query string (DPS example): accept both (identity.md §3.4).
        raw = await request.body()
        if len(raw) > 8192:
            raise BadRequestError("refresh request too large")
        form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
        params = {**dict(request.query_params), **form}
        grant, token = params.get("grant_type"), params.get("refresh_token")
        if grant != "refresh_token" or not token:
            raise BadRequestError("grant_type=refresh_token and refresh_token are required")
        tokens: TokenService = request.app.state.tokens
        issued = await tokens.refresh(token)
        return JSONResponse(
            {
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "refresh_token": issued.refresh_token,
                "expires_in": issued.expires_in(datetime.now(UTC)),
            },
            headers={"Cache-Control": "no-store"},
        )

    async def pull(flow_id: str, request: Request, flows: FlowManager) -> Response:
        pull_request = PullRequest(
            method=request.method,
            sub_path=_raw_sub_path(request, flow_id),
            query=request.scope.get("query_string", b"").decode("latin-1"),
            body=request.stream(),
            content_type=request.headers.get("content-type"),
            content_length=request.headers.get("content-length"),
        )
        source, body = await flows.open_pull(
            flow_id,
            request.headers.get("authorization"),
            request.headers.get("range"),
            pull_request,
        )
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
        if source.size is not None:
            headers["Content-Length"] = str(source.size)
        status = 200
        if source.byte_range is not None:
            status = 206
            total = "*" if source.total_size is None else str(source.total_size)
            headers["Content-Range"] = (
                f"bytes {source.byte_range.start}-{source.byte_range.end}/{total}"
            )
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=source.content_type)
        return StreamingResponse(
            body, status_code=status, headers=headers, media_type=source.content_type
        )

    async def pull_data(flow_id: str, request: Request, flows: FlowsDep) -> Response:
        return await pull(flow_id, request, flows)

    async def pull_sub_path(
        flow_id: str, sub_path: str, request: Request, flows: FlowsDep
    ) -> Response:
        return await pull(flow_id, request, flows)

    # One route per method: each gets its own OpenAPI operation id.
    for method in PROXY_METHODS:
        proxied = "" if method in ("GET", "HEAD") else " (a source with proxyMethod)"
        app.add_api_route(
            "/public/{flow_id}",
            pull_data,
            methods=[method],
            operation_id=f"pull_{method.lower()}",
            summary=f"Pull the data of a STARTED transfer{proxied}",
        )
        app.add_api_route(
            "/public/{flow_id}/{sub_path:path}",
            pull_sub_path,
            methods=[method],
            operation_id=f"pull_sub_path_{method.lower()}",
            summary=f"Pull below an HTTP source with proxyPath{proxied}",
        )

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app
