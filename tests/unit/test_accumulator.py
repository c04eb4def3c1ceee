"""Window accumulator: the reference's bins counted as numpy counts them, merging, bytes, bad input."""

import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streamdrift.udfs.accumulator import CHUNK_ROWS, Accumulator, Layout, merge_moments
from streamdrift.udfs.reference import feature_stats

MAX = sys.float_info.max
FAST = settings(max_examples=40, deadline=None)


def _reference(n_cols=3, seed=0, categorical=True):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"f{i}": rng.normal(i, 1 + i, 1_000) for i in range(n_cols)})
    if categorical:
        df["color"] = rng.choice(["red", "green", "blue"], 1_000)
    return feature_stats(df)


REF = _reference()
LAYOUT = Layout.from_feature_stats(REF)


def _uneven_reference():
    """Hand-made MLRun-style stats: unpadded, uneven edges, a zero-width bin."""
    return {
        "u": {"count": 10, "hist": [[1, 2, 3, 0, 4], [-5.0, -4.9, 0.0, 0.0, 3.0, 1e6]]},
        "v": {"count": 10, "hist": [[5, 5], [0.0, 0.5, 1.0]]},
    }


def _numpy_hist(values, edges):
    """np.histogram on the padded edges (MLRun's window counts), with ±inf put in the outer bins
    (our convention)."""
    finite = values[np.isfinite(values)]
    counts = np.histogram(finite, bins=edges)[0]
    counts[0] += np.sum(values == -np.inf)
    counts[-1] += np.sum(values == np.inf)
    return counts


def _window_hist(values, edges):
    """What a window counts, from numpy alone: the values within the inner edges as the reference's
    own histogram counts them (np.histogram on the inner edges: its last bin is closed), the values
    below and above them in the padding bins (±inf included); NaN nowhere."""
    inner = edges[1:-1]
    x = values[~np.isnan(values)]
    within = (x >= inner[0]) & (x <= inner[-1])
    return np.concatenate([[np.sum(x < inner[0])], np.histogram(x[within], bins=inner)[0], [np.sum(x > inner[-1])]])


def _data(rows, edges_per_col, seed):
    """Random values plus values exactly on the edges (the boundary cases)."""
    rng = np.random.default_rng(seed)
    cols = []
    for e in edges_per_col:
        inner = e[1:-1]
        x = rng.uniform(inner[0] - 1, inner[-1] + 1, rows)
        on_edge = rng.random(rows) < 0.3
        x[on_edge] = rng.choice(e, on_edge.sum())  # includes ±MAX, the outer edges
        cols.append(x)
    return np.column_stack(cols)


special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0])


# ------------------------------------------------------------------ histograms


@FAST
@given(st.integers(0, 3000), st.integers(0, 10_000), st.booleans())
def test_histograms_equal_numpy_on_the_reference_edges(rows, seed, uneven):
    ref = _uneven_reference() if uneven else REF
    layout = Layout.from_feature_stats(ref)
    x = _data(rows, layout.edges, seed)
    acc = Accumulator.from_reference(layout)
    acc.add_batch(x, {"color": ["red"] * rows} if layout.categorical else None)
    for j, name in enumerate(layout.numeric):
        np.testing.assert_array_equal(acc.histogram(name), _window_hist(x[:, j], layout.edges[j]), err_msg=name)


_EDGE = st.one_of(st.floats(-1e6, 1e6), st.floats(-1e300, 1e300), st.sampled_from([0.0, -0.0, 1.0, 5e-324]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_EDGE, min_size=2, max_size=24), st.lists(st.one_of(_EDGE, special), max_size=40),
       st.integers(0, 3), st.randoms(use_true_random=False))
