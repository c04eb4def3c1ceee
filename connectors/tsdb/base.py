"""The TSDB interface: results, metrics, per-window predictions and errors over time.

Two implementations share it: TDengine (:mod:`streamdrift.connectors.tsdb.tdengine`, the production store)
and SQLite (:mod:`streamdrift.connectors.tsdb.sqlite`, the embedded default). The same records go in and the
same records come out of both; what they accept is checked here, once.

Keys. A row is identified by what names its series plus its time (:data:`SERIES_KEYS`,
:data:`TIME_COLUMNS`, from the tables' one definition in :mod:`streamdrift.connectors.tsdb.tables`;
the one rule both stores follow: TDengine hashes the series into its subtable name, SQLite has it
as the table's UNIQUE key):

=================  ==================================================================  ==============
table              series                                                              time
=================  ==================================================================  ==============
``app_results``    project, endpoint_id, application_name, result_name, result_kind   end_infer_time
``metrics``        project, endpoint_id, application_name, metric_name                end_infer_time
``predictions``    project, endpoint_id                                                end_infer_time
``errors``         project, endpoint_id, application_name, error_type                 time
``feature_drift``  project, endpoint_id, application_name, feature_name               end_infer_time
=================  ==================================================================  ==============

so writing a window again (a replay, a late-data correction) replaces its row.

Accepted values (:func:`check_record`), so that no name can break a statement or a table:

* application names: letters, digits, ``_`` and ``-``, not starting with a digit or ``-``
  (``histogram-data-drift``); result and metric names: ``[a-zA-Z_][a-zA-Z0-9_]*``; both at most
  128 characters. Anything else is refused with a ValueError naming the record.
* project, endpoint id and error type: any text of 1 to 255 characters without control
  characters; quotes, backticks, semicolons and Unicode are stored and read back as given.
* values: floats; NaN and infinities are stored as NULL (None).
* ``extra_data``: a JSON object of at most :data:`MAX_EXTRA_DATA_BYTES` bytes once serialised
  (:func:`bound_extra_data`). A bigger one that holds per-feature drift (``"columns"`` of
  ``{"tvd", "hellinger", "kld", ...}``, as ``histogram-data-drift``'s ``general_drift``) is kept
  without those columns, which are the ``feature_drift`` rows, and says so:
  ``"per_feature": {"table": "feature_drift", "columns": <n>}``. Anything else too big goes whole
  to a JSON file under the TSDB's ``artifacts_dir`` (:func:`streamdrift.connectors.artifacts.write_extra_data`)
  and the row keeps ``{"truncated": true, "bytes": <size>, "artifact": "<path>"}``; without an
  ``artifacts_dir`` the row keeps ``{"truncated": true, "bytes": <size>}`` and a warning is
  logged (the latest result in the SQL store keeps it whole either way).
* error messages: at most :data:`MAX_MESSAGE_CHARS` characters (longer ones are cut, ending with
  ``...``); control characters other than newline and tab become U+FFFD.
* feature names: any text of 1 to 255 characters without control characters.

Time ranges of queries are inclusive at both ends and apply to the row's time (the window end).
Query results are sorted by time, then endpoint, application and name.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import itertools
import json
import logging
import math
import operator
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from streamdrift.connectors.errors import StoreFailure
from streamdrift.connectors.tsdb import tables
from streamdrift.connectors.tsdb.tables import SERIES_KEYS, TIME_COLUMNS, Table
from streamdrift.udfs.histogram_drift import per_feature_columns
from streamdrift.udfs.records import (
    ErrorRecord,
    FeatureDriftRecord,
    FeatureDriftRows,
    MetricRecord,
    PredictionRecord,
    ResultRecord,
    check_name,
    validate_application_name,
)

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
TEXT_TAG_CHARS = 255  # project, endpoint_id, error_type
MAX_EXTRA_DATA_BYTES = 16_000
MAX_MESSAGE_CHARS = 1_000
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's control characters (category Cc)

__all__ = [
    "TSDB", "TSDBError", "check_result", "check_metric", "check_prediction", "check_error",
    "check_feature_drift", "check_text", "check_record", "check_filters", "sort_metrics", "sort_predictions",
    "sort_errors", "sort_feature_drift", "extra_data_json", "bound_extra_data", "compact_extra_data",
    "clean_message", "micros", "from_micros", "sort_results", "MAX_EXTRA_DATA_BYTES",
    "MAX_MESSAGE_CHARS", "SERIES_KEYS", "TIME_COLUMNS", "encode_row", "decode_row", "as_text", "query_conditions",
    "sort_records", "check_feature_drift_many", "encode_rows", "BatchChecks", "feature_drift_records",
]


class TSDBError(StoreFailure):
    """The TSDB failed; the message says what and where, with the server's own message and any
    password masked. ``transient`` (:func:`streamdrift.connectors.errors.is_transient`) says whether waiting
    may heal it: True for a refused, lost or timed-out connection or a locked database, False for
    an error the same statement would meet again."""


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
    bad = _CONTROL.findall(value)
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
        return check_name(name, what)
    except ValueError as exc:
        raise ValueError(f"{record}: {exc}") from None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check_time(value: Any, what: str, record: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{record}: {what} must be a datetime, got {value!r}")
    return value


def _check_series(record: Any, where: str, *, application: bool = True) -> None:
    """The project, endpoint id and (``application``) application name every record carries."""
    check_text(record.project, "project")
    check_text(record.endpoint_id, "endpoint id")
    if application:
        _check_app(record.application_name, where)


def _check_window(record: Any, where: str) -> None:
    _check_time(record.start_infer_time, "start_infer_time", where)
    _check_time(record.end_infer_time, "end_infer_time", where)


def _orjson_ascii(extra: Any) -> str | None:
    """:func:`_json`'s text when orjson writes it, in ASCII; else None. Such a text reads back
    (``orjson.loads``) as values that write the same text again: the JSON every value of it keeps."""
    try:
        data = orjson.dumps(extra or {}, default=str, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    return data.decode() if data.isascii() else None


def _json(extra: Any) -> str:
    """Compact ASCII JSON, keys sorted, other objects as their text; NaN and infinities as null.
    orjson where it can (5x the standard library, a third of the writer's time at 20 features),
    the standard library for what orjson refuses (integers beyond 64 bits) or writes as UTF-8."""
    text = _orjson_ascii(extra)
    if text is not None:
        return text
    text = json.dumps(extra or {}, separators=(",", ":"), ensure_ascii=True, sort_keys=True, default=str)
    return json.dumps(json.loads(text, parse_constant=lambda _: None), separators=(",", ":"), sort_keys=True) \
        if "NaN" in text or "Infinity" in text else text


def compact_extra_data(extra: dict[str, Any] | None, max_bytes: int = MAX_EXTRA_DATA_BYTES) -> dict[str, Any] | None:
    """``extra`` when its JSON fits ``max_bytes``; else, when it holds per-feature drift
    (:func:`streamdrift.udfs.histogram_drift.per_feature_columns`), ``extra`` without ``"columns"`` plus
    ``"per_feature": {"table": "feature_drift", "columns": <n>}`` if that fits; else None (it
    needs an artifact)."""
    extra = dict(extra or {})
    return extra if len(_json(extra)) <= max_bytes else _without_feature_columns(extra, max_bytes)


def _without_feature_columns(extra: dict[str, Any], max_bytes: int) -> dict[str, Any] | None:
    columns = per_feature_columns(extra)
    if columns is None:
        return None
    compact = {k: v for k, v in extra.items() if k != "columns"}
    compact["per_feature"] = {"table": "feature_drift", "columns": len(columns)}
    return compact if len(_json(compact)) <= max_bytes else None


def extra_data_json(extra: dict[str, Any] | None, where: str = "result") -> str:
    """``extra_data`` as ASCII JSON of at most :data:`MAX_EXTRA_DATA_BYTES` bytes: as it is, or
    compacted (:func:`compact_extra_data`), or, when neither fits and no artifact was written
    (:func:`bound_extra_data`), ``{"truncated": true, "bytes": <size>}`` with a warning."""
    text = _json(extra)
    if len(text) <= MAX_EXTRA_DATA_BYTES:
        return text
    compact = _without_feature_columns(dict(extra or {}), MAX_EXTRA_DATA_BYTES)
    if compact is not None:
        return _json(compact)
    log.warning("extra_data of %s is %d bytes, more than the TSDB keeps (%d) and no artifacts directory was "
                "given: stored as truncated", where, len(text), MAX_EXTRA_DATA_BYTES)
    return _json({"truncated": True, "bytes": len(text)})


def bound_extra_data(r: ResultRecord, artifacts_dir: str | None = None) -> ResultRecord:
    """The result with an ``extra_data`` the TSDB can keep (see the module doc): as it is,
    compacted, or, with ``artifacts_dir``, replaced by a reference to the artifact file holding the
    whole value (written here; :mod:`streamdrift.connectors.artifacts`)."""
    text = _json(r.extra_data)
    if len(text) <= MAX_EXTRA_DATA_BYTES:
        return r
    compact = _without_feature_columns(dict(r.extra_data or {}), MAX_EXTRA_DATA_BYTES)
    if compact is not None:
        return dataclasses.replace(r, extra_data=compact)
    if artifacts_dir is None:
        return r  # extra_data_json stores the truncation marker and says so
    from streamdrift.connectors.artifacts import write_extra_data

    path = write_extra_data(artifacts_dir, r, text)
    log.info("extra_data of result %r of %r (%s, endpoint %r) is %d bytes: kept whole in %s", r.result_name,
             r.application_name, r.end_infer_time, r.endpoint_id, len(text), path)
    return dataclasses.replace(r, extra_data={"truncated": True, "bytes": len(text), "artifact": str(path)})


def clean_message(message: Any) -> str:
    """An error message as the TSDB keeps it (see module doc)."""
    text = "".join(c if c in "\n\t" or unicodedata.category(c) != "Cc" else "\ufffd" for c in str(message))
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def check_result(r: ResultRecord) -> ResultRecord:
    """The record as it will be stored (value NaN→None, extra_data as JSON keeps it; bounded when
    written, :func:`bound_extra_data`); ValueError if invalid."""
    where = f"result {getattr(r, 'result_name', '?')!r} of endpoint {getattr(r, 'endpoint_id', '?')!r}"
    _check_series(r, where)
    _check_name(r.result_name, "result name", where)
    _check_window(r, where)
    if r.extra_data is not None and not isinstance(r.extra_data, Mapping):
        raise ValueError(f"{where}: extra_data must be a dict, got {type(r.extra_data).__name__}")
    extra = orjson.loads(_json(dict(r.extra_data or {})))  # what JSON keeps (tuples as lists, objects as text)
    return dataclasses.replace(r, kind=int(r.kind), status=int(r.status), value=_finite(r.value), extra_data=extra)


def check_metric(m: MetricRecord) -> MetricRecord:
    where = f"metric {getattr(m, 'metric_name', '?')!r} of endpoint {getattr(m, 'endpoint_id', '?')!r}"
    _check_series(m, where)
    _check_name(m.metric_name, "metric name", where)
    _check_window(m, where)
    return dataclasses.replace(m, value=_finite(m.value))


def check_prediction(p: PredictionRecord) -> PredictionRecord:
    where = f"predictions of endpoint {getattr(p, 'endpoint_id', '?')!r}"
    _check_series(p, where, application=False)
    _check_window(p, where)
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
    _check_series(e, where)
    check_text(e.error_type, "error type")
    _check_time(e.time, "time", where)
    return dataclasses.replace(e, message=clean_message(e.message))


def _whole(value: Any, what: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: {what} must be a whole number >= 0 or None, got {value!r}")
    return value


def check_feature_drift(f: FeatureDriftRecord) -> FeatureDriftRecord:
    """The record as it will be stored (measures NaN→None); ValueError if invalid."""
    where = f"feature drift of {getattr(f, 'feature_name', '?')!r} of endpoint {getattr(f, 'endpoint_id', '?')!r}"
    _check_series(f, where)
    check_text(f.feature_name, "feature name")
    _check_window(f, where)
    if f.rejected is not None and not isinstance(f.rejected, bool):
        raise ValueError(f"{where}: rejected must be True, False or None, got {f.rejected!r}")
    stored = {"tvd": _finite(f.tvd), "hellinger": _finite(f.hellinger), "kld": _finite(f.kld),
              "p_value": _finite(f.p_value), "effect_size": _finite(f.effect_size),
              "invalid_share": _finite(f.invalid_share),
              "window_count": _whole(f.window_count, "window_count", where),
              "reference_count": _whole(f.reference_count, "reference_count", where)}
    if all(getattr(f, k) is v or (type(getattr(f, k)) is float and getattr(f, k) == v) for k, v in stored.items()):
        return f  # already as stored (the common case: 2,000 features a window)
    return dataclasses.replace(f, **stored)


_SERIES_AND_WINDOW = operator.attrgetter("project", "endpoint_id", "application_name", "start_infer_time",
                                         "end_infer_time")
_PLAIN_KEY = (str, str, str, dt.datetime, dt.datetime)
_MEASURES = operator.attrgetter("tvd", "hellinger", "kld", "p_value", "effect_size", "invalid_share")


def _plain_float(value: Any) -> bool:
    """Whether :func:`_finite` returns ``value`` itself: None or a finite ``float``."""
    return value is None or (type(value) is float and math.isfinite(value))


def _stored_as_given(f: FeatureDriftRecord) -> bool:
    """Whether :func:`check_feature_drift` keeps ``f``'s values as they are (it returns ``f``
    itself): measures finite floats or None, counts ints >= 0 or None, ``rejected`` a bool or None."""
    rejected = f.rejected
    if rejected is not None and type(rejected) is not bool:
        return False
    for value in _MEASURES(f):
        if not _plain_float(value):
            return False
    for value in (f.window_count, f.reference_count):
        if value is not None and (type(value) is not int or value < 0):
            return False
    return True


_NONE = type(None)
_FLOAT_OR_NONE = frozenset((float, _NONE))


def _finite_floats(column: Sequence[Any]) -> bool:
    """Whether every value is None or a finite ``float`` (as :func:`_plain_float` of each)."""
    types = set(map(type, column))
    if not types <= _FLOAT_OR_NONE:
        return False
    if _NONE in types:
        column = [v for v in column if v is not None]
    return math.isfinite(sum(column))  # a NaN or an infinity makes the sum one (as may an overflow: then False)


def _plain_rows(values: Sequence[tuple]) -> bool:
    """Whether :func:`_stored_as_given` holds for every row of :class:`FeatureDriftRows` values and
    every feature name is a ``str``, checked column by column."""
    names, tvd, hellinger, kld, p_value, rejected, effect, window_count, reference_count, share = zip(*values)
    if set(map(type, names)) != {str} or not set(map(type, rejected)) <= {bool, _NONE}:
        return False
    for counts in (window_count, reference_count):
        types = set(map(type, counts))
        if not types <= {int, _NONE}:
            return False
        if _NONE in types:
            counts = [v for v in counts if v is not None]
        if counts and min(counts) < 0:
            return False
    return all(_finite_floats(c) for c in (tvd, hellinger, kld, p_value, effect, share))


class BatchChecks:
    """The checks of :func:`check_record` over a batch of windows, each distinct (project,
    endpoint id, application name, window start, window end) and each distinct result, metric or
    feature name checked once, not once per record (a window's 20 to 2,000 feature rows, its
    results and metrics share them). The same records come out and the same first ValueError is
    raised as checking each record alone: a record takes the short way only when those fields are
    plain ``str`` and ``datetime`` equal to ones that passed (the checks are functions of their
    values); any other record is checked by the ``check_*`` of its kind."""

    def __init__(self) -> None:
        self.windows: set[tuple] = set()
        self.names: dict[str, set[str]] = {"result_name": set(), "metric_name": set(), "feature_name": set()}
        #: id of a result's extra_data (alive in the batch's records) → its stored JSON, within
        #: :data:`MAX_EXTRA_DATA_BYTES` (the result needs no bounding): written once, not thrice
        self.texts: dict[int, str] = {}

    def _known(self, record: Any, field: str) -> tuple[bool, Any, Any]:
        """(whether the record's window fields and ``field`` passed before, its key, its name);
        key None when they are not plain values (not remembered)."""
        try:
            key = _SERIES_AND_WINDOW(record)
            name = getattr(record, field)
        except AttributeError:  # not a record: its check says which field is missing, in its order
            return False, None, None
        if type(name) is not str or tuple(map(type, key)) != _PLAIN_KEY:
            return False, None, None
        return key in self.windows and name in self.names[field], key, name

    def _passed(self, key: Any, name: Any, field: str) -> None:
        if key is not None:
            self.windows.add(key)
            self.names[field].add(name)

    def result(self, r: ResultRecord) -> ResultRecord:
        """:func:`check_result`'s checks and errors and the same stored row (:func:`encode_row`),
        ``extra_data`` kept as given when orjson writes it in ASCII within
        :data:`MAX_EXTRA_DATA_BYTES` (reading that back would write the very same text again:
        :func:`_orjson_ascii`), which spares parsing 20 features' statistics per result."""
        if r.extra_data is None or type(r.extra_data) is not dict:
            return check_result(r)
        try:
            text = _orjson_ascii(r.extra_data)
        except Exception:  # noqa: BLE001 - e.g. an object's text failing: check_result says what, in its order
            text = None
        if text is None or len(text) > MAX_EXTRA_DATA_BYTES:
            return check_result(r)
        self.texts[id(r.extra_data)] = text
        known, key, name = self._known(r, "result_name")
        if not known:
            where = f"result {getattr(r, 'result_name', '?')!r} of endpoint {getattr(r, 'endpoint_id', '?')!r}"
            _check_series(r, where)
            _check_name(r.result_name, "result name", where)
            _check_window(r, where)
            self._passed(key, name, "result_name")
        kind, status, value = int(r.kind), int(r.status), _finite(r.value)
        if kind is r.kind and status is r.status and value is r.value:
            return r
        return dataclasses.replace(r, kind=kind, status=status, value=value)

    def metric(self, m: MetricRecord) -> MetricRecord:
        """:func:`check_metric`, ``m`` itself when its value is stored as given."""
        known, key, name = self._known(m, "metric_name")
        if not known:
            m = check_metric(m)
            self._passed(key, name, "metric_name")
            return m
        return m if _plain_float(m.value) else dataclasses.replace(m, value=_finite(m.value))

    def feature_drift(self, f: FeatureDriftRecord) -> FeatureDriftRecord:
        """:func:`check_feature_drift`."""
        known, key, name = self._known(f, "feature_name")
        if known and _stored_as_given(f):
            return f
        f = check_feature_drift(f)
        self._passed(key, name, "feature_name")
        return f

    def feature_rows(self, rows: FeatureDriftRows) -> FeatureDriftRows | list[FeatureDriftRecord]:
        """``[self.feature_drift(f) for f in rows]``: the same records and the same first error;
        ``rows`` itself when every record comes out as it is, found from its columns (a window's
        20 to 2,000 rows checked together): its first record checked (its window fields and
        name, as the first record's check does), every other name one that passed, every measure
        a finite float or None, ``rejected`` a bool or None, the counts ints >= 0 or None."""
        values = rows.values
        if not values:
            return []
        if not _plain_rows(values):
            return [self.feature_drift(f) for f in rows]
        first = rows.record(0)
        checked = self.feature_drift(first)
        if checked is not first or not {v[0] for v in values} <= self.names["feature_name"]:
            return [checked] + [self.feature_drift(rows.record(i)) for i in range(1, len(values))]
        return rows


def _checked_feature_drift(checks: BatchChecks, items: Iterable[Any]) -> list[Any]:
    """Per-feature records and :class:`FeatureDriftRows` checked: a block whose records all come
    out as they are stays one item (:meth:`BatchChecks.feature_rows`), else its records are items."""
    out: list[Any] = []
    for item in items:
        if type(item) is FeatureDriftRows:
            checked = checks.feature_rows(item)
            if checked is item:
                out.append(item)
            else:
                out += checked
        else:
            out.append(checks.feature_drift(item))
    return out


def feature_drift_records(items: Iterable[Any]) -> list[FeatureDriftRecord]:
    """The records of per-feature items (records and :class:`FeatureDriftRows`), in order.

    >>> from streamdrift.udfs.records import utc_from_ms
    >>> t0 = utc_from_ms(1_764_158_400_000)
    >>> rows = FeatureDriftRows(('p', 'ep1', 'app', t0, t0), [('x', 0.1, 0.1, 0.1, None, None, None, 4, 4, None)])
    >>> [f.feature_name for f in feature_drift_records([rows, rows[0]])]
    ['x', 'x']
    """
    out: list[FeatureDriftRecord] = []
    for item in items:
        if type(item) is FeatureDriftRows:
            out += item
        else:
            out.append(item)
    return out


def check_feature_drift_many(records: Iterable[FeatureDriftRecord]) -> list[FeatureDriftRecord]:
    """``[check_feature_drift(f) for f in records]``: the same records returned and the same first
    ValueError raised, each distinct window (project, endpoint id, application name, start, end)
    and feature name checked once (:class:`BatchChecks`)."""
    checks = BatchChecks()
    return [checks.feature_drift(f) for f in records]


def check_record(record: Any) -> Any:
    """Dispatch to the check of the record's type."""
    for cls, check in ((ResultRecord, check_result), (MetricRecord, check_metric),
                       (PredictionRecord, check_prediction), (ErrorRecord, check_error),
                       (FeatureDriftRecord, check_feature_drift)):
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


def sort_feature_drift(records: Iterable[FeatureDriftRecord]) -> list[FeatureDriftRecord]:
    return sorted(records, key=lambda r: (r.end_infer_time, r.endpoint_id, r.application_name, r.feature_name))


def sort_records(table: Table, records: Iterable[Any]) -> list[Any]:
    """Records of ``table`` in the order queries return them (the ``sort_*`` of its kind)."""
    return {"app_results": sort_results, "metrics": sort_metrics, "predictions": sort_predictions,
            "errors": sort_errors, "feature_drift": sort_feature_drift}[table.name](records)


# --------------------------------------------------------------------------------- rows


def as_text(value: Any) -> Any:
    """Text as a database returns it, bytes decoded (UTF-8); anything else as it is."""
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _opt_micros(value: dt.datetime | None) -> int | None:
    return None if value is None else micros(value)


def _json_of(text: Any) -> dict[str, Any]:
    text = as_text(text)
    return json.loads(text) if text else {}


def _text_or_empty(value: Any) -> str:
    return as_text(value) or ""


#: Logical value → stored value, per logical type (others are stored as they are; a bool stays a
#: bool: SQLite binds it as 1 or 0, TDengine writes true or false; JSON: :func:`extra_data_json`).
_ENCODE = {tables.TIMESTAMP: _opt_micros, tables.INT32: _int}
#: Stored value (as either backend returns it) → logical value, per logical type.
_DECODE = {tables.TIMESTAMP: from_micros, tables.INT32: _int, tables.INT64: _int, tables.FLOAT64: _float,
           tables.BOOL: _bool, tables.TEXT: as_text, tables.UNICODE: as_text, tables.JSON: _json_of}


class _Codec:
    """What :func:`encode_row` and :func:`decode_row` need of a table, computed once."""

    def __init__(self, table: Table):
        columns = table.all_columns
        self.fields = tuple(c.field for c in columns)
        self.getter = operator.attrgetter(*self.fields)
        self.encoders = [(i, micros if c.type == tables.TIMESTAMP and not c.nullable else _ENCODE[c.type])
                         for i, c in enumerate(columns) if c.type in _ENCODE]
        self.json = [i for i, c in enumerate(columns) if c.type == tables.JSON]
        self.decoders = [_text_or_empty if c.type == tables.UNICODE and not c.nullable and c in table.columns
                         else _DECODE[c.type] for c in columns]
        index = {c.field: i for i, c in enumerate(columns)}
        self.order = [index[f.name] for f in dataclasses.fields(table.record)]  # the record's fields in row order


_CODECS: dict[str, _Codec] = {t.name: _Codec(t) for t in tables.TABLES}


def encode_row(table: Table, record: Any) -> list[Any]:
    """A checked record as stored (:func:`check_record`): its values in the row's order
    (:attr:`Table.all_columns`: value columns, then tags), timestamps as microseconds since the
    epoch, ``extra_data`` as JSON text (:func:`extra_data_json`)."""
    codec = _CODECS[table.name]
    values = list(codec.getter(record))
    for i, encode in codec.encoders:
        values[i] = encode(values[i])
    for i in codec.json:
        values[i] = extra_data_json(values[i], f"{table.name} {getattr(record, table.name_tag or '', '')!r} of "
                                               f"endpoint {record.endpoint_id!r}")
    return values


def encode_rows(table: Table, records: Iterable[Any], json_texts: Mapping[int, str] | None = None) -> list[list[Any]]:
    """``[encode_row(table, r) for r in records]``, each distinct timestamp converted once (a
    batch of windows shares a few starts and ends): the same rows, the same first error.
    ``json_texts``: the stored text of JSON values already written, by ``id`` of the value
    (:meth:`TSDB.checked_window`'s ``checks.texts``). A :class:`FeatureDriftRows` among
    ``records`` gives its rows, its values written as they are: only blocks that
    :meth:`BatchChecks.feature_rows` returned whole belong here."""
    json_texts = json_texts or {}
    codec = _CODECS[table.name]
    stamps: dict[dt.datetime, int] = {}

    def stamp(when: Any, encode: Any) -> Any:
        # equal datetimes are the same instant (naive: as UTC) when their tzinfo is None or a
        # fixed offset; any other value is converted on its own
        if type(when) is dt.datetime and (when.tzinfo is None or type(when.tzinfo) is dt.timezone):
            value = stamps.get(when)
            if value is None:
                value = stamps[when] = micros(when)
            return value
        return encode(when)

    encoders = [(i, encode, encode is micros or encode is _opt_micros) for i, encode in codec.encoders]
    rows = []
    for record in records:
        if type(record) is FeatureDriftRows:  # checked as a block (BatchChecks.feature_rows): its values as they are
            rows += _feature_rows(codec, record, stamp)
            continue
        values = list(codec.getter(record))
        for i, encode, timestamp in encoders:
            values[i] = stamp(values[i], encode) if timestamp else encode(values[i])
        for i in codec.json:
            text = json_texts.get(id(values[i]))
            values[i] = text if text is not None else extra_data_json(values[i], f"{table.name} {getattr(record, table.name_tag or '', '')!r} of "
                                                   f"endpoint {record.endpoint_id!r}")
        rows.append(values)
    return rows


_SERIES_FIELDS = ("project", "endpoint_id", "application_name", "start_infer_time", "end_infer_time")
_VALUE_FIELDS = ("feature_name", "tvd", "hellinger", "kld", "p_value", "rejected", "effect_size", "window_count",
                 "reference_count", "invalid_share")


def _feature_rows(codec: _Codec, rows: FeatureDriftRows, stamp: Any) -> list[list[Any]]:
    """The stored rows of checked :class:`FeatureDriftRows` (as :func:`encode_row` of each record):
    its shared fields encoded once, its values' columns as they are (floats, bools, ints)."""
    if not rows.values:
        return []
    columns = list(zip(*rows.values))
    encode = dict(codec.encoders)
    parts = []
    for i, name in enumerate(codec.fields):
        if name in _SERIES_FIELDS:
            value = rows.series[_SERIES_FIELDS.index(name)]
            parts.append(itertools.repeat(value if i not in encode else stamp(value, encode[i])))
        else:
            column = columns[_VALUE_FIELDS.index(name)]
            parts.append(column if i not in encode else map(encode[i], column))
    return list(map(list, zip(*parts)))


def decode_row(table: Table, row: Sequence[Any]) -> Any:
    """The record of a stored row (in :func:`encode_row`'s order; timestamps as microseconds, a
    datetime or ISO text, text as str or UTF-8 bytes)."""
    codec = _CODECS[table.name]
    values = [decode(v) for decode, v in zip(codec.decoders, row, strict=True)]
    return table.record(*[values[i] for i in codec.order])


def query_conditions(table: Table, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                     end: dt.datetime | None = None, application_name: str | None = None,
                     name: str | None = None) -> list[tuple[str, str, Any]]:
    """The ``(column, operator, value)`` terms of a query of ``table`` (filters checked by
    :func:`check_filters`; a None value means no such term): the project, the endpoint, the
    application, the table's name tag, and the time range (inclusive, in microseconds)."""
    check_filters(project, endpoint_id, start, end, application_name, name,
                  (table.name_tag or "name").replace("_", " "))
    time = table.time_column
    return [("project", "=", project), ("endpoint_id", "=", endpoint_id), ("application_name", "=", application_name),
            (table.name_tag, "=", name), (time, ">=", _opt_micros(start)), (time, "<=", _opt_micros(end))]


# --------------------------------------------------------------------------------- the interface


class TSDB(abc.ABC):
    """Where results, metrics, window predictions, errors and per-feature drift are kept over time.

    ``write_*`` take records of one kind and return how many were written; they check every
    record first (:func:`check_record`) and write nothing when one is invalid. ``query_*`` return
    records of a project, optionally narrowed to an endpoint, a time range (inclusive, on the
    row's time) and an application and name, sorted by time. Errors are :class:`TSDBError`
    (``transient`` set) or, for an invalid record or filter, ValueError.

    ``artifacts_dir``: where an ``extra_data`` too big for a row is kept whole (see the module
    doc); None keeps only a truncation marker.
    """

    artifacts_dir: str | None = None

    @abc.abstractmethod
    def create_schema(self) -> None:
        """Create the database objects if missing (idempotent)."""

    @abc.abstractmethod
    def write_rows(self, table: Table, records: list[Any]) -> None:
        """Write records of ``table`` already checked (:func:`check_record`; results bounded,
        :meth:`bounded_results`): the one write each backend implements for its dialect."""

    def write_results(self, records: Sequence[ResultRecord]) -> int:
        return self._write_checked(tables.RESULTS, self.bounded_results(records))

    def write_metrics(self, records: Sequence[MetricRecord]) -> int:
        return self._write_checked(tables.METRICS, [check_metric(m) for m in records])

    def write_predictions(self, records: Sequence[PredictionRecord]) -> int:
        return self._write_checked(tables.PREDICTIONS, [check_prediction(p) for p in records])

    def write_errors(self, records: Sequence[ErrorRecord]) -> int:
        return self._write_checked(tables.ERRORS, [check_error(e) for e in records])

    def write_feature_drift(self, records: Sequence[FeatureDriftRecord]) -> int:
        return self._write_checked(tables.FEATURE_DRIFT, [check_feature_drift(f) for f in records])

    def _write_checked(self, table: Table, checked: list[Any]) -> int:
        if checked:
            self.write_rows(table, checked)
        return len(checked)

    @abc.abstractmethod
    def write_window(self, results: Sequence[ResultRecord], metrics: Sequence[MetricRecord],
                     errors: Sequence[ErrorRecord], predictions: Sequence[PredictionRecord],
                     feature_drift: Sequence[FeatureDriftRecord] = ()) -> None:
        """What the job writes per window, or per batch of windows: the records of any number of
        windows and endpoints, every one checked before anything is written, then written
        together (one transaction on SQLite; on TDengine, which has none, multi-table INSERT
        statements each under the server's statement size)."""

    def bounded_results(self, records: Sequence[ResultRecord]) -> list[ResultRecord]:
        """Every result checked, then with an ``extra_data`` the store keeps (:func:`bound_extra_data`)."""
        checked = [check_result(r) for r in records]
        return [bound_extra_data(r, self.artifacts_dir) for r in checked]

    def checked_window(self, results: Sequence[ResultRecord], metrics: Sequence[MetricRecord],
                       errors: Sequence[ErrorRecord], predictions: Sequence[PredictionRecord],
                       feature_drift: Sequence[FeatureDriftRecord],
                       checks: BatchChecks | None = None) -> tuple[list, list, list, list, list]:
        """The records of :meth:`write_window` as stored: all checked (ValueError before anything,
        an artifact file included, is written), then the results' ``extra_data`` bounded. The
        checks and errors are those of :func:`check_record`, with each window's shared fields
        checked once (:class:`BatchChecks`); a result's ``extra_data`` is kept as given where
        its stored JSON is the same (then its text is in ``checks.texts``, for :func:`encode_rows`)."""
        checks = BatchChecks() if checks is None else checks
        checked = ([checks.result(r) for r in results], [checks.metric(m) for m in metrics],
                   [check_error(e) for e in errors], [check_prediction(p) for p in predictions],
                   _checked_feature_drift(checks, feature_drift))
        texts = checks.texts
        return ([r if id(r.extra_data) in texts else bound_extra_data(r, self.artifacts_dir) for r in checked[0]],
                *checked[1:])

    @abc.abstractmethod
    def query_rows(self, table: Table, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                   end: dt.datetime | None = None, application_name: str | None = None,
                   name: str | None = None) -> list[Any]:
        """The records of ``table`` that match :func:`query_conditions` (``name``: of the table's
        ``name_tag``), sorted (:func:`sort_records`): the one query each backend implements."""

    def query_results(self, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                      end: dt.datetime | None = None, application_name: str | None = None,
                      result_name: str | None = None) -> list[ResultRecord]:
        return self.query_rows(tables.RESULTS, project, endpoint_id, start, end, application_name, result_name)

    def query_metrics(self, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                      end: dt.datetime | None = None, application_name: str | None = None,
                      metric_name: str | None = None) -> list[MetricRecord]:
        return self.query_rows(tables.METRICS, project, endpoint_id, start, end, application_name, metric_name)

    def query_predictions(self, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                          end: dt.datetime | None = None) -> list[PredictionRecord]:
        return self.query_rows(tables.PREDICTIONS, project, endpoint_id, start, end)

    def query_errors(self, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                     end: dt.datetime | None = None, application_name: str | None = None,
                     error_type: str | None = None) -> list[ErrorRecord]:
        return self.query_rows(tables.ERRORS, project, endpoint_id, start, end, application_name, error_type)

    def query_feature_drift(self, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                            end: dt.datetime | None = None, application_name: str | None = None,
                            feature_name: str | None = None) -> list[FeatureDriftRecord]:
        """Per-feature drift rows of a project, sorted by window end, endpoint, application, feature."""
        return self.query_rows(tables.FEATURE_DRIFT, project, endpoint_id, start, end, application_name, feature_name)

    @abc.abstractmethod
    def latest_status(self, project: str, endpoint_id: str | None = None) -> list[ResultRecord]:
        """The newest result of every (endpoint, application, result name) of a project."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> TSDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()



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
        if name_what in ("error type", "feature name"):
            check_text(name, name_what)
        else:
            _check_name(name, name_what, "query")
