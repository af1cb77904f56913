"""Activity option presets of the DCP credential workflows (decision 0023)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from temporalio.common import RetryPolicy

from workflows import names

# The issuer answered 4xx to our request (it will answer the same again), or the SSRF guard
# refused its address: retrying cannot help. Everything else (issuer down, 5xx) is retried
# with back-off until the request's deadline.
_FINAL: Final = [names.ERR_ISSUER_REJECTED, names.ERR_OUTBOUND_REFUSED, names.ERR_BAD_REQUEST]

SEND: Final[dict[str, Any]] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        non_retryable_error_types=_FINAL,
    ),
}
# A status poll is a fallback: one try per poll interval is enough.
POLL: Final[dict[str, Any]] = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(maximum_attempts=1),
}
LOCAL: Final[dict[str, Any]] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
    ),
}
