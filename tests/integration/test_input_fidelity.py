"""Input fidelity on the real job (issue 15): MLRun 1.12's events, late rows whatever the batch
boundaries, and one mixed stream where every record sent is accounted for.

Expected values are hand counts of what the test sends.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from streamdrift.connectors import raw_rows
from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.settings import file_stream_dir, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.monitoring_job import JobOptions, build
from tests.integration.jobkit import job_settings, new_project, produce, utc, wait_for

WINDOW_MS = 60_000
FEATURES = ["x", "y"]


def _now_window() -> int:
    now = int(time.time() * 1000)
    return now - now % WINDOW_MS - 3 * WINDOW_MS  # three windows ago: every event is in the past


def _endpoint(settings, project, model, rng, **kw):
    reference = pd.DataFrame(rng.normal(size=(2000, 2)), columns=FEATURES)
    return get_or_create_model_endpoint(project, model, "serving", reference=reference, feature_names=FEATURES,
                                        store=settings.endpoint_store_connection, **kw)


def _write_stream(settings, project, records) -> None:
    folder = file_stream_dir(settings.stream_path) / topic_names(project)["events"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_bytes(b"\n".join(r if isinstance(r, bytes) else json.dumps(r).encode()
                                                     for r in records) + b"\n")


def _dead_letters(settings, project) -> list[dict]:
    folder = file_stream_dir(settings.stream_path) / topic_names(project)["dead_letters"]
    return [json.loads(line) for f in folder.rglob("part-*") if not f.name.startswith(".")
            for line in f.read_text().splitlines() if line.strip()]


def _raw_rows(settings, endpoint_id):
    """The endpoint's raw rows as written (every column of the Parquet files)."""
    files, _ = raw_rows.files(settings.parquet_path, endpoint_id)
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files]) if files else pd.DataFrame(columns=["endpoint_id"])
    return frame[frame["endpoint_id"] == endpoint_id]


def test_mlrun_112_events_and_batch_complete_on_kafka(tmp_path, kafka):
    rng = np.random.default_rng(151)
    project = new_project(kafka, "mlrun112", partitions=1)
    settings = job_settings(tmp_path, kafka, project)
    assigned = _endpoint(settings, project, "scorer", rng, endpoint_id="8c2f1e0d9b7a4c3e")
    older = _endpoint(settings, project, "legacy", rng, model_version="v1", function_tag="prod")
    w0 = _now_window()

    def event(i, ts, **over):
        when = utc(ts).strftime("%Y-%m-%d %H:%M:%S.%f")
        e = {"class": "mlrun.serving.V2ModelServer", "worker": "0", "model": "scorer:v3", "host": "h",
             "function_uri": f"{project}/serving:latest", "endpoint_id": assigned.endpoint_id,
             "sampling_percentage": 25, "request": {"id": f"r{i}", "inputs": rng.normal(size=(2, 2)).tolist()},
             "op": "infer", "resp": {"id": f"r{i}", "model_name": "scorer", "outputs": [0, 1]}, "when": when,
             "microsec": 900, "effective_sample_count": 2}
        e.update(over)
        return e

    records = [event(i, w0 + i * 1000) for i in range(30)]  # window 0: 60 rows
    records += [event(100 + i, w0 + WINDOW_MS + i * 1000) for i in range(20)]  # window 1: 40 rows
    records += [event(200, w0 + 5000, resp=None, error="model crashed")]  # an error event in window 0
    # the older shape: no endpoint_id, the model and version apart, the tag in the function's URI
    records += [{"model": "legacy", "version": "v1", "function_uri": f"{project}/serving:prod",
                 "when": utc(w0 + i * 1000).isoformat(), "request": {"id": f"o{i}", "inputs": [[0.1, 0.2]]},
                 "resp": {"outputs": [1]}, "microsec": 100} for i in range(10)]
    # the batch job is done up to window 1: its windows close now, not after the idle grace
    records += [{"kind": "batch_complete", "endpoint_id": assigned.endpoint_id, "first_timestamp": w0,
                 "last_timestamp": utc(w0 + WINDOW_MS + 30_000).isoformat(), "batch_completion_time": w0}]
    graph = build(settings, JobOptions(window_ms=WINDOW_MS, idle_grace_ms=600_000, max_disorder_ms=1_000,
                                       checkpoint_interval_ms=1_000))
    client = graph.env.execute_async(f"it-{project}")
    tsdb = open_tsdb(settings.tsdb_connection)
    try:
        produce(kafka, topic_names(project)["events"], records)
        # window 1 holds the newest events: only batch_complete can close it within the test's time
        wait_for(lambda: len(tsdb.query_predictions(project, assigned.endpoint_id)) == 2, 90,
                 "both windows closed by batch_complete")
        predictions = sorted(tsdb.query_predictions(project, assigned.endpoint_id), key=lambda p: p.start_infer_time)
        assert [(p.count, p.events, p.error_count) for p in predictions] == [(60, 31, 1), (40, 20, 0)]
        # 25 % sampling: each row sent stands for 4
        assert [p.estimated_count for p in predictions] == [240.0, 160.0]
        results = {r.result_name for r in tsdb.query_results(project, assigned.endpoint_id)}
        assert {"general_drift", "feature_drift"} <= results
        # the older shape's events: counted under the id MLRun derives (its window waits for the
        # watermark or the idle close: the raw rows show them)
        wait_for(lambda: len(_raw_rows(settings, older.endpoint_id)) == 10, 60, "the older shape's raw rows")
    finally:
        client.cancel().result()


