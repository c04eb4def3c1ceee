"""Window accumulator: counts rows on the reference bins; mergeable; compact bytes.

A window's statistics are kept as integer counts on the *reference* edges plus a few
mergeable moments per column, so that two windows (or two partial windows) merge by
addition and the state is a handful of numpy arrays.

Conventions (every one is tested against ``np.histogram``):

* A numeric value x falls in bin i of its column when ``e_i <= x < e_i+1``, as
  ``np.histogram(x, bins=padded_reference_edges)`` counts it, with one exception: a value
  equal to the last inner edge (the training maximum) is counted in the last inner bin, as
  the reference's own histogram counted it (``np.histogram(x, bins=20)`` closes its last bin;
  padded afterwards). MLRun counts windows on the padded edges, where only the outermost bin
  is closed, so a 0/1 column drifts on identical data there; this is our one deviation from
  MLRun's numbers. The other bins, and every other value, are MLRun's.
* -inf is counted in the first (padded) bin and +inf in the last: they are the values the
  padded bins ``(-inf, min)`` and ``(max, +inf)`` stand for. ``np.histogram`` drops them,
  which would make a window's probabilities sum to less than one. They are also counted in
  ``infs`` and left out of mean, std, min and max.
* NaN (and Arrow null) is a null: counted in ``nulls``, never binned. ``count`` is the
  number of non-null values, infinities included (as ``pandas.describe``), so
  ``hist.sum() == count`` per column.
* A string in a numeric column is read by :func:`streamdrift.udfs.reference.parse_numbers`, as the
  training data was: one that spells a number ("1.5") is that number, any other ("N/A", "?",
  "") is an invalid value, counted in ``invalid`` and in nothing else (not binned, not in
  ``count``, ``nulls`` or the moments): a share of the window to report, not drift.
* Categorical values are matched as strings against the reference categories; values not
  among them, including categories first seen in production, go to the ``other`` bucket.
* Moments are merged with Chan et al.'s parallel formula (:func:`merge_moments`).

State in bytes (:meth:`Accumulator.to_bytes`), all little-endian::

    header  "<4s B 3x 8s Q I I I I"  (40 bytes)
            magic b"SDAC", version 2, layout fingerprint (8 bytes of BLAKE2b over column
            names, edges and categories), rows, C (numeric columns), B (numeric bins in
            all), K (categorical columns), L (category bins in all, "other" included)
    int64   count[C], nulls[C], infs[C], invalid[C], hist[B], cat_count[K], cat_nulls[K],
            cat_hist[L]
    float64 mean[C], m2[C], min[C], max[C]

Version 3 holds the same, the integers sparse (few rows fill few bins: a partial of 2 rows of
20 columns has ~60 non-zero integers of 520), used whenever it is smaller::

    uint32  N (non-zero integers), then uint32 index[N] and int64 value[N] into the int64 block above

Versions 1 (no ``invalid``) and 2 are still read, version 1 as no invalid values: a window open
across an upgrade goes on. For 20 numeric columns of 22 bins version 2 is 40 + 8 * (80 + 440) +
8 * 80 = 4,840 bytes; version 3 of 2 rows ~1,400. The layout (names, edges, categories) is not in the bytes: it comes from the
reference ``feature_stats``, which the operator holds anyway; the fingerprint makes
``from_bytes`` refuse state written for another reference.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamdrift.udfs.reference import (
    arrow_to_float64,
    as_string_array,
    is_categorical_stats,
    is_numeric_stats,
    is_numeric_type,
    is_string_type,
    numbers_of_cells,
    parse_numbers,
    reference_hist,
)

CHUNK_ROWS = 2048
"""Rows processed at once: keeps the working arrays of a 20-column chunk in L2 cache."""

_MAGIC = b"SDAC"
_VERSION = 2
_SPARSE = 3
_READS = (1, 2, 3)
_COUNT = struct.Struct("<I")
_HEADER = struct.Struct("<4sB3x8sQIIII")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, eq=False)
class Layout:
    """What a reference fixes for all of its windows: columns, bin edges, categories.

    Build it once per reference with :meth:`from_feature_stats` and reuse it: accumulators
    of the same layout share it. ``fingerprint`` identifies it in serialised state.

    Examples
    --------
    >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]},
    ...          'c': {'categories': ['r', 'g'], 'category_counts': [3, 1], 'other_count': 0}}
    >>> layout = Layout.from_feature_stats(stats)
    >>> layout.numeric, layout.categorical, layout.edges[0][1:-1].tolist(), layout.categories
    (('x',), ('c',), [0.0, 1.0, 2.0], (('r', 'g'),))
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    edges: tuple[np.ndarray, ...]
    categories: tuple[tuple[str, ...], ...]
    fingerprint: bytes
    # derived arrays for the vectorised binning (see bin_index)
    bin_start: np.ndarray  # (C,) first flat bin of each column
    last_bin: np.ndarray  # (C, 1) float, bins - 1 per column
    scale: np.ndarray  # (C, 1) guess = floor(x * scale - shift)
    shift: np.ndarray  # (C, 1)
    left: np.ndarray  # (B,) lower edge of each flat bin, NaN for each column's first bin
    right: np.ndarray  # (B,) upper edge of each flat bin, NaN for each column's last bin
    cat_start: np.ndarray  # (K + 1,) first flat bin of each categorical column
    value_sets: tuple[pa.Array, ...]

    @functools.cached_property  # per partial encoded and decoded: a numpy scalar each time otherwise
    def n_bins(self) -> int:
        """Numeric bins over all columns.

        >>> Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}).n_bins  # 2 + 2 padding
        4
        """
        return int(self.left.size)

    @functools.cached_property
    def n_cat_bins(self) -> int:
        """Category bins over all categorical columns, ``other`` included.

        >>> Layout.from_feature_stats({'c': {'categories': ['r', 'g'], 'category_counts': [3, 1]}}).n_cat_bins
        3
        """
        return int(self.cat_start[-1])

    @classmethod
    def from_feature_stats(cls, feature_stats: Mapping[str, Mapping[str, Any]]) -> Layout:
        """Return the layout of ``feature_stats``, in its column order.

        Columns with a ``hist`` are numeric (an unpadded histogram is padded as MLRun's
        ``pad_hist`` does), columns with ``categories`` categorical; others (no values in
        training, unsupported types) are not monitored. Raises ValueError naming the column
        when a histogram or category list is malformed.

        >>> Layout.from_feature_stats({'c': {'categories': ['r', 'r'], 'category_counts': [1, 1]}})
        Traceback (most recent call last):
        ...
        ValueError: column 'c': 'categories' has duplicates
        """
        numeric, edges, categorical, categories = [], [], [], []
        for name, stats in feature_stats.items():
            if not isinstance(stats, Mapping):
                raise ValueError(f"column {name!r}: statistics must be a dict, got {stats!r:.80}")
            if is_numeric_stats(stats):
                _, e = reference_hist(name, stats)
                numeric.append(name)
                edges.append(e)
            elif is_categorical_stats(stats):
                cats = stats["categories"]
                if not isinstance(cats, (list, tuple)) or not all(isinstance(c, str) for c in cats):
                    raise ValueError(f"column {name!r}: 'categories' must be a list of strings")
                if len(set(cats)) != len(cats):
                    raise ValueError(f"column {name!r}: 'categories' has duplicates")
                categorical.append(name)
                categories.append(tuple(cats))
        return cls._build(tuple(numeric), tuple(edges), tuple(categorical), tuple(categories))

    @classmethod
    def _build(cls, numeric, edges, categorical, categories) -> Layout:
        nb = np.array([e.size - 1 for e in edges], dtype=np.intp)
        bin_start = np.concatenate([[0], np.cumsum(nb)]).astype(np.intp)
        left = np.concatenate([e[:-1] for e in edges]) if edges else np.empty(0)
        right = np.concatenate([e[1:] for e in edges]) if edges else np.empty(0)
        # the last inner bin is closed: x == e_n-2 belongs to it, not to the padding bin above,
        # and for floats "x >= nextafter(e)" is exactly "x > e"
        padded = nb >= 3
        top = bin_start[1:][padded] - 1  # each padded column's upper padding bin
        closed_top = np.nextafter(right[top - 1], np.inf)
        right[top - 1] = closed_top
        left[top] = closed_top
        left[bin_start[:-1]] = np.nan  # nothing falls left of the first bin (-inf included)
        right[bin_start[1:] - 1] = np.nan  # nor right of the last (the closed bin, +inf)
        scale = np.zeros(len(edges))
        shift = np.full(len(edges), -1.0)
        with np.errstate(all="ignore"):
            for j, e in enumerate(edges):
                lo, hi, inner = e[1], e[-2], e.size - 3
                s = inner / (hi - lo) if hi > lo else 0.0
                if np.isfinite(s) and np.isfinite(lo * s):
                    scale[j], shift[j] = s, lo * s - 1.0
        cat_sizes = np.array([len(c) + 1 for c in categories], dtype=np.intp)
        cat_start = np.concatenate([[0], np.cumsum(cat_sizes)]).astype(np.intp)
        h = hashlib.blake2b(digest_size=8)
        for name, e in zip(numeric, edges):
            h.update(b"N" + name.encode() + b"\0" + e.astype("<f8").tobytes())
        for name, cats in zip(categorical, categories):
            h.update(b"C" + name.encode() + b"\0" + "\0".join(cats).encode() + b"\1")
        return cls(
            numeric=numeric,
            categorical=categorical,
            edges=edges,
            categories=categories,
            fingerprint=h.digest(),
            bin_start=bin_start[:-1],
            last_bin=(nb - 1).astype(np.float64)[:, None],
            scale=scale[:, None],
            shift=shift[:, None],
            left=left,
            right=right,
            cat_start=cat_start,
            value_sets=tuple(pa.array(c, type=pa.string()) for c in categories),
        )


