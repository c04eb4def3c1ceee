"""The TDengine TSDB against a real server: set ``TDENGINE_URL`` (``taosws://root:taosdata@host:6041``
or ``taos://...``) to run it. Each run uses a fresh database ``streamdrift_test_<random>`` and drops it."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from streamdrift.connectors.tsdb import TSDBError
from streamdrift.connectors.tsdb.tdengine import TDengineTSDB
from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

URL = os.environ.get("TDENGINE_URL")
pytestmark = pytest.mark.skipif(not URL, reason="TDENGINE_URL is not set: no TDengine server to test against")

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
W = dt.timedelta(minutes=10)
HOSTILE = ["it's", 'say "hi"', "`tick`", "a;b", "'); DROP DATABASE x; --", "back\\slash", "模型-ü-🚀"]


@pytest.fixture(scope="module")
def tsdb():
    database = f"streamdrift_test_{uuid.uuid4().hex[:10]}"
    db = TDengineTSDB(URL, database=database)
    db.create_schema()
    db.create_schema()  # idempotent
    yield db
    db.connection.execute(f"DROP DATABASE IF EXISTS {database}")
    db.close()


def res(endpoint, window=0, value=0.5, status=0, name="general_drift", project="proj", extra=None):
    return ResultRecord(project, endpoint, "histogram-data-drift", name, 0, status, value, T0 + window * W,
                        T0 + (window + 1) * W, extra or {"w": window})


def test_results_round_trip_and_replay_keeps_one_row(tsdb):
    tsdb.write_results([res("a", 0, 0.1), res("a", 1, 0.2), res("b", 0, 0.3)])
    tsdb.write_results([res("a", 1, 0.8, status=2)])  # the same window again
    got = tsdb.query_results("proj")
    assert [(r.endpoint_id, r.end_infer_time, r.value, r.status) for r in got] == [
        ("a", T0 + W, 0.1, 0), ("b", T0 + W, 0.3, 0), ("a", T0 + 2 * W, 0.8, 2)]
    assert got[0] == res("a", 0, 0.1)
    assert [r.endpoint_id for r in tsdb.query_results("proj", endpoint_id="b")] == ["b"]
    assert len(tsdb.query_results("proj", start=T0 + 2 * W, end=T0 + 2 * W)) == 1


def test_latest_status(tsdb):
    tsdb.write_results([res("latest", 0, 0.1), res("latest", 2, 0.9, status=2)])
    tsdb.write_results([res("latest", 1, 0.5)])  # an older window written last
    got = [r for r in tsdb.latest_status("proj") if r.endpoint_id == "latest"]
    assert [(r.value, r.status, r.end_infer_time) for r in got] == [(0.9, 2, T0 + 3 * W)]


def test_metrics_predictions_errors(tsdb):
    metric = MetricRecord("proj", "m", "histogram-data-drift", "tvd_mean", 0.25, T0, T0 + W)
    pred = PredictionRecord("proj", "m", T0, T0 + W, 100, 20, 2, 98, 150.5, 100.0, 300.0, 900.0,
                            T0 + dt.timedelta(microseconds=1), T0 + W - dt.timedelta(microseconds=1))
    error = ErrorRecord("proj", "m", "my-app", "mm-app-failed", "Traceback\n  ValueError: 'x'", T0 + W)
    for _ in range(2):
        tsdb.write_metrics([metric])
        tsdb.write_predictions([pred])
        tsdb.write_errors([error])
    assert tsdb.query_metrics("proj", endpoint_id="m") == [metric]
    assert tsdb.query_predictions("proj", endpoint_id="m") == [pred]
    assert tsdb.query_errors("proj", endpoint_id="m") == [error]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip(tsdb, name):
    tsdb.write_results([res(name, project=name, extra={"why": name})])
    assert [(r.project, r.endpoint_id, r.extra_data) for r in tsdb.query_results(name, endpoint_id=name)] == [
        (name, name, {"why": name})]


# ----------------------------------------------------------------------------------- TDengine's limits


@pytest.fixture()
def scratch_database():
    """A database name of this run, dropped afterwards (for tests that create it themselves)."""
    name = f"streamdrift_test_{uuid.uuid4().hex[:10]}"
    yield name
    cleanup = TDengineTSDB(URL, database=name)
    cleanup.connection.execute(f"DROP DATABASE IF EXISTS {name}")
    cleanup.close()


def test_cjk_messages_split_in_bytes_are_accepted(tsdb):
    cjk = "模型漂移监控数据错误信息"
    errors = [ErrorRecord("cjk", f"ep-{i % 20}", "app", "mm-app-failed", f"{i:03d}" + (cjk * 100)[:997],
                          T0 + dt.timedelta(minutes=i)) for i in range(400)]
    tsdb.write_errors(errors)  # 1.2 MB of UTF-8: more than one statement
    assert sorted(e.message for e in tsdb.query_errors("cjk")) == sorted(e.message for e in errors)


def test_a_database_of_another_precision_is_refused_at_start(scratch_database):
    setup = TDengineTSDB(URL, database=scratch_database)
    setup.connection.execute(f"CREATE DATABASE {scratch_database} PRECISION 'ms'")
    with pytest.raises(TSDBError, match=f"'{scratch_database}'.*precision 'ms'") as info:
        setup.create_schema()
    assert not info.value.transient
    setup.close()


def test_old_events_are_kept_and_rows_older_than_keep_are_a_permanent_error(tsdb, scratch_database):
    replay = [res("replay", w, project="replay") for w in range(3)]
    replay = [ResultRecord(r.project, r.endpoint_id, r.application_name, r.result_name, r.kind, r.status, r.value,
                           r.start_infer_time.replace(year=2015), r.end_infer_time.replace(year=2015), r.extra_data)
              for r in replay]
    tsdb.write_results(replay)  # ten years and more ago: within the default KEEP of 36,500 days
    assert [r.end_infer_time.year for r in tsdb.query_results("replay")] == [2015] * 3
    short = TDengineTSDB(URL, database=scratch_database, keep_days=30)
    short.create_schema()
    with pytest.raises(TSDBError, match="KEEP") as info:
        short.write_results(replay)
    assert not info.value.transient
    short.close()


def test_a_shorter_keep_of_an_existing_database_is_raised(scratch_database):
    setup = TDengineTSDB(URL, database=scratch_database, keep_days=36500)
    setup.connection.execute(f"CREATE DATABASE {scratch_database} PRECISION 'us' KEEP 3650")
    setup.create_schema()
    assert setup.database_keep_days == 36500
    setup.close()


def test_series_include_project_and_kind(tsdb):
    base = res("series", project="series-a")
    other_kind = ResultRecord(**{**base.__dict__, "kind": 1, "value": 0.9})
    other_project = ResultRecord(**{**base.__dict__, "project": "series-b"})
    tsdb.write_results([base, other_kind, other_project])
    assert sorted((r.kind, r.value) for r in tsdb.query_results("series-a")) == [(0, 0.5), (1, 0.9)]
    assert len(tsdb.query_results("series-b")) == 1


def test_two_thousand_features_round_trip(tsdb):
    features = [FeatureDriftRecord("wide", "ep", "histogram-data-drift", f"特征_{i:04d}", T0, T0 + W,
                                   i / 4000, i / 5000, i / 100, None if i % 2 else i / 2000,
                                   None if i % 2 else i % 4 == 0, None, 100 + i, 10_000) for i in range(2000)]
    tsdb.write_feature_drift(features)
    assert tsdb.query_feature_drift("wide") == features  # sorted by feature name, as written


def test_a_batch_of_100_windows_round_trips(tsdb):
    results = [res(f"batch-{w % 3}", w, value=w / 100, project="batch") for w in range(100)]
    metrics = [MetricRecord("batch", f"batch-{w % 3}", "histogram-data-drift", "tvd_mean", w / 7, T0 + w * W,
                            T0 + (w + 1) * W) for w in range(100)]
    tsdb.write_window(results, metrics, [], [], [])
    key = lambda r: (r.end_infer_time, r.endpoint_id)  # noqa: E731
    assert tsdb.query_results("batch") == sorted(results, key=key)
    assert tsdb.query_metrics("batch") == sorted(metrics, key=key)
