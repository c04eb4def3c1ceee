"""The TSDB on SQLite: the embedded default, no server to run.

The same five tables as TDengine's supertables (:mod:`streamdrift.connectors.tsdb.tdengine`), with the tags as
ordinary columns and a UNIQUE key on the series plus its time (:data:`~streamdrift.connectors.tsdb.base.SERIES_KEYS`,
:data:`~streamdrift.connectors.tsdb.base.TIME_COLUMNS`: the rule TDengine's subtable names follow), so that
writing a window again replaces its row (``INSERT ... ON CONFLICT DO UPDATE``). Times are integers,
microseconds since the epoch, like TDengine's ``PRECISION 'us'``. Values are bound as parameters,
never spliced into SQL. A file written before a table's key had its present form is rebuilt on
:meth:`SqliteTSDB.create_schema`, rows kept.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamdrift.connectors.errors import sqlite_transient
from streamdrift.connectors.tsdb.base import (
    SERIES_KEYS,
    TIME_COLUMNS,
    TSDB,
    TSDBError,
    check_error,
    check_feature_drift,
    check_filters,
    check_metric,
    check_prediction,
    check_result,
    extra_data_json,
    micros,
    sort_errors,
    sort_feature_drift,
    sort_metrics,
    sort_predictions,
    sort_results,
)
from streamdrift.connectors.tsdb.tdengine import (
    error_from_row,
    feature_drift_from_row,
    metric_from_row,
    prediction_from_row,
    result_from_row,
)
from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

log = logging.getLogger(__name__)

#: Each table's columns after its series key (``(name, type)``; the series key columns are TEXT
#: but ``result_kind``).
_VALUE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "app_results": (("end_infer_time", "INTEGER NOT NULL"), ("start_infer_time", "INTEGER NOT NULL"),
                    ("result_value", "REAL"), ("result_status", "INTEGER NOT NULL"),
                    ("result_extra_data", "TEXT NOT NULL")),
    "metrics": (("end_infer_time", "INTEGER NOT NULL"), ("start_infer_time", "INTEGER NOT NULL"),
                ("metric_value", "REAL")),
    "predictions": (("end_infer_time", "INTEGER NOT NULL"), ("start_infer_time", "INTEGER NOT NULL"),
                    ("row_count", "INTEGER NOT NULL"), ("event_count", "INTEGER NOT NULL"),
                    ("error_count", "INTEGER NOT NULL"), ("latency_count", "INTEGER NOT NULL"),
                    ("latency_mean_us", "REAL"), ("latency_p50_us", "REAL"), ("latency_p95_us", "REAL"),
                    ("latency_p99_us", "REAL"), ("first_request", "INTEGER"), ("last_request", "INTEGER"),
                    ("estimated_count", "REAL")),
    "errors": (("time", "INTEGER NOT NULL"), ("model_error", "TEXT NOT NULL")),
    "feature_drift": (("end_infer_time", "INTEGER NOT NULL"), ("start_infer_time", "INTEGER NOT NULL"),
                      ("tvd", "REAL"), ("hellinger", "REAL"), ("kld", "REAL"), ("p_value", "REAL"),
                      ("rejected", "INTEGER"), ("effect_size", "REAL"), ("window_count", "INTEGER"),
                      ("reference_count", "INTEGER"), ("invalid_share", "REAL")),
}


def _key(table: str) -> list[str]:
    return [*SERIES_KEYS[table], TIME_COLUMNS[table]]


def _create_table_sql(table: str, name: str | None = None) -> str:
    series = ", ".join(f"{c} {'INTEGER' if c == 'result_kind' else 'TEXT'} NOT NULL" for c in SERIES_KEYS[table])
    values = ", ".join(f"{c} {t}" for c, t in _VALUE_COLUMNS[table])
    return f"CREATE TABLE IF NOT EXISTS {name or table} ({series}, {values}, UNIQUE ({', '.join(_key(table))}))"


def _index_sql(table: str) -> str:
    return f"CREATE INDEX IF NOT EXISTS {table}_by_project_time ON {table} (project, {TIME_COLUMNS[table]})"


def _columns(table: str) -> list[str]:
    """The order rows are written and read in: value columns, then the series (the order of the
    ``*_from_row`` decoders shared with TDengine)."""
    return [c for c, _ in _VALUE_COLUMNS[table]] + [c for c in SERIES_KEYS[table] if c != "result_kind"] + (
        ["result_kind"] if "result_kind" in SERIES_KEYS[table] else [])


def _upsert_sql(table: str) -> str:
    columns, key = _columns(table), _key(table)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


_RESULT_COLUMNS = _columns("app_results")

_UPSERT_RESULT = _upsert_sql("app_results")
_UPSERT_METRIC = _upsert_sql("metrics")
_UPSERT_PREDICTION = _upsert_sql("predictions")
_UPSERT_ERROR = _upsert_sql("errors")
_UPSERT_FEATURE_DRIFT = _upsert_sql("feature_drift")


def _unique_keys(conn: sqlite3.Connection, table: str) -> list[list[str]]:
    keys = []
    for _, name, unique, *_ in conn.execute(f"PRAGMA index_list({table})").fetchall():
        if unique:
            keys.append([row[2] for row in conn.execute(f"PRAGMA index_info({name})").fetchall()])
    return keys


def _migrate_key(conn: sqlite3.Connection, table: str) -> None:
    """Rebuild ``table`` when its UNIQUE key is not the series key of today (a file from before
    project and kind were part of it); every row is kept (the old key was narrower, so no two
    rows clash under the new one)."""
    if _key(table) in _unique_keys(conn, table):
        return
    old = f"{table}_before_key_change"
    log.info("SQLite TSDB: rebuilding table %s with the series key (%s)", table, ", ".join(_key(table)))
    conn.execute(f"ALTER TABLE {table} RENAME TO {old}")
    conn.execute(_create_table_sql(table))
    columns = ", ".join(_columns(table))
    conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}")
    conn.execute(f"DROP TABLE {old}")


def _add_columns(conn: sqlite3.Connection, table: str) -> None:
    """Add the value columns a file from before they existed lacks (nullable: old rows read None)."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}
    for column, kind in _VALUE_COLUMNS[table]:
        if column not in present:
            log.info("SQLite TSDB: adding column %s to table %s", column, table)
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind.replace(' NOT NULL', '')}")


