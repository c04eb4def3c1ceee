"""Parse + validate + pre-aggregate, one Arrow batch of Kafka records at a time.

A vectorised (pandas) function on the Table API: Flink hands it up to
``python.fn-execution.arrow.batch.size`` records at once, so Python touches records in batches. It
returns one row per input record; most rows are empty. A record that starts a partial aggregate
of an (endpoint, window) carries it (kind ``P``); a dead letter carries its reason (kind ``D``).
"""

from __future__ import annotations

from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction

from udfs.catalog import EndpointCatalog
from udfs.window import aggregate_batch

PARTIAL, DEAD = "P", "D"

RESULT_TYPE = DataTypes.ROW([
    DataTypes.FIELD("kind", DataTypes.STRING()),
    DataTypes.FIELD("endpoint_id", DataTypes.STRING()),
    DataTypes.FIELD("window_start", DataTypes.BIGINT()),
    DataTypes.FIELD("event_ms", DataTypes.BIGINT()),
    DataTypes.FIELD("body", DataTypes.BYTES()),
])


class ParseRecords(ScalarFunction):
    def __init__(self, load_endpoints, window_ms: int, sample_size: int, refresh_seconds: float = 30.0):
        self.load_endpoints = load_endpoints
        self.window_ms = window_ms
        self.sample_size = sample_size
        self.refresh_seconds = refresh_seconds

    def open(self, function_context: FunctionContext):
        self.catalog = EndpointCatalog(self.load_endpoints, self.refresh_seconds)
        group = function_context.get_metric_group()
        self.records = group.counter("records")
        self.dead_letters = group.counter("dead_letters")
        self.partials = group.counter("partials")

    def eval(self, batch):
        """``batch``: a DataFrame with the column ``payload`` (Table.map hands whole rows)."""
        import pandas as pd

        values = batch.iloc[:, 0].tolist()
        n = len(values)
        kind, endpoint, start, ts, body = [None] * n, [None] * n, [None] * n, [None] * n, [None] * n
        partials, dead = aggregate_batch(values, self.catalog, self.window_ms, self.sample_size)
        for p in partials:
            i = p.index
            kind[i], endpoint[i], start[i], ts[i], body[i] = (
                PARTIAL, p.endpoint_id, p.window_start, p.max_timestamp_ms, p.aggregate.to_bytes())
        for i, letter in dead:
            kind[i], body[i] = DEAD, letter.to_json().encode()
        self.records.inc(n)
        self.partials.inc(len(partials))
        self.dead_letters.inc(len(dead))
        return pd.DataFrame({"kind": kind, "endpoint_id": endpoint, "window_start": start, "event_ms": ts,
                             "body": body})
