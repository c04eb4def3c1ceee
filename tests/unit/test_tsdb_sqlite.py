"""The embedded TSDB (SQLite) end to end: what is written is what a query gives back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamdrift.connectors.tsdb import TSDBError, open_tsdb
from streamdrift.connectors.tsdb.base import from_micros, micros
from streamdrift.connectors.tsdb.sqlite import SqliteTSDB
from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
W = dt.timedelta(minutes=10)
HOSTILE = ["it's", 'say "hi"', "`tick`", "a;b", "'); DROP TABLE app_results; --", "back\\slash", "模型-ü-🚀",
           "trailing ", " leading", "%_"]


@pytest.fixture()
def tsdb(tmp_path):
    db = open_tsdb(f"sqlite:///{tmp_path}/data/tsdb.sqlite", create_schema=True)
    yield db
    db.close()


def res(endpoint="ep", app="histogram-data-drift", name="general_drift", window=0, value=0.5, status=0, kind=0,
        extra=None, project="fraud"):
    return ResultRecord(project, endpoint, app, name, kind, status, value, T0 + window * W, T0 + (window + 1) * W,
                        extra or {})


def met(endpoint="ep", app="histogram-data-drift", name="tvd_mean", window=0, value=0.1, project="fraud"):
    return MetricRecord(project, endpoint, app, name, value, T0 + window * W, T0 + (window + 1) * W)


def pred(endpoint="ep", window=0, count=100, project="fraud", errors=0):
    start = T0 + window * W
    return PredictionRecord(project, endpoint, start, start + W, count, count // 2, errors, count - errors,
                            1234.5, 1000.0, 3000.0, 5000.0, start + dt.timedelta(seconds=1),
                            start + W - dt.timedelta(microseconds=1))


def count_rows(tsdb: SqliteTSDB, table: str) -> int:
    with sqlite3.connect(tsdb.path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_results_round_trip_with_filters(tsdb):
    written = [res(e, name=n, window=w, value=w + i / 10, status=w % 3, extra={"w": w, "e": e})
               for i, (e, n) in enumerate([("a", "general_drift"), ("b", "general_drift"), ("a", "other")])
               for w in range(3)]
    assert tsdb.write_results(written) == 9
    by_time = sorted(written, key=lambda r: (r.end_infer_time, r.endpoint_id, r.application_name, r.result_name))
    assert tsdb.query_results("fraud") == by_time
    assert tsdb.query_results("fraud", endpoint_id="a") == [r for r in by_time if r.endpoint_id == "a"]
    assert tsdb.query_results("fraud", result_name="other") == [r for r in by_time if r.result_name == "other"]
    # the range is inclusive at both ends and applies to the window end
    got = tsdb.query_results("fraud", start=T0 + 2 * W, end=T0 + 3 * W)
    assert {r.end_infer_time for r in got} == {T0 + 2 * W, T0 + 3 * W} and len(got) == 6
    assert tsdb.query_results("fraud", application_name="another-app") == []
    assert tsdb.query_results("other-project") == []


def test_metrics_predictions_errors_round_trip(tsdb):
    metrics = [met(e, window=w, value=w / 7) for e in ("a", "b") for w in range(2)]
    preds = [pred(e, window=w, count=10 * (w + 1), errors=w) for e in ("a", "b") for w in range(2)]
    errors = [ErrorRecord("fraud", "a", "my-app", "mm-app-failed", "Traceback:\n  ZeroDivisionError", T0 + W)]
    tsdb.write_metrics(metrics)
    tsdb.write_predictions(preds)
    tsdb.write_errors(errors)
    assert tsdb.query_metrics("fraud") == sorted(metrics, key=lambda m: (m.end_infer_time, m.endpoint_id))
    assert tsdb.query_predictions("fraud", endpoint_id="b") == [p for p in preds if p.endpoint_id == "b"]
    assert tsdb.query_errors("fraud") == errors
    assert tsdb.query_errors("fraud", error_type="other") == []


def test_replayed_window_leaves_one_row_with_the_new_values(tsdb):
    for value in (0.2, 0.8):  # the same window twice: a replay with a correction
        tsdb.write_results([res(window=1, value=value, status=2 if value > 0.5 else 0)])
        tsdb.write_metrics([met(window=1, value=value)])
        tsdb.write_predictions([pred(window=1, count=int(value * 100))])
        tsdb.write_errors([ErrorRecord("fraud", "ep", "app", "mm-app-failed", f"v={value}", T0 + W)])
    for table in ("app_results", "metrics", "predictions", "errors"):
        assert count_rows(tsdb, table) == 1, table
    assert [(r.value, r.status) for r in tsdb.query_results("fraud")] == [(0.8, 2)]
    assert [m.value for m in tsdb.query_metrics("fraud")] == [0.8]
    assert [p.count for p in tsdb.query_predictions("fraud")] == [80]
    assert [e.message for e in tsdb.query_errors("fraud")] == ["v=0.8"]


def test_latest_status_is_the_newest_window_of_each_result(tsdb):
    tsdb.write_results([res("a", window=2, value=0.9, status=2), res("a", window=0, value=0.1),
                        res("a", name="other", window=1, value=0.3), res("b", window=0, value=0.4)])
    tsdb.write_results([res("a", window=1, value=0.5)])  # an old window arrives late
    assert [(r.endpoint_id, r.result_name, r.value, r.end_infer_time) for r in tsdb.latest_status("fraud")] == [
        ("a", "general_drift", 0.9, T0 + 3 * W),
        ("a", "other", 0.3, T0 + 2 * W),
        ("b", "general_drift", 0.4, T0 + W),
    ]
    assert [r.endpoint_id for r in tsdb.latest_status("fraud", endpoint_id="b")] == ["b"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_endpoint_ids_and_projects_round_trip(tsdb, name):
    tsdb.write_results([res(name, project=name, extra={"why": name})])
    tsdb.write_metrics([met(name, project=name)])
    tsdb.write_errors([ErrorRecord(name, name, "app", name, name, T0)])
    assert [(r.project, r.endpoint_id, r.extra_data) for r in tsdb.query_results(name, endpoint_id=name)] == [
        (name, name, {"why": name})]
    assert [m.endpoint_id for m in tsdb.query_metrics(name)] == [name]
    assert [(e.error_type, e.message) for e in tsdb.query_errors(name)] == [(name, name)]
    assert count_rows(tsdb, "app_results") == 1  # the table survived


@pytest.mark.parametrize("bad, field", [
    (dict(name="general drift"), "result name"),
    (dict(name="x'); DROP TABLE app_results; --"), "result name"),
    (dict(name="drift-score"), "result name"),
    (dict(app="app`name"), "application name"),
    (dict(app="app;name"), "application name"),
    (dict(app="ünï"), "application name"),
    (dict(endpoint="tab\there"), "control characters"),
])
def test_invalid_names_are_refused_and_the_batch_is_not_written(tsdb, bad, field):
    with pytest.raises(ValueError, match=field):
        tsdb.write_results([res("good"), res(**bad)])
    assert tsdb.query_results("fraud") == []


def test_values_that_are_not_numbers_are_stored_as_none(tsdb):
    tsdb.write_results([res("a", value=float("nan")), res("b", value=float("-inf")), res("c", value=None)])
    assert [r.value for r in tsdb.query_results("fraud")] == [None, None, None]


def test_oversized_extra_data_and_messages_are_bounded(tsdb):
    extra = {"per_feature": {f"feature_{i}": i / 3 for i in range(2000)}}
    tsdb.write_results([res(extra=extra)])
    stored = tsdb.query_results("fraud")[0].extra_data
    assert stored["truncated"] is True and stored["bytes"] > 16_000
    tsdb.write_errors([ErrorRecord("fraud", "ep", "app", "failed", "x" * 5000 + "\x07", T0)])
    message = tsdb.query_errors("fraud")[0].message
    assert len(message) == 1000 and message.endswith("...")


def test_times_keep_their_microseconds():
    when = dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
    assert micros(when) == 1709251199_999_999
    assert from_micros(micros(when)) == when
    local = when.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert micros(local) == micros(when)


def test_schema_is_idempotent_and_data_survives_a_reopen(tmp_path):
    url = f"sqlite:///{tmp_path}/tsdb.sqlite"
    with open_tsdb(url, create_schema=True) as first:
        first.write_results([res()])
    with open_tsdb(url, create_schema=True) as second:
        assert second.query_results("fraud") == [res()]


def test_writes_from_several_threads(tsdb):
    def write(endpoint: str) -> None:
        for w in range(20):
            tsdb.write_results([res(endpoint, window=w)])

    threads = [threading.Thread(target=write, args=(f"ep{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tsdb.query_results("fraud")) == 80


def test_closed_store_says_so(tmp_path):
    db = SqliteTSDB(tmp_path / "t.sqlite")
    db.create_schema()
    db.close()
    with pytest.raises(TSDBError, match="closed"):
        db.query_results("fraud")


def test_open_tsdb_refuses_unknown_urls():
    with pytest.raises(ValueError, match="sqlite:///"):
        open_tsdb("postgresql://u:pw@h/db")
    with pytest.raises(ValueError, match="file path"):
        open_tsdb("sqlite:///")


def test_empty_writes_do_nothing(tsdb):
    assert tsdb.write_results([]) == 0 and tsdb.write_predictions([]) == 0
    assert tsdb.query_results("fraud") == [] and tsdb.query_predictions("fraud") == []


def test_a_window_written_at_once_reads_as_written_kind_by_kind(tsdb, tmp_path):
    results, metrics = [res("a", window=1, value=0.75)], [met("a", window=1, value=0.25)]
    errors = [ErrorRecord("fraud", "a", "my-app", "mm-app-failed", "boom", T0 + W)]
    predictions = [pred("a", window=1, count=30)]
    tsdb.write_window(results, metrics, errors, predictions)
    apart = SqliteTSDB(str(tmp_path / "apart.sqlite"))
    apart.create_schema()
    apart.write_results(results), apart.write_metrics(metrics), apart.write_errors(errors)
    apart.write_predictions(predictions)
    for query in ("query_results", "query_metrics", "query_errors", "query_predictions"):
        assert getattr(tsdb, query)("fraud") == getattr(apart, query)("fraud") != []
    tsdb.write_window(results, metrics, errors, predictions)  # a replay: one row of each
    assert [count_rows(tsdb, t) for t in ("app_results", "metrics", "errors", "predictions")] == [1, 1, 1, 1]


def test_a_window_with_one_invalid_record_writes_nothing(tsdb):
    with pytest.raises(ValueError):
        tsdb.write_window([res("a", window=2)], [met("a", window=2, name="bad name!")], [], [pred("a", window=2)])
    assert tsdb.query_results("fraud") == [] and tsdb.query_predictions("fraud") == []


# ----------------------------------------------------------------------------------- feature drift


def feat(name, window=0, endpoint="ep", i=0, app="histogram-data-drift", project="fraud"):
    rng = np.random.default_rng(i)
    tested = i % 2 == 0
    return FeatureDriftRecord(project, endpoint, app, name, T0 + window * W, T0 + (window + 1) * W,
                              tvd=float(rng.uniform()), hellinger=float(rng.uniform()), kld=float(rng.exponential()),
                              p_value=float(rng.uniform()) if tested else None,
                              rejected=bool(rng.uniform() < 0.5) if tested else None,
                              effect_size=float(rng.normal()) if tested else None,
                              window_count=int(rng.integers(0, 10_000)), reference_count=50_000,
                              invalid_share=float(rng.uniform(0, 0.1)) if i % 3 else None)


def test_two_thousand_features_of_a_window_round_trip(tsdb):
    names = [f"feature_{i}" for i in range(1990)] + ["年龄", "it's", "a;b", "x.mean", "prediction_0",
                                                        "trailing ", "`tick`", "'); DROP TABLE feature_drift; --",
                                                        "模型-ü-🚀", "N/A"]
    written = [feat(n, i=i) for i, n in enumerate(names)]
    assert tsdb.write_feature_drift(written) == 2000
    assert tsdb.query_feature_drift("fraud") == sorted(written, key=lambda f: f.feature_name)
    assert tsdb.query_feature_drift("fraud", feature_name="年龄") == [written[1990]]
    assert tsdb.query_feature_drift("fraud", application_name="other-app") == []
    assert tsdb.query_feature_drift("fraud", start=T0 + 2 * W) == []
    tsdb.write_feature_drift([dataclasses.replace(written[0], tvd=0.0)])  # a replay replaces the row
    assert count_rows(tsdb, "feature_drift") == 2000
    assert tsdb.query_feature_drift("fraud", feature_name="feature_0")[0].tvd == 0.0


def test_invalid_feature_rows_are_refused(tsdb):
    for bad, what in [(dict(feature_name=""), "feature name"), (dict(feature_name="a\nb"), "control characters"),
                      (dict(window_count=-1), "window_count"), (dict(rejected="yes"), "rejected")]:
        with pytest.raises(ValueError, match=what):
            tsdb.write_feature_drift([feat("ok"), dataclasses.replace(feat("x"), **bad)])
    assert tsdb.query_feature_drift("fraud") == []


def _wide_drift_result(n_features: int) -> ResultRecord:
    """``histogram-data-drift``'s general_drift on an endpoint of ``n_features`` numeric features."""
    from streamdrift.udfs.accumulator import Accumulator
    from streamdrift.udfs.histogram_drift import drift_from_accumulator
    from streamdrift.udfs.reference import feature_stats

    rng = np.random.default_rng(5)
    names = [f"sensor_{i:03d}" for i in range(n_features)]
    training = pd.DataFrame(rng.normal(0, 1, (2_000, n_features)), columns=names)
    fs = feature_stats(training)
    acc = Accumulator.from_reference(fs)
    acc.add_batch(rng.normal(0.3, 1, (500, n_features)))
    report = drift_from_accumulator(fs, acc)
    return ResultRecord("fraud", "wide", "histogram-data-drift", "general_drift", 0, int(report.status),
                        report.general_drift, T0, T0 + W, json.loads(json.dumps(report.to_dict())))


