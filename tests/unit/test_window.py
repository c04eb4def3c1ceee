"""The window stage's pure logic: aggregate_batch, WindowAggregate (merge, bytes, latency, sample)
and the EndpointCatalog cache.

Expectations come from numpy (np.histogram on the reference's padded edges, np.percentile),
collections.Counter and scipy.stats, never from the code under test.
"""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from streamdrift.udfs.accumulator import Layout
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.events import Columns, DeadLetter, Event
from streamdrift.udfs.events import decode as _decode
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.window import LATENCY_EDGES, WindowAggregate, count_rows, row_priorities
from streamdrift.udfs.batch import aggregate_batch

WINDOW_MS = 600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a window start
COLORS = ["red", "green", "blue"]


def _training(seed=0, n=2_000):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(0, 1, n), "y": rng.uniform(10, 20, n),
                         "color": rng.choice(COLORS, n, p=[0.5, 0.3, 0.2])})


REF = feature_stats(_training())
REF_B = feature_stats(_training(seed=1).assign(x=lambda d: d.x * 3))


def _endpoint(endpoint_id, stats=REF, **extra):
    return {"endpoint_id": endpoint_id, "project": "p", "feature_names": ["x", "y", "color"],
            "output_names": ["score"], "feature_stats": stats, **extra}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _catalog(*records):
    return EndpointCatalog(lambda: list(records), clock=Clock())


def _event(endpoint_id, ts, request_id, rows, latency=None, error=None):
    """A native event with batch rows [x, y, color] and one output per row."""
    return json.dumps({"endpoint_id": endpoint_id, "timestamp": ts, "request_id": request_id,
                       "inputs": [list(r) for r in rows], "outputs": [0.5] * len(rows),
                       "latency_us": latency, "error": error})


def decode(payload):
    """An event of an endpoint whose rows are [x, y, color] and whose output is score."""
    return _decode(payload, lambda _: Columns(("x", "y", "color"), ("score",)))


def _rows(rng, n, shift=0.0):
    x = rng.normal(shift, 1, n)
    y = rng.uniform(8, 22, n)
    c = rng.choice(COLORS + ["purple"], n)
    return list(zip(x.tolist(), y.tolist(), c.tolist()))


def _np_hist(name, values, stats=REF):
    edges = np.asarray(stats[name]["hist"][1])
    assert edges[0] == -np.finfo(float).max and edges.size == 23  # 20 bins, padded
    return np.histogram(np.asarray(values, dtype=float), bins=edges)[0]


def _categories(values, stats=REF):
    cats = stats["color"]["categories"]
    counts = Counter(values)
    return [counts[c] for c in cats] + [sum(n for v, n in counts.items() if v not in cats)]


def _by_key(partials):
    out = {}
    for p in partials:
        assert (p.endpoint_id, p.window_start) not in out
        out[p.endpoint_id, p.window_start] = p
    return out


def _merge_all(partials_lists):
    """Merge partials of several batches per (endpoint, window)."""
    out = {}
    for partials in partials_lists:
        for p in partials:
            key = (p.endpoint_id, p.window_start)
            out[key] = p.aggregate if key not in out else out[key] + p.aggregate
    return out


# --------------------------------------------------------------------------- aggregate_batch


