"""A window's aggregate for one endpoint: everything the applications need, mergeable by addition.

* the reference-bin counts and moments of every monitored column (:class:`~streamdrift.udfs.accumulator.Accumulator`;
  absent while the endpoint has no reference: its rows are then only counted);
* rows, events, errors, first and last request time, columns seen that the reference lacks;
* latency: count, sum and a fixed log-spaced histogram, from which p50/p95/p99 are read with a
  relative error below 4 % (:data:`LATENCY_EDGES`);
* a bounded uniform sample of the rows (bottom-k by a hash of request id and row number, so it is
  mergeable and a replay picks the same rows; :func:`row_priorities`).

State is bounded by columns × bins + sample size, never by the number of events.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from streamdrift.udfs.accumulator import Accumulator, Layout, encode_accumulators
from streamdrift.udfs.events import Event, PositionalRows
from streamdrift.udfs.reference import numbers_of_cells

LATENCY_EDGES = np.geomspace(1.0, 1e10, 601)
"""Latency bins in microseconds: 1 µs to ~3 h, 600 log-spaced bins (ratio 1.039 per bin)."""

DEFAULT_SAMPLE_SIZE = 1000
log = logging.getLogger("streamdrift.parse")
_MAGIC = b"SDWA"
_HEAD = struct.Struct("<4sI")  # magic, length of the JSON header


_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SEED_ID, _SEED_TIME = np.uint64(0x5D5D_1D00_0000_0001), np.uint64(0x5D5D_7100_0000_0002)
_S33 = np.uint64(33)
_LONG_KEY = 64  # ids longer than this (bytes) are hashed one by one, not in the batch's matrix


def _fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection; every input bit flips every output bit with
    probability about 1/2), on uint64 arrays (arithmetic modulo 2**64)."""
    h = h ^ (h >> _S33)
    h = h * _M1
    h ^= h >> _S33
    h = h * _M2
    h ^= h >> _S33
    return h