def test_a_wide_general_drift_row_points_to_its_feature_rows(tsdb, tmp_path):
    from streamdrift.udfs.histogram_drift import feature_drift_records

    general = _wide_drift_result(200)
    size = len(json.dumps(general.extra_data, separators=(",", ":"), sort_keys=True))
    assert size > 16_000  # what used to become {"truncated": true}
    features = feature_drift_records(general)
    tsdb.artifacts_dir = str(tmp_path / "artifacts")
    tsdb.write_window([general], [], [], [], features)
    (row,) = tsdb.query_results("fraud", endpoint_id="wide")
    assert "columns" not in row.extra_data and "truncated" not in row.extra_data
    assert row.extra_data["per_feature"] == {"table": "feature_drift", "columns": 200}
    kept = {k: v for k, v in general.extra_data.items() if k != "columns"}
    assert {k: v for k, v in row.extra_data.items() if k != "per_feature"} == kept
    assert (row.value, row.status) == (general.value, general.status)
    stored = tsdb.query_feature_drift("fraud", endpoint_id="wide")
    assert len(stored) == 200
    for f in stored:  # the per-feature detail the row no longer carries
        column = general.extra_data["columns"][f.feature_name]
        assert (f.tvd, f.hellinger, f.kld, f.window_count, f.reference_count) == (
            column["tvd"], column["hellinger"], column["kld"], column["window_count"], column["reference_count"])
    assert not (tmp_path / "artifacts").exists()  # nothing needed an artifact