# --------------------------------------------------------------------------- pure functions


def bin_index(xt: np.ndarray, layout: Layout) -> np.ndarray:
    """Return the flat bin of every value of ``xt`` (C columns × n values, float64).

    Bin of x in column j: the i with ``e_j,i <= x < e_j,i+1``, except that the last inner bin
    is closed (``e_n-3 <= x <= e_n-2``: the training maximum belongs to it, as in the
    reference's histogram) and so is the last bin (``e_n-2 < x <= e_n-1``); -inf in the first
    bin, +inf in the last. Plus the column's offset ``bin_start[j]`` so that one
    ``np.bincount`` counts all columns at once. NaN gets an arbitrary bin of its column:
    mask it out before counting. (Columns of fewer than 3 bins, which have no inner bin
    between two padding bins, follow ``np.histogram`` alone.)

    All columns in one pass, no loop per column: a guess from the equal-width inner bins,
    ``floor((x - e_1) * (n - 2) / (e_n-1 - e_1)) + 1`` clipped to [0, n - 1], then corrected
    against the actual edges (one step for equal-width edges, more only for the values that
    still need it when the reference edges are uneven).

    Examples
    --------
    Edges 0, 1, 2 padded: bin 0 below 0, [0, 1) bin 1, [1, 2] bin 2 (closed), bin 3 above 2:

    >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
    >>> bin_index(np.array([[-5.0, 0.0, 0.99, 1.0, 2.0, 2.5, np.inf]]), layout).tolist()
    [[0, 1, 1, 2, 2, 3, 3]]
    """
    g = xt * layout.scale
    g -= layout.shift
    np.floor(g, out=g)
    np.fmax(g, 0.0, out=g)  # fmax/fmin also turn a NaN guess into bin 0
    np.fmin(g, layout.last_bin, out=g)
    k = g.astype(np.intp)
    k += layout.bin_start[:, None]
    _settle(k, xt, layout.left, layout.right)
    return k


def _settle(k: np.ndarray, x: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    """Move each guessed bin ``k`` (in place) until ``left[k] <= x < right[k]``; ``k`` and ``x``
    contiguous, of one shape. The first and last bins of a column have NaN outer edges, so no
    value moves past them."""
    dec = x < left[k]
    inc = x >= right[k]
    k -= dec
    k += inc
    moved = dec
    moved |= inc
    if moved.any():
        flat_k = k.reshape(-1)
        idx = np.flatnonzero(moved)
        flat_x = x.reshape(-1)
        while idx.size:
            kk, xx = flat_k[idx], flat_x[idx]
            d = xx < left[kk]
            i = xx >= right[kk]
            step = i.astype(np.intp) - d
            flat_k[idx] = kk + step
            idx = idx[step != 0]


def _decode_all(parts: Sequence[bytes], layout: Layout) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(rows, ints, floats)`` of ``k`` accumulator byte strings of ``layout``, of any versions:
    the rows of each, their integers (k x n_int, in version 2's order; version 1's missing
    ``invalid`` as zeros) and their floats (k x 4C). Raises ValueError for bytes that are not
    accumulator state of ``layout`` (see :meth:`Accumulator.from_bytes`).

    The numpy calls do not grow with k: the window stage merges a window's partials (one row each
    at many endpoints) 16 at a time, and each one at once in a window's last seconds."""
    c, n_bins, k_cat, n_cat = len(layout.numeric), layout.n_bins, len(layout.categorical), layout.n_cat_bins
    n_int, n_float = 4 * c + n_bins + 2 * k_cat + n_cat, 4 * c
    shape = (c, n_bins, k_cat, n_cat)
    rows, floats, dense, idx, vals, nnzs, sparse = [], [], [], [], [], [], []
    for data in parts:
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise ValueError(f"accumulator state too short: {len(data)} bytes")
        magic, version, fingerprint, n_rows, *sizes = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not accumulator state (bad magic bytes)")
        if version not in _READS:
            raise ValueError(f"accumulator state version {version}, this code reads versions {list(_READS)}")
        if fingerprint != layout.fingerprint or tuple(sizes) != shape:
            raise ValueError("accumulator state was written for another reference (fingerprint differs)")
        pos = _HEADER.size
        if version == _SPARSE:
            if len(data) < pos + _COUNT.size:
                raise ValueError(f"accumulator state too short: {len(data)} bytes")
            (nnz,) = _COUNT.unpack_from(data, pos)
            pos += _COUNT.size
            ints_end = pos + 12 * nnz
        else:
            ints_end = pos + 8 * (n_int - (c if version == 1 else 0))
        if len(data) != ints_end + 8 * n_float:
            raise ValueError(f"accumulator state has {len(data)} bytes, expected {ints_end + 8 * n_float}")
        if version == _SPARSE:
            idx.append(data[pos:pos + 4 * nnz])
            vals.append(data[pos + 4 * nnz:ints_end])
            nnzs.append(nnz)
            sparse.append(len(rows))
        else:
            dense.append((len(rows), version, data[pos:ints_end]))
        rows.append(n_rows)
        floats.append(data[ints_end:])
    ints = np.zeros((len(rows), n_int), dtype=np.int64)
    for i, version, block in dense:
        values = np.frombuffer(block, dtype="<i8")
        if version == 1:  # no invalid values then
            ints[i, :3 * c], ints[i, 4 * c:] = values[:3 * c], values[3 * c:]
        else:
            ints[i] = values
    if idx:
        index = np.frombuffer(b"".join(idx), dtype="<u4")
        if index.size and int(index.max()) >= n_int:
            raise ValueError(f"accumulator state indexes integer {int(index.max())} of {n_int}")
        ints[np.repeat(sparse, nnzs), index] = np.frombuffer(b"".join(vals), dtype="<i8")
    flat = np.frombuffer(b"".join(floats), dtype="<f8").reshape(len(rows), n_float).copy()
    return rows, ints, flat


