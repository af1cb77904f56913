"""What decision 0026 changed in how a process starts: concurrent start-up steps that fail as
themselves, and the serving process's collector settings."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from connector.gc_tuning import GEN0_THRESHOLD, tune_for_serving
from connector.runtime.runner import StartError, _together


async def test_steps_run_together_and_the_first_failure_is_raised_as_itself() -> None:
    order: list[str] = []
    slow_cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            slow_cancelled.set()
            raise

    async def failing() -> None:
        order.append("failing")
        raise StartError("postgres exited during start-up")

    with pytest.raises(StartError, match="postgres"):
        await _together(slow(), failing())
    assert slow_cancelled.is_set()
    assert order == ["failing"]


async def test_steps_that_succeed_all_finish() -> None:
    done: list[int] = []

    async def step(i: int) -> None:
        await asyncio.sleep(0.01 * (3 - i))
        done.append(i)

    await _together(*(step(i) for i in range(3)))
    assert sorted(done) == [0, 1, 2]


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_serving_raises_the_young_threshold_and_freezes_what_exists(restore_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_for_serving()
    assert gc.get_threshold() == (GEN0_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0


def test_serving_never_lowers_a_threshold_nor_enables_a_disabled_collector(
    restore_gc: None,
) -> None:
    gc.set_threshold(50_000, 10, 10)
    tune_for_serving()
    assert gc.get_threshold()[0] == 50_000
    gc.set_threshold(0, 10, 10)
    tune_for_serving()
    assert gc.get_threshold()[0] == 0
