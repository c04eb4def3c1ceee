"""Raw rows in Parquet: every event the job reads, as it arrived, partitioned by endpoint and hour.

Written by the job with Flink's filesystem sink in Parquet (bulk) format: files roll on every
checkpoint, so what is committed is exactly what the checkpoint covers (exactly once). The sink
reads the source on its own with Flink's JSON format (a JVM-only branch: no Python touches these
records, each is parsed once) and derives the endpoint id (MLRun's for MLRun events) and the time
with Flink SQL. Every field of the event is kept; nested ones as their JSON text. Layout::

    <parquet_path>/endpoint_id=<id>/hour=<yyyy-MM-dd-HH>/part-*.parquet
        event_ms BIGINT, then one STRING column per event field: timestamp, request_id, latency_us,
        error, labels, metrics, inputs, outputs, function_uri, model, version, when, microsec,
        request, resp

:func:`read_window_rows` turns them back into one row per sample with one column per feature and
output (decoded exactly as the job decodes them), plus timestamp, request id, latency and error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

TABLE = "raw_rows"
SOURCE_TABLE = "inference_events_json"

# The branch reads the topic a second time with Flink's JSON format: each record is parsed once, in
# the JVM; nested values (inputs, outputs, request, resp, ...) arrive as their JSON text.
FIELDS = ("endpoint_id", "timestamp", "request_id", "latency_us", "error", "labels", "metrics", "inputs",
          "outputs", "function_uri", "model", "version", "when", "microsec", "request", "resp")
JSON_FIELDS = ("labels", "metrics", "inputs", "outputs", "request", "resp")
SOURCE_COLUMNS = ", ".join(f"`{f}` STRING" for f in FIELDS)
SOURCE_FORMAT = "'format' = 'json',\n  'json.ignore-parse-errors' = 'true'"

# MLRun serving events carry no endpoint id: derive MLRun's (sha1 of project_function_tag_model_version)
_FN = "SPLIT_INDEX(function_uri, '/', 1)"
ENDPOINT_ID_SQL = f"""COALESCE(endpoint_id, SHA1(CONCAT_WS('_',
    SPLIT_INDEX(function_uri, '/', 0),
    SPLIT_INDEX({_FN}, ':', 0),
    COALESCE(NULLIF(SPLIT_INDEX(SPLIT_INDEX({_FN}, ':', 1), '@', 0), ''), 'N/A'),
    SPLIT_INDEX(model, ':', 0),
    COALESCE(NULLIF(version, ''), NULLIF(SPLIT_INDEX(model, ':', 1), ''), 'N/A'))))"""

# epoch ms, or an ISO time (T or space; the offset applied; seconds precision is enough to partition)
_ISO = "REPLACE(COALESCE(`timestamp`, `when`), 'T', ' ')"
_OFFSET_RE = "'([+-])(\\d\\d):(\\d\\d)$'"
_OFFSET_S = (f"COALESCE(CASE WHEN REGEXP_EXTRACT({_ISO}, {_OFFSET_RE}, 1) = '-' THEN 1 ELSE -1 END"
             f" * (CAST(REGEXP_EXTRACT({_ISO}, {_OFFSET_RE}, 2) AS INT) * 3600"
             f" + CAST(REGEXP_EXTRACT({_ISO}, {_OFFSET_RE}, 3) AS INT) * 60), 0)")
EVENT_MS_SQL = (f"COALESCE(TRY_CAST(`timestamp` AS BIGINT), "
                f"(UNIX_TIMESTAMP(SUBSTRING({_ISO} FROM 1 FOR 19), 'yyyy-MM-dd HH:mm:ss') + {_OFFSET_S}) * 1000)")


def sink_ddl(parquet_path: str) -> str:
    uri = Path(parquet_path).resolve().as_uri() if "://" not in parquet_path else parquet_path
    fields = ",\n  ".join(f"`{f}` STRING" for f in FIELDS if f != "endpoint_id")
    return f"""
