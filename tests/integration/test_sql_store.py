"""The SQL store on real MariaDB and on SQLite: the same suite on both.

Each MariaDB test gets a fresh database ``streamdrift_test_<random>`` (the ``streamdrift`` user may
create ``streamdrift_*`` databases), dropped afterwards.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import json
import uuid

import numpy as np
import pandas as pd
import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from streamdrift.connectors.sql_store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    NotFoundError,
    SqlStore,
    StoreError,
    is_transient,
    retrying,
)
from streamdrift.udfs.records import MetricRecord, PredictionRecord, ResultRecord
from streamdrift.udfs.reference import feature_stats

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
W = dt.timedelta(minutes=10)
HOSTILE = ["it's", 'say "hi"', "`tick`", "semi;colon", "'); DROP TABLE endpoints; --", "back\\slash",
           "模型-ünïcødé-🚀", "100%_sure", "x", "x "]


@contextlib.contextmanager
def mariadb_database(mysql):
    """A fresh database on the local MariaDB, dropped on leaving: (an admin engine, its URL)."""
    name = f"streamdrift_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    try:
        yield admin, mysql.url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.sqlite"
        return
    with mariadb_database(request.getfixturevalue("mysql")) as (_, db_url):
        yield db_url


@pytest.fixture()
def store(url):
    s = SqlStore(url)
    s.create_schema()
    yield s
    s.close()


def endpoint(store: SqlStore, endpoint_id="ep-1", project="fraud", **kw):
    kw.setdefault("model_name", "classifier")
    kw.setdefault("feature_names", ["a", "b"])
    kw.setdefault("feature_stats", {"a": {"count": 3, "mean": 0.5}, "b": {"count": 3, "top": "x"}})
    return store.upsert_endpoint(endpoint_id, project=project, **kw)


def window(n: int, endpoint_id="ep-1", rows=100, events=10, errors=1, project="fraud") -> PredictionRecord:
    start = T0 + n * W
    return PredictionRecord(project, endpoint_id, start, start + W, rows, events, errors, rows - errors,
                            100.0, 90.0, 200.0, 300.0, start + dt.timedelta(seconds=5),
                            start + W - dt.timedelta(microseconds=3))


def result(n: int, value: float, endpoint_id="ep-1", name="general_drift", app="histogram-data-drift", status=0):
    return ResultRecord("fraud", endpoint_id, app, name, 0, status, value, T0 + n * W, T0 + (n + 1) * W,
                        {"n": n, "tvd": [value, 1 / 3]})


def metric(n: int, value: float, endpoint_id="ep-1", name="tvd_mean"):
    return MetricRecord("fraud", endpoint_id, "histogram-data-drift", name, value, T0 + n * W, T0 + (n + 1) * W)


def count(store: SqlStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()


# --------------------------------------------------------------------------------- schema


def test_schema_is_created_and_upgraded_step_by_step(url):
    with SqlStore(url) as s:
        assert s.schema_version() == 0
        assert s.create_schema(target_version=1) == 1
        tables = set(sa.inspect(s.engine).get_table_names())
        assert {"endpoints", "endpoint_windows", "latest_results", "latest_metrics", "schema_version"} <= tables
        assert "applications" not in tables and "alert_configs" not in tables
        with s.engine.begin() as conn:  # data written at version 1 ...
            conn.execute(sa.text("INSERT INTO endpoints (endpoint_id, project, model_name, feature_names, "
                                 "output_names, label_names, feature_stats, created, updated, monitoring_mode) "
                                 "VALUES ('ep-1', 'fraud', 'classifier', '[]', '[]', '[]', '{}', :t, :t, 'enabled')"),
                         {"t": T0.replace(tzinfo=None)})
        assert s.create_schema() == SCHEMA_VERSION == MIGRATIONS[-1].version
        assert s.get_endpoint("ep-1").model_name == "classifier"  # ... survives the upgrade
        s.add_application("fraud", "my-app", "apps.mine:MyApp")
        assert s.create_schema() == SCHEMA_VERSION  # idempotent
        assert count(s, "schema_version") == 1


def test_an_endpoint_of_a_store_before_step_5_keeps_its_totals_and_drift_status(url):
    """Up to schema version 4 the endpoint's totals and drift status were columns of ``endpoints``
    (created here as they were); step 5 moves them to ``endpoint_status`` and drops them there."""
    old = ("first_request {t}, last_request {t}, rows_count BIGINT NOT NULL, events_count BIGINT NOT NULL, "
           "error_count BIGINT NOT NULL, late_count BIGINT NOT NULL, last_window_end {t}, drift_status INTEGER, "
           "drift_measure FLOAT")
    with SqlStore(url) as s:
        timestamp = "DATETIME(6)" if s.backend == "mysql" else "DATETIME"
        with s.engine.begin() as conn:
            conn.execute(sa.text(
                "CREATE TABLE endpoints (endpoint_id VARCHAR(255) NOT NULL PRIMARY KEY, project VARCHAR(255) NOT NULL, "
                "model_name VARCHAR(255) NOT NULL, model_version VARCHAR(255), function_name VARCHAR(255), "
                "function_tag VARCHAR(255), feature_names TEXT NOT NULL, output_names TEXT NOT NULL, "
                "label_names TEXT NOT NULL, feature_stats TEXT NOT NULL, reference_sample BLOB, reference_rows BIGINT, "
                f"created {timestamp} NOT NULL, updated {timestamp} NOT NULL, {old.format(t=timestamp)}, "
                "monitoring_mode VARCHAR(16) NOT NULL)"))
        assert s.create_schema(target_version=4) == 4
        with s.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO endpoints VALUES ('ep-old', 'fraud', 'm', NULL, NULL, NULL, '[\"a\"]', '[]', '[]', '{}', "
                "NULL, NULL, :t, :t, :first, :last, 420, 42, 4, 2, :end, 2, 0.75, 'enabled')"),
                {"t": T0.replace(tzinfo=None), "first": T0.replace(tzinfo=None) + dt.timedelta(seconds=1),
                 "last": T0.replace(tzinfo=None) + W, "end": T0.replace(tzinfo=None) + W})
            conn.execute(s._t["endpoint_windows"].insert().values(  # counters as version 4 kept them: no totals
                endpoint_id="ep-unregistered", window_end=T0 + W, window_start=T0, rows_count=100, events_count=10,
                error_count=1, late_count=0, updated=T0))
        assert s.create_schema() == SCHEMA_VERSION
        e = s.get_endpoint("ep-old")
        assert (e.rows_count, e.events_count, e.error_count, e.late_count) == (420, 42, 4, 2)
        assert (e.drift_status, e.drift_measure, e.feature_names) == (2, 0.75, ["a"])
        assert (e.first_request, e.last_request, e.last_window_end) == (T0 + dt.timedelta(seconds=1), T0 + W, T0 + W)
        columns = {c["name"] for c in sa.inspect(s.engine).get_columns("endpoints")}
        assert not columns & {"rows_count", "drift_status", "last_window_end"} and "monitoring_mode" in columns
        endpoint(s, "ep-new")  # a new endpoint is written without the dropped columns
        s.add_window_counters("ep-new", window(0, "ep-new"))
        assert s.get_endpoint("ep-new").rows_count == 100 and s.get_endpoint("ep-old").rows_count == 420
        s.add_window_counters("ep-old", window(5, "ep-old"))  # the totals carried over keep counting
        assert s.get_endpoint("ep-old").rows_count == 420 + 100
        # counters of an endpoint not registered before the upgrade: no totals to move, derived at its next window
        assert s.add_window_counters("ep-unregistered", window(1, "ep-unregistered"))["rows_count"] == 100 + 100
        assert s.create_schema() == SCHEMA_VERSION  # idempotent


def test_schema_created_by_several_processes_at_once(url):
    stores = [SqlStore(url) for _ in range(4)]
    with concurrent.futures.ThreadPoolExecutor(len(stores)) as pool:
        versions = list(pool.map(lambda s: s.create_schema(), stores))
    assert versions == [SCHEMA_VERSION] * 4
    endpoint(stores[0])
    assert stores[3].get_endpoint("ep-1") is not None
    for s in stores:
        s.close()


def test_a_newer_schema_is_refused(url):
    with SqlStore(url) as s:
        s.create_schema()
        with s.engine.begin() as conn:
            conn.execute(sa.text("UPDATE schema_version SET version = 99"))
        with pytest.raises(StoreError, match="schema version 99, newer"):
            s.create_schema()


def test_mariadb_columns_hold_megabytes_and_compare_exactly(mysql):
    with mariadb_database(mysql) as (_, db_url):
        with SqlStore(db_url) as s:
            s.create_schema()
            with s.engine.connect() as conn:
                types = dict(conn.execute(sa.text(
                    "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), DATA_TYPE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE()")).all())
                collations = {r[0] for r in conn.execute(sa.text(
                    "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"))}
        assert types["endpoints.feature_stats"] == "longtext"
        assert types["endpoints.reference_sample"] == "longblob"
        assert types["latest_results.extra_data"] == "longtext"
        assert types["endpoints.updated"] == "datetime"
        assert collations == {"utf8mb4_nopad_bin"}


# --------------------------------------------------------------------------------- endpoints


def test_2000_features_round_trip_exactly(store):
    rng = np.random.default_rng(3)
    data = {f"feature {i} (unit)": rng.standard_normal(300) * 10.0 ** rng.integers(-300, 300) for i in range(1_800)}
    data.update({f"cat_{i}": rng.choice([f"v{j}" for j in range(30)], 300) for i in range(200)})
    stats = feature_stats(pd.DataFrame(data))
    assert len(stats) == 2_000
    text = json.dumps(stats)
    assert len(text) > 1_000_000  # far beyond MySQL TEXT (64 KB), where MLRun broke at ~200 features
    sample = bytes(range(256)) * 20_000  # 5 MB of binary
    endpoint(store, feature_names=list(stats), feature_stats=stats, reference_sample=sample)
    got = store.get_endpoint("ep-1")
    assert got.feature_stats == stats
    assert json.dumps(got.feature_stats) == text  # same floats, same key order
    assert got.feature_names == list(stats)
    assert store.get_reference_sample("ep-1") == sample


def test_upsert_endpoint_is_idempotent_and_keeps_counters(store):
    first = endpoint(store, model_version="v1")
    store.add_window_counters("ep-1", window(0))
    second = endpoint(store, model_version="v1", feature_names=["a"], feature_stats={"a": {"count": 9}})
    assert [e.endpoint_id for e in store.list_endpoints()] == ["ep-1"]
    assert second.created == first.created and second.updated >= first.updated
    assert second.feature_names == ["a"] and second.feature_stats == {"a": {"count": 9}}
    assert second.rows_count == 100 and second.events_count == 10


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_ids_projects_and_models_round_trip(store, name):
    endpoint(store, endpoint_id=name, project=name, model_name=name, function_name=name, function_tag=name,
             model_version=name, feature_names=[name], feature_stats={name: {"top": name}})
    got = store.get_endpoint(name)
    assert (got.endpoint_id, got.project, got.model_name, got.function_name, got.function_tag, got.model_version) == \
        (name, name, name, name, name, name)
    assert got.feature_names == [name] and got.feature_stats == {name: {"top": name}}
    assert [e.endpoint_id for e in store.list_endpoints(project=name)] == [name]
    store.upsert_latest_results([dataclasses.replace(result(0, 0.5), endpoint_id=name, project=name)])
    assert [r.project for r in store.latest_results(name)] == [name]
    assert store.delete_endpoint(name) is True and store.get_endpoint(name) is None
    assert count(store, "endpoints") == 0  # the table is still there


def test_ids_differing_by_trailing_space_or_case_are_different_endpoints(store):
    for eid in ("x", "x ", "X"):
        endpoint(store, endpoint_id=eid, model_name=f"model of {eid!r}")
    assert sorted(e.endpoint_id for e in store.list_endpoints()) == ["X", "x", "x "]
    assert store.get_endpoint("x ").model_name == "model of 'x '"


@pytest.mark.parametrize("bad, message", [
    (dict(app="app'; --"), "application name"),
    (dict(app="app`x"), "application name"),
    (dict(name="drift score"), "result name"),
    (dict(name="drift;"), "result name"),
    (dict(name="漂移"), "result name"),
])
def test_invalid_application_and_result_names_are_refused(store, bad, message):
    with pytest.raises(ValueError, match=message):
        store.upsert_latest_results([result(0, 0.1), result(0, 0.2, **bad)])
    assert store.latest_results("ep-1") == []


def test_invalid_metric_name_is_refused(store):
    with pytest.raises(ValueError, match="metric name 'tvd-mean'"):
        store.upsert_latest_metrics([metric(0, 0.1, name="tvd-mean")])


def test_delete_endpoint_removes_its_latest_results_metrics_and_windows(store):
    endpoint(store)
    endpoint(store, endpoint_id="other")
    for eid in ("ep-1", "other"):
        store.add_window_counters(eid, window(0, endpoint_id=eid))
        store.upsert_latest_results([result(0, 0.3, endpoint_id=eid)])
        store.upsert_latest_metrics([metric(0, 0.3, endpoint_id=eid)])
    assert store.delete_endpoint("ep-1") is True
    assert store.latest_results("ep-1") == [] and store.latest_metrics("ep-1") == []
    assert store.window_counters("ep-1") == []
    assert len(store.latest_results("other")) == 1 and len(store.window_counters("other")) == 1
    assert store.delete_endpoint("ep-1") is False


def test_endpoints_version_moves_on_definition_changes_only(store):
    empty = store.endpoints_version()
    assert empty == (0, None)
    endpoint(store)
    created = store.endpoints_version()
    assert created[0] == 1 and created[1] is not None
    store.add_window_counters("ep-1", window(0))
    store.set_drift_status("ep-1", 2, 0.8)
    assert store.endpoints_version() == created  # counters and drift do not trigger a reload
    store.update_reference("ep-1", {"a": {"count": 1}})
    updated = store.endpoints_version()
    assert updated[0] == 1 and updated[1] > created[1]
    changed = store.endpoints_changed_since(created[1])
    assert [e.endpoint_id for e in changed] == ["ep-1"] and changed[0].feature_stats == {"a": {"count": 1}}
    assert store.endpoints_changed_since(updated[1]) == []
    store.delete_endpoint("ep-1")
    assert store.endpoints_version()[0] == 0


def test_update_reference_of_a_missing_endpoint(store):
    with pytest.raises(NotFoundError, match="ghost"):
        store.update_reference("ghost", {})


def test_drift_status_and_monitoring_mode(store):
    endpoint(store)
    assert store.set_drift_status("ep-1", 1, 0.55) is True
    assert store.set_drift_status("ghost", 1, 0.55) is False
    store.set_monitoring_mode("ep-1", "disabled")
    got = store.get_endpoint("ep-1")
    assert (got.drift_status, got.drift_measure, got.monitoring_mode) == (1, 0.55, "disabled")
    with pytest.raises(ValueError, match="monitoring mode"):
        store.set_monitoring_mode("ep-1", "paused")


# --------------------------------------------------------------------------------- window counters


def test_replayed_window_is_not_counted_twice(store):
    endpoint(store)
    store.add_window_counters("ep-1", window(0, rows=100, events=10, errors=1))
    store.add_window_counters("ep-1", window(1, rows=50, events=5, errors=0), late=2)
    totals = store.add_window_counters("ep-1", window(0, rows=100, events=10, errors=1))  # replay
    got = store.get_endpoint("ep-1")
    assert (got.rows_count, got.events_count, got.error_count, got.late_count) == (150, 15, 1, 2)
    assert totals["rows_count"] == 150
    assert got.first_request == T0 + dt.timedelta(seconds=5)
    assert got.last_request == T0 + 2 * W - dt.timedelta(microseconds=3)
    assert got.last_window_end == T0 + 2 * W
    assert len(store.window_counters("ep-1")) == 2
    # a corrected window (late data) replaces its counters
    store.add_window_counters("ep-1", window(1, rows=60, events=6, errors=3), late=4)
    got = store.get_endpoint("ep-1")
    assert (got.rows_count, got.events_count, got.error_count, got.late_count) == (160, 16, 4, 4)


def test_late_rows_add_up_and_survive_window_revisions(store):
    endpoint(store)
    store.add_window_counters("ep-1", window(0))
    end_ms = int((T0 + W).timestamp() * 1000)
    store.add_late_rows("ep-1", end_ms, 3)
    store.add_late_rows("ep-1", T0 + W, 2)  # a datetime works too
    assert store.get_endpoint("ep-1").late_count == 5
    store.add_window_counters("ep-1", window(0, rows=120))  # a revision by data within the lateness
    got = store.get_endpoint("ep-1")
    assert (got.rows_count, got.late_count) == (120, 5)
    store.add_late_rows("ep-1", T0 + 5 * W, 7)  # late rows of a window whose counters never came
    got = store.get_endpoint("ep-1")
    assert (got.rows_count, got.late_count, got.last_window_end) == (120, 12, T0 + 5 * W)
    store.add_window_counters("ep-1", window(0), late=1)  # an explicit count replaces
    assert store.get_endpoint("ep-1").late_count == 8


def test_an_endpoint_reads_as_a_mapping(store):
    ep = endpoint(store)
    as_dict = dict(ep)
    assert as_dict["endpoint_id"] == "ep-1" and as_dict["feature_stats"] == ep.feature_stats
    assert isinstance(as_dict["created"], dt.datetime)
    assert json.loads(json.dumps(ep.to_dict()))["created"] == ep.created.isoformat()


def test_counters_before_registration_count_once_registered(store):
    store.add_window_counters("ep-1", window(0))
    assert store.get_endpoint("ep-1") is None
    assert endpoint(store).rows_count == 100


def test_many_endpoints_at_once_are_stored_as_one_by_one_and_keep_their_counters(store):
    endpoint(store, "ep-1", feature_names=["old"])
    for n, endpoint_id in ((0, "ep-1"), (1, "ep-1"), (2, "ep-7")):  # ep-7: counted before it exists
        store.add_window_counters(endpoint_id, window(n, endpoint_id, rows=10 * (n + 1), events=n + 1, errors=n))
    stats = {"a": {"count": 3, "mean": 0.25, "hist": [[0, 3, 0], [-1.0, 0.0, 1.0, 2.0]]}}
    many = [{"endpoint_id": f"ep-{i}", "project": "fleet", "model_name": f"m{i}", "feature_names": ["a"],
             "feature_stats": stats, "reference_rows": 3, "reference_sample": b"PAR1" if i % 2 else None}
            for i in range(1, 1201)]  # over two chunks
    assert store.upsert_endpoints(many, chunk=1000) == 1200
    got = {e.endpoint_id: e for e in store.list_endpoints("fleet")}
    assert len(got) == 1200 and store.endpoints_version()[0] == 1200
    one = got["ep-1"]  # replaced definition, counters from the windows stored before
    assert (one.model_name, one.feature_names, one.feature_stats) == ("m1", ["a"], stats)
    assert (one.rows_count, one.events_count, one.error_count) == (10 + 20, 1 + 2, 0 + 1)
    assert one.last_window_end == T0 + 2 * W and one.first_request == T0 + dt.timedelta(seconds=5)
    assert (got["ep-7"].rows_count, got["ep-7"].error_count, got["ep-7"].last_window_end) == (30, 2, T0 + 3 * W)
    fresh = got["ep-1200"]
    assert (fresh.rows_count, fresh.events_count, fresh.last_window_end, fresh.first_request) == (0, 0, None, None)
    assert [got[f"ep-{i}"].has_reference_sample for i in (1, 2)] == [True, False]
    assert store.get_reference_sample("ep-3") == b"PAR1"
    with pytest.raises(ValueError, match="duplicates"):  # checked before anything is written
        store.upsert_endpoints([{**many[0], "endpoint_id": "ep-new"}, {**many[1], "feature_names": ["a", "a"]}])
    assert store.get_endpoint("ep-new") is None


def test_counters_must_match_the_endpoint(store):
    with pytest.raises(ValueError, match="'ep-2'"):
        store.add_window_counters("ep-1", window(0, endpoint_id="ep-2"))


VERDICT = ("histogram-data-drift", "general_drift")


def _timed_window(endpoint_id: str, n: int, rows: int, events: int, errors: int, first_s: int | None,
                  last_s: int, naive: bool) -> PredictionRecord:
    """Window ``n`` of an endpoint; its first request ``first_s`` seconds into the window (None: no
    request times), its last ``last_s`` seconds after that; ``naive``: times without a time zone."""
    start = T0 + n * W
    first = None if first_s is None else start + dt.timedelta(seconds=first_s)
    last = None if first is None else first + dt.timedelta(seconds=last_s)
    times = [start, start + W, first, last]
    if naive:
        times = [None if t is None else t.replace(tzinfo=None) for t in times]
    return PredictionRecord("fraud", endpoint_id, times[0], times[1], rows, events, errors, rows - errors,
                            None, None, None, None, times[2], times[3])


class TotalsBook:
    """The totals the store must hold, kept here from what the test wrote: the last counters given
    per (endpoint, window) and the request times recorded since the endpoint's totals were last
    derived from its windows (registration, or its first window)."""

    def __init__(self):
        self.windows: dict[tuple[str, int], dict] = {}
        self.requests: dict[str, list] = {}  # endpoint -> [earliest first request, latest last request]

    def _has_windows(self, e: str) -> bool:
        return any(key[0] == e for key in self.windows)

    def write(self, records: list[tuple], late: int | None) -> None:
        """``records``: (endpoint, window, rows, events, errors, first, last); the last of a window wins."""
        last_given = {(r[0], r[1]): r for r in records}
        for e in {e for e, _ in last_given}:
            if not self._has_windows(e):  # nothing counted yet: derived from the windows written now
                self.requests[e] = [None, None]
        for (e, n), (_, _, rows, events, errors, first, last) in last_given.items():
            old_late = self.windows.get((e, n), {}).get("late", 0)
            self.windows[(e, n)] = {"rows": rows, "events": events, "errors": errors,
                                    "late": old_late if late is None else late, "first": first, "last": last}
            seen = self.requests[e]
            seen[0] = first if seen[0] is None or (first is not None and first < seen[0]) else seen[0]
            seen[1] = last if seen[1] is None or (last is not None and last > seen[1]) else seen[1]

    def late(self, e: str, n: int, late_rows: int) -> None:
        if not self._has_windows(e):
            self.requests[e] = [None, None]
        window = self.windows.setdefault((e, n), {"rows": 0, "events": 0, "errors": 0, "late": 0,
                                                   "first": None, "last": None})
        window["late"] += late_rows

    def register(self, e: str) -> None:
        firsts = [w["first"] for (x, _), w in self.windows.items() if x == e and w["first"] is not None]
        lasts = [w["last"] for (x, _), w in self.windows.items() if x == e and w["last"] is not None]
        self.requests[e] = [min(firsts, default=None), max(lasts, default=None)]

    def totals(self, e: str) -> dict:
        mine = {n: w for (x, n), w in self.windows.items() if x == e}
        first, last = self.requests.get(e, [None, None])
        return {"rows_count": sum(w["rows"] for w in mine.values()),
                "events_count": sum(w["events"] for w in mine.values()),
                "error_count": sum(w["errors"] for w in mine.values()),
                "late_count": sum(w["late"] for w in mine.values()),
                "first_request": first, "last_request": last,
                "last_window_end": max((T0 + (n + 1) * W for n in mine), default=None)}


def stored_totals(store: SqlStore, endpoint_id: str) -> dict:
    """The endpoint's row of ``endpoint_status`` as read by hand (zeros and no times without one)."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT rows_count, events_count, error_count, late_count, first_request, last_request, "
            "last_window_end FROM endpoint_status WHERE endpoint_id = :e"), {"e": endpoint_id}).first()
    names = ["rows_count", "events_count", "error_count", "late_count", "first_request", "last_request",
             "last_window_end"]
    if row is None:
        return dict(zip(names, [0, 0, 0, 0, None, None, None]))

    def read(value):  # times are stored naive in UTC (text on SQLite)
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if isinstance(value, dt.datetime) else value

    return {name: read(value) for name, value in zip(names, row)}


