"""Reference statistics (``feature_stats``) of training data, in MLRun's format.

``feature_stats(data)`` returns one entry per column, keyed by the normalised column name
(see :mod:`streamdrift.udfs.naming`). The entry's form depends on the column's type:

numeric (integers, floats, decimals, booleans as 0/1, and text that holds numbers)::

    {"count": 1000, "mean": 0.1, "std": 1.0, "min": -3.2, "25%": -0.6, "50%": 0.1,
     "75%": 0.7, "max": 3.4,
     "hist": [[c_0, c_1, ..., c_21], [e_0, e_1, ..., e_22]],
     "nulls": 0, "infs": 0, "invalid": 0}

    The inner 20 bins are equal-width over [min, max] (``np.histogram(x, bins=20)``, so the
    edges are the ones MLRun computes for the same data); they are padded with one bin at each
    end whose outer edges are ``-sys.float_info.max`` and ``+sys.float_info.max`` (MLRun's
    ``pad_hist``), 22 bins and 23 edges in all. Bins are half open ``[e_i, e_i+1)`` except the
    last, which is closed, exactly as ``np.histogram``.

    A text column (strings: a pandas object column, a CSV column that is not all numbers, a
    Parquet string column) is numeric when its non-null values spell numbers apart from at most
    5 % (:data:`MAX_INVALID_PERCENT`) of placeholder tokens ("N/A", "?", "-", "unknown", "", ...;
    :func:`parse_numbers` says what spells a number). The tokens are ``invalid`` values: counted
    there, in nothing else (not in ``count``, ``nulls`` or ``hist``); ``invalid_tokens`` lists the
    most frequent ones with their counts (at most :data:`MAX_INVALID_TOKENS`, each cut to 64
    characters). Dictionary-encoded text (a pandas ``category``) declares categories and stays
    categorical. ``numeric=`` and ``categorical=`` of :func:`feature_stats` override the guess.

categorical (strings, dictionary-encoded strings)::

    {"count": 1000, "unique": 3, "top": "red", "freq": 600,
     "categories": ["red", "blue"], "category_counts": [600, 300], "other_count": 100,
     "nulls": 0}

    ``categories`` holds the ``max_categories`` most frequent values (ties broken by the
    value, so the result is deterministic), ``other_count`` everything else. In a window,
    values never seen in training land in the ``other`` bucket.

Decisions where MLRun's behaviour is undefined or lossy (MLRun drops the histogram of a
column with a NaN or an infinity, so the column silently leaves drift detection):

* ``count`` is the number of non-null values, infinities included (as ``pandas.describe``).
* NaN and nulls are not values: they are counted in ``nulls`` and take part in nothing else.
* ±inf are counted in ``infs`` and in the outer padded bins (-inf in the first, +inf in the
  last), so ``sum(hist counts) == count`` always holds. mean, std, min, max and quartiles
  are computed over the finite values only.
* ``std`` (ddof=1, as pandas) is left out when there are fewer than two finite values; mean,
  min, quartiles, max and ``hist`` are left out when there is no finite value. A column
  without ``hist`` (or ``categories``) is not monitored, and the drift report says so.
* A constant column gets ``np.histogram``'s bins: 20 bins over [c - 0.5, c + 0.5]. When that
  range or [min, max] cannot be split by numpy (|c| beyond 2**52, or max - min overflowing),
  the edges are computed as ``min * (1 - i/20) + max * i/20`` on a slightly widened range.
* Columns of other types (timestamps, binary, nested) and columns of Arrow type ``null``
  get ``count`` and ``nulls`` only.
* All numbers are Python ``int``/``float`` and finite: ``json.loads(json.dumps(stats))``
  gives back an equal dict (``sys.float_info.max`` round-trips exactly through ``repr``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamdrift.udfs.naming import normalize_name, normalize_names

MAX_FLOAT = sys.float_info.max
NUM_BINS = 20
MAX_CATEGORIES = 20
MAX_INVALID_PERCENT = 5
"""A text column is numeric when at most this percentage of its non-null values are not numbers."""
MAX_INVALID_TOKENS = 10
"""Distinct invalid tokens listed per column (``invalid_tokens``), the most frequent first."""
_TOKEN_CHARS = 64

# a decimal number as text (after trimming whitespace): what Arrow's string-to-double cast reads
_NUMBER = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$"

FeatureStats = dict[str, dict[str, Any]]

_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")


# --------------------------------------------------------------------------- reading data


def read_table(data: Any) -> pa.Table:
    """Return training data as a ``pyarrow.Table``.

    Accepts a ``pyarrow.Table`` or ``RecordBatch``, a pandas DataFrame (converted column by
    column; a column of mixed Python objects becomes strings), or a path to a Parquet
    (``.parquet``, ``.pq``, ``.parq``) or CSV (``.csv``, ``.csv.gz``, ``.csv.bz2``) file.

    Examples
    --------
    >>> import pandas as pd
    >>> read_table(pd.DataFrame({'x': [1.5, 2.0], 'c': ['a', 'b']})).schema.types
    [DataType(double), DataType(string)]
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        lower = path.lower()
        if lower.endswith(_PARQUET_SUFFIXES):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if lower.endswith(_CSV_SUFFIXES):
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        raise ValueError(
            f"cannot tell the format of {path!r}: name a .parquet/.pq/.parq or .csv file"
        )
    if hasattr(data, "columns") and hasattr(data, "dtypes") and hasattr(data, "iloc"):
        return _table_from_pandas(data)
    raise TypeError(
        "training data must be a pandas DataFrame, a pyarrow Table or RecordBatch, or a path "
        f"to a Parquet or CSV file, not {type(data).__name__}"
    )


