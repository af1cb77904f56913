"""Keep a role process's import graph to what it uses (`python -m connector` runs this first).

Some installed packages import optional extras eagerly when they happen to be installed:
httpx imports its command-line client (click, rich, pygments), uvicorn its `--reload` watcher
(watchfiles), structlog rich's pretty tracebacks (our log chain formats exceptions with
`format_exc_info`, so rich is never used), FastAPI pydantic's v1 compatibility layer to ask
whether a route's model is a v1 model (we have none). Marking these modules as absent makes those
packages take their documented "not installed" path; about 4-5 MB less RSS per process in a
dev install (rich arrives with the dev tools). Only the process entry point calls this, never
library code, so tests and tools importing the connector in-process are unaffected.
"""

from __future__ import annotations

import sys
from typing import Final

UNUSED: Final = ("httpx._main", "watchfiles", "rich", "pydantic.v1")


def skip_unused_imports() -> None:
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
