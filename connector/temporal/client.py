"""Connect to Temporal (pydantic data converter + the encryption codec); register the namespace
and search attributes."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    ListSearchAttributesResponse,
)
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.runtime import Runtime
from temporalio.service import KeepAliveConfig, RetryConfig, RPCError, RPCStatusCode

from connector.core import search_attributes
from connector.settings import Settings, TemporalSettings
from connector.temporal.codec import data_converter


def target(settings: TemporalSettings) -> str:
    if settings.address is None:
        raise ValueError("temporal.address is not set (connector up sets it for the dev server)")
    return settings.address


async def connect(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    lazy: bool = False,
    namespace: str | None = None,
    retry_seconds: float | None = None,
    keepalive_seconds: float | None = None,
) -> Client:
    """A client for our namespace, encrypting payloads with the data key ring of `settings`
    (unless `encryption.temporal_payloads` is off). `lazy` lets an API process start while
    Temporal is down;
    `retry_seconds` bounds how long a call retries an unreachable server (default: the SDK's
    10 s); with `keepalive_seconds` the connection is pinged four times per that period and
    dropped when a ping goes unanswered that long, so a hung server fails calls in about
    that time (default: the SDK's 30 s pings, 15 s to answer)."""
    temporal = settings.temporal
    return await Client.connect(
        target(temporal),
        namespace=namespace or temporal.namespace,
        api_key=temporal.api_key.get_secret_value() if temporal.api_key else None,
        tls=temporal.tls,
        # Every client the connector builds encrypts payloads (connector.temporal.codec).
        data_converter=data_converter(settings),
        runtime=runtime,
        lazy=lazy,
        retry_config=(
            None
            if retry_seconds is None
            else RetryConfig(max_elapsed_time_millis=max(1, round(retry_seconds * 1000)))
        ),
        keep_alive_config=(
            KeepAliveConfig.default
            if keepalive_seconds is None
            else KeepAliveConfig(
                interval_millis=max(1, round(keepalive_seconds * 250)),
                timeout_millis=max(1, round(keepalive_seconds * 1000)),
            )
        ),
    )


CLOUD_HOST_SUFFIXES = (".tmprl.cloud", ".api.temporal.io")


def is_temporal_cloud(settings: TemporalSettings) -> bool:
    """`temporal.cloud`, else whether the address is a Temporal Cloud endpoint (namespace
    endpoints `<ns>.<account>.tmprl.cloud`, regional API-key endpoints `*.api.temporal.io`)."""
    if settings.cloud is not None:
        return settings.cloud
    host = (settings.address or "").rsplit(":", 1)[0].lower().rstrip(".")
    return host.endswith(CLOUD_HOST_SUFFIXES)


async def bootstrap(client: Client, settings: TemporalSettings) -> list[str]:
    """Idempotently ensure our namespace (with retention) and search attributes exist.

    Returns what it changed, for the caller to print. The dev server's `default` namespace keeps
    closed workflows only a day; an operator explaining last month's negotiation needs weeks.
    On Temporal Cloud (is_temporal_cloud) nothing is changed: Cloud refuses RegisterNamespace,
    UpdateNamespace and AddSearchAttributes through the frontend, so the namespace and the search
    attributes are only checked and what is missing is reported for `tcld`.
    """
    if is_temporal_cloud(settings):
        return await _check_cloud(client, settings)
    changed: list[str] = []
    retention = timedelta(days=settings.retention_days)
    service = client.workflow_service
    try:
        described = await service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        request = RegisterNamespaceRequest(namespace=settings.namespace)
        request.workflow_execution_retention_period.FromTimedelta(retention)
        await service.register_namespace(request)
        changed.append(f"namespace {settings.namespace} registered")
    else:
        current = described.config.workflow_execution_retention_ttl.ToTimedelta()
        if current != retention:
            config = NamespaceConfig()
            config.workflow_execution_retention_ttl.FromTimedelta(retention)
            await service.update_namespace(
                UpdateNamespaceRequest(namespace=settings.namespace, config=config)
            )
            changed.append(f"namespace {settings.namespace} retention {current} -> {retention}")
    listed = await _search_attributes(client, settings.namespace)
    missing = [name for name in search_attributes.KEYWORDS if name not in listed.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=settings.namespace,
                search_attributes=dict.fromkeys(
                    missing, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                ),
            )
        )
        changed.append(f"search attributes added: {', '.join(missing)}")
    return changed


NAMESPACE_VISIBLE_SECONDS = 30.0


async def _search_attributes(client: Client, namespace: str) -> ListSearchAttributesResponse:
    """The namespace's search attributes. A namespace registered a moment ago is unknown to the
    frontend until its namespace cache refreshes (seconds): NOT_FOUND is retried meanwhile."""
    deadline = time.monotonic() + NAMESPACE_VISIBLE_SECONDS
    while True:
        try:
            return await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


async def _check_cloud(client: Client, settings: TemporalSettings) -> list[str]:
    try:
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.namespace)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise RuntimeError(
                f"Temporal Cloud namespace {settings.namespace} does not exist: create it "
                f"(tcld namespace create, retention {settings.retention_days}d)"
            ) from exc
        raise
    notes = [f"Temporal Cloud: namespace {settings.namespace} exists (managed in Cloud, unchanged)"]
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    if retention != timedelta(days=settings.retention_days):
        notes.append(
            f"retention is {retention}, configured {settings.retention_days}d: change it with "
            f"tcld namespace retention set"
        )
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=settings.namespace)
        )
    except RPCError as exc:
        notes.append(f"search attributes not checked ({exc.status.name}): see tcld")
        return notes
    missing = [name for name in search_attributes.KEYWORDS if name not in listed.custom_attributes]
    if missing:
        notes.append(
            f"search attributes missing: {', '.join(missing)} (Keyword): add them with "
            f"tcld namespace search-attributes add"
        )
    return notes


async def ensure_schedule(
    client: Client,
    schedule_id: str,
    desired: Schedule,
    *,
    disabled_note: str,
) -> str:
    """Create the schedule, or update it to `desired` keeping an operator's pause (idempotent).

    `desired.state.paused` with `disabled_note` means "disabled by configuration": such a pause is
    applied and later lifted by configuration; any other pause (an operator's, `connector backup
    pause`) survives redeploys and updates. Returns what happened, for the caller to print.
    """
    try:
        await client.create_schedule(schedule_id, desired)
    except ScheduleAlreadyRunningError:
        pass
    else:
        return f"schedule {schedule_id} created"

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        state = current.description.schedule.state
        operator_paused = state.paused and state.note != disabled_note
        schedule = Schedule(
            action=desired.action,
            spec=desired.spec,
            policy=desired.policy,
            state=state if operator_paused else desired.state,
        )
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(schedule_id).update(update)
    return f"schedule {schedule_id} updated"
