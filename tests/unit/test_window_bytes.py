"""The window state's JSON parts (header, sample rows) read back as the standard library reads them,
whatever numbers and text they hold."""

import json
import math
import struct

import numpy as np

from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.window import RowBlock, WindowAggregate, _json_loads

SCALARS = (st.none() | st.booleans() | st.floats() | st.text()
           | st.integers() | st.integers(-(2 ** 70), 2 ** 70) | st.sampled_from([2 ** 63, 2 ** 64, -(2 ** 63) - 1]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                      max_leaves=20)


def same(a, b) -> bool:
    """Equal values of the same types all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=400)
@given(VALUES, st.booleans())
def test_state_json_reads_as_the_standard_library_reads_it(value, ascii_only):
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert same(_json_loads(text), json.loads(text))


def test_a_header_with_counts_beyond_64_bits_reads_back_exactly():
    agg = WindowAggregate(rows=2 ** 64 + 1, events=3, latency_count=2, latency_sum=2 ** 70 + 3,
                          unknown_columns={"ts": 2 ** 65 + 7, "b\u00e9": 1})
    back = WindowAggregate.from_bytes(agg.to_bytes())
    assert (back.rows, back.latency_sum, back.unknown_columns) == (2 ** 64 + 1, 2 ** 70 + 3, {"ts": 2 ** 65 + 7, "b\u00e9": 1})
    assert type(back.rows) is int


def test_sample_rows_with_integers_beyond_float64_nan_and_text_read_back():
    rows = [{"x": 1.5, "big": 10 ** 400 + 5, "c": "caf\u00e9"}, {"x": float("nan"), "big": -(2 ** 70), "c": "\ud800"}]
    back = RowBlock.from_bytes(RowBlock.from_rows(rows).to_bytes())
    first, second = back.to_rows()
    assert first == {"x": 1.5, "big": 10 ** 400 + 5, "c": "caf\u00e9"}
    assert (second["big"], second["c"]) == (-(2 ** 70), "\ud800") and math.isnan(second["x"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.lists(st.floats(-1e6, 1e6), max_size=4)), min_size=1, max_size=8))
def test_merging_partials_keeps_the_sample_size_of_those_with_rows(parts):
    import numpy as np

    from streamdrift.udfs.window import Sample

    aggs = []
    for i, (k, xs) in enumerate(parts):
        priorities = np.arange(i * 10, i * 10 + len(xs), dtype=np.uint64)
        aggs.append(WindowAggregate(rows=len(xs), events=len(xs), sample=Sample(
            k, priorities, block=RowBlock.from_rows([{"x": x} for x in xs]))))
    merged = WindowAggregate.merge_bytes([a.to_bytes() for a in aggs])
    with_rows = [k for k, xs in parts if xs]
    assert merged.sample.k == max(with_rows or [k for k, _ in parts])  # an empty sample's k is neutral
    assert merged.to_bytes() == WindowAggregate.merge_all([WindowAggregate.from_bytes(a.to_bytes()) for a in aggs]).to_bytes()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2 ** 70), st.floats(), st.floats(), st.dictionaries(st.text(), st.integers(0, 2 ** 70), max_size=3),
       st.lists(st.text(), max_size=3, unique=True))
def test_a_header_and_a_sample_of_numbers_read_back_whatever_they_hold(rows, latency_sum, sampled_extra, unknown, names):
    """The header and a sample's names are written by orjson where it writes what the standard
    library writes, and by the standard library otherwise (NaN, infinities, lone surrogates,
    integers beyond 64 bits): either way they read back."""
    import numpy as np

    from streamdrift.udfs.window import Sample

    block = RowBlock(2, list(names), list(names), np.arange(2.0 * len(names)).reshape(2, len(names)), {})
    agg = WindowAggregate(rows=rows, latency_sum=latency_sum, sampled_extra=sampled_extra, unknown_columns=unknown,
                          sample=Sample(5, np.array([3, 1], dtype=np.uint64), block=block))
    back = WindowAggregate.from_bytes(agg.to_bytes())
    assert same([back.rows, back.latency_sum, back.sampled_extra, back.unknown_columns],
                [rows, latency_sum, sampled_extra, unknown])
    assert back.sample.block.names == list(names) and back.sample.block.to_rows() == block.to_rows()


def _layouts():
    """Three references: 2 numeric columns; 5 numeric columns and a categorical one; none numeric."""
    from streamdrift.udfs.accumulator import Layout

    def numeric(n, seed):
        edges = sorted(set(np.random.default_rng(seed).normal(0, 1, 6).round(3).tolist()))
        return {f"x{j}": {"hist": [[1] * (len(edges) - 1), edges]} for j in range(n)}

    color = {"categories": ["red", "green"], "category_counts": [3, 1], "other_count": 0}
    return [Layout.from_feature_stats(numeric(2, 1)), Layout.from_feature_stats({**numeric(5, 2), "color": color}),
            Layout.from_feature_stats({"color": color})]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 120), st.integers(0, 3), st.integers(0, 4), st.integers(0, 2 ** 16)),
                min_size=1, max_size=12))
def test_a_batch_of_aggregates_encodes_to_the_bytes_of_each_alone(parts):
    """The parse stage encodes a batch's partials together (``encode_aggregates``): the bytes of
    each are those of its own ``to_bytes``, the integers sparse or dense as each is smaller, and
    they read back to its counts, moments, latencies and sample."""
    from streamdrift.udfs.accumulator import Accumulator
    from streamdrift.udfs.window import LATENCY_EDGES, Sample, encode_aggregates

    layouts = _layouts()
    aggs = []
    for which, rows, latencies, sampled, seed in parts:
        rng = np.random.default_rng(seed)
        agg = WindowAggregate(rows=rows, events=rows)
        if which < 3:
            layout = layouts[which]
            x = rng.normal(0, 2, (rows, len(layout.numeric)))
            x[rng.random(x.shape) < 0.1] = np.nan
            x[rng.random(x.shape) < 0.05] = np.inf
            cats = {"color": rng.choice(["red", "green", "blue", None], rows).tolist()} if layout.categorical else None
            agg.accumulator = Accumulator(layout).add_batch(x, cats)
        lat = rng.uniform(1, 1e6, latencies)
        agg.latency_count, agg.latency_sum = latencies, float(lat.sum())
        agg.latency_hist += np.bincount(np.searchsorted(LATENCY_EDGES, lat, side="right"), minlength=agg.latency_hist.size)
        if sampled:
            agg.sample = Sample(10, rng.integers(0, 2 ** 63, sampled, dtype=np.uint64),
                                [{"x0": float(v), "tag": "t"} for v in rng.normal(0, 1, sampled)])
        aggs.append(agg)
    encoded = encode_aggregates(aggs)
    assert encoded == [agg.to_bytes() for agg in aggs]  # the batch as each alone
    for agg, data in zip(aggs, encoded):  # and each as the formats' docstrings lay it out
        (size,) = struct.unpack_from("<I", data, 4)
        head = json.loads(data[8:8 + size])
        assert data[:4] == b"SDWA"
        assert {k: head[k] for k in ("rows", "events", "lc", "ls", "k")} == {
            "rows": agg.rows, "events": agg.events, "lc": agg.latency_count, "ls": agg.latency_sum, "k": agg.sample.k}
        acc, lat, pri, sample = _cut(data[8 + size:], head["sizes"])
        assert acc == (b"" if agg.accumulator is None else _documented_accumulator_bytes(agg.accumulator))
        nonzero = np.flatnonzero(agg.latency_hist)
        assert lat == np.concatenate([nonzero, agg.latency_hist[nonzero]]).astype("<i8").tobytes()
        assert pri == agg.sample.priorities.astype("<u8").tobytes()
        assert sample == agg.sample.block.to_bytes()
    by_fingerprint = {layout.fingerprint: layout for layout in layouts}
    for agg, data in zip(aggs, encoded):
        back = WindowAggregate.from_bytes(data, by_fingerprint)
        assert (back.rows, back.latency_count, back.latency_sum) == (agg.rows, agg.latency_count, agg.latency_sum)
        assert back.latency_hist.tolist() == agg.latency_hist.tolist()
        assert back.sample.rows == agg.sample.rows and back.sample.priorities.tolist() == agg.sample.priorities.tolist()
        if agg.accumulator is None:
            assert back.accumulator is None
            continue
        for name in ("count", "nulls", "infs", "invalid", "hist", "cat_count", "cat_nulls", "cat_hist"):
            assert getattr(back.accumulator, name).tolist() == getattr(agg.accumulator, name).tolist(), name
        for name in ("mean", "m2", "min", "max"):
            np.testing.assert_array_equal(getattr(back.accumulator, name), getattr(agg.accumulator, name))


def _cut(data, sizes):
    out, pos = [], 0
    for size in sizes:
        out.append(data[pos:pos + size])
        pos += size
    assert pos == len(data)
    return out


def _documented_accumulator_bytes(acc):
    """An accumulator's bytes as ``udfs/accumulator.py``'s docstring lays them out, written here
    without its code: version 3 (sparse) where 4 + 12 N < 8 x the integers, else version 2."""
    layout = acc.layout
    ints = np.concatenate([acc.count, acc.nulls, acc.infs, acc.invalid, acc.hist, acc.cat_count, acc.cat_nulls,
                           acc.cat_hist]).astype("<i8")
    floats = np.concatenate([acc.mean, acc.m2, acc.min, acc.max]).astype("<f8").tobytes()
    nonzero = [i for i, v in enumerate(ints.tolist()) if v]
    sparse = 4 + 12 * len(nonzero) < 8 * ints.size
    head = struct.pack("<4sB3x8sQIIII", b"SDAC", 3 if sparse else 2, layout.fingerprint, acc.rows, len(layout.numeric),
                       sum(e.size - 1 for e in layout.edges), len(layout.categorical),
                       sum(len(c) + 1 for c in layout.categories))
    if sparse:
        return (head + struct.pack("<I", len(nonzero)) + struct.pack(f"<{len(nonzero)}I", *nonzero)
                + struct.pack(f"<{len(nonzero)}q", *(int(ints[i]) for i in nonzero)) + floats)
    return head + ints.tobytes() + floats
