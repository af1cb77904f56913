"""The garbage collector of a process that serves requests (decision 0026).

CPython collects its youngest generation every 700 net allocations of container objects. A
request that waits (the batched jti claim of a signed DSP request, a database query) keeps its
objects alive meanwhile, so with 64 requests in flight each collection finds them alive and
promotes them, and the older generations fill with objects that die a moment later; full
collections then traverse everything the process imported. Measured on the secure catalog
(docs/benchmarks.md, "Catalog"): most of what a signed request cost over a dev-token one was
the collector's.

`tune_for_serving` (1) raises the youngest generation's threshold, so a collection runs when
that many more objects are alive than at the last one, above what the requests in flight hold,
and (2) freezes what exists once the process has started (modules, the app, settings), so a
full collection no longer traverses it. Reference counting frees what is not in a cycle as
before; cycles wait for at most `GEN0_THRESHOLD` more allocations. Only process entry points
call it (like `connector.runtime.lean`): a test process that builds many apps keeps the defaults.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["GEN0_THRESHOLD", "tune_for_serving"]

#: About 64 requests' worth of live container objects, with room to spare.
GEN0_THRESHOLD: Final = 20_000


def tune_for_serving() -> None:
    """Raise the young generation's threshold (never lower it) and freeze what exists now."""
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 > 0:  # 0: collection disabled by whoever runs us; leave that alone
        gc.set_threshold(max(gen0, GEN0_THRESHOLD), gen1, gen2)
    gc.freeze()
