"""The door new processes pass (api.admission, decision 0032), on a scripted backlog: admitted at
once below the limit, after a wait when the backlog falls in time, refused 503 + Retry-After when
it does not; one reading per refresh is shared by every request, none waits long for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from api.admission import Admission
from connector.core.errors import OverloadedError
from connector.runtime.metrics import Metrics
from connector.settings import AdmissionSettings

REFRESH = 0.02


class Backlog:
    """A backlog that reads `values` in turn (the last one from then on), counting the reads."""

    def __init__(self, *values: int) -> None:
        self._values: Iterator[int] = iter(values)
        self._last = values[-1]
        self.reads = 0

    async def __call__(self) -> int:
        self.reads += 1
        self._last = next(self._values, self._last)
        return self._last


async def door(
    backlog: Backlog, *, limit: int = 10, wait: float = 0.2, metrics: Metrics | None = None
) -> Admission:
    """A door that has read the backlog once (as it has soon after the control plane starts)."""
    settings = AdmissionSettings(
        max_backlog=limit, wait_seconds=wait, refresh_seconds=REFRESH, retry_after_seconds=7
    )
    admission = Admission(backlog, settings, metrics)
    await admission.refresh()
    return admission


def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), "control-plane")


def sample(m: Metrics, name: str, process: str) -> float:
    value = m.registry.get_sample_value(name, {"process": process})
    assert value is not None
    return value


async def test_below_the_limit_a_start_is_admitted_at_once() -> None:
    m = metrics()
    started = time.monotonic()
    await (await door(Backlog(9), metrics=m)).admit("negotiation")
    assert time.monotonic() - started < REFRESH
    assert sample(m, "connector_admission_wait_seconds_count", "negotiation") == 1
    assert sample(m, "connector_admission_refused_total", "negotiation") == 0


async def test_a_start_waits_while_the_backlog_falls_and_is_then_admitted() -> None:
    m = metrics()
    backlog = Backlog(12, 11, 10, 3)
    admission = await door(backlog, metrics=m)
    started = time.monotonic()
    await admission.admit("transfer")
    assert backlog.reads >= 4
    assert time.monotonic() - started >= 3 * REFRESH
    assert sample(m, "connector_admission_wait_seconds_sum", "transfer") >= 3 * REFRESH
    assert sample(m, "connector_admission_refused_total", "transfer") == 0


async def test_a_backlog_that_stays_high_refuses_the_start_with_retry_after() -> None:
    m = metrics()
    started = time.monotonic()
    with pytest.raises(OverloadedError) as refused:
        await (await door(Backlog(40), wait=0.1, metrics=m)).admit("negotiation")
    waited = time.monotonic() - started
    assert 0.1 - REFRESH <= waited < 0.1 + 5 * REFRESH, waited
    assert refused.value.retry_after == 7
    assert "40 tasks wait for a worker (limit 10)" in refused.value.reasons[0]
    assert "no negotiation was started" in refused.value.reasons[0]
    assert sample(m, "connector_admission_refused_total", "negotiation") == 1


async def test_no_wait_refuses_at_once() -> None:
    with pytest.raises(OverloadedError):
        await (await door(Backlog(10), wait=0.0)).admit("negotiation")


async def test_limit_zero_admits_everything_without_reading_the_backlog() -> None:
    backlog = Backlog(10_000)
    settings = AdmissionSettings(max_backlog=0, refresh_seconds=REFRESH)
    await Admission(backlog, settings).admit("negotiation")
    await asyncio.sleep(REFRESH)
    assert backlog.reads == 0


async def test_an_unreadable_backlog_admits() -> None:
    async def broken() -> int:
        raise RuntimeError("Temporal unreachable")

    settings = AdmissionSettings(max_backlog=1, wait_seconds=0.1, refresh_seconds=REFRESH)
    admission = Admission(broken, settings)
    await admission.refresh()
    await admission.admit("negotiation")
    assert await admission.backlog() == 0


async def test_concurrent_requests_share_one_reading_per_refresh() -> None:
    backlog = Backlog(3)
    admission = await door(backlog)
    await asyncio.gather(*(admission.admit("negotiation") for _ in range(50)))
    assert backlog.reads == 1
    await asyncio.sleep(REFRESH * 1.5)
    await asyncio.gather(*(admission.admit("negotiation") for _ in range(50)))
    assert backlog.reads == 2
    await admission.aclose()


async def test_a_request_never_waits_for_a_hung_reading() -> None:
    """With Temporal hung, the reading hangs in the background; a request waits for it at most
    a quarter of a second, then passes on the last reading."""
    hung = asyncio.Event()

    async def hanging() -> int:
        await hung.wait()
        return 0

    settings = AdmissionSettings(max_backlog=1, wait_seconds=5.0, refresh_seconds=REFRESH)
    admission = Admission(hanging, settings)
    started = time.monotonic()
    for _ in range(3):
        await admission.admit("negotiation")
        await asyncio.sleep(REFRESH)
    assert time.monotonic() - started < 3 * (REFRESH + 0.25) + 0.3
    await admission.aclose()
