"""Many small batches counted at once (streamdrift.udfs.accumulator.count_parts, and
count_parts_encoded, which holds each part as its bytes) count exactly as each batch counted alone
with ``add_batch``, which test_accumulator checks against np.histogram.

The parse stage counts a batch's partials this way when the batch is spread over many endpoints
(a few rows each); here random layouts (uneven edges, a zero-width bin, one- and two-bin columns,
a degenerate range, no numeric column) and random values (edges themselves, nulls, infinities,
values near the float limit) are counted both ways.
"""

import copy
import pickle
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.accumulator import Accumulator, Layout, count_parts, count_parts_encoded, encode_accumulators

BOTH = pytest.mark.parametrize("count", [count_parts, count_parts_encoded])

MAX = sys.float_info.max

EDGES = [
    [-5.0, -4.9, 0.0, 0.0, 3.0, 1e6],  # uneven, a zero-width bin
    [0.0, 0.5, 1.0],  # two bins: no padding
    [2.0, 3.0],  # one bin
    [7.0, 7.0 + 1e-12, 7.0 + 2e-12, 7.0 + 3e-12],  # a range the scale cannot resolve well
    list(np.linspace(-1.0, 1.0, 21)),  # as np.histogram(bins=20) makes them
    list(np.linspace(-MAX / 2, MAX / 2, 11)),  # its width overflows
]


def _layout(kinds: list[int]) -> Layout:
    return Layout.from_feature_stats({f"c{j}": {"hist": [[1] * (len(EDGES[k]) - 1), EDGES[k]]}
                                      for j, k in enumerate(kinds)})


LAYOUTS = [_layout(kinds) for kinds in ([0, 1, 2], [4], [3, 5, 4, 0], [], [1, 1])]


def _values(rng: np.random.Generator, n: int, layout: Layout) -> np.ndarray:
    """n rows × the layout's numeric columns: values near and on its edges, nulls, infinities."""
    x = np.empty((n, len(layout.numeric)))
    for j, edges in enumerate(layout.edges):
        inner = edges[1:-1] if edges.size > 2 else edges
        choice = rng.integers(0, 8, n)
        x[:, j] = np.select(
            [choice == 0, choice == 1, choice == 2, choice == 3, choice == 4],
            [rng.choice(inner, n), np.nan, rng.choice([np.inf, -np.inf], n), rng.choice([1e299, -1e299, MAX, -MAX], n),
             np.nextafter(rng.choice(inner, n), rng.choice([np.inf, -np.inf], n))],
            rng.uniform(inner.min() - 1, inner.max() + 1, n))
    return x


def _alone(layout: Layout, x: np.ndarray) -> Accumulator:
    return Accumulator.from_reference(layout).add_batch(x)