def merge_moments(
    n_a: np.ndarray,
    mean_a: np.ndarray,
    m2_a: np.ndarray,
    n_b: np.ndarray,
    mean_b: np.ndarray,
    m2_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two sets of (count, mean, M2) per column (Chan, Golub & LeVeque, 1979).

    .. math::

        n = n_a + n_b,\\quad
        \\bar x = \\frac{n_a \\bar x_a + n_b \\bar x_b}{n},\\quad
        M_2 = M_{2,a} + M_{2,b} + \\delta^2 \\frac{n_a n_b}{n},\\quad \\delta = \\bar x_b - \\bar x_a

    where :math:`M_2 = \\sum (x - \\bar x)^2`, so the sample variance is :math:`M_2 / (n - 1)`.
    The form is symmetric: swapping a and b gives bit-identical results. Columns with
    n = 0 get mean 0 and M2 0.

    >>> n, mean, m2 = merge_moments(np.array([2]), np.array([1.0]), np.array([2.0]), np.array([2]), np.array([4.0]), np.array([8.0]))
    >>> n.tolist(), mean.tolist(), m2.tolist()  # {0, 2} and {2, 6}: {0, 2, 2, 6}
    ([4], [2.5], [19.0])
    """
    n = n_a + n_b
    safe = np.where(n > 0, n, 1).astype(np.float64)
    delta = mean_b - mean_a
    mean = (n_a * mean_a + n_b * mean_b) / safe
    m2 = (m2_a + m2_b) + delta * delta * (n_a * n_b / safe)
    return n, np.where(n > 0, mean, 0.0), np.where(n > 0, m2, 0.0)


def _batch_moments(xt: np.ndarray, fin: np.ndarray | None):
    """(n, mean, M2, min, max) per column of finite values; fin None means all finite."""
    m = xt.shape[1]
    if fin is None:
        n = np.full(xt.shape[0], m, dtype=np.int64)
        mean = xt.sum(axis=1) / m
        d = xt - mean[:, None]
        return n, mean, np.einsum("ij,ij->i", d, d), xt.min(axis=1), xt.max(axis=1)
    n = fin.sum(axis=1)
    z = np.where(fin, xt, 0.0)
    mean = z.sum(axis=1) / np.maximum(n, 1)
    d = np.where(fin, xt - mean[:, None], 0.0)
    m2 = np.einsum("ij,ij->i", d, d)
    mn = np.where(fin, xt, np.inf).min(axis=1)
    mx = np.where(fin, xt, -np.inf).max(axis=1)
    return n, mean, m2, mn, mx


# --------------------------------------------------------------------------- input checks


def _numeric_matrix(batch: Any, layout: Layout) -> tuple[np.ndarray, np.ndarray | None]:
    """Return a rows × columns batch as float64 and the mask of its invalid values (None: none),
    or raise ValueError naming the column."""
    names = layout.numeric
    try:
        a = np.asarray(batch)
    except ValueError as exc:  # ragged rows
        raise ValueError(f"numeric batch is not a rectangular rows × columns array: {exc}") from None
    if a.size == 0 and (a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 0)):
        return np.empty((0, len(names))), None
    if a.ndim != 2:
        raise ValueError(
            f"numeric batch must be 2-D (rows × {len(names)} columns {list(names)}), "
            f"got shape {a.shape}"
        )
    if a.shape[1] != len(names):
        raise ValueError(
            f"numeric batch has {a.shape[1]} columns, the reference has {len(names)}: "
            f"{list(names)} (in this order)"
        )
    if a.dtype.kind in "fiub":
        return a.astype(np.float64, copy=False), None
    out = np.empty(a.shape, dtype=np.float64)
    invalid = np.zeros(a.shape, dtype=bool)
    for j, name in enumerate(names):
        out[:, j], inv = _numeric_column(a[:, j], name)
        if inv is not None:
            invalid[:, j] = inv
    return out, (invalid if invalid.any() else None)


def _numeric_column(values: Any, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return one column as float64 (None/NaN as NaN; strings read by ``parse_numbers``) and the
    mask of its invalid values (None: none), or raise ValueError naming it."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        t = values.type
        if is_string_type(t):
            x, invalid = parse_numbers(values)
            return x, (invalid if invalid.any() else None)
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (is_numeric_type(t) or pa.types.is_null(t)):
            raise ValueError(
                f"column {name!r} is numeric in the reference but the batch has Arrow type {t}"
            )
        return arrow_to_float64(values), None
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"column {name!r}: expected 1-D values, got shape {a.shape}")
    if a.dtype.kind in "fiub":
        return a.astype(np.float64, copy=False), None
    for row, v in enumerate(a.tolist()):
        if v is not None and not isinstance(v, (int, float, bool, str, np.number, np.bool_)):
            raise ValueError(
                f"column {name!r} is numeric in the reference but row {row} holds {v!r}"
            )
    cells, invalid = numbers_of_cells(a.tolist())
    return np.array([np.nan if v is None else v for v in cells], dtype=np.float64), invalid


# --------------------------------------------------------------------------- accumulator


class Accumulator:
    """Counts of one window (or part of one) on a reference's bins; mergeable by addition.

    The one mutable object of the module: :meth:`add_batch` updates it in place;
    :meth:`merge` and ``+`` return a new accumulator.

    Examples
    --------
    >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]},
    ...          'c': {'categories': ['r', 'g'], 'category_counts': [3, 1], 'other_count': 0}}
    >>> a = Accumulator.from_reference(stats).add_batch({'x': [0.5, 1.5, 'N/A']}, {'c': ['r', 'b', None]})
    >>> a.histogram('x').tolist(), a.histogram('c').tolist()  # 'b' is not a training category: other
    ([0, 1, 1, 0], [1, 0, 1])
    >>> b = Accumulator.from_reference(stats).add_batch(np.array([[1.0], [2.0]]), {'c': ['g', 'g']})
    >>> both = a + b
    >>> both.histogram('x').tolist(), both.rows
    ([0, 1, 3, 0], 5)
    >>> x = both.to_stats()['x']  # of the finite values 0.5, 1.5, 1.0, 2.0
    >>> x['count'], x['mean'], bool(np.isclose(x['std'], np.std([0.5, 1.5, 1.0, 2.0], ddof=1))), x['invalid']
    (4, 1.25, True, 1)
    """

    __slots__ = (
        "layout", "rows", "count", "nulls", "infs", "invalid", "mean", "m2", "min", "max", "hist",
        "cat_count", "cat_nulls", "cat_hist",
    )

    def __init__(self, layout: Layout):
        c, k = len(layout.numeric), len(layout.categorical)
        self.layout = layout
        self.rows = 0
        self.count = np.zeros(c, dtype=np.int64)  # non-null values, infinities included
        self.nulls = np.zeros(c, dtype=np.int64)
        self.infs = np.zeros(c, dtype=np.int64)
        self.invalid = np.zeros(c, dtype=np.int64)  # values that are not numbers ("N/A", "?")
        self.mean = np.zeros(c)  # of the finite values
        self.m2 = np.zeros(c)
        self.min = np.full(c, np.inf)
        self.max = np.full(c, -np.inf)
        self.hist = np.zeros(layout.n_bins, dtype=np.int64)
        self.cat_count = np.zeros(k, dtype=np.int64)
        self.cat_nulls = np.zeros(k, dtype=np.int64)
        self.cat_hist = np.zeros(layout.n_cat_bins, dtype=np.int64)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_reference(cls, reference: Layout | Mapping[str, Mapping[str, Any]]) -> Accumulator:
        """Return an empty accumulator for a ``Layout`` or a reference ``feature_stats``.

        >>> Accumulator.from_reference({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        Accumulator(rows=0, numeric=1, categorical=0)
        """
        layout = reference if isinstance(reference, Layout) else Layout.from_feature_stats(reference)
        return cls(layout)

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        """Numeric columns, in the order a 2-D batch must have them.

        >>> Accumulator.from_reference({'b': {'hist': [[1], [0.0, 1.0]]}, 'a': {'hist': [[1], [0.0, 1.0]]}}).numeric_columns
        ('b', 'a')
        """
        return self.layout.numeric

    @property
    def categorical_columns(self) -> tuple[str, ...]:
        """Categorical columns, in the reference's order.

        >>> Accumulator.from_reference({'c': {'categories': ['r'], 'category_counts': [1]}}).categorical_columns
        ('c',)
        """
        return self.layout.categorical

    # ----------------------------------------------------------------- counting

    def add_batch(
        self,
        numeric: Any = None,
        categorical: Mapping[str, Any] | None = None,
        invalid: np.ndarray | None = None,
    ) -> Accumulator:
        """Count a batch of rows; returns ``self``.

        :param numeric: a 2-D array (rows × ``numeric_columns``, in that order), or a mapping
            name → 1-D values, or an Arrow ``RecordBatch``/``Table`` holding the numeric *and*
            categorical columns by name (extra columns are ignored). Strings in it are read as
            the module docstring says (invalid values counted).
        :param categorical: mapping name → 1-D values (strings; None/NaN are nulls), one per
            ``categorical_columns``. Extra names are ignored.
        :param invalid: with a 2-D ``numeric`` array only: a boolean mask of its shape marking
            the cells that held an invalid value (whatever ``numeric`` holds there, they are
            counted in ``invalid`` alone).

        Raises ValueError naming the column for a missing column, a wrong column count, rows
        of different lengths, or a value in a numeric column that is neither a number, a null
        nor a string. An empty batch is a no-op.

        >>> acc = Accumulator.from_reference({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> acc.add_batch(np.array([[0.5], [9.0]])).histogram('x').tolist()  # 9 is above the training maximum
        [0, 1, 0, 1]
        >>> acc.add_batch(np.array([[0.5, 1.0]]))
        Traceback (most recent call last):
        ...
        ValueError: ...
        """
        rows, xt, x, inv, cat_arrays = self._prepare(numeric, categorical, invalid)
        if rows == 0:
            return self
        if xt is not None and xt.shape[0]:
            for start in range(0, rows, CHUNK_ROWS):
                self._add_columns(xt[:, start:start + CHUNK_ROWS],
                                  None if inv is None else inv[:, start:start + CHUNK_ROWS])
        elif x is not None and x.shape[1]:
            for start in range(0, rows, CHUNK_ROWS):
                self._add_columns(np.ascontiguousarray(x[start:start + CHUNK_ROWS].T),
                                  None if inv is None else inv[start:start + CHUNK_ROWS].T)
        for j, arr in enumerate(cat_arrays):
            self._add_categorical(j, arr)
        self.rows += rows
        return self

    def _prepare(self, numeric: Any, categorical: Mapping[str, Any] | None, invalid: np.ndarray | None):
        """Validate a batch: (rows, columns-major matrix or None, row-major matrix or None, the
        invalid mask in the matrix's orientation or None, categories)."""
        layout = self.layout
        xt = x = inv = None
        if invalid is not None and (numeric is None or isinstance(numeric, (Mapping, pa.RecordBatch, pa.Table))):
            raise ValueError("an invalid mask goes with a 2-D numeric array (strings elsewhere are read as values)")
        if isinstance(numeric, (pa.RecordBatch, pa.Table)):
            if categorical is not None:
                raise ValueError("pass categorical columns inside the RecordBatch, not beside it")
            present = set(numeric.column_names)
            missing = [c for c in (*layout.numeric, *layout.categorical) if c not in present]
            if missing:
                raise ValueError(f"batch lacks reference columns {missing}")
            rows = numeric.num_rows
            xt, inv = self._columns_matrix([numeric.column(c) for c in layout.numeric], rows)
            cats = {c: numeric.column(c) for c in layout.categorical}
        else:
            cats = dict(categorical or {})
            missing = [c for c in layout.categorical if c not in cats]
            if missing:
                raise ValueError(f"batch lacks categorical reference columns {missing}")
            if numeric is None:
                if layout.numeric:
                    raise ValueError(f"batch lacks the numeric reference columns {list(layout.numeric)}")
                rows = len(cats[layout.categorical[0]]) if layout.categorical else 0
            elif isinstance(numeric, Mapping):
                missing = [c for c in layout.numeric if c not in numeric]
                if missing:
                    raise ValueError(f"batch lacks numeric reference columns {missing}")
                cols = [numeric[c] for c in layout.numeric]
                rows = len(cols[0]) if cols else (
                    len(cats[layout.categorical[0]]) if layout.categorical else 0
                )
                xt, inv = self._columns_matrix(cols, rows)
            else:
                x, inv = _numeric_matrix(numeric, layout)
                rows = x.shape[0]
                if invalid is not None:
                    invalid = np.asarray(invalid, dtype=bool)
                    if invalid.shape != x.shape:
                        raise ValueError(f"the invalid mask has shape {invalid.shape}, the batch {x.shape}")
                    inv = invalid if inv is None else inv | invalid
        cat_arrays = []
        for name in layout.categorical:
            arr = as_string_array(cats[name])
            if len(arr) != rows:
                raise ValueError(f"column {name!r} has {len(arr)} values, the batch has {rows} rows")
            cat_arrays.append(arr)
        return rows, xt, x, inv, cat_arrays

    def _columns_matrix(self, cols: Sequence[Any], rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        xt = np.empty((len(cols), rows))
        inv = None
        for j, (name, col) in enumerate(zip(self.layout.numeric, cols)):
            values, bad = _numeric_column(col, name)
            if values.size != rows:
                raise ValueError(f"column {name!r} has {values.size} values, the batch has {rows} rows")
            xt[j] = values
            if bad is not None:
                inv = np.zeros(xt.shape, dtype=bool) if inv is None else inv
                inv[j] = bad
        return xt, inv

    def _add_columns(self, xt: np.ndarray, inv: np.ndarray | None = None) -> None:
        """Count C × m float64 values (one chunk of rows, column-major); ``inv``: the mask of the
        invalid values among them (counted apart), or None.

        Values near ±MAX_FLOAT overflow the moments (their mean and std become non-finite
        and ``to_stats`` leaves them out); counts, min and max stay exact. numpy's overflow
        warnings are silenced here for that reason and because the bin guess may overflow.
        """
        n_inv = 0
        if inv is not None:
            n_inv = inv.sum(axis=1)
            self.invalid += n_inv
            xt = np.where(inv, np.nan, xt)  # then left out like nulls, and taken off the nulls below
        with np.errstate(over="ignore", invalid="ignore"):
            self._count_columns(xt, n_inv)

    def _count_columns(self, xt: np.ndarray, n_inv: np.ndarray | int = 0) -> None:
        layout = self.layout
        m = xt.shape[1]
        fin = np.isfinite(xt)
        all_finite = bool(fin.all())
        k = bin_index(xt, layout)
        if all_finite:
            self.hist += np.bincount(k.reshape(-1), minlength=layout.n_bins)
            nulls_b = infs_b = 0
            n_b, mean_b, m2_b, mn, mx = _batch_moments(xt, None)
        else:
            nan = np.isnan(xt)
            n_nan = nan.sum(axis=1)
            nulls_b = n_nan - n_inv
            infs_b = (~fin).sum(axis=1) - n_nan
            k[nan] = layout.n_bins  # one bin past the end, dropped below
            self.hist += np.bincount(k.reshape(-1), minlength=layout.n_bins + 1)[: layout.n_bins]
            n_b, mean_b, m2_b, mn, mx = _batch_moments(xt, fin)
        n_a = self.count - self.infs
        _, self.mean, self.m2 = merge_moments(n_a, self.mean, self.m2, n_b, mean_b, m2_b)
        self.count += m - nulls_b - n_inv
        self.nulls += nulls_b
        self.infs += infs_b
        np.fmin(self.min, mn, out=self.min)
        np.fmax(self.max, mx, out=self.max)

    def _add_categorical(self, j: int, arr: pa.Array) -> None:
        layout = self.layout
        start, stop = layout.cat_start[j], layout.cat_start[j + 1]
        other = stop - start - 1
        idx = pc.index_in(arr, value_set=layout.value_sets[j])
        idx = pc.fill_null(idx, other).to_numpy(zero_copy_only=False)
        counts = np.bincount(idx, minlength=other + 1)
        nulls = arr.null_count
        counts[other] -= nulls  # nulls were filled into "other" too
        self.cat_hist[start:stop] += counts
        self.cat_count[j] += len(arr) - nulls
        self.cat_nulls[j] += nulls

    # ----------------------------------------------------------------- merging

    def _check_same_layout(self, other: Accumulator) -> None:
        if not isinstance(other, Accumulator):
            raise TypeError(f"can only merge with an Accumulator, not {type(other).__name__}")
        if other.layout.fingerprint != self.layout.fingerprint:
            raise ValueError("cannot merge accumulators of different references (layouts differ)")

    def merge(self, other: Accumulator) -> Accumulator:
        """Return a new accumulator holding the rows of both: counts add, moments merge.

        >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
        >>> a = Accumulator.from_reference(stats).add_batch(np.array([[0.0], [2.0]]))
        >>> b = Accumulator.from_reference(stats).add_batch(np.array([[2.0], [6.0]]))
        >>> a.merge(b).to_stats()['x']['mean']  # of 0, 2, 2, 6
        2.5
        """
        self._check_same_layout(other)
        out = Accumulator(self.layout)
        out.rows = self.rows + other.rows
        with np.errstate(over="ignore", invalid="ignore"):
            _, out.mean, out.m2 = merge_moments(
                self.count - self.infs, self.mean, self.m2,
                other.count - other.infs, other.mean, other.m2,
            )
        for attr in ("count", "nulls", "infs", "invalid", "hist", "cat_count", "cat_nulls", "cat_hist"):
            setattr(out, attr, getattr(self, attr) + getattr(other, attr))
        out.min = np.fmin(self.min, other.min)
        out.max = np.fmax(self.max, other.max)
        return out

    __add__ = merge

    # ----------------------------------------------------------------- bytes

    def to_bytes(self) -> bytes:
        """Serialise the counts and moments (format in the module docstring; :func:`encode_accumulators`
        encodes many at once).

        >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
        >>> acc = Accumulator.from_reference(stats).add_batch(np.array([[0.5], [1.5]]))
        >>> Accumulator.from_bytes(acc.to_bytes(), stats).histogram('x').tolist()
        [0, 1, 1, 0]
        """
        return encode_accumulators([self])[0]

    @classmethod
    def from_bytes(
        cls, data: bytes, reference: Layout | Mapping[str, Mapping[str, Any]]
    ) -> Accumulator:
        """Rebuild an accumulator from :meth:`to_bytes` output (this version's or version 1's)
        and its reference.

        Raises ValueError when the bytes are not accumulator state, are truncated, of an unknown
        version, or were written for another reference (the layout fingerprint differs).

        >>> data = Accumulator.from_reference({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}).to_bytes()
        >>> Accumulator.from_bytes(data, {'x': {'hist': [[2, 2], [0.0, 1.0, 3.0]]}})
        Traceback (most recent call last):
        ...
        ValueError: ...
        """
        layout = reference if isinstance(reference, Layout) else Layout.from_feature_stats(reference)
        rows, ints, floats = _decode_all([data], layout)
        return cls._of_arrays(layout, rows[0], ints[0], floats[0])

    @classmethod
    def _of_arrays(cls, layout: Layout, rows: int, ints: np.ndarray, floats: np.ndarray) -> Accumulator:
        """An accumulator whose counts are views of ``ints`` and moments views of ``floats`` (version
        2's order): both must be arrays no one else holds."""
        acc = cls.__new__(cls)
        acc.layout, acc.rows = layout, rows
        c, pos = len(layout.numeric), 0
        for attr, size in (("count", c), ("nulls", c), ("infs", c), ("invalid", c), ("hist", layout.n_bins),
                           ("cat_count", len(layout.categorical)), ("cat_nulls", len(layout.categorical)),
                           ("cat_hist", layout.n_cat_bins)):
            setattr(acc, attr, ints[pos:pos + size])
            pos += size
        acc.mean, acc.m2, acc.min, acc.max = (floats[i * c:(i + 1) * c] for i in range(4))
        return acc

    @classmethod
    def merge_bytes(cls, parts: Sequence[bytes], reference: Layout | Mapping[str, Mapping[str, Any]]) -> Accumulator:
        """The accumulator of the rows of all ``parts`` (:meth:`to_bytes` output of one reference),
        decoded and merged in one pass: the counts add, the moments merge as Chan et al.'s formula
        generalised to k parts, with :math:`n_i` the finite values of part i:

        .. math::

            n = \\sum n_i,\\quad \\bar x = \\frac{\\sum n_i \\bar x_i}{n},\\quad
            M_2 = \\sum M_{2,i} + \\sum n_i (\\bar x_i - \\bar x)^2

        The counts equal folding :meth:`merge` over the parts; mean and M2 equal it to rounding.
        Raises ValueError as :meth:`from_bytes` does for any part.

        >>> stats = {'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
        >>> parts = [Accumulator.from_reference(stats).add_batch(np.array(x)[:, None]).to_bytes()
        ...          for x in ([0.0, 2.0], [2.0], [6.0, np.inf])]
        >>> merged = Accumulator.merge_bytes(parts, stats).to_stats()['x']
        >>> merged['count'], merged['mean'], merged['hist'][0]  # 6 and +inf in the upper padding bin
        (5, 2.5, [0, 1, 2, 2])
        """
        layout = reference if isinstance(reference, Layout) else Layout.from_feature_stats(reference)
        if not parts:
            return cls(layout)
        rows, ints, floats = _decode_all(parts, layout)
        acc = cls._of_arrays(layout, sum(rows), ints.sum(axis=0), floats[0])
        if len(rows) == 1:
            return acc
        c = len(layout.numeric)
        n_i = (ints[:, :c] - ints[:, 2 * c:3 * c]).astype(np.float64)  # finite values: count - infs
        mean_i, m2_i = floats[:, :c], floats[:, c:2 * c]
        n = n_i.sum(axis=0)
        safe = np.where(n > 0, n, 1.0)
        with np.errstate(over="ignore", invalid="ignore"):
            acc.mean = np.where(n > 0, (n_i * mean_i).sum(axis=0) / safe, 0.0)
            acc.m2 = np.where(n > 0, m2_i.sum(axis=0) + (n_i * (mean_i - acc.mean) ** 2).sum(axis=0), 0.0)
        acc.min = np.fmin.reduce(floats[:, 2 * c:3 * c], axis=0)
        acc.max = np.fmax.reduce(floats[:, 3 * c:4 * c], axis=0)
        return acc

    # ----------------------------------------------------------------- views

    def histogram(self, name: str) -> np.ndarray:
        """Return one column's counts: reference bins for numeric, categories + other for categorical.

        >>> acc = Accumulator.from_reference({'c': {'categories': ['r', 'g'], 'category_counts': [3, 1]}})
        >>> acc.add_batch(categorical={'c': ['g', 'g', 'b']}).histogram('c').tolist()
        [0, 2, 1]
        """
        layout = self.layout
        if name in layout.numeric:
            j = layout.numeric.index(name)
            start = layout.bin_start[j]
            return self.hist[start:start + layout.edges[j].size - 1].copy()
        if name in layout.categorical:
            j = layout.categorical.index(name)
            return self.cat_hist[layout.cat_start[j]:layout.cat_start[j + 1]].copy()
        raise KeyError(f"column {name!r} is not monitored by this accumulator")

    def to_stats(self) -> dict[str, dict[str, Any]]:
        """Return the window's statistics in ``feature_stats`` form (MLRun's ``sample_df_stats``).

        numeric: count, mean, std (ddof=1), min, max, hist = [counts, reference edges],
        nulls, infs, invalid; mean/min/max left out without a finite value, std with fewer
        than two.
        categorical: count, categories, category_counts, other_count, nulls. Quartiles and
        top/freq/unique are not kept (not mergeable) and so not given.

        >>> acc = Accumulator.from_reference({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> x = acc.add_batch(np.array([[0.5], [1.5], [np.nan]])).to_stats()['x']
        >>> x['count'], x['nulls'], x['mean'], x['min'], x['max'], x['hist'][0]
        (2, 1, 1.0, 0.5, 1.5, [0, 1, 1, 0])
        """
        layout = self.layout
        out: dict[str, dict[str, Any]] = {}
        for j, name in enumerate(layout.numeric):
            n_fin = int(self.count[j] - self.infs[j])
            s: dict[str, Any] = {"count": int(self.count[j])}
            if n_fin > 0:
                if np.isfinite(self.mean[j]):
                    s["mean"] = float(self.mean[j])
                if n_fin > 1:
                    std = float(np.sqrt(self.m2[j] / (n_fin - 1)))
                    if np.isfinite(std):
                        s["std"] = std
                s["min"] = float(self.min[j])
                s["max"] = float(self.max[j])
            s["hist"] = [self.histogram(name).tolist(), layout.edges[j].tolist()]
            s["nulls"] = int(self.nulls[j])
            s["infs"] = int(self.infs[j])
            s["invalid"] = int(self.invalid[j])
            out[name] = s
        for j, name in enumerate(layout.categorical):
            counts = self.histogram(name).tolist()
            out[name] = {
                "count": int(self.cat_count[j]),
                "categories": list(layout.categories[j]),
                "category_counts": counts[:-1],
                "other_count": counts[-1],
                "nulls": int(self.cat_nulls[j]),
            }
        return out

    def invalid_share(self) -> float | None:
        """Invalid values / (non-null + invalid values), over all numeric columns; None when
        they hold no value at all.

        >>> acc = Accumulator.from_reference({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> acc.invalid_share() is None
        True
        >>> acc.add_batch({'x': [0.5, 1.5, 'N/A', '?']}).invalid_share()  # 2 of 4
        0.5
        """
        total = int(self.count.sum() + self.invalid.sum())
        return int(self.invalid.sum()) / total if total else None

    def __repr__(self) -> str:
        return (
            f"Accumulator(rows={self.rows}, numeric={len(self.layout.numeric)}, "
            f"categorical={len(self.layout.categorical)})"
        )


# --------------------------------------------------------------------------- many small batches at once


_ARRAYS = frozenset(Accumulator.__slots__) - {"layout", "rows"}


class _EncodedAccumulator(Accumulator):
    """An accumulator held as its bytes (:meth:`Accumulator.to_bytes`) until one of its arrays is
    read or any attribute is set: then it decodes them and is an ordinary accumulator, its bytes
    dropped. Encoding it before then gives the bytes as they are; a copy or a pickle is an
    ordinary accumulator."""

    __slots__ = ("_data",)

    @classmethod
    def of(cls, data: bytes, layout: Layout, rows: int) -> _EncodedAccumulator:
        acc = cls.__new__(cls)
        object.__setattr__(acc, "layout", layout)
        object.__setattr__(acc, "rows", rows)
        object.__setattr__(acc, "_data", data)
        return acc

    def _held(self) -> bool:
        return getattr(self, "_data", None) is not None

    def _plain(self) -> Accumulator:
        _, ints, floats = _decode_all([self._data], self.layout)
        return Accumulator._of_arrays(self.layout, self.rows, ints[0], floats[0])

    def _decode(self) -> None:
        plain = self._plain()
        for name in _ARRAYS:
            object.__setattr__(self, name, getattr(plain, name))
        object.__setattr__(self, "_data", None)  # last: the arrays are all there

    def __getattr__(self, name: str):  # only for attributes not set: the arrays, before decoding
        if name in _ARRAYS and self._held():
            self._decode()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if self._held():
            self._decode()
        object.__setattr__(self, name, value)

    def __reduce_ex__(self, protocol):
        source = self._plain() if self._held() else self
        return _plain_accumulator, ({name: getattr(source, name) for name in Accumulator.__slots__},)


def _plain_accumulator(state: dict) -> Accumulator:
    acc = Accumulator.__new__(Accumulator)
    for name, value in state.items():
        setattr(acc, name, value)
    return acc


_INT_FIELDS = ("count", "nulls", "infs", "invalid", "hist", "cat_count", "cat_nulls", "cat_hist")
_FLOAT_FIELDS = ("mean", "m2", "min", "max")


def encode_accumulators(accs: Sequence[Accumulator]) -> list[bytes]:
    """``[acc.to_bytes() for acc in accs]`` (format in the module docstring: the integers sparse
    where that is smaller), with each numpy call made once for all of them: the parse stage encodes
    every partial of a batch, about one per record at thousands of endpoints, where per-accumulator
    calls were most of the encoding. An accumulator still held as its bytes
    (:func:`count_parts_encoded`) is given as they are.

    >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
    >>> accs = [Accumulator(layout).add_batch(np.array(x)[:, None]) for x in ([0.5], [0.5, 1.5, 9.0])]
    >>> [Accumulator.from_bytes(data, layout).histogram('x').tolist() for data in encode_accumulators(accs)]
    [[0, 1, 0, 0], [0, 1, 1, 1]]
    """
    if not accs:
        return []
    encoded = [getattr(acc, "_data", None) for acc in accs]
    if any(data is not None for data in encoded):  # held as bytes (count_parts_encoded): as they are
        rest = iter(encode_accumulators([acc for acc, data in zip(accs, encoded) if data is None]))
        return [next(rest) if data is None else data for data in encoded]
    ints = np.concatenate([getattr(acc, name) for acc in accs for name in _INT_FIELDS]).astype("<i8", copy=False)
    floats = np.concatenate([getattr(acc, name) for acc in accs for name in _FLOAT_FIELDS]).astype("<f8", copy=False)
    n_int = [4 * len(acc.layout.numeric) + acc.layout.n_bins + 2 * len(acc.layout.categorical) + acc.layout.n_cat_bins
             for acc in accs]
    if ints.size != sum(n_int) or floats.size != 4 * sum(len(acc.layout.numeric) for acc in accs):
        # one accumulator's arrays not of its layout's sizes would shift every later one's bytes
        raise ValueError("an accumulator's arrays do not have its layout's sizes")
    nonzero = np.flatnonzero(ints)
    if len(accs) == 1:  # to_bytes: the offsets need no numpy
        int_at, cut, nnz, local = [0, n_int[0]], [0, nonzero.size], [nonzero.size], nonzero
    else:
        at = offsets(np.array(n_int, dtype=np.int64))
        found = np.searchsorted(nonzero, at)
        counts = np.diff(found)
        int_at, cut, nnz, local = at.tolist(), found.tolist(), counts.tolist(), nonzero - np.repeat(at[:-1], counts)
    index = local.astype("<u4").tobytes()
    values = ints[nonzero].tobytes()
    float_bytes = floats.tobytes()
    out = []
    float_at = 0
    for acc, size, start, n, first in zip(accs, n_int, int_at, nnz, cut):
        layout = acc.layout
        c = len(layout.numeric)
        sparse = 4 + 12 * n < 8 * size
        header = _HEADER.pack(_MAGIC, _SPARSE if sparse else _VERSION, layout.fingerprint, acc.rows, c,
                              layout.n_bins, len(layout.categorical), layout.n_cat_bins)
        moments = float_bytes[8 * float_at:8 * (float_at + 4 * c)]
        float_at += 4 * c
        if sparse:
            out.append(b"".join([header, _COUNT.pack(n), index[4 * first:4 * (first + n)],
                                 values[8 * first:8 * (first + n)], moments]))
        else:
            out.append(b"".join([header, ints[start:start + size].tobytes(), moments]))
    return out


def offsets(sizes: np.ndarray) -> np.ndarray:
    """Where each of consecutive segments of ``sizes`` starts, and their total last (n + 1 values).

    >>> offsets(np.array([2, 0, 3])).tolist()
    [0, 2, 2, 5]
    """
    out = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out


def segment_ranges(sizes: np.ndarray) -> np.ndarray:
    """0..s-1 for every s of ``sizes``, concatenated.

    >>> segment_ranges(np.array([2, 0, 3])).tolist()
    [0, 1, 0, 1, 2]
    >>> segment_ranges(np.array([0, 2])).tolist()
    [0, 1]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if total == sizes.size and (total == 0 or int(sizes.min()) == 1):  # all ones
        return np.zeros(total, dtype=np.int64)
    ends = np.cumsum(sizes)
    return np.arange(total) - np.repeat(ends - sizes, sizes)


_NO_COLUMNS = np.zeros(0, dtype=np.int64)


class _Counted:
    """What :func:`_count_cells` works out for a call of :func:`count_parts`: per part its rows
    and columns (``width``), where its slots (one per part and column) and its bins start among
    all parts' (``slots``, ``part_bins``: n + 1 offsets), per slot its part and rows; when any part
    has columns, per slot the counts and moments, and each non-null cell's bin among all parts'
    bins (``cell_bins``, part by part, column by column, row by row)."""

    def __init__(self, rows, width, slots, slot_part, per_slot, part_bins, n_slots):
        self.rows, self.width, self.slots, self.slot_part, self.per_slot = rows, width, slots, slot_part, per_slot
        self.part_bins, self.n_slots = part_bins, n_slots
        self.cell_bins = _NO_COLUMNS


def _count_cells(layouts: Sequence[Layout], rows: np.ndarray, cells: np.ndarray) -> _Counted:
    """The numpy work of :func:`count_parts` (its arguments and errors), once for all parts."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or rows.size != len(layouts):
        raise ValueError(f"{rows.size} row counts for {len(layouts)} layouts")
    if rows.size and int(rows.min()) < 1:
        raise ValueError("every part must hold at least one row")
    index: dict[int, int] = {}
    unique: list[Layout] = []
    which = np.empty(rows.size, dtype=np.intp)
    for p, layout in enumerate(layouts):
        u = index.get(id(layout))
        if u is None:
            if layout.categorical:
                raise ValueError(f"layout has categorical columns {list(layout.categorical)}: count them with add_batch")
            u = index[id(layout)] = len(unique)
            unique.append(layout)
        which[p] = u
    u_width = np.array([len(lay.numeric) for lay in unique], dtype=np.int64)
    nbins = np.array([lay.n_bins for lay in unique], dtype=np.int64)
    width = u_width[which]
    u_col, u_bin = offsets(u_width), offsets(nbins)
    slots = offsets(width)  # one slot per part and column
    slot_part = np.repeat(np.arange(rows.size), width)
    per_slot = rows[slot_part]
    cell_start = offsets(per_slot)
    cells = np.ascontiguousarray(cells, dtype=np.float64).reshape(-1)
    if cells.size != cell_start[-1]:
        raise ValueError(f"{cells.size} values for parts that hold {int(cell_start[-1])}")
    part_bins = offsets(nbins[which])
    n_slots = int(slots[-1])
    out = _Counted(rows, width, slots, slot_part, per_slot, part_bins, n_slots)
    if n_slots:
        cell_slot = np.repeat(np.arange(n_slots), per_slot)
        col = (u_col[which][slot_part] + segment_ranges(width))[cell_slot]  # the cell's column among `unique`'s
        x = cells
        with np.errstate(over="ignore", invalid="ignore"):
            g = x * np.concatenate([lay.scale[:, 0] for lay in unique])[col]
            g -= np.concatenate([lay.shift[:, 0] for lay in unique])[col]
            np.floor(g, out=g)
            np.fmax(g, 0.0, out=g)
            np.fmin(g, np.concatenate([lay.last_bin[:, 0] for lay in unique])[col], out=g)
            k = g.astype(np.intp)
            k += np.concatenate([lay.bin_start + start for lay, start in zip(unique, u_bin)])[col]
            _settle(k, x, np.concatenate([lay.left for lay in unique]), np.concatenate([lay.right for lay in unique]))
            k += (part_bins[:-1] - u_bin[which])[slot_part][cell_slot]  # from the layout's bins to the part's
            fin = np.isfinite(x)
            starts = cell_start[:-1]
            if fin.all():
                out.cell_bins = k
                n_fin, nulls = per_slot, np.zeros(n_slots, dtype=np.int64)
                mean_b = np.bincount(cell_slot, weights=x, minlength=n_slots) / per_slot
                d = x - mean_b[cell_slot]
                low, high = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
            else:
                nan = np.isnan(x)
                out.cell_bins = k[~nan]
                nulls = np.bincount(cell_slot, weights=nan, minlength=n_slots).astype(np.int64)
                n_fin = np.bincount(cell_slot, weights=fin, minlength=n_slots).astype(np.int64)
                mean_b = np.bincount(cell_slot, weights=np.where(fin, x, 0.0), minlength=n_slots) / np.maximum(n_fin, 1)
                d = np.where(fin, x - mean_b[cell_slot], 0.0)
                low = np.minimum.reduceat(np.where(fin, x, np.inf), starts)
                high = np.maximum.reduceat(np.where(fin, x, -np.inf), starts)
            m2_b = np.bincount(cell_slot, weights=d * d, minlength=n_slots)
            zero = np.zeros(n_slots)
            _, mean, m2 = merge_moments(np.zeros(n_slots, dtype=np.int64), zero, zero, n_fin, mean_b, m2_b)
        out.count = per_slot - nulls
        out.nulls, out.infs = nulls, out.count - n_fin
        out.mean, out.m2, out.min, out.max = mean, m2, low, high
    return out


def count_parts(layouts: Sequence[Layout], rows: np.ndarray, cells: np.ndarray) -> list[Accumulator]:
    """Count many small batches at once: one accumulator per part.

    Part ``p`` holds ``rows[p]`` rows (at least one) of ``layouts[p]``'s numeric columns. ``cells``
    (float64, NaN for a null) holds every part's values end to end: part by part, then column by
    column in the layout's numeric order, then row by row, i.e. part p's block of
    ``len(layouts[p].numeric) * rows[p]`` values is its rows × columns matrix transposed and flattened.

    Counts, nulls, infinities, histograms, minimum and maximum equal those of
    ``Accumulator.from_reference(layouts[p]).add_batch(matrix)``; mean and M2 equal them to rounding
    (the same sums, in the same order up to 7 rows). What differs is the cost: every numpy call here
    runs once for all parts, where ``add_batch`` makes ~50 calls per part, which at a few rows per part
    (a batch spread over thousands of endpoints) is nearly all of its time. A part may share its
    layout with others; each gets bins of its own.

    Raises ValueError when ``rows`` and ``layouts`` differ in length, a part has no rows, a layout
    has categorical columns (strings: count those with ``add_batch``), or ``cells`` is not the size
    that ``rows`` and the layouts make.

    >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
    >>> a, b = count_parts([layout, layout], np.array([2, 1]), np.array([0.5, 9.0, np.nan]))
    >>> a.histogram('x').tolist(), a.to_stats()['x']['mean'], b.count.tolist(), b.nulls.tolist()
    ([0, 1, 0, 1], 4.75, [0], [1])
    """
    counted = _count_cells(layouts, rows, cells)
    slots, part_bins, n_slots = counted.slots, counted.part_bins, counted.n_slots
    hist = np.bincount(counted.cell_bins, minlength=int(part_bins[-1]))
    if n_slots:
        count, nulls, infs = counted.count, counted.nulls, counted.infs
        invalid = np.zeros(n_slots, dtype=np.int64)
        mean, m2, low, high = counted.mean, counted.m2, counted.min, counted.max
    accs = []
    for p, layout in enumerate(layouts):
        acc = Accumulator.__new__(Accumulator)
        acc.layout, acc.rows = layout, int(counted.rows[p])
        if n_slots:
            a, b = slots[p], slots[p + 1]
            acc.count, acc.nulls, acc.infs, acc.invalid = count[a:b], nulls[a:b], infs[a:b], invalid[a:b]
            acc.mean, acc.m2, acc.min, acc.max = mean[a:b], m2[a:b], low[a:b], high[a:b]
        else:
            acc.count = acc.nulls = acc.infs = acc.invalid = _NO_COLUMNS
            acc.mean = acc.m2 = acc.min = acc.max = _NO_COLUMNS.astype(np.float64)
        acc.hist = hist[part_bins[p]:part_bins[p + 1]]
        acc.cat_count = acc.cat_nulls = acc.cat_hist = _NO_COLUMNS
        accs.append(acc)
    return accs


def count_parts_encoded(layouts: Sequence[Layout], rows: np.ndarray, cells: np.ndarray) -> list[Accumulator]:
    """:func:`count_parts`, each accumulator held as its bytes (``to_bytes``, byte for byte
    ``encode_accumulators(count_parts(...))``) until one of its arrays is read: the parse stage
    encodes the parts at once, and at thousands of endpoints (about one part per record) building
    each part's arrays only to encode them costs more than counting them. The sparse
    integers (format in the module docstring) are found from the cells' bins and the slots'
    counts, without any part's dense histogram. Arguments and errors as :func:`count_parts`.

    >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
    >>> a, b = count_parts_encoded([layout, layout], np.array([2, 1]), np.array([0.5, 9.0, np.nan]))
    >>> a.to_bytes() == count_parts([layout], np.array([2]), np.array([0.5, 9.0]))[0].to_bytes()
    True
    >>> a.histogram('x').tolist(), b.nulls.tolist()  # read: decoded from the bytes
    ([0, 1, 0, 1], [1])
    """
    counted = _count_cells(layouts, rows, cells)
    n, n_slots = counted.rows.size, counted.n_slots
    if not n_slots:
        return count_parts(layouts, rows, cells)
    width, slots, slot_part, part_bins = counted.width, counted.slots, counted.slot_part, counted.part_bins
    n_int = 4 * width + np.diff(part_bins)  # no categorical columns: count_parts refuses them
    column = segment_ranges(width)
    # the non-zero integers of each part in its order: counts, nulls, infinities (invalid is 0), bins
    kinds = []
    for kind, values in enumerate((counted.count, counted.nulls, counted.infs)):
        at = np.flatnonzero(values)
        kinds.append((slot_part[at], kind * width[slot_part[at]] + column[at], values[at]))
    if counted.per_slot.max() == 1:  # one row per part: every cell its own bin, in order
        bins, hits = counted.cell_bins, np.ones(counted.cell_bins.size, dtype=np.int64)
    else:
        bins, hits = np.unique(counted.cell_bins, return_counts=True)
    part = np.searchsorted(part_bins, bins, side="right") - 1
    kinds.append((part, 4 * width[part] + bins - part_bins[part], hits))
    per_kind = [np.bincount(p, minlength=n) for p, _, _ in kinds]
    nnz = sum(per_kind)
    start = offsets(nnz)
    index, values = np.empty(int(start[-1]), dtype="<u4"), np.empty(int(start[-1]), dtype="<i8")
    before = start[:-1].copy()
    for (p, local, v), count in zip(kinds, per_kind):
        at = before[p] + np.arange(p.size) - offsets(count)[p]
        index[at], values[at] = local, v
        before += count
    index_bytes, value_bytes = index.tobytes(), values.tobytes()
    # the moments of each part: its columns' means, then M2s, minimums, maximums
    moments = np.concatenate([counted.mean, counted.m2, counted.min, counted.max])
    four = 4 * width
    which = np.repeat(np.arange(n), four)
    within = segment_ranges(four)
    float_bytes = moments[within // width[which] * n_slots + slots[which] + within % width[which]].astype("<f8").tobytes()
    sparse = 4 + 12 * nnz < 8 * n_int
    out = []
    for p, layout in enumerate(layouts):
        a, b, c = int(start[p]), int(start[p + 1]), len(layout.numeric)
        header = _HEADER.pack(_MAGIC, _SPARSE if sparse[p] else _VERSION, layout.fingerprint, int(counted.rows[p]), c,
                              layout.n_bins, 0, layout.n_cat_bins)
        f = 8 * 4 * int(slots[p])
        if sparse[p]:
            data = b"".join([header, _COUNT.pack(b - a), index_bytes[4 * a:4 * b], value_bytes[8 * a:8 * b],
                             float_bytes[f:f + 32 * c]])
        else:
            dense = np.zeros(int(n_int[p]), dtype="<i8")
            dense[index[a:b]] = values[a:b]
            data = b"".join([header, dense.tobytes(), float_bytes[f:f + 32 * c]])
        out.append(_EncodedAccumulator.of(data, layout, int(counted.rows[p])))
    return out
