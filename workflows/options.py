"""Activity option presets by purpose: timeouts and retry policies, in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio.common import RetryPolicy

from workflows import names

# Non-retryable: the peer answered 4xx (it will answer the same again), the SSRF guard refused
# the address (configuration, not chance), or our own input was invalid.
NON_RETRYABLE: Final = [names.ERR_PEER_REJECTED, names.ERR_OUTBOUND_REFUSED, names.ERR_BAD_REQUEST]

# First try in-process (fast path, ~50 ms less than a scheduled activity on the dev server).
SEND_LOCAL_TIMEOUT: Final = timedelta(seconds=10)
SEND_LOCAL_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_attempts=2,
    non_retryable_error_types=NON_RETRYABLE,
)
# Then as a regular activity: visible in the UI and in the timeline with its last failure and
# next attempt, retried with back-off until the negotiation's deadline.
SEND_TIMEOUT: Final = timedelta(seconds=15)
SEND_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=NON_RETRYABLE,
)
# A send answering an inbound message: one scheduled attempt first, so the workflow learns
# whether it connected at all before the retrying activity takes over.
SEND_ONCE: Final = RetryPolicy(maximum_attempts=1)
# Reading the delivery journal (decision 0010): quick; when it cannot answer, the message counts
# as delivered.
JOURNAL_TIMEOUT: Final = timedelta(seconds=3)
JOURNAL_RETRY: Final = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=200))
# How long the peer's message waits for our in-flight one to settle before it is judged.
INFLIGHT_WAIT: Final = timedelta(seconds=3)
# A message whose send deadline leaves less than this after the first try is not retried: the
# retrying activity could not even be scheduled and answered in time.
SEND_MIN_REMAINING: Final = timedelta(seconds=1)
# Best effort (telling a peer we gave up): one try.
NOTIFY_RETRY: Final = RetryPolicy(maximum_attempts=1)
NOTIFY_TIMEOUT: Final = timedelta(seconds=5)

PROJECT_TIMEOUT: Final = timedelta(seconds=10)
PROJECT_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    maximum_interval=timedelta(seconds=5),
)

# Data Plane Signaling: our own data plane, nearby. Local first (fast path), then scheduled with
# back-off: a data plane restarting (or killed) must not fail the transfer at once.
DATAPLANE_LOCAL_TIMEOUT: Final = timedelta(seconds=15)
DATAPLANE_LOCAL_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_attempts=2,
    non_retryable_error_types=[names.ERR_DATAPLANE_REFUSED],
)
DATAPLANE_TIMEOUT: Final = timedelta(seconds=30)
DATAPLANE_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=30,
    non_retryable_error_types=[names.ERR_DATAPLANE_REFUSED],
)
# The operator webhook (decision 0013): retried with back-off while the wait lasts, so a
# receiver that is down gets the notice once it is back; its 4xx and a refused address are final.
NOTIFY_OPERATOR_TIMEOUT: Final = timedelta(seconds=30)
NOTIFY_OPERATOR_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=NON_RETRYABLE,
)
# How long a notice is retried when its wait has no deadline; with a deadline, until it passes
# but at least one try's worth (a wait that ends at once still gets its notice).
NOTIFY_OPERATOR_UNBOUNDED: Final = timedelta(days=1)
NOTIFY_OPERATOR_MIN_WINDOW: Final = timedelta(seconds=1)
# Watching a flow until the data plane reports it COMPLETED or FAILED: long, heartbeating.
WATCH_TIMEOUT: Final = timedelta(days=7)
WATCH_HEARTBEAT: Final = timedelta(seconds=20)
WATCH_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
)
