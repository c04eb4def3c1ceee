"""Epoch milliseconds and UTC datetimes, both ways: exact to the millisecond over the whole range a
datetime holds, a naive datetime read as UTC (as the job reads event times)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from streamdrift.udfs.records import ms_from_utc, utc_from_ms

UTC = dt.timezone.utc


def _by_hand(when: dt.datetime) -> int:
    delta = when.replace(tzinfo=None) - dt.datetime(1970, 1, 1)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999)))
def test_ms_from_utc_is_exact_and_naive_is_utc(naive):
    assert ms_from_utc(naive) == ms_from_utc(naive.replace(tzinfo=UTC)) == _by_hand(naive)
    two_hours_east = naive.replace(tzinfo=dt.timezone(dt.timedelta(hours=2)))
    if naive.year > 1:
        assert ms_from_utc(two_hours_east) == _by_hand(naive) - 7_200_000


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_utc_from_ms_round_trips(ms):
    when = utc_from_ms(ms)
    assert when.tzinfo is not None and when.utcoffset() == dt.timedelta(0)
    assert ms_from_utc(when) == ms
