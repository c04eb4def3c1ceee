"""The TSDB's five tables, defined once: name, columns with a logical type, the series (tags) and
the record each row holds. The backends are dialects over these definitions: SQLite
(:mod:`streamdrift.connectors.tsdb.sqlite`: tags as ordinary columns under a UNIQUE key) and TDengine
(:mod:`streamdrift.connectors.tsdb.tdengine`: a supertable whose tags name a subtable per series).

A row is its value columns (the first is the row's time) followed by its tags, in the order given
here; the stored form of each logical type (timestamps as microseconds since the epoch, JSON as
text) is :func:`streamdrift.connectors.tsdb.base.encode_row` and ``decode_row``.

=================  ===================================================  ================================
table              value columns (the first is the time)                tags (the series)
=================  ===================================================  ================================
``app_results``    end_infer_time, start_infer_time, result_value,      project, endpoint_id,
                   result_status, result_extra_data                     application_name, result_name,
                                                                        result_kind
``metrics``        end_infer_time, start_infer_time, metric_value       project, endpoint_id,
                                                                        application_name, metric_name
``predictions``    end_infer_time, start_infer_time, row_count,         project, endpoint_id
                   event_count, error_count, latency_count,
                   latency_mean_us, latency_p50_us, latency_p95_us,
                   latency_p99_us, first_request, last_request,
                   estimated_count
``errors``         time, model_error                                    project, endpoint_id,
                                                                        application_name, error_type
``feature_drift``  end_infer_time, start_infer_time, tvd, hellinger,    project, endpoint_id,
                   kld, p_value, rejected, effect_size, window_count,   application_name, feature_name
                   reference_count, invalid_share
=================  ===================================================  ================================
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

#: The logical types of columns: what a value is, whatever a backend stores it as.
TIMESTAMP = "timestamp"  # an aware datetime
INT32 = "int32"
INT64 = "int64"
FLOAT64 = "float64"  # None for NaN and infinities (they are checked into None before writing)
BOOL = "bool"
TEXT = "text"  # ASCII names (application, result and metric names)
UNICODE = "unicode"  # any text
JSON = "json"  # a dict, kept as ASCII JSON text
TYPES = (TIMESTAMP, INT32, INT64, FLOAT64, BOOL, TEXT, UNICODE, JSON)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: its ``name`` in the store, its logical ``type``, the ``field`` of the record it
    holds (default: the name), whether it may be NULL, and the most characters of a text (TDengine
    sizes its VARCHAR and NCHAR columns)."""

    name: str
    type: str
    field: str = ""
    nullable: bool = True
    length: int | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r}; one of {', '.join(TYPES)}")
        if not self.field:
            object.__setattr__(self, "field", self.name)


def _required(name: str, type_: str, field: str = "", length: int | None = None) -> Column:
    return Column(name, type_, field, nullable=False, length=length)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of the TSDB: ``columns`` (values; the first is the row's time) and ``tags`` (every
    tag names the series: :data:`SERIES_KEYS`), the ``record`` class a row holds (every field of
    it is a column or a tag), ``name_tag``, the tag a query may select by name, and ``noun``, what
its rows are called in messages (default: the name)."""

    name: str
    record: type
    columns: tuple[Column, ...]
    tags: tuple[Column, ...]
    name_tag: str | None = None
    noun: str = ""  # what its rows are, in messages ("writing results")

    def __post_init__(self) -> None:
        fields = [f.name for f in dataclasses.fields(self.record)]
        stored = [c.field for c in self.all_columns]
        if sorted(fields) != sorted(stored):
            raise ValueError(f"table {self.name}: the columns hold {stored}, the record {self.record.__name__} "
                             f"has {fields}")
        if not self.noun:
            object.__setattr__(self, "noun", self.name.replace("_", " "))

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """The row's order: the value columns, then the tags."""
        return self.columns + self.tags

    @property
    def time_column(self) -> str:
        return self.columns[0].name

    @property
    def series(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tags)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.all_columns]

    def values(self, record: Any) -> list[Any]:
        """The record's fields in the row's order (the logical values, not yet encoded)."""
        return [getattr(record, c.field) for c in self.all_columns]

    def record_of(self, values: list[Any]) -> Any:
        """The record of a row's logical values (in the row's order)."""
        return self.record(**{c.field: v for c, v in zip(self.all_columns, values)})


