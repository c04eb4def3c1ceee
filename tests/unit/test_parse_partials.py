"""The parse stage's rows for the window stage: one per group of endpoints and batch, holding
every partial of the group's endpoints in the batch. ``ParseRecords`` runs as Flink calls it (its
``open``, then ``eval`` on a batch's payload column); Flink's metric group is an in-memory stand-in
(named so in the tests); the integration tests run the stage in the real job."""

from __future__ import annotations

import gc
import hashlib
import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.operators.parse import DEAD, PARTIAL, RECORD, ParseRecords
from streamdrift.operators.windows import endpoint_group, unpack_partials
from streamdrift.udfs.window import WindowAggregate

T0 = 1_764_158_400_000  # a window start (ms)
WINDOW = 60_000
STATS = {"x": {"count": 4, "hist": [[2, 2], [0.0, 1.0, 2.0]]}}
ENDPOINTS = [f"ep-{i}" for i in range(40)]  # 40 endpoints over 256 groups: some share one


class _FunctionContextStandIn:
    class _Group:
        def counter(self, name):
            class Counter:
                def inc(self, n=1):
                    pass
            return Counter()

    def get_metric_group(self):
        return self._Group()


@pytest.fixture(scope="module")
def parse():
    thresholds = gc.get_threshold()
    stage = ParseRecords(lambda: [{"endpoint_id": e, "feature_names": ["x"], "feature_stats": STATS} for e in ENDPOINTS],
                         WINDOW, sample_size=10, allowed_lateness_ms=0, max_disorder_ms=0)
    stage.open(_FunctionContextStandIn())
    yield stage
    gc.unfreeze()  # open() tunes the collector for a worker process: not for the test run
    gc.set_threshold(*thresholds)


def _rows(parse, body: bytes) -> int:
    return WindowAggregate.from_bytes(body, parse.catalog.layout_by_fingerprint).rows


RECORDS = st.lists(st.one_of(
    st.tuples(st.integers(0, len(ENDPOINTS) - 1), st.integers(0, 2), st.integers(1, 3)),  # endpoint, window, rows
    st.just("garbage")), min_size=1, max_size=80)


@settings(max_examples=60, deadline=None)
@given(records=RECORDS)
def test_one_row_per_group_holds_every_partial_of_the_batch_with_its_rows_and_late_flag(parse, records):
    payloads = [b"not json" if r == "garbage" else json.dumps({
        "endpoint_id": ENDPOINTS[r[0]], "timestamp": T0 + r[1] * WINDOW + i, "inputs": [[0.5]] * r[2]}).encode()
        for i, r in enumerate(records)]
    parse.clock.newest_ms = -(1 << 62)  # every example a new stream
    out = parse.eval(pd.Series(payloads))
    assert len(out) == len(records)

    # by hand: rows per (endpoint, window, late); a record is late when an earlier good record of
    # the batch is past its window's end (no allowed lateness, no disorder)
    expected, newest, first_of_group = defaultdict(int), -1, {}
    for i, r in enumerate(records):
        if r == "garbage":
            continue
        ts = T0 + r[1] * WINDOW + i
        newest = max(newest, ts)
        late = newest > T0 + (r[1] + 1) * WINDOW - 1
        expected[(ENDPOINTS[r[0]], T0 + r[1] * WINDOW, late)] += r[2]
        first_of_group.setdefault(endpoint_group(ENDPOINTS[r[0]]), i)

    partial_rows = np.flatnonzero(out["kind"].to_numpy() == PARTIAL).tolist()
    assert partial_rows == sorted(first_of_group.values())  # one per group, the row of its first record
    got = defaultdict(int)
    for i in partial_rows:
        group = endpoint_group(out["endpoint_id"][i])
        for p in unpack_partials(out["body"][i]):
            assert endpoint_group(p.endpoint_id) == group
            got[(p.endpoint_id, p.window_start, p.late)] += _rows(parse, p.body)
    assert got == expected
    kinds = out["kind"].tolist()
    assert [i for i, k in enumerate(kinds) if k == DEAD] == [i for i, r in enumerate(records) if r == "garbage"]
    assert set(kinds) <= {PARTIAL, RECORD, DEAD}
    # the rows that go on to the window stage, and the batch's last, carry what the watermark reads
    clock = out["clock_ms"].to_numpy()
    assert [i for i in range(len(records)) if not pd.isna(clock[i])] == sorted(
        set(partial_rows) | {i for i, k in enumerate(kinds) if k == DEAD} | {len(records) - 1})
    late = out["late"].tolist()
    assert [bool(x) for x, r in zip(late, records) if r != "garbage"] == [
        max(T0 + q[1] * WINDOW + j for j, q in enumerate(records[:i + 1]) if q != "garbage") > T0 + (r[1] + 1) * WINDOW - 1
        for i, r in enumerate(records) if r != "garbage"]


