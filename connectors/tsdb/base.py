"""The TSDB interface: results, metrics, per-window predictions and errors over time.

Two implementations share it: TDengine (:mod:`connectors.tsdb.tdengine`, the production store)
and SQLite (:mod:`connectors.tsdb.sqlite`, the embedded default). The same records go in and the
same records come out of both; what they accept is checked here, once.

Keys. A row is identified by what names its series plus its time:

================  ==========================================================  ====================
table             series                                                      time
================  ==========================================================  ====================
``app_results``   endpoint_id, application_name, result_name                  end_infer_time
``metrics``       endpoint_id, application_name, metric_name                  end_infer_time
``predictions``   endpoint_id                                                 end_infer_time
``errors``        endpoint_id, application_name, error_type                   time
================  ==========================================================  ====================

so writing a window again (a replay, a late-data correction) replaces its row. The project is
stored with every row and filters queries, but is not part of the key: endpoint ids are unique
across projects (they hash the project in). A result's ``kind`` is set by the first row of its
series.

Accepted values (:func:`check_record`), so that no name can break a statement or a table:

* application names: letters, digits, ``_`` and ``-``, not starting with a digit or ``-``
  (``histogram-data-drift``); result and metric names: ``[a-zA-Z_][a-zA-Z0-9_]*``; both at most
  128 characters. Anything else is refused with a ValueError naming the record.
* project, endpoint id and error type: any text of 1 to 255 characters without control
  characters; quotes, backticks, semicolons and Unicode are stored and read back as given.
* values: floats; NaN and infinities are stored as NULL (None).
* ``extra_data``: a JSON object of at most :data:`MAX_EXTRA_DATA_BYTES` bytes once serialised;
  a bigger one is replaced by ``{"truncated": true, "bytes": <its size>}`` and a warning is
  logged (the latest result in the SQL store keeps it whole).
* error messages: at most :data:`MAX_MESSAGE_CHARS` characters (longer ones are cut, ending with
  ``...``); control characters other than newline and tab become U+FFFD.

Time ranges of queries are inclusive at both ends and apply to the row's time (the window end).
Query results are sorted by time, then endpoint, application and name.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import json
import logging
import math
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from connectors.sql_store import APPLICATION_NAME_PATTERN, validate_application_name
from udfs.records import ErrorRecord, MetricRecord, PredictionRecord, ResultRecord, validate_name

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
TEXT_TAG_CHARS = 255  # project, endpoint_id, error_type
NAME_CHARS = 128  # application, result and metric names
MAX_EXTRA_DATA_BYTES = 16_000
MAX_MESSAGE_CHARS = 1_000

__all__ = [
    "TSDB", "TSDBError", "check_result", "check_metric", "check_prediction", "check_error",
    "check_text", "check_record", "check_filters", "sort_metrics", "sort_predictions", "sort_errors", "extra_data_json", "clean_message", "micros", "from_micros",
    "sort_results", "APPLICATION_NAME_PATTERN", "MAX_EXTRA_DATA_BYTES", "MAX_MESSAGE_CHARS",
]


class TSDBError(RuntimeError):
    """The TSDB failed; the message says what and where, with any password masked."""


# --------------------------------------------------------------------------------- time


def micros(when: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime (a naive one is taken as UTC)."""
    if not isinstance(when, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(when).__name__} {when!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: Any) -> dt.datetime | None:
    """A UTC datetime from what a database returns for a timestamp: microseconds since the epoch,
    a datetime (naive means local time, as the TDengine native client returns it) or ISO text."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        return from_micros(dt.datetime.fromisoformat(text))
    value = int(value)
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=value)


# --------------------------------------------------------------------------------- checks


def check_text(value: Any, what: str, max_chars: int = TEXT_TAG_CHARS) -> str:
    """Return ``value`` if it is 1 to ``max_chars`` characters without control characters."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > max_chars:
        raise ValueError(f"{what} {value[:40]!r}... is {len(value)} characters long: at most {max_chars}")
    bad = [c for c in value if unicodedata.category(c) == "Cc"]
    if bad:
        raise ValueError(f"{what} {value!r} contains control characters {sorted(set(bad))!r}: remove them")
    return value