def test_batch_of_two_endpoints_two_windows_and_bad_records():
    rng = np.random.default_rng(7)
    catalog = _catalog(_endpoint("a"), _endpoint("b", REF_B))
    given = {}  # (endpoint, window) -> rows given
    payloads, bad = [], []
    for i in range(60):
        endpoint = "ab"[i % 2]
        window = T0 + WINDOW_MS * ((i // 2) % 2)
        ts = window + int(rng.integers(0, WINDOW_MS))
        rows = _rows(rng, int(rng.integers(1, 6)))
        payloads.append(_event(endpoint, ts, f"r{i}", rows, latency=100 + i))
        given.setdefault((endpoint, window), []).append((ts, rows))
        if i % 17 == 0:
            bad.append(len(payloads))
            payloads.append(['{"endpoint_id": "a", ', "[1, 2]", '{"nothing": 1}', "{}"][len(bad) % 4])
    partials, dead = aggregate_batch(payloads, catalog, WINDOW_MS)

    assert sorted(i for i, _ in dead) == bad
    assert all(isinstance(letter, DeadLetter) and letter.reason for _, letter in dead)
    by_key = _by_key(partials)
    assert set(by_key) == set(given)
    for (endpoint, window), events in given.items():
        p = by_key[endpoint, window]
        agg, stats = p.aggregate, REF if endpoint == "a" else REF_B
        rows = [r for _, rs in events for r in rs]
        assert (agg.events, agg.rows, agg.errors) == (len(events), len(rows), 0)
        assert p.window_start == window and p.max_timestamp_ms == max(ts for ts, _ in events)
        assert agg.first_ms == min(ts for ts, _ in events) and agg.last_ms == p.max_timestamp_ms
        np.testing.assert_array_equal(agg.accumulator.histogram("x"), _np_hist("x", [r[0] for r in rows], stats))
        np.testing.assert_array_equal(agg.accumulator.histogram("y"), _np_hist("y", [r[1] for r in rows], stats))
        assert agg.accumulator.histogram("color").tolist() == _categories([r[2] for r in rows], stats)
        assert agg.unknown_columns == {"score": len(rows)}  # an output without reference statistics
        assert agg.latency_count == len(events)
        # the partial's index is one of its own records
        assert json.loads(payloads[p.index])["endpoint_id"] == endpoint


def test_rows_as_lists_count_exactly_as_the_same_rows_as_objects():
    """The decode fast path hands rows over as value lists (no dict per row); the window's
    aggregate (counts, categories, unknown columns, sample) must be the one the same rows give as
    name → value objects, also when both kinds meet in one batch."""
    rng = np.random.default_rng(3)
    catalog = _catalog(_endpoint("a"))
    events = [(T0 + i, f"r{i}", _rows(rng, int(rng.integers(1, 4)))) for i in range(40)]

    def as_objects(ts, request_id, rows):
        return json.dumps({"endpoint_id": "a", "timestamp": ts, "request_id": request_id,
                           "inputs": [dict(zip(("x", "y", "color"), r)) for r in rows],
                           "outputs": {"score": [0.5] * len(rows)}})

    lists = [_event("a", *e) for e in events]
    objects = [as_objects(*e) for e in events]
    mixed = [lists[i] if i % 3 else objects[i] for i in range(len(events))]
    assert type(decode(lists[0]).rows).__name__ == "PositionalRows"  # the fast path is what is compared
    assert type(decode(objects[0]).rows) is tuple
    blobs = []
    for payloads in (lists, objects, mixed):
        (partial,), dead = aggregate_batch(payloads, catalog, WINDOW_MS, sample_size=50)
        assert dead == [] and partial.aggregate.rows == sum(len(rows) for _, _, rows in events)
        blobs.append(partial.aggregate.to_bytes())
    assert blobs[0] == blobs[1] == blobs[2]


def test_a_placeholder_string_is_an_invalid_value_of_its_column_not_a_dead_letter():
    rng = np.random.default_rng(1)
    good = [_rows(rng, 3) for _ in range(4)]
    odd_rows = [(0.1, 15.0, "red"), ("n/a", 12.0, "blue"), ("2.5", "?", "red"), (None, " 13 ", "red")]
    payloads = [_event("a", T0 + i, f"r{i}", rows) for i, rows in enumerate(good)]
    payloads.insert(2, _event("a", T0 + 99, "odd", odd_rows))
    (p,), dead = aggregate_batch(payloads, _catalog(_endpoint("a")), WINDOW_MS)
    assert dead == []
    acc = p.aggregate.accumulator
    assert (p.aggregate.events, p.aggregate.rows) == (5, 16)
    xs = [r[0] for rs in good for r in rs] + [0.1, 2.5]  # "2.5" is 2.5; "n/a" invalid, None null
    ys = [r[1] for rs in good for r in rs] + [15.0, 12.0, 13.0]
    np.testing.assert_array_equal(acc.histogram("x"), _np_hist("x", xs))
    np.testing.assert_array_equal(acc.histogram("y"), _np_hist("y", ys))
    stats = acc.to_stats()
    assert [stats[c]["invalid"] for c in ("x", "y")] == [1, 1]
    assert [stats[c]["count"] for c in ("x", "y")] == [14, 15] and stats["x"]["nulls"] == 1
    assert acc.invalid_share() == 2 / (14 + 15 + 2)


@pytest.mark.parametrize("value", [10 ** 400, {"a": 1}])
def test_values_that_are_not_float64_numbers_are_dead_letters_not_crashes(value):
    payloads = [_event("a", T0, "ok", [(0.0, 11.0, "red")]),
                json.dumps({"endpoint_id": "a", "timestamp": T0, "inputs": {"x": value, "y": 1.0, "color": "red"}})]
    partials, dead = aggregate_batch(payloads, _catalog(_endpoint("a")), WINDOW_MS)
    assert [i for i, _ in dead] == [1] and "'x'" in dead[0][1].reason
    assert partials[0].aggregate.rows == 1


def test_error_events_count_as_events_and_errors_not_rows():
    payloads = [_event("a", T0, "ok", [(0.0, 11.0, "red")] * 3, latency=500),
                _event("a", T0 + 5, "failed", [(0.0, 11.0, "red")], latency=2_000_000, error="timeout")]
    (p,), dead = aggregate_batch(payloads, _catalog(_endpoint("a")), WINDOW_MS)
    assert not dead
    agg = p.aggregate
    assert (agg.events, agg.errors, agg.rows, agg.accumulator.rows) == (2, 1, 3, 3)
    assert agg.latency_count == 2 and agg.latency_mean == pytest.approx((500 + 2_000_000) / 2)
    assert agg.last_ms == T0 + 5


def test_endpoint_without_reference_counts_rows_only():
    rows = [(1.0, 2.0, "red"), (3.0, 4.0, "blue")]
    payloads = [_event("new", T0, "r1", rows), _event("new", T0 + 1, "r2", rows[:1])]
    catalog = _catalog(_endpoint("new", stats={}))
    (p,), dead = aggregate_batch(payloads, catalog, WINDOW_MS)
    agg = p.aggregate
    assert not dead and agg.accumulator is None
    assert (agg.events, agg.rows) == (2, 3)
    assert agg.unknown_columns == {"x": 3, "y": 3, "color": 3, "score": 3}
    assert len(agg.sample.rows) == 3


def test_endpoint_unknown_to_the_catalog_counts_rows_only():
    payload = json.dumps({"endpoint_id": "ghost", "timestamp": T0, "inputs": [[1, 2]]})
    (p,), dead = aggregate_batch([payload], _catalog(), WINDOW_MS)
    assert not dead and p.aggregate.accumulator is None
    assert p.aggregate.unknown_columns == {"f0": 1, "f1": 1}


def test_add_events_that_do_not_fit_leave_the_aggregate_unchanged():
    layout = Layout.from_feature_stats(REF)
    agg = WindowAggregate()
    good = decode(_event("a", T0, "g", [(0.0, 11.0, "red")], latency=10))
    agg.add_events([good], layout)
    before = agg.to_bytes()
    bad = decode(_event("a", T0 + 1, "b", [(10 ** 400, 11.0, "red")], latency=10))
    with pytest.raises(ValueError, match="'x'"):
        agg.add_events([good, bad], layout)
    assert agg.to_bytes() == before


def test_count_rows_names_the_column():
    layout = Layout.from_feature_stats(REF)
    matrix, cats, invalid = count_rows([{"x": 1, "y": None, "color": "red"}, {"x": True, "color": None}], layout)
    np.testing.assert_array_equal(matrix, [[1.0, np.nan], [1.0, np.nan]])
    assert cats == {"color": ["red", None]} and invalid is None
    matrix, _, invalid = count_rows([{"x": "1e1", "y": "N/A"}, {"x": "-", "y": 2}], layout)
    np.testing.assert_array_equal(matrix, [[10.0, np.nan], [np.nan, 2.0]])
    np.testing.assert_array_equal(invalid, [[False, True], [True, False]])
    with pytest.raises(ValueError, match="column 'y'"):
        count_rows([{"x": 1, "y": 10 ** 400}], layout)


# --------------------------------------------------------------------------- merging


def _mixed_payloads(seed, n=120):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ts = T0 + int(rng.integers(0, 2 * WINDOW_MS))
        error = "boom" if i % 11 == 0 else None
        out.append(_event("ab"[i % 2], ts, f"q{i}", _rows(rng, int(rng.integers(1, 5)), shift=0.5),
                          latency=float(rng.lognormal(7, 1)), error=error))
    return out


def _assert_same(a: WindowAggregate, b: WindowAggregate):
    assert (a.rows, a.events, a.errors, a.first_ms, a.last_ms) == (b.rows, b.events, b.errors, b.first_ms, b.last_ms)
    assert a.latency_count == b.latency_count and a.latency_sum == pytest.approx(b.latency_sum)
    np.testing.assert_array_equal(a.latency_hist, b.latency_hist)
    assert a.unknown_columns == b.unknown_columns
    for attr in ("rows", "count", "nulls", "hist", "cat_count", "cat_hist"):
        np.testing.assert_array_equal(getattr(a.accumulator, attr), getattr(b.accumulator, attr))
    np.testing.assert_allclose(a.accumulator.mean, b.accumulator.mean)
    # the sample as an application gets it (sample_df), whether its rows came through a partial's
    # bytes or not: the same columns in the same order, values exactly, a missing value in the same
    # place (None or NaN in an object column)
    sample_a, sample_b = a.sample_frame(), b.sample_frame()
    assert list(sample_a.columns) == list(sample_b.columns) and sample_a.equals(sample_b)


def test_merging_partials_equals_aggregating_all_at_once():
    payloads = _mixed_payloads(3)
    catalog = _catalog(_endpoint("a"), _endpoint("b", REF_B))
    whole, _ = aggregate_batch(payloads, catalog, WINDOW_MS, sample_size=25)
    whole = {(p.endpoint_id, p.window_start): p.aggregate for p in whole}
    chunks = [aggregate_batch(payloads[i:i + 17], catalog, WINDOW_MS, sample_size=25)[0]
              for i in range(0, len(payloads), 17)]
    forward = _merge_all(chunks)
    backward = _merge_all(chunks[::-1])
    assert set(forward) == set(whole) and len(whole) == 4
    for key in whole:
        _assert_same(forward[key], whole[key])
        _assert_same(backward[key], whole[key])
        assert len(whole[key].sample.rows) == 25
    # the numbers themselves, independently of the merge
    events = [json.loads(p) for p in payloads]
    a0 = [e for e in events if e["endpoint_id"] == "a" and e["timestamp"] < T0 + WINDOW_MS]
    rows = [r for e in a0 if not e["error"] for r in e["inputs"]]
    agg = whole["a", T0]
    assert (agg.events, agg.errors, agg.rows) == (len(a0), sum(bool(e["error"]) for e in a0), len(rows))
    np.testing.assert_array_equal(agg.accumulator.histogram("x"), _np_hist("x", [r[0] for r in rows]))


def test_merge_returns_a_new_aggregate():
    layout = Layout.from_feature_stats(REF)
    a = WindowAggregate()
    a.add_events([decode(_event("a", T0, "1", [(0.0, 11.0, "red")]))], layout)
    empty = WindowAggregate()
    merged = a + empty
    merged.add_events([decode(_event("a", T0, "2", [(0.0, 11.0, "red")] * 5))], layout)
    assert a.rows == 1 and a.accumulator.rows == 1 and len(a.sample.rows) == 1
    assert merged.rows == 6 and merged.accumulator.rows == 6


def test_merge_across_a_reference_change_keeps_the_newer_counts():
    old, new = Layout.from_feature_stats(REF), Layout.from_feature_stats(REF_B)
    a, b = WindowAggregate(), WindowAggregate()
    a.add_events([decode(_event("a", T0 + 10, "1", [(0.0, 11.0, "red")] * 2))], old)
    b.add_events([decode(_event("a", T0 + 20, "2", [(5.0, 11.0, "red")] * 3))], new)
    for merged in (a + b, b + a):
        assert merged.rows == 5 and merged.accumulator.layout is new and merged.accumulator.rows == 3


# --------------------------------------------------------------------------- bytes


def _sample_aggregate():
    payloads = _mixed_payloads(5, n=40)
    (p, *_), _ = aggregate_batch(payloads, _catalog(_endpoint("a"), _endpoint("b")), WINDOW_MS, sample_size=10)
    return p.aggregate


def test_bytes_round_trip():
    agg = _sample_aggregate()
    agg.unknown_columns["odd name"] = 2
    layout = agg.accumulator.layout
    data = agg.to_bytes()
    for layouts in (layout, {layout.fingerprint: layout}, lambda fp: layout if fp == layout.fingerprint else None):
        back = WindowAggregate.from_bytes(data, layouts)
        _assert_same(back, agg)
        assert back.latency_sum == agg.latency_sum and back.sample.k == 10
        np.testing.assert_array_equal(back.sample.priorities, agg.sample.priorities)
        assert back.to_bytes() == data


def test_bytes_without_the_layout_is_a_clear_error():
    data = _sample_aggregate().to_bytes()
    other = Layout.from_feature_stats(REF_B)
    for layouts in (None, other, lambda fp: None, {}):
        with pytest.raises(ValueError, match="reference"):
            WindowAggregate.from_bytes(data, layouts)
    with pytest.raises(ValueError, match="magic"):
        WindowAggregate.from_bytes(b"XXXX" + data[4:], None)


def test_bytes_round_trip_without_reference():
    agg = WindowAggregate()
    agg.add_events([decode(_event("n", T0, "1", [(1.0, 2.0, "x")], latency=7))], None)
    back = WindowAggregate.from_bytes(agg.to_bytes())
    assert back.accumulator is None and back.rows == 1 and back.unknown_columns == agg.unknown_columns
    assert back.sample.rows == agg.sample.rows and back.latency_quantile(0.5) == agg.latency_quantile(0.5)


# --------------------------------------------------------------------------- latency


def test_latency_quantiles_within_4_percent_of_numpy():
    rng = np.random.default_rng(11)
    lat = rng.lognormal(mean=8.0, sigma=1.2, size=20_000)
    events = [Event("e", T0 + i, str(i), (), False, float(v), "native") for i, v in enumerate(lat)]
    agg = WindowAggregate()
    agg.add_events(events[:7_000], None)
    other = WindowAggregate()
    other.add_events(events[7_000:], None)
    merged = agg + other
    for q in (0.5, 0.95, 0.99):
        assert merged.latency_quantile(q) == pytest.approx(np.percentile(lat, q * 100), rel=0.04)
    assert merged.latency_mean == pytest.approx(np.mean(lat))
    assert merged.latency_count == lat.size


def test_latency_quantiles_of_a_few_values_and_none():
    agg = WindowAggregate()
    assert agg.latency_quantile(0.5) is None and agg.latency_mean is None
    agg.add_events([Event("e", T0, "1", (), False, 1000.0, "native")], None)
    assert agg.latency_quantile(0.99) == pytest.approx(1000.0, rel=0.04)
    assert LATENCY_EDGES[-1] >= 1e10  # a latency of hours still has a bin


# --------------------------------------------------------------------------- sample


def _events_with_ids(ids, rows_per_event=1):
    return [Event("e", T0 + i, rid, tuple({"i": i, "j": j} for j in range(rows_per_event)), False, None, "native")
            for i, rid in enumerate(ids)]


@pytest.mark.parametrize("id_format", ["req-{}", "{}", "{:08x}", "00000000-0000-4000-8000-{:012d}"])
def test_sample_is_uniform_and_bounded(id_format):
    n, k = 20_000, 1_000
    agg = WindowAggregate()
    agg.add_events(_events_with_ids([id_format.format(i) for i in range(n)]), None, sample_size=k)
    picked = np.array([r["i"] for r in agg.sample.rows]).astype(int)  # sampled numbers are floats
    assert len(picked) == k and len(set(picked.tolist())) == k
    # neither clumped nor suspiciously regular: a random sample passes both sides of the test
    for counts in (np.histogram(picked, bins=10, range=(0, n))[0], np.bincount(picked % 10, minlength=10),
                   np.bincount(picked % 16, minlength=16)):
        assert 0.001 < chisquare(counts).pvalue < 0.999, counts


def test_sample_of_batch_rows_is_uniform_over_rows():
    agg = WindowAggregate()
    agg.add_events(_events_with_ids(["one-request"], rows_per_event=20_000), None, sample_size=500)
    picked = np.array([r["j"] for r in agg.sample.rows])
    assert len(picked) == 500
    assert 0.001 < chisquare(np.histogram(picked, bins=10, range=(0, 20_000))[0]).pvalue < 0.999


def _reference_priority(request_id: str | None, time_ms: int, row: int) -> int:
    """The documented formula of ``row_priorities``, one row at a time on Python integers."""
    mask = (1 << 64) - 1

    def fmix(h):
        h ^= h >> 33
        h = (h * 0xFF51AFD7ED558CCD) & mask
        h ^= h >> 33
        h = (h * 0xC4CEB9FE1A85EC53) & mask
        return h ^ (h >> 33)

    if request_id is None:
        h = fmix(time_ms ^ 0x5D5D710000000002)
    else:
        key = request_id.encode()
        h = fmix(len(key) ^ 0x5D5D1D0000000001)
        key += b"\0" * (-len(key) % 8)
        for i in range(0, len(key), 8):
            h = fmix(h ^ int.from_bytes(key[i:i + 8], "little"))
    return fmix((h + (row + 1) * 0x9E3779B97F4A7C15) & mask)


def test_sample_priorities_follow_the_documented_formula():
    """The sample keeps the rows of lowest priority; a row's priority is a 64-bit hash of the
    request id (or, without one, the time) and the row number: stable across versions and
    restarts. Ids of every length (the long ones are hashed apart from the batch's matrix) give the
    same priority whatever else is in the batch."""
    ids = ["req-1", None, "", "12345678", "123456789", "é" * 32, "x" * 64, "y" * 65, "z" * 300, "req-1\0"]
    events = [Event("e", T0 + 7 + i, rid, tuple({"x": float(10 * i + r)} for r in range(1 + i % 3)), False, None,
                    "native") for i, rid in enumerate(ids)]
    expected = {_reference_priority(ev.request_id, ev.timestamp_ms, r): row["x"]
                for ev in events for r, row in enumerate(ev.rows)}
    assert len(expected) == sum(len(ev.rows) for ev in events)  # no two rows alike
    agg = WindowAggregate()
    agg.add_events(events, None, sample_size=100)
    assert sorted(agg.sample.priorities.tolist()) == sorted(expected)
    assert [r["x"] for r in agg.sample.rows] == [expected[p] for p in agg.sample.priorities.tolist()]
    alone = [int(p) for ev in events for p in row_priorities(
        [None if ev.request_id is None else ev.request_id.encode()], [ev.timestamp_ms], [len(ev.rows)])]
    assert sorted(alone) == sorted(expected)


def test_sample_smaller_than_k_keeps_every_row():
    agg = WindowAggregate()
    agg.add_events(_events_with_ids(["a", "b", "c"], rows_per_event=2), None, sample_size=100)
    assert sorted((r["i"], r["j"]) for r in agg.sample.rows) == [(i, j) for i in range(3) for j in range(2)]


def test_sample_is_deterministic_whatever_the_split_and_merge_order():
    events = _events_with_ids([f"id-{i}" for i in range(3_000)], rows_per_event=2)
    rng = np.random.default_rng(0)

    def aggregate(cuts, order):
        parts = []
        for lo, hi in zip([0, *cuts], [*cuts, len(events)]):
            part = WindowAggregate()
            part.add_events(events[lo:hi], None, sample_size=50)
            parts.append(part)
        total = WindowAggregate()  # an empty aggregate is neutral (its default k does not count)
        for i in order:
            total = total + parts[i]
        return total

    whole = aggregate([], [0])
    for _ in range(5):
        cuts = sorted(rng.choice(np.arange(1, len(events)), size=6, replace=False).tolist())
        merged = aggregate(cuts, rng.permutation(7).tolist())
        assert merged.sample.rows == whole.sample.rows
        assert merged.rows == whole.rows == 6_000


def test_merging_many_parts_at_once_equals_adding_them_one_by_one():
    """The window stage merges a window's pending partials in one pass (one sample selection):
    the result must be what adding them one by one gives, also when their columns differ and the
    reference changes between them."""
    rng = np.random.default_rng(11)
    catalog = _catalog(_endpoint("a"))
    parts = []
    for i in range(9):
        if i == 6:  # the reference changes: later partials count on the new one
            catalog = _catalog(_endpoint("a", REF_B))
        rows = _rows(rng, 30, shift=0.1 * i)
        payloads = [_event("a", T0 + 1000 * i + j, f"m{i}-{j}", [r]) for j, r in enumerate(rows)]
        (partial,), _ = aggregate_batch(payloads, catalog, WINDOW_MS, sample_size=40)
        parts.append(partial.aggregate)
    odd = WindowAggregate()  # a part whose rows name other columns (a string feature, a new one)
    odd.add_events([Event("a", T0 + 5, "odd", ({"x": 0.5, "label": "cat"},), False, 9.0, "native")], None, 40)
    parts.insert(3, odd)
    one_by_one = parts[0]
    for part in parts[1:]:
        one_by_one = one_by_one + part
    at_once = WindowAggregate.merge_all(parts)
    assert at_once.to_bytes() == one_by_one.to_bytes()
    assert at_once.rows == 9 * 30 + 1 and len(at_once.sample.rows) == 40
    assert parts[0].rows == 30  # the parts are left as they were


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), chunk=st.integers(1, 40), sample_size=st.sampled_from([0, 7, 25]))
@example(seed=3388, chunk=1, sample_size=7)  # a sampled row without 'x' first: x missing on one side, NaN on the other
def test_merge_bytes_of_a_windows_partials_equals_aggregating_all_at_once(seed, chunk, sample_size):
    """The window stage merges a window's pending partials from their bytes in one pass: the same
    window as aggregating all its records in one batch (counts, rows, latency, sample exactly;
    mean and std to rounding), with special values (null, inf, placeholders, new columns) among them."""
    rng = np.random.default_rng(seed)
    payloads = _mixed_payloads(seed)
    for i in range(0, len(payloads), 9):  # special values in some events
        x = [None, float("inf"), "N/A", -1e308][i % 4]
        payloads.insert(i, json.dumps({"endpoint_id": "ab"[i % 2], "timestamp": T0 + int(rng.integers(0, WINDOW_MS)),
                                       "request_id": f"s{i}", "inputs": [{"x": x, "y": 12.5, "color": "blue",
                                                                          "new": i}], "outputs": [0.5]}))
    catalog = _catalog(_endpoint("a"), _endpoint("b", REF_B))
    whole, _ = aggregate_batch(payloads, catalog, WINDOW_MS, sample_size=sample_size)
    parts = {}
    for lo in range(0, len(payloads), chunk):
        for p in aggregate_batch(payloads[lo:lo + chunk], catalog, WINDOW_MS, sample_size=sample_size)[0]:
            parts.setdefault((p.endpoint_id, p.window_start), []).append(p.aggregate.to_bytes())
    assert set(parts) == {(p.endpoint_id, p.window_start) for p in whole}
    for p in whole:
        merged = WindowAggregate.merge_bytes(parts[p.endpoint_id, p.window_start], catalog.layout_by_fingerprint)
        _assert_same(merged, p.aggregate)
        a, b = merged.accumulator, p.aggregate.accumulator
        for attr in ("invalid", "infs", "nulls", "cat_nulls", "min", "max"):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
        np.testing.assert_allclose(a.m2, b.m2, rtol=1e-9)
        assert merged.sampled_extra == p.aggregate.sampled_extra and merged.sample.k == p.aggregate.sample.k


