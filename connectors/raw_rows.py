"""Raw rows in Parquet: every event the job reads, as it arrived, partitioned by endpoint and hour.

Written by the job with Flink's filesystem sink in Parquet (bulk) format: files roll on every
checkpoint, so what is committed is exactly what the checkpoint covers (exactly once). The sink
reads the source on its own (a JVM-only branch: no Python touches these records) and extracts the
endpoint id, time, request id, latency and error flag with Flink SQL; the full event is kept in
``payload``. Layout::

    <parquet_path>/endpoint_id=<id>/hour=<yyyy-MM-dd-HH>/part-*.parquet
        event_ms BIGINT, request_id STRING, latency_us DOUBLE, error BOOLEAN, payload STRING

:func:`read_window_rows` turns them back into one row per sample with one column per feature and
output (decoded exactly as the job decodes them), plus timestamp, request id, latency and error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

TABLE = "raw_rows"

# MLRun serving events carry no endpoint id: derive MLRun's (sha1 of project_function_tag_model_version)
_URI = "JSON_VALUE(payload, '$.function_uri')"
_FN = f"SPLIT_INDEX({_URI}, '/', 1)"
_MODEL = "JSON_VALUE(payload, '$.model')"
ENDPOINT_ID_SQL = f"""COALESCE(JSON_VALUE(payload, '$.endpoint_id'), SHA1(CONCAT_WS('_',
    SPLIT_INDEX({_URI}, '/', 0),
    SPLIT_INDEX({_FN}, ':', 0),
    COALESCE(NULLIF(SPLIT_INDEX(SPLIT_INDEX({_FN}, ':', 1), '@', 0), ''), 'N/A'),
    SPLIT_INDEX({_MODEL}, ':', 0),
    COALESCE(NULLIF(JSON_VALUE(payload, '$.version'), ''), NULLIF(SPLIT_INDEX({_MODEL}, ':', 1), ''), 'N/A'))))"""

# epoch ms, or an ISO time (T or space; the offset applied; seconds precision is enough to partition)
_ISO = "REPLACE(COALESCE(JSON_VALUE(payload, '$.timestamp'), JSON_VALUE(payload, '$.when')), 'T', ' ')"
_OFFSET_S = (f"COALESCE(CASE WHEN REGEXP_EXTRACT({_ISO}, '([+-])(\\d\\d):(\\d\\d)$', 1) = '-' THEN 1 ELSE -1 END"
             f" * (CAST(REGEXP_EXTRACT({_ISO}, '([+-])(\\d\\d):(\\d\\d)$', 2) AS INT) * 3600"
             f" + CAST(REGEXP_EXTRACT({_ISO}, '([+-])(\\d\\d):(\\d\\d)$', 3) AS INT) * 60), 0)")
EVENT_MS_SQL = (f"COALESCE(TRY_CAST(JSON_VALUE(payload, '$.timestamp') AS BIGINT), "
                f"(UNIX_TIMESTAMP(SUBSTRING({_ISO} FROM 1 FOR 19), 'yyyy-MM-dd HH:mm:ss') + {_OFFSET_S}) * 1000)")


def sink_ddl(parquet_path: str) -> str:
    uri = Path(parquet_path).resolve().as_uri() if "://" not in parquet_path else parquet_path
    return f"""
CREATE TABLE {TABLE} (
  event_ms BIGINT,
  request_id STRING,
  latency_us DOUBLE,
  error BOOLEAN,
  payload STRING,
  endpoint_id STRING,
  `hour` STRING
) PARTITIONED BY (endpoint_id, `hour`) WITH (
  'connector' = 'filesystem',
  'path' = '{uri}',
  'format' = 'parquet',
  'parquet.compression' = 'SNAPPY'
)"""


def insert_sql(source_table: str) -> str:
    """Every record with an endpoint and a time, from ``source_table`` (a column ``payload``)."""
    return f"""
INSERT INTO {TABLE}
SELECT event_ms, request_id, latency_us, error, payload, endpoint_id,
       DATE_FORMAT(TO_TIMESTAMP_LTZ(event_ms, 3), 'yyyy-MM-dd-HH') AS `hour`
FROM (
  SELECT {EVENT_MS_SQL} AS event_ms,
         COALESCE(JSON_VALUE(payload, '$.request_id'), JSON_VALUE(payload, '$.request.id')) AS request_id,
         TRY_CAST(COALESCE(JSON_VALUE(payload, '$.latency_us'), JSON_VALUE(payload, '$.microsec')) AS DOUBLE)
           AS latency_us,
         COALESCE(JSON_VALUE(payload, '$.error'), 'false') NOT IN ('false', '', 'null') AS error,
         payload,
         {ENDPOINT_ID_SQL} AS endpoint_id
  FROM {source_table}
) WHERE endpoint_id IS NOT NULL AND event_ms IS NOT NULL"""


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
    import pandas as pd
    import pyarrow.parquet as pq

    from udfs.events import NO_COLUMNS, DeadLetter, decode

    root = Path(parquet_path.removeprefix("file://"))
    bases = [d for d in root.glob("endpoint_id=*") if unquote(d.name.partition("=")[2]) == endpoint_id]
    files = [f for base in bases for hour in _hours(start, end) for f in sorted((base / f"hour={hour}").glob("*"))
             if not f.name.startswith((".", "_"))]
    if not files:
        return pd.DataFrame(columns=["timestamp", "request_id", "latency_us", "error"])
    payloads = pq.ParquetDataset(files).read(columns=["payload"]).column("payload").to_pylist()
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    columns_of = columns_of or (lambda _: NO_COLUMNS)
    records = []
    for payload in payloads:
        event = decode(payload, columns_of)
        if isinstance(event, DeadLetter) or event.endpoint_id != endpoint_id:
            continue
        if not start_ms <= event.timestamp_ms < end_ms:
            continue
        when = pd.Timestamp(event.timestamp_ms, unit="ms", tz="UTC")
        for row in event.rows or ({},):
            records.append({"timestamp": when, "request_id": event.request_id, "latency_us": event.latency_us,
                            "error": event.error, **row})
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True) if len(frame) else frame
