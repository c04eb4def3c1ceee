"""Raw rows in Parquet: every good event the job reads, as it arrived, partitioned by shard and hour.

Written by the job with Flink's filesystem sink in Parquet (bulk) format: files roll on every
checkpoint, so what is committed is exactly what the checkpoint covers (exactly once). The records
are the job's own read of the topic: the parse stage (Python) gives each good record its endpoint
id (MLRun's for MLRun events) and event time while the record itself stays in the JVM, so the
branch costs no second read and no second JSON parse. Dead letters are not here: they go to the
dead-letter topic with their reason. Layout::

    <parquet_path>/shard=<00..15>/hour=<yyyy-MM-dd-HH>/part-*.parquet
        event_ms BIGINT NOT NULL    the event's time (epoch ms, UTC)
        request_id STRING           the request id (MLRun events: request.id), if any
        latency_us DOUBLE           latency_us (MLRun events: microsec), if any
        error BOOLEAN NOT NULL      a failed request
        late BOOLEAN NOT NULL       the event came after its window closed for good (beyond the allowed
                                    lateness): its rows are in no window result, it is counted in the
                                    endpoint's late count
        payload BYTES NOT NULL      the event's JSON bytes, exactly as they were sent (its features and
                                    outputs); bytes, not a string: the JVM neither decodes nor re-encodes
                                    them (as a string, that was a fifth of the Parquet writer's time)
        endpoint_id STRING NOT NULL the endpoint (MLRun's id for MLRun events)

An endpoint's rows are in one of 16 shards (:func:`streamdrift.udfs.partitions.shard_of`, a CRC-32 of its id):
each of the job's two sinks (one per parse tier) keeps one open file per shard and hour and
subtask, whatever the number of endpoints (one directory
per endpoint kept thousands of Parquet writers open, each with its buffers, and a job of 10,000
endpoints ran out of memory). Directories ``endpoint_id=<id>/hour=...`` of earlier versions are
read too.

The features and outputs stay in the payload: one sink has one schema for every endpoint, and
Python writing one column per feature would cost the job its throughput.

:func:`read_window_rows` turns them back into one row per sample with one column per feature and
output (decoded exactly as the job decodes them), plus timestamp, request id, latency, error, late.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from streamdrift.udfs.partitions import hour_label, shard_of
from streamdrift.udfs.records import ms_from_utc

TABLE = "raw_rows"


def sink_ddl(parquet_path: str, table: str = TABLE) -> str:
    """The Parquet sink table ``table`` over ``parquet_path``. Several such tables over one path
    write side by side (each sink names its part files with a UUID of its own): the job has one per
    parse tier, so that each is chained to its tier (the planner merges the INSERTs into one table
    into one sink, which every record would cross the network to)."""
    uri = Path(parquet_path).resolve().as_uri() if "://" not in parquet_path else parquet_path
    return f"""