def _table_from_pandas(df: Any) -> pa.Table:
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate column names in the training data: {dup}")
    arrays = []
    for i in range(df.shape[1]):
        series = df.iloc[:, i]
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arrays.append(pa.array(_to_str_list(series), type=pa.string()))
    return pa.Table.from_arrays(arrays, names=names)


# --------------------------------------------------------------------------- type helpers


def _is_null_value(v: Any) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return True
    return type(v).__name__ in ("NAType", "NaTType")  # pandas.NA, pandas.NaT


def _to_str_list(values: Any) -> list[str | None]:
    return [None if _is_null_value(v) else str(v) for v in values]


def as_string_array(values: Any) -> pa.Array:
    """Return categorical values as an Arrow ``string`` array; None and NaN become null.

    Strings pass through; any other value is compared as ``str(value)`` (so ``True`` is
    ``"True"`` and ``1`` is ``"1"``), whether it comes from Python, numpy or Arrow.

    >>> as_string_array(['a', True, 1, None, float('nan')]).to_pylist()
    ['a', 'True', '1', None, None]
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if pa.types.is_string(values.type):
            return values
        if pa.types.is_large_string(values.type):
            return values.cast(pa.string())
        if pa.types.is_null(values.type):
            return pa.nulls(len(values), pa.string())
        return pa.array(_to_str_list(values.to_pylist()), type=pa.string())
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        return pa.array(_to_str_list(values), type=pa.string())


def is_numeric_type(t: pa.DataType) -> bool:
    """True for Arrow types monitored as numbers: integers, floats, decimals, booleans.

    >>> is_numeric_type(pa.int64()), is_numeric_type(pa.bool_()), is_numeric_type(pa.string())
    (True, True, False)
    """
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
    )


def is_string_type(t: pa.DataType) -> bool:
    """True for Arrow types monitored as categories: (large) strings and string dictionaries.

    >>> is_string_type(pa.large_string()), is_string_type(pa.dictionary(pa.int8(), pa.string()))
    (True, True)
    >>> is_string_type(pa.binary())
    False
    """
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def arrow_to_float64(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Return a numeric Arrow array as float64 numpy values, nulls as NaN.

    >>> arrow_to_float64(pa.array([1, None, 3])).tolist()
    [1.0, nan, 3.0]
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not pa.types.is_float64(values.type):
        values = values.cast(pa.float64())
    if values.null_count:
        values = pc.fill_null(values, np.nan)
    return values.to_numpy(zero_copy_only=False)


def parse_numbers(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Read text as numbers: ``(float64 values, invalid mask)``, one of each per value.

    A string that spells a decimal number once surrounding whitespace is trimmed (``"1.5"``,
    ``" -2e3 "``, ``".5"``, ``"7."``, ``"inf"``, ``"Infinity"``; ``"nan"`` is a null) is that
    number, correctly rounded; any other string (``"N/A"``, ``"?"``, ``"-"``, ``"unknown"``,
    ``""``, ``"1,5"``, ``"0x10"``) is invalid: NaN in the values, True in the mask. A null (None)
    is NaN and not invalid. ``values``: strings (an Arrow string array, or a sequence of str/None;
    anything else is compared as ``str(value)``, see :func:`as_string_array`). The same rule reads
    the training data and the windows.

    >>> values, invalid = parse_numbers(['1.5', ' 2e3 ', 'N/A', None])
    >>> values.tolist(), invalid.tolist()
    ([1.5, 2000.0, nan, nan], [False, False, True, False])
    """
    arr = as_string_array(values)
    if not len(arr):
        return np.zeros(0), np.zeros(0, dtype=bool)
    trimmed = pc.utf8_trim_whitespace(arr)
    number = pc.match_substring_regex(trimmed, _NUMBER)  # null where the value is null
    x = pc.cast(pc.if_else(number, trimmed, pa.scalar(None, pa.string())), pa.float64())
    invalid = pc.invert(pc.fill_null(number, True)).to_numpy(zero_copy_only=False)
    return arrow_to_float64(x), invalid


