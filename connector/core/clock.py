"""The clock is a parameter (STYLE.md rule 4): code that needs the time takes a `Clock`, tests
pass a fixed one, processes pass `connector.runtime.clock.utc_now`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

__all__ = ["Clock"]

Clock = Callable[[], datetime]
