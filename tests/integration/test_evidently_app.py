"""Evidently applications end to end, in process: the extra installed as a user would
(``pip install -e '.[evidently]'`` into this virtualenv when Evidently is missing), an endpoint
created with its training data (so its reference sample is stored), the application registered and
loaded by the registry, and windows of real aggregates run through ``monitor_window``.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamdrift.connectors import app_registry
from streamdrift.connectors.endpoints import get_or_create_model_endpoint, get_reference_sample
from streamdrift.connectors.local_services import PROJECT_ROOT
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.udfs.applications import ResultKindApp, ResultStatusApp
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.monitor import monitor_window
from streamdrift.udfs.batch import aggregate_batch

WINDOW_MS = 600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
COLORS = ["red", "green", "blue"]


@pytest.fixture(scope="module")
def evidently():
    try:
        return importlib.import_module("evidently")
    except ImportError:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{PROJECT_ROOT}[evidently]"],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        importlib.invalidate_caches()
        return importlib.import_module("evidently")


def _endpoint(store_url: str, project: str):
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"income": rng.normal(50, 10, 5000), "age": rng.uniform(18, 80, 5000),
                          "color": rng.choice(COLORS, 5000, p=[0.5, 0.3, 0.2]),
                          "score": rng.uniform(0, 1, 5000)})
    ep = get_or_create_model_endpoint(project, "credit", "serving", reference=train, output_names=["score"],
                                      store=store_url)
    return ep, dict(SqlStore(store_url).get_endpoint(ep.endpoint_id))


def _window(endpoint, income_shift=0.0, seed=1, n=800):
    rng = np.random.default_rng(seed)
    payloads = [json.dumps({"endpoint_id": endpoint["endpoint_id"], "timestamp": T0 + i * 500, "request_id": str(i),
                            "inputs": [[float(rng.normal(50 + income_shift, 10)), float(rng.uniform(18, 80)),
                                        str(rng.choice(COLORS, p=[0.5, 0.3, 0.2]))]],
                            "outputs": [float(rng.uniform())]}) for i in range(n)]
    (partial,), dead = aggregate_batch(payloads, EndpointCatalog(lambda: [endpoint]), WINDOW_MS)
    assert not dead
    return partial.aggregate


def test_evidently_drift_app_compares_the_window_with_the_reference_sample(evidently, tmp_path):
    from evidently import Report
    from evidently.presets import DataDriftPreset

    assert evidently.__version__.startswith("0.7.")
    store_url = f"sqlite:///{tmp_path}/store.sqlite"
    ep, endpoint = _endpoint(store_url, "bank")
    assert endpoint["has_reference_sample"]
    app_registry.register_application(store_url, "bank", "evidently-drift",
                                      "streamdrift.udfs.evidently_app:EvidentlyDataDriftApplication")
    apps = {a.NAME: a for a in app_registry.load_applications(store_url, "bank")}
    assert set(apps) == {"histogram-data-drift", "evidently-drift"}

    calm = _window(endpoint, income_shift=0.0)
    shifted = _window(endpoint, income_shift=15.0, seed=2)
    outs = [monitor_window(endpoint, ep.endpoint_id, "bank", T0 + k * WINDOW_MS, T0 + (k + 1) * WINDOW_MS, agg,
                           list(apps.values())) for k, agg in enumerate((calm, shifted))]
    for out in outs:
        assert out.errors == ()
    calm_r, shifted_r = [next(r for r in out.results if r.application_name == "evidently-drift") for out in outs]

    assert (calm_r.result_name, calm_r.kind) == ("drifted_columns_share", ResultKindApp.data_drift)
    assert calm_r.value == 0 and calm_r.status == ResultStatusApp.no_detection
    assert shifted_r.extra_data["drifted_columns"] == ["income"]
    assert shifted_r.value == pytest.approx(1 / 4) and shifted_r.status == ResultStatusApp.potential_detection
    assert set(shifted_r.extra_data["columns"]) == {"income", "age", "color", "score"}
    assert shifted_r.extra_data["reference_rows"] == 5000 and shifted_r.extra_data["current_rows"] == 800
    count = {m.metric_name: m.value for m in outs[1].metrics if m.application_name == "evidently-drift"}
    assert count == {"drifted_columns_count": 1.0}

    # the report file: <data_dir>/artifacts/<project>/<endpoint>/<app>/<window end>.html
    report = Path(shifted_r.extra_data["report"])
    assert report == tmp_path / "artifacts" / "bank" / ep.endpoint_id / "evidently-drift" / "20240101T002000Z.html"
    html = report.read_text()
    assert html.lstrip().lower().startswith("<!doctype html>") and len(html) > 10_000
    assert all(column in html for column in ("income", "age", "color", "score"))
    assert Path(calm_r.extra_data["report"]).name == "20240101T001000Z.html"

    # the same numbers as Evidently run by hand on the stored reference sample and the window's sample
    reference = get_reference_sample(ep.endpoint_id, store_url).to_pandas()
    current = shifted.sample_frame()
    by_hand = Report([DataDriftPreset()]).run(current_data=current[["income", "age", "color", "score"]],
                                              reference_data=reference[["income", "age", "color", "score"]]).dict()
    scores = {m["config"]["column"]: m["value"] for m in by_hand["metrics"]
              if m["config"]["type"].endswith(":ValueDrift")}
    assert {c: v["score"] for c, v in shifted_r.extra_data["columns"].items()} == pytest.approx(scores, rel=1e-9)


def test_a_users_evidently_subclass_gets_the_pair_and_logs_its_report(evidently, tmp_path):
    module = tmp_path / "my_evidently_app.py"
    module.write_text('''
from evidently import Report
from evidently.presets import DataSummaryPreset

from streamdrift.udfs.applications import ModelMonitoringApplicationMetric
from streamdrift.udfs.evidently_app import EvidentlyModelMonitoringApplicationBase


class SummaryApp(EvidentlyModelMonitoringApplicationBase):
    def do_tracking(self, monitoring_context):
        pair = self.evidently_datasets(monitoring_context)
        snapshot = Report([DataSummaryPreset()]).run(current_data=pair.current, reference_data=pair.reference)
        self.log_evidently_object(monitoring_context, snapshot, "summary")
        return [ModelMonitoringApplicationMetric("reference_rows", len(pair.reference_df)),
                ModelMonitoringApplicationMetric("current_rows", len(pair.current_df)),
                ModelMonitoringApplicationMetric("categorical_columns", len(pair.categorical))]
''')
    store_url = f"sqlite:///{tmp_path}/store.sqlite"
    ep, endpoint = _endpoint(store_url, "bank")
    artifacts = tmp_path / "elsewhere"
    app_registry.register_application(store_url, "bank", "summary", "my_evidently_app:SummaryApp",
                                      module_path=str(module), artifacts_dir=str(artifacts))
    app = {a.NAME: a for a in app_registry.load_applications(store_url, "bank")}["summary"]
    out = monitor_window(endpoint, ep.endpoint_id, "bank", T0, T0 + WINDOW_MS, _window(endpoint, n=300), [app])
    assert out.errors == ()
    assert {m.metric_name: m.value for m in out.metrics} == {"reference_rows": 5000.0, "current_rows": 300.0,
                                                              "categorical_columns": 1.0}
    (report,) = (artifacts / "bank" / ep.endpoint_id / "summary").iterdir()
    assert report.name == "20240101T001000Z-summary.html" and report.stat().st_size > 10_000


def test_without_a_reference_sample_the_app_fails_clearly(evidently, tmp_path):
    from streamdrift.udfs.evidently_app import EvidentlyDataDriftApplication

    store_url = f"sqlite:///{tmp_path}/store.sqlite"
    ep, endpoint = _endpoint(store_url, "bank")
    app = EvidentlyDataDriftApplication(artifacts_dir=str(tmp_path / "a"))  # no loader: no reference sample
    out = monitor_window(endpoint, ep.endpoint_id, "bank", T0, T0 + WINDOW_MS, _window(endpoint, n=100), [app])
    (error,) = out.errors
    assert error.error_type == "mm-app-failed" and "has no reference sample" in error.message
