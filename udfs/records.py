"""The records that leave the monitoring stage: results, metrics, per-window prediction aggregates,
errors, per-feature drift, and the endpoint record. Frozen dataclasses; the stores in
``connectors`` persist them.

A window is identified by ``(endpoint_id, start_infer_time, end_infer_time)``; results and metrics
are keyed by ``(endpoint_id, application_name, name, end_infer_time)``, so writing the same window
twice (a replay, a late-data correction) leaves one row.

Times are timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Sequence
from typing import Any

NAME_PATTERN = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""Result and metric names (MLRun's rule)."""
APPLICATION_NAME_PATTERN = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")
"""Application names: the result-name rule plus ``-`` (applications are named like functions)."""
NAME_LENGTH = 128
"""Characters of an application, result or metric name, at most (what every store holds)."""


class ResultKindApp(enum.IntEnum):
    """MLRun's result kinds (``mlrun.common.schemas.model_monitoring.ResultKindApp``)."""

    data_drift = 0
    concept_drift = 1
    model_performance = 2
    system_performance = 3
    mm_app_anomaly = 4


class ResultStatusApp(enum.IntEnum):
    """MLRun's result statuses (``mlrun.common.schemas.model_monitoring.ResultStatusApp``)."""

    irrelevant = -1
    no_detection = 0
    potential_detection = 1
    detected = 2


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it matches ``[a-zA-Z_][a-zA-Z0-9_]*``, else raise ValueError saying so.

    >>> validate_name('general_drift')
    'general_drift'
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{what} {name!r} is invalid: use letters, digits and '_', not starting with a digit")
    return name


def check_name(name: str, what: str = "name") -> str:
    """:func:`validate_name`, and at most :data:`NAME_LENGTH` characters: a result or metric name
    every store takes. Raises ValueError saying which rule ``name`` breaks.

    >>> check_name('tvd_mean', 'metric name')
    'tvd_mean'
    """
    validate_name(name, what)
    if len(name) > NAME_LENGTH:
        raise ValueError(f"{what} {name[:40]!r}... is {len(name)} characters long: at most {NAME_LENGTH}")
    return name


def validate_application_name(name: str) -> str:
    """Return ``name`` if it is a valid application name, else raise ValueError saying why.

    Letters, digits, ``_`` and ``-``, not starting with a digit or ``-``, at most 128 characters:
    the result-name rule plus ``-``, because applications are named like functions (the built-in
    one is ``histogram-data-drift``).

    >>> validate_application_name('histogram-data-drift')
    'histogram-data-drift'
    """
    if not isinstance(name, str) or not APPLICATION_NAME_PATTERN.fullmatch(name) or len(name) > NAME_LENGTH:
        raise ValueError(
            f"application name {name!r} is invalid: use letters, digits, '_' and '-', "
            f"not starting with a digit or '-', at most {NAME_LENGTH} characters"
        )
    return name


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def utc_from_ms(ms: int | float) -> dt.datetime:
    """The aware UTC datetime of an epoch time in milliseconds, exactly (no float division on the
    way: ``fromtimestamp(ms / 1000)`` is a microsecond off for some, e.g. 10,071,838,103,553 ms).

    >>> utc_from_ms(1_764_158_400_123)
    datetime.datetime(2025, 11, 26, 12, 0, 0, 123000, tzinfo=datetime.timezone.utc)
    """
    return _EPOCH + dt.timedelta(milliseconds=ms)


