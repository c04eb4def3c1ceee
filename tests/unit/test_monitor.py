"""A closed window → result, metric, prediction and error records (streamdrift.udfs.monitor, streamdrift.udfs.applications).

The drift numbers are recomputed here from np.histogram counts with the formulas of DESIGN.md
(p = window counts / non-null count, q = reference counts / count; TVD, Hellinger, symmetric KLD
with zero-numerator terms dropped and zero denominators replaced by 1e-4).
"""

import copy
import datetime as dt
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from streamdrift.udfs.applications import (
    HistogramDataDriftApplication,
    ModelMonitoringApplicationBase,
    ModelMonitoringApplicationMetric,
    ModelMonitoringApplicationResult,
)
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.monitor import monitor_window
from streamdrift.udfs.records import ResultKindApp, ResultStatusApp
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.batch import aggregate_batch

WINDOW_MS = 600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
UTC = dt.timezone.utc
COLORS = ["red", "green", "blue"]


def _training(n=3_000):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(0, 1, n), "y": rng.uniform(10, 20, n),
                         "color": rng.choice(COLORS, n, p=[0.5, 0.3, 0.2])})


REF = feature_stats(_training())
ENDPOINT = {"endpoint_id": "ep", "project": "shop", "feature_names": ["x", "y", "color"],
            "output_names": ["score"], "label_names": [], "feature_stats": REF}


def _window(shift, n_events=400, seed=1, errors=0, latencies=None, endpoint=ENDPOINT):
    """Events in one window; returns (aggregate, rows given, latencies given)."""
    rng = np.random.default_rng(seed)
    payloads, rows_given, lat_given = [], [], []
    for i in range(n_events):
        n = int(rng.integers(1, 4))
        rows = list(zip(rng.normal(shift, 1 + shift, n).tolist(), rng.uniform(10, 20 + 10 * shift, n).tolist(),
                        rng.choice(COLORS + ["violet"] * int(np.ceil(shift * 3)), n).tolist()))
        lat = float(rng.lognormal(7, 0.8)) if latencies is None else latencies[i]
        error = "boom" if i < errors else None
        payloads.append(json.dumps({"endpoint_id": "ep", "timestamp": T0 + i * 1000, "request_id": f"r{i}",
                                    "inputs": rows, "outputs": [0.5] * n, "latency_us": lat, "error": error}))
        lat_given.append(lat)
        if not error:
            rows_given += rows
    catalog = EndpointCatalog(lambda: [endpoint] if endpoint else [])
    (partial,), dead = aggregate_batch(payloads, catalog, WINDOW_MS)
    assert not dead
    return partial.aggregate, rows_given, lat_given


def _expected_drift(rows):
    """(tvd_mean, hellinger_mean, kld_mean) over x, y (numeric) and color (categorical)."""
    ps, qs = [], []
    for j, name in enumerate(("x", "y")):
        counts, edges = REF[name]["hist"]
        window = np.histogram(np.array([r[j] for r in rows]), bins=np.array(edges))[0]
        ps.append(window / len(rows))
        qs.append(np.array(counts) / REF[name]["count"])
    cats = REF["color"]["categories"]
    seen = Counter(r[2] for r in rows)
    ps.append(np.array([seen[c] for c in cats] + [sum(n for c, n in seen.items() if c not in cats)]) / len(rows))
    qs.append(np.array(REF["color"]["category_counts"] + [REF["color"]["other_count"]]) / REF["color"]["count"])
    tvds, hels, klds = [], [], []
    for p, q in zip(ps, qs):
        tvds.append(np.abs(p - q).sum() / 2)
        hels.append(np.sqrt(max(1 - np.sqrt(p * q).sum(), 0)))

        def kl(a, b):
            b = np.where(b == 0, 1e-4, b)
            return sum(ai * np.log(ai / bi) for ai, bi in zip(a, b) if ai != 0)

        klds.append(kl(p, q) + kl(q, p))
    return np.mean(tvds), np.mean(hels), np.mean(klds)


def _status(value):
    return 2 if value >= 0.7 else 1 if value >= 0.5 else 0


def _run(agg, apps, endpoint=ENDPOINT, revision=0):
    return monitor_window(endpoint, "ep", "default-project", T0, T0 + WINDOW_MS, agg, apps, revision)


