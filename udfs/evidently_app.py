"""Applications built on Evidently (``pip install 'streamdrift[evidently]'``: Evidently 0.7, the
version MLRun supports). Evidently is imported when an application is built, never before, so
the rest of streamdrift does not need it.

:class:`EvidentlyModelMonitoringApplicationBase` gives a subclass's ``do_tracking`` an Evidently
reference/current pair: the endpoint's stored reference sample (up to 10,000 training rows, kept
when the endpoint was created; ``monitoring_context.reference_sample_df``) and the window's
sample (``monitoring_context.sample_df``), restricted to the monitored columns present in both,
typed numeric or categorical as in the reference statistics. :meth:`save_report` keeps a report's
HTML as an artifact file::

    <artifacts_dir>/<project>/<endpoint_id>/<application>/<window end>.html     (e.g. 20240101T001000Z.html)

``artifacts_dir`` is the application's parameter, else its registration's (``streamdrift apps add
--artifacts-dir``), else ``<data_dir>/artifacts`` (:mod:`streamdrift.connectors.app_registry`). A report is a
few MB of HTML (Evidently's scripts included): one per window and endpoint adds up.

:class:`EvidentlyDataDriftApplication` is a complete one: Evidently's ``DataDriftPreset``,
result ``drifted_columns_share`` (data_drift) with the report's path in its extra_data::

    streamdrift apps add evidently-drift streamdrift.udfs.evidently_app:EvidentlyDataDriftApplication

MLRun's ``EvidentlyModelMonitoringApplicationBase`` takes an Evidently workspace and project;
this one writes files instead and takes neither. Its ``log_evidently_object(monitoring_context,
evidently_object, artifact_name)`` is here too (it writes the file and returns its path).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streamdrift.udfs.applications import (
    ModelMonitoringApplicationBase,
    ModelMonitoringApplicationMetric,
    ModelMonitoringApplicationResult,
    MonitoringApplicationContext,
    ResultKindApp,
    ResultStatusApp,
)

__all__ = ["EvidentlyModelMonitoringApplicationBase", "EvidentlyDataDriftApplication", "require_evidently",
           "SUPPORTED_EVIDENTLY", "EvidentlyPair"]

SUPPORTED_EVIDENTLY = "0.7"


def require_evidently():
    """The ``evidently`` module, or an ImportError saying how to install it."""
    try:
        import evidently
    except ImportError as exc:
        raise ImportError("Evidently is not installed: pip install 'streamdrift[evidently]' "
                          f"(Evidently {SUPPORTED_EVIDENTLY}.x) in the environment of the job's Python workers "
                          f"({exc})") from None
    version = getattr(evidently, "__version__", "?")
    if not version.startswith(SUPPORTED_EVIDENTLY + "."):
        raise ImportError(f"Evidently {version} is installed; these applications need {SUPPORTED_EVIDENTLY}.x: "
                          "pip install 'streamdrift[evidently]'")
    return evidently


@dataclasses.dataclass(frozen=True)
class EvidentlyPair:
    """What :meth:`EvidentlyModelMonitoringApplicationBase.evidently_datasets` gives."""

    reference: Any  # evidently.Dataset of the reference sample
    current: Any  # evidently.Dataset of the window's sample
    reference_df: Any  # pandas DataFrames behind them
    current_df: Any
    numeric: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class EvidentlyModelMonitoringApplicationBase(ModelMonitoringApplicationBase):
    """Base of applications that run Evidently on the window's sample against the reference sample.

    :param artifacts_dir: folder of the report files (see the module doc).
    :param columns:       the columns to compare (default: the endpoint's features and outputs
                          that have reference statistics and are in both samples).
    """

    def __init__(self, artifacts_dir: str | None = None, columns: list[str] | None = None):
        require_evidently()
        self.artifacts_dir = artifacts_dir
        self.columns = list(columns) if columns else None

    # ----------------------------------------------------------------- data

    def column_types(self, ctx: MonitoringApplicationContext) -> tuple[list[str], list[str]]:
        """(numeric, categorical) columns to compare, as typed by the reference statistics."""
        outputs = list(ctx.model_endpoint.get("output_names") or [])
        names = self.columns or list(dict.fromkeys([*ctx.feature_names, *outputs])) or list(ctx.feature_stats)
        numeric = [n for n in names if "hist" in (ctx.feature_stats.get(n) or {})]
        categorical = [n for n in names if "categories" in (ctx.feature_stats.get(n) or {})]
        return numeric, categorical

    def evidently_frames(self, ctx: MonitoringApplicationContext):
        """(reference, current, numeric columns, categorical columns): two pandas DataFrames with
        the same columns. ValueError when the endpoint has no reference sample or nothing in common."""
        import pandas as pd

        reference = ctx.reference_sample_df
        if reference is None or not len(reference):
            raise ValueError(f"endpoint {ctx.endpoint_id} has no reference sample: create it with its training "
                             "data (streamdrift endpoints create --reference FILE) to compare samples")
        current = ctx.sample_df
        numeric, categorical = self.column_types(ctx)
        numeric = [c for c in numeric if c in reference.columns and c in current.columns]
        categorical = [c for c in categorical if c in reference.columns and c in current.columns]
        if not numeric and not categorical:
            raise ValueError(f"no monitored column is in both the reference sample ({list(reference.columns)}) "
                             f"and the window's sample ({list(current.columns)})")
        ref = pd.DataFrame(index=reference.index)
        cur = pd.DataFrame(index=current.index)
        for c in numeric:
            ref[c] = pd.to_numeric(reference[c], errors="coerce").astype(float)
            cur[c] = pd.to_numeric(current[c], errors="coerce").astype(float)
        for c in categorical:
            ref[c] = reference[c].astype("string").astype(object)
            cur[c] = current[c].astype("string").astype(object)
        return ref.reset_index(drop=True), cur.reset_index(drop=True), numeric, categorical

    def evidently_datasets(self, ctx: MonitoringApplicationContext) -> EvidentlyPair:
        """The reference/current pair: Evidently ``Dataset`` objects typed by a ``DataDefinition``
        (numeric and categorical columns as in the reference statistics), and their DataFrames."""
        require_evidently()
        from evidently import DataDefinition, Dataset

        ref, cur, numeric, categorical = self.evidently_frames(ctx)
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        return EvidentlyPair(Dataset.from_pandas(ref, data_definition=definition),
                             Dataset.from_pandas(cur, data_definition=definition), ref, cur, numeric, categorical)

    # ----------------------------------------------------------------- artifacts

    def save_report(self, ctx: MonitoringApplicationContext, snapshot: Any, name: str | None = None) -> str:
        """Write an Evidently snapshot's (or legacy report's) HTML to ``ctx.artifact_path(name)``; its path."""
        path = ctx.artifact_path(name, ".html")
        if hasattr(snapshot, "save_html"):
            snapshot.save_html(str(path))
        else:
            path.write_text(snapshot.get_html(), encoding="utf-8")
        return str(path)

    @staticmethod
    def log_evidently_object(monitoring_context: MonitoringApplicationContext, evidently_object: Any,
                             artifact_name: str, unique_per_endpoint: bool = True) -> str:
        """MLRun's method: keep an Evidently report's HTML as this window's artifact ``artifact_name``
        (the file is per endpoint whatever ``unique_per_endpoint``). Returns the file's path."""
        html = evidently_object.get_html_str(as_iframe=False) if hasattr(evidently_object, "get_html_str") \
            else evidently_object.get_html()
        return monitoring_context.log_artifact(artifact_name, body=html.encode("utf-8"), format="html")