def _series(*names: str | tuple[Any, ...]) -> tuple[Column, ...]:
    """The tags: the three every series starts with by name, others as ``_required`` arguments."""
    known = {"project": ("project", UNICODE, "", 255), "endpoint_id": ("endpoint_id", UNICODE, "", 255),
             "application_name": ("application_name", TEXT, "", 128)}
    return tuple(_required(*known[n]) if n in known else _required(*n) for n in names)


def _window(*columns: Column) -> tuple[Column, ...]:
    return (_required("end_infer_time", TIMESTAMP), _required("start_infer_time", TIMESTAMP), *columns)


RESULTS = Table(
    "app_results", ResultRecord,
    columns=_window(Column("result_value", FLOAT64, "value"), _required("result_status", INT32, "status"),
                    _required("result_extra_data", JSON, "extra_data", length=16_000)),
    tags=_series("project", "endpoint_id", "application_name", ("result_name", TEXT, "", 128),
                 ("result_kind", INT32, "kind")),
    name_tag="result_name", noun="results",
)
METRICS = Table(
    "metrics", MetricRecord,
    columns=_window(Column("metric_value", FLOAT64, "value")),
    tags=_series("project", "endpoint_id", "application_name", ("metric_name", TEXT, "", 128)),
    name_tag="metric_name",
)
PREDICTIONS = Table(
    "predictions", PredictionRecord,
    columns=_window(_required("row_count", INT64, "count"), _required("event_count", INT64, "events"),
                    _required("error_count", INT64), _required("latency_count", INT64),
                    Column("latency_mean_us", FLOAT64), Column("latency_p50_us", FLOAT64),
                    Column("latency_p95_us", FLOAT64), Column("latency_p99_us", FLOAT64),
                    Column("first_request", TIMESTAMP), Column("last_request", TIMESTAMP),
                    Column("estimated_count", FLOAT64)),
    tags=_series("project", "endpoint_id"),
)
ERRORS = Table(
    "errors", ErrorRecord,
    columns=(_required("time", TIMESTAMP), _required("model_error", UNICODE, "message", length=1_000)),
    tags=_series("project", "endpoint_id", "application_name", ("error_type", UNICODE, "", 255)),
    name_tag="error_type",
)
FEATURE_DRIFT = Table(
    "feature_drift", FeatureDriftRecord,
    columns=_window(Column("tvd", FLOAT64), Column("hellinger", FLOAT64), Column("kld", FLOAT64),
                    Column("p_value", FLOAT64), Column("rejected", BOOL), Column("effect_size", FLOAT64),
                    Column("window_count", INT64), Column("reference_count", INT64),
                    Column("invalid_share", FLOAT64)),
    tags=_series("project", "endpoint_id", "application_name", ("feature_name", UNICODE, "", 255)),
    name_tag="feature_name",
)
TABLES: tuple[Table, ...] = (RESULTS, METRICS, PREDICTIONS, ERRORS, FEATURE_DRIFT)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: The fields that name a series, per table: one rule for both stores (TDengine hashes them into
#: the subtable's name, SQLite has them, with the time, as the table's UNIQUE key).
SERIES_KEYS: dict[str, tuple[str, ...]] = {t.name: t.series for t in TABLES}
#: The time column of each table's rows: with the series, a row's key.
TIME_COLUMNS: dict[str, str] = {t.name: t.time_column for t in TABLES}

__all__ = ["Column", "Table", "TABLES", "BY_NAME", "RESULTS", "METRICS", "PREDICTIONS", "ERRORS", "FEATURE_DRIFT",
           "SERIES_KEYS", "TIME_COLUMNS", "TYPES", "TIMESTAMP", "INT32", "INT64", "FLOAT64", "BOOL", "TEXT",
           "UNICODE", "JSON"]
