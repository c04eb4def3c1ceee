"""The TSDB on SQLite: the embedded default, no server to run.

The same four tables as TDengine's supertables (:mod:`connectors.tsdb.tdengine`), with the tags as
ordinary columns and a UNIQUE key on the series plus its time, so that writing a window again
replaces its row (``INSERT ... ON CONFLICT DO UPDATE``). Times are integers, microseconds since the
epoch, like TDengine's ``PRECISION 'us'``. Values are bound as parameters, never spliced into SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from connectors.tsdb.base import (
    TSDB,
    TSDBError,
    check_error,
    check_filters,
    check_metric,
    check_prediction,
    check_result,
    extra_data_json,
    micros,
    sort_errors,
    sort_metrics,
    sort_predictions,
    sort_results,
)
from connectors.tsdb.tdengine import error_from_row, metric_from_row, prediction_from_row, result_from_row
from udfs.records import ErrorRecord, MetricRecord, PredictionRecord, ResultRecord

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS app_results (
        project TEXT NOT NULL, endpoint_id TEXT NOT NULL, application_name TEXT NOT NULL,
        result_name TEXT NOT NULL, result_kind INTEGER NOT NULL,
        end_infer_time INTEGER NOT NULL, start_infer_time INTEGER NOT NULL, result_value REAL,
        result_status INTEGER NOT NULL, result_extra_data TEXT NOT NULL,
        UNIQUE (endpoint_id, application_name, result_name, end_infer_time))""",
    "CREATE INDEX IF NOT EXISTS app_results_by_project_time ON app_results (project, end_infer_time)",
    """CREATE TABLE IF NOT EXISTS metrics (
        project TEXT NOT NULL, endpoint_id TEXT NOT NULL, application_name TEXT NOT NULL,
        metric_name TEXT NOT NULL,
        end_infer_time INTEGER NOT NULL, start_infer_time INTEGER NOT NULL, metric_value REAL,
        UNIQUE (endpoint_id, application_name, metric_name, end_infer_time))""",
    "CREATE INDEX IF NOT EXISTS metrics_by_project_time ON metrics (project, end_infer_time)",
    """CREATE TABLE IF NOT EXISTS predictions (
        project TEXT NOT NULL, endpoint_id TEXT NOT NULL,
        end_infer_time INTEGER NOT NULL, start_infer_time INTEGER NOT NULL,
        row_count INTEGER NOT NULL, event_count INTEGER NOT NULL, error_count INTEGER NOT NULL,
        latency_count INTEGER NOT NULL, latency_mean_us REAL, latency_p50_us REAL, latency_p95_us REAL,
        latency_p99_us REAL, first_request INTEGER, last_request INTEGER,
        UNIQUE (endpoint_id, end_infer_time))""",
    "CREATE INDEX IF NOT EXISTS predictions_by_project_time ON predictions (project, end_infer_time)",
    """CREATE TABLE IF NOT EXISTS errors (
        project TEXT NOT NULL, endpoint_id TEXT NOT NULL, application_name TEXT NOT NULL,
        error_type TEXT NOT NULL, time INTEGER NOT NULL, model_error TEXT NOT NULL,
        UNIQUE (endpoint_id, application_name, error_type, time))""",
    "CREATE INDEX IF NOT EXISTS errors_by_project_time ON errors (project, time)",
]


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


_RESULT_COLUMNS = ["end_infer_time", "start_infer_time", "result_value", "result_status", "result_extra_data",
                   "project", "endpoint_id", "application_name", "result_name", "result_kind"]
_METRIC_COLUMNS = ["end_infer_time", "start_infer_time", "metric_value", "project", "endpoint_id",
                   "application_name", "metric_name"]
_PREDICTION_COLUMNS = ["end_infer_time", "start_infer_time", "row_count", "event_count", "error_count",
                       "latency_count", "latency_mean_us", "latency_p50_us", "latency_p95_us", "latency_p99_us",
                       "first_request", "last_request", "project", "endpoint_id"]
_ERROR_COLUMNS = ["time", "model_error", "project", "endpoint_id", "application_name", "error_type"]

