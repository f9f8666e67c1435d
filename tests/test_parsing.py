"""Every parse failure is a 4xx: property tests over nesting, number size, encodings and path ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meetings_core.errors import GatewayError
from meetings_core.http.body import MAX_DEPTH, parse_json
from meetings_core.idempotency.keys import scoped_external_id, unscoped_body
from meetings_core.validation import validate_organizer_id

GUID = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"


def _parsed_or_400(raw: bytes) -> Any:
    try:
        return parse_json(raw)
    except GatewayError as error:
        failure = error
    assert failure.status == 400
    return failure


@settings(deadline=None)
@given(
    depth=st.integers(1, 200_000) | st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2), opener=st.sampled_from(["[", '{"a":'])
)
def test_any_nesting_depth_is_parsed_or_a_400(depth: int, opener: str):
    closer = "]" if opener == "[" else "}"
    result = _parsed_or_400((opener * depth + "1" + closer * depth).encode())
    assert isinstance(result, GatewayError) == (depth > MAX_DEPTH)


@settings(deadline=None)
@given(digits=st.integers(1, 20_000) | st.integers(98, 102), sign=st.sampled_from(["", "-"]))
def test_any_integer_length_is_parsed_or_a_400(digits: int, sign: str):
    result = _parsed_or_400(f'{{"externalId": "x", "n": {sign}{"9" * digits}}}'.encode())
    assert isinstance(result, GatewayError) == (digits > 100)


@settings(deadline=None, max_examples=300)
@given(
    raw=st.binary(max_size=200)
    | st.text(max_size=60).map(lambda t: json.dumps({"externalId": t}, ensure_ascii=True).encode())
    | st.integers(0xD800, 0xDFFF).map(lambda c: f'{{"externalId": "a\\u{c:04x}"}}'.encode())
    | st.text(max_size=60).map(lambda t: t.encode("utf-16"))
)
def test_any_bytes_are_parsed_to_encodable_json_or_a_400(raw: bytes):
    result = _parsed_or_400(raw)
    if not isinstance(result, GatewayError):
        json.dumps(result, ensure_ascii=False).encode("utf-8")  # what the store and Graph will need


def test_a_leading_byte_order_mark_is_ignored_and_only_a_leading_one():
    body = {"externalId": "order-1", "subject": "Ünïcode"}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert parse_json(b"\xef\xbb\xbf" + raw) == parse_json(raw) == body
    assert isinstance(_parsed_or_400(b" \xef\xbb\xbf" + raw), GatewayError)  # inside the text it is not JSON


@given(suffix=st.text(min_size=1, max_size=3), prefix=st.text(max_size=2))
def test_an_organizer_id_is_a_whole_guid(suffix: str, prefix: str):
    with pytest.raises(GatewayError) as raised:
        validate_organizer_id(prefix + GUID + suffix)
    assert raised.value.status == 400


def test_a_guid_with_a_trailing_newline_is_refused():
    with pytest.raises(GatewayError):
        validate_organizer_id(GUID + "\n")
    assert validate_organizer_id(GUID.upper()) == GUID


@given(
    callers=st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=2, unique=True),
    external_id=st.text(min_size=1, max_size=80),
)
def test_scoped_external_ids_differ_per_caller_and_map_back(callers: list[str], external_id: str):
    first, second = (scoped_external_id(c, external_id) for c in callers)
    assert first != second
    assert scoped_external_id(None, external_id) == external_id
    answer = json.dumps({"id": "m", "externalId": first}).encode()
    assert json.loads(unscoped_body(answer, callers[0]))["externalId"] == external_id
    assert json.loads(unscoped_body(answer, callers[1]))["externalId"] == first  # not its own: left alone