@pytest.mark.parametrize("shift", [0.0, 0.6, 1.6, 5.0])
def test_default_app_gives_the_drift_of_the_histograms(shift):
    agg, rows, _ = _window(shift)
    out = _run(agg, [HistogramDataDriftApplication()])
    tvd, hel, kld = _expected_drift(rows)
    general = (tvd + hel) / 2
    result, verdict = out.results
    assert result.application_name == "histogram-data-drift" and result.result_name == "general_drift"
    assert verdict.application_name == "histogram-data-drift" and verdict.result_name == "feature_drift"
    assert result.value == pytest.approx(general, rel=1e-9)
    assert result.kind == ResultKindApp.data_drift == 0 and result.status == _status(general)
    assert result.project == "shop" and result.endpoint_id == "ep"
    assert result.start_infer_time == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert result.end_infer_time == dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
    metrics = {m.metric_name: m.value for m in out.metrics}
    assert metrics == pytest.approx({"tvd_mean": tvd, "hellinger_mean": hel, "kld_mean": kld, "invalid_share": 0.0},
                                    rel=1e-9)
    assert out.errors == () and out.revision == 0
    assert "score" in result.extra_data["missing_in_reference"]


def test_the_three_shifts_cover_the_three_statuses():
    statuses = {_run(_window(s)[0], [HistogramDataDriftApplication()]).results[0].status for s in (0.0, 1.6, 5.0)}
    assert statuses == {ResultStatusApp.no_detection, ResultStatusApp.potential_detection, ResultStatusApp.detected}


class Failing(ModelMonitoringApplicationBase):
    NAME = "flaky"

    def do_tracking(self, monitoring_context):
        raise RuntimeError("model registry unreachable")


class Vandal(ModelMonitoringApplicationBase):
    """Changes everything it is given in place, then fails."""

    def do_tracking(self, monitoring_context):
        monitoring_context.feature_stats["x"]["hist"][0][:] = [0] * len(monitoring_context.feature_stats["x"]["hist"][0])
        monitoring_context.feature_stats.pop("y")
        monitoring_context.model_endpoint["feature_stats"].clear()
        monitoring_context.sample_df_stats.clear()
        monitoring_context.sample_df.drop(monitoring_context.sample_df.index, inplace=True)
        monitoring_context.window.accumulator.hist[:] = 0
        raise KeyError("y")


class Counting(ModelMonitoringApplicationBase):
    def do_tracking(self, monitoring_context):
        return {"sample_rows": len(monitoring_context.sample_df), "window_rows": monitoring_context.window.rows}


def test_a_failing_app_is_recorded_and_the_others_go_on():
    agg, rows, _ = _window(0.6)
    out = _run(agg, [Failing(), HistogramDataDriftApplication(), Counting()])
    (error,) = out.errors
    assert error.error_type == "mm-app-failed" and error.application_name == "flaky"
    assert "RuntimeError" in error.message and "model registry unreachable" in error.message
    assert error.endpoint_id == "ep" and error.project == "shop"
    tvd, hel, _ = _expected_drift(rows)
    assert [r.result_name for r in out.results] == ["general_drift", "feature_drift"]
    assert out.results[0].value == pytest.approx((tvd + hel) / 2, rel=1e-9)
    assert {m.metric_name for m in out.metrics} == {"tvd_mean", "hellinger_mean", "kld_mean", "invalid_share",
                                                     "sample_rows", "window_rows"}


def test_an_app_that_changes_its_inputs_cannot_harm_the_others_nor_the_next_window():
    endpoint = copy.deepcopy(ENDPOINT)
    pristine = copy.deepcopy(endpoint)
    agg, rows, _ = _window(0.6, endpoint=endpoint)
    out = _run(agg, [Vandal(), HistogramDataDriftApplication(), Counting()], endpoint=endpoint)
    assert [e.application_name for e in out.errors] == ["Vandal"] and "KeyError" in out.errors[0].message
    tvd, hel, _ = _expected_drift(rows)
    assert out.results[0].value == pytest.approx((tvd + hel) / 2, rel=1e-9)
    counted = {m.metric_name: m.value for m in out.metrics}
    assert counted["sample_rows"] == min(len(rows), 1000) and counted["window_rows"] == len(rows)
    assert endpoint == pristine
    again = _run(agg, [HistogramDataDriftApplication()], endpoint=endpoint)
    assert again.results[0].value == out.results[0].value