def _id_hashes(ids: list[bytes]) -> np.ndarray:
    """One 64-bit hash per id: the finaliser over its length, then over each of its 8-byte
    little-endian words in turn (the last one padded with zero bytes)."""
    n = len(ids)
    lengths = np.fromiter(map(len, ids), np.int64, n)
    words = (lengths + 7) // 8
    h = _fmix(lengths.astype(np.uint64) ^ _SEED_ID)
    short = lengths <= _LONG_KEY
    if short.any():
        width = max(8, int(words[short].max()) * 8)
        packed = np.array([k for k, s in zip(ids, short.tolist()) if s] if not short.all() else ids, dtype=f"S{width}")
        matrix = packed.view("<u8").reshape(len(packed), width // 8)
        hs, ws = h[short], words[short]
        for j in range(width // 8):  # word j mixes in only where the id has one: same hash at any width
            hs = np.where(ws > j, _fmix(hs ^ matrix[:, j]), hs)
        h[short] = hs
    for i in np.flatnonzero(~short).tolist():
        key = ids[i] + b"\0" * (-len(ids[i]) % 8)
        hi = h[i:i + 1]
        for w in np.frombuffer(key, "<u8"):
            hi = _fmix(hi ^ w)
        h[i] = hi[0]
    return h


def row_priorities(ids: Sequence[bytes | None], times: Sequence[int] | np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """The sampling priority (uint64) of every row of a list of events, in order: event ``i`` has
    request id ``ids[i]`` (UTF-8 bytes, or None), time ``times[i]`` (epoch ms) and ``sizes[i]``
    rows. Row ``r`` of an event whose id hashes to ``h`` gets ``fmix(h + (r + 1) * 0x9E3779B97F4A7C15)``
    (SplitMix64's sequence from ``h``), where ``h`` is :func:`_id_hashes` of the id, or, without
    an id, ``fmix(time ^ seed)``.

    Deterministic (a replay picks the same rows) and uniform whatever the ids look like
    (sequential ids included: every bit of the id changes about half the bits of the priority);
    vectorised: no Python work per row.

    Examples
    --------
    >>> pri = row_priorities([b'req-1', None], [1_764_158_400_000, 1_764_158_400_000], [2, 1])
    >>> pri.dtype, pri.size, len(set(pri.tolist()))  # one per row, all different
    (dtype('uint64'), 3, 3)
    >>> bool((row_priorities([b'req-1'], [0], [2]) == pri[:2]).all())  # the same rows whatever the time
    True
    """
    n = len(ids)
    sizes = np.asarray(sizes, dtype=np.int64)
    h = np.empty(n, dtype=np.uint64)
    has_id = np.fromiter((k is not None for k in ids), bool, n)
    if not has_id.all():
        h[~has_id] = _fmix(np.asarray(times, dtype=np.int64)[~has_id].astype(np.uint64) ^ _SEED_TIME)
    if has_id.any():
        h[has_id] = _id_hashes([k for k in ids if k is not None] if not has_id.all() else list(ids))
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.uint64)
    first = np.cumsum(sizes) - sizes
    within = np.arange(total, dtype=np.int64) - np.repeat(first, sizes)
    return _fmix(np.repeat(h, sizes) + (within + 1).astype(np.uint64) * _GOLDEN)


def _priorities(events: Sequence[Event], sizes: Sequence[int]) -> np.ndarray:
    """:func:`row_priorities` of ``events`` (``sizes``: their numbers of rows)."""
    return row_priorities([None if ev.request_id is None else str(ev.request_id).encode() for ev in events],
                          [ev.timestamp_ms for ev in events], sizes)


class Sample:
    """Bottom-k rows by priority: a uniform sample that merges by keeping the k smallest.

    The rows are held column-wise (:class:`RowBlock`): offering and merging select rows with
    numpy, and the state's bytes are the block's. ``rows`` gives them as name → value dicts (as
    :meth:`RowBlock.to_rows` gives them: numbers as floats, a missing number as NaN).

    Examples
    --------
    >>> sample = Sample.empty(2)
    >>> sample.offer(np.array([30, 10, 20], dtype=np.uint64), RowBlock.from_rows([{'x': 3}, {'x': 1}, {'x': 2}]))
    >>> sample.rows  # the 2 rows of lowest priority
    [{'x': 1.0}, {'x': 2.0}]
    >>> other = Sample(2, np.array([15], dtype=np.uint64), [{'x': 1.5}])
    >>> sample.merged(other).rows
    [{'x': 1.0}, {'x': 1.5}]
    >>> Sample.merge_all([sample, other]).rows == sample.merged(other).rows
    True
    """

    def __init__(self, k: int, priorities: np.ndarray, rows: Sequence[dict[str, Any]] | None = None,
                 block: RowBlock | None = None):
        self.k = k
        self.priorities = np.asarray(priorities, dtype=np.uint64)
        self.block = block if block is not None else RowBlock.from_rows(rows or [])
        self._rows: tuple[RowBlock, list[dict[str, Any]]] | None = None

    def __repr__(self) -> str:
        return f"Sample(k={self.k}, rows={self.block.n}, columns={self.block.names})"

    @classmethod
    def empty(cls, k: int) -> Sample:
        return cls(k, np.zeros(0, dtype=np.uint64), block=RowBlock.empty())

    @property
    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None or self._rows[0] is not self.block:
            self._rows = (self.block, self.block.to_rows())
        return self._rows[1]

    def offer(self, priorities: np.ndarray, block: RowBlock) -> None:
        """Keep the k rows of lowest priority among the sample's and ``block``'s (uint64 priorities,
        one per row of ``block``)."""
        if self.k <= 0 or not block.n:
            return
        pri = np.concatenate([self.priorities, priorities])
        keep = np.argsort(pri, kind="stable")[: self.k]
        self.priorities = pri[keep]
        self.block = RowBlock.concat(self.block, block).take(keep)

    @classmethod
    def merge_all(cls, samples: Sequence[Sample]) -> Sample:
        """The bottom-k of all, selected once (what folding :meth:`merged` gives, in one sort)."""
        ks = [s.k for s in samples if s.block.n] or [s.k for s in samples]
        full = [s for s in samples if s.block.n]
        if len(full) <= 1:
            out = full[0] if full else samples[0]
            return cls(max(ks), out.priorities, block=out.block)
        pri = np.concatenate([s.priorities for s in full])
        keep = np.argsort(pri, kind="stable")[: max(ks)]
        return cls(max(ks), pri[keep], block=RowBlock.concat_all([s.block for s in full]).take(keep))

    def merged(self, other: Sample) -> Sample:
        """The bottom-k of both. k is the larger k of the sides that hold rows, so an empty
        sample (whatever its k) is a neutral element: ``WindowAggregate() + agg`` keeps agg's k."""
        ks = [s.k for s in (self, other) if s.block.n] or [self.k, other.k]
        out = Sample(max(ks), self.priorities, block=self.block)
        out.offer(other.priorities, other.block)
        return out


@dataclasses.dataclass
class WindowAggregate:
    """Mutable while a batch is counted; merge with ``+`` (returns a new aggregate).

    Examples
    --------
    Count two events of one window on a reference with one numeric column (two bins on [0, 2],
    padded with MLRun's outer bins), in two parts merged by ``+``:

    >>> from streamdrift.udfs.events import decode
    >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
    >>> a, b = WindowAggregate(), WindowAggregate()
    >>> a.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [{"x": 0.5}, {"x": 1.5}],'
    ...                      ' "latency_us": 900}')], layout)
    >>> b.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158430, "inputs": [{"x": 1.7}],'
    ...                      ' "latency_us": 1100}')], layout)
    >>> window = a + b
    >>> window.rows, window.events, window.accumulator.histogram('x').tolist()
    (3, 2, [0, 1, 2, 0])
    >>> window.latency_mean  # (900 + 1100) / 2 µs
    1000.0
    """

    rows: int = 0
    events: int = 0
    errors: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    latency_count: int = 0
    latency_sum: float = 0.0
    latency_hist: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(LATENCY_EDGES.size + 1, np.int64))
    unknown_columns: dict[str, int] = dataclasses.field(default_factory=dict)
    accumulator: Accumulator | None = None
    sample: Sample = dataclasses.field(default_factory=lambda: Sample.empty(DEFAULT_SAMPLE_SIZE))
    sampled_extra: float = 0.0  # rows sampled out by the serving side (MLRun's sampling_percentage), estimated

    @property
    def estimated_rows(self) -> float:
        """The rows the window stands for: its rows plus those the serving side sampled out.

        >>> WindowAggregate(rows=10, sampled_extra=30.0).estimated_rows  # MLRun sampled 25 %
        40.0
        """
        return self.rows + self.sampled_extra

    # ----------------------------------------------------------------- counting

    def add_events(self, events: Iterable[Event], layout: Layout | None, sample_size: int = DEFAULT_SAMPLE_SIZE) -> None:
        """Count events of one endpoint and window. Rows are columns → values dicts.

        Raises ValueError naming the column when a value does not fit its reference column (the
        caller turns the offending event into a dead letter; see :func:`count_rows`); the
        aggregate is then unchanged. Rows of failed events (``error``) are not counted.

        >>> from streamdrift.udfs.events import decode
        >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> agg = WindowAggregate()
        >>> agg.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [{"x": 0.5}, {"x": 9}]}'),
        ...                 decode('{"endpoint_id": "ep1", "timestamp": 1764158401, "inputs": [{"x": 1}], "error": "oom"}')],
        ...                layout)
        >>> agg.rows, agg.events, agg.errors, agg.accumulator.histogram('x').tolist()  # 9 is above the maximum
        (2, 2, 1, [0, 1, 0, 1])
        >>> too_big = '{"endpoint_id": "ep1", "timestamp": 1764158402, "inputs": [{"x": 1%s}]}' % ('0' * 400)
        >>> agg.add_events([decode(too_big)], layout)
        Traceback (most recent call last):
        ...
        ValueError: column 'x' is numeric in the reference, got 1000... (not a number within the float64 range)
        >>> agg.rows  # unchanged
        2
        """
        events = list(events)
        counted = [ev for ev in events if not ev.error and ev.rows]
        names, values, rows, sizes = _gather_rows(counted)
        priorities = _priorities(counted, sizes)
        block = RowBlock.from_values(names, values)  # the rows column-wise, once: for the counts and the sample
        # everything that can fail first: a batch that does not fit leaves the aggregate unchanged
        counts = _count_block(block, names, values, layout) if values and layout is not None else None
        lat = [ev.latency_us for ev in events if ev.latency_us is not None]
        times = [ev.timestamp_ms for ev in events]
        # rows mostly share their names (positional rows all have all of them)
        by_names = Counter(map(tuple, rows)).items() if rows is not None else [(names, len(values))]
        self._count(len(events), min(times) if times else None, max(times) if times else None,
                    sum(1 for ev in events if ev.error), lat, block, by_names, counts, priorities, layout, sample_size)
        self.sampled_extra += sum(ev.estimated_rows - len(ev.rows) for ev in counted if ev.estimated_rows is not None)

    def add_block(self, block: RowBlock, priorities: np.ndarray, first_ms: int, last_ms: int, events: int,
                  latencies: np.ndarray, layout: Layout | None, sample_size: int = DEFAULT_SAMPLE_SIZE) -> None:
        """Count ``events`` events of one endpoint and window given column-wise (the columnar reader's):
        none failed, every row has every column of ``block``, ``priorities`` are their rows' (as
        :func:`_priorities` makes them), ``latencies`` those of the events that have one. The same
        counts as :meth:`add_events` of those events."""
        counts = (_count_block(block, block.names, None, layout)
                  if block.n and layout is not None else None)
        self._count(events, first_ms, last_ms, 0, latencies, block, [(block.names, block.n)], counts,
                    priorities, layout, sample_size)

    def _count(self, events: int, first_ms: int | None, last_ms: int | None, errors: int, lat: Sequence[float],
               block: RowBlock, by_names, counts, priorities: np.ndarray, layout: Layout | None,
               sample_size: int) -> None:
        if self.sample.k != sample_size:
            self.sample.k = sample_size
        if events:
            self.events += events
            self.first_ms = first_ms if self.first_ms is None else min(self.first_ms, first_ms)
            self.last_ms = last_ms if self.last_ms is None else max(self.last_ms, last_ms)
            self.errors += errors
        if len(lat):
            micros = np.asarray(lat, dtype=np.float64)
            self.latency_count += micros.size
            self.latency_sum += float(micros.sum())
            self.latency_hist += np.bincount(np.searchsorted(LATENCY_EDGES, micros, side="right"),
                                             minlength=self.latency_hist.size)
        if not block.n:
            return
        if counts is not None:
            if self.accumulator is None or self.accumulator.layout.fingerprint != layout.fingerprint:
                # first rows, or the reference changed: count on the newer one (as ``+`` does)
                self.accumulator = Accumulator.from_reference(layout)
            self.accumulator.add_batch(*counts)
            known = set(layout.numeric) | set(layout.categorical)
        else:
            known = set()
        for row_names, count in by_names:
            for name in row_names:
                if name not in known:
                    self.unknown_columns[name] = self.unknown_columns.get(name, 0) + count
        self.rows += block.n
        self.sample.offer(priorities, block)

    # ----------------------------------------------------------------- merging

    def __add__(self, other: WindowAggregate) -> WindowAggregate:
        out = WindowAggregate(
            rows=self.rows + other.rows, events=self.events + other.events, errors=self.errors + other.errors,
            first_ms=_opt(min, self.first_ms, other.first_ms), last_ms=_opt(max, self.last_ms, other.last_ms),
            latency_count=self.latency_count + other.latency_count,
            latency_sum=self.latency_sum + other.latency_sum,
            latency_hist=self.latency_hist + other.latency_hist,
            unknown_columns={k: self.unknown_columns.get(k, 0) + other.unknown_columns.get(k, 0)
                             for k in {*self.unknown_columns, *other.unknown_columns}},
            sample=self.sample.merged(other.sample), sampled_extra=self.sampled_extra + other.sampled_extra,
        )
        a, b = self.accumulator, other.accumulator
        if a is not None and b is not None and a.layout.fingerprint != b.layout.fingerprint:
            # the reference changed inside the window: keep the counts made on the newer one
            # (the side that counted later rows), the others stay counted in rows/events
            a, b = (b, None) if (other.last_ms or 0) >= (self.last_ms or 0) else (a, None)
        if a is not None and b is not None:
            out.accumulator = a + b
        elif a is not None or b is not None:
            kept = a if a is not None else b
            out.accumulator = kept + Accumulator(kept.layout)  # a copy: never share the operands' state
        return out

    @classmethod
    def merge_all(cls, parts: Sequence[WindowAggregate]) -> WindowAggregate:
        """``parts[0] + parts[1] + ...``, with the sample selected once instead of once per ``+``
        (the window stage merges a window's partials this way).

        >>> parts = [WindowAggregate(rows=2, events=1, first_ms=5), WindowAggregate(rows=3, events=2, first_ms=3)]
        >>> merged = WindowAggregate.merge_all(parts)
        >>> merged.rows, merged.events, merged.first_ms
        (5, 3, 3)
        """
        if len(parts) == 1:
            return parts[0] + WindowAggregate(sample=Sample.empty(parts[0].sample.k))
        out = parts[0]
        samples = [parts[0].sample]
        for part in parts[1:]:
            samples.append(part.sample)
            # everything but the sample, as ``+`` does it (the samples are left empty here)
            out = dataclasses.replace(out, sample=Sample.empty(0)) + dataclasses.replace(part, sample=Sample.empty(0))
        out.sample = Sample.merge_all(samples)
        return out

    @classmethod
    def merge_bytes(cls, parts: Sequence[bytes], layouts=None, unknown_reference: str = "raise") -> WindowAggregate:
        """``merge_all`` of the parts' :meth:`from_bytes`, without building an aggregate per part
        (the window stage merges a window's pending partials with it): the bin counts of all parts
        are decoded and added in one pass (:meth:`Accumulator.merge_bytes`). Counts, rows and the
        sample equal ``merge_all``'s; mean and std equal it to rounding. ``layouts`` and
        ``unknown_reference`` as in :meth:`from_bytes`.

        >>> from streamdrift.udfs.events import decode
        >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> parts = []
        >>> for x in (0.5, 1.5, 1.7):
        ...     part = WindowAggregate()
        ...     part.add_events([decode('{"endpoint_id": "e", "timestamp": 1764158400, "inputs": [{"x": %s}]}' % x)],
        ...                     layout)
        ...     parts.append(part.to_bytes())
        >>> window = WindowAggregate.merge_bytes(parts, layout)
        >>> window.rows, window.accumulator.histogram('x').tolist(), len(window.sample.rows)
        (3, [0, 1, 2, 0], 3)
        """
        if not parts:
            return cls()
        heads, pieces = zip(*map(_split, parts))
        accs = [piece[0] for piece in pieces if piece[0]]
        if len({bytes(acc[8:16]) for acc in accs}) > 1:  # the reference changed within the window: merge_all's rule
            return cls.merge_all([cls.from_bytes(data, layouts, unknown_reference) for data in parts])
        hist = np.zeros(LATENCY_EDGES.size + 1, np.int64)
        unknown: Counter = Counter()
        for head, piece in zip(heads, pieces):
            if piece[1]:
                idx, counts = np.frombuffer(bytes(piece[1]), "<i8").reshape(2, -1)
                hist[idx] += counts
            unknown.update(head["unknown"])
        firsts = [h["first"] for h in heads if h["first"] is not None]
        lasts = [h["last"] for h in heads if h["last"] is not None]
        samples = [Sample(h["k"], np.frombuffer(bytes(p[2]), "<u8").copy(), block=RowBlock.from_bytes(bytes(p[3])))
                   for i, (h, p) in enumerate(zip(heads, pieces)) if i == 0 or p[2]]
        agg = cls(rows=sum(h["rows"] for h in heads), events=sum(h["events"] for h in heads),
                  errors=sum(h["errors"] for h in heads), first_ms=min(firsts) if firsts else None,
                  last_ms=max(lasts) if lasts else None, latency_count=sum(h["lc"] for h in heads),
                  latency_sum=sum(h["ls"] for h in heads), latency_hist=hist, unknown_columns=dict(unknown),
                  sampled_extra=sum(h.get("se", 0.0) for h in heads),
                  sample=Sample.merge_all(samples + [Sample.empty(k) for k in dict.fromkeys(h["k"] for h in heads)]))
        if accs:
            agg.accumulator = _accumulator_of(accs, layouts, unknown_reference)
        return agg

    # ----------------------------------------------------------------- views

    def latency_quantile(self, q: float) -> float | None:
        """The q-quantile of latency (µs), read from the log histogram (geometric bin middle).

        Within 4 % of the exact quantile (a bin's edges differ by a factor 1.039); None without
        latencies:

        >>> agg = WindowAggregate()
        >>> agg.latency_hist += np.bincount(np.searchsorted(LATENCY_EDGES, [900.0, 1100.0, 5000.0], side='right'),
        ...                                 minlength=agg.latency_hist.size)
        >>> median = agg.latency_quantile(0.5)  # the exact median is 1100 µs
        >>> bool(abs(median - 1100) / 1100 < 0.04)
        True
        >>> WindowAggregate().latency_quantile(0.5) is None
        True
        """
        return self.latency_quantiles([q])[0]

    def latency_quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """``[self.latency_quantile(q) for q in qs]``, the histogram summed once.

        >>> WindowAggregate().latency_quantiles([0.5, 0.99])
        [None, None]
        """
        total = int(self.latency_hist.sum())
        if total == 0:
            return [None] * len(qs)
        out: list[float | None] = []
        for i in np.searchsorted(np.cumsum(self.latency_hist), [q * total for q in qs], side="left").tolist():
            if i == 0:
                out.append(float(LATENCY_EDGES[0]))
            elif i >= LATENCY_EDGES.size:
                out.append(float(LATENCY_EDGES[-1]))
            else:
                out.append(float(np.sqrt(LATENCY_EDGES[i - 1] * LATENCY_EDGES[i])))
        return out

    @property
    def latency_mean(self) -> float | None:
        """The mean latency (µs), None without latencies.

        >>> WindowAggregate(latency_count=2, latency_sum=2000.0).latency_mean
        1000.0
        """
        return self.latency_sum / self.latency_count if self.latency_count else None

    def sample_frame(self):
        """The sample as a pandas DataFrame (columns as in the events).

        >>> agg = WindowAggregate(sample=Sample(10, np.array([2, 1], dtype=np.uint64), [{'x': 1, 'c': 'a'}, {'x': 2, 'c': 'b'}]))
        >>> agg.sample_frame().to_dict('list')
        {'x': [1.0, 2.0], 'c': ['a', 'b']}
        """
        return self.sample.block.to_frame()

    def window_stats(self) -> dict[str, dict[str, Any]]:
        """The window's statistics per reference column, as MLRun's ``sample_df_stats``: the
        accumulator's (from every row: count, mean, std, min, max, hist, ...) and, per numeric
        column, the quartiles ``25%``, ``50%``, ``75%`` of the window's uniform sample (approximate:
        a sample of at most ``sample.k`` rows stands for the window; exact while the window has
        fewer rows).

        >>> from streamdrift.udfs.events import decode
        >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> agg = WindowAggregate()
        >>> agg.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [{"x": 0.5}, {"x": 1.5}, {"x": 1.7}]}')], layout)
        >>> x = agg.window_stats()['x']
        >>> x['count'], x['min'], x['max'], x['hist'][0]
        (3, 0.5, 1.7, [0, 1, 2, 0])
        >>> [x['25%'], x['50%'], x['75%']] == np.percentile([0.5, 1.5, 1.7], [25, 50, 75]).tolist()
        True
        """
        stats = self.accumulator.to_stats() if self.accumulator is not None else {}
        block = self.sample.block
        for name, column in stats.items():
            if name in block.numeric and "hist" in column:
                values = block.matrix[:, block.numeric.index(name)]
                values = values[np.isfinite(values)]
                if values.size:
                    for q, v in zip(("25%", "50%", "75%"), np.percentile(values, [25, 50, 75]).tolist()):
                        column[q] = v
        return stats

    # ----------------------------------------------------------------- bytes

    def to_bytes(self) -> bytes:
        """``SDWA`` + JSON header + accumulator bytes + latency histogram + sample (npy/JSON).

        >>> from streamdrift.udfs.events import decode
        >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> agg = WindowAggregate()
        >>> agg.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [{"x": 0.5}, {"x": 1.5}]}')], layout)
        >>> data = agg.to_bytes()
        >>> data[:4]
        b'SDWA'
        >>> back = WindowAggregate.from_bytes(data, layout)
        >>> back.rows, back.accumulator.histogram('x').tolist(), sorted(r['x'] for r in back.sample.rows)
        (2, [0, 1, 1, 0], [0.5, 1.5])
        """
        return encode_aggregates([self])[0]

    @classmethod
    def from_bytes(cls, data: bytes, layouts=None, unknown_reference: str = "raise") -> WindowAggregate:
        """Rebuild from :meth:`to_bytes`. ``layouts``: the endpoint's reference ``Layout``, a mapping
        fingerprint → layout, or a callable fingerprint → layout (or None). When the state holds
        counts for a reference that is not given, raises ValueError, or with
        ``unknown_reference="drop"`` leaves those counts out (the rows stay counted in ``rows``
        and ``events``, as when the reference changes within a window).

        >>> from streamdrift.udfs.events import decode
        >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
        >>> agg = WindowAggregate()
        >>> agg.add_events([decode('{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [{"x": 0.5}]}')], layout)
        >>> WindowAggregate.from_bytes(agg.to_bytes())  # counts of a reference not given
        Traceback (most recent call last):
        ...
        ValueError: window state holds counts for a reference that is not known
        >>> WindowAggregate.from_bytes(agg.to_bytes(), unknown_reference='drop').rows
        1
        """
        head, parts = _split(data)
        acc_b, lat_b, pri_b, sample_b = map(bytes, parts)
        hist = np.zeros(LATENCY_EDGES.size + 1, np.int64)
        if lat_b:
            idx, counts = np.frombuffer(lat_b, "<i8").reshape(2, -1)
            hist[idx] = counts
        agg = cls(rows=head["rows"], events=head["events"], errors=head["errors"], first_ms=head["first"],
                  last_ms=head["last"], latency_count=head["lc"], latency_sum=head["ls"], latency_hist=hist,
                  unknown_columns=head["unknown"], sampled_extra=head.get("se", 0.0),
                  sample=Sample(head["k"], np.frombuffer(pri_b, "<u8").copy(), block=RowBlock.from_bytes(sample_b)))
        if acc_b:
            agg.accumulator = _accumulator_of([acc_b], layouts, unknown_reference)
        return agg


def encode_aggregates(aggs: Sequence[WindowAggregate]) -> list[bytes]:
    """``[agg.to_bytes() for agg in aggs]``, with the accumulators (:func:`encode_accumulators`) and
    the latency histograms encoded in one pass of numpy for all: the parse stage encodes every
    partial of a batch, about one per record at thousands of endpoints.

    >>> parts = [WindowAggregate(rows=1, events=1), WindowAggregate(rows=2, events=1, latency_count=1)]
    >>> [WindowAggregate.from_bytes(data).rows for data in encode_aggregates(parts)]
    [1, 2]
    """
    if not aggs:
        return []
    accs = iter(encode_accumulators([agg.accumulator for agg in aggs if agg.accumulator is not None]))
    bins = LATENCY_EDGES.size + 1
    hists = [agg.latency_hist for agg in aggs]
    if any(hist.shape != (bins,) for hist in hists):
        raise ValueError(f"a latency histogram must hold {bins} counts")
    flat = np.concatenate(hists) if len(aggs) > 1 else hists[0]
    nonzero = np.flatnonzero(flat)
    if len(aggs) == 1:  # to_bytes: the offsets need no numpy
        cut, local = [0, nonzero.size], nonzero
    else:
        cut, local = np.searchsorted(nonzero, np.arange(0, bins * (len(aggs) + 1), bins)).tolist(), nonzero % bins
    index, counts = local.astype("<i8").tobytes(), flat[nonzero].astype("<i8").tobytes()
    out = []
    for i, agg in enumerate(aggs):
        acc = next(accs) if agg.accumulator is not None else b""
        a, b = cut[i], cut[i + 1]
        lat = index[8 * a:8 * b] + counts[8 * a:8 * b]  # the non-zero bins, then their counts
        sample = agg.sample.block.to_bytes()
        pri = agg.sample.priorities.astype("<u8").tobytes()
        head = _json_dumps({
            "rows": agg.rows, "events": agg.events, "errors": agg.errors, "first": agg.first_ms,
            "last": agg.last_ms, "lc": agg.latency_count, "ls": agg.latency_sum,
            "unknown": agg.unknown_columns, "k": agg.sample.k, "se": agg.sampled_extra,
            "sizes": [len(acc), len(lat), len(pri), len(sample)],
        })
        out.append(b"".join([_HEAD.pack(_MAGIC, len(head)), head, acc, lat, pri, sample]))
    return out


def _accumulator_of(parts: Sequence[bytes], layouts, unknown_reference: str) -> Accumulator | None:
    """The accumulator of ``parts`` (accumulator bytes of one reference, see :meth:`WindowAggregate.from_bytes`
    for ``layouts`` and ``unknown_reference``), or None when their reference is not known and may be dropped."""
    layout = _find_layout(bytes(parts[0][8:16]), layouts)
    if layout is not None:
        return Accumulator.from_bytes(parts[0], layout) if len(parts) == 1 else Accumulator.merge_bytes(parts, layout)
    if unknown_reference == "raise":
        raise ValueError("window state holds counts for a reference that is not known")
    log.warning("window state holds bin counts for a reference no longer known: its rows are counted, their bins "
                "left out")
    return None


def _split(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The JSON header of :meth:`WindowAggregate.to_bytes` output and its four parts (accumulator,
    latency histogram, sample priorities, sample rows)."""
    magic, n = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("not window aggregate state (bad magic bytes)")
    pos = _HEAD.size
    head = _json_loads(data[pos:pos + n])
    pos += n
    parts = []
    for size in head["sizes"]:
        parts.append(data[pos:pos + size])
        pos += size
    return head, parts


_LONG_NUMBER = re.compile(rb"\d{19}")


def _json_loads(text: bytes) -> Any:
    """``json.loads(text)``, by orjson (5x faster on a window's header) where it reads the same:
    not for a number of 19 digits or more (orjson reads integers beyond 64 bits as floats), nor for
    what it refuses (NaN and Infinity literals, floats beyond float64, lone surrogates)."""
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _json_dumps(value: dict[str, Any]) -> bytes:
    """``json.dumps(value)`` without spaces, by orjson (a few times faster) where it writes the same
    value: ``value``'s floats at its top level only. Python's json writes a NaN or an infinity there
    (as ``NaN``/``Infinity``), which orjson would write as null; and what orjson refuses (a lone
    surrogate, an integer beyond 64 bits) goes there too. :func:`_json_loads` reads both."""
    if all(type(v) is not float or math.isfinite(v) for v in value.values()):
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:
            pass
    return json.dumps(value, separators=(",", ":")).encode()


def _find_layout(fingerprint: bytes, layouts) -> Layout | None:
    if layouts is None:
        return None
    if isinstance(layouts, Layout):
        return layouts if fingerprint == layouts.fingerprint else None
    if callable(layouts):
        return layouts(fingerprint)
    return layouts.get(fingerprint)


_PLAIN_NUMBERS = frozenset({int, float, type(None)})
_NUMBERS = frozenset({int, float})


def _names_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every name the rows use, in the order they first name them."""
    return list(dict.fromkeys(name for names in dict.fromkeys(map(tuple, rows)) for name in names))


def _gather_rows(events: Sequence[Event]) -> tuple[list[str], list[Sequence[Any]], list[dict[str, Any]] | None,
                                                   list[int]]:
    """The events' rows as (names, one value sequence per row in that order, the rows as dicts or
    None, each event's number of rows). Positional rows (the decode fast path's) under the same
    names are taken as they are: no dict is made or taken apart."""
    if events and all(type(ev.rows) is PositionalRows for ev in events):
        names = events[0].rows.names
        if all(ev.rows.names == names for ev in events):
            parts = [ev.rows.values for ev in events]
            return list(names), [v for part in parts for v in part], None, list(map(len, parts))
    parts = [tuple(ev.rows) for ev in events]
    rows = [row for part in parts for row in part]
    names = _names_of(rows)
    return names, _take(rows, names), rows, list(map(len, parts))


def _take(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[Sequence[Any]]:
    """Each row's values of ``names`` (None where missing), one sequence per row."""
    if len(names) > 1:
        try:
            return list(map(itemgetter(*names), rows))  # every row has every name: one C call per row
        except KeyError:
            pass
    return [[row.get(name) for name in names] for row in rows]
_ROWS_HEAD = struct.Struct("<II")  # rows, length of the JSON part


@dataclasses.dataclass
class RowBlock:
    """Rows (name → value) column by column: the columns holding only numbers (or nothing) as one
    float64 matrix, the others (strings, booleans, ...) as lists (None where a row lacks the value).
    A number comes back as a float; a missing or None number as NaN.

    Examples
    --------
    >>> block = RowBlock.from_rows([{'x': 1, 'c': 'a'}, {'x': None, 'c': 'b'}, {'c': 'c'}])
    >>> block.n, block.names, block.numeric, block.matrix[:, 0].tolist(), block.other
    (3, ['x', 'c'], ['x'], [1.0, nan, nan], {'c': ['a', 'b', 'c']})
    >>> block.take(np.array([2, 0])).to_rows()  # a missing value is left out of a row
    [{'x': nan, 'c': 'c'}, {'x': 1.0, 'c': 'a'}]
    >>> RowBlock.from_bytes(block.to_bytes()).other == block.other
    True
    >>> RowBlock.concat(block, RowBlock.from_rows([{'y': 2.5}])).names
    ['x', 'c', 'y']
    """

    n: int
    names: list[str]  # every column, in the order the rows first name them
    numeric: list[str]  # the matrix's columns
    matrix: np.ndarray  # n x len(numeric), float64
    other: dict[str, list[Any]]

    @classmethod
    def empty(cls) -> RowBlock:
        return cls(0, [], [], np.zeros((0, 0)), {})

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> RowBlock:
        names = _names_of(rows)
        return cls.from_values(names, _take(rows, names))

    @classmethod
    def from_values(cls, names: Sequence[str], values: Sequence[Sequence[Any]]) -> RowBlock:
        """Rows given as value sequences in the order of ``names`` (None where a row lacks one).

        >>> RowBlock.from_values(['x', 'y'], [[1, 2], [3, None]]).matrix.tolist()
        [[1.0, 2.0], [3.0, nan]]
        """
        names = list(names)
        if _NUMBERS.issuperset(map(type, chain.from_iterable(values))):  # the common case, checked in C
            kinds = [{float}] * len(names)
        else:
            kinds = [{type(r[j]) for r in values} for j in range(len(names))] if values else []
        numeric = [j for j, k in enumerate(kinds) if k <= _PLAIN_NUMBERS]
        try:
            cells = values if len(numeric) == len(names) else [[r[j] for j in numeric] for r in values]
            matrix = np.array(cells, dtype=np.float64).reshape(len(values), len(numeric))
        except OverflowError:  # an integer beyond float64 stays exact in the other columns
            numeric = [j for j in numeric if all(v is None or abs(v) < 1e300 for v in (r[j] for r in values))]
            matrix = np.array([[r[j] for j in numeric] for r in values], dtype=np.float64).reshape(len(values), len(numeric))
        numeric_set = set(numeric)
        other = {names[j]: [r[j] for r in values] for j in range(len(names)) if j not in numeric_set}
        return cls(len(values), names, [names[j] for j in numeric], matrix, other)

    def to_bytes(self) -> bytes:
        if not self.n and not self.names and not self.other:
            return _NO_ROWS
        if self.other:
            head = json.dumps({"numeric": self.numeric, "other": self.other, "names": self.names},
                              separators=(",", ":"), default=_json_default).encode()
        else:  # names only
            head = _json_dumps({"numeric": self.numeric, "other": self.other, "names": self.names})
        return _ROWS_HEAD.pack(self.n, len(head)) + head + self.matrix.astype("<f8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> RowBlock:
        if not data:
            return cls.empty()
        n, size = _ROWS_HEAD.unpack_from(data)
        head = _json_loads(data[_ROWS_HEAD.size:_ROWS_HEAD.size + size])
        numeric, other = head["numeric"], head["other"]
        matrix = np.frombuffer(data, "<f8", count=n * len(numeric),
                               offset=_ROWS_HEAD.size + size).reshape(n, len(numeric)).copy()
        return cls(n, head.get("names") or numeric + list(other), numeric, matrix, other)

    def _column(self, name: str) -> list[Any]:
        if name in self.other:
            return self.other[name]
        if name in self.numeric:
            return self.matrix[:, self.numeric.index(name)].tolist()
        return [None] * self.n

    def to_rows(self) -> list[dict[str, Any]]:
        if not self.other:
            order = [self.numeric.index(name) for name in self.names]
            return [dict(zip(self.names, r)) for r in self.matrix[:, order].tolist()]
        columns = [self._column(name) for name in self.names]
        return [{k: v for k, v in zip(self.names, r) if v is not None} for r in zip(*columns)]

    def to_frame(self):
        """The rows as a pandas DataFrame (a missing number NaN, a missing other value None)."""
        import pandas as pd

        data = {name: self.other[name] if name in self.other else self.matrix[:, self.numeric.index(name)]
                for name in self.names}
        return pd.DataFrame(data, index=pd.RangeIndex(self.n), columns=self.names)

    def take(self, index: np.ndarray) -> RowBlock:
        """The rows at ``index``, in its order."""
        idx = index.tolist()
        return RowBlock(len(idx), self.names, self.numeric, self.matrix[index],
                        {name: [col[i] for i in idx] for name, col in self.other.items()})

    @staticmethod
    def concat_all(blocks: Sequence[RowBlock]) -> RowBlock:
        """The rows of every block in order (one copy when their columns agree, else pairwise).

        >>> blocks = [RowBlock.from_rows([{'x': i}]) for i in range(3)]
        >>> RowBlock.concat_all(blocks).matrix[:, 0].tolist()
        [0.0, 1.0, 2.0]
        """
        blocks = [b for b in blocks if b.n] or list(blocks[:1]) or [RowBlock.empty()]
        first = blocks[0]
        if all(b.names == first.names and b.numeric == first.numeric for b in blocks):
            return RowBlock(sum(b.n for b in blocks), first.names, first.numeric,
                            np.concatenate([b.matrix for b in blocks]),
                            {name: [v for b in blocks for v in b.other[name]] for name in first.other})
        out = first
        for block in blocks[1:]:
            out = RowBlock.concat(out, block)
        return out

    @staticmethod
    def concat(a: RowBlock, b: RowBlock) -> RowBlock:
        """The rows of ``a`` then those of ``b`` (a column only one side has is missing on the other;
        a column that is not numeric on one side is not numeric)."""
        if not b.n:
            return a
        if not a.n:
            return b
        if a.names == b.names and a.numeric == b.numeric:
            return RowBlock(a.n + b.n, a.names, a.numeric, np.concatenate([a.matrix, b.matrix]),
                            {name: a.other[name] + b.other[name] for name in a.other})
        names = list(dict.fromkeys(a.names + b.names))
        numeric = [name for name in names if name not in a.other and name not in b.other]

        def part(block: RowBlock) -> np.ndarray:
            out = np.full((block.n, len(numeric)), np.nan)
            for j, name in enumerate(numeric):
                if name in block.numeric:
                    out[:, j] = block.matrix[:, block.numeric.index(name)]
            return out

        other = {name: a._column(name) + b._column(name) for name in names if name not in set(numeric)}
        return RowBlock(a.n + b.n, names, numeric, np.concatenate([part(a), part(b)]), other)


_NO_COLUMNS_HEAD = _json_dumps({"numeric": [], "other": {}, "names": []})
_NO_ROWS = _ROWS_HEAD.pack(0, len(_NO_COLUMNS_HEAD)) + _NO_COLUMNS_HEAD  # the bytes of an empty block, most partials' sample


def _opt(f, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return f(a, b)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def count_rows(rows: Sequence[dict[str, Any]], layout: Layout
               ) -> tuple[np.ndarray, dict[str, list], np.ndarray | None]:
    """Rows (name → value) → (rows × numeric-columns float matrix, name → category values, the
    matrix's mask of invalid values or None when there is none).

    Missing values and None are NaN / null. Booleans count as 0/1. A string in a numeric column is
    read as the training data was (:func:`streamdrift.udfs.reference.parse_numbers`): "1.5" is 1.5, "N/A" an
    invalid value (NaN in the matrix, True in the mask). Any other value that is not a number
    within the float64 range raises ValueError naming the column and the value.

    Examples
    --------
    >>> layout = Layout.from_feature_stats({'x': {'hist': [[2, 2], [0.0, 1.0, 2.0]]}})
    >>> matrix, categories, invalid = count_rows([{'x': 1.5}, {'x': True}, {'x': None}], layout)
    >>> matrix.tolist(), invalid
    ([[1.5], [1.0], [nan]], None)
    >>> matrix, _, invalid = count_rows([{'x': '2.5'}, {'x': 'N/A'}], layout)
    >>> matrix.tolist(), invalid.tolist()
    ([[2.5], [nan]], [[False], [True]])
    """
    numeric = layout.numeric
    values = _take(rows, numeric)
    if str not in set(map(type, chain.from_iterable(values))):
        try:  # one conversion for the whole batch (None → NaN, bools → 0/1)
            matrix = np.array(values, dtype=np.float64).reshape(len(rows), len(numeric))
        except (TypeError, ValueError, OverflowError):
            pass  # find the column and the value below
        else:
            return matrix, _categories(rows, layout), None
    matrix, invalid = _stack([_numeric_values([row.get(name) for row in rows], name) for name in numeric], len(rows))
    return matrix, _categories(rows, layout), invalid


def _numeric_values(col: Sequence[Any], name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """One numeric column's values (None where missing) as float64, and the mask of its invalid
    values (None when there is none); strings read by :func:`streamdrift.udfs.reference.parse_numbers`.
    Raises ValueError naming the column for a value that is neither a number within the float64
    range, None, nor a string."""
    col, invalid = numbers_of_cells(col)
    try:
        x = np.asarray([np.nan if v is None else v for v in col], dtype=np.float64)
        if x.shape != (len(col),):  # nested lists of equal lengths
            raise ValueError
        return x, invalid
    except (TypeError, ValueError, OverflowError):
        bad = next((v for v in col if v is not None and not _is_number(v)), None)
        raise ValueError(f"column {name!r} is numeric in the reference, got {str(bad)[:64]} "
                         "(not a number within the float64 range)") from None


def _stack(columns: Sequence[tuple[np.ndarray, np.ndarray | None]], n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows × columns matrix, invalid mask or None) of :func:`_numeric_values` columns."""
    matrix = np.empty((n, len(columns)))
    invalid = None
    for j, (x, bad) in enumerate(columns):
        matrix[:, j] = x
        if bad is not None:
            invalid = np.zeros(matrix.shape, dtype=bool) if invalid is None else invalid
            invalid[:, j] = bad
    return matrix, invalid


def _count_block(block: RowBlock, names: Sequence[str], values: Sequence[Sequence[Any]] | None, layout: Layout
                 ) -> tuple[np.ndarray, dict[str, list], np.ndarray | None]:
    """:func:`count_rows` from the rows' block, with no second pass over the rows: the reference's
    numeric columns from the block's matrix, or, for a column that holds other values too
    (strings), from its values (``values``: the rows' values in the order of ``names``; made from
    the block when None)."""
    where = {name: j for j, name in enumerate(block.numeric)}
    if all(name in where for name in layout.numeric):
        matrix, invalid = block.matrix[:, [where[name] for name in layout.numeric]], None
    else:
        missing = np.full(block.n, np.nan)
        matrix, invalid = _stack([(block.matrix[:, where[name]], None) if name in where else
                                  _numeric_values(block.other[name], name) if name in block.other else
                                  (missing, None) for name in layout.numeric], block.n)
    position = {name: j for j, name in enumerate(names)}
    categories = {}
    if layout.categorical and values is None:
        values = [[row.get(name) for name in names] for row in block.to_rows()]
    for name in layout.categorical:
        j = position.get(name)
        categories[name] = ([None] * block.n if j is None
                            else [None if r[j] is None else str(r[j]) for r in values])
    return matrix, categories, invalid


def _categories(rows: Sequence[dict[str, Any]], layout: Layout) -> dict[str, list]:
    return {name: [None if row.get(name) is None else str(row.get(name)) for row in rows]
            for name in layout.categorical}


def _is_number(value: Any) -> bool:
    if isinstance(value, str):
        return False
    try:
        float(value)
        return True
    except (TypeError, ValueError, OverflowError):
        return False


# --------------------------------------------------------------------------- a batch of records


@dataclasses.dataclass(frozen=True)
class Partial:
    """The aggregate of one endpoint and window over one batch of records
    (:func:`streamdrift.udfs.batch.aggregate_records` makes them)."""

    endpoint_id: str
    window_start: int
    max_timestamp_ms: int
    aggregate: WindowAggregate
    index: int  # a record of the batch that belongs to this partial (the first one)
    late: bool = False  # its records came after their window closed for good (EventClock)