def test_the_endpoints_of_one_group_share_a_row_and_the_others_have_their_own(parse):
    by_group = defaultdict(list)
    for e in ENDPOINTS:
        by_group[endpoint_group(e)].append(e)
    a, b = next(ids for ids in by_group.values() if len(ids) >= 2)[:2]
    c = next(ids for ids in by_group.values() if a not in ids)[0]
    payloads = [json.dumps({"endpoint_id": e, "timestamp": T0 + i, "inputs": [[0.5]]}).encode()
                for i, e in enumerate([c, a, b, a, c])]
    out = parse.eval(pd.Series(payloads))
    assert out["kind"].tolist() == [PARTIAL, PARTIAL, RECORD, RECORD, RECORD]
    assert sorted((p.endpoint_id, _rows(parse, p.body)) for p in unpack_partials(out["body"][1])) == [
        (a, 2), (b, 1)]
    assert [(p.endpoint_id, _rows(parse, p.body)) for p in unpack_partials(out["body"][0])] == [(c, 2)]


def test_no_partial_overtakes_a_batch_complete_of_its_group(parse):
    """MLRun's batch_complete closes the endpoint's windows up to its time: the partials of the
    records after it come after it, in a row of their own, as each came in its own row before."""
    by_group = defaultdict(list)
    for e in ENDPOINTS:
        by_group[endpoint_group(e)].append(e)
    a, b = next(ids for ids in by_group.values() if len(ids) >= 2)[:2]
    record = lambda e, i: json.dumps({"endpoint_id": e, "timestamp": T0 + i, "inputs": [[0.5]]}).encode()  # noqa: E731
    complete = json.dumps({"kind": "batch_complete", "endpoint_id": b, "last_timestamp": T0 + 10}).encode()
    out = parse.eval(pd.Series([record(a, 0), complete, record(b, 2), record(a, 3), record(b, 4)]))
    assert out["kind"].tolist() == [PARTIAL, "C", PARTIAL, RECORD, RECORD]
    assert [(p.endpoint_id, _rows(parse, p.body)) for p in unpack_partials(out["body"][0])] == [(a, 2)]
    assert [(p.endpoint_id, _rows(parse, p.body)) for p in unpack_partials(out["body"][2])] == [(b, 2)]


@pytest.fixture(scope="module")
def staggered_parse():
    thresholds = gc.get_threshold()
    stage = ParseRecords(lambda: [{"endpoint_id": e, "feature_names": ["x"], "feature_stats": STATS} for e in ENDPOINTS],
                         WINDOW, sample_size=10, allowed_lateness_ms=0, max_disorder_ms=0, staggered=True)
    stage.open(_FunctionContextStandIn())
    yield stage
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _staggered_start(ts: int, endpoint_id: str) -> int:
    """The start of the endpoint's staggered window holding ``ts``, by hand (``--stagger-windows``)."""
    offset = int(hashlib.md5(endpoint_id.encode("utf-8")).hexdigest()[:2], 16) * WINDOW // 256
    return (ts - offset) // WINDOW * WINDOW + offset


STAGGERED_EVENTS = st.lists(st.tuples(st.integers(0, len(ENDPOINTS) - 1), st.integers(-WINDOW, 3 * WINDOW),
                                      st.integers(1, 3)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(events=STAGGERED_EVENTS)
def test_with_staggered_windows_each_partial_goes_on_with_its_endpoints_window_and_late_flag(
        staggered_parse, events):
    parse = staggered_parse
    parse.clock.newest_ms = -(1 << 62)  # every example a new stream
    out = parse.eval(pd.Series([json.dumps({"endpoint_id": ENDPOINTS[e], "timestamp": T0 + t,
                                            "inputs": [[0.5]] * n}).encode() for e, t, n in events]))
    expected, newest = defaultdict(int), -(1 << 62)
    for e, t, n in events:
        start = _staggered_start(T0 + t, ENDPOINTS[e])
        newest = max(newest, T0 + t)
        expected[(ENDPOINTS[e], start, newest > start + WINDOW - 1)] += n  # no lateness, no disorder
    got = defaultdict(int)
    for i in np.flatnonzero(out["kind"].to_numpy() == PARTIAL).tolist():
        for p in unpack_partials(out["body"][i]):
            got[(p.endpoint_id, p.window_start, p.late)] += WindowAggregate.from_bytes(
                p.body, parse.catalog.layout_by_fingerprint).rows
    assert got == expected
    assert out["window_start"].tolist() == [_staggered_start(T0 + t, ENDPOINTS[e]) for e, t, _ in events]