def numbers_of_cells(cells: Sequence[Any]) -> tuple[list[Any], np.ndarray | None]:
    """``cells`` (Python values) with each string replaced by the number it spells
    (:func:`parse_numbers`; NaN when it spells none), and the mask of the strings that spell none
    (None when there is none). Other values are left as they are.

    >>> cells, invalid = numbers_of_cells([1, '2.5', 'N/A', None])
    >>> cells, invalid.tolist()
    ([1, 2.5, nan, None], [False, False, True, False])
    >>> numbers_of_cells([1, 2.0])
    ([1, 2.0], None)
    """
    text = [i for i, v in enumerate(cells) if isinstance(v, str)]
    if not text:
        return list(cells), None
    out = list(cells)
    parsed, not_number = parse_numbers([out[i] for i in text])
    for i, v in zip(text, parsed.tolist()):
        out[i] = v
    if not not_number.any():
        return out, None
    invalid = np.zeros(len(out), dtype=bool)
    invalid[np.asarray(text)[not_number]] = True
    return out, invalid


def invalid_tokens(values: Any, invalid: np.ndarray) -> dict[str, int]:
    """The most frequent invalid values and their counts (at most :data:`MAX_INVALID_TOKENS`, most
    frequent first, ties by value; each cut to 64 characters).

    >>> invalid_tokens(np.array(['?', 'N/A', '?', '7'], dtype=object), np.array([True, True, True, False]))
    {'?': 2, 'N/A': 1}
    """
    arr = as_string_array(values).filter(pa.array(invalid))
    counts: dict[str, int] = {}
    vc = pc.value_counts(arr)
    for token, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
        key = token if len(token) <= _TOKEN_CHARS else token[:_TOKEN_CHARS - 1] + "…"
        counts[key] = counts.get(key, 0) + n
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_INVALID_TOKENS]
    return dict(ranked)


# --------------------------------------------------------------------------- histograms


