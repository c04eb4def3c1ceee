"""The partitions of the raw rows in Parquet: the shard of an endpoint and the hour of an event.

The parse stage labels every record with both (a batch at a time, in Python), so the JVM's
Parquet sink formats nothing per record; :mod:`streamdrift.connectors.raw_rows` reads the
partitions back with the same functions.
"""

from __future__ import annotations

import datetime as dt
import zlib

import numpy as np

__all__ = ["SHARDS", "shard_of", "shard_partitions", "hour_label", "hour_partitions"]

_EPOCH = dt.datetime(1970, 1, 1)
SHARDS = 16


def shard_of(endpoint_id: str) -> str:
    """The shard directory (``00`` .. ``15``) of an endpoint's raw rows: CRC-32 of its UTF-8 id.

    >>> shard_of('fraud-scorer')
    '07'
    """
    return f"{zlib.crc32(endpoint_id.encode('utf-8')) % SHARDS:02d}"


def hour_label(hours_since_epoch: int) -> str:
    """``yyyy-MM-dd-HH`` of an hour (UTC), the year in four digits as Flink's ``DATE_FORMAT`` writes it.

    >>> hour_label(0)
    '1970-01-01-00'
    >>> hour_label(24 * 365 + 13)
    '1971-01-01-13'
    """
    t = _EPOCH + dt.timedelta(hours=hours_since_epoch)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}-{t.hour:02d}"


def shard_partitions(endpoint_ids) -> list:
    """:func:`shard_of` of each endpoint id (None for None), computed once per distinct id.

    >>> shard_partitions(['fraud-scorer', None, 'fraud-scorer'])
    ['07', None, '07']
    """
    shards = {e: shard_of(e) for e in set(endpoint_ids) if e is not None}
    return [None if e is None else shards[e] for e in endpoint_ids]


def hour_partitions(event_ms) -> np.ndarray:
    """The ``hour`` partition (``yyyy-MM-dd-HH``, UTC) of each event time (epoch ms, years 1-9999),
    as an object array of strings: the parse stage computes it for the whole batch at once (one
    label per distinct hour), so the JVM formats no date per record.

    >>> hour_partitions([0, 3_599_999, 3_600_000]).tolist()
    ['1970-01-01-00', '1970-01-01-00', '1970-01-01-01']
    """
    hours, where = np.unique(np.asarray(event_ms, dtype=np.int64) // 3_600_000, return_inverse=True)
    return np.array([hour_label(h) for h in hours.tolist()], dtype=object)[where.reshape(-1)]