def test_merge_bytes_follows_merge_all_when_the_reference_changes_within_the_window():
    parts = []
    for i, stats in enumerate([REF, REF, REF_B, REF]):
        payloads = [_event("a", T0 + 1000 * i + j, f"m{i}-{j}", [r]) for j, r in
                    enumerate(_rows(np.random.default_rng(i), 5))]
        (partial,), _ = aggregate_batch(payloads, _catalog(_endpoint("a", stats)), WINDOW_MS, sample_size=3)
        parts.append(partial.aggregate.to_bytes())
    layouts = {layout.fingerprint: layout for layout in (Layout.from_feature_stats(REF), Layout.from_feature_stats(REF_B))}
    one_by_one = WindowAggregate.merge_all([WindowAggregate.from_bytes(data, layouts) for data in parts])
    assert WindowAggregate.merge_bytes(parts, layouts).to_bytes() == one_by_one.to_bytes()
    assert one_by_one.rows == 20 and one_by_one.accumulator.rows == 5  # only the last part counted on its reference
    with pytest.raises(ValueError, match="not known"):
        WindowAggregate.merge_bytes(parts[:2], {})
    dropped = WindowAggregate.merge_bytes(parts[:2], {}, unknown_reference="drop")
    assert dropped.rows == 10 and dropped.accumulator is None


