"""A user's applications in the real job (Kafka → Flink mini cluster → SQLite stores).

The user writes an MLRun-style module in a folder of their own (only ``do_tracking`` and the result
types, MLRun's logger call with keyword arguments), registers it with ``streamdrift apps add --path``
(run as a command), and finds its results in the TSDB. Beside it: an application that raises, one
that hangs past its timeout, and a registration whose module does not exist; each gives
``mm-app-failed`` errors while the others' results are written.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from kafka import KafkaProducer

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.local_services import PROJECT_ROOT
from streamdrift.connectors.settings import load_settings, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.monitoring_job import JobOptions, build
from tests.integration.jobkit import new_project

WINDOW_MS = 60_000
T0 = 1_700_000_040_000 - (1_700_000_040_000 % WINDOW_MS)
FEATURES = ["f_a", "f_b", "f_c"]

USER_MODULE = '''
import time

import numpy as np

from streamdrift.udfs.applications import (ModelMonitoringApplicationBase, ModelMonitoringApplicationMetric,
                               ModelMonitoringApplicationResult, ResultKindApp, ResultStatusApp)


class MeanShiftApp(ModelMonitoringApplicationBase):
    """Written for MLRun: only the imports were changed."""

    def __init__(self, column="f_a", limit=1.0):
        self.column = column
        self.limit = limit

    def do_tracking(self, monitoring_context):
        monitoring_context.logger.info("Running application", application_name=monitoring_context.application_name,
                                       endpoint_id=monitoring_context.endpoint_id)
        reference = monitoring_context.feature_stats[self.column]["mean"]
        window = monitoring_context.sample_df_stats[self.column]["mean"]
        shift = abs(window - reference)
        sample_mean = float(np.mean(monitoring_context.sample_df[self.column]))
        return [
            ModelMonitoringApplicationResult(
                name="mean_shift", value=shift, kind=ResultKindApp.data_drift,
                status=ResultStatusApp.detected if shift > self.limit else ResultStatusApp.no_detection,
                extra_data={"column": self.column, "sample_mean": sample_mean,
                            "start": str(monitoring_context.start_infer_time)}),
            ModelMonitoringApplicationMetric(name="sample_rows", value=len(monitoring_context.sample_df)),
        ]


class Exploding(ModelMonitoringApplicationBase):
    def do_tracking(self, monitoring_context):
        raise RuntimeError("the model registry is down")


class Sleeper(ModelMonitoringApplicationBase):
    def do_tracking(self, monitoring_context):
        time.sleep(60)
        return {"never": 1}
'''


@pytest.fixture()
def project(kafka):
    return new_project(kafka, "it-apps", partitions=1)


def _apps(*argv: str) -> subprocess.CompletedProcess:
    """``streamdrift apps ...`` as a command (python -m streamdrift.jobs.apps_cli)."""
    return subprocess.run([sys.executable, "-m", "streamdrift.jobs.apps_cli", "apps", *argv], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_users_mlrun_style_app_runs_in_the_job_beside_failing_ones(tmp_path, kafka, project):
    user_dir = tmp_path / "my_apps"
    user_dir.mkdir()
    module = f"mlrun_style_{uuid.uuid4().hex[:6]}"
    (user_dir / f"{module}.py").write_text(textwrap.dedent(USER_MODULE))
    common = ["--data-dir", str(tmp_path), "--project", project]
    for argv in (["add", "mean-shift", f"{module}:MeanShiftApp", "--path", str(user_dir), "--params",
                  '{"column": "f_a", "limit": 1.0}'],
                 ["add", "exploding", f"{module}:Exploding", "--path", str(user_dir)],
                 ["add", "sleeper", f"{module}:Sleeper", "--path", str(user_dir), "--timeout-seconds", "1"],
                 ["add", "vanished", "module_that_was_deleted:App", "--no-check"]):
        proc = _apps(*argv, *common)
        assert proc.returncode == 0, proc.stderr
    listed = json.loads(_apps("list", "--json", *common).stdout)
    assert [a["name"] for a in listed] == ["histogram-data-drift", "exploding", "mean-shift", "sleeper", "vanished"]

    settings = load_settings({"data_dir": str(tmp_path), "project": project, "stream_path": kafka.stream_path,
                              "base_period": 1}, env={})
    rng = np.random.default_rng(11)
    reference = pd.DataFrame(rng.normal(size=(2000, 3)), columns=FEATURES)
    endpoint = get_or_create_model_endpoint(project, "model-u", "serving", reference=reference,
                                            feature_names=FEATURES, store=settings.endpoint_store_connection)
    rows_by_window: dict[int, list] = {}
    events = []
    for i in range(240):  # two windows; f_a shifted by 3 in the second
        ts = T0 + i * 500
        row = rng.normal(size=3).round(6)
        if ts >= T0 + WINDOW_MS:
            row[0] += 3.0
        rows_by_window.setdefault(ts - ts % WINDOW_MS, []).append(row)
        events.append({"endpoint_id": endpoint.endpoint_id, "timestamp": ts, "request_id": f"r{i}",
                       "inputs": [row.tolist()]})
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for event in events:
        producer.send(topic_names(project)["events"], json.dumps(event).encode())
    producer.flush()
    producer.close()

    started = time.monotonic()
    build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=2_000)).env.execute(
        "it-user-apps")
    took = time.monotonic() - started

    tsdb = open_tsdb(settings.tsdb_connection)
    ref_mean = SqlStore(settings.endpoint_store_connection).get_endpoint(endpoint.endpoint_id) \
        .feature_stats["f_a"]["mean"]
    mine = sorted(tsdb.query_results(project, endpoint.endpoint_id, application_name="mean-shift"),
                  key=lambda r: r.start_infer_time)
    assert len(mine) == 2
    for result, (start, rows) in zip(mine, sorted(rows_by_window.items())):
        assert int(result.start_infer_time.timestamp() * 1000) == start
        assert result.result_name == "mean_shift" and result.kind == 0
        assert result.value == pytest.approx(abs(np.mean([r[0] for r in rows]) - ref_mean), rel=1e-9)
        assert result.extra_data["sample_mean"] == pytest.approx(np.mean([r[0] for r in rows]), rel=1e-9)
    assert [r.status for r in mine] == [0, 2]
    metrics = tsdb.query_metrics(project, endpoint.endpoint_id, application_name="mean-shift")
    assert sorted(m.value for m in metrics) == [120.0, 120.0]
    builtin = tsdb.query_results(project, endpoint.endpoint_id, application_name="histogram-data-drift",
                                 result_name="general_drift")
    assert len(builtin) == 2
    verdict = tsdb.query_results(project, endpoint.endpoint_id, application_name="histogram-data-drift",
                                 result_name="feature_drift")
    assert len(verdict) == 2
    latest = SqlStore(settings.endpoint_store_connection).latest_results(endpoint.endpoint_id)
    assert {(r.application_name, r.result_name, r.status) for r in latest} == {
        ("mean-shift", "mean_shift", 2), ("histogram-data-drift", "general_drift", builtin[-1].status),
        ("histogram-data-drift", "feature_drift", verdict[-1].status)}

    errors = tsdb.query_errors(project, endpoint.endpoint_id, error_type="mm-app-failed")
    by_app: dict[str, list[str]] = {}
    for e in errors:
        by_app.setdefault(e.application_name, []).append(e.message)
    assert sorted(by_app) == ["exploding", "sleeper", "vanished"]
    assert by_app["exploding"] == ["RuntimeError: the model registry is down"] * 2
    assert sorted(m.split(":")[0].split(" after")[0] for m in by_app["sleeper"]) == ["still running", "timed out"]
    assert all("cannot import module 'module_that_was_deleted'" in m for m in by_app["vanished"])
    assert len(by_app["vanished"]) == 2
    assert took < 120  # the sleeping app's thread kept neither the windows nor the job's end waiting


def test_a_users_app_by_path_runs_on_the_standalone_cluster(tmp_path, kafka, flink, project):
    user_dir = tmp_path / "cluster_apps"
    user_dir.mkdir()
    module = f"mlrun_style_{uuid.uuid4().hex[:6]}"
    (user_dir / f"{module}.py").write_text(textwrap.dedent(USER_MODULE))
    common = ["--data-dir", str(tmp_path), "--project", project]
    proc = _apps("add", "mean-shift", f"{module}:MeanShiftApp", "--path", str(user_dir / f"{module}.py"), *common)
    assert proc.returncode == 0, proc.stderr
    proc = _apps("disable", "histogram-data-drift", *common)
    assert proc.returncode == 0, proc.stderr

    settings = load_settings({"data_dir": str(tmp_path), "project": project, "stream_path": kafka.stream_path,
                              "base_period": 1}, env={})
    rng = np.random.default_rng(12)
    endpoint = get_or_create_model_endpoint(project, "model-c", "serving",
                                            reference=pd.DataFrame(rng.normal(size=(1000, 3)), columns=FEATURES),
                                            store=settings.endpoint_store_connection)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for i in range(90):
        producer.send(topic_names(project)["events"], json.dumps(
            {"endpoint_id": endpoint.endpoint_id, "timestamp": T0 + i * 1000, "request_id": str(i),
             "inputs": [(rng.normal(size=3) + [2.0, 0, 0]).tolist()]}).encode())
    producer.flush()
    producer.close()

    job_name = f"it-user-apps-{project}"
    cmd = [sys.executable, "-m", "streamdrift.jobs.cli", "submit", "--jobmanager", flink.address, "--attached",
           "--data-dir", str(tmp_path), "--project", project, "--stream-path", kafka.stream_path,
           "--base-period", "1", "--bounded", "--job-name", job_name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {job["name"]: job["state"] for job in flink.rest("/jobs/overview")["jobs"]}.get(job_name) == "FINISHED"

    tsdb = open_tsdb(settings.tsdb_connection)
    results = tsdb.query_results(project, endpoint.endpoint_id)
    assert sorted((r.application_name, r.result_name, r.status) for r in results) == [
        ("mean-shift", "mean_shift", 2), ("mean-shift", "mean_shift", 2)]  # built-in disabled: only the user's
    assert tsdb.query_errors(project, endpoint.endpoint_id) == []

