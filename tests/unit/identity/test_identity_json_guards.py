import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.errors import BadRequestError, TooLargeError
from connector.core.guards import check_json_depth, check_json_text_depth, check_size, parse_json


def nested(depth: int) -> object:
    value: object = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_depth_of_simple_values() -> None:
    check_json_depth(1, 0)
    check_json_depth({"a": [1]}, 2)
    with pytest.raises(BadRequestError):
        check_json_depth({"a": [1]}, 1)
    with pytest.raises(BadRequestError):
        check_json_depth([], 0)


def test_thousand_deep_object_rejected_without_recursion_error() -> None:
    with pytest.raises(BadRequestError, match="deeper than 32"):
        check_json_depth(nested(1000), 32)


def test_very_deep_object_checked_iteratively() -> None:
    # Far beyond the interpreter's recursion limit: only an iterative check survives this.
    check_json_depth(nested(5000), 5000)


def test_thousand_deep_body_rejected_before_parsing() -> None:
    body = "[" * 1000 + "]" * 1000
    with pytest.raises(BadRequestError, match="deeper than 32"):
        parse_json(body)
    with pytest.raises(BadRequestError):
        parse_json(b'{"a":' * 1000 + b"1" + b"}" * 1000)


def test_brackets_inside_strings_do_not_count() -> None:
    check_json_text_depth(json.dumps({"s": '[[[[[[{{{{\\"[[['}), 1)
    assert parse_json('{"s": "[[[[[["}', max_depth=1) == {"s": "[[[[[["}


def test_size_limit() -> None:
    check_size(b"x" * 10, 10)
    with pytest.raises(TooLargeError):
        check_size(b"x" * 11, 10)
    with pytest.raises(TooLargeError):
        check_size("é" * 6, 11)
    with pytest.raises(TooLargeError):
        parse_json(b"[" + b"1," * 100 + b"1]", max_bytes=100)


def test_duplicate_keys_and_invalid_json_are_bad_requests() -> None:
    with pytest.raises(BadRequestError, match="duplicate JSON key '@type'"):
        parse_json('{"@type": "a", "@type": "b"}')
    with pytest.raises(BadRequestError, match="invalid JSON"):
        parse_json("{nope")


@given(
    st.recursive(st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_text_and_object_depth_checks_agree(value: object) -> None:
    text = json.dumps(value)
    depth_ok = True
    try:
        check_json_depth(value, 4)
    except BadRequestError:
        depth_ok = False
    text_ok = True
    try:
        check_json_text_depth(text, 4)
    except BadRequestError:
        text_ok = False
    assert depth_ok == text_ok