_window_strategy = st.tuples(st.integers(0, 2), st.integers(0, 4), st.integers(0, 1000), st.integers(0, 100),
                             st.integers(0, 10), st.none() | st.integers(0, 599), st.integers(0, 600), st.booleans())
_operations = st.lists(st.one_of(
    # record_window: windows in any order, some repeated; and verdict results of some endpoints
    st.tuples(st.just("record"), st.lists(_window_strategy, min_size=1, max_size=6),
              st.lists(st.integers(0, 2), max_size=2)),
    st.tuples(st.just("counters"), _window_strategy, st.none() | st.integers(0, 50)),
    st.tuples(st.just("late"), st.integers(0, 2), st.integers(0, 4), st.integers(0, 50)),
    st.tuples(st.just("register"), st.integers(0, 2)),
), min_size=1, max_size=12)


def check_totals_follow_the_windows(store: SqlStore, operations: list[tuple]) -> None:
    """Run ``operations`` on fresh endpoints (registered only by a "register" step) and compare the
    store's totals with the book's after each."""
    ids = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    book = TotalsBook()

    def aware(t):
        return None if t is None else t.replace(tzinfo=UTC) if t.tzinfo is None else t

    for op in operations:
        returned = None
        if op[0] in ("record", "counters"):
            windows = op[1] if op[0] == "record" else [op[1]]
            predictions = [_timed_window(ids[e], n, *rest) for e, n, *rest in windows]
            book.write([(p.endpoint_id, n, p.count, p.events, p.error_count, aware(p.first_request),
                         aware(p.last_request)) for p, (_, n, *_) in zip(predictions, windows)],
                       op[2] if op[0] == "counters" else None)
            if op[0] == "record":
                judged = [result(0, 0.5, endpoint_id=ids[e], status=1) for e in op[2]]
                store.record_window(judged, [], predictions, VERDICT)
            else:
                returned = (ids[op[1][0]], store.add_window_counters(ids[op[1][0]], predictions[0], op[2]))
        elif op[0] == "late":
            book.late(ids[op[1]], op[2], op[3])
            returned = (ids[op[1]], store.add_late_rows(ids[op[1]], T0 + (op[2] + 1) * W, op[3]))
        else:
            book.register(ids[op[1]])
            endpoint(store, ids[op[1]])
        for e in ids:
            assert stored_totals(store, e) == book.totals(e), (op, e)
        if returned is not None:
            assert returned[1] == book.totals(returned[0])


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    with SqlStore(f"sqlite:///{tmp_path_factory.mktemp('totals')}/store.sqlite") as s:
        s.create_schema()
        yield s


