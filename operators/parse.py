"""Parse + validate + pre-aggregate, one Arrow batch of Kafka records at a time.

A vectorised (pandas) function on the Table API: Flink hands it up to
``python.fn-execution.arrow.batch.size`` records at once, so Python touches records in batches. It
returns one row per input record (the record itself stays in the JVM: Flink forwards it beside
the result). Every good record gets its endpoint id and event time (for its raw row in Parquet
and for the watermark), its request id, latency and error (raw-row columns); the record that starts a partial aggregate of an (endpoint, window) also
carries it (kind ``P``, the others ``R``); a dead letter carries its reason (kind ``D``).
"""

from __future__ import annotations

from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction

from connectors.raw_rows import hour_partitions
from udfs.catalog import EndpointCatalog
from udfs.columnar import ColumnarReader
from udfs.window import aggregate_records

PARTIAL, RECORD, DEAD = "P", "R", "D"

RESULT_TYPE = DataTypes.ROW([
    DataTypes.FIELD("kind", DataTypes.STRING()),
    DataTypes.FIELD("endpoint_id", DataTypes.STRING()),
    DataTypes.FIELD("window_start", DataTypes.BIGINT()),
    DataTypes.FIELD("event_ms", DataTypes.BIGINT()),  # a dead letter's is 0 (it never holds the watermark back)
    DataTypes.FIELD("request_id", DataTypes.STRING()),  # the raw row's columns beside the payload
    DataTypes.FIELD("latency_us", DataTypes.DOUBLE()),
    DataTypes.FIELD("error", DataTypes.BOOLEAN()),
    DataTypes.FIELD("body", DataTypes.BYTES()),
    DataTypes.FIELD("hour", DataTypes.STRING()),  # the raw row's hour partition (yyyy-MM-dd-HH, UTC)
])


class ParseRecords(ScalarFunction):
    def __init__(self, load_endpoints, window_ms: int, sample_size: int, refresh_seconds: float = 30.0):
        self.load_endpoints = load_endpoints
        self.window_ms = window_ms
        self.sample_size = sample_size
        self.refresh_seconds = refresh_seconds

    def open(self, function_context: FunctionContext):
        import gc

        # Decoding allocates a few containers per record; at CPython's default threshold (700) the
        # cyclic collector ran every few hundred records and, every 100 collections, walked every
        # object of the worker (PyFlink, Beam, pandas, pyarrow): a fifth of the worker's time.
        # What exists now (modules, the runtime) is left out of all collections, and the young
        # generation is collected every 50,000 allocations.
        gc.freeze()
        _, second, third = gc.get_threshold()
        gc.set_threshold(50_000, max(second, 20), max(third, 100))
        self.catalog = EndpointCatalog(self.load_endpoints, self.refresh_seconds)
        self.reader = ColumnarReader()
        group = function_context.get_metric_group()
        self.records = group.counter("records")
        self.dead_letters = group.counter("dead_letters")
        self.partials = group.counter("partials")

    def eval(self, payloads):
        """``payloads``: the batch's ``payload`` column (a pandas Series of bytes)."""
        import pandas as pd

        values = payloads.tolist()
        n = len(values)
        batch = aggregate_records(values, self.catalog, self.window_ms, self.sample_size, self.reader)
        kind, body = [RECORD] * n, [None] * n
        ts = batch.timestamps
        for p in batch.partials:
            kind[p.index], body[p.index] = PARTIAL, p.aggregate.to_bytes()
        for i, letter in batch.dead:
            kind[i], body[i] = DEAD, letter.to_json().encode()
        self.records.inc(n)
        self.partials.inc(len(batch.partials))
        self.dead_letters.inc(len(batch.dead))
        return pd.DataFrame({
            "kind": kind, "endpoint_id": batch.endpoint_ids, "window_start": ts - ts % self.window_ms,
            "event_ms": ts, "request_id": batch.request_ids, "latency_us": batch.latency_us,
            "error": batch.errors, "body": body, "hour": hour_partitions(ts)})
