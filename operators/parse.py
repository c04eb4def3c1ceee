"""Parse + validate + pre-aggregate, one Arrow batch of Kafka records at a time.

A vectorised (pandas) function on the Table API: Flink hands it up to
``python.fn-execution.arrow.batch.size`` records at once, so Python touches records in batches. It
returns one row per input record (the record itself stays in the JVM: Flink forwards it beside
the result). Every good record gets its endpoint id and event time (for its raw row in Parquet
and for the watermark), its request id, latency and error (raw-row columns) and whether it came
after its window closed for good (``late``, :class:`streamdrift.udfs.batch.EventClock`). The
batch's partial aggregates (one per endpoint, window and lateness) go to the window stage in one
row per group of endpoints, its key (:func:`streamdrift.udfs.endpoint_id.endpoint_group`): the
record of the group's first partial carries them all (kind ``P``,
:func:`streamdrift.operators.windows.pack_partials`; a ``batch_complete`` of the group starts a new
row for the partials of the records after it, so none overtakes it), the others are kind ``R``; a dead
letter carries its reason (kind ``D``); MLRun's ``batch_complete`` is kind ``C``, its
``window_start`` the time up to which the endpoint's windows may close. The rows of kinds other
than ``R``, and the batch's last row, carry ``clock_ms`` (the others None): only they go on to the
window stage, and the watermark reads them.
"""

from __future__ import annotations

import bisect

from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction

from streamdrift.udfs.applications import sample_size_for
from streamdrift.udfs.batch import EventClock, aggregate_isolated, clock_column
from streamdrift.operators.catalog import endpoint_catalog, keep_out_of_collections
from streamdrift.operators.windows import PartialRow, pack_partials
from streamdrift.udfs.columnar import ColumnarReader
from streamdrift.udfs.contract import TimeBounds
from streamdrift.udfs.endpoint_id import endpoint_group
from streamdrift.udfs.events import MAX_EVENT_BYTES, Tumbling, tumbling
from streamdrift.udfs.partitions import hour_partitions, shard_partitions
from streamdrift.udfs.reloading import Reloading
from streamdrift.udfs.window import encode_aggregates

PARTIAL, RECORD, DEAD, CONTROL = "P", "R", "D", "C"


