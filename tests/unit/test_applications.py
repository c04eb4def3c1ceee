"""Applications as a user writes, registers and runs them: return forms, names, isolation (errors,
garbage, timeouts), the registry (built-in app on by default, disable, user modules by path,
broken registrations), the ``streamdrift apps`` command, and the two example applications.

Windows are real aggregates of JSON events (streamdrift.udfs.batch.aggregate_batch); stores are SQLite files.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from streamdrift.connectors import app_registry
from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.jobs import apps_cli
from streamdrift.udfs.applications import (
    HistogramDataDriftApplication,
    ModelMonitoringApplicationBase,
    ModelMonitoringApplicationMetric,
    ModelMonitoringApplicationResult,
    MonitoringApplicationContext,
    ResultKindApp,
    ResultStatusApp,
)
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.example_apps import DataQualityApplication, PredictionDistributionApplication
from streamdrift.operators.app_calls import call_with_timeout, hung_applications
from streamdrift.udfs.monitor import monitor_window
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.batch import aggregate_batch

WINDOW_MS = 600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
UTC = dt.timezone.utc
COLORS = ["red", "green", "blue"]

# the built-in application's results, in the order it returns them
BUILTIN_RESULTS = [("histogram-data-drift", "general_drift"), ("histogram-data-drift", "feature_drift")]


def _training(n=3_000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(0, 1, n), "y": rng.uniform(10, 20, n),
                         "color": rng.choice(COLORS, n, p=[0.5, 0.3, 0.2]),
                         "label": rng.choice(["cat", "dog"], n, p=[0.7, 0.3])})


TRAIN = _training()
ENDPOINT = {"endpoint_id": "ep", "project": "shop", "model_name": "pets", "feature_names": ["x", "y", "color"],
            "output_names": ["label"], "label_names": [], "feature_stats": feature_stats(TRAIN)}


def _window(n=400, seed=1, shift=0.0, nulls=0.0, out_of_range=0.0, unseen=0.0, dogs=0.3, endpoint=ENDPOINT):
    """One window of ``n`` single-row events; returns the aggregate."""
    rng = np.random.default_rng(seed)
    payloads = []
    for i in range(n):
        x = float(rng.normal(shift, 1))
        if rng.uniform() < nulls:
            x = None
        y = float(rng.uniform(10, 20))
        if rng.uniform() < out_of_range:
            y = float(rng.uniform(25, 30))
        color = str(rng.choice(COLORS)) if rng.uniform() >= unseen else "violet"
        label = "dog" if rng.uniform() < dogs else "cat"
        payloads.append(json.dumps({"endpoint_id": "ep", "timestamp": T0 + i * 500, "request_id": f"r{i}",
                                    "inputs": [[x, y, color]], "outputs": [label]}))
    catalog = EndpointCatalog(lambda: [endpoint])
    (partial,), dead = aggregate_batch(payloads, catalog, WINDOW_MS)
    assert not dead
    return partial.aggregate


AGG = _window()


def _run(apps, agg=AGG, endpoint=ENDPOINT, **kw):
    """The applications run on a window as the job runs them (each within its timeout)."""
    return monitor_window(endpoint, "ep", "default", T0, T0 + WINDOW_MS, agg, apps, call=call_with_timeout, **kw)


class Returns(ModelMonitoringApplicationBase):
    def __init__(self, value, name=None):
        self.value = value
        if name:
            self.NAME = name

    def do_tracking(self, monitoring_context):
        return self.value() if callable(self.value) else self.value


# --------------------------------------------------------------------------- return forms


def test_an_mlrun_style_app_sees_mlrun_context_and_its_single_result_is_stored(caplog):
    seen = {}

    class MyApp(ModelMonitoringApplicationBase):  # as in MLRun's docstring, imports changed
        def do_tracking(self, monitoring_context: MonitoringApplicationContext) -> ModelMonitoringApplicationResult:
            monitoring_context.logger.info("Running application",
                                           application_name=monitoring_context.application_name)
            hist = monitoring_context.dict_to_histogram(monitoring_context.feature_stats)
            seen.update(start=monitoring_context.start_infer_time, end=monitoring_context.end_infer_time,
                        rows=len(monitoring_context.sample_df), columns=set(monitoring_context.sample_df.columns),
                        hist_sums=hist.sum().round(9).to_dict(), endpoint_name=monitoring_context.endpoint_name,
                        spec_features=monitoring_context.model_endpoint.spec.feature_names,
                        uid=monitoring_context.model_endpoint.metadata.uid,
                        window_x_count=monitoring_context.sample_df_stats["x"]["count"],
                        feature_names=monitoring_context.feature_names)
            return ModelMonitoringApplicationResult(name="data_drift_test", value=0.5,
                                                    kind=ResultKindApp.data_drift, status=ResultStatusApp.detected)

    with caplog.at_level("INFO", logger="streamdrift.app"):
        out = _run([MyApp()])
    assert out.errors == ()
    (r,) = out.results
    assert (r.application_name, r.result_name, r.value, r.kind, r.status) == ("MyApp", "data_drift_test", 0.5, 0, 2)
    assert r.end_infer_time == dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC) and type(r.end_infer_time) is dt.datetime
    assert seen["start"] == pd.Timestamp("2024-01-01T00:00:00Z") and isinstance(seen["end"], pd.Timestamp)
    assert seen["rows"] == 400 and seen["columns"] == {"x", "y", "color", "label"}
    assert seen["hist_sums"] == {"x": 1.0, "y": 1.0}  # MLRun's dict_to_histogram: probabilities
    assert seen["endpoint_name"] == "pets" and seen["uid"] == "ep"
    assert seen["spec_features"] == seen["feature_names"] == ["x", "y", "color"]
    assert seen["window_x_count"] == 400
    assert 'Running application {"application_name": "MyApp"}' in caplog.text


def test_a_list_of_results_and_metrics_and_a_dict_of_metrics():
    both = [ModelMonitoringApplicationResult("a", 1, ResultKindApp.model_performance, ResultStatusApp.no_detection,
                                             {"n": np.int64(3), "arr": np.array([0.5, np.nan])}),
            ModelMonitoringApplicationMetric("m", np.float32(2.5))]
    out = _run([Returns(both, "listed"), Returns({"k1": 1, "k2": np.float64(0.25)}, "dicted"),
                Returns(tuple(both), "tupled"), Returns(None, "nothing"), Returns([], "empty")])
    assert out.errors == ()
    assert sorted((r.application_name, r.result_name, r.kind, r.extra_data["n"]) for r in out.results) == [
        ("listed", "a", 2, 3), ("tupled", "a", 2, 3)]
    assert out.results[0].extra_data["arr"] == [0.5, None]  # numpy made JSON, NaN as null
    json.dumps(out.results[0].extra_data, allow_nan=False)
    assert sorted((m.application_name, m.metric_name, m.value) for m in out.metrics) == [
        ("dicted", "k1", 1.0), ("dicted", "k2", 0.25), ("listed", "m", 2.5), ("tupled", "m", 2.5)]
    plain = {"columns": {"x": {"tvd": float("nan"), "n": 3, "ok": True, "tags": ["a", float("-inf")]}}, 7: None}
    out = _run([Returns(ModelMonitoringApplicationResult("a", 1, 0, 0, plain), "plain")])
    # plain Python values as numpy's: non-finite floats null, keys strings, the rest as given
    assert out.results[0].extra_data == {"columns": {"x": {"tvd": None, "n": 3, "ok": True, "tags": ["a", None]}},
                                         "7": None}
    assert type(out.results[0].extra_data["columns"]["x"]["ok"]) is bool


@pytest.mark.parametrize("make", [
    lambda: ModelMonitoringApplicationResult("1st", 0.1, 0, 0),
    lambda: ModelMonitoringApplicationResult("has space", 0.1, 0, 0),
    lambda: ModelMonitoringApplicationResult("a-b", 0.1, 0, 0),
    lambda: ModelMonitoringApplicationMetric("é", 1.0),
    lambda: ModelMonitoringApplicationMetric("x" * 129, 1.0),
    lambda: ModelMonitoringApplicationResult("ok", 0.1, 7, 0),
    lambda: ModelMonitoringApplicationResult("ok", 0.1, ResultKindApp.data_drift, 3),
])
def test_invalid_names_kinds_and_statuses_are_refused_at_construction(make):
    with pytest.raises(ValueError):
        make()


def test_valid_names_and_mlrun_values():
    r = ModelMonitoringApplicationResult("_Drift_2", 0.1, 4, -1)
    assert r.kind is ResultKindApp.mm_app_anomaly and r.status is ResultStatusApp.irrelevant
    assert [(k.name, k.value) for k in ResultKindApp] == [
        ("data_drift", 0), ("concept_drift", 1), ("model_performance", 2), ("system_performance", 3),
        ("mm_app_anomaly", 4)]
    assert [(s.name, s.value) for s in ResultStatusApp] == [
        ("irrelevant", -1), ("no_detection", 0), ("potential_detection", 1), ("detected", 2)]


def _result(name="r", value=0.5, extra=None):
    r = ModelMonitoringApplicationResult("r", 0.5, 0, 0, extra or {})
    r.name, r.value = name, value  # changed after construction, as a careless app might
    return r


@pytest.mark.parametrize("garbage, reason", [
    (lambda: [_result(name="bad name")], "result name 'bad name' is invalid"),
    (lambda: [_result(value="0.5")], "must be a number"),
    (lambda: [_result(extra={"obj": object()})], "JSON cannot hold"),
    (lambda: [_result("dup"), _result("dup")], "['dup'] more than once"),
    (lambda: {"m": [1, 2]}, "must be a number"),
    (lambda: "0.7", "returned str"),
    (lambda: {"x" * 200: 1.0}, "at most 128"),
])
def test_garbage_is_mm_app_failed_with_the_reason_and_others_go_on(garbage, reason):
    out = _run([Returns(garbage, "sloppy"), HistogramDataDriftApplication()])
    (error,) = out.errors
    assert (error.application_name, error.error_type, error.endpoint_id) == ("sloppy", "mm-app-failed", "ep")
    assert reason in error.message
    assert [(r.application_name, r.result_name) for r in out.results] == BUILTIN_RESULTS


def test_an_app_with_a_name_the_stores_refuse_is_reported_under_a_valid_name():
    class Weird(Returns):
        NAME = "my app!"

    out = _run([Weird(lambda: 1 / 0)])
    (error,) = out.errors
    assert error.application_name == "my_app_" and "ZeroDivisionError" in error.message


# --------------------------------------------------------------------------- failures and timeouts


def test_a_raising_app_gives_its_exception_and_the_others_results():
    def boom():
        raise ConnectionError("feature store unreachable")

    out = _run([Returns(boom, "flaky"), HistogramDataDriftApplication(), Returns({"ok": 1}, "fine")])
    (error,) = out.errors
    assert error.application_name == "flaky" and error.message == "ConnectionError: feature store unreachable"
    assert error.time == dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
    assert {m.application_name for m in out.metrics} == {"histogram-data-drift", "fine"}


def test_system_exit_from_an_app_is_its_failure_not_the_jobs():
    def leave():
        raise SystemExit(3)

    out = _run([Returns(leave, "quitter"), Returns({"ok": 1}, "fine2")])
    assert [e.application_name for e in out.errors] == ["quitter"] and "SystemExit" in out.errors[0].message
    assert [m.application_name for m in out.metrics] == ["fine2"]


def test_called_in_this_thread_the_isolation_is_the_same():
    """monitor_window's default call (no executor, no timeout): a raising or quitting application
    is still its own failure."""
    def leave():
        raise SystemExit(3)

    def boom():
        raise ConnectionError("feature store unreachable")

    out = monitor_window(ENDPOINT, "ep", "default", T0, T0 + WINDOW_MS, AGG,
                         [Returns(leave, "quitter"), Returns(boom, "flaky"), Returns({"ok": 1}, "fine")])
    assert {e.application_name: e.message for e in out.errors} == {
        "quitter": "RuntimeError: SystemExit: 3", "flaky": "ConnectionError: feature store unreachable"}
    assert [m.application_name for m in out.metrics] == ["fine"]


def test_a_hanging_app_times_out_is_not_called_again_while_stuck_then_runs_again():
    release = threading.Event()
    calls = []
    name = f"hangs-{uuid.uuid4().hex[:6]}"

    class Hangs(ModelMonitoringApplicationBase):
        NAME = name
        timeout_seconds = 1

        def do_tracking(self, monitoring_context):
            calls.append(monitoring_context.end_infer_time)
            if len(calls) == 1:
                release.wait(30)
            return {"calls": len(calls)}

    hangs = Hangs()
    try:
        started = time.monotonic()
        first = _run([hangs, HistogramDataDriftApplication()])
        took = time.monotonic() - started
        assert 1.0 <= took < 5.0
        (error,) = first.errors
        assert error.application_name == name and error.error_type == "mm-app-failed"
        assert "timed out after 1 s" in error.message
        assert [(r.application_name, r.result_name) for r in first.results] == BUILTIN_RESULTS
        assert name in hung_applications()

        started = time.monotonic()
        second = _run([hangs, HistogramDataDriftApplication()])  # the first call still hangs
        assert time.monotonic() - started < 2.0
        assert "still running" in second.errors[0].message and len(calls) == 1
        assert [(r.application_name, r.result_name) for r in second.results] == BUILTIN_RESULTS
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while name in hung_applications() and time.monotonic() < deadline:
        time.sleep(0.05)
    third = _run([hangs])
    assert third.errors == () and [(m.metric_name, m.value) for m in third.metrics] == [("calls", 2.0)]


def test_no_timeout_when_timeout_seconds_is_none():
    class Slow(ModelMonitoringApplicationBase):
        timeout_seconds = None

        def do_tracking(self, monitoring_context):
            time.sleep(0.2)
            return {"done": 1}

    assert [m.metric_name for m in _run([Slow()]).metrics] == ["done"]


# --------------------------------------------------------------------------- the registry


@pytest.fixture()
def store_url(tmp_path):
    return f"sqlite:///{tmp_path}/store.sqlite"


def _write(path, source):
    path.write_text(textwrap.dedent(source))
    return path


USER_APP = """
    from streamdrift.udfs.applications import (ModelMonitoringApplicationBase, ModelMonitoringApplicationMetric,
                                   ModelMonitoringApplicationResult, ResultKindApp, ResultStatusApp)


    class MeanShift(ModelMonitoringApplicationBase):
        def __init__(self, column="x", limit=0.5):
            self.column, self.limit = column, limit
            self.windows = 0

        def do_tracking(self, monitoring_context):
            self.windows += 1
            ref = monitoring_context.feature_stats[self.column]["mean"]
            cur = monitoring_context.sample_df_stats[self.column]["mean"]
            shift = abs(cur - ref)
            status = ResultStatusApp.detected if shift > self.limit else ResultStatusApp.no_detection
            return [ModelMonitoringApplicationResult("mean_shift", shift, ResultKindApp.data_drift, status,
                                                     {"column": self.column}),
                    ModelMonitoringApplicationMetric("windows_seen", self.windows)]
