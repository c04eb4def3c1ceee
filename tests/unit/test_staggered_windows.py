"""Staggered windows (``--stagger-windows``): each endpoint's windows start at an offset of their
own, window × g / 256 for its group g (the first byte of the MD5 of its id). The offsets and the
expected windows are computed here with ``hashlib`` and integer arithmetic; the parse stage's rows
with staggered windows are tested in ``test_parse_partials.py``, the job in the integration test."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.operators.windows import EndpointWindows
from streamdrift.udfs.batch import EventClock, aggregate_records
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.columnar import ColumnarReader
from streamdrift.udfs.events import Tumbling, window_start

T0 = 1_764_158_400_000
WINDOW = 60_000
STATS = {"x": {"count": 4, "hist": [[2, 2], [0.0, 1.0, 2.0]]}}
ENDPOINTS = [f"ep-{i}" for i in range(40)]


def offset_by_hand(endpoint_id: str, window: int) -> int:
    return int(hashlib.md5(endpoint_id.encode("utf-8")).hexdigest()[:2], 16) * window // 256


def start_by_hand(ts: int, endpoint_id: str, window: int) -> int:
    o = offset_by_hand(endpoint_id, window)
    return (ts - o) // window * window + o


@given(st.text(min_size=0, max_size=40), st.integers(-(2 ** 50), 2 ** 50), st.integers(1, 10 ** 9))
def test_a_window_starts_at_the_endpoints_offset_and_holds_its_time(endpoint_id, ts, window):
    staggered, aligned = Tumbling(window, staggered=True), Tumbling(window)
    start = staggered.start(ts, endpoint_id)
    assert start <= ts < start + window
    assert start == start_by_hand(ts, endpoint_id, window)
    assert aligned.start(ts, endpoint_id) == ts // window * window == window_start(ts, window)
    assert 0 <= staggered.offset(endpoint_id) < window


@given(st.lists(st.tuples(st.sampled_from(ENDPOINTS + [None]), st.integers(-(2 ** 45), 2 ** 45)), max_size=50),
       st.integers(1, 10 ** 8))
def test_the_starts_of_a_batch_are_each_records_start(records, window):
    ids, ts = [r[0] for r in records], np.array([r[1] for r in records], dtype=np.int64)
    for windows in (Tumbling(window), Tumbling(window, staggered=True)):
        assert windows.starts(ts, ids).tolist() == [windows.start(int(t), e) for t, e in zip(ts.tolist(), ids)]
    assert Tumbling(window, staggered=True).offset(None) == 0


def test_the_offsets_spread_over_the_window():
    offsets = {offset_by_hand(f"endpoint-{i}", WINDOW) for i in range(10_000)}
    assert len(offsets) == 256 and min(offsets) == 0 and max(offsets) == 255 * WINDOW // 256
    assert {Tumbling(WINDOW, staggered=True).offset(f"endpoint-{i}") for i in range(10_000)} == offsets


@pytest.mark.parametrize("size", [0, -5, 1.5, "60000"])
def test_a_window_size_that_is_not_a_positive_integer_is_refused(size):
    with pytest.raises(ValueError, match="positive number of milliseconds"):
        Tumbling(size)


@pytest.fixture(scope="module")
def catalog():
    return EndpointCatalog(lambda: [{"endpoint_id": e, "feature_names": ["x"], "feature_stats": STATS}
                                    for e in ENDPOINTS])


EVENTS = st.lists(st.tuples(st.integers(0, len(ENDPOINTS) - 1), st.integers(-WINDOW, 3 * WINDOW), st.integers(1, 3)),
                  min_size=1, max_size=60)


def _payloads(events):
    return [json.dumps({"endpoint_id": ENDPOINTS[e], "timestamp": T0 + t, "inputs": [[0.5]] * n}).encode()
            for e, t, n in events]


@settings(max_examples=60, deadline=None)
@given(events=EVENTS)
def test_both_ways_of_reading_count_each_row_in_its_endpoints_window(catalog, events):
    expected = defaultdict(int)
    for e, t, n in events:
        expected[(ENDPOINTS[e], start_by_hand(T0 + t, ENDPOINTS[e], WINDOW))] += n
    windows = Tumbling(WINDOW, staggered=True)
    columnar = ColumnarReader()
    for reader in (columnar, False):  # column-wise (pyarrow), record by record
        got = defaultdict(int)
        for p in aggregate_records(_payloads(events), catalog, windows, reader=reader).partials:
            got[(p.endpoint_id, p.window_start)] += p.aggregate.rows
        assert got == expected
    assert columnar.read_batches == 1  # the batch was read column-wise, not left to the other path


@given(st.lists(st.tuples(st.sampled_from(ENDPOINTS), st.integers(0, 4 * WINDOW)), min_size=1, max_size=40),
       st.integers(0, WINDOW), st.integers(0, 10_000))
def test_a_record_is_late_when_the_clock_passed_its_own_windows_end_plus_the_lateness(records, lateness, disorder):
    clock = EventClock(WINDOW, lateness, disorder)
    ids, ts = [r[0] for r in records], np.array([T0 + r[1] for r in records], dtype=np.int64)
    late = clock.late(ts, np.ones(len(ts), bool), Tumbling(WINDOW, staggered=True).starts(ts, ids))
    newest = np.maximum.accumulate(ts)
    by_hand = [start_by_hand(int(t), e, WINDOW) + WINDOW - 1 + lateness < int(n) - disorder
               for t, e, n in zip(ts.tolist(), ids, newest.tolist())]
    assert late.tolist() == by_hand


@given(st.integers(2, 10 ** 7), st.integers(1, 10 ** 8), st.integers(-(2 ** 40), 2 ** 40), st.data())
def test_a_staggered_window_leaves_the_state_half_a_window_from_its_groups_firings(window, lateness, k, data):
    offset = data.draw(st.integers(0, window - 1))
    stage = EndpointWindows(None, window, lateness, 0, max_disorder_ms=0)
    start = k * window + offset
    lateness_end = start + window - 1 + lateness
    expiry = stage._expiry(start)
    assert lateness_end < expiry <= lateness_end + window
    assert (expiry - start) % window == (window // 2 - 1) % window  # half a window from the group's firings
    assert stage._expiring(expiry) == start  # the timer at the expiry finds that window
