"""The chaos campaign's small version (issue 14): N=10, one round per process kind and side, and
a push whose provider data plane is killed mid-way. The same driver as `make chaos`
(tests/chaos/driver.py): two real `connector up` stacks, real SIGKILLs, nothing mocked.

One test per round, all on one pair of connectors (module scope), so each stays within the
per-test timeout. `CHAOS_SEED=<seed>` repeats a run; every failure names its round's seed.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

import pytest

from tests.chaos.driver import KINDS, MIB, SIDES, Campaign, Config

pytestmark = pytest.mark.e2e

SMALL = Config(
    n=10,
    rounds=1,
    seed=int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**32)),
    push_bytes=256 * MIB,
    round_timeout=100.0,
    settle_timeout=60.0,
)


@pytest.fixture(scope="module")
async def chaos(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Campaign]:
    campaign = Campaign(SMALL, tmp_path_factory.mktemp("chaos"))
    await campaign.start()
    try:
        yield campaign
    finally:
        await campaign.stop()


async def test_without_a_kill_everything_finishes(chaos: Campaign) -> None:
    result = await chaos.baseline()
    assert result.ok, f"campaign seed {SMALL.seed}\n{result.describe()}"


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("kind", KINDS)
async def test_kill_9_during_negotiations_and_pulls(chaos: Campaign, kind: str, side: str) -> None:
    result = await chaos.run_round(kind, side)
    assert result.ok, f"campaign seed {SMALL.seed}\n{result.describe()}"


async def test_kill_9_the_provider_data_plane_during_a_push(chaos: Campaign) -> None:
    result = await chaos.push_round()
    assert result.ok, f"campaign seed {SMALL.seed}\n{result.describe()}"