def test_the_built_in_app_shares_its_inputs_and_changes_none_of_them():
    """The built-in application gets the catalog's record and the window themselves, not copies
    (BUILT_IN_APPLICATIONS): it must leave both as they were, window after window."""
    endpoint = copy.deepcopy(ENDPOINT)
    pristine = copy.deepcopy(endpoint)
    agg, rows, _ = _window(0.6, endpoint=endpoint)
    before = agg.to_bytes()
    first = _run(agg, [HistogramDataDriftApplication()], endpoint=endpoint)
    second = _run(agg, [HistogramDataDriftApplication()], endpoint=endpoint)
    assert endpoint == pristine and agg.to_bytes() == before
    assert [r.value for r in first.results] == [r.value for r in second.results]
    tvd, hel, _ = _expected_drift(rows)
    assert second.results[0].value == pytest.approx((tvd + hel) / 2, rel=1e-9)


def test_the_built_in_app_runs_in_this_thread_and_user_apps_through_call():
    """The job runs applications through a call with a timeout (a pool thread); the built-in one
    cannot hang and runs in the stage's own thread, so only user applications reach ``call``."""
    import threading

    from streamdrift.operators.app_calls import call_with_timeout

    seen = []

    def call(name, fn, timeout, where=""):
        seen.append(name)
        return call_with_timeout(name, fn, timeout, where)

    class Where(ModelMonitoringApplicationBase):
        def do_tracking(self, monitoring_context):
            return {"in_caller_thread": float(threading.get_ident() == caller)}

    caller = threading.get_ident()
    agg, rows, _ = _window(0.6)
    out = monitor_window(ENDPOINT, "ep", "p", T0, T0 + WINDOW_MS, agg, [HistogramDataDriftApplication(), Where()],
                         call=call)
    assert seen == ["Where"]
    assert {m.metric_name: m.value for m in out.metrics}["in_caller_thread"] == 0.0  # the pool's thread
    tvd, hel, _ = _expected_drift(rows)
    assert out.results[0].value == pytest.approx((tvd + hel) / 2, rel=1e-9)


class VandalDrift(HistogramDataDriftApplication):
    """A subclass of the built-in app that changes its inputs: it gets copies (the rule is by exact class)."""

    def do_tracking(self, monitoring_context):
        out = super().do_tracking(monitoring_context)
        monitoring_context.feature_stats.pop("y")
        monitoring_context.window.accumulator.hist[:] = 0
        return out


def test_a_subclass_of_the_built_in_app_gets_copies():
    endpoint = copy.deepcopy(ENDPOINT)
    pristine = copy.deepcopy(endpoint)
    agg, rows, _ = _window(0.6, endpoint=endpoint)
    before = agg.to_bytes()
    _run(agg, [VandalDrift()], endpoint=endpoint)
    assert endpoint == pristine and agg.to_bytes() == before


class Metrics(ModelMonitoringApplicationBase):
    NAME = "business_kpis"

    def do_tracking(self, monitoring_context):
        return {"conversion": 0.125, "revenue": 3}


def test_an_app_returning_a_dict_gives_metrics():
    agg, _, _ = _window(0.0)
    out = _run(agg, [Metrics()])
    assert out.results == () and out.errors == ()
    got = {(m.application_name, m.metric_name): m.value for m in out.metrics}
    assert got == {("business_kpis", "conversion"): 0.125, ("business_kpis", "revenue"): 3.0}
    assert all(m.end_infer_time == dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC) for m in out.metrics)


class Returns(ModelMonitoringApplicationBase):
    def __init__(self, value):
        self.value = value

    def do_tracking(self, monitoring_context):
        return self.value


def test_an_app_returning_results_and_metrics():
    result = ModelMonitoringApplicationResult("latency_slo", 0.93, ResultKindApp.system_performance,
                                              ResultStatusApp.potential_detection, {"p99_ms": 12})
    out = _run(_window(0.0)[0], [Returns([result, ModelMonitoringApplicationMetric("qps", 41.5)])])
    (r,) = out.results
    assert (r.application_name, r.result_name, r.value, r.kind, r.status, r.extra_data) == (
        "Returns", "latency_slo", 0.93, 3, 1, {"p99_ms": 12})
    assert [(m.metric_name, m.value) for m in out.metrics] == [("qps", 41.5)]


