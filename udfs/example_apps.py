"""Two example applications, ready to register:

    streamdrift apps add data-quality streamdrift.udfs.example_apps:DataQualityApplication
    streamdrift apps add prediction-drift streamdrift.udfs.example_apps:PredictionDistributionApplication \\
        --param prediction_column=prediction

:class:`DataQualityApplication` (result ``data_quality``, kind ``mm_app_anomaly``) checks every
monitored column of the window against the reference: the null rate (from all rows), the share of
numeric values outside the reference's [min, max] (from the window's sample) and the share of
categorical values never seen in training (from all rows).

:class:`PredictionDistributionApplication` (result ``prediction_shift``, kind ``concept_drift``)
compares the share of each predicted class of a classifier in the window with the reference.

Both use only what any application gets (:class:`streamdrift.udfs.applications.MonitoringApplicationContext`),
so they are also examples of writing one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from streamdrift.udfs.applications import (
    ModelMonitoringApplicationBase,
    ModelMonitoringApplicationMetric,
    ModelMonitoringApplicationResult,
    MonitoringApplicationContext,
    ResultKindApp,
    ResultStatusApp,
)

__all__ = ["DataQualityApplication", "PredictionDistributionApplication"]


def _status(value: float, potential: float, detected: float) -> ResultStatusApp:
    if value >= detected:
        return ResultStatusApp.detected
    if value >= potential:
        return ResultStatusApp.potential_detection
    return ResultStatusApp.no_detection


def _null_rate(stats: Mapping[str, Any]) -> float | None:
    count, nulls = stats.get("count", 0) or 0, stats.get("nulls", 0) or 0
    return nulls / (count + nulls) if count + nulls else None


def _examples(values, limit: int = 5) -> list:
    out = []
    for v in values:
        v = v.item() if hasattr(v, "item") else v
        if v not in out:
            out.append(v)
        if len(out) == limit:
            break
    return out


class DataQualityApplication(ModelMonitoringApplicationBase):
    """Null rate, out-of-range share and unseen categories of each monitored column.

    Per column (features and outputs that have reference statistics, or ``columns``):

    * ``null_rate``: nulls / rows of the window (all rows); a violation when it passes the
      reference's null rate by more than ``max_null_increase`` (default 0.05);
    * ``out_of_range``: numeric columns, the share of the sample's non-null values below the
      reference ``min`` or above its ``max``; a violation above ``max_out_of_range`` (0.05);
    * ``unseen``: categorical columns whose reference kept every category (``other_count`` 0):
      the share of the window's values (all rows) not among them, with up to five examples from
      the sample; a violation above ``max_unseen`` (0.01). Columns whose reference kept only the
      top categories are not checked for this (``unseen`` is None).

    Result ``data_quality``, kind ``mm_app_anomaly``: the worst measure / its limit over every
    check and column (1.0 = a limit just reached); status detected from 1.0, potential from 0.5,
    irrelevant when no column could be checked. ``extra_data``: the per-column measures and the
    violations as sentences. Metrics: ``null_rate`` (the mean over the columns),
    ``out_of_range_share`` and ``unseen_category_share`` (the worst column's).
    """

    def __init__(self, max_null_increase: float = 0.05, max_out_of_range: float = 0.05, max_unseen: float = 0.01,
                 columns: list[str] | None = None):
        for name, value in (("max_null_increase", max_null_increase), ("max_out_of_range", max_out_of_range),
                            ("max_unseen", max_unseen)):
            if not 0 < float(value) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")
        self.max_null_increase = float(max_null_increase)
        self.max_out_of_range = float(max_out_of_range)
        self.max_unseen = float(max_unseen)
        self.columns = list(columns) if columns else None

    def _columns(self, ctx: MonitoringApplicationContext) -> list[str]:
        if self.columns:
            return [c for c in self.columns if c in ctx.feature_stats]
        outputs = list(ctx.model_endpoint.get("output_names") or [])
        names = [*ctx.feature_names, *outputs] or list(ctx.feature_stats)
        return [c for c in dict.fromkeys(names) if c in ctx.feature_stats]

    def do_tracking(self, monitoring_context: MonitoringApplicationContext):
        ctx = monitoring_context
        window_stats = ctx.sample_df_stats
        sample = ctx.sample_df
        columns: dict[str, dict[str, Any]] = {}
        violations: list[str] = []
        severity = 0.0
        for name in self._columns(ctx):
            ref, cur = ctx.feature_stats[name], window_stats.get(name)
            if cur is None:
                continue
            entry: dict[str, Any] = {}
            rate, ref_rate = _null_rate(cur), _null_rate(ref) or 0.0
            if rate is not None:
                entry.update(null_rate=rate, reference_null_rate=ref_rate)
                excess = max(0.0, rate - ref_rate)
                severity = max(severity, excess / self.max_null_increase)
                if excess > self.max_null_increase:
                    violations.append(f"{name}: null rate {rate:.3f}, reference {ref_rate:.3f}")
            if "hist" in ref and "min" in ref and "max" in ref and name in sample:
                import pandas as pd

                values = pd.to_numeric(sample[name], errors="coerce").dropna()
                if len(values):
                    outside = values[(values < ref["min"]) | (values > ref["max"])]
                    share = len(outside) / len(values)
                    entry.update(out_of_range=share, reference_min=ref["min"], reference_max=ref["max"],
                                 out_of_range_examples=_examples(outside.tolist()))
                    severity = max(severity, share / self.max_out_of_range)
                    if share > self.max_out_of_range:
                        violations.append(f"{name}: {share:.1%} of the values outside the reference range "
                                          f"[{ref['min']:g}, {ref['max']:g}]")
            if "categories" in ref and "categories" in cur:
                complete = not ref.get("other_count")
                count = cur.get("count", 0) or 0
                if complete and count:
                    share = (cur.get("other_count", 0) or 0) / count
                    known = {str(c) for c in ref["categories"]}
                    seen = sample[name].dropna() if name in sample else []
                    entry.update(unseen=share, unseen_examples=_examples(v for v in seen if str(v) not in known))
                    severity = max(severity, share / self.max_unseen)
                    if share > self.max_unseen:
                        violations.append(f"{name}: {share:.1%} of the values are categories not seen in training")
                else:
                    entry["unseen"] = None
            if entry:
                columns[name] = entry
        if not columns:
            return ModelMonitoringApplicationResult(
                "data_quality", 0.0, ResultKindApp.mm_app_anomaly, ResultStatusApp.irrelevant,
                {"reason": "no monitored column has statistics in both the reference and the window"})
        status = _status(severity, 0.5, 1.0)
        out: list = [ModelMonitoringApplicationResult("data_quality", severity, ResultKindApp.mm_app_anomaly, status,
                                                      {"columns": columns, "violations": violations})]
        rates = [c["null_rate"] for c in columns.values() if "null_rate" in c]
        if rates:
            out.append(ModelMonitoringApplicationMetric("null_rate", sum(rates) / len(rates)))
        ranges = [c["out_of_range"] for c in columns.values() if "out_of_range" in c]
        if ranges:
            out.append(ModelMonitoringApplicationMetric("out_of_range_share", max(ranges)))
        unseen = [c["unseen"] for c in columns.values() if c.get("unseen") is not None]
        if unseen:
            out.append(ModelMonitoringApplicationMetric("unseen_category_share", max(unseen)))
        return out


def _label(value: Any) -> str:
    """A class as text: 1, 1.0 and "1" are the same class."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _shares(counts: Mapping[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


OTHER = "__other__"


class PredictionDistributionApplication(ModelMonitoringApplicationBase):
    """Share of each predicted class in the window against the reference (classifiers).

    ``prediction_column`` (default: the endpoint's first output) holds the predicted class. The
    reference shares come from the reference statistics when the column is categorical there
    (exact), else from the stored reference sample (``reference_sample_df``); the window's from
    its statistics (all rows) when categorical, else from its sample. Classes beyond the
    reference's kept categories count as ``__other__`` on both sides.

    Result ``prediction_shift``, kind ``concept_drift``: the total variation distance between the
    two distributions (half the sum of the share differences, 0 to 1); status potential from
    ``potential`` (0.1), detected from ``detected`` (0.2); irrelevant when there is no reference
    for the column. ``extra_data``: both distributions, classes new in the window and classes of
    the reference absent from it. Metrics: ``share_<class>`` for each class of the window (at
    most ``max_class_metrics``, names made of letters, digits and ``_``).
    """

    def __init__(self, prediction_column: str | None = None, potential: float = 0.1, detected: float = 0.2,
                 max_class_metrics: int = 20):
        if not 0 < float(potential) <= float(detected) <= 1:
            raise ValueError(f"need 0 < potential <= detected <= 1, got {potential!r} and {detected!r}")
        self.prediction_column = prediction_column
        self.potential = float(potential)
        self.detected = float(detected)
        self.max_class_metrics = int(max_class_metrics)

    def _column(self, ctx: MonitoringApplicationContext) -> str:
        if self.prediction_column:
            return self.prediction_column
        outputs = list(ctx.model_endpoint.get("output_names") or [])
        if not outputs:
            raise ValueError("the endpoint has no outputs: register the application with "
                             "--param prediction_column=NAME")
        return outputs[0]

    @staticmethod
    def _from_stats(stats: Mapping[str, Any] | None) -> dict[str, float] | None:
        if not stats or "categories" not in stats:
            return None
        counts = {_label(c): float(n) for c, n in zip(stats["categories"], stats["category_counts"])}
        if stats.get("other_count"):
            counts[OTHER] = float(stats["other_count"])
        return counts

    @staticmethod
    def _from_rows(frame, column: str) -> dict[str, float] | None:
        if frame is None or column not in getattr(frame, "columns", ()):
            return None
        counts: dict[str, float] = {}
        for value in frame[column].dropna():
            key = _label(value)
            counts[key] = counts.get(key, 0.0) + 1.0
        return counts

    def do_tracking(self, monitoring_context: MonitoringApplicationContext):
        ctx = monitoring_context
        column = self._column(ctx)
        reference, ref_source = self._from_stats(ctx.feature_stats.get(column)), "reference statistics"
        if reference is None:
            reference, ref_source = self._from_rows(ctx.reference_sample_df, column), "reference sample"
        if not reference:
            return ModelMonitoringApplicationResult(
                "prediction_shift", 0.0, ResultKindApp.concept_drift, ResultStatusApp.irrelevant,
                {"column": column, "reason": f"no reference distribution of {column!r}: neither categorical "
                                             "statistics nor a reference sample with that column"})
        window, source = None, "window statistics (all rows)"
        if "categories" in (ctx.feature_stats.get(column) or {}):
            window = self._from_stats(ctx.sample_df_stats.get(column))
        if window is None:
            window, source = self._from_rows(ctx.sample_df, column), "window sample"
        if not window:
            return ModelMonitoringApplicationResult(
                "prediction_shift", 0.0, ResultKindApp.concept_drift, ResultStatusApp.irrelevant,
                {"column": column, "reason": f"no predictions in column {column!r} in this window"})
        ref_shares, cur_shares = _shares(reference), _shares(window)
        classes = sorted(set(ref_shares) | set(cur_shares))
        tvd = 0.5 * sum(abs(cur_shares.get(c, 0.0) - ref_shares.get(c, 0.0)) for c in classes)
        tvd = min(1.0, max(0.0, tvd)) if math.isfinite(tvd) else 0.0
        out: list = [ModelMonitoringApplicationResult(
            "prediction_shift", tvd, ResultKindApp.concept_drift, _status(tvd, self.potential, self.detected),
            {"column": column, "window": cur_shares, "reference": ref_shares, "window_source": source,
             "reference_source": ref_source, "new_classes": sorted(set(cur_shares) - set(ref_shares)),
             "missing_classes": sorted(set(ref_shares) - set(cur_shares))})]
        names: dict[str, str] = {}
        for cls in sorted(cur_shares, key=lambda c: -cur_shares[c])[: self.max_class_metrics]:
            metric = "share_" + re.sub(r"[^a-zA-Z0-9_]", "_", cls)[:100]
            if metric not in names.values():
                names[cls] = metric
                out.append(ModelMonitoringApplicationMetric(metric, cur_shares[cls]))
        return out