def test_every_value_in_the_bin_numpy_gives_on_random_edges(inner, values, copies, rnd):
    """Random non-decreasing edges (repeated edges included), values drawn from the edges
    themselves (every edge, ±MAX and the training maximum) and elsewhere: the window's counts
    are the reference histogram's on the inner edges; every value but the training maximum is
    where MLRun's np.histogram on the padded edges puts it."""
    inner = sorted(inner)
    edges = np.array([-MAX, *inner, MAX])
    ref = {"x": {"count": 1, "hist": [[0] * (edges.size - 1), edges.tolist()]}}
    on_edges = [float(e) for e in edges for _ in range(copies)]
    x = np.array(values + on_edges, dtype=np.float64)
    rnd.shuffle(x)
    acc = Accumulator.from_reference(ref).add_batch(x[:, None])
    got = acc.histogram("x")
    np.testing.assert_array_equal(got, _window_hist(x, edges))
    others = x[x != inner[-1]]
    np.testing.assert_array_equal(
        Accumulator.from_reference(ref).add_batch(others[:, None]).histogram("x"), _numpy_hist(others, edges))
    top = int(np.sum(x == inner[-1]))  # the training maximum: in the last inner bin, not MLRun's padding bin
    mlrun = _numpy_hist(x, edges)
    if inner[-1] < MAX:
        assert (got[-2] - mlrun[-2], got[-1] - mlrun[-1]) == (top, -top)


@FAST
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 60), st.just(3)),
               elements=st.one_of(st.floats(-50, 50), special)),
)
def test_nan_is_null_and_infinities_land_in_the_outer_bins(x):
    acc = Accumulator.from_reference(LAYOUT).add_batch(x, {"color": ["red"] * len(x)})
    for j, name in enumerate(LAYOUT.numeric):
        col = x[:, j]
        np.testing.assert_array_equal(acc.histogram(name), _numpy_hist(col, LAYOUT.edges[j]))
        assert acc.nulls[j] == np.isnan(col).sum()
        assert acc.count[j] == (~np.isnan(col)).sum() == acc.histogram(name).sum()
        assert acc.infs[j] == np.isinf(col).sum()


@FAST
@given(st.integers(1, 500), st.integers(0, 10_000))
def test_moments_min_max_match_numpy_on_finite_values(rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10, (rows, 3))
    x[rng.random((rows, 3)) < 0.1] = np.nan
    x[rng.random((rows, 3)) < 0.05] = np.inf
    acc = Accumulator.from_reference(LAYOUT)
    for start in range(0, rows, 37):  # several batches
        acc.add_batch(x[start:start + 37], {"color": ["red"] * len(x[start:start + 37])})
    stats = acc.to_stats()
    for j, name in enumerate(LAYOUT.numeric):
        finite = x[np.isfinite(x[:, j]), j]
        s = stats[name]
        if finite.size:
            assert s["mean"] == pytest.approx(finite.mean(), rel=1e-9, abs=1e-9)
            assert (s["min"], s["max"]) == (finite.min(), finite.max())
        else:
            assert "mean" not in s and "min" not in s
        if finite.size > 1:
            assert s["std"] == pytest.approx(finite.std(ddof=1), rel=1e-9)
        else:
            assert "std" not in s


def test_batch_size_does_not_change_the_counts():
    x = _data(3 * CHUNK_ROWS + 17, LAYOUT.edges, 3)
    cats = np.array(["red", "blue", "pink"])[np.arange(len(x)) % 3]
    whole = Accumulator.from_reference(LAYOUT).add_batch(x, {"color": cats})
    pieces = Accumulator.from_reference(LAYOUT)
    for start in range(0, len(x), 1000):
        pieces.add_batch(x[start:start + 1000], {"color": cats[start:start + 1000]})
    np.testing.assert_array_equal(whole.hist, pieces.hist)
    np.testing.assert_array_equal(whole.cat_hist, pieces.cat_hist)
    np.testing.assert_allclose(whole.mean, pieces.mean, rtol=1e-12)
    np.testing.assert_allclose(whole.m2, pieces.m2, rtol=1e-9)


# ------------------------------------------------------------------ categories


def test_categories_count_unseen_values_as_other_and_nulls_apart():
    acc = Accumulator.from_reference(REF)
    cats = ["red", "red", "purple", None, "blue", np.nan, "", "green"]
    acc.add_batch(np.zeros((len(cats), 3)), {"color": cats})
    stats = acc.to_stats()["color"]
    order = REF["color"]["categories"]
    expected = {"red": 2, "blue": 1, "green": 1}
    assert stats["categories"] == order
    assert stats["category_counts"] == [expected[c] for c in order]
    assert stats["other_count"] == 2  # "purple" and ""
    assert stats["nulls"] == 2 and stats["count"] == 6


