"""The TSDB on SQLite: the embedded default, no server to run.

SQLite's dialect of the five tables of :mod:`streamdrift.connectors.tsdb.tables` (column types, DDL,
upserts, the migrations of older files). The tags are ordinary columns, with a UNIQUE key on the
series plus its time (the rule TDengine's subtable names follow), so that writing a window again
replaces its row (``INSERT ... ON CONFLICT DO UPDATE``). Times are integers, microseconds since the
epoch, like TDengine's ``PRECISION 'us'``. Values are bound as parameters, never spliced into SQL.
A file written before a table's key had its present form is rebuilt on
:meth:`SqliteTSDB.create_schema`, rows kept.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamdrift.connectors.errors import sqlite_transient
from streamdrift.connectors.sqlite_files import SYNCHRONOUS
from streamdrift.connectors.tsdb import tables
from streamdrift.connectors.tsdb.base import (
    TSDB,
    BatchChecks,
    TSDBError,
    decode_row,
    encode_rows,
    query_conditions,
    sort_records,
)
from streamdrift.connectors.tsdb.tables import Column, Table
from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

log = logging.getLogger(__name__)

#: SQLite's column type of each logical type (:mod:`streamdrift.connectors.tsdb.tables`).
_TYPES = {tables.TIMESTAMP: "INTEGER", tables.INT32: "INTEGER", tables.INT64: "INTEGER", tables.BOOL: "INTEGER",
          tables.FLOAT64: "REAL", tables.TEXT: "TEXT", tables.UNICODE: "TEXT", tables.JSON: "TEXT"}


def column_type(column: Column) -> str:
    """``INTEGER``, ``REAL`` or ``TEXT``, with ``NOT NULL`` unless the column may be NULL."""
    return _TYPES[column.type] + ("" if column.nullable else " NOT NULL")


def _key(table: Table) -> list[str]:
    return [*table.series, table.time_column]


def _create_table_sql(table: Table) -> str:
    """The series first, then the value columns, under the UNIQUE key of series and time."""
    columns = ", ".join(f"{c.name} {column_type(c)}" for c in table.tags + table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, UNIQUE ({', '.join(_key(table))}))"


def _index_sql(table: Table) -> str:
    return f"CREATE INDEX IF NOT EXISTS {table.name}_by_project_time ON {table.name} (project, {table.time_column})"


def _upsert_sql(table: Table) -> str:
    columns, key = table.column_names, _key(table)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


_ROWS_PER_STATEMENT = 1_000


@functools.lru_cache(maxsize=256)
def _upsert_rows_sql(table: Table, n: int) -> str:
    """:func:`_upsert_sql` for ``n`` rows in one ``VALUES`` list (SQLite applies the upsert to
    each row in order, as ``executemany`` of the one-row statement does)."""
    head, _, rest = _upsert_sql(table).partition(" VALUES ")
    row, _, conflict = rest.partition(" ON CONFLICT ")
    return f"{head} VALUES {', '.join([row] * n)} ON CONFLICT {conflict}"


def _upsert_rows(conn: sqlite3.Connection, table: Table, rows: Sequence[tuple]) -> None:
    """Upsert ``rows`` (tuples in the order of ``table.column_names``) with a statement per up to
    1,000 rows: the sqlite3 module gives up the GIL at every step of a statement and waits for it
    after, so a statement per row waited once per row on the worker's other threads (the SQL
    store's write, the parse stage)."""
    variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 999 before SQLite 3.32, 32,766 after
    per = max(1, min(_ROWS_PER_STATEMENT, variables // len(table.column_names)))
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        conn.execute(_upsert_rows_sql(table, len(chunk)), [value for row in chunk for value in row])


def _unique_keys(conn: sqlite3.Connection, table: str) -> list[list[str]]:
    keys = []
    for _, name, unique, *_ in conn.execute(f"PRAGMA index_list({table})").fetchall():
        if unique:
            keys.append([row[2] for row in conn.execute(f"PRAGMA index_info({name})").fetchall()])
    return keys


def _migrate_key(conn: sqlite3.Connection, table: Table) -> None:
    """Rebuild ``table`` when its UNIQUE key is not the series key of today (a file from before
    project and kind were part of it); every row is kept (the old key was narrower, so no two
    rows clash under the new one)."""
    if _key(table) in _unique_keys(conn, table.name):
        return
    old = f"{table.name}_before_key_change"
    log.info("SQLite TSDB: rebuilding table %s with the series key (%s)", table.name, ", ".join(_key(table)))
    conn.execute(f"ALTER TABLE {table.name} RENAME TO {old}")
    conn.execute(_create_table_sql(table))
    columns = ", ".join(table.column_names)
    conn.execute(f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {old}")
    conn.execute(f"DROP TABLE {old}")


def _add_columns(conn: sqlite3.Connection, table: Table) -> None:
    """Add the value columns a file from before they existed lacks (nullable: old rows read None)."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})").fetchall()}
    for column in table.columns:
        if column.name not in present:
            log.info("SQLite TSDB: adding column %s to table %s", column.name, table.name)
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {_TYPES[column.type]}")


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
                if self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    self._conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
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
            for table in tables.TABLES:
                conn.execute(_create_table_sql(table))
                _add_columns(conn, table)
                _migrate_key(conn, table)
                conn.execute(_index_sql(table))

        self._transaction("creating the schema", create)

    # ------------------------------------------------------------------ writes

    def write_rows(self, table: Table, records: list[Any]) -> None:
        rows = encode_rows(table, records)
        self._transaction(f"writing {table.noun}", lambda conn: _upsert_rows(conn, table, rows))

    def write_window(self, results: Sequence[ResultRecord], metrics: Sequence[MetricRecord],
                     errors: Sequence[ErrorRecord], predictions: Sequence[PredictionRecord],
                     feature_drift: Sequence[FeatureDriftRecord] = ()) -> None:
        """The records of any number of windows in one transaction (every record checked first:
        nothing is written when one is invalid)."""
        checks = BatchChecks()
        checked = self.checked_window(results, metrics, errors, predictions, feature_drift, checks)
        order = (tables.RESULTS, tables.METRICS, tables.ERRORS, tables.PREDICTIONS, tables.FEATURE_DRIFT)
        writes = [(table, encode_rows(table, records, checks.texts)) for table, records in zip(order, checked)]

        def write(conn: sqlite3.Connection) -> None:
            for table, rows in writes:
                _upsert_rows(conn, table, rows)

        self._transaction("writing windows", write)

    # ------------------------------------------------------------------ queries

    @staticmethod
    def _where(conditions: Sequence[tuple[str | None, str, Any]]) -> tuple[str, list[Any]]:
        used = [(c, op, v) for c, op, v in conditions if v is not None]
        # one endpoint's rows are few among its project's: the hint makes SQLite search the series
        # key (endpoint first) and not the project-time index, whose range holds every endpoint's rows
        terms = [f"likelihood({c} {op} ?, 1e-6)" if c == "endpoint_id" else f"{c} {op} ?" for c, op, _ in used]
        sql = " WHERE " + " AND ".join(terms) if used else ""
        return sql, [v for _, _, v in used]

    def query_rows(self, table: Table, project: str, endpoint_id: str | None = None, start=None, end=None,
                   application_name: str | None = None, name: str | None = None) -> list[Any]:
        where, params = self._where(query_conditions(table, project, endpoint_id, start, end, application_name, name))
        sql = f"SELECT {', '.join(table.column_names)} FROM {table.name}{where}"
        rows = self._select(f"querying {table.name}", sql, params)
        return sort_records(table, (decode_row(table, row) for row in rows))

    def latest_status(self, project: str, endpoint_id: str | None = None) -> list[ResultRecord]:
        table = tables.RESULTS
        where, params = self._where(query_conditions(table, project, endpoint_id))
        sql = (f"SELECT {', '.join(table.column_names)} FROM ("
               f"SELECT *, ROW_NUMBER() OVER (PARTITION BY {', '.join(table.series)} "
               f"ORDER BY {table.time_column} DESC) AS newest FROM {table.name}{where}) WHERE newest = 1")
        rows = self._select("querying the latest status", sql, params)
        return sorted((decode_row(table, row) for row in rows),
                      key=lambda r: (r.endpoint_id, r.application_name, r.result_name))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["SqliteTSDB"]
