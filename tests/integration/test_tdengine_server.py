"""The TDengine TSDB against a real server: set ``TDENGINE_URL`` (``taosws://root:taosdata@host:6041``
or ``taos://...``) to run it. Each run uses a fresh database ``streamdrift_test_<random>`` and drops it."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from connectors.tsdb.tdengine import TDengineTSDB
from udfs.records import ErrorRecord, MetricRecord, PredictionRecord, ResultRecord

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