def bin_edges(lo: float, hi: float, num_bins: int = NUM_BINS) -> np.ndarray:
    """Return the ``num_bins + 1`` equal-width edges over [lo, hi], as ``np.histogram`` does.

    ``np.histogram(x, bins=n)`` uses ``np.linspace(lo, hi, n + 1)`` and widens a constant
    range to [lo - 0.5, hi + 0.5]. Where numpy fails (a range wider than the largest float,
    or a constant so large that ±0.5 does not change it) the edges are
    ``lo * (1 - i/n) + hi * i/n`` after widening a constant range by
    ``max(0.5, n * spacing(|lo|))``: finite, non-decreasing, and ``lo``/``hi`` exact.

    >>> bin_edges(0.0, 1.0, num_bins=4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"bin range must be finite with lo <= hi, got [{lo}, {hi}]")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    with np.errstate(over="ignore", invalid="ignore"):
        edges = np.linspace(lo, hi, num_bins + 1)
    if lo != hi and np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0):
        return edges
    if lo == hi:  # ±0.5 vanished in rounding
        with np.errstate(over="ignore"):
            widen = max(0.5, num_bins * float(np.spacing(abs(lo))))
        lo, hi = max(lo - widen, -MAX_FLOAT), min(hi + widen, MAX_FLOAT)
    t = np.arange(num_bins + 1, dtype=np.float64) / num_bins
    edges = lo * (1.0 - t) + hi * t
    edges[0], edges[-1] = lo, hi
    return np.maximum.accumulate(edges)


def _inner_hist(finite: np.ndarray, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = float(finite.min()), float(finite.max())
    if lo < hi and np.isfinite(hi - lo):
        # numpy's equal-width path: the same linspace edges as bin_edges, and no sort
        return np.histogram(finite, bins=num_bins, range=(lo, hi))
    edges = bin_edges(lo, hi, num_bins)
    counts, _ = np.histogram(finite, bins=edges)
    return counts, edges


def pad_hist(counts: Sequence[float], edges: Sequence[float]) -> tuple[list, list]:
    """Return (counts, edges) with an empty bin added at each end, MLRun's ``pad_hist``.

    The outer edges are ``-sys.float_info.max`` and ``+sys.float_info.max``. A histogram whose
    edges already start and end there is returned unchanged. Nothing is modified in place.

    >>> pad_hist([3, 1], [0.0, 0.5, 1.0])
    ([0, 3, 1, 0], [-1.7976931348623157e+308, 0.0, 0.5, 1.0, 1.7976931348623157e+308])
    """
    counts, edges = list(counts), list(edges)
    if edges and edges[0] == -MAX_FLOAT and edges[-1] == MAX_FLOAT:
        return counts, edges
    return [0, *counts, 0], [-MAX_FLOAT, *edges, MAX_FLOAT]


def reference_hist(name: str, stats: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return a numeric column's padded (counts, edges) as float64 arrays, validated.

    Raises ValueError naming the column when the histogram is malformed: counts and edges of
    inconsistent length, non-finite or decreasing edges, negative counts.

    Examples
    --------
    An unpadded histogram is padded as MLRun pads it:

    >>> counts, edges = reference_hist('x', {'hist': [[2, 2], [0.0, 1.0, 2.0]]})
    >>> counts.tolist(), edges[1:-1].tolist(), bool(edges[0] == -MAX_FLOAT)
    ([0.0, 2.0, 2.0, 0.0], [0.0, 1.0, 2.0], True)
    >>> reference_hist('x', {'hist': [[2, 2], [0.0, 2.0, 1.0]]})
    Traceback (most recent call last):
    ...
    ValueError: column 'x': ...
    """
    hist = stats.get("hist")
    if not isinstance(hist, (list, tuple)) or len(hist) != 2:
        raise ValueError(f"column {name!r}: 'hist' must be [counts, edges], got {hist!r:.80}")
    counts, edges = pad_hist(hist[0], hist[1])
    try:
        counts_a = np.asarray(counts, dtype=np.float64)
        edges_a = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r}: 'hist' holds non-numeric values ({exc})") from None
    if counts_a.ndim != 1 or edges_a.ndim != 1 or edges_a.size != counts_a.size + 1:
        raise ValueError(
            f"column {name!r}: 'hist' needs len(edges) == len(counts) + 1, "
            f"got {counts_a.size} counts and {edges_a.size} edges"
        )
    # the arrays' own methods: numpy's module functions cost more than these small checks
    if not np.isfinite(edges_a).all() or (edges_a[1:] < edges_a[:-1]).any():
        raise ValueError(f"column {name!r}: 'hist' edges must be finite and non-decreasing")
    if not (counts_a >= 0).all() or not np.isfinite(counts_a).all():
        raise ValueError(f"column {name!r}: 'hist' counts must be finite and >= 0")
    return counts_a, edges_a


# --------------------------------------------------------------------------- column stats


def _mean_std(finite: np.ndarray) -> tuple[float, float | None]:
    """Mean and sample std (ddof=1) of finite values, scaled to avoid overflow."""
    scale = float(np.max(np.abs(finite)))
    if scale == 0.0:
        return 0.0, (0.0 if finite.size > 1 else None)
    if scale < 1e150 and scale > 1e-150:
        scale = 1.0
    scaled = finite / scale
    mean = float(np.mean(scaled)) * scale
    std = float(np.std(scaled, ddof=1)) * scale if finite.size > 1 else None
    if std is not None and not math.isfinite(std):  # only when the spread exceeds MAX_FLOAT
        std = None
    return mean, std