@pytest.mark.parametrize("batch", [1, 7, 20_000])
def test_late_rows_are_counted_once_through_the_job(tmp_path, batch):
    rng = np.random.default_rng(152)
    project = "late"
    settings = job_settings(tmp_path, None, project)
    endpoint = _endpoint(settings, project, "m", rng)
    w0 = _now_window() - 2 * WINDOW_MS

    def ev(ts, tag, i):
        return {"endpoint_id": endpoint.endpoint_id, "timestamp": ts, "request_id": f"{tag}{i}",
                "inputs": [rng.normal(size=2).round(5).tolist()]}

    records = [ev(w0 + i * 100, "a", i) for i in range(100)]
    # a window whose first rows come after the watermark passed its end, within the allowed lateness
    records += [ev(w0 - WINDOW_MS + 30_000, "z", i) for i in range(5)]
    records += [ev(w0 + WINDOW_MS + i * 100, "b", i) for i in range(100)]
    records += [ev(w0 + WINDOW_MS + 20_000 - 80_000, "c", i) for i in range(20)]  # 80 s behind: corrects window 0
    records += [ev(w0 + 2 * WINDOW_MS + i * 100, "d", i) for i in range(100)]
    records += [ev(w0 + 2 * WINDOW_MS + 10_000 - 130_000, "e", i) for i in range(10)]  # 130 s behind: late
    _write_stream(settings, project, records)
    build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, allowed_lateness_ms=60_000, max_disorder_ms=5_000,
                               checkpoint_interval_ms=1_000, arrow_batch_size=batch)).env.execute(f"late-{batch}")

    counts = {p.start_infer_time: p.count for p in open_tsdb(settings.tsdb_connection).query_predictions(project)}
    assert counts == {utc(w0 - WINDOW_MS): 5, utc(w0): 120, utc(w0 + WINDOW_MS): 100, utc(w0 + 2 * WINDOW_MS): 100}
    assert SqlStore(settings.endpoint_store_connection).get_endpoint(endpoint.endpoint_id).late_count == 10
    raw = _raw_rows(settings, endpoint.endpoint_id)
    assert len(raw) == 335 and sorted(raw.loc[raw["late"], "request_id"]) == sorted(f"e{i}" for i in range(10))