@pytest.mark.parametrize("garbage", ["drift!", 0.4, [1, 2], [object()], {"bad name": 1.0}, {"m": "high"},
                                     {"m": None}])
def test_garbage_from_an_app_is_mm_app_failed(garbage):
    out = _run(_window(0.0)[0], [Returns(garbage), HistogramDataDriftApplication()])
    assert [(e.application_name, e.error_type) for e in out.errors] == [("Returns", "mm-app-failed")]
    assert [r.result_name for r in out.results] == ["general_drift", "feature_drift"]
    assert {m.application_name for m in out.metrics} == {"histogram-data-drift"}


def test_nothing_returned_is_nothing_recorded():
    out = _run(_window(0.0)[0], [Returns(None), Returns([])])
    assert out.results == out.metrics == out.errors == ()


def _check_prediction(prediction, agg, rows, lat, n_events, errors):
    assert (prediction.count, prediction.events, prediction.error_count) == (len(rows), n_events, errors)
    assert prediction.latency_count == len(lat)
    assert prediction.latency_mean_us == pytest.approx(np.mean(lat))
    for q, got in ((50, prediction.latency_p50_us), (95, prediction.latency_p95_us), (99, prediction.latency_p99_us)):
        assert got == pytest.approx(np.percentile(lat, q), rel=0.04)
    assert prediction.first_request == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert prediction.last_request == dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=n_events - 1)
    assert prediction.start_infer_time == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert prediction.end_infer_time == dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize("endpoint", [None, {"endpoint_id": "ep", "project": "shop", "feature_stats": {}}])
def test_without_reference_only_the_prediction_record(endpoint):
    rng = np.random.default_rng(5)
    lat = rng.lognormal(6, 1, 500).tolist()
    agg, rows, lat = _window(0.0, n_events=500, errors=20, latencies=lat, endpoint=endpoint)
    out = _run(agg, [HistogramDataDriftApplication(), Metrics()], endpoint=endpoint)
    assert out.results == out.metrics == out.errors == ()
    assert out.project == ("default-project" if endpoint is None else "shop")
    _check_prediction(out.prediction, agg, rows, lat, 500, 20)


def test_prediction_record_is_there_with_a_reference_too():
    rng = np.random.default_rng(6)
    lat = rng.lognormal(9, 0.5, 300).tolist()
    agg, rows, lat = _window(0.0, n_events=300, errors=7, latencies=lat)
    out = _run(agg, [HistogramDataDriftApplication()], revision=2)
    assert out.revision == 2 and out.prediction.project == "shop"
    _check_prediction(out.prediction, agg, rows, lat, 300, 7)


def test_the_writer_key_of_an_endpoint_is_the_same_in_every_worker_process():
    """Windows of one endpoint must reach one writer (in order): the bucket is CRC-32 of the id,
    not Python's hash(), which each process seeds at random."""
    import os
    import subprocess
    import sys
    import zlib

    from streamdrift.operators.monitor import WriterBucket

    ids = ["ep-1", "模型-ünïcødé", "a" * 255, "x\udc80y"]
    here = [WriterBucket(8)(e) for e in ids]
    assert here == [zlib.crc32(e.encode("utf-8", "surrogatepass")) % 8 for e in ids]
    code = ("import sys; from streamdrift.operators.monitor import WriterBucket; "
            f"print([WriterBucket(8)(e) for e in {ids!r}])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out.strip() == str(here)
    spread = {WriterBucket(8)(f"ep-{i}") for i in range(200)}
    assert spread == set(range(8))


def test_the_writer_bucket_of_an_endpoint_is_the_key_the_job_chose_for_it():
    import zlib

    from streamdrift.operators.monitor import WriterBucket

    keys = [4, 0, 8, 2, 5]
    ids = [f"ep-{i}" for i in range(50)]
    got = [WriterBucket(keys)(e) for e in ids]
    assert got == [keys[zlib.crc32(e.encode()) % 5] for e in ids]
    assert set(got) == set(keys)
    with pytest.raises(ValueError, match="at least one bucket"):
        WriterBucket([])