def _quartiles(finite: np.ndarray) -> np.ndarray:
    """25th, 50th, 75th percentiles, linear interpolation (numpy's and pandas' default)."""
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.percentile(finite, [25, 50, 75])
    if np.all(np.isfinite(q)):
        return q
    # a - b overflowed (values near ±MAX_FLOAT): interpolate as a * (1 - t) + b * t
    pos = np.array([0.25, 0.5, 0.75]) * (finite.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, finite.size - 1)
    part = np.partition(finite, np.unique(np.concatenate([lo, hi])))
    t = pos - lo
    return part[lo] * (1 - t) + part[hi] * t


def numeric_stats(values: Any, num_bins: int = NUM_BINS) -> dict[str, Any]:
    """Return the statistics of one numeric column (NaN = null), in the module's format.

    Examples
    --------
    Two inner bins over [1, 4] (edge 2.5), padded; std with ddof=1; quartiles as np.percentile:

    >>> values = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    >>> stats = numeric_stats(values, num_bins=2)
    >>> stats['count'], stats['nulls'], stats['mean'], stats['hist'][0], stats['hist'][1][1:-1]
    (4, 1, 2.5, [0, 2, 2, 0], [1.0, 2.5, 4.0])
    >>> bool(np.isclose(stats['std'], np.nanstd(values, ddof=1)))
    True
    >>> [stats['25%'], stats['50%'], stats['75%']] == np.nanpercentile(values, [25, 50, 75]).tolist()
    True
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    nan = np.isnan(x)
    nulls = int(nan.sum())
    fin_mask = np.isfinite(x)
    finite = x[fin_mask]
    count = int(x.size - nulls)
    neg_inf = int(np.sum(x == -np.inf))
    pos_inf = int(np.sum(x == np.inf))
    stats: dict[str, Any] = {"count": count}
    if finite.size:
        mean, std = _mean_std(finite)
        stats["mean"] = mean
        if std is not None:
            stats["std"] = std
        q25, q50, q75 = _quartiles(finite)
        stats["min"] = float(finite.min())
        stats["25%"], stats["50%"], stats["75%"] = float(q25), float(q50), float(q75)
        stats["max"] = float(finite.max())
        counts, edges = _inner_hist(finite, num_bins)
        stats["hist"] = [
            [neg_inf, *(int(c) for c in counts), pos_inf],
            [-MAX_FLOAT, *(float(e) for e in edges), MAX_FLOAT],
        ]
    stats["nulls"] = nulls
    stats["infs"] = neg_inf + pos_inf
    stats["invalid"] = 0
    return stats


def text_stats(values: Any, numeric: bool | None = None, *, num_bins: int = NUM_BINS,
               max_categories: int = MAX_CATEGORIES) -> dict[str, Any]:
    """Return the statistics of a text column: numeric (``invalid`` counting the values that are
    not numbers, ``invalid_tokens`` the most frequent of them) or categorical.

    :param numeric: True: numeric whatever the share of invalid values; False: categorical;
        None: numeric when at most :data:`MAX_INVALID_PERCENT` % of the non-null values are
        invalid (and at least one is a number).

    Examples
    --------
    1 of 21 values (4.8 %) is not a number: numeric, the token counted ``invalid``:

    >>> values = [str(i) for i in range(20)] + ['N/A']
    >>> stats = text_stats(values)
    >>> stats['count'], stats['invalid'], stats['invalid_tokens']
    (20, 1, {'N/A': 1})

    1 of 4 (25 %) is too many: categorical, unless forced:

    >>> 'categories' in text_stats(['1.5', '2', 'N/A', '3'])
    True
    >>> text_stats(['1.5', '2', 'N/A', '3'], numeric=True)['invalid']
    1
    """
    arr = as_string_array(values)
    x, invalid = parse_numbers(arr)
    n_invalid = int(invalid.sum())
    non_null = len(arr) - arr.null_count
    if numeric is None:
        numeric = n_invalid < non_null and 100 * n_invalid <= MAX_INVALID_PERCENT * non_null
    if not numeric:
        return categorical_stats(arr, max_categories)
    stats = numeric_stats(x[~invalid], num_bins)
    stats["invalid"] = n_invalid
    if n_invalid:
        stats["invalid_tokens"] = invalid_tokens(arr, invalid)
    return stats


def categorical_stats(values: Any, max_categories: int = MAX_CATEGORIES) -> dict[str, Any]:
    """Return the statistics of one categorical column (None/NaN = null), in the module's format.

    >>> categorical_stats(['a', 'b', 'a', None, 'c'], max_categories=2)
    {'count': 4, 'unique': 3, 'top': 'a', 'freq': 2, 'categories': ['a', 'b'], 'category_counts': [2, 1], 'other_count': 1, 'nulls': 1}
    """
    arr = as_string_array(values)
    nulls = int(arr.null_count)
    count = len(arr) - nulls
    stats: dict[str, Any] = {"count": count}
    if count:
        vc = pc.value_counts(arr.drop_null())
        names = vc.field("values").to_pylist()
        freqs = vc.field("counts").to_pylist()
        ranked = sorted(zip(freqs, names), key=lambda fn: (-fn[0], fn[1]))
        top = ranked[:max_categories]
        stats["unique"] = len(ranked)
        stats["top"] = ranked[0][1]
        stats["freq"] = int(ranked[0][0])
        stats["categories"] = [n for _, n in top]
        stats["category_counts"] = [int(f) for f, _ in top]
        stats["other_count"] = int(count - sum(f for f, _ in top))
    else:
        stats["unique"] = 0
    stats["nulls"] = nulls
    return stats


def column_stats(
    values: pa.Array | pa.ChunkedArray,
    *,
    num_bins: int = NUM_BINS,
    max_categories: int = MAX_CATEGORIES,
    kind: str | None = None,
) -> dict[str, Any]:
    """Return the statistics of one Arrow column, dispatching on its type (module docstring).

    ``kind``: None to go by the type (text guessed by :func:`text_stats`; dictionary-encoded
    text, which declares categories, stays categorical), ``"numeric"`` or ``"categorical"`` to
    force one. Raises ValueError when a column of another type (timestamps, binary, nested) is
    forced numeric.

    Examples
    --------
    >>> column_stats(pa.array(['a', 'b', 'a']))['categories']
    ['a', 'b']
    >>> column_stats(pa.array([True, False, True]), num_bins=2)['mean']  # booleans as 0/1
    0.6666666666666666
    >>> column_stats(pa.array([b'x']), kind='numeric')
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    t = values.type
    if pa.types.is_dictionary(t) and is_numeric_type(t.value_type):
        t = t.value_type
    if kind == "categorical":
        return categorical_stats(values, max_categories)
    if is_numeric_type(t) or (kind == "numeric" and pa.types.is_null(t)):
        return numeric_stats(arrow_to_float64(values), num_bins)
    if is_string_type(t):
        if kind is None and pa.types.is_dictionary(t):
            return categorical_stats(values, max_categories)
        return text_stats(values, True if kind == "numeric" else None, num_bins=num_bins,
                          max_categories=max_categories)
    if kind == "numeric":
        raise ValueError(f"a column of Arrow type {t} cannot be read as numbers: only numbers and text can")
    nulls = len(values) if pa.types.is_null(t) else int(values.null_count)
    return {"count": len(values) - nulls, "nulls": nulls}