def _assert_same(got: Accumulator, want: Accumulator, x: np.ndarray) -> None:
    assert got.rows == want.rows
    for field in ("count", "nulls", "infs", "invalid", "hist", "min", "max", "cat_hist"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    # mean and M2: sums in another order, so equal to rounding, i.e. within a few ulps of the
    # column's largest value (of its square for M2); a column holding values near the float limit
    # overflows or cancels depending on that order, so it is compared on its counts alone
    scale = np.abs(np.where(np.isfinite(x), x, 0.0)).max(axis=0, initial=0.0)
    kept = scale < 1e100
    scale = scale[kept]
    for field, tol in (("mean", 1e-12 * scale), ("m2", 1e-12 * scale ** 2 * len(x))):
        assert (np.abs(getattr(got, field)[kept] - getattr(want, field)[kept]) <= tol).all(), field
    back = Accumulator.from_bytes(got.to_bytes(), got.layout)  # its bytes read back as add_batch's
    np.testing.assert_array_equal(back.hist, want.hist)


def _cells(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([x.T.reshape(-1) for x in parts]) if parts else np.zeros(0)


PARTS = st.lists(st.tuples(st.integers(0, len(LAYOUTS) - 1), st.integers(1, 40)), min_size=1, max_size=30)


@BOTH
@settings(max_examples=150, deadline=None)
@given(PARTS, st.integers(0, 2 ** 32 - 1), st.booleans())
def test_parts_count_as_each_alone(count, parts, seed, finite):
    rng = np.random.default_rng(seed)
    layouts = [LAYOUTS[k] for k, _ in parts]
    values = [_values(rng, n, layout) for layout, (_, n) in zip(layouts, parts)]
    if finite:  # the path for batches without a null or an infinity
        values = [np.where(np.isfinite(x), x, 0.5) for x in values]
    got = count(layouts, np.array([n for _, n in parts]), _cells(values))
    assert len(got) == len(parts)
    for acc, layout, x in zip(got, layouts, values):
        _assert_same(acc, _alone(layout, x), x)


@BOTH
def test_a_hand_count(count):
    """Two parts on one layout, each with bins of its own. x: edges 0, 1, 2 padded, so bins <0,
    [0,1), [1,2], >2; y: one bin [0, 1] padded, so <0, [0,1], >1."""
    layout = Layout.from_feature_stats({"x": {"hist": [[2, 2], [0.0, 1.0, 2.0]]}, "y": {"hist": [[1], [0.0, 1.0]]}})
    # part 0: rows (0.5, 0.2), (2.0, nan), (-inf, 1.0); part 1: row (1.5, 0.7)
    a, b = count([layout, layout], np.array([3, 1]), np.array([0.5, 2.0, -np.inf, 0.2, np.nan, 1.0, 1.5, 0.7]))
    assert a.histogram("x").tolist() == [1, 1, 1, 0] and a.histogram("y").tolist() == [0, 2, 0]
    assert a.count.tolist() == [3, 2] and a.nulls.tolist() == [0, 1] and a.infs.tolist() == [1, 0]
    assert a.mean.tolist() == [1.25, 0.6] and a.min.tolist() == [0.5, 0.2] and a.max.tolist() == [2.0, 1.0]
    assert b.histogram("x").tolist() == [0, 0, 1, 0] and b.rows == 1 and b.mean.tolist() == [1.5, 0.7]


@BOTH
def test_a_part_can_be_merged_and_counted_further_without_touching_the_others(count):
    rng = np.random.default_rng(3)
    x, y = _values(rng, 4, LAYOUTS[0]), _values(rng, 3, LAYOUTS[0])
    a, b = count([LAYOUTS[0], LAYOUTS[0]], np.array([4, 3]), _cells([x, y]))
    before = b.to_bytes()
    more = _values(rng, 5, LAYOUTS[0])
    a.add_batch(more)
    assert b.to_bytes() == before
    both = np.concatenate([x, more])
    _assert_same(a, _alone(LAYOUTS[0], both), both)


@pytest.mark.parametrize("layouts, rows, cells, message", [
    ([LAYOUTS[1]], [1, 1], np.zeros(2), "2 row counts for 1 layouts"),
    ([LAYOUTS[1]], [0], np.zeros(0), "at least one row"),
    ([LAYOUTS[1]], [2], np.zeros(3), "3 values for parts that hold 2"),
    ([Layout.from_feature_stats({"c": {"categories": ["a"], "category_counts": [1]}})], [1], np.zeros(0),
     "categorical columns"),
])
@BOTH
def test_what_it_refuses(count, layouts, rows, cells, message):
    with pytest.raises(ValueError, match=message):
        count(layouts, np.array(rows), cells)


@settings(max_examples=150, deadline=None)
@given(PARTS, st.integers(0, 2 ** 32 - 1), st.booleans())
def test_parts_held_as_bytes_encode_as_the_counted_parts_do(parts, seed, finite):
    """The window stage reads the parse stage's partials whichever way they were counted: the bytes
    are the same, sparse or dense, one row or many, with nulls and infinities or without."""
    rng = np.random.default_rng(seed)
    layouts = [LAYOUTS[k] for k, _ in parts]
    values = [_values(rng, n, layout) for layout, (_, n) in zip(layouts, parts)]
    if finite:
        values = [np.where(np.isfinite(x), x, 0.5) for x in values]
    rows, cells = np.array([n for _, n in parts]), _cells(values)
    want = encode_accumulators(count_parts(layouts, rows, cells))
    got = count_parts_encoded(layouts, rows, cells)
    assert encode_accumulators(got) == want
    assert [acc.to_bytes() for acc in got] == want
    # read (decoded from its bytes), then encoded again: the same bytes
    assert [Accumulator.from_bytes(acc.to_bytes(), acc.layout).to_bytes() for acc in got] == want
    assert [(acc.hist, acc.to_bytes())[1] for acc in got] == want


def test_one_row_parts_on_twenty_columns_are_sparse_and_equal():
    """The live shape at 10,000 endpoints: one row per part, each column one bin."""
    layout = _layout([4] * 20)
    rng = np.random.default_rng(9)
    x = [rng.uniform(-1.2, 1.2, (1, 20)) for _ in range(50)]
    want = encode_accumulators(count_parts([layout] * 50, np.ones(50, dtype=int), _cells(x)))
    got = count_parts_encoded([layout] * 50, np.ones(50, dtype=int), _cells(x))
    assert encode_accumulators(got) == want
    assert all(acc.to_bytes()[4] == 3 for acc in got)  # the sparse version
    for acc, row in zip(got, x):
        assert acc.count.tolist() == [1] * 20 and acc.hist.sum() == 20 and acc.mean.tolist() == row[0].tolist()


def test_a_part_held_as_bytes_behaves_as_an_accumulator_when_changed_copied_or_pickled():
    rng = np.random.default_rng(4)
    x, y, more = _values(rng, 2, LAYOUTS[2]), _values(rng, 1, LAYOUTS[2]), _values(rng, 3, LAYOUTS[2])
    a, b = count_parts_encoded([LAYOUTS[2]] * 2, np.array([2, 1]), _cells([x, y]))
    plain_b = count_parts([LAYOUTS[2]], np.array([1]), _cells([y]))[0]
    for how in (copy.deepcopy, lambda part: pickle.loads(pickle.dumps(part)), copy.copy):
        part = count_parts_encoded([LAYOUTS[2]], np.array([1]), _cells([y]))[0]  # a fresh one each
        got = how(part)
        assert type(got) is Accumulator and got.to_bytes() == plain_b.to_bytes() == part.to_bytes()
        assert got.hist.tolist() == plain_b.hist.tolist() and got.mean.tolist() == plain_b.mean.tolist()
    a.add_batch(more)  # changed before any array was read: decoded first
    both = np.concatenate([x, more])
    _assert_same(a, _alone(LAYOUTS[2], both), both)
    c = count_parts_encoded([LAYOUTS[2]], np.array([1]), _cells([y]))[0]
    c.rows = 7  # any attribute set decodes it first
    assert c.hist.tolist() == plain_b.hist.tolist() and c.to_bytes() != plain_b.to_bytes()
    # a batch of both kinds encodes each as its own to_bytes
    mixed = [a, b, c, plain_b]
    assert encode_accumulators(mixed) == [acc.to_bytes() for acc in mixed]