def _check_app(name: str, record: str) -> str:
    try:
        return validate_application_name(name)
    except ValueError as exc:
        raise ValueError(f"{record}: {exc}") from None


def _check_name(name: str, what: str, record: str) -> str:
    try:
        validate_name(name, what)
    except ValueError as exc:
        raise ValueError(f"{record}: {exc}") from None
    if len(name) > NAME_CHARS:
        raise ValueError(f"{record}: {what} {name!r} is longer than {NAME_CHARS} characters")
    return name


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check_time(value: Any, what: str, record: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{record}: {what} must be a datetime, got {value!r}")
    return value


def extra_data_json(extra: dict[str, Any] | None, where: str = "result") -> str:
    """``extra_data`` as ASCII JSON of at most :data:`MAX_EXTRA_DATA_BYTES` bytes (see module doc)."""
    text = json.dumps(extra or {}, separators=(",", ":"), ensure_ascii=True, sort_keys=True, default=str)
    if len(text) > MAX_EXTRA_DATA_BYTES:
        log.warning("extra_data of %s is %d bytes, more than the TSDB keeps (%d): stored as truncated",
                    where, len(text), MAX_EXTRA_DATA_BYTES)
        text = json.dumps({"truncated": True, "bytes": len(text)}, separators=(",", ":"))
    return text


def clean_message(message: Any) -> str:
    """An error message as the TSDB keeps it (see module doc)."""
    text = "".join(c if c in "\n\t" or unicodedata.category(c) != "Cc" else "\ufffd" for c in str(message))
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def check_result(r: ResultRecord) -> ResultRecord:
    """The record as it will be stored (value NaN→None, extra_data bounded); ValueError if invalid."""
    where = f"result {getattr(r, 'result_name', '?')!r} of endpoint {getattr(r, 'endpoint_id', '?')!r}"
    check_text(r.project, "project")
    check_text(r.endpoint_id, "endpoint id")
    _check_app(r.application_name, where)
    _check_name(r.result_name, "result name", where)
    _check_time(r.start_infer_time, "start_infer_time", where)
    _check_time(r.end_infer_time, "end_infer_time", where)
    extra = json.loads(extra_data_json(r.extra_data, where))
    return dataclasses.replace(r, kind=int(r.kind), status=int(r.status), value=_finite(r.value), extra_data=extra)


def check_metric(m: MetricRecord) -> MetricRecord:
    where = f"metric {getattr(m, 'metric_name', '?')!r} of endpoint {getattr(m, 'endpoint_id', '?')!r}"
    check_text(m.project, "project")
    check_text(m.endpoint_id, "endpoint id")
    _check_app(m.application_name, where)
    _check_name(m.metric_name, "metric name", where)
    _check_time(m.start_infer_time, "start_infer_time", where)
    _check_time(m.end_infer_time, "end_infer_time", where)
    return dataclasses.replace(m, value=_finite(m.value))


def check_prediction(p: PredictionRecord) -> PredictionRecord:
    where = f"predictions of endpoint {getattr(p, 'endpoint_id', '?')!r}"
    check_text(p.project, "project")
    check_text(p.endpoint_id, "endpoint id")
    _check_time(p.start_infer_time, "start_infer_time", where)
    _check_time(p.end_infer_time, "end_infer_time", where)
    for name in ("count", "events", "error_count", "latency_count"):
        value = getattr(p, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: {name} must be a whole number >= 0, got {value!r}")
    return dataclasses.replace(
        p,
        latency_mean_us=_finite(p.latency_mean_us), latency_p50_us=_finite(p.latency_p50_us),
        latency_p95_us=_finite(p.latency_p95_us), latency_p99_us=_finite(p.latency_p99_us),
    )


def check_error(e: ErrorRecord) -> ErrorRecord:
    where = f"error of endpoint {getattr(e, 'endpoint_id', '?')!r}"
    check_text(e.project, "project")
    check_text(e.endpoint_id, "endpoint id")
    _check_app(e.application_name, where)
    check_text(e.error_type, "error type")
    _check_time(e.time, "time", where)
    return dataclasses.replace(e, message=clean_message(e.message))


def check_record(record: Any) -> Any:
    """Dispatch to the check of the record's type."""
    for cls, check in ((ResultRecord, check_result), (MetricRecord, check_metric),
                       (PredictionRecord, check_prediction), (ErrorRecord, check_error)):
        if isinstance(record, cls):
            return check(record)
    raise TypeError(f"not a TSDB record: {type(record).__name__}")


def sort_results(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    return sorted(records, key=lambda r: (r.end_infer_time, r.endpoint_id, r.application_name, r.result_name))


def sort_metrics(records: Iterable[MetricRecord]) -> list[MetricRecord]:
    return sorted(records, key=lambda r: (r.end_infer_time, r.endpoint_id, r.application_name, r.metric_name))


def sort_predictions(records: Iterable[PredictionRecord]) -> list[PredictionRecord]:
    return sorted(records, key=lambda r: (r.end_infer_time, r.endpoint_id))


def sort_errors(records: Iterable[ErrorRecord]) -> list[ErrorRecord]:
    return sorted(records, key=lambda r: (r.time, r.endpoint_id, r.application_name, r.error_type))


# --------------------------------------------------------------------------------- the interface


class TSDB(abc.ABC):
    """Where results, metrics, window predictions and errors are kept over time.

    ``write_*`` take records of one kind and return how many were written; they check every
    record first (:func:`check_record`) and write nothing when one is invalid. ``query_*`` return
    records of a project, optionally narrowed to an endpoint, a time range (inclusive, on the
    row's time) and an application and name, sorted by time.
    """

    @abc.abstractmethod
    def create_schema(self) -> None:
        """Create the database objects if missing (idempotent)."""

    @abc.abstractmethod
    def write_results(self, records: Sequence[ResultRecord]) -> int: ...

    @abc.abstractmethod
    def write_metrics(self, records: Sequence[MetricRecord]) -> int: ...

    @abc.abstractmethod
    def write_predictions(self, records: Sequence[PredictionRecord]) -> int: ...

    @abc.abstractmethod
    def write_errors(self, records: Sequence[ErrorRecord]) -> int: ...

    def write_window(self, results: Sequence[ResultRecord], metrics: Sequence[MetricRecord],
                     errors: Sequence[ErrorRecord], predictions: Sequence[PredictionRecord]) -> None:
        """What the job writes per window; one write per kind here (a store with transactions
        makes it one)."""
        for write, records in ((self.write_results, results), (self.write_metrics, metrics),
                               (self.write_errors, errors), (self.write_predictions, predictions)):
            if records:
                write(records)

    @abc.abstractmethod
    def query_results(
        self,
        project: str,
        endpoint_id: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        application_name: str | None = None,
        result_name: str | None = None,
    ) -> list[ResultRecord]: ...

    @abc.abstractmethod
    def query_metrics(
        self,
        project: str,
        endpoint_id: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        application_name: str | None = None,
        metric_name: str | None = None,
    ) -> list[MetricRecord]: ...

    @abc.abstractmethod
    def query_predictions(
        self,
        project: str,
        endpoint_id: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> list[PredictionRecord]: ...

    @abc.abstractmethod
    def query_errors(
        self,
        project: str,
        endpoint_id: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        application_name: str | None = None,
        error_type: str | None = None,
    ) -> list[ErrorRecord]: ...

    @abc.abstractmethod
    def latest_status(self, project: str, endpoint_id: str | None = None) -> list[ResultRecord]:
        """The newest result of every (endpoint, application, result name) of a project."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> TSDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ shared helpers



def check_filters(
    project: str,
    endpoint_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    application_name: str | None = None,
    name: str | None = None,
    name_what: str = "result name",
) -> None:
    """Check the filters of a query the way records are checked (ValueError when one is invalid)."""
    check_text(project, "project")
    if endpoint_id is not None:
        check_text(endpoint_id, "endpoint id")
    for what, value in (("start", start), ("end", end)):
        if value is not None and not isinstance(value, dt.datetime):
            raise ValueError(f"{what} must be a datetime or None, got {value!r}")
    if application_name is not None:
        _check_app(application_name, "query")
    if name is not None:
        if name_what == "error type":
            check_text(name, name_what)
        else:
            _check_name(name, name_what, "query")