@pytest.fixture(scope="module")
def mariadb_store(mysql):
    with mariadb_database(mysql) as (_, url), SqlStore(url) as s:
        s.create_schema()
        yield s


@settings(max_examples=400, deadline=None)
@given(_operations)
def test_totals_are_the_sums_over_the_last_counters_of_each_window_sqlite(sqlite_store, operations):
    check_totals_follow_the_windows(sqlite_store, operations)


@settings(max_examples=40, deadline=None)
@given(_operations)
def test_totals_are_the_sums_over_the_last_counters_of_each_window_mariadb(mariadb_store, operations):
    check_totals_follow_the_windows(mariadb_store, operations)


# batches of verdict results: (endpoint, window, status, value as a fraction of 1,000), other results mixed in
_verdict_batches = st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 2),
                                               st.integers(0, 1000), st.booleans()), max_size=8),
                            min_size=1, max_size=5)


def check_drift_status_follows_the_newest_verdict(store: SqlStore, batches: list[list[tuple]]) -> None:
    """Each endpoint's drift status and measure are those of its verdict result of the newest window
    recorded so far, of equal windows the one given last (within a batch, and a later batch's);
    a result of another name moves nothing. Expected values kept here in a dict."""
    ids = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(4)]
    for e in ids[:3]:  # the fourth is not registered: its status row comes with its first verdict
        endpoint(store, e)
    newest: dict[str, tuple[int, int, float]] = {}  # endpoint -> (window, status, value)
    for batch in batches:
        results = []
        for e, n, status, value, is_verdict in batch:
            name = VERDICT[1] if is_verdict else "other_drift"
            results.append(result(n, value / 1000, endpoint_id=ids[e], name=name, status=status))
            if is_verdict and (ids[e] not in newest or n >= newest[ids[e]][0]):
                newest[ids[e]] = (n, status, value / 1000)
        store.record_window(results, [], None, VERDICT)
        with store.engine.connect() as conn:
            got = {e: (s, v) for e, s, v in conn.execute(sa.text(
                "SELECT endpoint_id, drift_status, drift_measure FROM endpoint_status")) if e in ids}
        # (drift_measure is FLOAT on MySQL: single precision)
        assert {e: sv for e, sv in got.items() if sv[0] is not None} == {
            e: (status, pytest.approx(value, rel=1e-5, abs=1e-7)) for e, (_, status, value) in newest.items()}


