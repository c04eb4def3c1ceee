"""Prometheus scrapes of a running job: Flink's reporter of a local run (``streamdrift run
--metrics-port``) and the dashboard's ``/metrics`` (``streamdrift ui``), read with a real HTTP
client while the job runs on events logged with the producer SDK.

What is sent is known: 3 windows of 10 s of 3 features, the third shifted by 3 reference standard
deviations in every feature, 2 records that are not JSON, an alert on drift detected whose webhook
points at a closed port. So the job must count every record, 2 dead letters, 3 windows written, one
activation and one failed notification; the dashboard must show the third window's verdict:
every feature drifted (feature_drift 1.0, status 2)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.producer import MonitoringProducer
from streamdrift.connectors.settings import load_settings, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from tests.integration.jobkit import wait_for

FEATURES = ["f_a", "f_b", "f_c"]
JOB_PORT = 29250
UI_PORT = 29700
WINDOW_S = 10
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            out.append((match.group(1), labels, float(match.group(3))))
    return out


def _total(samples, name: str, job: str) -> float | None:
    """Sum of a job counter over its operators and subtasks (None when not reported)."""
    values = [v for n, labels, v in samples if n == f"flink_taskmanager_job_task_operator_{name}"
              and labels.get("job_name") == job]
    return sum(values) if values else None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streamdrift.jobs.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.stdout.read()[-4000:] if proc.stdout else ""


def test_scrapes_of_the_job_and_the_dashboard_during_a_run(tmp_path):
    project = "prom"
    flags = ["--data-dir", str(tmp_path), "--project", project]
    settings = load_settings({"data_dir": str(tmp_path), "project": project}, env={})
    rng = np.random.default_rng(11)
    reference = pd.DataFrame(rng.normal(size=(2000, 3)), columns=FEATURES)
    endpoint = get_or_create_model_endpoint(project, "scorer", "serving", reference=reference, feature_names=FEATURES,
                                            model_version="v1", store=settings.endpoint_store_connection)
    add = subprocess.run([sys.executable, "-m", "streamdrift.jobs.cli", "alerts", "add", "drifting", *flags, "--trigger",
                          "data-drift-detected", "--endpoint", endpoint.endpoint_id, "--result", "feature_drift",
                          "--severity", "high", "--webhook",
                          f"http://127.0.0.1:{_closed_port()}/hook", "--retries", "0", "--timeout", "1"],
                         capture_output=True, text=True)
    assert add.returncode == 0, add.stderr

    start_ms = (int(time.time() * 1000) // 60_000 - 3) * 60_000
    rows = 0
    # one file: the directory stream reads a backlog of files in no set order, and a window's events
    # read after a later window's would be late
    with MonitoringProducer(settings.stream_path, project, batch_size=10_000, linger_s=60) as producer:
        for w in range(3):
            for i in range(300):
                values = rng.normal(size=(1, 3)) + (3.0 if w == 2 else 0.0)
                producer.log(endpoint.endpoint_id, values, None, request_id=f"{w}-{i}",
                             timestamp=start_ms + w * WINDOW_S * 1000 + i * 30)
                rows += 1
        assert producer.flush(30)
    events_dir = Path(settings.stream_path.removeprefix("file://")) / topic_names(project)["events"]
    (events_dir / "bad.jsonl").write_text("{not json\nnot json either\n")

    job = _cli("run", *flags, "--window-seconds", str(WINDOW_S), "--idle-grace-seconds", "2",
               "--checkpoint-interval-seconds", "2", "--metrics-port", str(JOB_PORT))
    ui = _cli("ui", *flags, "--port", str(UI_PORT))
    tsdb = open_tsdb(settings.tsdb_connection)
    store = SqlStore(settings.endpoint_store_connection)
    job_name = f"streamdrift-{project}".replace("-", "_")  # the reporter's label value
    try:
        wait_for(lambda: len(tsdb.query_results(project, endpoint.endpoint_id, result_name="feature_drift")) == 3,
                 240, "the job to write three windows")
        wait_for(lambda: len(store.list_activations(project)) == 1, 60, "the alert's activation")
        with httpx.Client(timeout=10) as client:
            # the Python operators' counters reach Flink when a bundle finishes: wait for the last ones
            def job_counts():
                samples = _samples(client.get(f"http://127.0.0.1:{JOB_PORT}/metrics").text)
                job_counts.last = samples
                return (_total(samples, "records", job_name) == rows + 2
                        and _total(samples, "windows_written", job_name) == 3
                        and _total(samples, "notification_failures", job_name) == 1)

            try:
                wait_for(job_counts, 60, "the job's counters on its Prometheus endpoint")
            except AssertionError as exc:  # say which counter is off
                raise AssertionError(f"{exc}: " + ", ".join(
                    f"{n} {_total(job_counts.last, n, job_name)}"
                    for n in ("records", "windows_written", "notification_failures"))) from None
            samples = job_counts.last
            assert _total(samples, "dead_letters", job_name) == 2
            assert _total(samples, "alert_activations", job_name) == 1
            for name in ("late_partials", "corrections", "window_failures", "windows_refused_by_store",
                         "app_failures", "store_retries", "idle_closes"):
                assert _total(samples, name, job_name) is not None, f"{name} is not reported"
            assert _total(samples, "window_failures", job_name) == 0
            assert _total(samples, "windows_refused_by_store", job_name) == 0
            assert _total(samples, "app_failures", job_name) == 0
            assert 1 <= _total(samples, "partials", job_name) <= rows
            # Flink's own metrics are there too, e.g. the job's uptime
            assert any(n == "flink_jobmanager_job_uptime" and v > 0 for n, _, v in samples)

            page = client.get(f"http://127.0.0.1:{UI_PORT}/metrics")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
            ui_samples = _samples(page.text)
    finally:
        job_out = _stop(job)
        ui_out = _stop(ui)
    assert job.returncode is not None and ui.returncode is not None, (job_out, ui_out)

    def one(name, **labels):
        found = [v for n, lab, v in ui_samples if n == name and all(lab.get(k) == v2 for k, v2 in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    mine = {"project": project, "endpoint_id": endpoint.endpoint_id, "model": "scorer"}
    newest = max(tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift"),
                 key=lambda r: r.end_infer_time)
    assert one("streamdrift_feature_drift", **mine) == 1.0  # all 3 features shifted by 3 sigma
    assert one("streamdrift_drift_status", result="feature_drift", **mine) == 2
    assert one("streamdrift_general_drift", **mine) == newest.value and newest.value >= 0.5
    assert one("streamdrift_result_window_end_seconds", result="feature_drift", **mine) == \
        newest.end_infer_time.timestamp()
    assert one("streamdrift_alert_activations_total", project=project, alert="drifting", severity="high") == 1

    # every metric the shipped Grafana dashboard queries was in these scrapes
    from tests.unit.test_deploy import grafana_metric_names

    scraped = {name for name, _, _ in samples} | {name for name, _, _ in ui_samples}
    assert grafana_metric_names() <= scraped, grafana_metric_names() - scraped

def test_the_standalone_cluster_serves_its_metrics_to_prometheus(flink):
    """The local cluster's job manager and task manager each serve /metrics on a port of the
    configured range (the reporter loaded as a plugin from .jars/plugins)."""
    import yaml

    config = yaml.safe_load((flink.conf / "config.yaml").read_text())
    first, last = (int(p) for p in str(config["metrics.reporter.prom.port"]).split("-"))
    found: dict[str, float] = {}

    def scraped_as_rest_says() -> bool:
        with httpx.Client(timeout=10) as client:
            for port in range(first, last + 1):
                for name, _, value in _samples(client.get(f"http://127.0.0.1:{port}/metrics").text):
                    if name in ("flink_jobmanager_numRegisteredTaskManagers", "flink_jobmanager_taskSlotsTotal",
                                "flink_taskmanager_Status_JVM_Memory_Heap_Max"):
                        found[name] = value
        overview = flink.rest("/overview")  # a task manager registers its slots a moment after itself
        return (found.get("flink_jobmanager_numRegisteredTaskManagers") == overview["taskmanagers"]
                and found.get("flink_jobmanager_taskSlotsTotal") == overview["slots-total"] > 0)

    wait_for(scraped_as_rest_says, 60, f"the cluster's metrics on ports {first}-{last}: {found}")
    assert found["flink_taskmanager_Status_JVM_Memory_Heap_Max"] > 0
