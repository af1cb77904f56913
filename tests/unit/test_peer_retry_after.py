"""A peer's `Retry-After` on a 503/429 becomes the pause before our next attempt
(activities.dsp_client.retry_after, decision 0032): seconds only, capped."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.dsp_client import MAX_RETRY_AFTER, retry_after


@pytest.mark.parametrize(
    ("header", "pause"),
    [
        ("5", timedelta(seconds=5)),
        (" 3 ", timedelta(seconds=3)),
        ("0", None),
        ("100000", MAX_RETRY_AFTER),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after_seconds_become_the_pause(header: str | None, pause: timedelta | None) -> None:
    assert retry_after(header) == pause