@settings(max_examples=150, deadline=None)
@given(_verdict_batches)
def test_drift_status_follows_the_newest_verdict_sqlite(sqlite_store, batches):
    check_drift_status_follows_the_newest_verdict(sqlite_store, batches)


@settings(max_examples=30, deadline=None)
@given(_verdict_batches)
def test_drift_status_follows_the_newest_verdict_mariadb(mariadb_store, batches):
    check_drift_status_follows_the_newest_verdict(mariadb_store, batches)


def test_writers_and_registrations_at_the_same_time_leave_totals_equal_to_the_windows(url):
    """Three writers rewrite the same windows of three endpoints with other counts while the
    endpoints are registered again and again, each through its own connection: the totals
    still equal the sums of the stored windows (a delta computed from old counters that another
    writer changed meanwhile, or a registration's sums that miss a writer's window, would not)."""
    ids = ["ep-1", "ep-2", "ep-3"]
    with SqlStore(url) as s:
        s.create_schema()
    stores = [SqlStore(url, attempts=50, backoff=0.01) for _ in range(4)]  # deadlocks are retried

    def write(k: int) -> None:
        rng = np.random.default_rng(k)
        for _ in range(25):  # all in the same order: they wait for each other rather than deadlock
            stores[k].record_window([], [], [window(n, e, rows=int(rng.integers(1, 1000)),
                                                    events=int(rng.integers(1, 9))) for e in ids for n in range(3)])

    def register() -> None:
        for _ in range(10):
            for e in ids:
                endpoint(stores[3], e)

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for done in [pool.submit(write, k) for k in range(3)] + [pool.submit(register)]:
                done.result()
        with stores[0].engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT endpoint_id, rows_count, events_count FROM endpoint_windows")).all()
        for e in ids:
            got = stores[0].get_endpoint(e)
            assert (got.rows_count, got.events_count) == (sum(r[1] for r in rows if r[0] == e),
                                                          sum(r[2] for r in rows if r[0] == e))
    finally:
        for s in stores:
            s.close()


