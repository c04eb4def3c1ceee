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
from typing import Any

NAME_PATTERN = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


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
    """Return ``name`` if it matches ``[a-zA-Z_][a-zA-Z0-9_]*``, else raise ValueError saying so."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{what} {name!r} is invalid: use letters, digits and '_', not starting with a digit")
    return name


def utc_from_ms(ms: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def ms_from_utc(when: dt.datetime) -> int:
    return int(round(when.timestamp() * 1000))


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
    ``feature_drift`` rows; :func:`udfs.histogram_drift.feature_drift_records` makes them from
    ``histogram-data-drift``'s result).

    ``tvd``, ``hellinger``, ``kld``: the window's histogram against the reference's
    (:mod:`udfs.drift`). The per-feature test's ``p_value``, ``rejected`` (after the
    multiple-testing correction) and ``effect_size`` are None when no test ran.
    ``window_count`` (n) and ``reference_count`` (N): the non-null values compared on each side.
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