def test_sample_merges_parts_whose_columns_differ():
    """Partials of one window may name different columns (a new output, a feature that became a
    string): the merged sample keeps every column, a missing number NaN, a missing other absent."""
    def event(rid, row):
        return Event("e", T0, rid, (row,), False, None, "native")

    a, b = WindowAggregate(), WindowAggregate()
    a.add_events([event("a1", {"x": 1, "y": 2.5}), event("a2", {"x": 3, "y": None})], None, sample_size=10)
    b.add_events([event("b1", {"x": 4, "label": "cat", "flag": True})], None, sample_size=10)
    rows = {r["x"]: r for r in (a + b).sample.rows}
    assert set(rows) == {1.0, 3.0, 4.0}
    assert rows[1.0]["y"] == 2.5 and np.isnan(rows[3.0]["y"]) and np.isnan(rows[4.0]["y"])
    assert rows[4.0]["label"] == "cat" and rows[4.0]["flag"] is True
    assert "label" not in rows[1.0] and "flag" not in rows[3.0]
    frame = (a + b).sample_frame()
    assert list(frame.columns) == ["x", "y", "label", "flag"] and len(frame) == 3
    assert frame["x"].dtype == np.float64 and frame["label"].tolist().count("cat") == 1
    back = WindowAggregate.from_bytes((a + b).to_bytes())
    assert back.sample.rows[0].keys() == (a + b).sample.rows[0].keys()
    assert [r["x"] for r in back.sample.rows] == [r["x"] for r in (a + b).sample.rows]