def parse_tiers(batch_records: int, batch_bytes: int, max_record_bytes: int = MAX_EVENT_BYTES):
    """Tiers of record sizes for the parse stage, ``[(low, high, records per batch), ...]``: a record
    of ``size`` bytes belongs to the tier with ``low < size <= high`` (``high`` None: no bound).

    Records of at most ``batch_bytes / batch_records`` bytes go in batches of ``batch_records``;
    larger ones in batches of ``batch_bytes / max_record_bytes`` (a record over
    ``max_record_bytes`` is a dead letter and crosses to Python as its first bytes only). So a
    batch handed to Python holds at most ``batch_bytes`` bytes of records, whatever their sizes.

    >>> parse_tiers(20_000, 64 << 20)
    [(-1, 3355, 20000), (3355, None, 64)]
    """
    small = batch_bytes // batch_records
    large_batch = max(1, batch_bytes // max_record_bytes)
    if small >= max_record_bytes or large_batch >= batch_records:
        return [(-1, None, batch_records)]
    return [(-1, small, batch_records), (small, None, large_batch)]

RESULT_TYPE = DataTypes.ROW([
    DataTypes.FIELD("kind", DataTypes.STRING()),
    DataTypes.FIELD("endpoint_id", DataTypes.STRING()),
    DataTypes.FIELD("window_start", DataTypes.BIGINT()),
    DataTypes.FIELD("event_ms", DataTypes.BIGINT()),  # a dead letter's is 0 (it never moves clock_ms)
    DataTypes.FIELD("request_id", DataTypes.STRING()),  # the raw row's columns beside the payload
    DataTypes.FIELD("latency_us", DataTypes.DOUBLE()),
    DataTypes.FIELD("error", DataTypes.BOOLEAN()),
    DataTypes.FIELD("body", DataTypes.BYTES()),
    DataTypes.FIELD("hour", DataTypes.STRING()),  # the raw row's hour partition (yyyy-MM-dd-HH, UTC)
    DataTypes.FIELD("shard", DataTypes.STRING()),  # the raw row's shard partition (streamdrift.connectors.raw_rows)
    DataTypes.FIELD("late", DataTypes.BOOLEAN()),  # after its window closed for good (streamdrift.udfs.batch.EventClock)
    DataTypes.FIELD("clock_ms", DataTypes.BIGINT()),  # what the watermark reads (streamdrift.udfs.batch.clock_column)
])


class ParseRecords(ScalarFunction):
    def __init__(self, load_endpoints, window_ms: int, sample_size: int, refresh_seconds: float = 30.0,
                 max_future_ms: int = 300_000, max_age_ms: int = 36_500 * 86_400_000,
                 allowed_lateness_ms: int | None = None, max_disorder_ms: int = 5_000, load_apps=None,
                 staggered: bool = False):
        self.load_endpoints = load_endpoints
        self.windows = Tumbling(tumbling(window_ms).size_ms, staggered)  # where each endpoint's windows start
        self.load_apps = load_apps
        self.window_ms = window_ms
        self.sample_size = sample_size
        self.refresh_seconds = refresh_seconds
        self.max_future_ms = max_future_ms
        self.max_age_ms = max_age_ms
        self.allowed_lateness_ms = window_ms if allowed_lateness_ms is None else allowed_lateness_ms
        self.max_disorder_ms = max_disorder_ms

    def open(self, function_context: FunctionContext):
        import gc

        # Decoding allocates a few containers per record; at CPython's default threshold (700) the
        # cyclic collector ran every few hundred records and, every 100 collections, walked every
        # object of the worker (PyFlink, Beam, pandas, pyarrow): a fifth of the worker's time.
        # What exists now (modules, the runtime) is left out of all collections, so is the catalog
        # once loaded (operators.catalog), and the young generation is collected every 50,000 allocations.
        gc.freeze()
        _, second, third = gc.get_threshold()
        gc.set_threshold(50_000, max(second, 20), max(third, 100))
        self.catalog = endpoint_catalog(self.load_endpoints, self.refresh_seconds)
        self.catalog.refresh()
        keep_out_of_collections()
        self.apps = Reloading(self.load_apps, self.refresh_seconds, "applications", required=False)
        self.window_sample = self.sample_size
        self.reader = ColumnarReader()
        self.groups: dict[str, str] = {}
        self.clock = EventClock(self.window_ms, self.allowed_lateness_ms, self.max_disorder_ms)
        group = function_context.get_metric_group()
        self.records = group.counter("records")
        self.dead_letters = group.counter("dead_letters")
        self.partials = group.counter("partials")

    def _group(self, endpoint_id: str) -> str:
        """:func:`streamdrift.udfs.endpoint_id.endpoint_group`, remembered (an MD5 per partial
        otherwise); forgotten past 100,000 endpoints, so that ids seen once do not pile up."""
        group = self.groups.get(endpoint_id)
        if group is None:
            if len(self.groups) >= 100_000:
                self.groups.clear()
            group = self.groups[endpoint_id] = endpoint_group(endpoint_id)
        return group

    def _window_sample(self) -> int:
        """Rows of each window's sample: none while no enabled application reads it (applications
        reloaded every ``refresh_seconds``; a registry that cannot be read keeps the last answer)."""
        if self.load_apps is not None and self.apps.refresh():
            self.window_sample = sample_size_for(self.apps.value, self.sample_size)
        return self.window_sample

    def eval(self, payloads, sizes=None):
        """``payloads``: the batch's ``payload`` column (a pandas Series of bytes); ``sizes``: each
        record's size in bytes (a record over the limit comes as its first bytes only)."""
        import time

        import numpy as np
        import pandas as pd

        values = payloads.tolist()
        n = len(values)
        bounds = TimeBounds(int(time.time() * 1000), self.max_future_ms, self.max_age_ms)
        batch = aggregate_isolated(values, self.catalog, self.windows, self._window_sample(), self.reader, bounds,
                                   None if sizes is None else sizes.to_numpy(), self.clock)
        # object arrays handed to pandas as they are (copy=False): lists were converted, inferred and
        # copied again before PyFlink's conversion to Arrow
        kind, body, to_windows = np.full(n, RECORD, dtype=object), np.full(n, None, dtype=object), np.zeros(n, bool)
        ts = batch.timestamps
        window_start = self.windows.starts(ts, batch.endpoint_ids)
        # one row per group of endpoints (the window stage's key) holds the group's partials: the row of
        # its first partial, whose endpoint is of the group. A batch_complete row of the group comes
        # between the partials of records before it and after it, as their records do
        controls: dict[str, list[int]] = {}
        for i, control in batch.controls:
            controls.setdefault(self._group(control.endpoint_id), []).append(i)
        partials = sorted(batch.partials, key=lambda p: p.index)
        by_group: dict[tuple[str, int], list] = {}
        for p, data in zip(partials, encode_aggregates([p.aggregate for p in partials])):
            group = self._group(p.endpoint_id)
            after = bisect.bisect(controls[group], p.index) if group in controls else 0
            by_group.setdefault((group, after), []).append((p, data))
        for parts in by_group.values():
            i = parts[0][0].index
            kind[i], to_windows[i] = PARTIAL, True
            body[i] = pack_partials([PartialRow(p.endpoint_id, p.window_start, bool(p.late), data) for p, data in parts])
        for i, letter in batch.dead:
            kind[i], body[i], to_windows[i] = DEAD, letter.to_json().encode(), True
        for i, control in batch.controls:  # closes the endpoint's windows that start up to then
            kind[i], window_start[i], to_windows[i] = CONTROL, control.last_timestamp_ms, True
        self.records.inc(n)
        self.partials.inc(len(batch.partials))
        self.dead_letters.inc(len(batch.dead))
        return pd.DataFrame({
            "kind": kind, "endpoint_id": batch.endpoint_ids, "window_start": window_start,
            "event_ms": ts, "request_id": batch.request_ids, "latency_us": batch.latency_us,
            "error": batch.errors, "body": body, "hour": hour_partitions(ts),
            "shard": shard_partitions(batch.endpoint_ids), "late": batch.late,
            "clock_ms": clock_column(ts, to_windows)}, copy=False)