def test_non_string_categories_compare_as_strings():
    ref = feature_stats(pd.DataFrame({"code": ["1", "2", "2"]}), categorical=["code"])  # numbers as text: forced
    acc = Accumulator.from_reference(ref).add_batch(None, {"code": np.array([1, 2, 3])})
    assert acc.histogram("code").tolist() == [1, 1, 1]  # "2", "1", other


# ------------------------------------------------------------------ merging


def _random_acc(seed, rows=300):
    """An accumulator of random rows with nulls and placeholder strings ("N/A", "?")."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1, 3, (rows, 3)).astype(object)
    x[rng.random((rows, 3)) < 0.05] = np.nan
    x[rng.random((rows, 3)) < 0.03] = rng.choice(["N/A", "?"])
    cats = rng.choice(["red", "green", "teal", None], rows)
    return Accumulator.from_reference(LAYOUT).add_batch(x, {"color": cats}), x, cats


def _assert_same(a, b):
    for attr in ("count", "nulls", "infs", "invalid", "hist", "cat_count", "cat_nulls", "cat_hist", "min", "max"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    assert a.rows == b.rows
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.m2, b.m2, rtol=1e-9)


@FAST
@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_merge_is_associative_commutative_and_equals_counting_all_rows(s1, s2, s3):
    (a, xa, ca), (b, xb, cb), (c, xc, cc) = (_random_acc(s, rows=50 + s % 200) for s in (s1, s2, s3))
    _assert_same(a.merge(b), b.merge(a))
    np.testing.assert_array_equal(a.merge(b).mean, b.merge(a).mean)  # symmetric formula: bitwise
    _assert_same((a + b) + c, a + (b + c))
    together = Accumulator.from_reference(LAYOUT).add_batch(
        np.vstack([xa, xb, xc]), {"color": np.concatenate([ca, cb, cc])}
    )
    _assert_same(a + b + c, together)
    assert together.invalid.tolist() == [sum(isinstance(v, str) for v in col) for col in np.vstack([xa, xb, xc]).T]


def test_merge_with_empty_is_identity_and_leaves_inputs_unchanged():
    a, _, _ = _random_acc(1)
    before = a.to_bytes()
    merged = a + Accumulator.from_reference(LAYOUT)
    _assert_same(merged, a)
    np.testing.assert_array_equal(merged.mean, a.mean)
    assert a.to_bytes() == before


def test_chan_formula_against_two_pass_variance():
    rng = np.random.default_rng(2)
    xa, xb = rng.normal(5, 2, 100), rng.normal(-3, 1, 37)
    n, mean, m2 = merge_moments(
        np.array([100]), np.array([xa.mean()]), np.array([((xa - xa.mean()) ** 2).sum()]),
        np.array([37]), np.array([xb.mean()]), np.array([((xb - xb.mean()) ** 2).sum()]),
    )
    both = np.concatenate([xa, xb])
    assert n[0] == 137
    assert mean[0] == pytest.approx(both.mean(), rel=1e-12)
    assert m2[0] / 136 == pytest.approx(both.var(ddof=1), rel=1e-12)


def test_merging_different_references_is_refused():
    other = Accumulator.from_reference(_reference(seed=1))
    with pytest.raises(ValueError, match="different references"):
        Accumulator.from_reference(LAYOUT).merge(other)


# ------------------------------------------------------------------ bytes


def test_bytes_round_trip_is_exact_and_small():
    a, _, _ = _random_acc(4)
    data = a.to_bytes()
    b = Accumulator.from_bytes(data, REF)  # from feature_stats ...
    c = Accumulator.from_bytes(data, LAYOUT)  # ... or from a cached layout
    for restored in (b, c):
        _assert_same(restored, a)
        np.testing.assert_array_equal(restored.mean, a.mean)
        np.testing.assert_array_equal(restored.m2, a.m2)
    assert restored.add_batch(np.ones((2, 3)), {"color": ["red", "red"]}).rows == a.rows + 2
    twenty = Accumulator.from_reference(_reference(n_cols=20, categorical=False))
    assert len(twenty.to_bytes()) < 5_000


def test_state_of_version_1_is_read_as_without_invalid_values():
    """Version 1 (before invalid values were counted): the layout of the module docstring without
    the invalid[C] block. A window open across the upgrade goes on counting."""
    import struct

    a, _, _ = _random_acc(6)
    a.invalid[:] = 0
    data = a.to_bytes()
    c = len(LAYOUT.numeric)
    head = struct.Struct("<4sB3x8sQIIII")
    magic, _, fingerprint, rows, *sizes = head.unpack_from(data)
    ints = np.frombuffer(data, "<i8", offset=head.size)
    v1 = head.pack(magic, 1, fingerprint, rows, *sizes) + np.delete(ints, np.s_[3 * c:4 * c]).tobytes()
    old = Accumulator.from_bytes(v1, LAYOUT)
    _assert_same(old, a)
    assert old.to_bytes() == data  # written again as version 2
    with pytest.raises(ValueError, match="version 7"):
        Accumulator.from_bytes(head.pack(magic, 7, fingerprint, rows, *sizes) + data[head.size:], LAYOUT)


def _as_version_1(data):
    """Version-2 bytes of an accumulator without invalid values, written as version 1."""
    import struct

    c = len(LAYOUT.numeric)
    head = struct.Struct("<4sB3x8sQIIII")
    magic, _, fingerprint, rows, *sizes = head.unpack_from(data)
    n_int = 4 * c + sum(sizes[1:])
    ints = np.frombuffer(data, "<i8", count=n_int, offset=head.size)
    floats = data[head.size + 8 * n_int:]
    return head.pack(magic, 1, fingerprint, rows, *sizes) + np.delete(ints, np.s_[3 * c:4 * c]).tobytes() + floats


@FAST
@given(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=12), sizes=st.data())
def test_merge_bytes_equals_counting_all_rows_at_once(seeds, sizes):
    """The window stage's one-pass merge of many parts (dense and sparse bytes, and version 1's):
    the counts of all their rows counted together, mean and M2 those of numpy on the finite values."""
    parts, xs, cs = [], [], []
    for i, seed in enumerate(seeds):
        rows = sizes.draw(st.integers(0, 60), label=f"rows of part {i}")
        acc, x, cats = _random_acc(seed, rows=rows)
        if i % 3 == 2 and rows:  # some parts as version 1: no invalid values then
            x[np.isin(x, ["N/A", "?"])] = np.nan
            acc = Accumulator.from_reference(LAYOUT).add_batch(x, {"color": cats})
            data = _as_version_1(acc.to_bytes() if acc.to_bytes()[4] == 2 else _dense(acc))
        else:
            data = acc.to_bytes()
        parts.append(data)
        xs.append(x)
        cs.append(cats)
    merged = Accumulator.merge_bytes(parts, LAYOUT)
    together = Accumulator.from_reference(LAYOUT).add_batch(np.vstack(xs), {"color": np.concatenate(cs)})
    _assert_same(merged, together)
    values = np.vstack(xs)
    for j in range(3):
        column = np.array([v for v in values[:, j] if isinstance(v, float) and np.isfinite(v)])
        if column.size:
            assert merged.mean[j] == pytest.approx(column.mean(), rel=1e-12, abs=1e-12)
            assert merged.m2[j] == pytest.approx(((column - column.mean()) ** 2).sum(), rel=1e-9, abs=1e-9)
        else:
            assert (merged.mean[j], merged.m2[j]) == (0.0, 0.0)


def _dense(acc):
    """Version-2 (dense) bytes of ``acc``, whatever form to_bytes chose."""
    import struct

    head = struct.Struct("<4sB3x8sQIIII")
    ints = np.concatenate([acc.count, acc.nulls, acc.infs, acc.invalid, acc.hist, acc.cat_count, acc.cat_nulls,
                           acc.cat_hist]).astype("<i8")
    floats = np.concatenate([acc.mean, acc.m2, acc.min, acc.max]).astype("<f8")
    return (head.pack(b"SDAC", 2, LAYOUT.fingerprint, acc.rows, len(LAYOUT.numeric), LAYOUT.n_bins,
                      len(LAYOUT.categorical), LAYOUT.n_cat_bins) + ints.tobytes() + floats.tobytes())


def test_merge_bytes_refuses_a_part_of_another_reference():
    other = Accumulator.from_reference(_reference(seed=1)).to_bytes()
    with pytest.raises(ValueError, match="another reference"):
        Accumulator.merge_bytes([Accumulator.from_reference(LAYOUT).to_bytes(), other], LAYOUT)
    assert Accumulator.merge_bytes([], LAYOUT).rows == 0


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 400), seed=st.integers(0, 10_000))
def test_bytes_of_any_number_of_rows_round_trip_and_few_rows_take_little(rows, seed):
    """Few rows fill few bins: their counts are written sparse (version 3) when that is smaller;
    whatever the form, the bytes read back to the same accumulator."""
    import struct

    twenty = _reference(n_cols=20, categorical=False)
    a = Accumulator.from_reference(twenty)
    if rows:
        a.add_batch(np.random.default_rng(seed).normal(0, 1, (rows, 20)))
    data = a.to_bytes()
    restored = Accumulator.from_bytes(data, twenty)
    _assert_same(restored, a)
    np.testing.assert_array_equal(restored.mean, a.mean)
    np.testing.assert_array_equal(restored.m2, a.m2)
    dense = 40 + 8 * (4 * 20 + 20 * 22) + 8 * 4 * 20  # version 2 (module docstring)
    nonzero = int(sum(np.count_nonzero(getattr(a, n)) for n in ("count", "nulls", "infs", "invalid", "hist")))
    version = struct.unpack_from("<4sB", data)[1]
    assert len(data) == min(dense, 40 + 4 + 12 * nonzero + 8 * 4 * 20)
    assert version == (3 if len(data) < dense else 2)
    if rows <= 2:
        assert len(data) < 1_500


def test_sparse_bytes_pointing_outside_the_counts_are_refused():
    a = Accumulator.from_reference(LAYOUT).add_batch(np.ones((1, 3)), {"color": ["red"]})
    data = bytearray(a.to_bytes())
    assert data[4] == 3
    data[44:48] = (10_000).to_bytes(4, "little")  # the first index
    with pytest.raises(ValueError, match="indexes integer 10000"):
        Accumulator.from_bytes(bytes(data), LAYOUT)
    with pytest.raises(ValueError, match="expected"):
        Accumulator.from_bytes(a.to_bytes()[:-1], LAYOUT)


def test_bad_bytes_are_refused():
    data = _random_acc(5)[0].to_bytes()
    with pytest.raises(ValueError, match="bad magic"):
        Accumulator.from_bytes(b"XXXX" + data[4:], LAYOUT)
    with pytest.raises(ValueError, match="expected"):
        Accumulator.from_bytes(data[:-8], LAYOUT)
    with pytest.raises(ValueError, match="too short"):
        Accumulator.from_bytes(data[:10], LAYOUT)
    with pytest.raises(ValueError, match="another reference"):
        Accumulator.from_bytes(data, _reference(seed=9))


# ------------------------------------------------------------------ input forms


def test_record_batch_and_mapping_inputs_equal_the_array_input():
    x = _data(500, LAYOUT.edges, 6)
    cats = np.array(["red", "blue"] * 250)
    expected = Accumulator.from_reference(LAYOUT).add_batch(x, {"color": cats})
    batch = pa.record_batch(
        [pa.array(x[:, 0]), pa.array(x[:, 1]), pa.array(x[:, 2]), pa.array(cats), pa.array(range(500))],
        names=["f0", "f1", "f2", "color", "request_id"],  # extra columns are ignored
    )
    _assert_same(Accumulator.from_reference(LAYOUT).add_batch(batch), expected)
    mapping = {name: x[:, j] for j, name in enumerate(LAYOUT.numeric)}
    _assert_same(Accumulator.from_reference(LAYOUT).add_batch(mapping, {"color": cats}), expected)


def test_arrow_nulls_and_integer_columns():
    batch = pa.record_batch(
        [pa.array([1, None, 3]), pa.array([0.5, float("nan"), None]), pa.array([True, False, None]),
         pa.array(["red", None, "red"])],
        names=["f0", "f1", "f2", "color"],
    )
    acc = Accumulator.from_reference(LAYOUT).add_batch(batch)
    assert acc.nulls.tolist() == [1, 2, 1]
    assert acc.count.tolist() == [2, 1, 2]
    assert acc.cat_nulls.tolist() == [1]


# ------------------------------------------------------------------ bad input


def test_empty_batch_is_a_no_op():
    acc = Accumulator.from_reference(LAYOUT)
    acc.add_batch(np.empty((0, 3)), {"color": []})
    acc.add_batch([], {"color": []})
    assert acc.rows == 0 and acc.hist.sum() == 0
    stats = acc.to_stats()
    assert stats["f0"]["count"] == 0 and "mean" not in stats["f0"]


def test_all_nan_column_is_counted_as_nulls():
    x = np.column_stack([np.full(4, np.nan), np.ones(4), np.ones(4)])
    stats = Accumulator.from_reference(LAYOUT).add_batch(x, {"color": ["red"] * 4}).to_stats()
    assert stats["f0"]["count"] == 0 and stats["f0"]["nulls"] == 4
    assert sum(stats["f0"]["hist"][0]) == 0 and "mean" not in stats["f0"]
    assert stats["f1"]["count"] == 4


def test_wrong_column_count_names_the_expected_columns():
    acc = Accumulator.from_reference(LAYOUT)
    with pytest.raises(ValueError, match=r"2 columns, the reference has 3: \['f0', 'f1', 'f2'\]"):
        acc.add_batch(np.ones((5, 2)), {"color": ["red"] * 5})
    with pytest.raises(ValueError, match="must be 2-D"):
        acc.add_batch(np.ones(3), {"color": ["red"] * 3})
    with pytest.raises(ValueError, match=r"lacks categorical reference columns \['color'\]"):
        acc.add_batch(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"lacks reference columns \['f2'\]"):
        acc.add_batch(pa.record_batch([pa.array([1.0])] * 3, names=["f0", "f1", "color"]))
    with pytest.raises(ValueError, match="column 'color' has 4 values, the batch has 5 rows"):
        acc.add_batch(np.ones((5, 3)), {"color": ["red"] * 4})
    assert acc.rows == 0 and acc.hist.sum() == 0  # nothing half-counted


def test_strings_in_a_numeric_column_are_numbers_or_invalid_values():
    rows = np.array([[1.0, "abc", "3"], [" 2.5 ", "N/A", None], ["", "-", "nan"], [4, "1e2", "?"]], dtype=object)
    acc = Accumulator.from_reference(LAYOUT).add_batch(rows, {"color": ["red"] * 4})
    # by hand: f0 = 1, 2.5, invalid "", 4; f1 = invalid x3, 100; f2 = 3, null, null ("nan"), invalid
    assert acc.invalid.tolist() == [1, 3, 1]
    assert acc.count.tolist() == [3, 1, 1] and acc.nulls.tolist() == [0, 0, 2] and acc.infs.tolist() == [0, 0, 0]
    numbers = np.array([[1.0, np.nan, 3.0], [2.5, np.nan, np.nan], [np.nan, np.nan, np.nan], [4.0, 100.0, np.nan]])
    same = Accumulator.from_reference(LAYOUT).add_batch(numbers, {"color": ["red"] * 4})
    np.testing.assert_array_equal(acc.hist, same.hist)  # invalid values are not binned
    np.testing.assert_array_equal(acc.mean, same.mean)
    stats = acc.to_stats()
    assert [stats[c]["invalid"] for c in LAYOUT.numeric] == [1, 3, 1]
    assert acc.invalid_share() == 5 / (5 + 5)
    # the same strings as an Arrow column, and as a mask beside a float matrix
    batch = pa.record_batch([pa.array(rows[:, j].tolist(), type=pa.string()) if j else
                             pa.array([1.0, 2.5, None, 4.0]) for j in range(3)] + [pa.array(["red"] * 4)],
                            names=["f0", "f1", "f2", "color"])
    from_arrow = Accumulator.from_reference(LAYOUT).add_batch(batch)
    assert from_arrow.invalid.tolist() == [0, 3, 1] and from_arrow.count.tolist() == [3, 1, 1]
    masked = Accumulator.from_reference(LAYOUT).add_batch(numbers, {"color": ["red"] * 4},
                                                          invalid=np.array([[0, 1, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]]))
    _assert_same(masked, acc)


def test_a_value_neither_number_nor_string_names_the_column():
    acc = Accumulator.from_reference(LAYOUT)
    rows = np.array([[1.0, 2.0, 3.0], [4.0, {"a": 1}, 6.0]], dtype=object)
    with pytest.raises(ValueError, match=r"column 'f1' is numeric in the reference but row 1 holds \{'a': 1\}"):
        acc.add_batch(rows, {"color": ["red", "red"]})
    batch = pa.record_batch(
        [pa.array([1.0]), pa.array([[1.0]]), pa.array([1.0]), pa.array(["red"])],
        names=["f0", "f1", "f2", "color"],
    )
    with pytest.raises(ValueError, match="column 'f1' is numeric in the reference but the batch has Arrow type list"):
        acc.add_batch(batch)
    with pytest.raises(ValueError, match="invalid mask has shape"):
        acc.add_batch(np.ones((2, 3)), {"color": ["red"] * 2}, invalid=np.zeros((3, 3), bool))
    assert acc.rows == 0
    ok = np.array([[1, None, 2.5]], dtype=object)  # None is a null, ints are numbers
    acc.add_batch(ok, {"color": ["red"]})
    assert acc.nulls.tolist() == [0, 1, 0]


def test_malformed_reference_names_the_column():
    with pytest.raises(ValueError, match="column 'g'"):
        Layout.from_feature_stats({"g": {"count": 1, "hist": [[1, 1], [0.0, 1.0]]}})
    with pytest.raises(ValueError, match="column 'c'.*duplicates"):
        Layout.from_feature_stats({"c": {"categories": ["a", "a"], "category_counts": [1, 1]}})


def test_columns_without_histogram_are_not_monitored():
    ref = {"t": {"count": 3, "nulls": 0}, **_uneven_reference()}
    layout = Layout.from_feature_stats(ref)
    assert layout.numeric == ("u", "v") and layout.categorical == ()
    # unpadded MLRun histograms are padded, as MLRun's pad_hist does
    assert layout.edges[1].tolist() == [-MAX, 0.0, 0.5, 1.0, MAX]


def test_the_training_rows_counted_as_a_window_give_the_reference_histogram():
    rng = np.random.default_rng(4)
    training = pd.DataFrame({"flag": rng.integers(0, 2, 1000).astype(float),
                             "rating": rng.integers(1, 6, 1000).astype(float),
                             "score": np.minimum(rng.uniform(0, 1.3, 1000), 1.0),  # capped at 1.0
                             "x": rng.normal(0, 1, 1000)})
    fs = feature_stats(training)
    acc = Accumulator.from_reference(fs).add_batch(training.to_numpy())
    for name in training:
        inner_counts = np.histogram(training[name], bins=20)[0]  # the reference, as MLRun makes it
        np.testing.assert_array_equal(acc.histogram(name), [0, *inner_counts, 0], err_msg=name)
    assert acc.histogram("flag")[-2] == (training["flag"] == 1).sum() > 0


def test_accumulators_encoded_together_refuse_one_whose_arrays_are_not_its_layouts_sizes():
    """Encoded together, the accumulators' arrays are cut by their layouts' sizes: one of other
    sizes would shift the bytes of every accumulator after it, so none is encoded."""
    from streamdrift.udfs.accumulator import encode_accumulators

    good = Accumulator.from_reference(LAYOUT).add_batch(np.ones((2, 3)), {"color": ["red", "red"]})
    bad = Accumulator.from_reference(LAYOUT)
    bad.hist = np.zeros(LAYOUT.n_bins + 1, dtype=np.int64)
    with pytest.raises(ValueError, match="layout's sizes"):
        encode_accumulators([good, bad, good])
    assert encode_accumulators([good, good]) == [good.to_bytes()] * 2