def _drift_flag(method: str, score: float, threshold: float) -> bool:
    """Evidently's decision: a p-value drifts below the threshold, a distance from it up."""
    return score < threshold if "p_value" in method else score >= threshold


class EvidentlyDataDriftApplication(EvidentlyModelMonitoringApplicationBase):
    """Evidently's ``DataDriftPreset`` on the window's sample against the reference sample.

    Result ``drifted_columns_share`` (data_drift): the share of compared columns Evidently finds
    drifted; detected from ``drift_share`` (0.5, Evidently's dataset-drift rule), potential from
    one drifted column, else no detection. ``extra_data``: ``report`` (the HTML file, unless
    ``save_html`` is False), ``drifted_columns``, and per column the test, score and threshold.
    Metric ``drifted_columns_count``. ``method``/``threshold`` go to the preset (Evidently picks
    a test per column by type and size when None).
    """

    def __init__(self, artifacts_dir: str | None = None, columns: list[str] | None = None, drift_share: float = 0.5,
                 method: str | None = None, threshold: float | None = None, save_html: bool = True):
        super().__init__(artifacts_dir, columns)
        if not 0 < float(drift_share) <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {drift_share!r}")
        self.drift_share = float(drift_share)
        self.method = method
        self.threshold = threshold
        self.save_html = bool(save_html)

    def do_tracking(self, monitoring_context: MonitoringApplicationContext):
        from evidently import Report
        from evidently.presets import DataDriftPreset

        ctx = monitoring_context
        pair = self.evidently_datasets(ctx)
        preset = DataDriftPreset(columns=pair.columns, drift_share=self.drift_share, method=self.method,
                                 threshold=self.threshold)
        snapshot = Report([preset]).run(current_data=pair.current, reference_data=pair.reference)
        columns: dict[str, dict[str, Any]] = {}
        count = share = None
        for metric in snapshot.dict()["metrics"]:
            config, value = metric.get("config", {}), metric.get("value")
            kind = str(config.get("type", ""))
            if kind.endswith(":DriftedColumnsCount"):
                count, share = float(value["count"]), float(value["share"])
            elif kind.endswith(":ValueDrift"):
                method, threshold = str(config.get("method")), float(config.get("threshold"))
                columns[config["column"]] = {"method": method, "score": float(value), "threshold": threshold,
                                             "drift": _drift_flag(method, float(value), threshold)}
        if share is None:
            raise RuntimeError("Evidently's report has no DriftedColumnsCount metric")
        drifted = sorted(c for c, v in columns.items() if v["drift"])
        status = (ResultStatusApp.detected if share >= self.drift_share
                  else ResultStatusApp.potential_detection if count else ResultStatusApp.no_detection)
        extra: dict[str, Any] = {"drifted_columns": drifted, "columns": columns,
                                 "reference_rows": len(pair.reference_df), "current_rows": len(pair.current_df)}
        if self.save_html:
            extra["report"] = self.save_report(ctx, snapshot)
        return [ModelMonitoringApplicationResult("drifted_columns_share", share, ResultKindApp.data_drift, status, extra),
                ModelMonitoringApplicationMetric("drifted_columns_count", count)]
