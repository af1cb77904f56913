"""HTTP byte ranges on the data plane (RFC 9110 §14): `parse_range` case by case (several
ranges: the first satisfiable one alone), what an HTTP source is sent (`forwarded_range`), and
the one error mapping that turns an unsatisfiable range into 416 + `Content-Range: */<size>`."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from connector.core import errors
from connector.core.errors import ERROR_TYPES, ErrorCode, RangeNotSatisfiableError
from connector.http.errors import STATUS, Surface, error_response
from dataplane.io import ByteRange, forwarded_range, parse_range

SIZE = 100


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=10-19", ByteRange(10, 19)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=99-99", ByteRange(99, 99)),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=90-", ByteRange(90, 99)),  # open end: to the last byte
        ("bytes=90-1000", ByteRange(90, 99)),  # end clamped to the object
        ("bytes=90-" + "9" * 5000, ByteRange(90, 99)),  # absurd end, still clamped (no int())
        ("bytes=-10", ByteRange(90, 99)),  # suffix: the last 10 bytes
        ("bytes=-100", ByteRange(0, 99)),
        ("bytes=-1000", ByteRange(0, 99)),  # suffix longer than the object: all of it
        ("bytes=007-008", ByteRange(7, 8)),  # leading zeros are digits
        ("Bytes=10-19", ByteRange(10, 19)),  # the unit is case-insensitive (§14.1)
        ("  bytes=10-19  ", ByteRange(10, 19)),
        ("bytes= 10-19", ByteRange(10, 19)),  # lenient: whitespace after "="
    ],
)
def test_a_satisfiable_range_is_served(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


def test_a_range_length_counts_both_ends() -> None:
    assert ByteRange(10, 19).length == 10
    assert ByteRange(0, 0).length == 1


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",  # start == size
        "bytes=100-200",
        "bytes=1000-1001",
        "bytes=" + "9" * 5000 + "-",  # absurd start: beyond the object, not a crash
        "bytes=-0",  # zero-length suffix
        "bytes=-000",
        "bytes=20-10",  # end before start
        "bytes=1-0",
    ],
)
def test_an_unsatisfiable_range_raises_with_the_size(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError) as raised:
        parse_range(header, SIZE)
    assert raised.value.size == SIZE
    assert raised.value.code is ErrorCode.RANGE_NOT_SATISFIABLE


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-0"])
def test_nothing_but_a_nonzero_suffix_fits_an_empty_object(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError) as raised:
        parse_range(header, 0)
    assert raised.value.size == 0


def test_a_suffix_of_an_empty_object_sends_it_whole() -> None:
    # §14.1.1: satisfiable, but there is no last byte to name in a Content-Range: send it all.
    assert parse_range("bytes=-5", 0) is None


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=-",  # neither end
        "bytes=",
        "bytes=abc-def",
        "bytes=1-2-3",
        "bytes=10",
        "bytes=+1-2",
        "bytes=0x10-0x20",
        "bytes=\u0661-\u0662",  # ARABIC-INDIC digits: `\d` would take them, RFC 9110 does not
        "bytes =0-1",
        "bytes=0-1,abc",  # one malformed element spoils the whole list
        "bytes=0-1,-",
        "bytes=,",  # a list of nothing
        "items=0-1",  # another unit MUST be ignored (§14.2)
        "0-1",
        "bytes 0-1",
    ],
)
def test_a_malformed_multiple_or_foreign_range_is_ignored(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-1,5-6", ByteRange(0, 1)),  # never the whole object, never multipart
        ("bytes=0-1, 5-6", ByteRange(0, 1)),
        ("bytes=5-6,0-1", ByteRange(5, 6)),  # first in the request's order, not the lowest
        ("bytes=0-1,", ByteRange(0, 1)),  # empty list elements are skipped (§5.6.1)
        ("bytes=,0-1", ByteRange(0, 1)),
        ("bytes=500-600,10-19", ByteRange(10, 19)),  # the first *satisfiable* one
        ("bytes=-0,-10", ByteRange(90, 99)),
        ("bytes=20-10,90-", ByteRange(90, 99)),
        ("bytes=0-0," + ",".join(f"{i}-{i}" for i in range(1, 500)), ByteRange(0, 0)),
    ],
)
def test_several_ranges_are_served_as_the_first_satisfiable_one(
    header: str, expected: ByteRange
) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=100-,200-300", "bytes=-0,500-", "bytes=20-10,-0"])
def test_several_unsatisfiable_ranges_are_416(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError) as raised:
        parse_range(header, SIZE)
    assert raised.value.size == SIZE


@pytest.mark.parametrize(
    ("header", "forwarded"),
    [
        ("bytes=10-19", "bytes=10-19"),
        ("Bytes= 10-19 ", "bytes=10-19"),
        ("bytes=-5", "bytes=-5"),
        ("bytes=0-1,5-6", "bytes=0-1"),  # the source is asked for one range only
        (None, None),
        ("bytes=abc", None),  # invalid: not forwarded at all (the source would see garbage)
        ("items=0-1", None),
    ],
)
def test_an_http_source_is_sent_one_valid_range(header: str | None, forwarded: str | None) -> None:
    assert forwarded_range(header) == forwarded


@pytest.mark.parametrize("header", ["bytes=10-19", "bytes=-10", "bytes=1000-", "bytes=-0"])
def test_any_range_against_an_unknown_size_is_ignored(header: str) -> None:
    assert parse_range(header, None) is None


# --- the one mapping to HTTP ----------------------------------------------------------------


def _request(path: str) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    )


def test_the_data_plane_answers_416_with_the_unsatisfied_content_range() -> None:
    resp = error_response(_request("/public/flow-1"), RangeNotSatisfiableError("r", size=SIZE))
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{SIZE}"
    assert json.loads(bytes(resp.body)) == {"error": "range_not_satisfiable", "reasons": ["r"]}


@pytest.mark.parametrize("path", ["/dsp/2025-1/transfers/x", "/management/v1/assets", "/health"])
def test_other_surfaces_never_serve_ranges_and_answer_400(path: str) -> None:
    resp = error_response(_request(path), RangeNotSatisfiableError("r", size=SIZE))
    assert resp.status_code == 400
    assert "content-range" not in resp.headers


def test_every_error_code_has_a_type_and_a_status_on_every_surface() -> None:
    assert set(ERROR_TYPES) == set(ErrorCode)
    for code, error_type in ERROR_TYPES.items():
        assert error_type.code is code, code
    for surface in Surface:
        assert set(STATUS[surface]) == set(ErrorCode), surface
        assert all(400 <= status <= 599 for status in STATUS[surface].values()), surface


def test_every_exported_error_name_exists() -> None:
    assert sorted(errors.__all__) == sorted(set(errors.__all__))
    for name in errors.__all__:
        assert getattr(errors, name) is not None, name
    exported = {getattr(errors, name) for name in errors.__all__}
    assert set(ERROR_TYPES.values()) <= exported
