"""The control plane: `create_app(settings)` builds the FastAPI app; resources open in lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from temporalio.client import Client

from api import codec, discovery, wellknown
from api import health as health_routes
from api import management as management_routes
from api.admission import Admission, task_queue_backlog
from api.catalog import dsp_routes as dsp_catalog
from api.catalog.service import open_catalog_service
from api.content_type import JsonBodyMiddleware
from api.dcp import credential_service as dcp_credential_service
from api.docs import install_docs
from api.idempotency import purge_periodically
from api.management import credentials as management_credentials
from api.negotiation import dsp_routes as dsp_negotiations
from api.negotiation import management_routes as management_negotiations
from api.negotiation.gateway import NegotiationGateway
from api.negotiation.service import NegotiationService
from api.transfer import dsp_routes as dsp_transfers
from api.transfer import management_routes as management_transfers
from api.transfer.gateway import TransferGateway
from api.transfer.service import TransferService
from connector import __version__
from connector.core.dsp import DspVersion
from connector.encryption.runtime import data_keys
from connector.http.errors import install_error_handlers
from connector.identity.apikeys import ApiKeyVerifier, ensure_edge_api_key, load_api_keys
from connector.identity.holder import CredentialHolder
from connector.identity.runtime import build_identity
from connector.runtime.clock import utc_now
from connector.runtime.metrics import HttpMetricsMiddleware, Metrics, child_registry
from connector.runtime.resources import Resources, borrowed, open_resources
from connector.services.maintenance import MaintenanceFlag, MaintenanceMiddleware, maintenance_key
from connector.settings import Settings
from connector.stores import negotiations

ROLE = "control-plane"


def create_app(
    settings: Settings, *, metrics: Metrics | None = None, resources: Resources | None = None
) -> FastAPI:
    """`resources`: opened (and closed) by the caller, shared with other parts of the process;
    by default the app's lifespan opens its own."""
    metrics = metrics or Metrics(child_registry(), ROLE)
    shared = resources

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = open_resources(settings) if shared is None else borrowed(shared)
        async with opened as resources:
            app.state.resources = resources
            identity = build_identity(settings, resources.redis)
            app.state.identity = identity
            keys = data_keys(settings)  # sealed EDRs, the codec endpoint
            app.state.data_keys = keys
            app.state.credential_holder = CredentialHolder.build(
                settings,
                resources.pool,
                resources.redis,
                identity.http,
                keys,
                identity.keyring,
                utc_now,
            )
            if resources.temporal is None:  # pragma: no cover - the control plane always has one
                raise RuntimeError("the control plane needs a Temporal client")
            control_queue = settings.temporal.task_queues.control
            app.state.maintenance = MaintenanceFlag(
                resources.pool,
                resources.redis,
                maintenance_key(settings.identity.resolved_participant_id(settings.server)),
                retry_after=settings.backup.maintenance_retry_after_seconds,
            )
            temporal = resources.temporal
            admission = Admission(
                lambda: task_queue_backlog(temporal, settings.temporal.namespace, control_queue),
                settings.admission,
                metrics,
            )
            # The routes reach the workflows only through these services (and their gateways).
            negotiation_service = NegotiationService(
                settings,
                resources.pool,
                NegotiationGateway(
                    resources.temporal, resources.pool, control_queue, metrics, admission
                ),
                identity.http,
            )
            app.state.negotiations = negotiation_service
            app.state.transfers = TransferService(
                settings,
                resources.pool,
                TransferGateway(resources.temporal, resources.pool, control_queue, keys, admission),
                identity.http,
                negotiation_service,
                keys,
            )
            refresher = asyncio.create_task(
                _refresh_gauges(resources.pool, resources.temporal, settings, metrics)
            )
            purger = asyncio.create_task(purge_periodically(resources.pool))
            try:
                async with open_catalog_service(app.state):
                    yield
            finally:
                refresher.cancel()
                purger.cancel()
                await admission.aclose()
                limiter = getattr(app.state, "rate_limiter", None)
                if limiter is not None:
                    # Built on first use with this lifespan's Redis; the next lifespan builds anew.
                    del app.state.rate_limiter
                    await limiter.aclose()
                await identity.http.aclose()

    app = FastAPI(
        title="Lightweight dataspace connector — control plane",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # api.docs: Swagger UI and ReDoc with assets we serve, no CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.api_keys = management_keys(settings)
    install_error_handlers(app)
    install_docs(app, settings)
    app.include_router(health_routes.router)
    app.include_router(discovery.router)
    app.include_router(wellknown.router)
    app.include_router(management_routes.router)
    app.include_router(codec.router)
    app.include_router(dsp_catalog.router)
    app.include_router(management_negotiations.router)
    app.include_router(management_transfers.router)
    app.include_router(management_credentials.router)
    app.include_router(dcp_credential_service.router)
    for version in DspVersion:
        app.include_router(dsp_negotiations.router(version))
        app.include_router(dsp_transfers.router(version))
    app.add_middleware(JsonBodyMiddleware)  # 415 for a body that is not JSON
    app.add_middleware(MaintenanceMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app


def management_keys(settings: Settings) -> ApiKeyVerifier:
    """Configured keys, or (edge mode, none configured) the one in <data dir>/management-api-key."""
    values = [k.get_secret_value() for k in settings.management.api_keys]
    if not values:
        key, _ = ensure_edge_api_key(settings.data_dir)
        values = [key]
    return load_api_keys(values)


GAUGE_REFRESH_SECONDS = 15.0


async def _refresh_gauges(
    pool: asyncpg.Pool, client: Client, settings: Settings, metrics: Metrics
) -> None:
    """Gauges read from their source, so they are right whichever process did the work: agreements
    from the store, task-queue backlog from Temporal (what KEDA scales workers on)."""
    while True:
        with contextlib.suppress(Exception):  # an outage shows in /health, not here
            metrics.active_agreements.set(await negotiations.count_agreements(pool))
        for queue in settings.temporal.task_queues.all():
            with contextlib.suppress(Exception):
                backlog = await task_queue_backlog(client, settings.temporal.namespace, queue)
                metrics.task_queue_backlog.labels(queue).set(backlog)
        await asyncio.sleep(GAUGE_REFRESH_SECONDS)
