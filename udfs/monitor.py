"""One closed window of one endpoint → the records the writer stores (pure, no Flink, no I/O)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from udfs.applications import ModelMonitoringApplicationBase, MonitoringContext, app_name, normalise_output
from udfs.records import ErrorRecord, MetricRecord, PredictionRecord, ResultRecord, utc_from_ms
from udfs.window import Sample, WindowAggregate


@dataclasses.dataclass(frozen=True)
class WindowOutput:
    """Everything one closed (or corrected) window produces."""

    project: str
    endpoint_id: str
    start_ms: int
    end_ms: int
    revision: int  # 0 = first result, 1.. = corrections by late data
    late_rows: int  # rows that arrived after the allowed lateness (counted, not in the window)
    prediction: PredictionRecord | None
    results: tuple[ResultRecord, ...] = ()
    metrics: tuple[MetricRecord, ...] = ()
    errors: tuple[ErrorRecord, ...] = ()


def prediction_record(project: str, endpoint_id: str, start_ms: int, end_ms: int, agg: WindowAggregate) -> PredictionRecord:
    return PredictionRecord(
        project=project, endpoint_id=endpoint_id, start_infer_time=utc_from_ms(start_ms),
        end_infer_time=utc_from_ms(end_ms), count=agg.rows, events=agg.events, error_count=agg.errors,
        latency_count=agg.latency_count, latency_mean_us=agg.latency_mean,
        latency_p50_us=agg.latency_quantile(0.5), latency_p95_us=agg.latency_quantile(0.95),
        latency_p99_us=agg.latency_quantile(0.99),
        first_request=None if agg.first_ms is None else utc_from_ms(agg.first_ms),
        last_request=None if agg.last_ms is None else utc_from_ms(agg.last_ms))


def monitor_window(
    endpoint: Mapping[str, Any] | None,
    endpoint_id: str,
    default_project: str,
    start_ms: int,
    end_ms: int,
    agg: WindowAggregate,
    apps: Sequence[ModelMonitoringApplicationBase],
    revision: int = 0,
) -> WindowOutput:
    """Run every application on the window. An application that raises or returns garbage gives an
    ``mm-app-failed`` error record for that app and endpoint; the others go on. Without a
    reference (no endpoint record, or no feature_stats) only the prediction aggregate is produced."""
    project = (endpoint or {}).get("project") or default_project
    prediction = prediction_record(project, endpoint_id, start_ms, end_ms, agg)
    feature_stats = (endpoint or {}).get("feature_stats") or {}
    if not feature_stats or agg.accumulator is None:
        return WindowOutput(project, endpoint_id, start_ms, end_ms, revision, 0, prediction)
    start, end = utc_from_ms(start_ms), utc_from_ms(end_ms)
    results: list[ResultRecord] = []
    metrics: list[MetricRecord] = []
    errors: list[ErrorRecord] = []
    stats = agg.accumulator.to_stats()
    sample = agg.sample_frame()
    for app in apps:
        name = app_name(app)
        # each app gets its own copies: the endpoint record is the catalog's cache, and what one
        # app changes in place must reach neither the next app nor the next window
        mine = copy.deepcopy(endpoint)
        context = MonitoringContext(
            application_name=name, project_name=project, endpoint_id=endpoint_id, model_endpoint=mine,
            start_infer_time=start, end_infer_time=end, feature_stats=mine["feature_stats"],
            sample_df_stats=copy.deepcopy(stats), sample_df=sample.copy(),
            feature_names=list(mine.get("feature_names") or []), label_names=list(mine.get("label_names") or []),
            window=agg + WindowAggregate(sample=Sample.empty(0)))
        try:
            r, m = normalise_output(app.do_tracking(context), context)
        except Exception as exc:  # isolation: one app's failure is recorded, never fatal
            errors.append(ErrorRecord(project, endpoint_id, name, "mm-app-failed",
                                      f"{type(exc).__name__}: {exc}"[:2000], end))
            continue
        results += r
        metrics += m
    return WindowOutput(project, endpoint_id, start_ms, end_ms, revision, 0, prediction,
                        tuple(results), tuple(metrics), tuple(errors))