def test_every_record_of_a_mixed_stream_is_accounted_for(tmp_path):
    """records sent = records in results + records late + dead letters + records of disabled endpoints."""
    rng = np.random.default_rng(153)
    project = "mixed"
    settings = job_settings(tmp_path, None, project)
    native = _endpoint(settings, project, "native", rng)
    renamed = _endpoint(settings, project, "renamed", rng)
    disabled = _endpoint(settings, project, "disabled", rng)
    SqlStore(settings.endpoint_store_connection).set_monitoring_mode(disabled.endpoint_id, "disabled")
    mlrun = _endpoint(settings, project, "mlrun", rng, endpoint_id="mlrun-assigned-id")
    w0 = _now_window() - 2 * WINDOW_MS
    sec = w0 // 1000
    records, rows_sent = [], {}

    def send(endpoint_id, record, rows):
        records.append(record)
        rows_sent[endpoint_id] = rows_sent.get(endpoint_id, 0) + rows

    for i in range(40):  # every timestamp unit, every orientation
        ts = [sec + i, (w0 + i * 1000), (w0 + i * 1000) * 1000, (w0 + i * 1000) * 1_000_000][i % 4]
        inputs = [[[1.0, 2.0]], {"x": [1.0, 2.0], "y": [3.0, 4.0]}, {"columns": FEATURES, "data": [[1.0, 2.0]]},
                  [{"x": 1.0, "y": 2.0}]][i % 4]
        n = 2 if i % 4 == 1 else 1
        send(native.endpoint_id, {"endpoint_id": native.endpoint_id, "timestamp": ts, "request_id": f"n{i}",
                                  "inputs": inputs}, n)
    for i in range(10):  # placeholders in a numeric column: counted rows, invalid values (not dead letters)
        send(native.endpoint_id, {"endpoint_id": native.endpoint_id, "timestamp": w0 + 50_000 + i, "request_id": f"p{i}",
                                  "inputs": [[["N/A", "?"][i % 2], 2.0]]}, 1)
    for i in range(30):  # renamed features: counted, a visible irrelevant result
        send(renamed.endpoint_id, {"endpoint_id": renamed.endpoint_id, "timestamp": w0 + i,
                                   "inputs": {"X": 1.0, "Y": 2.0}}, 1)
    for i in range(25):
        send(disabled.endpoint_id, {"endpoint_id": disabled.endpoint_id, "timestamp": w0 + i, "inputs": [[1.0, 2.0]]}, 1)
    for i in range(20):  # MLRun 1.12
        send(mlrun.endpoint_id, {"function_uri": f"{project}/serving", "model": "mlrun:v1", "endpoint_id":
                                 mlrun.endpoint_id, "when": utc(w0 + i * 10).isoformat(),
                                 "request": {"inputs": [[0.5, 0.5], [0.1, 0.1]]}, "resp": {"outputs": [1, 0]}}, 2)
    later = [{"endpoint_id": native.endpoint_id, "timestamp": w0 + 2 * WINDOW_MS + i * 1000, "request_id": f"w2-{i}",
              "inputs": [[0.0, 0.0]]} for i in range(30)]
    for r in later:
        send(native.endpoint_id, r, 1)
    late = [{"endpoint_id": native.endpoint_id, "timestamp": w0 + 1000 + i, "request_id": f"late{i}",
             "inputs": [[0.0, 0.0]]} for i in range(5)]  # window 0, after window 2's events: late
    for r in late:
        send(native.endpoint_id, r, 1)
    bad = [b"{not json", json.dumps({"endpoint_id": "tab\tid", "timestamp": w0, "inputs": [[1, 2]]}).encode(),
           json.dumps({"endpoint_id": native.endpoint_id, "timestamp": w0, "inputs": [[1, 2], [3, 4]],
                       "outputs": [1]}).encode()]
    records += bad
    _write_stream(settings, project, records)
    build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, allowed_lateness_ms=60_000, max_disorder_ms=5_000,
                               checkpoint_interval_ms=1_000)).env.execute("mixed")

    tsdb, store = open_tsdb(settings.tsdb_connection), SqlStore(settings.endpoint_store_connection)
    for endpoint_id, sent in rows_sent.items():
        in_windows = sum(p.count for p in tsdb.query_predictions(project, endpoint_id))
        assert in_windows + store.get_endpoint(endpoint_id).late_count == sent, endpoint_id
    assert store.get_endpoint(native.endpoint_id).late_count == 5
    # window 0 of native: 60 rows of 2 numeric values, 10 of them placeholders
    shares = {m.start_infer_time: m.value for m in tsdb.query_metrics(project, native.endpoint_id,
                                                                      metric_name="invalid_share")}
    assert shares[utc(w0)] == pytest.approx(10 / 120)
    assert len(_dead_letters(settings, project)) == len(bad)
    # the disabled endpoint: counted, no drift
    assert tsdb.query_results(project, disabled.endpoint_id) == []
    # renamed features: a visible result, an error naming the cause, the problem on the endpoint
    (general,) = [r for r in tsdb.query_results(project, renamed.endpoint_id) if r.result_name == "general_drift"]
    assert general.status == -1 and general.value is None
    assert [e.error_type for e in tsdb.query_errors(project, renamed.endpoint_id)] == ["mm-app-unmatched-columns"]
    assert [p["kind"] for p in store.problems(renamed.endpoint_id)] == ["mm-app-unmatched-columns"]
    # the verdict (feature_drift by default) is each endpoint's drift status
    verdicts = {r.end_infer_time: r.status for r in tsdb.query_results(project, native.endpoint_id)
                if r.result_name == "feature_drift"}
    assert store.get_endpoint(native.endpoint_id).drift_status == verdicts[max(verdicts)]