def test_the_writer_reads_no_window_but_those_it_writes_once_an_endpoint_has_totals(store):
    """Its cost must not grow with an endpoint's history: no statement sums ``endpoint_windows``,
    and a window stored behind the store's back is not counted until a registration derives the
    totals from every window again."""
    for e in ("ep-1", "ep-2"):
        endpoint(store, e)
    for n in range(5):  # history: the first of these derives the totals, the others move them
        store.record_window([], [], [window(n, e) for e in ("ep-1", "ep-2")])
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.record_window([result(5, 0.3, endpoint_id=e) for e in ("ep-1", "ep-2")], [],
                            [window(5, e, rows=7) for e in ("ep-1", "ep-2")] + [window(2, "ep-1", rows=1)], VERDICT)
        assert store.add_window_counters("ep-2", window(6, "ep-2"), late=3)["rows_count"] == 500 + 7 + 100
        assert store.add_late_rows("ep-1", T0 + 3 * W, 2)["late_count"] == 2
        hot = len(statements)
        store.add_window_counters("ep-3", window(0, "ep-3"))  # a first window: its totals are derived
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    assert not [s for s in statements[:hot] if "sum(" in s.lower()]
    assert [s for s in statements[hot:] if "sum(endpoint_windows.rows_count)" in s.lower()]  # what is looked for
    for s in statements[:hot]:  # whatever reads endpoint_windows names the windows' keys
        if "from endpoint_windows" in s.lower():
            assert "endpoint_windows.window_end IN" in s or "endpoint_windows.window_end =" in s, s
    assert (store.get_endpoint("ep-1").rows_count, store.get_endpoint("ep-1").late_count) == (500 - 100 + 1 + 7, 2)
    with store.engine.begin() as conn:  # a window the store did not write
        conn.execute(store._t["endpoint_windows"].insert().values(
            endpoint_id="ep-1", window_end=T0 + 50 * W, window_start=T0 + 49 * W, rows_count=1000, events_count=0,
            error_count=0, late_count=0, updated=T0))
    store.record_window([], [], [window(7, "ep-1", rows=10)])
    assert store.get_endpoint("ep-1").rows_count == 408 + 10
    endpoint(store, "ep-1")
    assert store.get_endpoint("ep-1").rows_count == 408 + 10 + 1000


