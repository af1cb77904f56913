"""The data plane process: moves bytes near the data. `create_app(settings)` builds it.

Two surfaces:
- `/signaling/v1/dataflows/...` for the control plane's workers (Data Plane Signaling shaped;
  `Authorization: Bearer <shared secret>`): start, suspend, resume, terminate, complete, status;
- `/public/{transfer id}[/sub/path]` for consumers: streams the data, admitting only a valid
  access token bound to that transfer (HTTP Range supported), and `/public/token` to refresh it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from connector import __version__, health
from connector.core.errors import BadRequestError, UnauthorizedError
from connector.http_errors import install_error_handlers
from connector.metrics import HttpMetricsMiddleware, Metrics, child_registry
from connector.outbound import GuardedHttp
from connector.resources import Resources, open_resources
from connector.settings import Settings
from dataplane.flows import FlowManager
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


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics(child_registry(), ROLE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings, temporal=False) as resources:
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

    @app.get("/health", summary="Liveness and dependency health")
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

    async def pull(
        flow_id: str, request: Request, flows: FlowManager, sub_path: str | None
    ) -> StreamingResponse:
        source, body = await flows.open_pull(
            flow_id,
            request.headers.get("authorization"),
            request.headers.get("range"),
            sub_path,
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
        return StreamingResponse(
            body, status_code=status, headers=headers, media_type=source.content_type
        )

    @app.get("/public/{flow_id}", summary="Pull the data of a STARTED transfer")
    async def pull_data(flow_id: str, request: Request, flows: FlowsDep) -> StreamingResponse:
        return await pull(flow_id, request, flows, None)

    @app.get("/public/{flow_id}/{sub_path:path}", summary="Pull below an HTTP source")
    async def pull_sub_path(
        flow_id: str, sub_path: str, request: Request, flows: FlowsDep
    ) -> StreamingResponse:
        return await pull(flow_id, request, flows, sub_path)

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app
