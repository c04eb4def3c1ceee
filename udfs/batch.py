"""The parse stage's batch aggregation: a batch of records → per (endpoint, window) partial
aggregates (:class:`~streamdrift.udfs.window.Partial`), dead letters with their reasons, and each
record's raw-row columns. Records are read column-wise where they can be
(:class:`~streamdrift.udfs.columnar.ColumnarReader`), else decoded one by one
(:func:`streamdrift.udfs.events.decode`); either way a record ends in the same counts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from streamdrift.udfs.columnar import ColumnarReader
from streamdrift.udfs.events import (
    MAX_EVENT_BYTES,
    BatchComplete,
    DeadLetter,
    Event,
    dead_letter,
    Tumbling,
    decode,
    tumbling,
)
from streamdrift.udfs.window import DEFAULT_SAMPLE_SIZE, Partial, Sample, WindowAggregate, count_rows

log = logging.getLogger("streamdrift.parse")


@dataclasses.dataclass(frozen=True)
class Batch:
    """What :func:`aggregate_records` makes of a batch of records: the partials, the dead letters,
    and per record the columns of its raw row (None, 0 or NaN for a dead letter)."""

    partials: list[Partial]
    dead: list[tuple[int, Any]]  # (record index, DeadLetter)
    endpoint_ids: list[str | None]
    timestamps: np.ndarray  # int64 epoch ms
    request_ids: list[str | None]
    latency_us: np.ndarray  # float64, NaN where the event has none
    errors: list[bool | None]
    late: np.ndarray | None = None  # bool per record: after its window closed for good (with an EventClock)
    controls: list[tuple[int, Any]] = dataclasses.field(default_factory=list)  # (record index, BatchComplete)


def aggregate_batch(payloads: Sequence[bytes | str], catalog, window_ms: int | Tumbling,
                    sample_size: int = DEFAULT_SAMPLE_SIZE):
    """Decode a batch of records and aggregate them per (endpoint, window).

    ``catalog`` answers ``columns(endpoint_id) -> Columns`` and ``layout(endpoint_id) -> Layout | None``.
    Returns ``(partials, dead)`` where ``dead`` is a list of ``(record index, DeadLetter)``: a
    record that cannot be decoded, or whose values do not fit the endpoint's reference columns.

    Examples
    --------
    >>> from streamdrift.udfs.catalog import EndpointCatalog
    >>> catalog = EndpointCatalog(lambda: [{'endpoint_id': 'ep1', 'feature_names': ['x']}])
    >>> partials, dead = aggregate_batch([b'{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [1.5]}',
    ...                                   b'not json'], catalog, window_ms=60_000)
    >>> [(p.endpoint_id, p.window_start, p.aggregate.rows) for p in partials]
    [('ep1', 1764158400000, 1)]
    >>> [(i, letter.reason[:14]) for i, letter in dead]
    [(1, 'malformed JSON')]
    """
    batch = aggregate_records(payloads, catalog, window_ms, sample_size)
    return batch.partials, batch.dead


_NEVER = -(1 << 62)  # an event time before any: the clock before its first record


@dataclasses.dataclass
class EventClock:
    """The parse stage's watermark, record by record: the newest event time read so far (in the
    order records are read, across batches) minus ``max_disorder_ms``, as Flink's bounded-disorder
    watermark. A record is late when that watermark, where it is read, has passed its window's end
    plus ``allowed_lateness_ms``: its window closed for good.

    Deciding it here, per record, lets a batch split its rows between a window's partial and the
    late count exactly as the raw rows' late flag says, wherever the batch boundaries fall.

    >>> clock = EventClock(window_ms=60_000, allowed_lateness_ms=60_000, max_disorder_ms=5_000)
    >>> clock.late(np.array([0, 200_000, 59_000, 150_000]), np.ones(4, bool)).tolist()
    [False, False, True, False]
    """

    window_ms: int
    allowed_lateness_ms: int
    max_disorder_ms: int
    newest_ms: int = _NEVER

    def late(self, timestamps: np.ndarray, accepted: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """Per record (epoch ms, in read order): late or not; only ``accepted`` records move the clock.
        ``starts``: each record's window start (epoch ms, int64, shape ``(n,)`` as ``timestamps``),
        required when windows are not aligned on the epoch (``Tumbling(..., staggered=True).starts``).

        >>> clock = EventClock(window_ms=60_000, allowed_lateness_ms=0, max_disorder_ms=0)
        >>> clock.late(np.array([120_000, 30_000]), np.array([False, True])).tolist()  # the first moves nothing
        [False, False]
        >>> clock.newest_ms
        30000
        """
        ts = np.where(accepted, timestamps, _NEVER)
        running = np.maximum.accumulate(np.concatenate(([self.newest_ms], ts)))[1:]
        if running.size:
            self.newest_ms = int(running[-1])
        if starts is None:
            starts = timestamps - timestamps % self.window_ms
        closed = starts + (self.window_ms - 1 + self.allowed_lateness_ms)
        return accepted & (closed < running - self.max_disorder_ms)


def clock_column(event_ms: np.ndarray, to_windows: np.ndarray) -> np.ndarray:
    """The ``clock_ms`` of each row of a parse batch (shape ``(n,)`` each): for a row that goes on
    to the window stage (``to_windows``) and for the batch's last row, the newest ``event_ms``
    (epoch ms) of the batch up to and including it; NaN for the others.

    float64, so that Arrow takes the column as it is (NaN masked to null, exact for any epoch ms
    under 2**53) instead of inferring the type of a list of ints and Nones.

    The job's watermark reads these rows only: at each of them it is what it would be had it read
    every row of the batch's stream up to there, and at the batch's end what every row of the
    batch makes it. Between them it stays where the last of them left it: at most a batch behind,
    never ahead (where streams meet, Flink takes the lowest of their watermarks, as before).

    >>> clock_column(np.array([5, 9, 0, 7, 8]), np.array([False, False, True, False, False])).tolist()
    [nan, nan, 9.0, nan, 9.0]
    >>> clock_column(np.array([], dtype=np.int64), np.array([], dtype=bool)).tolist()
    []
    """
    if not event_ms.size:
        return np.zeros(0)
    newest = np.maximum.accumulate(event_ms)
    keep = np.asarray(to_windows, dtype=bool).copy()
    keep[-1] = True
    return np.where(keep, newest.astype(np.float64), np.nan)


def aggregate_records(payloads: Sequence[bytes | str], catalog, window_ms: int | Tumbling,
                      sample_size: int = DEFAULT_SAMPLE_SIZE, reader=True, bounds=None, sizes=None,
                      clock: EventClock | None = None) -> Batch:
    """:func:`aggregate_batch`, plus each good record's raw-row columns.

    ``window_ms``: the windows' size in milliseconds (aligned on the epoch), or a :class:`Tumbling`
    (staggered windows). ``bounds``: the event times accepted (:class:`streamdrift.udfs.contract.TimeBounds`; None: any time
    Python represents); a record outside them is a dead letter saying so. ``sizes``: each record's
    size in bytes, when ``payloads`` may hold only the first bytes of a record over the size limit
    (:data:`streamdrift.udfs.events.MAX_EVENT_BYTES`): such a record is a dead letter with its true size.
    ``clock``: the parse stage's :class:`EventClock`; with it, each record is flagged late or not
    (``Batch.late``) and a window's late records and on-time records are in separate partials.
    MLRun's ``batch_complete`` events are ``Batch.controls``.

    ``reader``: a :class:`streamdrift.udfs.columnar.ColumnarReader` (kept across batches: it remembers what
    worked), True for a new one, False for none. The records it reads column-wise are
    aggregated there; every other record is decoded one by one here. Either way a record ends
    in the same counts (a batch may then carry two partials of one endpoint and window, which
    merge by addition).

    Examples
    --------
    Three records of one endpoint in two one-minute windows (12:00:00, 12:00:30 and 12:01:10
    UTC on 2025-11-26), and a record that is not JSON:

    >>> from streamdrift.udfs.catalog import EndpointCatalog
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> catalog = EndpointCatalog(lambda: [{'endpoint_id': 'ep1', 'feature_names': ['x'], 'feature_stats': stats}])
    >>> records = [b'{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [[0.5], [1.5]], "latency_us": 900}',
    ...            b'{"endpoint_id": "ep1", "timestamp": 1764158430, "inputs": [[1.7]]}',
    ...            b'{"endpoint_id": "ep1", "timestamp": 1764158470, "inputs": [[0.2]]}',
    ...            b'not json']
    >>> batch = aggregate_records(records, catalog, window_ms=60_000)
    >>> [(p.window_start, p.aggregate.events, p.aggregate.rows) for p in batch.partials]
    [(1764158400000, 2, 3), (1764158460000, 1, 1)]
    >>> batch.partials[0].aggregate.accumulator.histogram('x').tolist()  # 0.5 | 1.5, 1.7
    [0, 1, 2, 0]
    >>> [i for i, letter in batch.dead], batch.endpoint_ids
    ([3], ['ep1', 'ep1', 'ep1', None])
    >>> batch.latency_us.tolist()
    [900.0, nan, nan, nan]
    """
    n = len(payloads)
    oversize: list[tuple[int, DeadLetter]] = []
    if sizes is not None:
        big = np.flatnonzero(np.asarray(sizes) > MAX_EVENT_BYTES).tolist()
        if big:
            oversize = [(i, dead_letter(payloads[i], f"record of {int(sizes[i])} bytes exceeds the limit of "
                                                     f"{MAX_EVENT_BYTES} bytes", int(sizes[i]))) for i in big]
            payloads = list(payloads)
            for i in big:
                payloads[i] = b""  # never parsed: read by no path
    endpoint_ids: list[str | None] = [None] * n
    request_ids: list[str | None] = [None] * n
    errors: list[bool | None] = [None] * n
    timestamps = np.zeros(n, dtype=np.int64)
    latency = np.full(n, np.nan)
    partials: list[Partial] = []
    rest: Iterable[int] = range(n)
    assigner = tumbling(window_ms)
    if reader is True:
        reader = ColumnarReader()
    part = reader.aggregate(payloads, catalog, window_ms, sample_size, bounds) if reader else None
    if part is not None and part.index.size:
        partials.extend(part.partials)
        timestamps[part.index] = part.timestamps
        latency[part.index] = part.latency_us
        if part.index.size == n:  # the whole batch, in order
            endpoint_ids, request_ids, errors = list(part.endpoint_ids), list(part.request_ids), [False] * n
        else:
            for i, endpoint_id, request_id in zip(part.index.tolist(), part.endpoint_ids, part.request_ids):
                endpoint_ids[i], request_ids[i], errors[i] = endpoint_id, request_id, False
        left = np.ones(n, dtype=bool)
        left[part.index] = False
        rest = np.flatnonzero(left).tolist()
    groups: dict[tuple[str, int], list[tuple[int, Event]]] = {}
    dead: list[tuple[int, DeadLetter]] = list(oversize)
    controls: list[tuple[int, BatchComplete]] = []
    skip = {i for i, _ in oversize}
    for i in rest:
        if i in skip:
            continue
        out = decode(payloads[i], catalog.columns, bounds=bounds)
        if isinstance(out, DeadLetter):
            dead.append((i, out))
        elif isinstance(out, BatchComplete):
            controls.append((i, out))
            endpoint_ids[i] = out.endpoint_id
        else:
            groups.setdefault((out.endpoint_id, assigner.start(out.timestamp_ms, out.endpoint_id)), []).append((i, out))
    for (endpoint_id, start), items in groups.items():
        layout = catalog.layout(endpoint_id)
        agg = WindowAggregate(sample=Sample.empty(sample_size))
        try:
            agg.add_events([ev for _, ev in items], layout, sample_size)
        except ValueError:
            # one or more events do not fit the reference (add_events left agg unchanged):
            # dead-letter those, count the others
            kept = []
            for i, ev in items:
                try:
                    if not ev.error and ev.rows:
                        count_rows(ev.rows, layout)
                except ValueError as exc:
                    dead.append((i, dead_letter(payloads[i], f"endpoint {endpoint_id}: {exc}", endpoint_id=endpoint_id)))
                else:
                    kept.append((i, ev))
            agg.add_events([ev for _, ev in kept], layout, sample_size)
            items = kept
        for i, ev in items:
            endpoint_ids[i], request_ids[i], errors[i] = ev.endpoint_id, ev.request_id, ev.error
            timestamps[i] = ev.timestamp_ms
            if ev.latency_us is not None:
                latency[i] = ev.latency_us
        if items:
            partials.append(Partial(endpoint_id, start, max(ev.timestamp_ms for _, ev in items), agg, items[0][0]))
    if part is not None and part.index.size:
        partials = _one_per_window(partials)
    batch = Batch(partials, dead, endpoint_ids, timestamps, request_ids, latency, errors, None, controls)
    if clock is not None:
        batch = _split_late(batch, payloads, catalog, window_ms, sample_size, bounds, clock)
    return batch


def _split_late(batch: Batch, payloads, catalog, window_ms: int | Tumbling, sample_size: int, bounds, clock: EventClock) -> Batch:
    """``batch`` with every record flagged late or not by ``clock``, and each partial holding only
    records of one kind: a window whose records in this batch are partly late is aggregated
    again record by record, as two partials (rare: a batch across the watermark passing a
    window's end plus the allowed lateness)."""
    n = len(batch.endpoint_ids)
    other = {i for i, _ in batch.dead} | {i for i, _ in batch.controls}
    accepted = np.fromiter((e is not None and i not in other for i, e in enumerate(batch.endpoint_ids)), bool, n)
    starts = tumbling(window_ms).starts(batch.timestamps, batch.endpoint_ids)
    late = clock.late(batch.timestamps, accepted, starts)
    if not late.any():
        return dataclasses.replace(batch, late=late)
    members: dict[tuple[str, int], list[int]] = {}
    for i in np.flatnonzero(accepted).tolist():
        members.setdefault((batch.endpoint_ids[i], int(starts[i])), []).append(i)
    partials = []
    for p in batch.partials:
        recs = members[(p.endpoint_id, p.window_start)]
        flags = late[recs]
        if flags.all() or not flags.any():
            partials.append(dataclasses.replace(p, late=bool(flags[0])))
            continue
        for flag in (False, True):
            subset = [i for i, f in zip(recs, flags.tolist()) if f == flag]
            again = aggregate_records([payloads[i] for i in subset], catalog, window_ms, sample_size, False, bounds)
            partials += [dataclasses.replace(q, index=subset[q.index], late=flag) for q in again.partials]
    return dataclasses.replace(batch, partials=partials, late=late)


def _one_per_window(partials: list[Partial]) -> list[Partial]:
    """Partials of the same endpoint and window (read by both paths) merged into one."""
    by_key: dict[tuple[str, int, bool], list[Partial]] = {}
    for p in partials:
        by_key.setdefault((p.endpoint_id, p.window_start, p.late), []).append(p)
    if len(by_key) == len(partials):
        return partials
    return [parts[0] if len(parts) == 1 else
            Partial(key[0], key[1], max(p.max_timestamp_ms for p in parts),
                    WindowAggregate.merge_all([p.aggregate for p in parts]), min(p.index for p in parts), key[2])
            for key, parts in by_key.items()]


def aggregate_isolated(payloads: Sequence[bytes | str], catalog, window_ms: int | Tumbling,
                       sample_size: int = DEFAULT_SAMPLE_SIZE, reader=True, bounds=None, sizes=None,
                       clock: EventClock | None = None) -> Batch:
    """:func:`aggregate_records`, where no record can fail the batch: when the batch raises (a
    fault of ours that some record triggers), each record is aggregated alone, and one that still
    raises becomes a dead letter carrying the exception (the others are counted as usual).

    Examples
    --------
    A catalog whose lookups fail stands for a fault of ours: every record becomes a dead letter
    saying so, and nothing is lost uncounted.

    >>> class Broken:
    ...     def columns(self, endpoint_id): raise RuntimeError('store down')
    ...     def layout(self, endpoint_id): raise RuntimeError('store down')
    >>> import logging; logging.disable(logging.ERROR)
    >>> batch = aggregate_isolated([b'{"endpoint_id": "ep1", "timestamp": 1764158400, "inputs": [1.5]}'],
    ...                            Broken(), window_ms=60_000)
    >>> logging.disable(logging.NOTSET)
    >>> batch.partials, [(i, letter.reason) for i, letter in batch.dead]
    ([], [(0, 'the parse stage failed on this record: RuntimeError: store down')])
    """
    try:
        return aggregate_records(payloads, catalog, window_ms, sample_size, reader, bounds, sizes, clock)
    except Exception:  # noqa: BLE001 - isolate the record that causes it, below
        log.exception("a batch of %d records failed as a whole; aggregating them one by one", len(payloads))
    parts = []
    for i, payload in enumerate(payloads):
        try:
            parts.append(aggregate_records([payload], catalog, window_ms, sample_size, False, bounds,
                                           None if sizes is None else sizes[i:i + 1], clock))
        except Exception as exc:  # noqa: BLE001 - this record's own failure: a dead letter with the reason
            letter = dead_letter(payload, f"the parse stage failed on this record: {type(exc).__name__}: {exc}")
            parts.append(Batch([], [(0, letter)], [None], np.zeros(1, np.int64), [None], np.full(1, np.nan), [None],
                               np.zeros(1, bool)))  # a dead letter is never late
    partials = [dataclasses.replace(p, index=i) for i, b in enumerate(parts) for p in b.partials]
    late = None if clock is None else np.concatenate([b.late for b in parts])
    return Batch(_one_per_window(partials), [(i, letter) for i, b in enumerate(parts) for _, letter in b.dead],
                 [b.endpoint_ids[0] for b in parts], np.concatenate([b.timestamps for b in parts]),
                 [b.request_ids[0] for b in parts], np.concatenate([b.latency_us for b in parts]),
                 [b.errors[0] for b in parts], late, [(i, c) for i, b in enumerate(parts) for _, c in b.controls])
