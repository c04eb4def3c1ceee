"""No record a producer sends and no store error can stop or stall the job (real Kafka, real Flink).

* hostile records among good ones, submitted to the local standalone cluster: every window written,
  no restart, each hostile record a dead letter with its reason; then a normal catch-up job on the
  same TaskManager after a burst of maximum-size records;
* kill -9 of the Python workers of a running job: every window's counts and drift as computed
  offline from the rows sent, no duplicate raw row;
* late rows read first after a restore from a savepoint correct a window that fired before it;
* 20 forced restarts: the TaskManager's metaspace stays flat;
* a store that refuses a window for good: the job goes on, the window is a dead letter with the
  store's message, and ``streamdrift dead-letters replay`` writes it once the cause is fixed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.settings import file_stream_dir, topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.monitoring_job import JobOptions, build
from tests.integration.jobkit import (
    cancel_job,
    consume,
    job_settings,
    kill_python_workers,
    new_project,
    produce,
    python_workers,
    taskmanager_pid,
    wait_for,
)
from streamdrift.udfs.accumulator import Accumulator
from streamdrift.udfs.histogram_drift import drift_from_accumulator

WINDOW_MS = 60_000
T0 = 1_700_000_040_000 - (1_700_000_040_000 % WINDOW_MS)
FEATURES = ["f_a", "f_b", "f_c"]


def _endpoint(settings, project, rng, model="m"):
    reference = pd.DataFrame(rng.normal(size=(1000, 3)), columns=FEATURES)
    return get_or_create_model_endpoint(project, model, "serving", reference=reference, feature_names=FEATURES,
                                        store=settings.endpoint_store_connection)


def _events(endpoint_id, start_ms, n, rng, prefix, shift=0.0):
    rows = (rng.normal(size=(n, 3)) + shift).round(6)
    return [{"endpoint_id": endpoint_id, "timestamp": start_ms + i * (WINDOW_MS // (n + 1)),
             "request_id": f"{prefix}-{i}", "inputs": [row.tolist()]} for i, row in enumerate(rows)]


def _submit(flink, tmp_path, kafka, project, *extra, detached=False):
    cmd = [sys.executable, "-m", "streamdrift.jobs.cli", "submit", "--jobmanager", flink.address,
           "--data-dir", str(tmp_path), "--project", project, "--stream-path", kafka.stream_path,
           "--base-period", "1", "--parallelism", "2", "--job-name", f"it-{project}", *extra]
    if not detached:
        cmd[4:4] = ["--attached"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _job(flink, name):
    return next(j for j in flink.rest("/jobs/overview")["jobs"] if j["name"] == name)


def _restarts(flink, job_id) -> int:
    """The job's restarts (its ``numRestarts`` metric; the exception history keeps only 16)."""
    metric = flink.rest(f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(float(metric[0]["value"])) if metric else 0


HOSTILE = [
    (b'{"endpoint_id": "%s", "timestamp": %d, "request_id": "\\ud800", "inputs": [[1, 2, 3]]}', "lone surrogate"),
    (b'{"endpoint_id": "%s", "timestamp": %d, "request_id": "\xed\xa0\x80", "inputs": [[1, 2, 3]]}', "surrogate"),
    (b'{"endpoint_id": "tab\\t%s", "timestamp": %d, "inputs": [[1, 2, 3]]}', "control character '\\t'"),
    (b'{"endpoint_id": "nl\\n%s", "timestamp": %d, "inputs": [[1, 2, 3]]}', "control character '\\n'"),
    (b'{"endpoint_id": "nul\\u0000%s", "timestamp": %d, "inputs": [[1, 2, 3]]}', "control character '\\x00'"),
    (b'{"endpoint_id": "del\\u007f%s", "timestamp": %d, "inputs": [[1, 2, 3]]}', "control character '\\x7f'"),
    (b'{"endpoint_id": "nel\\u0085%s", "timestamp": %d, "inputs": [[1, 2, 3]]}', "control character '\\x85'"),
    (b'{"endpoint_id": "%s", "timestamp": "9999-12-31T23:59:30Z", "x": %d, "inputs": [[1, 2, 3]]}', "ahead of the job"),
    (b'{"endpoint_id": "%s", "timestamp": "2100-01-01T00:00:00Z", "x": %d, "inputs": [[1, 2, 3]]}', "ahead of the job"),
]


def test_hostile_records_become_dead_letters_and_the_job_never_restarts(tmp_path, kafka, flink):
    rng = np.random.default_rng(14)
    project = new_project(kafka, "poison")
    settings = job_settings(tmp_path, kafka, project)
    endpoint = _endpoint(settings, project, rng)
    eid = endpoint.endpoint_id
    before = _events(eid, T0, 40, rng, "a") + _events(eid, T0 + WINDOW_MS, 40, rng, "b")
    hostile = [template % (eid.encode(), T0 + WINDOW_MS + 7) for template, _ in HOSTILE]
    # a burst of records over the size limit (1-3 MB), and of valid records of up to 1 MiB (about
    # 30,000 rows each) in the third window
    oversize = [json.dumps({"endpoint_id": eid, "timestamp": T0 + 2 * WINDOW_MS, "pad": "x" * (size << 20)}).encode()
                for size in (1, 2, 3) * 30]
    big_rows = [rng.normal(size=(30_000, 3)).round(5) for _ in range(10)]
    big = [json.dumps({"endpoint_id": eid, "timestamp": T0 + 2 * WINDOW_MS + i, "request_id": f"big-{i}",
                       "inputs": rows.tolist()}).encode() for i, rows in enumerate(big_rows)]
    assert all(len(b) <= 1 << 20 for b in big)
    after = _events(eid, T0 + 2 * WINDOW_MS, 40, rng, "c") + _events(eid, T0 + 3 * WINDOW_MS, 40, rng, "d")
    # one partition: records in the order sent (the watermark follows them)
    produce(kafka, topic_names(project)["events"], before + hostile + oversize + big + after, partition=0)

    proc = _submit(flink, tmp_path, kafka, project, "--bounded")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job = _job(flink, f"it-{project}")
    assert job["state"] == "FINISHED"
    assert _restarts(flink, job["jid"]) == 0

    counts = sorted((p.start_infer_time, p.count) for p in open_tsdb(settings.tsdb_connection).query_predictions(project))
    assert [c for _, c in counts] == [40, 40, 40 + sum(len(r) for r in big_rows), 40]
    letters = consume(kafka, topic_names(project)["dead_letters"])
    reasons = [letter["reason"] for letter in letters]
    assert len(letters) == len(hostile) + len(oversize), reasons
    for _, words in HOSTILE:
        assert any(words in r for r in reasons), (words, reasons)
    too_big = [letter for letter in letters if "exceeds the limit" in letter["reason"]]
    assert sorted(letter["size_bytes"] for letter in too_big) == sorted(len(b) for b in oversize)
    assert all(letter["truncated"] and len(letter["payload"]) <= 64 << 10 for letter in too_big)

    # a normal catch-up on the same TaskManager after the burst
    catch_up = new_project(kafka, "catchup")
    settings2 = job_settings(tmp_path / "catchup", kafka, catch_up)
    other = _endpoint(settings2, catch_up, rng)
    produce(kafka, topic_names(catch_up)["events"],
            [e for w in range(3) for e in _events(other.endpoint_id, T0 + w * WINDOW_MS, 500, rng, f"w{w}")], partition=0)
    proc = _submit(flink, tmp_path / "catchup", kafka, catch_up, "--bounded")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _restarts(flink, _job(flink, f"it-{catch_up}")["jid"]) == 0
    assert sorted(p.count for p in open_tsdb(settings2.tsdb_connection).query_predictions(catch_up)) == [500] * 3


def _offline(feature_stats, rows):
    acc = Accumulator.from_reference(feature_stats)
    acc.add_batch(np.asarray(rows, dtype=float))
    return drift_from_accumulator(feature_stats, acc).general_drift


def test_a_killed_python_worker_changes_no_result(tmp_path, kafka):
    rng = np.random.default_rng(15)
    project = new_project(kafka, "kill")
    settings = job_settings(tmp_path, kafka, project)
    endpoint = _endpoint(settings, project, rng)
    topic = topic_names(project)["events"]
    windows = {w: _events(endpoint.endpoint_id, T0 + w * WINDOW_MS, 3000, rng, f"w{w}", shift=0.3 * w)
               for w in range(6)}
    graph = build(settings, JobOptions(window_ms=WINDOW_MS, checkpoint_interval_ms=1_000, restart_delay_s=1,
                                       parallelism=2, idle_grace_ms=1_000, max_disorder_ms=1_000))
    client = graph.env.execute_async(f"it-{project}")
    tsdb = open_tsdb(settings.tsdb_connection)
    try:
        produce(kafka, topic, [e for w in range(3) for e in windows[w]], partition=0)
        wait_for(lambda: len(tsdb.query_predictions(project)) >= 2, 120, "the first windows")
        assert kill_python_workers(os.getpid()) >= 1
        produce(kafka, topic, [e for w in range(3, 6) for e in windows[w]], partition=0)
        try:
            wait_for(lambda: len(tsdb.query_predictions(project)) == 6, 300, "every window after the restart")
        except AssertionError:
            raise AssertionError(f"job {client.get_job_status().result()}, windows "
                                 f"{sorted((p.start_infer_time, p.count) for p in tsdb.query_predictions(project))}")
        stats = SqlStore(settings.endpoint_store_connection).get_endpoint(endpoint.endpoint_id).feature_stats
        drift = {r.start_infer_time: r.value for r in tsdb.query_results(project) if r.result_name == "general_drift"}
        counts = {p.start_infer_time: p.count for p in tsdb.query_predictions(project)}
        for w, events in windows.items():
            start = pd.Timestamp(T0 + w * WINDOW_MS, unit="ms", tz="UTC").to_pydatetime()
            assert counts[start] == 3000
            assert drift[start] == pytest.approx(_offline(stats, [e["inputs"][0] for e in events]), rel=1e-9)
        # raw rows: committed with the checkpoints after the last window, none twice
        wait_for(lambda: len(_parquet_ids(tmp_path)) == 18_000, 60, "the raw rows committed")
        ids = _parquet_ids(tmp_path)
        assert len(set(ids)) == len(ids) == 18_000
    finally:
        client.cancel().result()


def test_late_rows_after_a_restore_correct_a_window_that_fired_before_it(tmp_path, kafka):
    """A window fires when the watermark passes its end, the job stops with a savepoint, and the
    first rows the job restored from it reads are late rows of that window (within the allowed
    lateness): the restored job's watermark starts again from those rows, below the window's end.
    The window's result must still count them, and its drift be that of all of its rows."""
    from pyflink.util.java_utils import get_j_env_configuration

    rng = np.random.default_rng(21)
    project = new_project(kafka, "restorelate")
    settings = job_settings(tmp_path, kafka, project)
    endpoint = _endpoint(settings, project, rng)
    topic = topic_names(project)["events"]
    w0, w1 = (_events(endpoint.endpoint_id, T0 + w * WINDOW_MS, 300, rng, f"w{w}") for w in range(2))
    late = _events(endpoint.endpoint_id, T0, 30, rng, "late", shift=2.0)
    w2 = _events(endpoint.endpoint_id, T0 + 2 * WINDOW_MS, 300, rng, "w2")
    options = JobOptions(window_ms=WINDOW_MS, checkpoint_interval_ms=1_000, idle_grace_ms=600_000,
                         max_disorder_ms=1_000)
    tsdb = open_tsdb(settings.tsdb_connection)
    first = utc_ms(T0)

    def counts():
        return {p.start_infer_time: p.count for p in tsdb.query_predictions(project)}

    client = build(settings, options).env.execute_async(f"it-{project}")
    try:
        produce(kafka, topic, w0 + w1, partition=0)  # window 1's rows move the watermark past window 0's end
        wait_for(lambda: counts().get(first) == 300, 120, "window 0 fired by the watermark")
        savepoint = _stop_with_savepoint(client, tmp_path / "savepoints")
    except BaseException:
        client.cancel().result()
        raise
    produce(kafka, topic, late, partition=0)
    graph = build(settings, options)
    get_j_env_configuration(graph.env._j_stream_execution_environment).setString(
        "execution.state-recovery.path", savepoint)
    client = graph.env.execute_async(f"it-{project}-restored")
    try:
        # the late rows have passed the window stage once a checkpoint holds their raw rows
        wait_for(lambda: {e["request_id"] for e in late} <= set(_parquet_ids(tmp_path)), 120,
                 "the late rows read after the restore")
        produce(kafka, topic, w2, partition=0)
        try:
            wait_for(lambda: counts().get(first) == 330 and counts().get(utc_ms(T0 + WINDOW_MS)) == 300, 120,
                     "window 0 corrected by its late rows")
        except AssertionError:
            raise AssertionError(f"job {client.get_job_status().result()}, windows {sorted(counts().items())}")
        stats = SqlStore(settings.endpoint_store_connection).get_endpoint(endpoint.endpoint_id).feature_stats
        drift = [r.value for r in tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")
                 if r.start_infer_time == first]
        assert drift == [pytest.approx(_offline(stats, [e["inputs"][0] for e in w0 + late]), rel=1e-9)]
    finally:
        client.cancel().result()


def _stop_with_savepoint(client, directory) -> str:
    """Stop a job with a savepoint in ``directory``; its path (PyFlink 2.2's ``stop_with_savepoint``
    calls a Java method that takes a savepoint format since Flink 1.15)."""
    from pyflink.java_gateway import get_gateway

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    return client._j_job_client.stopWithSavepoint(False, directory.as_uri(), canonical).get()


def utc_ms(ms: int):
    return pd.Timestamp(ms, unit="ms", tz="UTC").to_pydatetime()


def _parquet_ids(root) -> list[str]:
    files = [f for f in (root / "parquet").rglob("part-*") if not f.name.startswith(".")]
    return [i for f in files for i in pq.read_table(f, columns=["request_id"]).column(0).to_pylist()]


def test_twenty_restarts_leave_the_taskmanager_metaspace_flat(tmp_path, kafka, flink):
    rng = np.random.default_rng(16)
    project = new_project(kafka, "restarts", partitions=1)
    settings = job_settings(tmp_path, kafka, project)
    endpoint = _endpoint(settings, project, rng)
    proc = _submit(flink, tmp_path, kafka, project, "--restart-max-failures", "40", "--restart-delay-seconds", "1",
                   detached=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job = _job(flink, f"it-{project}")
    tm_pid = taskmanager_pid(flink)
    tm_id = flink.rest("/taskmanagers")["taskmanagers"][0]["id"]

    def metaspace() -> float:
        metric = flink.rest(f"/taskmanagers/{tm_id}/metrics?get=Status.JVM.Memory.Metaspace.Used")
        return float(metric[0]["value"])

    used = {}
    try:
        for restart in range(1, 21):
            produce(kafka, topic_names(project)["events"], _events(endpoint.endpoint_id, T0, 20, rng, f"r{restart}"))
            wait_for(lambda: flink.rest(f"/jobs/{job['jid']}")["state"] == "RUNNING" and python_workers(tm_pid),
                     120, f"the job running its Python workers before restart {restart}")
            assert kill_python_workers(tm_pid) >= 1
            killed_at = [time.monotonic()]

            def restarted() -> bool:
                if _restarts(flink, job["jid"]) >= restart:
                    return True
                # the workers killed may have been the last attempt's, on their way out: kill the
                # running attempt's once it has some
                if time.monotonic() - killed_at[0] > 20 and python_workers(tm_pid) and kill_python_workers(tm_pid):
                    killed_at[0] = time.monotonic()
                return False

            wait_for(restarted, 180, f"restart {restart}")
            if restart in (5, 20):
                wait_for(lambda: flink.rest(f"/jobs/{job['jid']}")["state"] == "RUNNING", 120, "running again")
                used[restart] = metaspace()
        assert flink.rest(f"/jobs/{job['jid']}")["state"] == "RUNNING"
    finally:
        cancel_job(flink, job["jid"])
    # a job class loader left behind at each restart held ~10+ MB of classes (Kafka, Parquet, Hadoop)
    assert used[20] - used[5] < 16 << 20, used


def test_a_store_refusing_a_window_sets_it_aside_and_replay_writes_it(tmp_path):
    rng = np.random.default_rng(17)
    project = "refused"
    settings = job_settings(tmp_path, None, project)
    kept, refused = _endpoint(settings, project, rng, "kept"), _endpoint(settings, project, rng, "refused")
    # a real store that refuses one endpoint's results for good (an integrity error is not an outage)
    tsdb = open_tsdb(settings.tsdb_connection, create_schema=True)
    tsdb.close()
    path = settings.tsdb_connection[len("sqlite:///"):]
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON app_results WHEN NEW.endpoint_id = '{refused.endpoint_id}' "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the operator''s trigger'); END")
    stream = file_stream_dir(settings.stream_path) / topic_names(project)["events"]
    stream.mkdir(parents=True, exist_ok=True)
    events = {e.endpoint_id: [e2 for w in range(2) for e2 in _events(e.endpoint_id, T0 + w * WINDOW_MS, 50, rng, f"{m}{w}")]
              for e, m in ((kept, "k"), (refused, "r"))}
    (stream / "events.json").write_text("\n".join(json.dumps(e) for es in events.values() for e in es) + "\n")

    build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=1_000)).env.execute("refused")
    # the log says why, with the store's own message (a local job's Python functions log to PyFlink's log)
    import pyflink

    logs = list((Path(pyflink.__file__).parent / "log").glob("flink-*python*.log"))
    assert any(refused.endpoint_id in line and "refused by the operator's trigger" in line
               for path in logs for line in path.read_text(errors="replace").splitlines())

    tsdb = open_tsdb(settings.tsdb_connection)
    assert len([r for r in tsdb.query_results(project, kept.endpoint_id) if r.result_name == "general_drift"]) == 2
    assert tsdb.query_results(project, refused.endpoint_id) == []
    letters = [json.loads(line) for f in (file_stream_dir(settings.stream_path) / topic_names(project)["dead_letters"])
               .rglob("part-*") for line in f.read_text().splitlines() if line.strip()]
    assert len(letters) == 2 and all(letter["kind"] == "window-output" for letter in letters)
    assert all("refused by the operator's trigger" in letter["reason"] for letter in letters)
    assert sorted(letter["output"]["prediction"]["count"] for letter in letters) == [50, 50]
    store = SqlStore(settings.endpoint_store_connection)
    problems = store.problems(refused.endpoint_id)
    assert [p["kind"] for p in problems] == ["store-write-failed"]
    assert "refused by the operator's trigger" in problems[0]["message"] and problems[0]["occurrences"] == 2

    cli = [sys.executable, "-m", "streamdrift.jobs.cli", "dead-letters", "replay", "--data-dir", str(tmp_path),
           "--project", project]
    still = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert still.returncode == 2 and "refused by the operator's trigger" in still.stderr
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER refuse")
    done = subprocess.run(cli + ["--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"replayed": 2, "skipped": 0}
    results = [r for r in tsdb.query_results(project, refused.endpoint_id) if r.result_name == "general_drift"]
    stats = store.get_endpoint(refused.endpoint_id).feature_stats
    by_window = {}
    for e in events[refused.endpoint_id]:
        by_window.setdefault(e["timestamp"] - e["timestamp"] % WINDOW_MS, []).append(e["inputs"][0])
    assert sorted(r.value for r in results) == pytest.approx(sorted(_offline(stats, rows) for rows in by_window.values()))
    assert store.problems(refused.endpoint_id) == []
    again = subprocess.run(cli + ["--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout) == {"replayed": 0, "skipped": 0}  # each letter written once


def test_submit_keeps_the_password_out_of_arguments_environment_and_logs(tmp_path, kafka, flink, mysql):
    import threading
    import uuid

    from tests.integration.jobkit import drop_mariadb_user, mariadb_user

    rng = np.random.default_rng(18)
    project = new_project(kafka, "secret", partitions=1)
    password = f"Pw{uuid.uuid4().hex[:12]}"
    database, user = f"secret_{uuid.uuid4().hex[:8]}", f"u{uuid.uuid4().hex[:8]}"
    store_url = mariadb_user(mysql, database, user, password)
    try:
        settings = job_settings(tmp_path, kafka, project, endpoint_store_connection=store_url)
        endpoint = _endpoint(settings, project, rng)
        produce(kafka, topic_names(project)["events"], _events(endpoint.endpoint_id, T0, 30, rng, "s"))
        seen, done = [], threading.Event()

        def watch():  # the arguments and environment of every process while the job is submitted
            while not done.is_set():
                for proc in Path("/proc").iterdir():
                    try:
                        seen.append(((proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()))
                    except OSError:
                        pass
                done.wait(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            # the way to keep a password off the command line: the environment of streamdrift itself
            cmd = [sys.executable, "-m", "streamdrift.jobs.cli", "submit", "--jobmanager", flink.address, "--attached",
                   "--data-dir", str(tmp_path), "--project", project, "--stream-path", kafka.stream_path,
                   "--base-period", "1", "--job-name", f"it-{project}", "--bounded"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                                  env={**os.environ, "STREAMDRIFT_ENDPOINT_STORE_CONNECTION": store_url})
        finally:
            done.set()
            watcher.join()
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert sorted(p.count for p in open_tsdb(settings.tsdb_connection).query_predictions(project)) == [30]
        # what submit started: Flink's client (java ... CliFrontend) and the job's entry point (Python)
        started = [(cmd, env) for cmd, env in seen if b"CliFrontend" in cmd or b"monitoring_job" in cmd]
        assert started and not any(password.encode() in cmd + env for cmd, env in started)
        logs = [p for p in flink.log_dir.rglob("*") if p.is_file()]
        assert logs and not any(password.encode() in p.read_bytes() for p in logs)
        assert password not in proc.stdout + proc.stderr
        assert not list((flink.home.parent / "submit").glob("settings-*.yaml"))  # the settings file is gone
    finally:
        drop_mariadb_user(mysql, database, user)