def _opt_micros(value) -> int | None:
    return None if value is None else micros(value)


class SqliteTSDB(TSDB):
    """The TSDB in one SQLite file (``:memory:`` for a private in-memory one).

    Safe to share between threads (one connection behind a lock); several processes may read the
    file while one writes (WAL journal). ``timeout``: seconds a write waits for another
    connection's lock before failing with a transient :class:`TSDBError`.
    """

    def __init__(self, path: str | Path, *, artifacts_dir: str | None = None, timeout: float = 30.0):
        self.path = str(path)
        self.artifacts_dir = None if artifacts_dir is None else str(artifacts_dir)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise self._failed("opening", exc) from None

    def __repr__(self) -> str:
        return f"SqliteTSDB({self.path!r})"

    def _failed(self, what: str, exc: sqlite3.Error) -> TSDBError:
        """SQLite's own message and code name; transient only for a busy or locked file."""
        name = getattr(exc, "sqlite_errorname", None)
        return TSDBError(f"{what} failed on the SQLite TSDB {self.path!r}: {type(exc).__name__}: {exc}"
                         + (f" ({name})" if name else ""),
                         transient=isinstance(exc, sqlite3.OperationalError) and sqlite_transient(exc))

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
                raise self._failed(what, exc) from None

    def _select(self, what: str, sql: str, params: Sequence[Any]) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise TSDBError(f"{what}: the SQLite TSDB {self.path!r} is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._failed(what, exc) from None

    def create_schema(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            for table in _VALUE_COLUMNS:
                conn.execute(_create_table_sql(table))
                _add_columns(conn, table)
                _migrate_key(conn, table)
                conn.execute(_index_sql(table))

        self._transaction("creating the schema", create)

    # ------------------------------------------------------------------ writes

    def _write(self, what: str, sql: str, rows: list[tuple]) -> int:
        if rows:
            self._transaction(what, lambda conn: conn.executemany(sql, rows))
        return len(rows)

    # the rows of records already checked (check_* of streamdrift.connectors.tsdb.base)

    @staticmethod
    def _result_rows(records: Sequence[ResultRecord]) -> list[tuple]:
        return [(micros(r.end_infer_time), micros(r.start_infer_time), r.value, r.status,
                 extra_data_json(r.extra_data), r.project, r.endpoint_id, r.application_name, r.result_name, r.kind)
                for r in records]

    @staticmethod
    def _metric_rows(records: Sequence[MetricRecord]) -> list[tuple]:
        return [(micros(m.end_infer_time), micros(m.start_infer_time), m.value, m.project, m.endpoint_id,
                 m.application_name, m.metric_name) for m in records]

    @staticmethod
    def _prediction_rows(records: Sequence[PredictionRecord]) -> list[tuple]:
        return [(micros(p.end_infer_time), micros(p.start_infer_time), p.count, p.events, p.error_count,
                 p.latency_count, p.latency_mean_us, p.latency_p50_us, p.latency_p95_us, p.latency_p99_us,
                 _opt_micros(p.first_request), _opt_micros(p.last_request), p.estimated_count, p.project,
                 p.endpoint_id)
                for p in records]

    @staticmethod
    def _error_rows(records: Sequence[ErrorRecord]) -> list[tuple]:
        return [(micros(e.time), e.message, e.project, e.endpoint_id, e.application_name, e.error_type)
                for e in records]

    @staticmethod
    def _feature_drift_rows(records: Sequence[FeatureDriftRecord]) -> list[tuple]:
        return [(micros(f.end_infer_time), micros(f.start_infer_time), f.tvd, f.hellinger, f.kld, f.p_value,
                 None if f.rejected is None else int(f.rejected), f.effect_size, f.window_count, f.reference_count,
                 f.invalid_share, f.project, f.endpoint_id, f.application_name, f.feature_name)
                for f in records]

    def write_results(self, records: Sequence[ResultRecord]) -> int:
        return self._write("writing results", _UPSERT_RESULT, self._result_rows(self.bounded_results(records)))

    def write_metrics(self, records: Sequence[MetricRecord]) -> int:
        return self._write("writing metrics", _UPSERT_METRIC, self._metric_rows(list(map(check_metric, records))))

    def write_predictions(self, records: Sequence[PredictionRecord]) -> int:
        return self._write("writing predictions", _UPSERT_PREDICTION,
                           self._prediction_rows(list(map(check_prediction, records))))

    def write_errors(self, records: Sequence[ErrorRecord]) -> int:
        return self._write("writing errors", _UPSERT_ERROR, self._error_rows(list(map(check_error, records))))

    def write_feature_drift(self, records: Sequence[FeatureDriftRecord]) -> int:
        return self._write("writing feature drift", _UPSERT_FEATURE_DRIFT,
                           self._feature_drift_rows(list(map(check_feature_drift, records))))

    def write_window(self, results: Sequence[ResultRecord], metrics: Sequence[MetricRecord],
                     errors: Sequence[ErrorRecord], predictions: Sequence[PredictionRecord],
                     feature_drift: Sequence[FeatureDriftRecord] = ()) -> None:
        """The records of any number of windows in one transaction (every record checked first:
        nothing is written when one is invalid)."""
        results, metrics, errors, predictions, feature_drift = self.checked_window(
            results, metrics, errors, predictions, feature_drift)
        writes = [(_UPSERT_RESULT, self._result_rows(results)), (_UPSERT_METRIC, self._metric_rows(metrics)),
                  (_UPSERT_ERROR, self._error_rows(errors)), (_UPSERT_PREDICTION, self._prediction_rows(predictions)),
                  (_UPSERT_FEATURE_DRIFT, self._feature_drift_rows(feature_drift))]

        def write(conn: sqlite3.Connection) -> None:
            for sql, rows in writes:
                if rows:
                    conn.executemany(sql, rows)

        self._transaction("writing windows", write)

    # ------------------------------------------------------------------ queries

    @staticmethod
    def _where(conditions: Sequence[tuple[str, str, Any]]) -> tuple[str, list[Any]]:
        used = [(c, op, v) for c, op, v in conditions if v is not None]
        # one endpoint's rows are few among its project's: the hint makes SQLite search the series
        # key (endpoint first) and not the project-time index, whose range holds every endpoint's rows
        terms = [f"likelihood({c} {op} ?, 1e-6)" if c == "endpoint_id" else f"{c} {op} ?" for c, op, _ in used]
        sql = " WHERE " + " AND ".join(terms) if used else ""
        return sql, [v for _, _, v in used]

    def _query(self, table: str, project: str, endpoint_id: str | None, start, end,
               application_name: str | None = None, name_column: str | None = None, name: str | None = None):
        """Rows of ``table`` (in :func:`_columns` order) of a project, narrowed by the filters
        that are not None (the time range on the table's time column, inclusive)."""
        check_filters(project, endpoint_id, start, end, application_name, name, (name_column or "name").replace("_", " "))
        time = TIME_COLUMNS[table]
        where, params = self._where([
            ("project", "=", project), ("endpoint_id", "=", endpoint_id),
            ("application_name", "=", application_name), (name_column, "=", name),
            (time, ">=", _opt_micros(start)), (time, "<=", _opt_micros(end))])
        return self._select(f"querying {table}", f"SELECT {', '.join(_columns(table))} FROM {table}{where}", params)

    def query_results(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                      result_name=None) -> list[ResultRecord]:
        rows = self._query("app_results", project, endpoint_id, start, end, application_name, "result_name",
                           result_name)
        return sort_results(map(result_from_row, rows))

    def query_metrics(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                      metric_name=None) -> list[MetricRecord]:
        rows = self._query("metrics", project, endpoint_id, start, end, application_name, "metric_name", metric_name)
        return sort_metrics(map(metric_from_row, rows))

    def query_predictions(self, project, endpoint_id=None, start=None, end=None) -> list[PredictionRecord]:
        return sort_predictions(map(prediction_from_row, self._query("predictions", project, endpoint_id, start, end)))

    def query_errors(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                     error_type=None) -> list[ErrorRecord]:
        rows = self._query("errors", project, endpoint_id, start, end, application_name, "error_type", error_type)
        return sort_errors(map(error_from_row, rows))

    def query_feature_drift(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                            feature_name=None) -> list[FeatureDriftRecord]:
        rows = self._query("feature_drift", project, endpoint_id, start, end, application_name, "feature_name",
                           feature_name)
        return sort_feature_drift(map(feature_drift_from_row, rows))

    def latest_status(self, project: str, endpoint_id: str | None = None) -> list[ResultRecord]:
        check_filters(project, endpoint_id)
        where, params = self._where([("project", "=", project), ("endpoint_id", "=", endpoint_id)])
        sql = (f"SELECT {', '.join(_RESULT_COLUMNS)} FROM ("
               f"SELECT *, ROW_NUMBER() OVER (PARTITION BY {', '.join(SERIES_KEYS['app_results'])} "
               f"ORDER BY end_infer_time DESC) AS newest FROM app_results{where}) WHERE newest = 1")
        rows = self._select("querying the latest status", sql, params)
        return sorted(map(result_from_row, rows), key=lambda r: (r.endpoint_id, r.application_name, r.result_name))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["SqliteTSDB"]