CREATE TABLE {table} (
  event_ms BIGINT NOT NULL,
  request_id STRING,
  latency_us DOUBLE,
  error BOOLEAN NOT NULL,
  late BOOLEAN NOT NULL,
  payload BYTES NOT NULL,
  endpoint_id STRING NOT NULL,
  shard STRING,
  `hour` STRING
) PARTITIONED BY (shard, `hour`) WITH (
  'connector' = 'filesystem',
  'path' = '{uri}',
  'format' = 'parquet',
  'parquet.compression' = 'SNAPPY',
  'parquet.enable.dictionary' = 'false'
)"""


def insert_sql(source: str, table: str = TABLE) -> str:
    """Every good record of the view ``source`` (columns payload, kind, endpoint_id, event_ms,
    request_id, latency_us, error, late, hour), as the parse stage describes it: ``late`` is its
    :class:`streamdrift.udfs.batch.EventClock` flag, the one that kept the record's rows out of its window's
    partial, so a row flagged late here is exactly a row counted late there. A good record always
    has its time, error flag, late flag and payload; the COALESCEs only tell the planner so: those
    columns are then required in Parquet, which writes no null markers for them (encoding the
    markers of six nullable columns was 7 % of the reading thread's profile). The hour comes from
    the parse stage: ``DATE_FORMAT`` per record was ~5 % of the reading thread's profile."""
    return f"""
INSERT INTO {table}
SELECT COALESCE(event_ms, 0) AS event_ms, request_id, latency_us, COALESCE(error, FALSE) AS error,
       COALESCE(late, FALSE) AS late, COALESCE(payload, x'') AS payload, COALESCE(endpoint_id, '') AS endpoint_id,
       shard, `hour`
FROM {source}
WHERE kind IN ('R', 'P')"""


def _hours(start: dt.datetime, end: dt.datetime) -> list[str]:
    """The hour partitions (UTC) that can hold events of [start, end)."""
    hour = 3_600_000  # ms
    return [hour_label(h) for h in range(ms_from_utc(start) // hour, -(-ms_from_utc(end) // hour))]


def files(parquet_path: str, endpoint_id: str, hours: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """The committed Parquet files that hold ``endpoint_id``'s raw rows (of ``hours``, default all):
    ``(files of its shard, which hold other endpoints' rows too, files of its own directory from
    an earlier version)``."""
    root = Path(parquet_path.removeprefix("file://"))

    def committed(base: Path) -> list[Path]:
        dirs = sorted(base.glob("hour=*")) if hours is None else [base / f"hour={h}" for h in hours]
        return [f for d in dirs for f in sorted(d.glob("*")) if not f.name.startswith((".", "_"))]

    legacy = [d for d in root.glob("endpoint_id=*") if unquote(d.name.partition("=")[2]) == endpoint_id]
    return committed(root / f"shard={shard_of(endpoint_id)}"), [f for d in legacy for f in committed(d)]


def read_window_rows(parquet_path: str, endpoint_id: str, start: dt.datetime, end: dt.datetime,
                     columns_of: Callable[[str], Any] | None = None):
    """The rows of ``endpoint_id`` with start <= time < end, one per sample, as a pandas DataFrame:
    ``timestamp`` (UTC), ``request_id``, ``latency_us``, ``error``, ``late`` (see the module's
    docstring), then one column per feature and output. ``columns_of(endpoint_id)`` names positional values (``streamdrift.udfs.events.Columns``;
    e.g. from the endpoint record), as the job does. Records that do not decode are skipped."""
    import pandas as pd
    import pyarrow.parquet as pq

    from streamdrift.udfs.events import NO_COLUMNS, DeadLetter, decode

    import pyarrow.compute as pc

    sharded, legacy = files(parquet_path, endpoint_id, _hours(start, end))
    if not sharded and not legacy:
        return pd.DataFrame(columns=["timestamp", "request_id", "latency_us", "error", "late"])
    records = []
    if sharded:
        table = pq.ParquetDataset(sharded).read(columns=["event_ms", "late", "payload", "endpoint_id"])
        records += table.filter(pc.equal(table["endpoint_id"], endpoint_id)).to_pylist()
    if legacy:
        records += pq.ParquetDataset(legacy).read(columns=["event_ms", "late", "payload"]).to_pylist()
    start_ms, end_ms = ms_from_utc(start), ms_from_utc(end)
    columns_of = columns_of or (lambda _: NO_COLUMNS)
    out = []
    for record in records:
        if not start_ms <= record["event_ms"] < end_ms:
            continue
        event = decode(record["payload"], columns_of)
        if isinstance(event, DeadLetter) or event.endpoint_id != endpoint_id:
            continue
        when = pd.Timestamp(event.timestamp_ms, unit="ms", tz="UTC")
        for row in event.rows or ({},):
            out.append({"timestamp": when, "request_id": event.request_id, "latency_us": event.latency_us,
                        "error": event.error, "late": bool(record["late"]), **row})
    frame = pd.DataFrame.from_records(out)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True) if len(frame) else frame
