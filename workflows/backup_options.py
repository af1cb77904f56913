"""Activity option presets of the backup, verification and restore workflows (timeouts, retries).

Long steps heartbeat every few seconds; a worker that dies is noticed after `heartbeat_timeout`
and the step is retried on another worker from the start (a dump cannot resume mid-stream; the
retry discards the previous attempt's partial object first).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from temporalio.common import RetryPolicy

from connector.core.errors import ErrorCode

# Deliberate failures: unknown backup, checksum/verification mismatch, schema newer than this
# build. Retrying cannot fix them; everything else (I/O, network, Postgres restarts) is retried.
_PERMANENT: Final = [ErrorCode.NOT_FOUND.value, ErrorCode.UNPROCESSABLE.value]

LONG_STEP: Final[dict[str, Any]] = {
    "start_to_close_timeout": timedelta(hours=4),
    "heartbeat_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=5,
        non_retryable_error_types=_PERMANENT,
    ),
}

RECONCILE: Final[dict[str, Any]] = {
    "start_to_close_timeout": timedelta(hours=2),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=5,
        non_retryable_error_types=_PERMANENT,
    ),
}

SHORT_STEP: Final[dict[str, Any]] = {
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=10,
        non_retryable_error_types=_PERMANENT,
    ),
}
