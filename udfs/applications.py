"""Monitoring applications: MLRun's base class and result types, and the built-in drift app.

An application gets a :class:`MonitoringContext` per endpoint and window and returns, from
``do_tracking``, one result, a list of results and metrics, or a dict name → value (metrics).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from udfs.histogram_drift import DriftClassifier, drift_from_accumulator
from udfs.records import (
    MetricRecord,
    ResultKindApp,
    ResultRecord,
    ResultStatusApp,
    validate_name,
)


@dataclasses.dataclass(frozen=True)
class ModelMonitoringApplicationResult:
    name: str
    value: float
    kind: ResultKindApp
    status: ResultStatusApp
    extra_data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.name, "result name")


@dataclasses.dataclass(frozen=True)
class ModelMonitoringApplicationMetric:
    name: str
    value: float

    def __post_init__(self) -> None:
        validate_name(self.name, "metric name")


@dataclasses.dataclass
class MonitoringContext:
    """What an application sees of one endpoint's window (MLRun's ``MonitoringApplicationContext``)."""

    application_name: str
    project_name: str
    endpoint_id: str
    model_endpoint: Mapping[str, Any]
    start_infer_time: dt.datetime
    end_infer_time: dt.datetime
    feature_stats: Mapping[str, Any]
    sample_df_stats: Mapping[str, Any]
    sample_df: Any  # pandas DataFrame: the window's bounded uniform sample
    feature_names: list[str]
    label_names: list[str]
    window: Any = None  # the udfs.window.WindowAggregate
    logger: logging.Logger = dataclasses.field(default_factory=lambda: logging.getLogger("streamdrift.app"))

    @staticmethod
    def dict_to_histogram(stats: Mapping[str, Any]):
        """``{feature: {"hist": [counts, edges]}}`` → pandas DataFrame of counts per feature (MLRun's)."""
        import pandas as pd

        return pd.DataFrame({name: s["hist"][0] for name, s in stats.items() if "hist" in s})


class ModelMonitoringApplicationBase:
    """Subclass and implement :meth:`do_tracking`. ``NAME`` defaults to the class name."""

    NAME: str | None = None

    def do_tracking(self, monitoring_context: MonitoringContext):  # pragma: no cover - abstract
        raise NotImplementedError


class HistogramDataDriftApplication(ModelMonitoringApplicationBase):
    """The default application: per-column TVD, Hellinger and KLD against the reference histograms.

    Metrics ``tvd_mean``, ``hellinger_mean``, ``kld_mean``; result ``general_drift`` (data_drift)
    = (tvd_mean + hellinger_mean) / 2, status by thresholds potential 0.5 / detected 0.7.
    """

    NAME = "histogram-data-drift"

    def __init__(self, potential: float = 0.5, detected: float = 0.7, include_categorical: bool = True):
        self.classifier = DriftClassifier(potential, detected)
        self.include_categorical = include_categorical

    def do_tracking(self, monitoring_context: MonitoringContext):
        window = monitoring_context.window
        if window is None or window.accumulator is None or not monitoring_context.feature_stats:
            return []
        report = drift_from_accumulator(monitoring_context.feature_stats, window.accumulator,
                                        classifier=self.classifier, include_categorical=self.include_categorical)
        if report.general_drift is None:
            return []
        details = report.to_dict()
        details["missing_in_reference"] = sorted({*details.get("missing_in_reference", ()), *window.unknown_columns})
        out: list = [ModelMonitoringApplicationResult(
            "general_drift", report.general_drift, ResultKindApp.data_drift, ResultStatusApp(int(report.status)),
            extra_data=details)]
        out += [ModelMonitoringApplicationMetric(name, value) for name, value in report.metrics.items()
                if value is not None]
        return out


def app_name(app: ModelMonitoringApplicationBase) -> str:
    return app.NAME or type(app).__name__


def normalise_output(output: Any, context: MonitoringContext) -> tuple[list[ResultRecord], list[MetricRecord]]:
    """An application's return value → result and metric records. Raises ValueError for garbage."""
    if output is None:
        items: list = []
    elif isinstance(output, Mapping):
        items = [ModelMonitoringApplicationMetric(str(k), float(v)) for k, v in output.items()]
    elif isinstance(output, (list, tuple)):
        items = list(output)
    else:
        items = [output]
    results, metrics = [], []
    common = dict(project=context.project_name, endpoint_id=context.endpoint_id,
                  application_name=context.application_name, start_infer_time=context.start_infer_time,
                  end_infer_time=context.end_infer_time)
    for item in items:
        if isinstance(item, ModelMonitoringApplicationResult):
            results.append(ResultRecord(result_name=item.name, kind=int(item.kind), status=int(item.status),
                                        value=float(item.value), extra_data=dict(item.extra_data), **common))
        elif isinstance(item, ModelMonitoringApplicationMetric):
            metrics.append(MetricRecord(metric_name=item.name, value=float(item.value), **common))
        else:
            raise ValueError(f"application {context.application_name!r} returned {type(item).__name__}: "
                             "return results, metrics, a list of them, or a dict of metric values")
    return results, metrics