def feature_stats(
    data: Any,
    *,
    num_bins: int = NUM_BINS,
    max_categories: int = MAX_CATEGORIES,
    columns: Sequence[str] | None = None,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> FeatureStats:
    """Return the reference statistics of training data, one entry per column.

    :param data:           pandas DataFrame, pyarrow Table/RecordBatch, or a Parquet/CSV path.
    :param num_bins:       inner equal-width bins per numeric column (MLRun: 20).
    :param max_categories: categories kept per categorical column; the rest is ``other``.
    :param columns:        names (as in ``data``) to keep, in this order; default all.
    :param numeric:        columns (as in ``data`` or normalised) monitored as numbers whatever
                           their type's guess: a text column's values that are not numbers are
                           all counted ``invalid``, whatever their share.
    :param categorical:    columns (likewise) monitored as categories.
    :returns:              ``{normalised name: stats}`` as described in the module docstring.
    Raises ValueError for a name in ``numeric`` or ``categorical`` that is no column, or in both.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({'petal length (cm)': [1.0, 2.0, 3.0, 4.0], 'color': ['r', 'g', 'r', 'r']})
    >>> stats = feature_stats(df, num_bins=2)
    >>> list(stats)  # normalised names
    ['petal_length_cm', 'color']
    >>> stats['petal_length_cm']['hist'][0], stats['color']['category_counts']
    ([0, 2, 2, 0], [3, 1])
    >>> feature_stats(df, categorical=['petal length (cm)'])['petal_length_cm']['categories']
    ['1.0', '2.0', '3.0', '4.0']
    """
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}")
    if not isinstance(max_categories, int) or max_categories < 1:
        raise ValueError(f"max_categories must be a positive integer, got {max_categories!r}")
    table = read_table(data)
    names = list(table.column_names)
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(f"columns not in the training data: {missing}; it has {names}")
        names = list(columns)
    normalised = normalize_names(names)
    kinds = _forced_kinds(names, normalised, numeric, categorical)
    return {
        norm: column_stats(
            table.column(name), num_bins=num_bins, max_categories=max_categories, kind=kinds.get(norm)
        )
        for norm, name in zip(normalised, names)
    }


