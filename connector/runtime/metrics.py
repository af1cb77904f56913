"""Prometheus metrics: every name is a constant here, created per registry (no import-time globals).

One process role serves its own registry on the metrics port. Under `connector up` every child
writes to a shared multiprocess directory and the supervisor serves the merged view on one port,
together with each child's memory/CPU and the Temporal SDK metrics of every worker.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from connector.core.negotiation.aggregate import Negotiation
from connector.core.negotiation.states import NegotiationState

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
NEGOTIATION_STATES: Final = (
    "REQUESTED",
    "OFFERED",
    "ACCEPTED",
    "AGREED",
    "VERIFIED",
    "FINALIZED",
    "TERMINATED",
)
TRANSFER_STATES: Final = ("REQUESTED", "STARTED", "SUSPENDED", "COMPLETED", "TERMINATED")

HTTP_REQUESTS_TOTAL: Final = "http_requests_total"
HTTP_REQUEST_DURATION_SECONDS: Final = "http_request_duration_seconds"
CONNECTOR_UP: Final = "connector_up"
ACTIVE_AGREEMENTS: Final = "connector_active_agreements_total"
NEGOTIATIONS_TOTAL: Final = "connector_negotiations_total"
NEGOTIATION_DURATION_SECONDS: Final = "connector_negotiation_duration_seconds"
TRANSFERS_TOTAL: Final = "connector_transfers_total"
TRANSFER_BYTES_TOTAL: Final = "connector_transfer_bytes_total"
TRANSFER_DURATION_SECONDS: Final = "connector_transfer_duration_seconds"
BACKUP_LAST_SUCCESS: Final = "connector_backup_last_success_timestamp_seconds"
BACKUP_LAST_VERIFIED: Final = "connector_backup_last_verified"
BACKUP_SIZE_BYTES: Final = "connector_backup_size_bytes"
BACKUP_DURATION_SECONDS: Final = "connector_backup_duration_seconds"
BACKUP_FAILURES_TOTAL: Final = "connector_backup_failures_total"
BACKUP_EXPECTED_SINCE: Final = "connector_backup_expected_since_timestamp_seconds"
BACKUP_STAGES: Final = ("dump", "verify", "backup", "restore")
TASK_QUEUE_BACKLOG: Final = "connector_task_queue_backlog"
ADMISSION_REFUSED_TOTAL: Final = "connector_admission_refused_total"
ADMISSION_WAIT_SECONDS: Final = "connector_admission_wait_seconds"
ADMISSION_PROCESSES: Final = ("negotiation", "transfer")

_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROCESS_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0)
_BACKUP_BUCKETS: Final = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)


def _strip_total(name: str) -> str:
    # prometheus_client appends `_total` to counters itself.
    return name.removesuffix("_total")


class Metrics:
    """All metrics of one connector process, on one registry."""

    def __init__(self, registry: CollectorRegistry, role: str) -> None:
        self.registry = registry
        self.http_requests = Counter(
            _strip_total(HTTP_REQUESTS_TOTAL),
            "HTTP requests by method, route template and status.",
            ["method", "endpoint", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            HTTP_REQUEST_DURATION_SECONDS,
            "HTTP request duration by method and route template.",
            ["method", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.up = Gauge(
            CONNECTOR_UP,
            "1 while this connector process runs.",
            ["role"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.up.labels(role=role).set(1)
        self.negotiations = Counter(
            _strip_total(NEGOTIATIONS_TOTAL),
            "Negotiation transitions into a state.",
            ["role", "state"],
            registry=registry,
        )
        self.negotiation_duration = Histogram(
            NEGOTIATION_DURATION_SECONDS,
            "Time from the first request to FINALIZED.",
            ["role"],
            buckets=_PROCESS_BUCKETS,
            registry=registry,
        )
        self.transfers = Counter(
            _strip_total(TRANSFERS_TOTAL),
            "Transfer processes reaching a state.",
            ["status"],
            registry=registry,
        )
        self.transfer_bytes = Counter(
            _strip_total(TRANSFER_BYTES_TOTAL),
            "Bytes moved by the data plane.",
            ["direction"],
            registry=registry,
        )
        self.active_agreements = Gauge(
            ACTIVE_AGREEMENTS,
            "Agreements currently valid (refreshed from the store by the control plane).",
            registry=registry,
            multiprocess_mode="max",
        )
        self.task_queue_backlog = Gauge(
            TASK_QUEUE_BACKLOG,
            "Approximate backlog of a Temporal task queue.",
            ["task_queue"],
            registry=registry,
            multiprocess_mode="max",
        )
        # Admission of new processes (decision 0032).
        self.admission_refused = Counter(
            _strip_total(ADMISSION_REFUSED_TOTAL),
            "New processes refused (503) while the control task queue's backlog stayed over "
            "admission.max_backlog.",
            ["process"],
            registry=registry,
        )
        self.admission_wait = Histogram(
            ADMISSION_WAIT_SECONDS,
            "How long a new process waited at the door for the backlog to fall (admitted or not).",
            ["process"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.transfer_duration = Histogram(
            TRANSFER_DURATION_SECONDS,
            "Duration of finite transfers.",
            buckets=_PROCESS_BUCKETS,
            registry=registry,
        )
        # Backups (issue 8): set by the ops worker's activities on every outcome and, when it
        # starts, from the manifests in the backup target. The three "last" gauges exist only once
        # a value is known: an unlabelled gauge exports 0 from its creation, which the alert rules
        # would read as "last backup in 1970" and page on a fresh install.
        self.backup_last_success = KnownGauge(
            BACKUP_LAST_SUCCESS,
            "Unix time of the last backup that completed (and verified, when enabled).",
            registry,
        )
        self.backup_last_verified = KnownGauge(
            BACKUP_LAST_VERIFIED,
            "1 if the last verification of a backup passed, 0 if it failed.",
            registry,
        )
        self.backup_size = KnownGauge(
            BACKUP_SIZE_BYTES, "Size of the last completed backup object.", registry
        )
        self.backup_expected_since = KnownGauge(
            BACKUP_EXPECTED_SINCE,
            "Unix time since when a scheduled backup is due: the connector's install time (its "
            "first migration); absent while backups are disabled.",
            registry,
        )
        # One observation per step and run: a duration is a distribution over runs, and the
        # dashboard's p95 needs buckets.
        self.backup_duration = Histogram(
            BACKUP_DURATION_SECONDS,
            "Wall time of backup steps (dump, verify) and whole runs (backup, restore).",
            ["stage"],
            buckets=_BACKUP_BUCKETS,
            registry=registry,
        )
        self.backup_failures = Counter(
            _strip_total(BACKUP_FAILURES_TOTAL),
            "Failed backup, verification or restore runs, by stage.",
            ["stage"],
            registry=registry,
        )
        self._initialise_series()

    def negotiation_projected(self, n: Negotiation, entered: Iterable[NegotiationState]) -> None:
        """Timeline entries of `n` reached the projection for the first time, whichever process
        wrote them (the edge answering a message, or the workflow); `entered` are their states.
        A state the workflow passed through between two writes is counted all the same."""
        for state in entered:
            self.negotiations.labels(n.role.value, state.value).inc()
            if state is NegotiationState.FINALIZED:
                seconds = (n.updated_at - n.created_at).total_seconds()
                self.negotiation_duration.labels(n.role.value).observe(seconds)

    def _initialise_series(self) -> None:
        # Known label sets start at zero, so rate() and absent()-style alerts work from the
        # first scrape rather than from the first event (Prometheus naming practice).
        for role in ("provider", "consumer"):
            self.negotiation_duration.labels(role)
            for n_state in NEGOTIATION_STATES:
                self.negotiations.labels(role, n_state)
        for t_state in TRANSFER_STATES:
            self.transfers.labels(t_state)
        for direction in ("pull", "push"):
            self.transfer_bytes.labels(direction)
        for stage in BACKUP_STAGES:
            self.backup_failures.labels(stage)
            self.backup_duration.labels(stage)
        for process in ADMISSION_PROCESSES:
            self.admission_refused.labels(process)
            self.admission_wait.labels(process)


class KnownGauge:
    """An unlabelled gauge that is exported only once a value was set (see `Metrics`)."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._registry = registry
        self._gauge: Gauge | None = None
        self._lock = threading.Lock()

    def set(self, value: float) -> None:
        with self._lock:
            if self._gauge is None:
                self._gauge = Gauge(
                    self._name,
                    self._documentation,
                    registry=self._registry,
                    multiprocess_mode="mostrecent",
                )
        self._gauge.set(value)


