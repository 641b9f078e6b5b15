"""collector.http.api.parse_events_query: the filters of GET /api/v1/events, and its 400s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import MultiDict

from collector.http.api import MAX_LIMIT, BadRequest, parse_events_query, parse_time


def test_no_parameters_means_the_newest_hundred_unfiltered() -> None:
    assert parse_events_query({}) == {"limit": 100, "host": None, "image": None, "cause": None,
                                     "failure": None}


def test_every_filter_is_passed_through() -> None:
    q = parse_events_query({"limit": "7", "host": "pi-1", "image": "shop/api:1.4", "cause": "no_32bit_support",
                            "failure": "start_failure", "since": "2026-11-28T10:00:00Z"})
    assert q == {
        "limit": 7, "host": "pi-1", "image": "shop/api:1.4", "cause": "no_32bit_support", "failure": "start_failure",
        "since": datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
    }


def test_empty_values_are_no_filter() -> None:
    assert parse_events_query({"host": "", "cause": "", "limit": "", "since": ""}) == {
        "limit": 100, "host": None, "image": None, "cause": None, "failure": None,
    }


@pytest.mark.parametrize("limit", ["1", str(MAX_LIMIT)])
def test_limit_bounds_are_accepted(limit: str) -> None:
    assert parse_events_query({"limit": limit})["limit"] == int(limit)


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "-3"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"limit": "\u0663"}, "limit"),  # ARABIC-INDIC DIGIT THREE: isdigit() but not ASCII
        ({"limit": "\u00b2"}, "limit"),  # SUPERSCRIPT TWO: isdigit(), yet int() raises ValueError
        ({"cause": "nope"}, "cause"),
        ({"cause": "ARCH_MISMATCH"}, "cause"),
        ({"failure": "crash"}, "failure"),
        ({"since": "garbage"}, "since"),
        ({"since": "2026-13-01T00:00:00Z"}, "since"),
        ({"since": "1e400"}, "since"),
        ({"colour": "blue"}, "colour"),
        ({"host": "x" * 600}, "host"),
        ({"image": "bad\nref"}, "image"),
    ],
)
def test_bad_values_name_the_parameter(query: dict[str, str], names: str) -> None:
    with pytest.raises(BadRequest, match=names):
        parse_events_query(query)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T10:00:00Z", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28T12:00:00+02:00", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28T10:00:00", datetime(2026, 11, 28, 10, tzinfo=UTC)),  # naive means UTC
        ("1795860000", datetime.fromtimestamp(1795860000, tz=UTC)),
        ("1795860000.5", datetime.fromtimestamp(1795860000.5, tz=UTC)),
    ],
)
def test_since_takes_rfc3339_or_unix_seconds(value: str, expected: datetime) -> None:
    got = parse_time(value)
    assert got == expected and got.tzinfo is not None


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1e400", "2026-02-30"])
def test_since_out_of_range_is_a_bad_request(value: str) -> None:
    with pytest.raises(BadRequest, match="since"):
        parse_events_query({"since": value})


def test_a_filter_given_twice_is_a_bad_request() -> None:
    """?failure=start_failure&failure=exec_format_error kept the first and dropped the second, silently."""
    with pytest.raises(BadRequest, match="failure: given 2 times; give it once"):
        parse_events_query(MultiDict([("failure", "start_failure"), ("failure", "exec_format_error")]))