# --------------------------------------------------------------------------- catalog


class Store:
    """What the job's load() reads; counts the loads."""

    def __init__(self, *records):
        self.records = list(records)
        self.loads = 0

    def __call__(self):
        self.loads += 1
        return [dict(r) for r in self.records]


def test_catalog_reloads_known_endpoints_every_refresh_interval():
    store, clock = Store(_endpoint("a")), Clock()
    catalog = EndpointCatalog(store, refresh_seconds=30, miss_seconds=5, clock=clock)
    assert catalog.columns("a").features == ("x", "y", "color") and store.loads == 1
    for t in (1, 10, 29.9):
        clock.now = t
        assert catalog.layout("a") is not None
    assert store.loads == 1
    clock.now = 30
    catalog.record("a")
    assert store.loads == 2


def test_catalog_reloads_early_for_an_unknown_endpoint_at_most_every_miss_seconds():
    store, clock = Store(_endpoint("a")), Clock()
    catalog = EndpointCatalog(store, refresh_seconds=30, miss_seconds=5, clock=clock)
    assert catalog.record("b") is None and store.loads == 1  # the first load already said "unknown"
    clock.now = 4.9
    assert catalog.layout("b") is None and catalog.columns("b").features == ()
    assert store.loads == 1
    store.records.append(_endpoint("b", REF_B))
    clock.now = 5.0
    assert catalog.layout("b") is not None and store.loads == 2
    clock.now = 6
    assert catalog.record("c") is None and store.loads == 2  # last load 1 s old
    clock.now = 10
    assert catalog.record("c") is None and store.loads == 3
    for t in np.arange(10, 15, 0.5):
        clock.now = t
        catalog.record("c")
    assert store.loads == 3