def test_a_user_apps_big_extra_data_goes_whole_to_an_artifact(tsdb, tmp_path, caplog):
    from streamdrift.connectors.artifacts import load_extra_data

    extra = {"per_customer": {f"customer-{i}": [i, i / 3, "señal"] for i in range(1500)}}
    text = json.dumps(extra, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    big = res("ep", app="fraud-rules", name="segments", extra=extra)
    tsdb.artifacts_dir = str(tmp_path / "artifacts")
    tsdb.write_results([big])
    (row,) = tsdb.query_results("fraud")
    expected = tmp_path / "artifacts" / "fraud" / "ep" / "fraud-rules" / "20240301T121000Z-segments-extra_data.json"
    assert row.extra_data == {"truncated": True, "bytes": len(text), "artifact": str(expected)}
    assert expected.read_text() == text and load_extra_data(row.extra_data) == extra
    tsdb.write_results([big])  # a replay writes the same file again, not a second one
    assert [p.name for p in expected.parent.iterdir()] == [expected.name]
    tsdb.artifacts_dir = None
    with caplog.at_level("WARNING"):
        tsdb.write_results([res("ep2", app="fraud-rules", name="segments", extra=extra)])
    assert tsdb.query_results("fraud", endpoint_id="ep2")[0].extra_data == {"truncated": True, "bytes": len(text)}
    assert "no artifacts directory" in caplog.text


# ----------------------------------------------------------------------------------- the series key


OLD_LAYOUT = [  # the tables as an earlier streamdrift made them: project and kind outside the key
    """CREATE TABLE app_results (project TEXT NOT NULL, endpoint_id TEXT NOT NULL, application_name TEXT NOT NULL,
        result_name TEXT NOT NULL, result_kind INTEGER NOT NULL, end_infer_time INTEGER NOT NULL,
        start_infer_time INTEGER NOT NULL, result_value REAL, result_status INTEGER NOT NULL,
        result_extra_data TEXT NOT NULL, UNIQUE (endpoint_id, application_name, result_name, end_infer_time))""",
    "CREATE INDEX app_results_by_project_time ON app_results (project, end_infer_time)",
    """CREATE TABLE metrics (project TEXT NOT NULL, endpoint_id TEXT NOT NULL, application_name TEXT NOT NULL,
        metric_name TEXT NOT NULL, end_infer_time INTEGER NOT NULL, start_infer_time INTEGER NOT NULL,
        metric_value REAL, UNIQUE (endpoint_id, application_name, metric_name, end_infer_time))""",
]


def test_a_file_with_the_old_key_is_rebuilt_keeping_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        for sql in OLD_LAYOUT:
            conn.execute(sql)
        conn.execute("INSERT INTO app_results VALUES ('fraud', 'ep', 'app', 'r', 0, 2, 1, 0.5, 0, '{\"a\":1}')")
        conn.execute("INSERT INTO metrics VALUES ('fraud', 'ep', 'app', 'm', 2, 1, 0.25)")
    tsdb = SqliteTSDB(path)
    tsdb.create_schema()
    tsdb.create_schema()  # idempotent
    assert [(r.endpoint_id, r.value, r.extra_data) for r in tsdb.query_results("fraud")] == [("ep", 0.5, {"a": 1})]
    assert [m.value for m in tsdb.query_metrics("fraud")] == [0.25]
    # the same endpoint, application, name and time in another project or of another kind is its own row now
    other = ResultRecord("other", "ep", "app", "r", 0, 0, 0.9, from_micros(1), from_micros(2), {})
    tsdb.write_results([other, dataclasses.replace(other, project="fraud", kind=1)])
    assert count_rows(tsdb, "app_results") == 3
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert tables == {"app_results", "metrics", "predictions", "errors", "feature_drift"}
    assert "app_results_by_project_time" in indexes
    tsdb.close()


FEATURE_DRIFT_BEFORE_INVALID_SHARE = """CREATE TABLE feature_drift (project TEXT NOT NULL, endpoint_id TEXT NOT NULL,
    application_name TEXT NOT NULL, feature_name TEXT NOT NULL, end_infer_time INTEGER NOT NULL,
    start_infer_time INTEGER NOT NULL, tvd REAL, hellinger REAL, kld REAL, p_value REAL, rejected INTEGER,
    effect_size REAL, window_count INTEGER, reference_count INTEGER,
    UNIQUE (project, endpoint_id, application_name, feature_name, end_infer_time))"""


def test_a_feature_drift_table_without_invalid_share_gets_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(FEATURE_DRIFT_BEFORE_INVALID_SHARE)
        conn.execute("INSERT INTO feature_drift VALUES ('fraud', 'ep', 'app', 'age', 2, 1, 0.5, 0.25, 1.5, 0.01, 1, "
                     "0.3, 120, 5000)")
    tsdb = SqliteTSDB(path)
    tsdb.create_schema()
    tsdb.create_schema()  # idempotent
    (old,) = tsdb.query_feature_drift("fraud")
    assert (old.feature_name, old.tvd, old.rejected, old.reference_count, old.invalid_share) == (
        "age", 0.5, True, 5000, None)
    new = dataclasses.replace(old, feature_name="income", invalid_share=0.03)
    tsdb.write_feature_drift([new])
    assert tsdb.query_feature_drift("fraud", feature_name="income") == [new]
    tsdb.close()


def test_both_stores_key_rows_by_the_same_fields(tsdb):
    from streamdrift.connectors.tsdb.base import SERIES_KEYS, TIME_COLUMNS

    with sqlite3.connect(tsdb.path) as conn:
        for table, series in SERIES_KEYS.items():
            keys = [[r[2] for r in conn.execute(f"PRAGMA index_info({name})")]
                    for _, name, unique, *_ in conn.execute(f"PRAGMA index_list({table})") if unique]
            assert keys == [[*series, TIME_COLUMNS[table]]], table


# ----------------------------------------------------------------------------------- many windows at once


def test_a_batch_of_100_windows_round_trips_in_one_transaction(tsdb):
    windows = [(e, w) for w in range(100) for e in ("a", "b", "c")]
    results = [res(e, window=w, value=w / 100, status=w % 3, extra={"w": w}) for e, w in windows]
    metrics = [met(e, window=w, value=w / 7) for e, w in windows]
    predictions = [pred(e, window=w, count=w + 1) for e, w in windows]
    errors = [ErrorRecord("fraud", e, "my-app", "mm-app-failed", f"w{w}", T0 + (w + 1) * W) for e, w in windows[::10]]
    features = [feat(f"f{k}", window=w, endpoint=e, i=k + w) for e, w in windows for k in range(3)]
    tsdb.write_window(results, metrics, errors, predictions, features)
    key = lambda r: (r.end_infer_time, r.endpoint_id)  # noqa: E731
    assert tsdb.query_results("fraud") == sorted(results, key=key)
    assert tsdb.query_metrics("fraud") == sorted(metrics, key=key)
    assert tsdb.query_predictions("fraud") == sorted(predictions, key=key)
    assert tsdb.query_errors("fraud") == sorted(errors, key=lambda e: (e.time, e.endpoint_id))
    assert tsdb.query_feature_drift("fraud") == sorted(features, key=lambda f: (f.end_infer_time, f.endpoint_id,
                                                                                f.feature_name))
    later = [res(e, window=w + 100) for e, w in windows]
    with pytest.raises(ValueError, match="feature name"):  # one bad record: none of the batch is written
        tsdb.write_window(later, [], [], [], [dataclasses.replace(features[0], feature_name="")])
    assert len(tsdb.query_results("fraud")) == 300


def test_a_general_drift_too_big_even_without_its_columns_goes_to_an_artifact(tsdb, tmp_path):
    from streamdrift.connectors.artifacts import load_extra_data

    general = _wide_drift_result(20)
    extra = dict(general.extra_data, skipped={f"text_{i}": "no histogram in the reference" for i in range(1000)})
    general = dataclasses.replace(general, extra_data=extra)
    tsdb.artifacts_dir = str(tmp_path / "artifacts")
    tsdb.write_results([general])
    (row,) = tsdb.query_results("fraud")
    assert row.extra_data["truncated"] is True and load_extra_data(row.extra_data) == extra
    Path(row.extra_data["artifact"]).unlink()
    with pytest.raises(FileNotFoundError, match="is gone"):
        load_extra_data(row.extra_data)
    assert load_extra_data({"a": 1}) == {"a": 1}  # a row that holds its value whole


@pytest.mark.parametrize("extra, expected", [
    ({"b": 1, "a": [0.5, 1e-05]}, {"a": [0.5, 1e-05], "b": 1}),
    ({"tvd": float("nan"), "top": float("inf"), "low": -float("inf")}, {"tvd": None, "top": None, "low": None}),
    ({"feature": "température", "emoji": "\U0001f600"}, {"feature": "température", "emoji": "\U0001f600"}),
    ({"big": 2 ** 70, "nan": float("nan")}, {"big": 2 ** 70, "nan": None}),
    ({"when": dt.date(2026, 11, 30), "n": np.int64(3).item()}, {"when": "2026-11-30", "n": 3}),
    ({"NaN_share": "NaN", "x": None}, {"NaN_share": "NaN", "x": None}),
])
def test_extra_data_is_stored_as_ascii_json_with_sorted_keys_and_no_nan(extra, expected):
    """What the TSDB keeps of extra_data: valid JSON (NaN and infinities as null, which JSON has no
    other word for), ASCII only (non-ASCII escaped), keys sorted, other objects as their text."""
    from streamdrift.connectors.tsdb.base import extra_data_json

    text = extra_data_json(extra)
    assert text.isascii() and json.loads(text, parse_constant=pytest.fail) == expected
    assert list(json.loads(text)) == sorted(expected)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3)), min_size=1, max_size=2_600),
       statement_rows=st.sampled_from([1, 7, 1_000]))