"""


def test_the_builtin_app_is_on_by_default_and_disabled_per_project(store_url):
    (app,) = app_registry.load_applications(store_url, "shop")
    assert isinstance(app, HistogramDataDriftApplication) and app.NAME == "histogram-data-drift"

    app_registry.set_enabled(store_url, "shop", "histogram-data-drift", False)
    assert app_registry.load_applications(store_url, "shop") == []
    assert [type(a) for a in app_registry.load_applications(store_url, "other")] == [HistogramDataDriftApplication]
    out = _run(app_registry.load_applications(store_url, "shop"))
    assert out.results == out.metrics == out.errors == () and out.prediction.count == 400

    app_registry.set_enabled(store_url, "shop", "histogram-data-drift", True)
    assert [a.NAME for a in app_registry.load_applications(store_url, "shop")] == ["histogram-data-drift"]


def test_the_builtin_app_takes_registered_parameters(store_url):
    app_registry.register_application(store_url, "shop", "histogram-data-drift", app_registry.BUILTIN_CLASS,
                                      {"potential": 0.01, "detected": 0.02})
    (app,) = app_registry.load_applications(store_url, "shop")
    result, verdict = _run([app]).results
    assert result.value < 0.5 and result.status == ResultStatusApp.detected  # thresholds from the registration
    assert verdict.result_name == "feature_drift"


def test_applications_registered_under_the_top_level_package_paths_still_load(store_url):
    # what a store holds that was written when the packages were installed as `udfs`, `jobs`, ...
    store = SqlStore(store_url)
    store.create_schema()
    store.add_application("shop", "histogram-data-drift", "udfs.applications:HistogramDataDriftApplication",
                          {"potential": 0.01, "detected": 0.02})
    store.add_application("shop", "data-quality", "udfs.example_apps:DataQualityApplication", {"max_unseen": 0.5})
    loaded = {a.NAME: a for a in app_registry.load_applications(store_url, "shop")}
    builtin, quality = loaded["histogram-data-drift"], loaded["data-quality"]
    assert type(builtin) is HistogramDataDriftApplication and type(quality) is DataQualityApplication
    assert quality.max_unseen == 0.5
    out = _run([builtin, quality])
    assert out.errors == ()
    assert [(r.application_name, r.result_name) for r in out.results] == [
        *BUILTIN_RESULTS, ("data-quality", "data_quality")]
    assert out.results[0].status == ResultStatusApp.detected  # the registered thresholds were applied
    listed = {i.name: i for i in app_registry.list_registered(store_url, "shop")}
    assert listed["histogram-data-drift"].builtin
    assert listed["data-quality"].class_path == "streamdrift.udfs.example_apps:DataQualityApplication"

    # registered again under the old path: stored under the package path
    app_registry.register_application(store_url, "shop", "dq-again", "udfs.example_apps:DataQualityApplication")
    assert store.get_application("shop", "dq-again").class_path == "streamdrift.udfs.example_apps:DataQualityApplication"


def test_a_user_module_by_path_is_loaded_kept_between_reloads_and_runs(store_url, tmp_path):
    folder = tmp_path / f"apps_{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    module = f"user_app_{uuid.uuid4().hex[:6]}"
    _write(folder / f"{module}.py", USER_APP)
    app_registry.register_application(store_url, "shop", "mean-shift", f"{module}:MeanShift",
                                      {"column": "x", "limit": 0.2, "timeout_seconds": 5}, module_path=str(folder))
    stored = SqlStore(store_url).get_application("shop", "mean-shift")
    assert stored.params == {"column": "x", "limit": 0.2, "timeout_seconds": 5.0, "module_path": str(folder)}

    builtin, app = app_registry.load_applications(store_url, "shop")
    assert app.NAME == "mean-shift" and app.timeout_seconds == 5.0 and app.limit == 0.2
    assert app_registry.load_applications(store_url, "shop")[1] is app  # same instance: state is kept
    shifted = _window(shift=1.0)
    out = _run([builtin, app], agg=shifted)
    out = _run([builtin, app], agg=shifted)
    mine = [r for r in out.results if r.application_name == "mean-shift"]
    assert len(mine) == 1 and mine[0].result_name == "mean_shift" and mine[0].status == ResultStatusApp.detected
    assert mine[0].value == pytest.approx(abs(shifted.accumulator.to_stats()["x"]["mean"] - ENDPOINT["feature_stats"]["x"]["mean"]))
    assert [(m.metric_name, m.value) for m in out.metrics if m.application_name == "mean-shift"] == [("windows_seen", 2.0)]

    # a new registration (other parameters) builds a new instance
    app_registry.register_application(store_url, "shop", "mean-shift", f"{module}:MeanShift",
                                      {"column": "y"}, module_path=str(folder))
    again = app_registry.load_applications(store_url, "shop")[1]
    assert again is not app and again.column == "y" and again.timeout_seconds == 60


def test_a_module_given_as_a_file_and_the_cli_shorthand(store_url, tmp_path):
    module = f"single_{uuid.uuid4().hex[:6]}"
    path = _write(tmp_path / f"{module}.py", USER_APP)
    code = apps_cli.main(["apps", "add", "one-file", "MeanShift", "--path", str(path), "--param", "limit=0.3",
                          "--endpoint-store-connection", store_url, "--project", "shop"])
    assert code == 0
    assert SqlStore(store_url).get_application("shop", "one-file").class_path == f"{module}:MeanShift"
    assert app_registry.load_applications(store_url, "shop")[1].limit == 0.3


def test_broken_registrations_are_reported_per_window_and_the_job_goes_on(store_url, tmp_path, caplog):
    folder = tmp_path / "broken"
    folder.mkdir()
    module = f"broken_{uuid.uuid4().hex[:6]}"
    source = _write(folder / f"{module}.py", "import not_a_module_anywhere\n")
    store = SqlStore(store_url)
    store.create_schema()
    store.add_application("shop", "cannot-import", f"{module}:App", {"module_path": str(folder)})
    store.add_application("shop", "no-such-class", "streamdrift.udfs.example_apps:Nope")
    store.add_application("shop", "bad-params", "streamdrift.udfs.example_apps:DataQualityApplication", {"max_unseen": 7})
    store.add_application("shop", "missing-path", "x:App", {"module_path": str(tmp_path / "gone")})
    with caplog.at_level("ERROR", logger="streamdrift.apps"):
        apps = app_registry.load_applications(store_url, "shop")
        app_registry.load_applications(store_url, "shop")
    assert [a.NAME for a in apps] == ["histogram-data-drift", "bad-params", "cannot-import", "missing-path",
                                      "no-such-class"]
    assert caplog.text.count("not loaded") == 4  # logged once each, not at every reload
    out = _run(apps)
    errors = {e.application_name: e.message for e in out.errors}
    assert set(errors) == {"bad-params", "cannot-import", "missing-path", "no-such-class"}
    assert "No module named 'not_a_module_anywhere'" in errors["cannot-import"]
    assert "has no 'Nope'" in errors["no-such-class"]
    assert "max_unseen must be in (0, 1]" in errors["bad-params"]
    assert "does not exist" in errors["missing-path"]
    assert all(e.error_type == "mm-app-failed" for e in out.errors)
    assert [(r.application_name, r.result_name) for r in out.results] == BUILTIN_RESULTS

    # fixed on disk: the next reload imports it
    time.sleep(0.01)
    _write(source, """
        from streamdrift.udfs.applications import ModelMonitoringApplicationBase

        class App(ModelMonitoringApplicationBase):
            def do_tracking(self, monitoring_context):
                return {"fixed": 1}
    """)
    import os
    os.utime(source, (time.time() + 5, time.time() + 5))
    fixed = {a.NAME: a for a in app_registry.load_applications(store_url, "shop")}["cannot-import"]
    assert [m.metric_name for m in _run([fixed]).metrics] == ["fixed"]


def test_a_changed_module_file_is_reloaded(store_url, tmp_path):
    module = f"changing_{uuid.uuid4().hex[:6]}"
    path = _write(tmp_path / f"{module}.py", """
        from streamdrift.udfs.applications import ModelMonitoringApplicationBase

        class App(ModelMonitoringApplicationBase):
            def do_tracking(self, monitoring_context):
                return {"version": 1}
    """)
    app_registry.register_application(store_url, "shop", "changing", f"{module}:App", module_path=str(path))
    first = app_registry.load_applications(store_url, "shop")[1]
    _write(path, path.read_text().replace('"version": 1', '"version": 2'))
    import os
    os.utime(path, (time.time() + 5, time.time() + 5))
    second = app_registry.load_applications(store_url, "shop")[1]
    assert second is not first
    assert [m.value for m in _run([second]).metrics] == [2.0]


def test_register_checks_the_application_first(store_url, tmp_path):
    with pytest.raises(app_registry.AppLoadError, match="No module named"):
        app_registry.register_application(store_url, "shop", "nope", "no_such_module_xyz:App")
    with pytest.raises(ValueError, match="must look like"):
        app_registry.register_application(store_url, "shop", "nope", "not a class")
    with pytest.raises(ValueError, match="application name"):
        app_registry.register_application(store_url, "shop", "bad name", "streamdrift.udfs.example_apps:DataQualityApplication")
    with pytest.raises(ValueError, match="timeout_seconds must be more than 0"):
        app_registry.register_application(store_url, "shop", "dq", "streamdrift.udfs.example_apps:DataQualityApplication",
                                          timeout_seconds=0)
    with pytest.raises(ValueError, match="does not exist"):
        app_registry.register_application(store_url, "shop", "dq", "m:App", module_path=str(tmp_path / "nowhere"))
    assert [a.name for a in app_registry.list_registered(store_url, "shop")] == ["histogram-data-drift"]
    # unchecked registrations are possible (and then reported by the job)
    app_registry.register_application(store_url, "shop", "later", "no_such_module_xyz:App", check=False)
    assert [a.name for a in app_registry.list_registered(store_url, "shop")] == ["histogram-data-drift", "later"]


# --------------------------------------------------------------------------- the command line


def _cli(capsys, *argv, data_dir):
    code = apps_cli.main(["apps", *argv, "--data-dir", str(data_dir), "--project", "shop"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_apps_command_add_list_disable_enable_remove(capsys, tmp_path):
    code, out, _ = _cli(capsys, "list", "--json", data_dir=tmp_path)
    assert code == 0 and [(a["name"], a["enabled"], a["builtin"]) for a in json.loads(out)] == [
        ("histogram-data-drift", True, True)]

    code, out, err = _cli(capsys, "add", "dq", "streamdrift.udfs.example_apps:DataQualityApplication", "--params",
                          '{"max_null_increase": 0.1}', "--timeout-seconds", "5", data_dir=tmp_path)
    assert code == 0, err
    code, _, _ = _cli(capsys, "disable", "histogram-data-drift", data_dir=tmp_path)
    assert code == 0
    code, out, _ = _cli(capsys, "list", "--json", data_dir=tmp_path)
    listed = {a["name"]: a for a in json.loads(out)}
    assert listed["histogram-data-drift"]["enabled"] is False
    assert listed["dq"]["params"] == {"max_null_increase": 0.1} and listed["dq"]["timeout_seconds"] == 5.0
    assert listed["dq"]["artifacts_dir"] is None
    code, out, _ = _cli(capsys, "list", data_dir=tmp_path)
    assert out.splitlines()[0].split() == ["NAME", "ENABLED", "CLASS", "PARAMS", "PATH", "TIMEOUT"]
    assert "histogram-data-drift  no" in out

    url = f"sqlite:///{tmp_path}/store.sqlite"  # the embedded default store of that data dir
    apps = app_registry.load_applications(url, "shop")
    assert [(a.NAME, type(a).__name__) for a in apps] == [("dq", "DataQualityApplication")]
    assert apps[0].max_null_increase == 0.1 and apps[0].timeout_seconds == 5.0
    assert apps[0].artifacts_dir == str(tmp_path / "artifacts")

    code, _, _ = _cli(capsys, "disable", "dq", data_dir=tmp_path)
    assert code == 0 and app_registry.load_applications(url, "shop") == []
    code, _, _ = _cli(capsys, "enable", "histogram-data-drift", data_dir=tmp_path)
    code, out, _ = _cli(capsys, "remove", "dq", data_dir=tmp_path)
    assert code == 0 and "removed application dq" in out
    assert [a.NAME for a in app_registry.load_applications(url, "shop")] == ["histogram-data-drift"]

    code, _, err = _cli(capsys, "remove", "dq", data_dir=tmp_path)
    assert code == 1 and "no application 'dq'" in err
    code, _, err = _cli(capsys, "enable", "ghost", data_dir=tmp_path)
    assert code == 1 and "no application 'ghost'" in err
    code, _, err = _cli(capsys, "add", "bad", "no_such_module_xyz:App", data_dir=tmp_path)
    assert code == 2 and "application 'bad' cannot be loaded: cannot import module 'no_such_module_xyz'" in err
    code, _, err = _cli(capsys, "add", "bad", "streamdrift.udfs.example_apps:DataQualityApplication", "--params", "[1]",
                        data_dir=tmp_path)
    assert code == 2 and "--params must be a JSON object" in err
    code, _, err = _cli(capsys, "add", "bad", "streamdrift.udfs.example_apps:DataQualityApplication", "--param",
                        "max_unseen=2", data_dir=tmp_path)
    assert code == 2 and "max_unseen must be in (0, 1]" in err


# --------------------------------------------------------------------------- the example apps


def test_data_quality_finds_nulls_out_of_range_values_and_unseen_categories():
    clean = _run([DataQualityApplication()])
    (result,) = clean.results
    assert (result.result_name, result.kind) == ("data_quality", ResultKindApp.mm_app_anomaly)
    assert result.status == ResultStatusApp.no_detection and result.extra_data["violations"] == []
    assert set(result.extra_data["columns"]) == {"x", "y", "color", "label"}

    bad = _run([DataQualityApplication()], agg=_window(n=1000, seed=4, nulls=0.2, out_of_range=0.1, unseen=0.05))
    (result,) = bad.results
    cols = result.extra_data["columns"]
    assert result.status == ResultStatusApp.detected and result.value >= 1
    assert cols["x"]["null_rate"] == pytest.approx(0.2, abs=0.04) and cols["x"]["reference_null_rate"] == 0
    assert cols["y"]["out_of_range"] == pytest.approx(0.1, abs=0.03)
    assert all(25 <= v <= 30 for v in cols["y"]["out_of_range_examples"])
    assert cols["color"]["unseen"] == pytest.approx(0.05, abs=0.02) and cols["color"]["unseen_examples"] == ["violet"]
    assert len(result.extra_data["violations"]) == 3
    metrics = {m.metric_name: m.value for m in bad.metrics}
    assert metrics["out_of_range_share"] == cols["y"]["out_of_range"]
    assert metrics["unseen_category_share"] == cols["color"]["unseen"]


def test_prediction_distribution_compares_class_shares():
    same = _run([PredictionDistributionApplication()], agg=_window(n=1000, dogs=0.3))
    (r,) = same.results
    assert (r.result_name, r.kind) == ("prediction_shift", ResultKindApp.concept_drift)
    assert r.status == ResultStatusApp.no_detection and r.value < 0.1
    assert r.extra_data["reference"]["dog"] == pytest.approx((TRAIN["label"] == "dog").mean())
    assert r.extra_data["reference_source"] == "reference statistics"

    shifted = _run([PredictionDistributionApplication()], agg=_window(n=1000, dogs=0.7))
    (r,) = shifted.results
    expected = abs(r.extra_data["window"]["dog"] - (TRAIN["label"] == "dog").mean())
    assert r.value == pytest.approx(expected) and r.status == ResultStatusApp.detected
    shares = {m.metric_name: m.value for m in shifted.metrics}
    assert shares == {"share_dog": r.extra_data["window"]["dog"], "share_cat": r.extra_data["window"]["cat"]}


def test_prediction_distribution_of_numeric_classes_uses_the_reference_sample(store_url):
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"x": rng.normal(size=2000), "y": rng.uniform(10, 20, 2000),
                          "color": rng.choice(COLORS, 2000), "label": rng.choice([0, 1], 2000, p=[0.8, 0.2])})
    ep = get_or_create_model_endpoint("shop", "numeric", "serving", reference=train, output_names=["label"],
                                      store=store_url)
    endpoint = dict(SqlStore(store_url).get_endpoint(ep.endpoint_id))
    assert "hist" in endpoint["feature_stats"]["label"]  # numeric: no per-class counts in the statistics
    rng = np.random.default_rng(8)
    payloads = [json.dumps({"endpoint_id": ep.endpoint_id, "timestamp": T0 + i, "request_id": str(i),
                            "inputs": [[0.0, 15.0, "red"]], "outputs": [int(rng.uniform() < 0.6)]})
                for i in range(500)]
    (partial,), _ = aggregate_batch(payloads, EndpointCatalog(lambda: [endpoint]), WINDOW_MS)
    loader = app_registry.ReferenceSampleLoader(store_url)
    out = monitor_window(endpoint, ep.endpoint_id, "shop", T0, T0 + WINDOW_MS, partial.aggregate,
                         [PredictionDistributionApplication()], reference_sample_loader=loader)
    (r,) = out.results
    assert r.extra_data["reference_source"] == "reference sample"
    assert r.extra_data["reference"]["1"] == pytest.approx((train["label"] == 1).mean())
    assert r.extra_data["window"]["1"] == pytest.approx(0.6, abs=0.06)
    assert r.status == ResultStatusApp.detected

    without = monitor_window(endpoint, ep.endpoint_id, "shop", T0, T0 + WINDOW_MS, partial.aggregate,
                             [PredictionDistributionApplication()])
    assert without.results[0].status == ResultStatusApp.irrelevant


def test_the_reference_sample_loader_reads_the_stored_sample_once_per_reference(store_url, monkeypatch):
    ep = get_or_create_model_endpoint("shop", "loader", "serving", reference=TRAIN, output_names=["label"],
                                      store=store_url)
    record = dict(SqlStore(store_url).get_endpoint(ep.endpoint_id))
    loader = app_registry.ReferenceSampleLoader(store_url)
    calls = []
    store = app_registry._store(store_url)
    original = store.get_reference_sample
    monkeypatch.setattr(store, "get_reference_sample", lambda eid: calls.append(eid) or original(eid))
    first = loader(ep.endpoint_id, record)
    first.drop(first.index, inplace=True)  # a caller's change does not reach the cache
    second = loader(ep.endpoint_id, record)
    assert len(second) == 3000 and list(second.columns) == ["x", "y", "color", "label"] and len(calls) == 1
    loader(ep.endpoint_id, dict(record, updated=record["updated"] + dt.timedelta(seconds=1)))
    assert len(calls) == 2
    assert loader("none", {"has_reference_sample": False}) is None


def test_artifacts_go_under_project_endpoint_app_and_window_end(tmp_path):
    paths = {}

    class Artist(ModelMonitoringApplicationBase):
        def do_tracking(self, monitoring_context):
            paths["plain"] = monitoring_context.artifact_path()
            paths["logged"] = monitoring_context.log_artifact("summary", body="<p>hi</p>", format="html")
            return []

    app = Artist()
    app.artifacts_dir = str(tmp_path / "artifacts")
    assert _run([app]).errors == ()
    assert paths["plain"] == tmp_path / "artifacts" / "shop" / "ep" / "Artist" / "20240101T001000Z.html"
    assert open(paths["logged"]).read() == "<p>hi</p>"
    assert paths["logged"].endswith("shop/ep/Artist/20240101T001000Z-summary.html")
    (error,) = _run([Artist()]).errors  # no directory given: a clear failure
    assert "no artifacts directory" in error.message


def test_the_window_sample_is_kept_only_while_an_application_reads_it():
    from streamdrift.udfs.applications import HistogramDataDriftApplication, sample_size_for

    class Reads(ModelMonitoringApplicationBase):
        def do_tracking(self, monitoring_context):
            return {"rows": len(monitoring_context.sample_df)}

    class Counts(Reads):
        uses_sample = False

    assert sample_size_for([HistogramDataDriftApplication()], 1000) == 0  # the built-in counts only
    assert sample_size_for([HistogramDataDriftApplication(), Counts()], 1000) == 0
    assert sample_size_for([HistogramDataDriftApplication(), Reads()], 1000) == 1000  # a user app: kept
    assert sample_size_for([], 1000) == 0
