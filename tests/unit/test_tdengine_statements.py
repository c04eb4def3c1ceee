"""TDengine statements, asserted exactly. No TDengine server runs here, so every test that needs a
connection uses a mock one that records the statements it is sent (hence ``mock`` in the names);
tests/integration/test_tdengine_server.py runs the same paths against a real server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest

from streamdrift.connectors.tsdb import TSDBError, open_tsdb
from streamdrift.connectors.tsdb import tdengine as td
from streamdrift.connectors.tsdb.tdengine import TDengineTSDB
from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC)  # 1704067200 s since the epoch
T1 = dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC)  # 1704067800 s
T0_US, T1_US = 1704067200_000000, 1704067800_000000

HOSTILE_IDS = [
    "it's",
    'double"quote',
    "back`tick`",
    "semi;colon",
    "'); DROP DATABASE streamdrift; --",
    "back\\slash\\",
    "\\'",
    "ünïcødé-模型-🚀",
    "percent%_underscore",
]


class FakeConnection:
    """Records every statement; answers queries with canned rows."""

    def __init__(self, rows: list[tuple] | None = None):
        self.statements: list[str] = []
        self.rows = rows or []
        self.closed = False

    def execute(self, sql: str) -> int:
        self.statements.append(sql)
        return 0

    def query(self, sql: str) -> list[tuple]:
        self.statements.append(sql)
        return list(self.rows)

    def close(self) -> None:
        self.closed = True


def split_sql(sql: str) -> tuple[list[str], list[str]]:
    """(code outside string literals, decoded string literals) of a TDengine statement, read the way
    TDengine reads single-quoted strings: a backslash escapes the next character."""
    code, strings, i = [], [], 0
    outside: list[str] = []
    while i < len(sql):
        c = sql[i]
        if c != "'":
            outside.append(c)
            i += 1
            continue
        code.append("".join(outside))
        outside, buf, i = [], [], i + 1
        while True:
            assert i < len(sql), f"unterminated string literal in {sql!r}"
            c = sql[i]
            if c == "\\":
                buf.append({"n": "\n", "r": "\r", "t": "\t"}.get(sql[i + 1], sql[i + 1]))
                i += 2
            elif c == "'":
                i += 1
                break
            else:
                buf.append(c)
                i += 1
        strings.append("".join(buf))
    code.append("".join(outside))
    return code, strings


def sha1_name(prefix: str, *identity) -> str:
    """The subtable name of a series: the prefix and the SHA-1 of [supertable, *series fields] as JSON."""
    return prefix + "_" + hashlib.sha1(json.dumps(list(identity), ensure_ascii=False).encode()).hexdigest()


def result(endpoint_id="ep-1", app="histogram-data-drift", name="general_drift", value=0.75, status=2, kind=0,
           start=T0, end=T1, extra=None, project="fraud") -> ResultRecord:
    return ResultRecord(project, endpoint_id, app, name, kind, status, value, start, end, extra or {})


# ----------------------------------------------------------------------------------- DDL


def test_schema_statements_mock():
    conn = FakeConnection()
    TDengineTSDB(connection=conn).create_schema()
    assert conn.statements == [
        "CREATE DATABASE IF NOT EXISTS streamdrift PRECISION 'us' KEEP 36500",
        "SELECT `name`, `precision`, `keep` FROM information_schema.ins_databases WHERE `name` = 'streamdrift'",
        "CREATE STABLE IF NOT EXISTS streamdrift.app_results (end_infer_time TIMESTAMP, start_infer_time TIMESTAMP, "
        "result_value DOUBLE, result_status INT, result_extra_data VARCHAR(16000)) TAGS (project NCHAR(255), "
        "endpoint_id NCHAR(255), application_name VARCHAR(128), result_name VARCHAR(128), result_kind INT)",
        "CREATE STABLE IF NOT EXISTS streamdrift.metrics (end_infer_time TIMESTAMP, start_infer_time TIMESTAMP, "
        "metric_value DOUBLE) TAGS (project NCHAR(255), endpoint_id NCHAR(255), application_name VARCHAR(128), "
        "metric_name VARCHAR(128))",
        "CREATE STABLE IF NOT EXISTS streamdrift.predictions (end_infer_time TIMESTAMP, start_infer_time TIMESTAMP, "
        "row_count BIGINT, event_count BIGINT, error_count BIGINT, latency_count BIGINT, latency_mean_us DOUBLE, "
        "latency_p50_us DOUBLE, latency_p95_us DOUBLE, latency_p99_us DOUBLE, first_request TIMESTAMP, "
        "last_request TIMESTAMP, estimated_count DOUBLE) TAGS (project NCHAR(255), endpoint_id NCHAR(255))",
        "CREATE STABLE IF NOT EXISTS streamdrift.errors (time TIMESTAMP, model_error NCHAR(1000)) "
        "TAGS (project NCHAR(255), endpoint_id NCHAR(255), application_name VARCHAR(128), error_type NCHAR(255))",
        "CREATE STABLE IF NOT EXISTS streamdrift.feature_drift (end_infer_time TIMESTAMP, start_infer_time TIMESTAMP, "
        "tvd DOUBLE, hellinger DOUBLE, kld DOUBLE, p_value DOUBLE, rejected BOOL, effect_size DOUBLE, "
        "window_count BIGINT, reference_count BIGINT, invalid_share DOUBLE) TAGS (project NCHAR(255), "
        "endpoint_id NCHAR(255), application_name VARCHAR(128), feature_name NCHAR(255))",
        "SELECT table_name, col_name FROM information_schema.ins_columns WHERE db_name = 'streamdrift' "
        "AND table_type = 'SUPER_TABLE'",
    ]


def test_a_supertable_of_an_older_version_gets_its_new_columns_mock():
    from streamdrift.connectors.tsdb.tdengine import PREDICTIONS, add_columns_sql

    old_predictions = [("predictions", c) for c, _ in PREDICTIONS.columns if c != "estimated_count"]
    assert add_columns_sql("db", old_predictions) == ["ALTER STABLE db.predictions ADD COLUMN estimated_count DOUBLE"]
    assert add_columns_sql("db", [("predictions", c) for c, _ in PREDICTIONS.columns]) == []
    assert add_columns_sql("db", []) == []  # nothing created yet: CREATE STABLE made them whole
    old_feature_drift = [("feature_drift", c) for c in ("end_infer_time", "start_infer_time", "tvd", "hellinger", "kld",
                                                        "p_value", "rejected", "effect_size", "window_count",
                                                        "reference_count")]
    assert add_columns_sql("db", old_feature_drift) == ["ALTER STABLE db.feature_drift ADD COLUMN invalid_share DOUBLE"]


def test_database_comes_from_the_url_path_mock():
    conn = FakeConnection()
    TDengineTSDB("taosws://root:taosdata@tdengine:6041/monitoring", connection=conn).create_schema()
    assert conn.statements[0] == "CREATE DATABASE IF NOT EXISTS monitoring PRECISION 'us' KEEP 36500"
    assert conn.statements[1].endswith("WHERE `name` = 'monitoring'")
    assert all(" monitoring." in s for s in conn.statements[2:-1])
    assert conn.statements[-1].endswith("db_name = 'monitoring' AND table_type = 'SUPER_TABLE'")


@pytest.mark.parametrize("database", ["a;b", "db`", "1db", "mon-itoring", "x" * 65, ""])
def test_invalid_database_name_refused_mock(database):
    with pytest.raises(ValueError, match="database name"):
        TDengineTSDB(connection=FakeConnection(), database=database)


# ----------------------------------------------------------------------------------- inserts


def test_result_insert_exact_mock():
    conn = FakeConnection()
    TDengineTSDB(connection=conn).write_results([result(extra={"tvd_mean": 0.5})])
    table = sha1_name("res", "app_results", "fraud", "ep-1", "histogram-data-drift", "general_drift", 0)
    assert conn.statements == [
        f"INSERT INTO streamdrift.{table} USING streamdrift.app_results "
        "(project, endpoint_id, application_name, result_name, result_kind) "
        "TAGS ('fraud', 'ep-1', 'histogram-data-drift', 'general_drift', 0) "
        "(end_infer_time, start_infer_time, result_value, result_status, result_extra_data) "
        f"VALUES ({T1_US}, {T0_US}, 0.75, 2, '{{\"tvd_mean\":0.5}}')"
    ]


def test_metric_prediction_error_inserts_exact_mock():
    conn = FakeConnection()
    tsdb = TDengineTSDB(connection=conn)
    tsdb.write_metrics([MetricRecord("fraud", "ep-1", "histogram-data-drift", "tvd_mean", 0.125, T0, T1)])
    tsdb.write_predictions([PredictionRecord("fraud", "ep-1", T0, T1, 120, 40, 3, 37, 1500.5, 1200.0, 4000.0,
                                             9000.25, T0 + dt.timedelta(microseconds=7), None)])
    tsdb.write_errors([ErrorRecord("fraud", "ep-1", "my-app", "mm-app-failed", "ZeroDivisionError: x\ny", T1)])
    assert conn.statements == [
        f"INSERT INTO streamdrift.{sha1_name('met', 'metrics', 'fraud', 'ep-1', 'histogram-data-drift', 'tvd_mean')} "
        "USING streamdrift.metrics (project, endpoint_id, application_name, metric_name) "
        "TAGS ('fraud', 'ep-1', 'histogram-data-drift', 'tvd_mean') "
        f"(end_infer_time, start_infer_time, metric_value) VALUES ({T1_US}, {T0_US}, 0.125)",
        f"INSERT INTO streamdrift.{sha1_name('pred', 'predictions', 'fraud', 'ep-1')} "
        "USING streamdrift.predictions (project, endpoint_id) TAGS ('fraud', 'ep-1') "
        "(end_infer_time, start_infer_time, row_count, event_count, error_count, latency_count, latency_mean_us, "
        "latency_p50_us, latency_p95_us, latency_p99_us, first_request, last_request, estimated_count) "
        f"VALUES ({T1_US}, {T0_US}, 120, 40, 3, 37, 1500.5, 1200.0, 4000.0, 9000.25, {T0_US + 7}, NULL, NULL)",
        f"INSERT INTO streamdrift.{sha1_name('err', 'errors', 'fraud', 'ep-1', 'my-app', 'mm-app-failed')} "
        "USING streamdrift.errors (project, endpoint_id, application_name, error_type) "
        "TAGS ('fraud', 'ep-1', 'my-app', 'mm-app-failed') "
        f"(time, model_error) VALUES ({T1_US}, 'ZeroDivisionError: x\\ny')",
    ]


def test_one_insert_groups_windows_per_subtable_mock():
    t2 = T1 + dt.timedelta(minutes=10)
    records = [result("a", start=T0, end=T1), result("b", start=T0, end=T1), result("a", start=T1, end=t2)]
    statements = td.insert_results_sql("streamdrift", records)
    assert len(statements) == 1
    clauses = statements[0].removeprefix("INSERT INTO ").split(" streamdrift.res_")
    assert len(clauses) == 2  # one clause per subtable
    a_clause = next(c for c in clauses if "'a'" in c)
    assert a_clause.count(f"({T1_US}, {T0_US},") == 1 and a_clause.count(f"({int(t2.timestamp()) * 10**6}, {T1_US},") == 1


def test_replayed_window_in_one_batch_is_written_once_with_the_last_value_mock():
    statements = td.insert_results_sql("streamdrift", [result(value=0.1), result(value=0.9)])
    assert len(statements) == 1
    assert statements[0].count(f"({T1_US},") == 1
    assert f"({T1_US}, {T0_US}, 0.9, 2," in statements[0]


def test_batches_stay_under_the_size_limit_and_keep_every_row_mock():
    records = [result(f"endpoint-{i % 7}", name=f"r{i % 3}", start=T0 + dt.timedelta(minutes=i),
                      end=T0 + dt.timedelta(minutes=i + 1), value=i / 10) for i in range(400)]
    statements = td.insert_results_sql("streamdrift", records, max_bytes=3000)
    assert len(statements) > 1
    assert all(s.startswith("INSERT INTO streamdrift.res_") and len(s.encode()) <= 3000 for s in statements)
    rows = [m for s in statements for m in re.findall(r"VALUES \((\d+)|\) \((\d+)", s)]
    assert len(rows) == 400  # every (subtable, window) exactly once


def test_batches_respect_the_row_limit_mock():
    records = [result(start=T0 + dt.timedelta(minutes=i), end=T0 + dt.timedelta(minutes=i + 1)) for i in range(10)]
    statements = td.insert_sql("streamdrift", td.APP_RESULTS, (td._result_row(r) for r in records), max_rows=4)
    assert [s.count(", 0.75, 2, ") for s in statements] == [4, 4, 2]


def test_big_extra_data_is_replaced_by_a_truncation_marker_mock():
    big = {"per_feature": {f"f{i}": i / 3 for i in range(2000)}}
    statement = td.insert_results_sql("streamdrift", [result(extra=big)])[0]
    size = len(json.dumps(big, separators=(",", ":"), sort_keys=True))
    assert size > 16_000
    assert f"'{{\"bytes\":{size},\"truncated\":true}}'" in statement


def test_nan_and_infinite_values_become_null_mock():
    statements = td.insert_results_sql("streamdrift", [result(value=float("nan")), result("b", value=float("inf"))])
    assert statements[0].count(f"VALUES ({T1_US}, {T0_US}, NULL, 2,") == 2


# ----------------------------------------------------------------------------------- hostile names


@pytest.mark.parametrize("endpoint_id", HOSTILE_IDS)
def test_hostile_endpoint_ids_stay_inside_their_string_literal_mock(endpoint_id):
    project = "p'; --"
    statements = (
        td.insert_results_sql("streamdrift", [result(endpoint_id, project=project, extra={"note": endpoint_id})])
        + td.insert_errors_sql("streamdrift", [ErrorRecord(project, endpoint_id, "app", endpoint_id, endpoint_id, T1)])
        + [td.query_results_sql("streamdrift", project, endpoint_id), td.latest_status_sql("streamdrift", project,
                                                                                           endpoint_id)]
    )
    for sql in statements:
        code, strings = split_sql(sql)
        assert endpoint_id in strings and project in strings
        outside = "".join(code)
        assert ";" not in outside and "--" not in outside and "`" not in outside
        # outside the literals only identifiers, numbers and punctuation of our own
        assert re.fullmatch(r"[A-Za-z0-9_.,()=<>*\s-]*", outside), outside
    insert_code, insert_strings = split_sql(statements[0])
    assert insert_strings == [project, endpoint_id, "histogram-data-drift", "general_drift",
                              json.dumps({"note": endpoint_id}, separators=(",", ":"), ensure_ascii=True)]
    assert re.search(r"streamdrift\.res_[0-9a-f]{40} USING", insert_code[0])


def test_same_names_with_different_splits_get_different_subtables_mock():
    a = td.subtable_name(td.APP_RESULTS, {"project": "p", "endpoint_id": "e", "application_name": "a_b",
                                          "result_name": "c", "result_kind": 0})
    b = td.subtable_name(td.APP_RESULTS, {"project": "p", "endpoint_id": "e", "application_name": "a",
                                          "result_name": "b_c", "result_kind": 0})
    assert a != b


@pytest.mark.parametrize("make, message", [
    (lambda: result(name="drift'; DROP TABLE x"), "result name"),
    (lambda: result(name="drift-score"), "result name"),
    (lambda: result(name="é"), "result name"),
    (lambda: result(app="app`x"), "application name"),
    (lambda: result(app="app;x"), "application name"),
    (lambda: result(app="-app"), "application name"),
    (lambda: result(endpoint_id=""), "endpoint id"),
    (lambda: result(endpoint_id="x" * 256), "endpoint id"),
    (lambda: result(endpoint_id="nul\x00byte"), "control characters"),
    (lambda: result(endpoint_id="new\nline"), "control characters"),
])
def test_invalid_records_are_refused_and_nothing_is_sent_mock(make, message):
    conn = FakeConnection()
    with pytest.raises(ValueError, match=message):
        TDengineTSDB(connection=conn).write_results([result(), make()])
    assert conn.statements == []


def test_invalid_metric_name_refused_mock():
    conn = FakeConnection()
    with pytest.raises(ValueError, match="metric name 'tvd mean'"):
        TDengineTSDB(connection=conn).write_metrics([MetricRecord("p", "e", "app", "tvd mean", 1.0, T0, T1)])
    assert conn.statements == []


# ----------------------------------------------------------------------------------- queries


def test_query_statements_exact_mock():
    conn = FakeConnection()
    tsdb = TDengineTSDB(connection=conn)
    tsdb.query_results("fraud", "ep'1", start=T0, end=T1, application_name="histogram-data-drift",
                       result_name="general_drift")
    tsdb.query_metrics("fraud")
    tsdb.query_predictions("fraud", "ep-1", end=T1)
    tsdb.query_errors("fraud", start=T0, error_type="mm-app-failed")
    tsdb.latest_status("fraud")
    assert conn.statements == [
        "SELECT CAST(end_infer_time AS BIGINT), CAST(start_infer_time AS BIGINT), result_value, result_status, "
        "result_extra_data, project, endpoint_id, application_name, result_name, result_kind "
        "FROM streamdrift.app_results WHERE project = 'fraud' AND endpoint_id = 'ep\\'1' "
        "AND application_name = 'histogram-data-drift' AND result_name = 'general_drift' "
        f"AND end_infer_time >= {T0_US} AND end_infer_time <= {T1_US}",
        "SELECT CAST(end_infer_time AS BIGINT), CAST(start_infer_time AS BIGINT), metric_value, project, "
        "endpoint_id, application_name, metric_name FROM streamdrift.metrics WHERE project = 'fraud'",
        "SELECT CAST(end_infer_time AS BIGINT), CAST(start_infer_time AS BIGINT), row_count, event_count, "
        "error_count, latency_count, latency_mean_us, latency_p50_us, latency_p95_us, latency_p99_us, "
        "CAST(first_request AS BIGINT), CAST(last_request AS BIGINT), estimated_count, project, endpoint_id "
        f"FROM streamdrift.predictions WHERE project = 'fraud' AND endpoint_id = 'ep-1' AND end_infer_time <= {T1_US}",
        "SELECT CAST(time AS BIGINT), model_error, project, endpoint_id, application_name, error_type "
        f"FROM streamdrift.errors WHERE project = 'fraud' AND error_type = 'mm-app-failed' AND time >= {T0_US}",
        "SELECT LAST_ROW(end_infer_time), LAST_ROW(start_infer_time), LAST_ROW(result_value), "
        "LAST_ROW(result_status), LAST_ROW(result_extra_data), project, endpoint_id, application_name, result_name, "
        "result_kind FROM streamdrift.app_results WHERE project = 'fraud' "
        "GROUP BY project, endpoint_id, application_name, result_name, result_kind",
    ]


def test_invalid_query_filters_refused_mock():
    conn = FakeConnection()
    tsdb = TDengineTSDB(connection=conn)
    with pytest.raises(ValueError, match="result name"):
        tsdb.query_results("fraud", result_name="x' OR '1'='1")
    with pytest.raises(ValueError, match="start"):
        tsdb.query_results("fraud", start="2024-01-01")
    assert conn.statements == []


def test_rows_are_decoded_into_sorted_records_mock():
    later = (T1_US + 600_000_000, T1_US, None, 0, "{}", "fraud", "b", "app", "res", 1)
    earlier = (T1_US, T0_US, 0.25, 2, '{"k": [1, 2]}', "fraud", "a", "app", "res", 1)
    records = TDengineTSDB(connection=FakeConnection([later, earlier])).query_results("fraud")
    assert records == [
        ResultRecord("fraud", "a", "app", "res", 1, 2, 0.25, T0, T1, {"k": [1, 2]}),
        ResultRecord("fraud", "b", "app", "res", 1, 0, None, T1, T1 + dt.timedelta(minutes=10), {}),
    ]


def test_latest_status_decodes_timestamps_of_either_client_mock():
    # taos-ws-py returns RFC 3339 text, taospy a naive datetime in local time, a CAST an integer
    ws_row = ("2024-01-01T00:10:00.000001+00:00", "2024-01-01T00:00:00+00:00", 0.5, 1, b"{}", "p", "e1", "app",
              "r", 0)
    native_row = (dt.datetime.fromtimestamp(T1_US / 1e6), dt.datetime.fromtimestamp(T0_US / 1e6), 0.5, 1, "{}",
                  "p", "e2", "app", "r", 0)
    got = TDengineTSDB(connection=FakeConnection([native_row, ws_row])).latest_status("p")
    assert [(r.endpoint_id, r.end_infer_time, r.start_infer_time) for r in got] == [
        ("e1", T1 + dt.timedelta(microseconds=1), T0),
        ("e2", T1, T0),
    ]


def test_prediction_and_error_rows_decoded_mock():
    pred = (T1_US, T0_US, 10, 4, 1, 9, 12.5, 10.0, 20.0, 30.0, T0_US + 5, None, 40.0, "p", "e")
    err = (T1_US, "boom", "p", "e", "app", "mm-app-failed")
    assert TDengineTSDB(connection=FakeConnection([pred])).query_predictions("p") == [PredictionRecord(
        "p", "e", T0, T1, 10, 4, 1, 9, 12.5, 10.0, 20.0, 30.0, T0 + dt.timedelta(microseconds=5), None, 40.0)]
    assert TDengineTSDB(connection=FakeConnection([err])).query_errors("p") == [
        ErrorRecord("p", "e", "app", "mm-app-failed", "boom", T1)]


# ----------------------------------------------------------------------------------- connections


def test_open_tsdb_dispatches_on_the_scheme_without_connecting_mock(tmp_path):
    assert isinstance(open_tsdb("taosws://root:taosdata@127.0.0.1:6041"), TDengineTSDB)
    native = open_tsdb("taos://root:taosdata@127.0.0.1:6030/mon")
    assert isinstance(native, TDengineTSDB) and native.database == "mon"
    with pytest.raises(ValueError) as info:
        open_tsdb("influx://admin:hunter2@host:8086")
    assert "hunter2" not in str(info.value) and "taosws://" in str(info.value)


def test_connection_failure_masks_the_password_mock(monkeypatch):
    import taosws

    def refuse(**kwargs):  # a client that echoes its connection string in the error
        raise ConnectionError(f"cannot reach taosws://{kwargs['user']}:{kwargs['password']}@{kwargs['host']}")

    monkeypatch.setattr(taosws, "connect", refuse)
    tsdb = TDengineTSDB("taosws://root:s3cret-Pw@tdengine.example:6041")
    with pytest.raises(TSDBError) as info:
        tsdb.create_schema()
    assert "s3cret-Pw" not in str(info.value)
    assert "taosws://root:***@tdengine.example:6041" in str(info.value)
    assert "s3cret-Pw" not in repr(tsdb)


def test_native_client_without_its_library_says_what_to_do_mock(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_taos(name, *args, **kwargs):
        if name == "taos":
            raise OSError("libtaos.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_taos)
    with pytest.raises(TSDBError, match="taosws://"):
        TDengineTSDB("taos://root:taosdata@127.0.0.1:6030").create_schema()


def test_execution_error_names_the_statement_mock():
    class Failing(FakeConnection):
        def execute(self, sql):
            raise RuntimeError("[0x2603] Table does not exist")

    with pytest.raises(TSDBError, match=r"writing results failed .*Table does not exist.*INSERT INTO streamdrift\.res_"):
        TDengineTSDB(connection=Failing()).write_results([result()])


def test_a_failed_connection_is_replaced_on_the_next_call_mock(monkeypatch):
    class Broken(FakeConnection):
        def execute(self, sql):
            raise ConnectionError("WebSocket closed")

    opened = [Broken(), FakeConnection()]
    second = opened[1]
    monkeypatch.setattr(td, "connect", lambda url, retries=None: opened.pop(0))
    tsdb = TDengineTSDB("taosws://root:taosdata@127.0.0.1:6041")
    with pytest.raises(TSDBError, match="WebSocket closed"):
        tsdb.write_results([result()])
    tsdb.write_results([result()])  # the writer's retry: a new connection this time
    assert opened == [] and len(second.statements) == 1 and second.statements[0].startswith("INSERT INTO")


def test_close_closes_the_connection_mock():
    conn = FakeConnection()
    tsdb = TDengineTSDB(connection=conn)
    tsdb.close()
    assert conn.closed


# ----------------------------------------------------------------------------------- TDengine's limits

CJK = "模型漂移监控数据错误信息"  # 3 bytes a character in UTF-8


def _values_of(statements: list[str]) -> list[list[str]]:
    """The decoded string literals of each statement."""
    return [split_sql(s)[1] for s in statements]


def test_statements_are_cut_in_utf8_bytes_not_characters_mock():
    messages = [f"{i:03d}" + (CJK * 100)[:997] for i in range(400)]  # 1,000 characters each, distinct
    records = [ErrorRecord("fraud", f"ep-{i % 20}", "my-app", "mm-app-failed", m, T0 + dt.timedelta(minutes=i))
               for i, m in enumerate(messages)]
    message_bytes = sum(len(m.encode()) for m in messages)
    assert sum(len(m) for m in messages) < td.MAX_STATEMENT_BYTES < message_bytes  # fits in characters, not bytes
    statements = td.insert_errors_sql("streamdrift", records)
    sizes = [len(s.encode("utf-8")) for s in statements]
    assert max(sizes) <= td.MAX_STATEMENT_BYTES < 1024 * 1024  # under the server's 1 MiB, with a margin
    assert len(statements) >= -(-message_bytes // td.MAX_STATEMENT_BYTES)
    written = [v for strings in _values_of(statements) for v in strings if CJK in v]
    assert sorted(written) == messages  # every record once, whole


def test_a_tdengine_tsdb_sends_statements_under_its_byte_limit_mock():
    conn = FakeConnection()
    errors = [ErrorRecord("fraud", "ep", "app", "e", "é" * 999, T0 + dt.timedelta(seconds=i)) for i in range(50)]
    TDengineTSDB(connection=conn, max_statement_bytes=20_000).write_errors(errors)
    assert len(conn.statements) > 1 and all(len(s.encode()) <= 20_000 for s in conn.statements)
    assert sum(s.count("'" + "é" * 999 + "'") for s in conn.statements) == 50


@pytest.mark.parametrize("database", ["order", "values", "ORDER", "Values", "select", "database", "stream", "keep"])
def test_keyword_database_names_are_refused_where_the_url_is_read_mock(database):
    url = f"taosws://root:taosdata@127.0.0.1:6041/{database}"
    for make in (lambda: TDengineTSDB(url), lambda: open_tsdb(url),
                 lambda: TDengineTSDB(connection=FakeConnection(), database=database)):
        with pytest.raises(ValueError, match=f"'{database}' is a TDengine reserved keyword.*choose another name"):
            make()


def test_keyword_database_names_are_refused_by_the_settings():
    from streamdrift.connectors.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="tsdb_connection.*reserved keyword"):
        load_settings({"tsdb_connection": "taosws://root:secret@127.0.0.1:6041/values"}, env={})
    ok = load_settings({"tsdb_connection": "taosws://root:secret@127.0.0.1:6041/order_db"}, env={})
    assert ok.tsdb_connection.endswith("/order_db")


class DatabaseAnswers(FakeConnection):
    """A connection whose server reports ``options`` for the database (name, precision, keep)."""

    def __init__(self, options: tuple):
        super().__init__([options])


def test_an_existing_database_of_another_precision_is_refused_with_what_to_do_mock():
    conn = DatabaseAnswers(("streamdrift", "ms", "3650d,3650d,3650d"))
    with pytest.raises(TSDBError) as info:
        TDengineTSDB(connection=conn).create_schema()
    message = str(info.value)
    assert not info.value.transient
    assert "'streamdrift'" in message and "precision 'ms'" in message and "PRECISION 'us'" in message
    assert "DROP DATABASE streamdrift" in message and "name another database" in message
    assert not any(s.startswith("CREATE STABLE") for s in conn.statements)  # nothing built on it


def test_keep_is_set_explicitly_and_configurable_mock():
    conn = FakeConnection()
    TDengineTSDB(connection=conn).create_schema()
    assert conn.statements[0].endswith("PRECISION 'us' KEEP 36500")
    conn = FakeConnection()
    TDengineTSDB(connection=conn, keep_days=500).create_schema()
    assert conn.statements[0].endswith("KEEP 500")
    assert open_tsdb("taosws://root:taosdata@127.0.0.1:6041", keep_days=40).keep_days == 40
    for bad in (0, 365_001, 1.5, "10"):
        with pytest.raises(ValueError, match="KEEP"):
            TDengineTSDB(connection=FakeConnection(), keep_days=bad)


def test_a_shorter_keep_of_an_existing_database_is_raised_mock():
    conn = DatabaseAnswers(("streamdrift", "us", "3650d,3650d,3650d"))  # made by TDengine's default
    tsdb = TDengineTSDB(connection=conn)
    tsdb.create_schema()
    assert "ALTER DATABASE streamdrift KEEP 36500" in conn.statements
    assert tsdb.database_keep_days == 36500
    conn = DatabaseAnswers(("streamdrift", "us", "52560000m,52560000m,52560000m"))  # 36,500 days in minutes
    TDengineTSDB(connection=conn).create_schema()
    assert not any(s.startswith("ALTER") for s in conn.statements)


@pytest.mark.parametrize("text, days", [("3650d,3650d,3650d", 3650), ("5256000m,5256000m,5256000m", 3650),
                                        ("36500", 36500), ("240h", 10), ("10d,100d,3650d", 3650)])
def test_keep_as_the_server_shows_it(text, days):
    assert td.keep_days_of(text) == days


def test_a_row_older_than_keep_is_a_permanent_error_naming_keep_mock():
    import taosws

    class RefusesOldRows(FakeConnection):
        def execute(self, sql):
            if sql.startswith("INSERT"):
                raise taosws.QueryError("[0x060B] Timestamp data out of range")
            return super().execute(sql)

    tsdb = TDengineTSDB(connection=RefusesOldRows([("streamdrift", "us", "36500d,36500d,36500d")]))
    tsdb.create_schema()
    old = result(start=dt.datetime(1915, 1, 1, tzinfo=UTC), end=dt.datetime(1915, 1, 1, 0, 10, tzinfo=UTC))
    with pytest.raises(TSDBError) as info:
        tsdb.write_results([old])
    assert not info.value.transient
    assert "Timestamp data out of range" in str(info.value) and "KEEP (36500 days)" in str(info.value)


# ----------------------------------------------------------------------------------- one series rule


def test_series_are_told_apart_by_project_and_kind_as_in_sqlite_mock(tmp_path):
    from streamdrift.connectors.tsdb.sqlite import SqliteTSDB

    base = result()
    variants = [base, result(project="other"), result(kind=1), result(project="other", kind=2),
                result(value=0.1)]  # the last one is the first's series again: it replaces its row
    statements = td.insert_results_sql("streamdrift", variants)
    tables = set(re.findall(r"streamdrift\.(res_[0-9a-f]{40}) USING", " ".join(statements)))
    sqlite = SqliteTSDB(tmp_path / "t.sqlite")
    sqlite.create_schema()
    sqlite.write_results(variants)
    stored = sqlite.query_results("fraud") + sqlite.query_results("other")
    assert len(tables) == len(stored) == 4
    assert [r.value for r in sqlite.query_results("fraud") if r.kind == 0] == [0.1]
    for stable in td.SUPERTABLES:  # every tag names the series: a tag can never disagree with a subtable
        assert set(stable.identity) == set(stable.tag_names)


# ----------------------------------------------------------------------------------- feature drift


def feature(name: str, i: int = 0, project="fraud", endpoint_id="ep-1", app="histogram-data-drift",
            end=T1) -> FeatureDriftRecord:
    return FeatureDriftRecord(project, endpoint_id, app, name, end - dt.timedelta(minutes=10), end,
                              tvd=i / 4000, hellinger=i / 3000, kld=i / 100, p_value=None if i % 3 else i / 2000,
                              rejected=None if i % 3 else bool(i % 2), effect_size=None if i % 3 else -i / 7,
                              window_count=100 + i, reference_count=10_000, invalid_share=None if i % 3 else i / 24)


def test_feature_drift_insert_exact_mock():
    conn = FakeConnection()
    TDengineTSDB(connection=conn).write_feature_drift([feature("age", 4), feature("income", 6)])
    age = sha1_name("fd", "feature_drift", "fraud", "ep-1", "histogram-data-drift", "age")
    income = sha1_name("fd", "feature_drift", "fraud", "ep-1", "histogram-data-drift", "income")
    columns = ("(end_infer_time, start_infer_time, tvd, hellinger, kld, p_value, rejected, effect_size, "
               "window_count, reference_count, invalid_share)")
    tags = "(project, endpoint_id, application_name, feature_name)"
    assert conn.statements == [
        f"INSERT INTO streamdrift.{age} USING streamdrift.feature_drift {tags} "
        f"TAGS ('fraud', 'ep-1', 'histogram-data-drift', 'age') {columns} "
        f"VALUES ({T1_US}, {T0_US}, 0.001, {4 / 3000!r}, 0.04, NULL, NULL, NULL, 104, 10000, NULL) "
        f"streamdrift.{income} USING streamdrift.feature_drift {tags} "
        f"TAGS ('fraud', 'ep-1', 'histogram-data-drift', 'income') {columns} "
        f"VALUES ({T1_US}, {T0_US}, 0.0015, 0.002, 0.06, 0.003, false, {-6 / 7!r}, 106, 10000, 0.25)"
    ]


def test_two_thousand_features_of_one_window_split_in_bytes_mock():
    names = [f"{CJK}_{i:04d}_{'特征' * 20}" for i in range(2000)]  # ~180 bytes of tags each
    records = [feature(n, i) for i, n in enumerate(names)]
    statements = td.insert_feature_drift_sql("streamdrift", records)
    assert len(statements) >= 2 and all(len(s.encode()) <= td.MAX_STATEMENT_BYTES for s in statements)
    written = [v for strings in _values_of(statements) for v in strings if v.startswith(CJK)]
    assert sorted(written) == sorted(names)  # every feature exactly once


def test_feature_drift_query_and_rows_decoded_mock():
    row = (T1_US, T0_US, 0.25, 0.5, 1.5, 0.01, True, 0.3, 120, 5000, 0.02, "fraud", "ep-1", "histogram-data-drift",
           "年龄")
    empty = (T1_US, T0_US, None, None, None, None, None, None, None, None, None, "fraud", "ep-1", "app", "x")
    conn = FakeConnection([row, empty])
    got = TDengineTSDB(connection=conn).query_feature_drift("fraud", "ep-1", start=T0, end=T1,
                                                            feature_name="年龄")
    assert conn.statements == [
        "SELECT CAST(end_infer_time AS BIGINT), CAST(start_infer_time AS BIGINT), tvd, hellinger, kld, p_value, "
        "rejected, effect_size, window_count, reference_count, invalid_share, project, endpoint_id, application_name, "
        "feature_name "
        "FROM streamdrift.feature_drift WHERE project = 'fraud' AND endpoint_id = 'ep-1' AND feature_name = '年龄' "
        f"AND end_infer_time >= {T0_US} AND end_infer_time <= {T1_US}"]
    assert got == [
        FeatureDriftRecord("fraud", "ep-1", "app", "x", T0, T1, None, None, None),
        FeatureDriftRecord("fraud", "ep-1", "histogram-data-drift", "年龄", T0, T1, 0.25, 0.5, 1.5, 0.01, True, 0.3,
                           120, 5000, 0.02),
    ]


# ----------------------------------------------------------------------------------- many windows at once


def test_a_batch_of_windows_goes_in_few_multi_table_statements_mock():
    windows = range(100)
    ends = [T1 + dt.timedelta(minutes=10 * w) for w in windows]
    results = [result(f"ep-{w % 4}", start=e - dt.timedelta(minutes=10), end=e, value=w / 100)
               for w, e in zip(windows, ends)]
    metrics = [MetricRecord("fraud", f"ep-{w % 4}", "histogram-data-drift", "tvd_mean", w / 7,
                            e - dt.timedelta(minutes=10), e) for w, e in zip(windows, ends)]
    features = [feature(f"f{k}", k, endpoint_id=f"ep-{w % 4}", end=e) for w, e in zip(windows, ends)
                for k in range(5)]
    conn = FakeConnection()
    TDengineTSDB(connection=conn).write_window(results, metrics, [], [], features)
    assert len(conn.statements) == 1  # 700 rows of three supertables, one statement
    sql = conn.statements[0]
    assert sql.count("USING streamdrift.app_results") == 4 and sql.count("USING streamdrift.metrics") == 4
    assert sql.count("USING streamdrift.feature_drift") == 20  # 4 endpoints x 5 features
    assert len(re.findall(r"\((\d{16}), (\d{16}),", sql)) == 100 + 100 + 500  # every row once


def test_a_batch_with_one_invalid_record_sends_nothing_mock():
    conn = FakeConnection()
    with pytest.raises(ValueError, match="feature name"):
        TDengineTSDB(connection=conn).write_window([result()], [], [], [], [feature("ok"), feature("bad\nname")])
    assert conn.statements == []
