"""The monitoring job on real Kafka and a real Flink (local mini cluster, and the standalone cluster).

Results are checked against an offline computation with ``udfs`` on the same rows; dead letters
are read back from their Kafka topic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from streamdrift.connectors import raw_rows
from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.raw_rows import read_window_rows
from streamdrift.connectors.settings import topic_names
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.monitoring_job import JobOptions, build
from tests.integration.jobkit import consume, job_settings, new_project, produce, utc, wait_for
from streamdrift.udfs.accumulator import Accumulator
from streamdrift.udfs.events import Columns
from streamdrift.udfs.histogram_drift import drift_from_accumulator

WINDOW_MS = 60_000
T0 = 1_700_000_040_000 - (1_700_000_040_000 % WINDOW_MS)  # a window boundary
FEATURES = ["f_a", "f_b", "f_c"]


@pytest.fixture()
def project(kafka):
    return new_project(kafka)


def _settings(tmp_path, kafka, project, **extra):
    return job_settings(tmp_path, kafka, project, **extra)


_produce, _consume, _utc, _wait_for = produce, consume, utc, wait_for


def _offline_drift(feature_stats, rows_by_window: dict[int, list[dict]]):
    """The drift of each window computed with udfs alone, on the rows the test sent."""
    out = {}
    for start, rows in rows_by_window.items():
        acc = Accumulator.from_reference(feature_stats)
        names = acc.numeric_columns
        acc.add_batch(np.array([[r.get(n, np.nan) for n in names] for r in rows], dtype=float))
        out[start] = (len(rows), drift_from_accumulator(feature_stats, acc).general_drift)
    return out


def test_known_events_give_offline_results_and_dead_letters(tmp_path, kafka, project):
    rng = np.random.default_rng(1)
    reference = pd.DataFrame(rng.normal(size=(2000, 3)), columns=FEATURES)
    reference["score"] = rng.uniform(size=2000)
    settings = _settings(tmp_path, kafka, project)
    native = get_or_create_model_endpoint(project, "model-a", "serving", reference=reference,
                                          feature_names=FEATURES, output_names=["score"],
                                          store=settings.endpoint_store_connection)
    mlrun = get_or_create_model_endpoint(project, "model-b", "serving-fn", reference=reference[FEATURES],
                                         feature_names=FEATURES, model_version="v2", function_tag="prod",
                                         store=settings.endpoint_store_connection)
    # MLRun's id: sha1 of project_function_tag_model_version
    assert mlrun.endpoint_id == hashlib.sha1(f"{project}_serving-fn_prod_model-b_v2".encode()).hexdigest()

    records, expected_rows = [], {native.endpoint_id: {}, mlrun.endpoint_id: {}}

    def expect(endpoint, ts, row):
        expected_rows[endpoint].setdefault(ts - ts % WINDOW_MS, []).append(row)

    for i in range(300):  # native: batches of 1-3 rows as lists, multi-port outputs; drift in window 2
        ts = T0 + i * 400
        shift = 3.0 if ts >= T0 + WINDOW_MS else 0.0
        batch = (rng.normal(size=(1 + i % 3, 3)) + shift).round(6)
        scores = rng.uniform(size=len(batch)).round(6)
        records.append({"endpoint_id": native.endpoint_id, "timestamp": ts, "request_id": f"n{i}",
                        "inputs": batch.tolist(), "outputs": {"score": scores.tolist()}, "latency_us": 500 + i})
        for row, score in zip(batch, scores):
            expect(native.endpoint_id, ts, {**dict(zip(FEATURES, row)), "score": score})
    for i in range(120):  # MLRun serving events, rows as objects, ISO "when" with a space
        ts = T0 + i * 1000
        row = dict(zip(FEATURES, rng.normal(size=3).round(6)))
        when = dt.datetime.fromtimestamp(ts / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        records.append({"model": "model-b", "version": "v2", "function_uri": f"{project}/serving-fn:prod",
                        "when": when, "microsec": 800, "request": {"id": f"m{i}", "inputs": [row]},
                        "resp": {"id": f"m{i}", "outputs": [1]}})
        expect(mlrun.endpoint_id, ts, row)
    records.append({"model": "model-b", "version": "v2", "function_uri": f"{project}/serving-fn:prod",
                    "when": dt.datetime.fromtimestamp(T0 / 1000, dt.timezone.utc).isoformat(), "error": "boom",
                    "request": {"id": "failed", "inputs": [[0, 0, 0]]}})
    bad = [b"{not json", json.dumps({"endpoint_id": native.endpoint_id, "timestamp": T0,
                                     "inputs": [[1, 2, 3], [4, 5, 6]], "outputs": [1]}).encode(),
           json.dumps({"what": "is this"}).encode(),
           json.dumps({"endpoint_id": native.endpoint_id, "timestamp": T0, "inputs": [[{"a": 1}, 1, 2]]}).encode(),
           b'{"endpoint_id": "big", "timestamp": 0, "inputs": [[' + b"1," * (5 << 20) + b'1]]}']
    _produce(kafka, topic_names(project)["events"], records + bad)

    graph = build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=2_000,
                                       parallelism=2))
    graph.env.execute("it-known-events")

    tsdb = open_tsdb(settings.tsdb_connection)
    feature_stats = SqlStore(settings.endpoint_store_connection).get_endpoint(native.endpoint_id).feature_stats
    for endpoint in (native.endpoint_id, mlrun.endpoint_id):
        offline = _offline_drift(feature_stats if endpoint == native.endpoint_id else
                                 SqlStore(settings.endpoint_store_connection).get_endpoint(endpoint).feature_stats,
                                 expected_rows[endpoint])
        results = {int(r.start_infer_time.timestamp() * 1000): r for r in tsdb.query_results(project, endpoint)
                   if r.result_name == "general_drift"}
        rows = {int(p.start_infer_time.timestamp() * 1000): p.count for p in tsdb.query_predictions(project, endpoint)}
        assert sorted(results) == sorted(offline), endpoint
        for start, (n, drift) in offline.items():
            assert rows[start] == n
            assert results[start].value == pytest.approx(drift, rel=1e-9, abs=1e-12)
    # the shift of 3 of the 4 monitored columns in the native endpoint's second window: potential drift
    native_results = sorted(tsdb.query_results(project, native.endpoint_id, result_name="general_drift"),
                            key=lambda r: r.start_infer_time)
    assert native_results[0].status == 0 and native_results[1].status == 1
    drifted = native_results[1].extra_data["columns"]
    assert {name for name, c in drifted.items() if c["drift"] > 0.7} == set(FEATURES)
    # the failed MLRun request is counted as an error of its window
    predictions = tsdb.query_predictions(project, mlrun.endpoint_id)
    assert sum(p.error_count for p in predictions) == 1

    # the raw rows are in Parquet, one per sample, as sent
    for endpoint, columns in ((native.endpoint_id, Columns(tuple(FEATURES), ("score",))),
                              (mlrun.endpoint_id, Columns(tuple(FEATURES), ()))):
        for start, sent in expected_rows[endpoint].items():
            frame = read_window_rows(settings.parquet_path, endpoint, _utc(start), _utc(start + WINDOW_MS),
                                     lambda _: columns)
            good = frame[~frame["error"] & frame["f_a"].map(lambda v: not isinstance(v, str))]
            assert len(good) == len(sent)
            np.testing.assert_allclose(good[FEATURES].to_numpy(float), [[r[f] for f in FEATURES] for r in sent])
            assert not good["late"].any()
    # what a user reading the Parquet files directly sees: the request's columns beside the payload
    import pyarrow.parquet as pq

    files, _ = raw_rows.files(str(tmp_path / "parquet"), native.endpoint_id)
    table = pd.concat([pq.read_table(f).to_pandas() for f in files])
    assert list(table.columns) == ["event_ms", "request_id", "latency_us", "error", "late", "payload", "endpoint_id"]
    table = table[table["endpoint_id"] == native.endpoint_id]  # its shard's files hold other endpoints' rows
    # what a good record always has is a required column (only request id and latency may be missing)
    assert [f.name for f in pq.read_schema(files[0]) if f.nullable] == ["request_id", "latency_us"]
    sent = {r["request_id"]: (r["timestamp"], float(r["latency_us"])) for r in records
            if r.get("endpoint_id") == native.endpoint_id}
    assert dict(zip(table["request_id"], zip(table["event_ms"], table["latency_us"]))) == sent
    assert not table["error"].any() and not table["late"].any()
    # the payload column holds the record's bytes as they were sent
    assert pq.read_schema(files[0]).field("payload").type == "binary"
    assert table.loc[table["request_id"] == "n7", "payload"].iloc[0] == json.dumps(records[7]).encode()
    # a dead letter (here: a value that does not fit the reference) is on its topic, not in Parquet
    first = read_window_rows(settings.parquet_path, native.endpoint_id, _utc(T0), _utc(T0 + WINDOW_MS))
    assert len(first) == len(expected_rows[native.endpoint_id][T0]) and "x" not in first["f0"].tolist()
    failed = read_window_rows(settings.parquet_path, mlrun.endpoint_id, _utc(T0), _utc(T0 + WINDOW_MS))
    assert failed["error"].sum() == 1 and failed.loc[failed["error"], "request_id"].tolist() == ["failed"]

    letters = _consume(kafka, topic_names(project)["dead_letters"])
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(letters) == len(bad), reasons
    assert any(r.startswith("malformed JSON") for r in reasons)
    assert any("has 2 values, 'inputs' has 2 rows" in r or "field 'outputs' has 1 values, 'inputs' has 2 rows" in r
               for r in reasons)
    assert any(r.startswith("unknown event format") for r in reasons)
    assert any("'f_a'" in r for r in reasons)  # a value that fits no numeric column (a string is an invalid value)
    big = next(letter for letter in letters if "exceeds the limit" in letter["reason"])
    assert big["truncated"] and big["size_bytes"] > 10 << 20 and len(big["payload"]) < 100_000


def test_idle_close_then_late_correction_leave_one_row(tmp_path, kafka, project):
    rng = np.random.default_rng(2)
    reference = pd.DataFrame(rng.normal(size=(1000, 3)), columns=FEATURES)
    settings = _settings(tmp_path, kafka, project)
    endpoint = get_or_create_model_endpoint(project, "model-c", "serving", reference=reference,
                                            store=settings.endpoint_store_connection)
    window_ms = 4_000
    now = int(time.time() * 1000)
    start = now - now % window_ms
    events = [{"endpoint_id": endpoint.endpoint_id, "timestamp": start + i * 10, "request_id": f"r{i}",
               "inputs": [rng.normal(size=3).round(5).tolist()]} for i in range(50)]
    _produce(kafka, topic_names(project)["events"], events)

    graph = build(settings, JobOptions(window_ms=window_ms, idle_grace_ms=2_000, max_disorder_ms=500,
                                       allowed_lateness_ms=600_000, checkpoint_interval_ms=1_000))
    client = graph.env.execute_async("it-idle-late")
    tsdb = open_tsdb(settings.tsdb_connection)

    def window_rows():
        return [p for p in tsdb.query_predictions(project, endpoint.endpoint_id)
                if int(p.start_infer_time.timestamp() * 1000) == start]

    try:
        # traffic stopped: no later event moves the watermark, yet the window closes by itself
        _wait_for(lambda: window_rows() and window_rows()[0].count == 50, 90, "the idle window's result")
        assert len(tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")) == 1
        first = tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")[0].value

        # a late event for the closed window corrects it: same row, new count and value
        late = [{"endpoint_id": endpoint.endpoint_id, "timestamp": start + 1, "request_id": f"late{i}",
                 "inputs": [[5.0, 5.0, 5.0]]} for i in range(10)]
        _produce(kafka, topic_names(project)["events"], late)
        _wait_for(lambda: window_rows() and window_rows()[0].count == 60, 60, "the corrected window")
        results = tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")
        assert len(results) == 1 and len(window_rows()) == 1
        assert results[0].value > first
        # the writer commits the two stores side by side: the SQL store's totals may land a moment later
        sql = SqlStore(settings.endpoint_store_connection)
        _wait_for(lambda: sql.get_endpoint(endpoint.endpoint_id)["rows_count"] >= 60, 30, "the corrected totals")
        assert sql.get_endpoint(endpoint.endpoint_id)["rows_count"] == 60
    finally:
        client.cancel().result()


def _mlrun_general_drift(feature_stats, names, rows: np.ndarray) -> float:
    """MLRun's general_drift of a window, with numpy alone: np.histogram of the rows on the padded
    reference edges, p = window counts / rows, q = reference counts / count; the mean over the
    columns of (TVD + Hellinger) / 2."""
    per_column = []
    for j, name in enumerate(names):
        counts, edges = feature_stats[name]["hist"]
        p = np.histogram(rows[:, j], bins=np.asarray(edges))[0] / len(rows)
        q = np.asarray(counts) / feature_stats[name]["count"]
        tvd = np.abs(p - q).sum() / 2
        hellinger = np.sqrt(max(1 - np.sqrt(p * q).sum(), 0))
        per_column.append((tvd + hellinger) / 2)
    return float(np.mean(per_column))


def test_feature_drift_flags_a_half_sigma_shift_of_three_of_twenty_features(tmp_path, kafka, project):
    rng = np.random.default_rng(16)
    names = [f"x{i:02d}" for i in range(20)]
    shifted = ["x03", "x07", "x15"]
    reference = pd.DataFrame(rng.normal(size=(5000, 20)), columns=names)
    settings = _settings(tmp_path, kafka, project)
    endpoint = get_or_create_model_endpoint(project, "model-v", "serving", reference=reference,
                                            feature_names=names, store=settings.endpoint_store_connection)
    # five windows of 400 rows (100 requests of 4 rows); from the third on, +0.5 sigma on three features
    shift = np.isin(names, shifted) * 0.5
    records, rows = [], {}
    for w in range(5):
        start = T0 + w * WINDOW_MS
        batch = (rng.normal(size=(400, 20)) + (shift if w >= 2 else 0)).round(6)
        rows[start] = batch
        records += [{"endpoint_id": endpoint.endpoint_id, "timestamp": start + i * 500, "request_id": f"{w}-{i}",
                     "inputs": batch[4 * i:4 * i + 4].tolist()} for i in range(100)]
    _produce(kafka, topic_names(project)["events"], records, partition=0)

    build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=2_000,
                               parallelism=2)).env.execute("it-feature-drift")

    results = open_tsdb(settings.tsdb_connection).query_results(project, endpoint.endpoint_id)
    by_name = {name: {int(r.start_infer_time.timestamp() * 1000): r for r in results if r.result_name == name}
               for name in ("general_drift", "feature_drift")}
    assert sorted(by_name["feature_drift"]) == sorted(by_name["general_drift"]) == sorted(rows)
    feature_stats = SqlStore(settings.endpoint_store_connection).get_endpoint(endpoint.endpoint_id).feature_stats
    for w, start in enumerate(sorted(rows)):
        verdict = by_name["feature_drift"][start]
        columns = verdict.extra_data["columns"]
        rejected = sorted(name for name, c in columns.items() if c["rejected"])
        assert (verdict.status >= 1) == (w >= 2), (w, rejected)
        assert rejected == (shifted if w >= 2 else []), w
        assert verdict.value == pytest.approx(len(rejected) / 20) and verdict.kind == 0
        assert {c["n"] for c in columns.values()} == {400} and {c["N"] for c in columns.values()} == {5000}
        general = by_name["general_drift"][start]
        assert general.value == pytest.approx(_mlrun_general_drift(feature_stats, names, rows[start]),
                                              rel=1e-9, abs=1e-12)
        assert general.status == 0  # MLRun's rule sees none of it: a mean over 20 columns stays low


def _named_endpoint(tmp_path, kafka, project, model: str, seed: int):
    """(rng, settings, endpoint): an endpoint with FEATURES named, reference of 1,000 normal rows."""
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(rng.normal(size=(1000, 3)), columns=FEATURES)
    settings = _settings(tmp_path, kafka, project)
    endpoint = get_or_create_model_endpoint(project, model, "serving", reference=reference,
                                            feature_names=FEATURES, store=settings.endpoint_store_connection)
    return rng, settings, endpoint


def test_events_beyond_the_allowed_lateness_are_counted_and_flagged_late_in_parquet(tmp_path, kafka, project):
    rng, settings, endpoint = _named_endpoint(tmp_path, kafka, project, "model-e", seed=4)
    window_ms = 2_000
    old = T0  # a window long closed once the later events move the watermark

    def events(start, n, prefix):
        return [{"endpoint_id": endpoint.endpoint_id, "timestamp": start + i * 10, "request_id": f"{prefix}{i}",
                 "inputs": [rng.normal(size=3).round(5).tolist()]} for i in range(n)]

    topic = topic_names(project)["events"]
    # one partition: the job reads them in this order (the on-time ones before the watermark moves)
    _produce(kafka, topic, events(old, 30, "on-time") + events(old + 10 * window_ms, 20, "later"), partition=0)
    graph = build(settings, JobOptions(window_ms=window_ms, max_disorder_ms=200, allowed_lateness_ms=0,
                                       idle_grace_ms=1_000, checkpoint_interval_ms=1_000))
    client = graph.env.execute_async("it-late")
    tsdb = open_tsdb(settings.tsdb_connection)
    store = SqlStore(settings.endpoint_store_connection)

    def counted(start):
        return sum(p.count for p in tsdb.query_predictions(project, endpoint.endpoint_id)
                   if int(p.start_infer_time.timestamp() * 1000) == start)

    def parquet_rows():
        return read_window_rows(settings.parquet_path, endpoint.endpoint_id, _utc(old), _utc(old + window_ms),
                                lambda _: Columns(tuple(FEATURES), ()))

    try:
        _wait_for(lambda: counted(old) == 30, 90, "the old window's result")
        # the watermark is now past the old window's end (+ no lateness): these events are too late
        _produce(kafka, topic, events(old + 5, 12, "too-late"), partition=0)
        _wait_for(lambda: store.get_endpoint(endpoint.endpoint_id)["late_count"] == 12, 60,
                  "the late events counted")
        _wait_for(lambda: len(parquet_rows()) == 42, 60, "the late rows in Parquet")
        frame = parquet_rows()
        assert sorted(frame.loc[frame["late"], "request_id"]) == sorted(f"too-late{i}" for i in range(12))
        assert not frame.loc[frame["request_id"].str.startswith("on-time"), "late"].any()
        assert counted(old) == 30  # the window's result is not changed by them
    finally:
        client.cancel().result()


def test_a_subtask_without_partitions_does_not_hold_the_windows_back(tmp_path, kafka, project):
    """Parallelism 2, every event in one of the two partitions: the other subtask reads nothing, is
    marked idle after three windows, and the windows still close on the watermark (long before the idle
    close, set here to ten minutes)."""
    rng, settings, endpoint = _named_endpoint(tmp_path, kafka, project, "model-f", seed=5)
    window_ms = 2_000
    events = [{"endpoint_id": endpoint.endpoint_id, "timestamp": T0 + i * 100, "request_id": f"r{i}",
               "inputs": [rng.normal(size=3).round(5).tolist()]} for i in range(100)]  # 5 windows
    _produce(kafka, topic_names(project)["events"], events, partition=0)
    graph = build(settings, JobOptions(window_ms=window_ms, max_disorder_ms=100, idle_grace_ms=600_000,
                                       checkpoint_interval_ms=1_000, parallelism=2))
    client = graph.env.execute_async("it-idle-subtask")
    tsdb = open_tsdb(settings.tsdb_connection)
    try:
        # the first four windows are behind the watermark (the fifth holds the newest events)
        _wait_for(lambda: len(tsdb.query_predictions(project, endpoint.endpoint_id)) >= 4, 90,
                  "windows closed by the watermark")
        counts = sorted((p.start_infer_time, p.count) for p in tsdb.query_predictions(project, endpoint.endpoint_id))
        assert [c for _, c in counts[:4]] == [20, 20, 20, 20]
    finally:
        client.cancel().result()


def test_each_written_window_says_when_it_fired_and_when_the_stores_had_it(tmp_path, kafka, project):
    """The summary row of a window carries the wall clock of its firing and of its write (what the
    scale benchmark measures the latency with): fired before written, both during the run, and the
    windows in event-time order fire in that order (one watermark passes them one by one)."""
    rng, settings, endpoint = _named_endpoint(tmp_path, kafka, project, "model-g", seed=6)
    window_ms = WINDOW_MS
    events = [{"endpoint_id": endpoint.endpoint_id, "timestamp": T0 + i * 3_000, "request_id": f"r{i}",
               "inputs": [rng.normal(size=3).round(5).tolist()]} for i in range(100)]  # 5 windows
    _produce(kafka, topic_names(project)["events"], events)
    graph = build(settings, JobOptions(window_ms=window_ms, bounded=True, checkpoint_interval_ms=2_000,
                                       parallelism=2))
    from pyflink.common import Types
    from pyflink.datastream.functions import MapFunction

    class Keep(MapFunction):  # defined here: pickled by value for the Python workers
        def __init__(self, path):
            self.path = path

        def map(self, row):
            with open(self.path, "a") as f:
                f.write(json.dumps([row[i] for i in range(len(row))]) + "\n")
            return 0

    out = tmp_path / "summaries.jsonl"
    graph.summaries.map(Keep(str(out)), output_type=Types.INT())
    before = time.time() * 1000
    graph.env.execute("it-fired-written")
    after = time.time() * 1000
    summaries = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r[1])
    assert [r[1] for r in summaries] == [T0 + k * window_ms for k in range(5)]
    assert [r[4] for r in summaries] == [20] * 5
    for row in summaries:
        fired, written = row[8], row[9]
        assert before <= fired <= written <= after, (fired, written)
    fired = [r[8] for r in summaries]
    assert fired == sorted(fired)


def test_the_windows_a_watermark_fires_are_written_when_it_reaches_the_writer(tmp_path, kafka, project):
    """The writer writes a firing's windows once the watermark that fired them reaches it, not when
    its linger timer fires: with the linger set to an hour (and no idle close), the window is
    written while the job runs, with the rows sent and the drift computed offline from them."""
    rng, settings, endpoint = _named_endpoint(tmp_path, kafka, project, "model-w", seed=8)
    window_ms = 2_000
    rows = [rng.normal(size=3).round(5).tolist() for _ in range(30)]
    events = [{"endpoint_id": endpoint.endpoint_id, "timestamp": T0 + i * 10, "request_id": f"r{i}",
               "inputs": [row]} for i, row in enumerate(rows)]
    later = [{"endpoint_id": endpoint.endpoint_id, "timestamp": T0 + 10 * window_ms + i, "request_id": f"l{i}",
              "inputs": [rng.normal(size=3).round(5).tolist()]} for i in range(5)]
    _produce(kafka, topic_names(project)["events"], events + later, partition=0)
    graph = build(settings, JobOptions(window_ms=window_ms, max_disorder_ms=200, idle_grace_ms=3_600_000,
                                       writer_linger_ms=3_600_000, checkpoint_interval_ms=1_000))
    client = graph.env.execute_async("it-written-at-watermark")
    tsdb = open_tsdb(settings.tsdb_connection)
    try:
        _wait_for(lambda: tsdb.query_predictions(project, endpoint.endpoint_id), 90, "the window's records")
        (prediction,) = tsdb.query_predictions(project, endpoint.endpoint_id)
        assert int(prediction.start_infer_time.timestamp() * 1000) == T0 and prediction.count == 30
        (drift,) = tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")
        stats = SqlStore(settings.endpoint_store_connection).get_endpoint(endpoint.endpoint_id).feature_stats
        assert drift.value == pytest.approx(_mlrun_general_drift(stats, FEATURES, np.array(rows)), abs=1e-9)
    finally:
        client.cancel().result()


def test_submitted_to_the_standalone_cluster(tmp_path, kafka, flink, project):
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(rng.normal(size=(1000, 3)), columns=FEATURES)
    settings = _settings(tmp_path, kafka, project)
    endpoint = get_or_create_model_endpoint(project, "model-d", "serving", reference=reference,
                                            store=settings.endpoint_store_connection)
    events = [{"endpoint_id": endpoint.endpoint_id, "timestamp": T0 + i * 1000, "request_id": str(i),
               "inputs": [rng.normal(size=3).tolist()]} for i in range(150)]
    # one partition: the job reads both partitions in one subtask, and how far one is read ahead of
    # the other depends on the fetches; beyond the allowed lateness that makes events late, which is
    # not what this test is about (README: event time across partitions)
    _produce(kafka, topic_names(project)["events"], events, partition=0)
    job_name = f"it-submit-{project}"
    cmd = [sys.executable, "-m", "streamdrift.jobs.cli", "submit", "--jobmanager", flink.address, "--attached",
           "--data-dir", str(tmp_path), "--project", project, "--stream-path", kafka.stream_path,
           "--base-period", "1", "--bounded", "--job-name", job_name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = {job["name"]: job["state"] for job in flink.rest("/jobs/overview")["jobs"]}
    assert jobs.get(job_name) == "FINISHED"
    predictions = open_tsdb(settings.tsdb_connection).query_predictions(project, endpoint.endpoint_id)
    assert sorted(p.count for p in predictions) == [30, 60, 60]  # 150 events from T0 + 0 s, one per second


def test_submitted_with_parallelism_2_over_two_taskmanagers(tmp_path, kafka, flink, project):
    """The scale-out path of the README: the cluster gets a second TaskManager, ``submit
    --parallelism 2`` spreads every stage over both, and every row is counted once."""
    rng = np.random.default_rng(4)
    reference = pd.DataFrame(rng.normal(size=(1000, 3)), columns=FEATURES)
    settings = _settings(tmp_path, kafka, project)
    endpoints = [get_or_create_model_endpoint(project, f"model-{i}", "serving", reference=reference,
                                              store=settings.endpoint_store_connection).endpoint_id
                 for i in range(8)]
    for partition in (0, 1):  # each partition in event-time order, read by one source subtask each
        _produce(kafka, topic_names(project)["events"],
                 [{"endpoint_id": endpoint, "timestamp": T0 + i * 1000, "request_id": f"{endpoint}-{i}",
                   "inputs": [rng.normal(size=3).tolist()]}
                  for i in range(150) for endpoint in endpoints[partition::2]], partition=partition)
    before = set(flink.taskmanagers())
    proc = subprocess.run([sys.executable, "-m", "streamdrift.jobs.cli", "services", "add-taskmanager"], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0 and "2 taskmanager(s)" in proc.stdout, proc.stdout + proc.stderr
    (added,) = set(flink.taskmanagers()) - before
    try:
        job_name = f"it-submit-p2-{project}"
        cmd = [sys.executable, "-m", "streamdrift.jobs.cli", "submit", "--jobmanager", flink.address, "--attached",
               "--parallelism", "2", "--data-dir", str(tmp_path), "--project", project,
               "--stream-path", kafka.stream_path, "--base-period", "1", "--bounded", "--job-name", job_name]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        job = next(j for j in flink.rest("/jobs/overview")["jobs"] if j["name"] == job_name)
        assert job["state"] == "FINISHED"
        vertices = flink.rest(f"/jobs/{job['jid']}")["vertices"]
        parallel = [v for v in vertices if v["parallelism"] == 2]
        assert parallel, [(v["name"], v["parallelism"]) for v in vertices]
        used = {subtask["taskmanager-id"] for v in parallel
                for subtask in flink.rest(f"/jobs/{job['jid']}/vertices/{v['id']}")["subtasks"]}
        assert added in used and len(used) == 2, used
    finally:
        flink.remove_taskmanager()
    tsdb = open_tsdb(settings.tsdb_connection)
    for endpoint in endpoints:
        assert sorted(p.count for p in tsdb.query_predictions(project, endpoint)) == [30, 60, 60], endpoint


def _padded(event: dict, size: int, char: str) -> bytes:
    """``event`` as JSON of exactly ``size`` UTF-8 bytes: a ``pad`` field filled with ``char``
    (1 to 4 bytes each) and spaces."""
    base = json.dumps({**event, "pad": ""}, ensure_ascii=False).encode()
    room = size - len(base)
    width = len(char.encode())
    assert room >= 0
    pad = char * (room // width) + " " * (room % width)
    record = json.dumps({**event, "pad": pad}, ensure_ascii=False).encode()
    assert len(record) == size
    return record


def test_records_around_the_tier_bound_are_each_parsed_once(tmp_path, kafka, project):
    """The parse stage splits records by their size in bytes (a small-record tier of batches of
    ``arrow_batch_size``, a large-record one bounded by ``batch_bytes``), deciding most of them on
    their UTF-8 characters. Records of every width of character just under, at and over the bound
    are each counted once, and a record over the size limit by its bytes but not its characters is
    a dead letter that gives its size in bytes."""
    rng = np.random.default_rng(5)
    reference = pd.DataFrame(rng.normal(size=(500, 3)), columns=FEATURES)
    settings = _settings(tmp_path, kafka, project)
    endpoint = get_or_create_model_endpoint(project, "model-t", "serving", reference=reference,
                                            store=settings.endpoint_store_connection).endpoint_id
    options = JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=2_000,
                         arrow_batch_size=20, batch_bytes=20 * 400)  # small records: at most 400 bytes
    records, i = [], 0
    for char in ("a", "é", "€", "😀"):  # 1, 2, 3 and 4 bytes per character
        for size in (200, 399, 400, 401, 1_600, 1_601, 5_000):
            records.append(_padded({"endpoint_id": endpoint, "timestamp": T0 + i, "request_id": f"r{i}",
                                     "inputs": [[0.5, -0.5, 1.5]]}, size, char))
            i += 1
    too_big = (1 << 20) + 30  # over the limit in bytes, under it in characters (3 bytes each)
    records.append(_padded({"endpoint_id": endpoint, "timestamp": T0 + i, "request_id": "big",
                            "inputs": [[0.5, -0.5, 1.5]]}, too_big, "€"))
    _produce(kafka, topic_names(project)["events"], records)
    build(settings, options).env.execute("it-tier-bound")

    predictions = open_tsdb(settings.tsdb_connection).query_predictions(project, endpoint)
    assert sum(p.count for p in predictions) == i  # every record under the limit once, none twice
    letters = _consume(kafka, topic_names(project)["dead_letters"])
    assert len(letters) == 1 and letters[0]["size_bytes"] == too_big and str(too_big) in letters[0]["reason"]


def test_staggered_windows_start_at_each_endpoints_offset_and_count_its_rows(tmp_path, kafka, project):
    """``--stagger-windows``: an endpoint's windows start window × g / 256 ms after whole windows
    from the epoch, g its group (the first byte of the MD5 of its id); each window holds exactly
    that endpoint's events in [start, start + window)."""
    rng = np.random.default_rng(11)
    settings = _settings(tmp_path, kafka, project)
    window_ms = 4_000
    endpoints, offsets = [], {}
    for k in range(40):  # endpoints of different groups, their offsets far apart
        reference = pd.DataFrame(rng.normal(size=(300, 3)), columns=FEATURES)
        e = get_or_create_model_endpoint(project, f"model-s{k}", "serving", reference=reference,
                                         store=settings.endpoint_store_connection).endpoint_id
        offset = int(hashlib.md5(e.encode()).hexdigest()[:2], 16) * window_ms // 256
        if all(abs(offset - o) > 400 for o in offsets.values()):
            endpoints.append(e)
            offsets[e] = offset
        if len(endpoints) == 4:
            break
    assert len(endpoints) == 4
    times = {e: np.sort(rng.integers(T0, T0 + 3 * window_ms, size=60)) for e in endpoints}
    records = [{"endpoint_id": e, "timestamp": int(t), "request_id": f"{e[:6]}-{i}",
                "inputs": [rng.normal(size=3).round(4).tolist()]}
               for e in endpoints for i, t in enumerate(times[e].tolist())]
    records.sort(key=lambda r: r["timestamp"])  # in time order: none late
    _produce(kafka, topic_names(project)["events"], records, partition=0)
    build(settings, JobOptions(bounded=True, window_ms=window_ms, stagger_windows=True, max_disorder_ms=0,
                               allowed_lateness_ms=0, checkpoint_interval_ms=2_000)).env.execute("it-staggered")

    tsdb = open_tsdb(settings.tsdb_connection)
    for e in endpoints:
        written = {int(p.start_infer_time.timestamp() * 1000): p.count for p in tsdb.query_predictions(project, e)}
        ts = times[e]
        first = T0 - (T0 - offsets[e]) % window_ms  # the window holding T0
        starts = np.arange(first, T0 + 3 * window_ms, window_ms)
        expected = {int(s): int(((ts >= s) & (ts < s + window_ms)).sum()) for s in starts}
        assert written == {s: n for s, n in expected.items() if n}, e
        assert all((s - offsets[e]) % window_ms == 0 for s in written)
        results = [r for r in tsdb.query_results(project, e) if r.result_name == "general_drift"]
        assert {int(r.end_infer_time.timestamp() * 1000) - int(r.start_infer_time.timestamp() * 1000)
                for r in results} == {window_ms}