def test_many_rows_in_one_write_keep_the_last_row_of_each_key(tmp_path_factory, keys, statement_rows):
    """A write of any number of rows (over one statement's 1,000 or fewer rows, keys repeated inside
    a statement and across statements, rows already stored) leaves per key the row given last, as
    one upsert per row in order would."""
    from streamdrift.connectors.tsdb import sqlite as sqlite_tsdb

    db = open_tsdb(f"sqlite:///{tmp_path_factory.mktemp('many')}/tsdb.sqlite", create_schema=True)
    try:
        db.write_metrics([met(f"e{e}", window=w, value=-1.0) for e, w in keys[::3]])  # some already stored
        given_rows = [met(f"e{e}", window=w, value=float(i)) for i, (e, w) in enumerate(keys)]
        features = [feat(f"f{e}", window=w, i=i) for i, (e, w) in enumerate(keys)]
        saved = sqlite_tsdb._ROWS_PER_STATEMENT
        sqlite_tsdb._ROWS_PER_STATEMENT = statement_rows
        try:
            db.write_window([], given_rows, [], [], features)
        finally:
            sqlite_tsdb._ROWS_PER_STATEMENT = saved
        last = {(m.endpoint_id, m.end_infer_time): m for m in given_rows}  # a dict keeps the last given
        assert sorted(db.query_metrics("fraud"), key=lambda m: (m.endpoint_id, m.end_infer_time)) == \
            sorted(last.values(), key=lambda m: (m.endpoint_id, m.end_infer_time))
        last_features = {(f.feature_name, f.end_infer_time): f for f in features}
        assert sorted(db.query_feature_drift("fraud"), key=lambda f: (f.feature_name, f.end_infer_time)) == \
            sorted(last_features.values(), key=lambda f: (f.feature_name, f.end_infer_time))
    finally:
        db.close()


def test_a_sqlite_taking_999_parameters_per_statement_gets_statements_it_takes(tmp_path):
    """SQLite before 3.32 takes 999 parameters per statement (emulated with ``setlimit``): a batch
    of 2,500 windows' per-feature rows (15 values each) is written whole."""
    db = open_tsdb(f"sqlite:///{tmp_path}/tsdb.sqlite", create_schema=True)
    try:
        db._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        features = [feat("f0", window=w, i=w) for w in range(2_500)]
        db.write_window([], [], [], [], features)
        assert db.query_feature_drift("fraud") == features
    finally:
        db.close()


def test_the_embedded_stores_commit_in_wal_mode_without_a_sync_per_commit(tmp_path):
    """Both embedded stores' files: WAL journal (a reader's own connection sees it) and
    synchronous NORMAL (1) on the stores' own connections, which write them."""
    from streamdrift.connectors.sql_store import SqlStore

    tsdb = SqliteTSDB(tmp_path / "tsdb.sqlite")
    store = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        tsdb.create_schema()
        store.create_schema()
        assert tsdb._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        for name in ("tsdb.sqlite", "store.sqlite"):
            with sqlite3.connect(tmp_path / name) as reader:
                assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        tsdb.close()
        store.close()