# --------------------------------------------------------------------------------- latest results and metrics


def test_latest_results_replay_once_and_never_go_back_in_time(store):
    store.upsert_latest_results([result(1, 0.4)])
    store.upsert_latest_results([result(1, 0.6, status=1)])  # the same window again, corrected
    assert count(store, "latest_results") == 1
    assert [(r.value, r.status) for r in store.latest_results("ep-1")] == [(0.6, 1)]
    store.upsert_latest_results([result(0, 0.1)])  # an older window arrives late
    assert [(r.value, r.end_infer_time) for r in store.latest_results("ep-1")] == [(0.6, T0 + 2 * W)]
    store.upsert_latest_results([result(2, 0.9, status=2), result(2, 0.2, name="other")])
    got = store.latest_results("ep-1")
    assert [(r.result_name, r.value, r.status) for r in got] == [("general_drift", 0.9, 2), ("other", 0.2, 0)]
    assert got[0] == result(2, 0.9, status=2)  # every field round-trips, extra_data included


def test_latest_metrics_replay_once_and_never_go_back_in_time(store):
    store.upsert_latest_metrics([metric(1, 0.4), metric(1, 0.5)])
    assert count(store, "latest_metrics") == 1
    assert [m.value for m in store.latest_metrics("ep-1")] == [0.5]
    store.upsert_latest_metrics([metric(0, 0.1)])
    assert [m.value for m in store.latest_metrics("ep-1")] == [0.5]
    store.upsert_latest_metrics([metric(3, float("nan"))])
    assert store.latest_metrics("ep-1") == [metric(3, None)]


# --------------------------------------------------------------------------------- applications and alerts


def test_applications_registry(store):
    store.add_application("fraud", "histogram-data-drift", "streamdrift.udfs.histogram_drift:HistogramDataDrift")
    store.add_application("fraud", "my_app", "apps.mine:MyApp", {"threshold": 0.3, "columns": ["a"]})
    store.add_application("other", "my_app", "apps.other:App")
    assert [a.name for a in store.list_applications("fraud")] == ["histogram-data-drift", "my_app"]
    assert store.get_application("fraud", "my_app").params == {"threshold": 0.3, "columns": ["a"]}
    store.set_application_enabled("fraud", "my_app", False)
    assert [a.name for a in store.list_applications("fraud", enabled_only=True)] == ["histogram-data-drift"]
    store.add_application("fraud", "my_app", "apps.mine:MyAppV2")  # redefine
    assert store.get_application("fraud", "my_app").class_path == "apps.mine:MyAppV2"
    assert store.remove_application("fraud", "my_app") is True
    assert store.remove_application("fraud", "my_app") is False
    assert [a.project for a in store.list_applications("other")] == ["other"]
    with pytest.raises(ValueError, match="module:ClassName"):
        store.add_application("fraud", "x", "not a class path")
    with pytest.raises(ValueError, match="application name"):
        store.add_application("fraud", "bad name", "a:B")
    with pytest.raises(NotFoundError):
        store.set_application_enabled("fraud", "ghost", True)


def test_alert_configs_and_activations(store):
    config = store.add_alert_config(
        "fraud", "drift on ep-1", summary="Drift {{ value }} on {{ entity }}", severity="high",
        entities={"kind": "model-endpoint-result", "ids": ["ep-1"]}, trigger_kinds=["data_drift_detected"],
        criteria={"count": 2, "period": "30m"}, reset_policy="manual",
        notifications=[{"kind": "webhook", "url": "http://hooks/x"}])
    assert config.state == "inactive" and config.criteria == {"count": 2, "period": "30m"}
    store.set_alert_state("fraud", "drift on ep-1", "active")
    assert [(a.name, a.state) for a in store.list_alert_configs("fraud")] == [("drift on ep-1", "active")]
    ids = [store.add_activation("fraud", "drift on ep-1", activated_at=T0 + i * W, entity="ep-1",
                                event_kind="data_drift_detected", severity="high", summary=f"drift {i}",
                                value=0.7 + i / 100, window_end=T0 + i * W, notified={"webhook": True})
           for i in range(3)]
    assert len(set(ids)) == 3
    assert store.reset_activation(ids[0], T0 + 5 * W) is True
    got = store.list_activations("fraud", "drift on ep-1")
    assert [a.summary for a in got] == ["drift 0", "drift 1", "drift 2"]
    assert got[0].reset_at == T0 + 5 * W and got[1].reset_at is None and got[2].value == pytest.approx(0.72)
    assert [a.summary for a in store.list_activations("fraud", limit=2)] == ["drift 1", "drift 2"]
    assert [a.summary for a in store.list_activations("fraud", since=T0 + 2 * W)] == ["drift 2"]
    assert store.delete_alert_config("fraud", "drift on ep-1") is True
    assert store.get_alert_config("fraud", "drift on ep-1") is None
    assert len(store.list_activations("fraud")) == 3  # history stays


# --------------------------------------------------------------------------------- errors and retries


def _operational(code: int, text: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, text))