def test_catalog_keeps_old_layouts_after_a_reference_change():
    store, clock = Store(_endpoint("a")), Clock()
    catalog = EndpointCatalog(store, refresh_seconds=30, clock=clock)
    old = catalog.layout("a")
    assert catalog.layout("a") is old  # built once
    store.records = [_endpoint("a", REF_B)]
    clock.now = 31
    new = catalog.layout("a")
    assert new.fingerprint != old.fingerprint
    assert catalog.layout_by_fingerprint(old.fingerprint) is old
    assert catalog.layout_by_fingerprint(new.fingerprint) is new
    # state written before the change still reads
    agg = WindowAggregate()
    agg.add_events([decode(_event("a", T0, "1", [(0.0, 11.0, "red")]))], old)
    assert WindowAggregate.from_bytes(agg.to_bytes(), catalog.layout_by_fingerprint).accumulator.layout is old


def test_catalogs_sharing_a_layout_cache_lay_each_reference_out_once():
    from streamdrift.udfs.catalog import LayoutCache

    store, clock, cache = Store(_endpoint("a"), _endpoint("b", REF_B)), Clock(), LayoutCache()
    parse, windows = (EndpointCatalog(store, refresh_seconds=30, clock=clock, layouts=cache) for _ in range(2))
    assert parse.layout("a") is windows.layout("a") and parse.layout("b") is windows.layout("b")
    assert parse.layout("a").fingerprint != parse.layout("b").fingerprint
    old_b = parse.layout("b")
    # the store gives new dicts each load (Store copies): equal references keep their layout
    clock.now = 31
    assert parse.layout("b") is old_b and store.loads == 3
    # a changed reference gets a new layout, in every catalog that reloads; a deleted endpoint goes
    old_a = parse.layout("a")
    store.records = [_endpoint("b", REF)]
    clock.now = 62
    new_b = parse.layout("b")
    assert new_b is not old_b and new_b.fingerprint == old_a.fingerprint  # now the reference a had
    assert windows.layout("b") is new_b and parse.layout("a") is None and windows.layout("a") is None