def _forced_kinds(names: Sequence[str], normalised: Sequence[str], numeric: Sequence[str],
                  categorical: Sequence[str]) -> dict[str, str]:
    """{normalised name: "numeric" | "categorical"} of the overrides, each given as in the data or
    normalised; ValueError naming the unknown ones or those given both ways."""
    if isinstance(numeric, str) or isinstance(categorical, str):
        raise ValueError("numeric and categorical are lists of column names, not one string")
    by_name = {**dict(zip(normalised, normalised)), **dict(zip(names, normalised))}

    def column(name: str) -> str | None:
        return by_name.get(name, by_name.get(normalize_name(name)))

    unknown = [n for n in (*numeric, *categorical) if column(n) is None]
    if unknown:
        raise ValueError(f"columns {unknown} (numeric / categorical) are not in the training data; it has {list(names)}")
    kinds = {column(n): "numeric" for n in numeric}
    both = sorted({column(n) for n in categorical} & set(kinds))
    if both:
        raise ValueError(f"columns {both} are given both as numeric and as categorical")
    kinds.update({column(n): "categorical" for n in categorical})
    return kinds


def invalid_report(stats: FeatureStats) -> list[str]:
    """One line per column of ``stats`` that holds invalid values: how many, their share of the
    non-null values, the most frequent tokens; what registration prints and logs.

    >>> stats = {'x': text_stats([str(i) for i in range(20)] + ['N/A']), 'y': numeric_stats(np.array([1.0]))}
    >>> invalid_report(stats)  # 1 / 21 = 4.76 %
    ["column 'x': 1 of 21 non-null values (4.76 %) are not numbers ('N/A' x1): counted as invalid values, the column is numeric"]
    """
    lines = []
    for name, s in stats.items():
        n = s.get("invalid") or 0
        if not n:
            continue
        total = n + int(s.get("count") or 0)
        tokens = ", ".join(f"{token!r} x{k}" for token, k in (s.get("invalid_tokens") or {}).items())
        lines.append(f"column {name!r}: {n} of {total} non-null values ({100 * n / total:.2f} %) are not numbers "
                     f"({tokens}): counted as invalid values, the column is numeric")
    return lines


def is_numeric_stats(stats: Mapping[str, Any]) -> bool:
    """True when a ``feature_stats`` entry carries a numeric histogram.

    >>> is_numeric_stats({'count': 2, 'hist': [[1, 1], [0.0, 1.0, 2.0]]}), is_numeric_stats({'count': 0})
    (True, False)
    """
    return "hist" in stats


def is_categorical_stats(stats: Mapping[str, Any]) -> bool:
    """True when a ``feature_stats`` entry carries category counts.

    >>> is_categorical_stats(categorical_stats(['a', 'b'])), is_categorical_stats({'count': 0})
    (True, False)
    """
    return "categories" in stats and "category_counts" in stats