CREATE TABLE {TABLE} (
  event_ms BIGINT,
  {fields},
  endpoint_id STRING,
  `hour` STRING
) PARTITIONED BY (endpoint_id, `hour`) WITH (
  'connector' = 'filesystem',
  'path' = '{uri}',
  'format' = 'parquet',
  'parquet.compression' = 'SNAPPY'
)"""


def insert_sql(source_table: str = SOURCE_TABLE) -> str:
    """Every record with an endpoint and a time, from the JSON table ``source_table``."""
    fields = ", ".join(f"`{f}`" for f in FIELDS if f != "endpoint_id")
    return f"""
INSERT INTO {TABLE}
SELECT event_ms, {fields}, eid AS endpoint_id,
       DATE_FORMAT(TO_TIMESTAMP_LTZ(event_ms, 3), 'yyyy-MM-dd-HH') AS `hour`
FROM (
  SELECT *, {EVENT_MS_SQL} AS event_ms, {ENDPOINT_ID_SQL} AS eid
  FROM {source_table}
) WHERE eid IS NOT NULL AND event_ms IS NOT NULL"""


def _event(record: dict[str, Any]) -> dict[str, Any]:
    """A stored row → the event as it was sent (nested fields parsed back from their JSON text)."""
    import json

    event = {}
    for name in FIELDS:
        value = record.get(name)
        if value is None:
            continue
        if name in JSON_FIELDS:
            try:
                value = json.loads(value)
            except ValueError:
                pass  # a plain string
        elif name in ("latency_us", "microsec"):
            try:
                value = float(value)
            except ValueError:
                pass
        elif name == "timestamp" and value.lstrip("-").isdigit():
            value = int(value)
        elif name == "error" and value in ("false", "true"):
            value = value == "true"
        event[name] = value
    return event


def _hours(start: dt.datetime, end: dt.datetime) -> list[str]:
    """The hour partitions that can hold events of [start, end) (one more on each side: the
    partition time of an ISO time is taken to the second, the row's own time exactly)."""
    hour = start.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    out = []
    while hour <= end + dt.timedelta(hours=1):
        out.append(hour.strftime("%Y-%m-%d-%H"))
        hour += dt.timedelta(hours=1)
    return out


def read_window_rows(parquet_path: str, endpoint_id: str, start: dt.datetime, end: dt.datetime,
                     columns_of: Callable[[str], Any] | None = None):
    """The rows of ``endpoint_id`` with start <= time < end, one per sample, as a pandas DataFrame:
    ``timestamp`` (UTC), ``request_id``, ``latency_us``, ``error``, then one column per feature
    and output. ``columns_of(endpoint_id)`` names positional values (``udfs.events.Columns``;
    e.g. from the endpoint record), as the job does. Records that do not decode are skipped."""
    import json

    import pandas as pd
    import pyarrow.parquet as pq

    from udfs.events import NO_COLUMNS, DeadLetter, decode

    root = Path(parquet_path.removeprefix("file://"))
    bases = [d for d in root.glob("endpoint_id=*") if unquote(d.name.partition("=")[2]) == endpoint_id]
    files = [f for base in bases for hour in _hours(start, end) for f in sorted((base / f"hour={hour}").glob("*"))
             if not f.name.startswith((".", "_"))]
    if not files:
        return pd.DataFrame(columns=["timestamp", "request_id", "latency_us", "error"])
    records = pq.ParquetDataset(files).read(columns=[f for f in FIELDS if f != "endpoint_id"]).to_pylist()
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    columns_of = columns_of or (lambda _: NO_COLUMNS)
    out = []
    for record in records:
        fields = _event(record)
        if "function_uri" not in fields:  # native: the id is the partition's
            fields["endpoint_id"] = endpoint_id
        event = decode(json.dumps(fields), columns_of)
        if isinstance(event, DeadLetter) or event.endpoint_id != endpoint_id:
            continue
        if not start_ms <= event.timestamp_ms < end_ms:
            continue
        when = pd.Timestamp(event.timestamp_ms, unit="ms", tz="UTC")
        for row in event.rows or ({},):
            out.append({"timestamp": when, "request_id": event.request_id, "latency_us": event.latency_us,
                        "error": event.error, **row})
    frame = pd.DataFrame.from_records(out)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True) if len(frame) else frame