def test_retrying_backs_off_exponentially_then_succeeds():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise _operational(2003, "Can't connect to MySQL server on '127.0.0.1'")
        return "ok"

    assert retrying(flaky, attempts=5, backoff=0.5, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_retrying_gives_up_with_a_store_error():
    sleeps = []

    def down():
        raise _operational(2013, "Lost connection to server during query")

    with pytest.raises(StoreError, match="after 4 attempt.*Lost connection"):
        retrying(down, attempts=4, backoff=1.0, max_backoff=1.5, sleep=sleeps.append)
    assert sleeps == [1.0, 1.5, 1.5]


def test_permanent_errors_are_not_retried():
    assert not is_transient(_operational(1045, "Access denied for user 'x'"))
    assert not is_transient(ValueError("bad input"))
    assert is_transient(_operational(2006, "MySQL server has gone away"))
    calls = []

    def denied():
        calls.append(1)
        raise _operational(1045, "Access denied")

    with pytest.raises(StoreError, match="Access denied"):
        retrying(denied, attempts=5, sleep=lambda s: None)
    assert len(calls) == 1


def test_unreachable_server_is_a_store_error_without_the_password():
    with pytest.raises(StoreError) as info:
        SqlStore("mysql+pymysql://streamdrift:Pa55-w0rd!@127.0.0.1:1/streamdrift", attempts=2,
                 backoff=0.01).create_schema()
    message = str(info.value)
    assert "Pa55-w0rd!" not in message and "streamdrift:***@127.0.0.1:1" in message
    assert "after 2 attempt" in message and "Can't connect" in message


def test_wrong_password_fails_at_once_without_showing_it(mysql):
    url = mysql.url.replace(f":{mysql.password}@", ":Wr0ng-secret@")
    with pytest.raises(StoreError) as info:
        SqlStore(url, attempts=5, backoff=5).list_endpoints()  # not retried: no 5 s wait
    assert "Wr0ng-secret" not in str(info.value) and "Access denied" in str(info.value)


def test_cli_masks_the_password(mysql, capsys):
    import argparse

    from streamdrift.jobs import endpoints_cli

    parser = argparse.ArgumentParser()
    endpoints_cli.register(parser.add_subparsers(dest="command"))
    url = mysql.url.replace(f":{mysql.password}@", ":Wr0ng-secret@")
    args = parser.parse_args(["endpoints", "list", "--endpoint-store-connection", url])
    assert args.func(args) == endpoints_cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "Wr0ng-secret" not in err and ":***@" in err and "Access denied" in err


def test_a_killed_connection_is_replaced(mysql):
    with mariadb_database(mysql) as (admin, db_url):
        with SqlStore(db_url) as s:
            s.create_schema()
            endpoint(s)
            with s.engine.connect() as conn:  # the pooled connection the store will reuse
                victim = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
            with admin.begin() as conn:
                conn.execute(sa.text(f"KILL CONNECTION {int(victim)}"))
            assert s.get_endpoint("ep-1").model_name == "classifier"  # pre-ping reconnects


def test_repr_hides_the_password():
    s = SqlStore("mysql+pymysql://streamdrift:hunter2@127.0.0.1:3307/streamdrift")
    assert "hunter2" not in repr(s) and "hunter2" not in s.masked_url
    s.close()


def test_a_window_recorded_at_once_equals_its_writes_one_by_one(store):
    endpoint(store)
    endpoint(store, "ep-2")
    store.record_window([result(0, 0.4)], [metric(0, 0.2)], window(0, rows=100, events=10, errors=1))
    store.upsert_latest_results([result(0, 0.4, endpoint_id="ep-2")])
    store.upsert_latest_metrics([metric(0, 0.2, endpoint_id="ep-2")])
    store.add_window_counters("ep-2", window(0, endpoint_id="ep-2", rows=100, events=10, errors=1))
    one, two = store.get_endpoint("ep-1"), store.get_endpoint("ep-2")
    assert (one.rows_count, one.events_count, one.error_count) == (two.rows_count, two.events_count,
                                                                   two.error_count) == (100, 10, 1)
    assert [(r.result_name, r.value) for r in store.latest_results("ep-1")] == [("general_drift", 0.4)]
    assert [r.value for r in store.latest_results("ep-1")] == [r.value for r in store.latest_results("ep-2")]
    assert [m.value for m in store.latest_metrics("ep-1")] == [m.value for m in store.latest_metrics("ep-2")] == [0.2]
    store.record_window([result(0, 0.4)], [metric(0, 0.2)], window(0, rows=100, events=10, errors=1))  # replay
    assert store.get_endpoint("ep-1").rows_count == 100
    # an older window does not turn the latest result back
    store.record_window([result(-1, 0.9)], [], None)
    assert [r.value for r in store.latest_results("ep-1")] == [0.4]


@pytest.mark.parametrize("n_windows", [100, 900])
def test_a_batch_of_windows_recorded_at_once(store, n_windows):
    """The writer's batch: the records of 100 (900) windows of three endpoints, given in shuffled
    order, in one call (2,700 window counters: statements of many rows, over several); the stored
    latest values and totals computed here from the inputs."""
    rng = np.random.default_rng(3)
    endpoints = ["ep-1", "ep-2", "ep-3"]
    for e in endpoints[:2]:  # ep-3 is not registered yet: its counters wait for it
        endpoint(store, e)
    windows = [(e, n) for n in range(n_windows) for e in endpoints]
    values = {w: float(rng.uniform()) for w in windows}
    rows = {w: int(rng.integers(1, 1000)) for w in windows}
    order = rng.permutation(len(windows))
    shuffled = [windows[i] for i in order]
    store.record_window([result(n, values[(e, n)], endpoint_id=e) for e, n in shuffled],
                        [metric(n, values[(e, n)] / 2, endpoint_id=e) for e, n in shuffled],
                        [window(n, endpoint_id=e, rows=rows[(e, n)], events=n + 1, errors=n % 2)
                         for e, n in shuffled])
    for e in endpoints[:2]:
        got = store.get_endpoint(e)
        assert got.rows_count == sum(rows[(e, n)] for n in range(n_windows))
        assert got.events_count == sum(n + 1 for n in range(n_windows)) and got.error_count == n_windows // 2
        assert got.last_window_end == T0 + n_windows * W
        # (the value columns are FLOAT on MySQL: single precision, read back with 6 digits)
        assert [(r.value, r.end_infer_time) for r in store.latest_results(e)] == [
            (pytest.approx(values[(e, n_windows - 1)], rel=1e-5), T0 + n_windows * W)]
        assert [m.value for m in store.latest_metrics(e)] == [
            pytest.approx(values[(e, n_windows - 1)] / 2, rel=1e-5)]
        assert len(store.window_counters(e)) == n_windows
    assert len(store.window_counters("ep-3")) == n_windows
    endpoint(store, "ep-3")
    assert store.get_endpoint("ep-3").rows_count == sum(rows[("ep-3", n)] for n in range(n_windows))
    # the same batch again (a replay) counts nothing twice
    store.record_window([], [], [window(n, endpoint_id=e, rows=rows[(e, n)], events=n + 1, errors=n % 2)
                                 for e, n in windows])
    assert store.get_endpoint("ep-1").rows_count == sum(rows[("ep-1", n)] for n in range(n_windows))


def test_a_batch_is_one_multi_row_statement_per_table_on_mariadb(mysql):
    """What reaches the server: one INSERT ... VALUES (...), (...) per table, not one per window,
    both when the endpoint's totals are first derived and when a later batch moves them."""
    import pymysql.cursors

    original = pymysql.cursors.Cursor._query
    with mariadb_database(mysql) as (_, url), SqlStore(url) as store:
        store.create_schema()
        endpoint(store)
        for first in (0, 50):  # windows 50-99 again, and 50 new ones
            sent: list[str] = []

            def record(cursor, q):
                sent.append(q if isinstance(q, str) else q.decode("utf-8", "replace"))
                return original(cursor, q)

            pymysql.cursors.Cursor._query = record
            try:
                store.record_window([result(n, 0.1) for n in range(first, first + 100)],
                                    [metric(n, 0.2) for n in range(first, first + 100)],
                                    [window(n) for n in range(first, first + 100)])
            finally:
                pymysql.cursors.Cursor._query = original
            inserts = [q for q in sent if q.lstrip().upper().startswith("INSERT")]
            # endpoint_windows, latest_results, latest_metrics, and the endpoint's totals (endpoint_status)
            assert sorted(next(t for t in ("endpoint_windows", "latest_results", "latest_metrics", "endpoint_status")
                               if f"INTO {t} " in q or f"INTO `{t}`" in q) for q in inserts) == [
                "endpoint_status", "endpoint_windows", "latest_metrics", "latest_results"]
            windows_insert = next(q for q in inserts if "endpoint_windows" in q)
            assert windows_insert.count("),(") + windows_insert.count("), (") == 99  # 100 rows in one statement
        assert store.get_endpoint("ep-1").rows_count == 150 * 100


def test_a_batch_is_a_few_statements_of_many_rows_on_sqlite(tmp_path):
    """What SQLite runs for a batch of 2,500 windows: the windows' counters in statements of up to
    1,000 rows (three), not a statement per window (pysqlite gives up the GIL at each statement's
    step and waits for it after: a statement per row waits once per row on the worker's threads)."""
    with SqlStore(f"sqlite:///{tmp_path}/store.sqlite") as store:
        store.create_schema()
        endpoint(store)
        ran: list[str] = []
        sa.event.listen(store.engine, "connect", lambda dbapi_conn, _: dbapi_conn.set_trace_callback(ran.append))
        store.engine.dispose()  # the next connection is traced
        store.record_window([result(n, 0.1) for n in range(2500)], [metric(n, 0.2) for n in range(2500)],
                            [window(n, rows=n + 1) for n in range(2500)])
        inserts = [q for q in ran if q.lstrip().upper().startswith("INSERT INTO ENDPOINT_WINDOWS")]
        assert len(inserts) == 3
        assert store.get_endpoint("ep-1").rows_count == sum(n + 1 for n in range(2500))
        assert len(store.window_counters("ep-1")) == 2500


def test_a_batch_of_endpoints_that_have_totals_reads_no_row_per_endpoint_on_sqlite(tmp_path):
    """A batch of 1,000 endpoints' next windows with their verdicts: SQLite returns no row per
    endpoint (each would be one more step of a statement, one more wait for the GIL beside the
    worker's other threads), and the totals and drift statuses are those of the windows given."""
    ids = [f"ep-{i}" for i in range(1000)]
    with SqlStore(f"sqlite:///{tmp_path}/store.sqlite") as store:
        store.create_schema()
        for e in ids:
            endpoint(store, e)
        store.record_window([result(0, 0.1, endpoint_id=e) for e in ids], [], [window(0, e) for e in ids], VERDICT)
        ran: list[str] = []
        sa.event.listen(store.engine, "connect", lambda dbapi_conn, _: dbapi_conn.set_trace_callback(ran.append))
        store.engine.dispose()  # the next connection is traced
        store.record_window([result(1, i / 1000, endpoint_id=e, status=i % 3) for i, e in enumerate(ids)], [],
                            [window(1, e, rows=i + 1) for i, e in enumerate(ids)], VERDICT)
        selects = [" ".join(q.split()).split(" FROM ")[0] for q in ran if q.lstrip().upper().startswith("SELECT")]
        assert selects == ["SELECT endpoint_windows.endpoint_id, endpoint_windows.window_end, "
                           "endpoint_windows.rows_count, endpoint_windows.events_count, "
                           "endpoint_windows.error_count, endpoint_windows.late_count",
                           "SELECT count(*) AS count_1"], selects  # how many of them counted a window
        for i, e in enumerate(ids):  # the windows' new counters are not stored yet: nothing comes back
            got = store.get_endpoint(e)
            assert (got.rows_count, got.drift_status, got.drift_measure) == (100 + i + 1, i % 3, i / 1000)


def test_a_sqlite_taking_999_parameters_per_statement_gets_statements_it_takes(tmp_path):
    """SQLite before 3.32 takes 999 parameters per statement (emulated with ``setlimit``): a batch of
    900 windows (their reads hold 901 parameters) is recorded whole, its writes cut to fit."""
    import sqlite3

    with SqlStore(f"sqlite:///{tmp_path}/store.sqlite") as store:
        store.create_schema()
        endpoint(store)
        sa.event.listen(store.engine, "connect",
                        lambda dbapi_conn, _: dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
        store.engine.dispose()  # the next connection has the limit
        store.record_window([result(n, 0.1) for n in range(900)], [metric(n, 0.2) for n in range(900)],
                            [window(n, rows=n + 1) for n in range(900)])
        assert store.get_endpoint("ep-1").rows_count == sum(n + 1 for n in range(900))
        assert len(store.window_counters("ep-1")) == 900


def test_a_value_its_column_type_refuses_is_a_store_error_on_sqlite(tmp_path):
    """A batch whose extra_data holds what JSON cannot hold fails as the store's error, whether its
    rows go in one statement or one each."""
    with SqlStore(f"sqlite:///{tmp_path}/store.sqlite") as store:
        store.create_schema()
        endpoint(store)
        bad = dataclasses.replace(result(1, 0.1), extra_data={"s": {1, 2}})
        for results in ([bad], [result(1, 0.1, endpoint_id="ep-2"), bad]):  # one row; two in one statement
            with pytest.raises(StoreError):
                store.record_window(results, [], None)