def test_catalog_unknown_fingerprint_reloads_at_most_every_miss_seconds():
    store, clock = Store(_endpoint("a")), Clock()
    catalog = EndpointCatalog(store, refresh_seconds=30, miss_seconds=5, clock=clock)
    assert catalog.layout_by_fingerprint(b"\0" * 8) is None and store.loads == 1
    clock.now = 3
    assert catalog.layout_by_fingerprint(b"\0" * 8) is None and store.loads == 1
    clock.now = 8
    assert catalog.layout_by_fingerprint(b"\0" * 8) is None and store.loads == 2


def test_catalog_endpoint_with_a_broken_reference_does_not_stop_the_others():
    broken = {"x": {"count": 3, "hist": [[1, 2], [0.0, 1.0]]}}  # 2 counts, 2 edges
    catalog = _catalog(_endpoint("a"), _endpoint("bad", broken))
    assert catalog.layout("a") is not None
    assert catalog.layout("bad") is None and "'x'" in catalog.errors["bad"]
    payloads = [_event("bad", T0, "1", [(0.0, 11.0, "red")]), _event("a", T0, "2", [(0.0, 11.0, "red")])]
    partials, dead = aggregate_batch(payloads, catalog, WINDOW_MS)
    assert not dead and {p.endpoint_id: p.aggregate.rows for p in partials} == {"bad": 1, "a": 1}


def test_catalog_keeps_known_endpoints_while_the_store_is_down():
    from streamdrift.udfs.catalog import EndpointCatalog

    now = [0.0]
    up = [True]

    def load():
        if not up[0]:
            raise ConnectionError("store down")
        return [{"endpoint_id": "e1", "feature_names": ["a"], "feature_stats": {}}]

    catalog = EndpointCatalog(load, refresh_seconds=10, clock=lambda: now[0])
    assert catalog.columns("e1").features == ("a",)
    up[0] = False
    now[0] = 100.0
    assert catalog.columns("e1").features == ("a",)  # stale but known
    assert catalog.record("e2") is None  # unknown stays unknown, no crash


def test_catalog_first_load_failure_is_raised():
    from streamdrift.udfs.catalog import EndpointCatalog

    def load():
        raise ConnectionError("store down")

    with pytest.raises(ConnectionError):
        EndpointCatalog(load).columns("e1")