class TemporalProxyCollector(Collector):
    """Re-exposes the Temporal SDK's Prometheus endpoint(s), merging families across workers."""

    def __init__(self, urls: Callable[[], list[str]]) -> None:
        self._urls = urls

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for url in self._urls():
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:  # noqa: S310 (loopback)
                    text = resp.read().decode()
            except OSError:
                continue
            for family in text_string_to_metric_families(text):
                known = merged.get(family.name)
                if known is None:
                    merged[family.name] = family
                else:
                    known.samples.extend(family.samples)
        yield from merged.values()


@dataclass
class ChildProcess:
    role: str
    pid: int


class ChildProcessCollector(Collector):
    """Memory and CPU of every process the supervisor runs, labelled by role."""

    def __init__(self, children: Callable[[], list[ChildProcess]]) -> None:
        self._children = children
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._ticks = os.sysconf("SC_CLK_TCK")

    def collect(self) -> Iterable[Metric]:
        rss = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes.", labels=["role"]
        )
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "Total user and system CPU time.", labels=["role"]
        )
        for child in self._children():
            try:
                statm = Path(f"/proc/{child.pid}/statm").read_text().split()
                stat = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            rss.add_metric([child.role], float(int(statm[1]) * self._page))
            cpu.add_metric([child.role], (int(stat[11]) + int(stat[12])) / self._ticks)
        yield rss
        yield cpu


def build_registry(
    *,
    multiprocess_dir: Path | None = None,
    process_metrics: bool = True,
) -> CollectorRegistry:
    """A fresh registry; with `multiprocess_dir` it aggregates every process writing there."""
    registry = CollectorRegistry(auto_describe=True)
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]  # untyped upstream
    elif process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


def child_registry() -> CollectorRegistry:
    """The registry a process records into: under `connector up` values go to the shared dir."""
    if os.environ.get(MULTIPROC_ENV):
        # In multiprocess mode values live in files; this registry only anchors the objects.
        return CollectorRegistry(auto_describe=False)
    return build_registry()


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class HttpMetricsMiddleware:
    """Counts requests by route template (never the raw path: ids would explode cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Mapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "GET")
            self.metrics.http_requests.labels(method, endpoint, str(status)).inc()
            self.metrics.http_duration.labels(method, endpoint).observe(
                time.perf_counter() - started
            )