def ms_from_utc(when: dt.datetime) -> int:
    """The epoch time in milliseconds of a datetime, exactly (floored to the millisecond, no float
    on the way); a naive datetime is UTC, as the job reads event times. OverflowError for a time
    that a datetime's difference cannot hold.

    >>> ms_from_utc(dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc))
    1764158400000
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (when - _EPOCH) // dt.timedelta(milliseconds=1)


@dataclasses.dataclass(frozen=True)
class ResultRecord:
    project: str
    endpoint_id: str
    application_name: str
    result_name: str
    kind: int
    status: int
    value: float | None
    start_infer_time: dt.datetime
    end_infer_time: dt.datetime
    extra_data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MetricRecord:
    project: str
    endpoint_id: str
    application_name: str
    metric_name: str
    value: float | None
    start_infer_time: dt.datetime
    end_infer_time: dt.datetime


@dataclasses.dataclass(frozen=True)
class PredictionRecord:
    """One window's serving aggregate for an endpoint (written per window, never per event)."""

    project: str
    endpoint_id: str
    start_infer_time: dt.datetime
    end_infer_time: dt.datetime
    count: int  # rows (samples) in the window
    events: int  # inference events (a batch event is one event, many rows)
    error_count: int
    latency_count: int
    latency_mean_us: float | None
    latency_p50_us: float | None
    latency_p95_us: float | None
    latency_p99_us: float | None
    first_request: dt.datetime | None
    last_request: dt.datetime | None
    estimated_count: float | None = None  # rows the window stands for, the serving side's sampling undone


@dataclasses.dataclass(frozen=True)
class ErrorRecord:
    """Something that went wrong for an endpoint: a failed application (``mm-app-failed``), ..."""

    project: str
    endpoint_id: str
    application_name: str
    error_type: str
    message: str
    time: dt.datetime


@dataclasses.dataclass(frozen=True)
class FeatureDriftRecord:
    """One feature's drift in one window, as an application measured it (the TSDB's
    ``feature_drift`` rows; :func:`streamdrift.udfs.histogram_drift.feature_drift_records` makes them from
    ``histogram-data-drift``'s result).

    ``tvd``, ``hellinger``, ``kld``: the window's histogram against the reference's
    (:mod:`streamdrift.udfs.drift`). The per-feature test's ``p_value``, ``rejected`` (after the
    multiple-testing correction) and ``effect_size`` are None when no test ran.
    ``window_count`` (n) and ``reference_count`` (N): the non-null values compared on each side.
    ``invalid_share``: the window's values of a numeric column that are not numbers ("N/A"), as a
    share of its non-null + invalid values (never part of the drift); None for other columns.
    """

    project: str
    endpoint_id: str
    application_name: str
    feature_name: str
    start_infer_time: dt.datetime
    end_infer_time: dt.datetime
    tvd: float | None
    hellinger: float | None
    kld: float | None
    p_value: float | None = None
    rejected: bool | None = None
    effect_size: float | None = None
    window_count: int | None = None
    reference_count: int | None = None
    invalid_share: float | None = None


def record_builder(cls: type) -> Callable[..., Any]:
    """``build(*values)``, the same record as ``cls(*values)`` (equal, same repr and hash) for a
    frozen dataclass with no ``__post_init__`` when every field is given, in order; TypeError for
    another number of values. It fills the instance's ``__dict__`` at once, as unpickling does:
    the frozen ``__init__`` sets each field through ``object.__setattr__`` (3.6 µs for 15 fields,
    0.8 µs this way; a window makes one per feature).

    >>> t0 = utc_from_ms(1_764_158_400_000)
    >>> record_builder(MetricRecord)('p', 'ep1', 'my-app', 'rows', 4.0, t0, t0) == MetricRecord('p', 'ep1', 'my-app', 'rows', 4.0, t0, t0)
    True
    """
    if getattr(cls, "__post_init__", None) is not None:
        raise TypeError(f"{cls.__name__} has a __post_init__: build it with {cls.__name__}(...)")
    names = tuple(f.name for f in dataclasses.fields(cls))
    new = object.__new__

    def build(*values: Any) -> Any:
        if len(values) != len(names):
            raise TypeError(f"{cls.__name__} takes {len(names)} values ({', '.join(names)}), got {len(values)}")
        record = new(cls)
        record.__dict__.update(zip(names, values))
        return record

    return build