_UPSERT_RESULT = _upsert_sql("app_results", _RESULT_COLUMNS,
                             ["endpoint_id", "application_name", "result_name", "end_infer_time"])
_UPSERT_METRIC = _upsert_sql("metrics", _METRIC_COLUMNS,
                             ["endpoint_id", "application_name", "metric_name", "end_infer_time"])
_UPSERT_PREDICTION = _upsert_sql("predictions", _PREDICTION_COLUMNS, ["endpoint_id", "end_infer_time"])
_UPSERT_ERROR = _upsert_sql("errors", _ERROR_COLUMNS, ["endpoint_id", "application_name", "error_type", "time"])


def _opt_micros(value) -> int | None:
    return None if value is None else micros(value)


class SqliteTSDB(TSDB):
    """The TSDB in one SQLite file (``:memory:`` for a private in-memory one).

    Safe to share between threads (one connection behind a lock); several processes may read the
    file while one writes (WAL journal).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise TSDBError(f"cannot open the SQLite TSDB {self.path!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteTSDB({self.path!r})"

    def _transaction(self, what: str, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            if self._conn is None:
                raise TSDBError(f"{what}: the SQLite TSDB {self.path!r} is closed")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(self._conn)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                return out
            except sqlite3.Error as exc:
                raise TSDBError(f"{what} failed on the SQLite TSDB {self.path!r}: {exc}") from None

    def _select(self, what: str, sql: str, params: Sequence[Any]) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise TSDBError(f"{what}: the SQLite TSDB {self.path!r} is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise TSDBError(f"{what} failed on the SQLite TSDB {self.path!r}: {exc}") from None

    def create_schema(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            for sql in _SCHEMA:
                conn.execute(sql)

        self._transaction("creating the schema", create)

    # ------------------------------------------------------------------ writes

    def _write(self, what: str, sql: str, rows: list[tuple]) -> int:
        if rows:
            self._transaction(what, lambda conn: conn.executemany(sql, rows))
        return len(rows)

    @staticmethod
    def _result_rows(records: Sequence[ResultRecord]) -> list[tuple]:
        return [(micros(r.end_infer_time), micros(r.start_infer_time), r.value, r.status,
                 extra_data_json(r.extra_data), r.project, r.endpoint_id, r.application_name, r.result_name, r.kind)
                for r in map(check_result, records)]

    @staticmethod
    def _metric_rows(records: Sequence[MetricRecord]) -> list[tuple]:
        return [(micros(m.end_infer_time), micros(m.start_infer_time), m.value, m.project, m.endpoint_id,
                 m.application_name, m.metric_name) for m in map(check_metric, records)]

    @staticmethod
    def _prediction_rows(records: Sequence[PredictionRecord]) -> list[tuple]:
        return [(micros(p.end_infer_time), micros(p.start_infer_time), p.count, p.events, p.error_count,
                 p.latency_count, p.latency_mean_us, p.latency_p50_us, p.latency_p95_us, p.latency_p99_us,
                 _opt_micros(p.first_request), _opt_micros(p.last_request), p.project, p.endpoint_id)
                for p in map(check_prediction, records)]

    @staticmethod
    def _error_rows(records: Sequence[ErrorRecord]) -> list[tuple]:
        return [(micros(e.time), e.message, e.project, e.endpoint_id, e.application_name, e.error_type)
                for e in map(check_error, records)]

    def write_results(self, records: Sequence[ResultRecord]) -> int:
        return self._write("writing results", _UPSERT_RESULT, self._result_rows(records))

    def write_metrics(self, records: Sequence[MetricRecord]) -> int:
        return self._write("writing metrics", _UPSERT_METRIC, self._metric_rows(records))

    def write_predictions(self, records: Sequence[PredictionRecord]) -> int:
        return self._write("writing predictions", _UPSERT_PREDICTION, self._prediction_rows(records))

    def write_errors(self, records: Sequence[ErrorRecord]) -> int:
        return self._write("writing errors", _UPSERT_ERROR, self._error_rows(records))

    def write_window(self, results: Sequence[ResultRecord], metrics: Sequence[MetricRecord],
                     errors: Sequence[ErrorRecord], predictions: Sequence[PredictionRecord]) -> None:
        """The four kinds in one transaction (every record checked first: nothing is written when
        one is invalid)."""
        writes = [(_UPSERT_RESULT, self._result_rows(results)), (_UPSERT_METRIC, self._metric_rows(metrics)),
                  (_UPSERT_ERROR, self._error_rows(errors)), (_UPSERT_PREDICTION, self._prediction_rows(predictions))]

        def write(conn: sqlite3.Connection) -> None:
            for sql, rows in writes:
                if rows:
                    conn.executemany(sql, rows)

        self._transaction("writing a window", write)

    # ------------------------------------------------------------------ queries

    @staticmethod
    def _where(conditions: Sequence[tuple[str, str, Any]]) -> tuple[str, list[Any]]:
        used = [(c, op, v) for c, op, v in conditions if v is not None]
        sql = " WHERE " + " AND ".join(f"{c} {op} ?" for c, op, _ in used) if used else ""
        return sql, [v for _, _, v in used]

    def query_results(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                      result_name=None) -> list[ResultRecord]:
        check_filters(project, endpoint_id, start, end, application_name, result_name, "result name")
        where, params = self._where([
            ("project", "=", project), ("endpoint_id", "=", endpoint_id),
            ("application_name", "=", application_name), ("result_name", "=", result_name),
            ("end_infer_time", ">=", _opt_micros(start)), ("end_infer_time", "<=", _opt_micros(end))])
        rows = self._select("querying results", f"SELECT {', '.join(_RESULT_COLUMNS)} FROM app_results{where}", params)
        return sort_results(map(result_from_row, rows))

    def query_metrics(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                      metric_name=None) -> list[MetricRecord]:
        check_filters(project, endpoint_id, start, end, application_name, metric_name, "metric name")
        where, params = self._where([
            ("project", "=", project), ("endpoint_id", "=", endpoint_id),
            ("application_name", "=", application_name), ("metric_name", "=", metric_name),
            ("end_infer_time", ">=", _opt_micros(start)), ("end_infer_time", "<=", _opt_micros(end))])
        rows = self._select("querying metrics", f"SELECT {', '.join(_METRIC_COLUMNS)} FROM metrics{where}", params)
        return sort_metrics(map(metric_from_row, rows))

    def query_predictions(self, project, endpoint_id=None, start=None, end=None) -> list[PredictionRecord]:
        check_filters(project, endpoint_id, start, end)
        where, params = self._where([
            ("project", "=", project), ("endpoint_id", "=", endpoint_id),
            ("end_infer_time", ">=", _opt_micros(start)), ("end_infer_time", "<=", _opt_micros(end))])
        rows = self._select("querying predictions",
                            f"SELECT {', '.join(_PREDICTION_COLUMNS)} FROM predictions{where}", params)
        return sort_predictions(map(prediction_from_row, rows))

    def query_errors(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                     error_type=None) -> list[ErrorRecord]:
        check_filters(project, endpoint_id, start, end, application_name, error_type, "error type")
        where, params = self._where([
            ("project", "=", project), ("endpoint_id", "=", endpoint_id),
            ("application_name", "=", application_name), ("error_type", "=", error_type),
            ("time", ">=", _opt_micros(start)), ("time", "<=", _opt_micros(end))])
        rows = self._select("querying errors", f"SELECT {', '.join(_ERROR_COLUMNS)} FROM errors{where}", params)
        return sort_errors(map(error_from_row, rows))

    def latest_status(self, project: str, endpoint_id: str | None = None) -> list[ResultRecord]:
        check_filters(project, endpoint_id)
        where, params = self._where([("project", "=", project), ("endpoint_id", "=", endpoint_id)])
        sql = (f"SELECT {', '.join(_RESULT_COLUMNS)} FROM ("
               f"SELECT *, ROW_NUMBER() OVER (PARTITION BY endpoint_id, application_name, result_name "
               f"ORDER BY end_infer_time DESC) AS newest FROM app_results{where}) WHERE newest = 1")
        rows = self._select("querying the latest status", sql, params)
        return sorted(map(result_from_row, rows), key=lambda r: (r.endpoint_id, r.application_name, r.result_name))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["SqliteTSDB"]
