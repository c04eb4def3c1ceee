"""The producer SDK into the real job: events logged with MonitoringProducer through real Kafka (and
through the embedded directory stream) are read by the monitoring job on a local Flink; the rows
the job counted per window in the TSDB are the rows logged, counted by the test as it logged them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.producer import MonitoringProducer
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.monitoring_job import JobOptions, build
from tests.integration.jobkit import job_settings, new_project

WINDOW_MS = 60_000
T0 = 1_700_000_040_000 - (1_700_000_040_000 % WINDOW_MS)
FEATURES = ["f_a", "f_b", "f_c"]


def _log_every_input_type(producer: MonitoringProducer, rng) -> dict[int, int]:
    """Log 240 requests of 1-4 rows over two windows, cycling through the input types; returns the
    rows logged per window start."""
    rows_per_window: dict[int, int] = {}
    for i in range(240):
        ts = T0 + i * 500
        n = 1 + i % 4
        values = rng.normal(size=(n, 3)).round(6)
        scores = rng.uniform(size=n).round(6)
        kind = i % 5
        if kind == 0:
            inputs, outputs = values.tolist(), scores.tolist()
        elif kind == 1:
            inputs, outputs = values, scores
        elif kind == 2:
            inputs, outputs = pd.DataFrame(values, columns=FEATURES), pd.DataFrame({"score": scores})
        elif kind == 3:
            inputs, outputs = [dict(zip(FEATURES, row)) for row in values.tolist()], pd.Series(scores)
        else:  # one row: a dict, a 1-D array
            inputs, outputs = (dict(zip(FEATURES, values[0])) if i % 2 else values[0]), [float(scores[0])]
            n = 1
        assert producer.log(("scorer", "serving", "v1"), inputs, outputs, request_id=f"r{i}", timestamp=ts,
                            latency_us=300 + i)
        rows_per_window[ts - ts % WINDOW_MS] = rows_per_window.get(ts - ts % WINDOW_MS, 0) + n
    return rows_per_window


def _run_and_count(settings, project: str, endpoint_id: str) -> dict[int, int]:
    graph = build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=2_000))
    graph.env.execute(f"it-producer-{project}")
    predictions = open_tsdb(settings.tsdb_connection).query_predictions(project, endpoint_id)
    return {int(p.start_infer_time.timestamp() * 1000): p.count for p in predictions}


def _endpoint(settings, project: str, rng):
    reference = pd.DataFrame(rng.normal(size=(1000, 3)), columns=FEATURES)
    reference["score"] = rng.uniform(size=1000)
    return get_or_create_model_endpoint(project, "scorer", "serving", reference=reference, feature_names=FEATURES,
                                        output_names=["score"], model_version="v1",
                                        store=settings.endpoint_store_connection)


@pytest.mark.parametrize("stream", ["kafka", "file"])
def test_rows_counted_by_the_job_are_the_rows_logged(tmp_path, request, stream):
    rng = np.random.default_rng(5)
    if stream == "kafka":
        kafka = request.getfixturevalue("kafka")
        project = new_project(kafka, "sdk")
        settings = job_settings(tmp_path, kafka, project)
    else:
        project = "sdk-file"
        settings = job_settings(tmp_path, None, project)
    endpoint = _endpoint(settings, project, rng)
    with MonitoringProducer(settings.stream_path, project, batch_size=50) as producer:
        # the SDK names the endpoint as the store did from model, function and version
        assert producer.endpoint_id(("scorer", "serving", "v1")) == endpoint.endpoint_id
        logged = _log_every_input_type(producer, rng)
        assert producer.flush(30)
    assert (producer.sent, producer.failed, producer.dropped) == (240, 0, 0)
    assert len(logged) == 2 and sum(logged.values()) > 240

    assert _run_and_count(settings, project, endpoint.endpoint_id) == logged


def test_the_readme_example_runs_on_the_embedded_stream(tmp_path):
    import re
    import subprocess
    import sys
    from pathlib import Path

    import os

    root = Path(__file__).resolve().parents[2]
    # as from a fresh shell: PyFlink leaves this variable in a process (this one) that ran a local job
    env = {k: v for k, v in os.environ.items() if k != "PYFLINK_GATEWAY_DISABLED"}
    proc = subprocess.run([sys.executable, str(root / "examples" / "producer_example.py"), "--data-dir",
                           str(tmp_path / "example")], capture_output=True, text=True, timeout=400, cwd=tmp_path,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "601 sent, 0 dropped, 0 failed" in lines[0]
    windows = [line.split() for line in lines if re.match(r"\d\d:\d\d-\d\d:\d\d ", line)]
    # 200 requests of 1, 2, 3, 1, ... rows per window; the failed request is an error of the first
    expected_rows = [sum(1 + i % 3 for i in range(w * 200, (w + 1) * 200)) for w in range(3)]
    assert [int(w[1]) for w in windows] == expected_rows
    assert [int(w[2]) for w in windows] == [1, 0, 0]
    assert [" ".join(w[4:]) for w in windows] == ["no drift", "no drift", "DRIFT DETECTED"]