class FeatureDriftRows(Sequence):
    """One window's per-feature rows of one application, as values: a sequence of
    :class:`FeatureDriftRecord`, each made only when read. ``series``: (project, endpoint_id,
    application_name, start_infer_time, end_infer_time), shared by the rows; ``values``: per
    feature (feature_name, tvd, hellinger, kld, p_value, rejected, effect_size, window_count,
    reference_count, invalid_share), the record's other fields in order. A store may write the
    values as they are after checking them together
    (:meth:`streamdrift.connectors.tsdb.base.BatchChecks.feature_rows`): a window's 20 to 2,000
    rows need no record each. Equal to a tuple or list of the same records, and added to one as a
    tuple is; ``dataclasses.asdict`` of a record holding it keeps it as it is (not a tuple of dicts).

    >>> t0 = utc_from_ms(1_764_158_400_000)
    >>> rows = FeatureDriftRows(('p', 'ep1', 'my-app', t0, t0), [('x', 0.25, 0.18, 0.27, 0.5, False, 0.1, 4, 4, None)])
    >>> rows[0].feature_name, rows[0].tvd, len(rows)
    ('x', 0.25, 1)
    >>> rows == (FeatureDriftRecord('p', 'ep1', 'my-app', 'x', t0, t0, 0.25, 0.18, 0.27, 0.5, False, 0.1, 4, 4),)
    True
    """

    __slots__ = ("series", "values", "_records")

    def __init__(self, series: tuple[str, str, str, dt.datetime, dt.datetime], values: list[tuple]):
        self.series = series
        self.values = values
        self._records: tuple[FeatureDriftRecord, ...] | None = None

    def records(self) -> tuple[FeatureDriftRecord, ...]:
        """Every row's record (made once)."""
        if self._records is None:
            self._records = tuple(map(self.record, range(len(self.values))))
        return self._records

    def record(self, index: int) -> FeatureDriftRecord:
        """The record of row ``index``, made now."""
        project, endpoint_id, application_name, start, end = self.series
        v = self.values[index]
        return _feature_drift_record(project, endpoint_id, application_name, v[0], start, end, *v[1:])

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):
        return self.records()[index]

    def __iter__(self):
        return iter(self.records())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (FeatureDriftRows, tuple, list)):
            return self.records() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.records())

    def __add__(self, other):
        return self.records() + tuple(other) if isinstance(other, (FeatureDriftRows, tuple)) else NotImplemented

    def __radd__(self, other):
        return other + self.records() if isinstance(other, tuple) else NotImplemented

    def __repr__(self) -> str:
        return f"FeatureDriftRows({list(self.records())!r})"

    def __getstate__(self):
        return self.series, self.values

    def __setstate__(self, state) -> None:
        self.series, self.values = state
        self._records = None


def record_to_json(record: Any) -> dict[str, Any]:
    """A record (any dataclass of this module) as a JSON-ready dict: its fields, times as ISO 8601
    strings, and ``"type"``, its class name (see :func:`record_from_json`).

    >>> t0 = utc_from_ms(1_764_158_400_000)
    >>> record_to_json(MetricRecord('p', 'ep1', 'my-app', 'rows', 4.0, t0, t0))
    {'type': 'MetricRecord', 'project': 'p', 'endpoint_id': 'ep1', 'application_name': 'my-app', 'metric_name': 'rows', 'value': 4.0, 'start_infer_time': '2025-11-26T12:00:00+00:00', 'end_infer_time': '2025-11-26T12:00:00+00:00'}
    """
    out: dict[str, Any] = {"type": type(record).__name__}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        out[f.name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def record_from_json(data: dict[str, Any]) -> Any:
    """The record :func:`record_to_json` made ``data`` of; ValueError for an unknown type.

    >>> t0 = utc_from_ms(1_764_158_400_000)
    >>> record = ErrorRecord('p', 'ep1', 'my-app', 'mm-app-failed', 'ValueError: boom', t0)
    >>> record_from_json(record_to_json(record)) == record
    True
    >>> record_from_json({'type': 'Row'})
    Traceback (most recent call last):
    ...
    ValueError: not a record of streamdrift: type 'Row'
    """
    import typing

    cls = _RECORD_TYPES.get(data.get("type"))
    if cls is None:
        raise ValueError(f"not a record of streamdrift: type {data.get('type')!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        value = data.get(f.name)
        if value is not None and "datetime" in str(hints[f.name]):
            value = dt.datetime.fromisoformat(value)
        kwargs[f.name] = value
    return cls(**kwargs)


_feature_drift_record = record_builder(FeatureDriftRecord)
_RECORD_TYPES = {cls.__name__: cls for cls in (ResultRecord, MetricRecord, PredictionRecord, ErrorRecord,
                                                 FeatureDriftRecord)}
