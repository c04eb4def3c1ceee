"""The SQL store's schema: its column types and the definition of every table."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect

from streamdrift.udfs.records import NAME_LENGTH

UTC = dt.timezone.utc
ID_LENGTH = 255  # endpoint ids, projects, model/function names, alert names


class _WiderOnMySQL(sa.types.TypeDecorator):
    """A column type that is ``impl`` in general and the wider ``mysql_type`` on MySQL."""

    cache_ok = True
    mysql_type: Callable[[], sa.types.TypeEngine]

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(self.mysql_type() if dialect.name == "mysql" else self.impl_instance)


class LongText(_WiderOnMySQL):
    """Text without the 64 KB limit: ``LONGTEXT`` on MySQL, ``TEXT`` elsewhere."""

    impl = sa.Text
    mysql_type = mysql_dialect.LONGTEXT
    cache_ok = True


_JSON_LEAVES = frozenset((str, int, float, bool, type(None)))
_JSON_PLAIN = _JSON_LEAVES | {dict, list, tuple}
#: Where orjson writes a float otherwise than ``repr`` (which ``json.dumps`` uses): between 1e-9
#: and 1e-4, as ``0.00001`` or ``1e-7`` where ``repr`` writes ``1e-05``, ``1e-07``.
_NOT_AS_REPR = (re.compile(rb"e-\d(?!\d)"), re.compile(rb"0\.0000"))  # two searches: 10x faster than one of both


_JSON_CONTAINERS = (dict, list, tuple)
_MAX_CONTAINERS = 100_000  # looked into at most (a value holding itself would never end)


def _plain_nones(value: Any) -> int:
    """How many None ``value`` holds when it is made only of dicts, lists, tuples, str, int, float,
    bool and None (these exact types, at most 64 levels and 100,000 containers); -1 otherwise."""
    kind = type(value)
    if kind not in _JSON_CONTAINERS:
        return (value is None) if kind in _JSON_LEAVES else -1
    nones, looked, level = 0, 0, [value]
    for _depth in range(64):
        deeper: list = []
        for container in level:
            values = container.values() if type(container) is dict else container
            types = set(map(type, values))
            if not types <= _JSON_LEAVES:
                if not types <= _JSON_PLAIN:
                    return -1
                deeper.extend(v for v in values if type(v) in _JSON_CONTAINERS)
            if type(None) in types:
                nones += list(values).count(None)
        looked += len(level)
        if not deeper:
            return nones
        if looked + len(deeper) > _MAX_CONTAINERS:
            return -1
        level = deeper
    return -1


def json_text(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, the same text and errors,
    written by orjson (~10x faster: a result's 20 features of statistics) when that is provably
    the same text: plain types only (:func:`_plain_nones`; orjson also writes enums, UUIDs and
    dataclasses, which json refuses), a ``null`` for each None and no other (orjson writes NaN
    and infinities as null, json as NaN and Infinity), no float where the two write it otherwise
    (:data:`_NOT_AS_REPR`); orjson refuses what else differs (non-str keys, ints beyond 64 bits,
    lone surrogates)."""
    nones = _plain_nones(value)
    if nones >= 0:
        try:
            data = orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError is one
            data = None
        if data is not None and data.count(b"null") == nones and not any(p.search(data) for p in _NOT_AS_REPR):
            return data.decode()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class JSONText(LongText):
    """JSON kept as text (:func:`json_text`): ``LONGTEXT`` on MySQL, ``TEXT`` elsewhere. Floats
    round-trip exactly."""

    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return json_text(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        try:  # orjson: ~4x faster on references (10,000 endpoints' statistics are ~200 MB of JSON)
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # e.g. NaN, which json.dumps writes and orjson refuses
            return json.loads(value)


class LongBlob(_WiderOnMySQL):
    """Bytes: ``LONGBLOB`` on MySQL (up to 4 GB), ``BLOB`` elsewhere."""

    impl = sa.LargeBinary
    mysql_type = mysql_dialect.LONGBLOB
    cache_ok = True


class UTCDateTime(_WiderOnMySQL):
    """A UTC instant with microseconds; stored naive (``DATETIME(6)`` on MySQL), read back aware."""

    impl = sa.DateTime
    mysql_type = functools.partial(mysql_dialect.DATETIME, fsp=6)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def bind_processor(self, dialect):
        """:meth:`process_bind_param` then the dialect's own processing, done once per distinct
        value of a statement's rows (a batch of windows shares a few starts, ends and its time
        of writing): plain datetimes whose tzinfo is None or a fixed offset, for which equal
        means the same instant; any other value is processed on its own."""
        process = super().bind_processor(dialect)
        if process is None:
            return None
        cached = functools.lru_cache(maxsize=4096)(process)

        def bind(value):
            if type(value) is dt.datetime and (value.tzinfo is None or type(value.tzinfo) is dt.timezone):
                return cached(value)
            return process(value)

        return bind

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite returns text when the column was written by hand
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id_column(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.String(ID_LENGTH), **kw)


def _name_column(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.String(NAME_LENGTH), **kw)


COUNT_COLUMNS = ("rows_count", "events_count", "error_count", "late_count")
"""An endpoint's totals over its window counters (``endpoint_status``; 0 before its first window)."""
STATUS_COLUMNS = ("first_request", "last_request", *COUNT_COLUMNS, "last_window_end", "drift_status", "drift_measure")
"""The columns of ``endpoint_status`` besides the endpoint id."""


def build_tables(metadata: sa.MetaData, collation: str | None = None) -> dict[str, sa.Table]:
    """Define every table of the schema on ``metadata`` (``collation`` only matters on MySQL)."""
    mysql_kw: dict[str, str] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}
    if collation:
        mysql_kw["mysql_collate"] = collation
    t: dict[str, sa.Table] = {}
    t["schema_version"] = sa.Table(
        "schema_version", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["endpoints"] = sa.Table(
        "endpoints", metadata,
        _id_column("endpoint_id", primary_key=True),
        _id_column("project", nullable=False, index=True),
        _id_column("model_name", nullable=False),
        _id_column("model_version"),
        _id_column("function_name"),
        _id_column("function_tag"),
        sa.Column("feature_names", JSONText, nullable=False),
        sa.Column("output_names", JSONText, nullable=False),
        sa.Column("label_names", JSONText, nullable=False),
        sa.Column("feature_stats", JSONText, nullable=False),
        sa.Column("reference_sample", LongBlob),
        sa.Column("reference_rows", sa.BigInteger),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False, index=True),
        sa.Column("monitoring_mode", sa.String(16), nullable=False, default="enabled"),
        **mysql_kw,
    )
    # what the job moves every window, apart from the endpoint's definition and reference: an
    # update rewrites a whole row (SQLite), and an endpoint's row holds its reference (~200 KB)
    t["endpoint_status"] = sa.Table(
        "endpoint_status", metadata,
        _id_column("endpoint_id", primary_key=True),
        sa.Column("first_request", UTCDateTime),
        sa.Column("last_request", UTCDateTime),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in COUNT_COLUMNS),
        sa.Column("last_window_end", UTCDateTime),
        sa.Column("drift_status", sa.Integer),
        sa.Column("drift_measure", sa.Float),
        **mysql_kw,
    )
    t["endpoint_windows"] = sa.Table(
        "endpoint_windows", metadata,
        _id_column("endpoint_id", primary_key=True),
        sa.Column("window_end", UTCDateTime, primary_key=True),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("rows_count", sa.BigInteger, nullable=False),
        sa.Column("events_count", sa.BigInteger, nullable=False),
        sa.Column("error_count", sa.BigInteger, nullable=False),
        sa.Column("late_count", sa.BigInteger, nullable=False),
        sa.Column("first_request", UTCDateTime),
        sa.Column("last_request", UTCDateTime),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["latest_results"] = sa.Table(
        "latest_results", metadata,
        _id_column("endpoint_id", primary_key=True),
        _name_column("application_name", primary_key=True),
        _name_column("result_name", primary_key=True),
        _id_column("project", nullable=False),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("extra_data", JSONText, nullable=False),
        sa.Column("start_infer_time", UTCDateTime, nullable=False),
        sa.Column("end_infer_time", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["latest_metrics"] = sa.Table(
        "latest_metrics", metadata,
        _id_column("endpoint_id", primary_key=True),
        _name_column("application_name", primary_key=True),
        _name_column("metric_name", primary_key=True),
        _id_column("project", nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("start_infer_time", UTCDateTime, nullable=False),
        sa.Column("end_infer_time", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["applications"] = sa.Table(
        "applications", metadata,
        _id_column("project", primary_key=True),
        _name_column("name", primary_key=True),
        sa.Column("class_path", sa.String(1024), nullable=False),
        sa.Column("params", JSONText, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["alert_configs"] = sa.Table(
        "alert_configs", metadata,
        _id_column("project", primary_key=True),
        _id_column("name", primary_key=True),
        sa.Column("summary", LongText, nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("entities", JSONText, nullable=False),
        sa.Column("trigger_kinds", JSONText, nullable=False),
        sa.Column("criteria", JSONText, nullable=False),
        sa.Column("reset_policy", sa.String(32), nullable=False),
        sa.Column("notifications", JSONText, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["alert_activations"] = sa.Table(
        "alert_activations", metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        _id_column("project", nullable=False),
        _id_column("alert_name", nullable=False),
        sa.Column("activated_at", UTCDateTime, nullable=False),
        sa.Column("entity", sa.String(1024), nullable=False),
        sa.Column("event_kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("summary", LongText, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("window_end", UTCDateTime),
        sa.Column("notified", JSONText, nullable=False),
        sa.Column("reset_at", UTCDateTime),
        sa.Index("ix_alert_activations_project_alert", "project", "alert_name", "activated_at"),
        **mysql_kw,
    )
    t["endpoint_problems"] = sa.Table(
        "endpoint_problems", metadata,
        _id_column("endpoint_id", primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        _id_column("project", nullable=False),
        sa.Column("message", LongText, nullable=False),
        sa.Column("occurrences", sa.BigInteger, nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    return t
