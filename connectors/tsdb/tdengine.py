"""The TSDB on TDengine, over WebSocket (``taosws://user:pass@host:port[/database]``, taos-ws-py)
or the native client (``taos://user:pass@host:port[/database]``, taospy); the statements are the
same on both.

Layout (column and tag names follow MLRun's TDengine schema where it has one):

``CREATE DATABASE IF NOT EXISTS <db> PRECISION 'us' KEEP <days>`` (default database
``streamdrift``; KEEP from the ``tsdb_keep_days`` setting, default 36,500 days, so replays of old
events are accepted), and in it one supertable per table of :mod:`streamdrift.connectors.tsdb.tables`
(its value columns as columns, the first one the row's timestamp key, its series as tags), with
TDengine's type of each logical type (:data:`TYPES`: TIMESTAMP, INT, BIGINT, DOUBLE, BOOL, VARCHAR(n)
for ASCII text and JSON, NCHAR(n) for any text).

One subtable per series (:data:`streamdrift.connectors.tsdb.tables.SERIES_KEYS`: every tag names the series).
Its name is a prefix and the SHA-1 of the series' identity (``res_<40 hex>``): no name given by a
user ever becomes an identifier, so none can inject SQL, and a long or Unicode name cannot make an
invalid table name. In TDengine a row is keyed by (subtable, timestamp), so writing a window again
overwrites it. Tag and text values are single-quoted string literals with ``\\``, ``'``, newline,
carriage return and tab escaped; every value was checked first
(:func:`streamdrift.connectors.tsdb.base.check_record`). Timestamps are written and compared as integers:
microseconds since the epoch.

TDengine's limits, checked here rather than met at write time:

* statements: at most :data:`MAX_STATEMENT_BYTES` bytes of UTF-8 (the server's ``maxSQLLength``
  is 1 MiB by default and counts bytes, so non-Latin text counts 2-4 per character);
* the database name: a plain identifier of at most 64 characters that is not one of TDengine's
  reserved words (:data:`KEYWORDS`): such a name is refused when the URL is read
  (:func:`check_database_name`), not quoted, so the database stays usable from the ``taos`` shell
  and other tools without backquotes;
* an existing database must have microsecond precision: :meth:`TDengineTSDB.create_schema`
  refuses another one with what to do; a KEEP shorter than ``keep_days`` is raised to it;
* rows older than the database's KEEP are refused by the server ("Timestamp data out of range"):
  a permanent error (:mod:`streamdrift.connectors.errors`) whose message names KEEP.

Statement building (the ``*_sql`` functions) is pure and separate from execution, so tests can
assert on the exact statements; :class:`TDengineTSDB` executes them on a connection.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from streamdrift.connectors.errors import is_transient, tdengine_code
from streamdrift.connectors.settings import DEFAULT_TSDB_KEEP_DAYS, mask_password
from streamdrift.connectors.tdengine_names import KEYWORDS, check_database_name, identifier
from streamdrift.connectors.tsdb import tables
from streamdrift.connectors.tsdb.base import (
    TSDB,
    TSDBError,
    as_text,
    check_error,
    check_feature_drift,
    check_metric,
    check_prediction,
    check_result,
    decode_row,
    encode_row,
    feature_drift_records,
    micros,
    query_conditions,
    sort_records,
)
from streamdrift.connectors.tsdb.tables import Column, Table
from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "streamdrift"
#: TDengine's ``maxSQLLength`` defaults to 1,048,576 bytes; stay ~5 % below it.
MAX_STATEMENT_BYTES = 1_000_000
MAX_ROWS_PER_STATEMENT = 5_000
# --------------------------------------------------------------------------------- literals


def quote(value: str) -> str:
    """``value`` as a TDengine string literal: single quotes, with ``\\ ' \\n \\r \\t`` escaped."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"a NUL character cannot be stored in TDengine: {value!r}")
    escaped = (value.replace("\\", "\\\\").replace("'", "\\'")
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f"'{escaped}'"


def literal(value: Any) -> str:
    """A Python value as a TDengine literal: NULL, an integer, a float (repr), or a quoted string."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return str(micros(value))
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"no TDengine literal for {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------------- schema


#: TDengine's column type of each logical type (:mod:`streamdrift.connectors.tsdb.tables`).
TYPES = {tables.TIMESTAMP: "TIMESTAMP", tables.INT32: "INT", tables.INT64: "BIGINT", tables.FLOAT64: "DOUBLE",
         tables.BOOL: "BOOL", tables.TEXT: "VARCHAR", tables.UNICODE: "NCHAR", tables.JSON: "VARCHAR"}


def column_type(column: Column) -> str:
    """TDengine's type of a column: ``DOUBLE``, ``NCHAR(255)``, ..."""
    kind = TYPES[column.type]
    return f"{kind}({column.length})" if kind in ("VARCHAR", "NCHAR") else kind


@dataclasses.dataclass(frozen=True)
class SuperTable:
    """A table of :mod:`streamdrift.connectors.tsdb.tables` as a TDengine supertable; ``prefix``
    starts the names of its subtables."""

    table: Table
    prefix: str

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """``(name, type)`` of the columns; the first is the timestamp key."""
        return tuple((c.name, column_type(c)) for c in self.table.columns)

    @property
    def tags(self) -> tuple[tuple[str, str], ...]:
        return tuple((c.name, column_type(c)) for c in self.table.tags)

    @property
    def identity(self) -> tuple[str, ...]:
        """The tags that name a series (hashed into the subtable name): the table's
        :data:`~streamdrift.connectors.tsdb.tables.SERIES_KEYS`."""
        return self.table.series

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.table.columns]

    @property
    def tag_names(self) -> list[str]:
        return list(self.table.series)


APP_RESULTS = SuperTable(tables.RESULTS, "res")
METRICS = SuperTable(tables.METRICS, "met")
PREDICTIONS = SuperTable(tables.PREDICTIONS, "pred")
ERRORS = SuperTable(tables.ERRORS, "err")
FEATURE_DRIFT = SuperTable(tables.FEATURE_DRIFT, "fd")
SUPERTABLES = (APP_RESULTS, METRICS, PREDICTIONS, ERRORS, FEATURE_DRIFT)
_SUPERTABLE = {s.name: s for s in SUPERTABLES}


def subtable_name(stable: SuperTable, tags: dict[str, Any]) -> str:
    """``<prefix>_<sha1 hex>`` of the supertable and the series' identity tags (JSON-encoded, so
    ``("a_b", "c")`` and ``("a", "b_c")`` differ)."""
    identity = [stable.name, *(tags[t] for t in stable.identity)]
    digest = hashlib.sha1(json.dumps(identity, ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"{stable.prefix}_{digest}"


def create_database_sql(database: str, keep_days: int = DEFAULT_TSDB_KEEP_DAYS) -> str:
    """``CREATE DATABASE IF NOT EXISTS <db> PRECISION 'us' KEEP <days>``."""
    return (f"CREATE DATABASE IF NOT EXISTS {check_database_name(database)} PRECISION 'us' "
            f"KEEP {_keep(keep_days)}")


def _keep(days: Any) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365_000:
        raise ValueError(f"KEEP must be a whole number of days from 1 to 365000 (TDengine's range), got {days!r}")
    return days


def database_options_sql(database: str) -> str:
    """The precision and KEEP of the database (``information_schema.ins_databases``; TDengine
    keeps unquoted names in lower case)."""
    return ("SELECT `name`, `precision`, `keep` FROM information_schema.ins_databases "
            f"WHERE `name` = {quote(check_database_name(database).lower())}")


def alter_keep_sql(database: str, keep_days: int) -> str:
    return f"ALTER DATABASE {check_database_name(database)} KEEP {_keep(keep_days)}"


def keep_days_of(text: Any) -> int:
    """Days of a KEEP as ``ins_databases`` shows it: ``"36500d,36500d,36500d"``,
    ``"5256000m,..."``, ``"3650"``; the longest of the tiers (what the community edition keeps)."""
    days = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*([mhd]?)\s*", part)
        if not match:
            raise ValueError(f"cannot read the KEEP {text!r} of a TDengine database")
        value, unit = int(match.group(1)), match.group(2) or "d"
        days.append(value // {"m": 1440, "h": 24, "d": 1}[unit])
    return max(days)


def create_stable_sql(database: str, stable: SuperTable) -> str:
    db = check_database_name(database)
    columns = ", ".join(f"{c} {t}" for c, t in stable.columns)
    tags = ", ".join(f"{c} {t}" for c, t in stable.tags)
    return f"CREATE STABLE IF NOT EXISTS {db}.{stable.name} ({columns}) TAGS ({tags})"


def columns_sql(database: str) -> str:
    """The columns of the database's supertables: rows of (supertable, column)."""
    return ("SELECT table_name, col_name FROM information_schema.ins_columns "
            f"WHERE db_name = {quote(identifier(database, 'database name'))} AND table_type = 'SUPER_TABLE'")


def add_columns_sql(database: str, present: Iterable[Sequence[Any]]) -> list[str]:
    """``ALTER STABLE ... ADD COLUMN`` for each column a supertable made by an older streamdrift lacks
    (``present``: rows of (supertable, column), :func:`columns_sql`); old rows read NULL there."""
    have: dict[str, set[str]] = {}
    for row in present:
        have.setdefault(as_text(row[0]), set()).add(as_text(row[1]))
    return [f"ALTER STABLE {database}.{stable.name} ADD COLUMN {column} {kind}"
            for stable in SUPERTABLES if stable.name in have
            for column, kind in stable.columns if column not in have[stable.name]]


def schema_sql(database: str, keep_days: int = DEFAULT_TSDB_KEEP_DAYS) -> list[str]:
    """The statements that create the database and its supertables, in order (between them
    :meth:`TDengineTSDB.create_schema` checks the database's options)."""
    return [create_database_sql(database, keep_days), *(create_stable_sql(database, s) for s in SUPERTABLES)]


# --------------------------------------------------------------------------------- inserts


def row(stable: SuperTable, record: Any) -> tuple[dict[str, Any], list[Any]]:
    """``(tags, values)`` of a checked record (:func:`~streamdrift.connectors.tsdb.base.encode_row`):
    the tags by name, the values in ``stable.columns`` order."""
    values = encode_row(stable.table, record)
    n = len(stable.table.columns)
    return dict(zip(stable.tag_names, values[n:])), values[:n]


def _result_row(r: ResultRecord) -> tuple[dict[str, Any], list[Any]]:
    return row(APP_RESULTS, r)


_INSERT = "INSERT INTO"


def insert_statements(
    database: str,
    groups: Iterable[tuple[SuperTable, Iterable[tuple[dict[str, Any], list[Any]]]]],
    *,
    max_bytes: int = MAX_STATEMENT_BYTES,
    max_rows: int = MAX_ROWS_PER_STATEMENT,
) -> list[str]:
    """Batched ``INSERT`` statements for ``(tags, values)`` rows of one or more supertables
    (values in ``stable.columns`` order).

    One statement holds many ``<db>.<subtable> USING <db>.<stable> (tags) TAGS (...) (columns)
    VALUES (...) (...)`` clauses, one per subtable, of any supertables, and stays under
    ``max_bytes`` bytes of UTF-8 (what TDengine's ``maxSQLLength`` counts) and ``max_rows`` rows;
    a single row longer than ``max_bytes`` still gets its own statement. A subtable is created by
    its first insert. When the same (subtable, timestamp) comes twice, the last one is kept, as
    TDengine itself would.
    """
    db = check_database_name(database)
    statements: list[str] = []
    clauses: list[str] = []  # of the statement being built
    prefix_bytes = len(_INSERT)
    size, n_rows = prefix_bytes, 0  # the statement's bytes so far and its rows
    for stable, rows in groups:
        tag_list = ", ".join(stable.tag_names)
        column_list = ", ".join(stable.column_names)
        by_table: dict[str, tuple[dict[str, Any], dict[int, list[Any]]]] = {}
        for tags, values in rows:
            entry = by_table.setdefault(subtable_name(stable, tags), (tags, {}))
            entry[1][values[0]] = values  # keyed by timestamp: the last write of a window wins
        for name, (tags, by_time) in by_table.items():
            head = (f"{db}.{name} USING {db}.{stable.name} ({tag_list}) "
                    f"TAGS ({', '.join(literal(tags[t]) for t in stable.tag_names)}) ({column_list}) VALUES")
            head_bytes = len(head.encode("utf-8"))
            current: list[str] = []  # value tuples of this subtable's clause
            clause_bytes = head_bytes
            for values in by_time.values():
                tup = "(" + ", ".join(literal(v) for v in values) + ")"
                tup_bytes = len(tup.encode("utf-8"))
                too_big = size + 1 + clause_bytes + 1 + tup_bytes > max_bytes or n_rows + 1 > max_rows
                if too_big and (current or clauses):
                    if current:
                        clauses.append(f"{head} {' '.join(current)}")
                    statements.append(" ".join([_INSERT, *clauses]))
                    clauses, current, clause_bytes, size, n_rows = [], [], head_bytes, prefix_bytes, 0
                current.append(tup)
                clause_bytes += 1 + tup_bytes
                n_rows += 1
            clauses.append(f"{head} {' '.join(current)}")
            size += 1 + clause_bytes
    if clauses:
        statements.append(" ".join([_INSERT, *clauses]))
    return statements


def insert_sql(database: str, stable: SuperTable, rows: Iterable[tuple[dict[str, Any], list[Any]]],
               **kw: Any) -> list[str]:
    """:func:`insert_statements` for the rows of one supertable."""
    return insert_statements(database, [(stable, rows)], **kw)


def _insert_checked_sql(database: str, stable: SuperTable, check: Any, records: Sequence[Any], **kw) -> list[str]:
    return insert_sql(database, stable, (row(stable, check(r)) for r in records), **kw)


def insert_results_sql(database: str, records: Sequence[ResultRecord], **kw) -> list[str]:
    return _insert_checked_sql(database, APP_RESULTS, check_result, records, **kw)


def insert_metrics_sql(database: str, records: Sequence[MetricRecord], **kw) -> list[str]:
    return _insert_checked_sql(database, METRICS, check_metric, records, **kw)


def insert_predictions_sql(database: str, records: Sequence[PredictionRecord], **kw) -> list[str]:
    return _insert_checked_sql(database, PREDICTIONS, check_prediction, records, **kw)


def insert_errors_sql(database: str, records: Sequence[ErrorRecord], **kw) -> list[str]:
    return _insert_checked_sql(database, ERRORS, check_error, records, **kw)


def insert_feature_drift_sql(database: str, records: Sequence[FeatureDriftRecord], **kw) -> list[str]:
    return _insert_checked_sql(database, FEATURE_DRIFT, check_feature_drift, records, **kw)


def _window_groups(results, metrics, errors, predictions, feature_drift) -> list:
    """The ``(supertable, rows)`` of records already checked."""
    kinds = zip((APP_RESULTS, METRICS, ERRORS, PREDICTIONS, FEATURE_DRIFT),
                (results, metrics, errors, predictions, feature_drift))
    return [(stable, map(functools.partial(row, stable), records)) for stable, records in kinds]


def insert_window_sql(database: str, results: Sequence[ResultRecord] = (), metrics: Sequence[MetricRecord] = (),
                      errors: Sequence[ErrorRecord] = (), predictions: Sequence[PredictionRecord] = (),
                      feature_drift: Sequence[FeatureDriftRecord] = (), **kw) -> list[str]:
    """The statements of :meth:`TDengineTSDB.write_window`: every record checked first (a
    ValueError before any statement is built), then all kinds packed together. ``feature_drift``:
    records and :class:`~streamdrift.udfs.records.FeatureDriftRows`, as the TSDB takes them."""
    checked = ([check_result(r) for r in results], [check_metric(m) for m in metrics],
               [check_error(e) for e in errors], [check_prediction(p) for p in predictions],
               [check_feature_drift(f) for f in feature_drift_records(feature_drift)])
    return insert_statements(database, _window_groups(*checked), **kw)


# --------------------------------------------------------------------------------- queries


def _where(conditions: Sequence[tuple[str | None, str, Any]]) -> str:
    parts = [f"{column} {op} {literal(value)}" for column, op, value in conditions if value is not None]
    return " WHERE " + " AND ".join(parts) if parts else ""


def select_list(stable: SuperTable) -> str:
    """The columns, then the tags, of a supertable's rows as queries read them (timestamps as
    integers: :func:`~streamdrift.connectors.tsdb.base.decode_row`'s order and units)."""
    return ", ".join(f"CAST({c.name} AS BIGINT)" if c.type == tables.TIMESTAMP else c.name
                     for c in stable.table.all_columns)


RESULT_SELECT = select_list(APP_RESULTS)
METRIC_SELECT = select_list(METRICS)
PREDICTION_SELECT = select_list(PREDICTIONS)
ERROR_SELECT = select_list(ERRORS)
FEATURE_DRIFT_SELECT = select_list(FEATURE_DRIFT)


def _select_sql(database: str, stable: SuperTable, project: str, endpoint_id: str | None,
                start: dt.datetime | None, end: dt.datetime | None, application_name: str | None = None,
                name: str | None = None) -> str:
    """``SELECT <columns> FROM <db>.<stable>`` of a project, narrowed by the filters that are not
    None (:func:`~streamdrift.connectors.tsdb.base.query_conditions`)."""
    where = _where(query_conditions(stable.table, project, endpoint_id, start, end, application_name, name))
    return f"SELECT {select_list(stable)} FROM {check_database_name(database)}.{stable.name}{where}"


def query_results_sql(database: str, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                      end: dt.datetime | None = None, application_name: str | None = None,
                      result_name: str | None = None) -> str:
    return _select_sql(database, APP_RESULTS, project, endpoint_id, start, end, application_name, result_name)


def query_metrics_sql(database: str, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                      end: dt.datetime | None = None, application_name: str | None = None,
                      metric_name: str | None = None) -> str:
    return _select_sql(database, METRICS, project, endpoint_id, start, end, application_name, metric_name)


def query_predictions_sql(database: str, project: str, endpoint_id: str | None = None,
                          start: dt.datetime | None = None, end: dt.datetime | None = None) -> str:
    return _select_sql(database, PREDICTIONS, project, endpoint_id, start, end)


def query_errors_sql(database: str, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                     end: dt.datetime | None = None, application_name: str | None = None,
                     error_type: str | None = None) -> str:
    return _select_sql(database, ERRORS, project, endpoint_id, start, end, application_name, error_type)


def query_feature_drift_sql(database: str, project: str, endpoint_id: str | None = None,
                            start: dt.datetime | None = None, end: dt.datetime | None = None,
                            application_name: str | None = None, feature_name: str | None = None) -> str:
    return _select_sql(database, FEATURE_DRIFT, project, endpoint_id, start, end, application_name, feature_name)


def latest_status_sql(database: str, project: str, endpoint_id: str | None = None) -> str:
    """The newest row of every result series of a project: ``LAST_ROW`` grouped by the series tags."""
    table = APP_RESULTS.table
    where = _where(query_conditions(table, project, endpoint_id))
    newest = ", ".join(f"LAST_ROW({c})" for c in APP_RESULTS.column_names)
    series = ", ".join(table.series)
    return f"SELECT {newest}, {series} FROM {check_database_name(database)}.{table.name}{where} GROUP BY {series}"


# --------------------------------------------------------------------------------- rows → records


def result_from_row(row: Sequence[Any]) -> ResultRecord:
    return decode_row(tables.RESULTS, row)


def metric_from_row(row: Sequence[Any]) -> MetricRecord:
    return decode_row(tables.METRICS, row)


def prediction_from_row(row: Sequence[Any]) -> PredictionRecord:
    return decode_row(tables.PREDICTIONS, row)


def error_from_row(row: Sequence[Any]) -> ErrorRecord:
    return decode_row(tables.ERRORS, row)


def feature_drift_from_row(row: Sequence[Any]) -> FeatureDriftRecord:
    return decode_row(tables.FEATURE_DRIFT, row)


# --------------------------------------------------------------------------------- connections


class Connection(Protocol):
    """What :class:`TDengineTSDB` needs of a connection."""

    def execute(self, sql: str) -> Any: ...

    def query(self, sql: str) -> list[tuple]: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class TDengineURL:
    scheme: str  # taosws or taos
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url: str) -> TDengineURL:
        masked = mask_password(url)
        parts = urlsplit(url)
        if parts.scheme not in ("taosws", "taos"):
            raise ValueError(f"not a TDengine URL: {masked!r}; expected taosws://user:pass@host:port")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"TDengine URL {masked!r}: the port is not a number") from None
        if not parts.hostname:
            raise ValueError(f"TDengine URL {masked!r} has no host")
        database = parts.path.strip("/") or DEFAULT_DATABASE
        check_database_name(database, f"database name in {masked!r}")
        return cls(
            scheme=parts.scheme, host=parts.hostname, port=port or (6041 if parts.scheme == "taosws" else 6030),
            user=unquote(parts.username or "root"), password=unquote(parts.password or "taosdata"),
            database=database,
        )


class _TaosWsConnection:
    """taos-ws-py (``taosws``): TDengine's WebSocket connector, through taosAdapter."""

    def __init__(self, url: TDengineURL, retries: int | None = None):
        import taosws

        options = {} if retries is None else {"conn_retries": str(int(retries))}
        self._conn = taosws.connect(user=url.user, password=url.password, host=url.host, port=url.port, **options)

    def execute(self, sql: str) -> Any:
        return self._conn.execute(sql)

    def query(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self._conn.query(sql)]

    def close(self) -> None:
        self._conn.close()


class _TaosNativeConnection:
    """taospy (``taos``): TDengine's native connector; needs the TDengine client library."""

    def __init__(self, url: TDengineURL):
        try:
            import taos
        except Exception:  # noqa: BLE001 - taospy raises its own InterfaceError when libtaos.so is missing
            raise TSDBError("taos:// needs the TDengine client library (libtaos.so), which cannot be loaded: "
                            "install the TDengine client, or use taosws://user:pass@host:6041 (WebSocket, "
                            "no native library)") from None
        self._conn = taos.connect(host=url.host, port=url.port, user=url.user, password=url.password)

    def execute(self, sql: str) -> Any:
        return self._conn.execute(sql)

    def query(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self._conn.query(sql).fetch_all()]

    def close(self) -> None:
        self._conn.close()


def connect(url: str, retries: int | None = None) -> Connection:
    """Open a connection for a ``taosws://`` or ``taos://`` URL (errors never show the password).

    ``retries``: how often the WebSocket client tries again before it reports a refused
    connection (None: the client's default, several over ~7 s)."""
    parsed = TDengineURL.parse(url)
    try:
        if parsed.scheme == "taosws":
            return _TaosWsConnection(parsed, retries)
        return _TaosNativeConnection(parsed)
    except TSDBError:
        raise
    except Exception as exc:  # noqa: BLE001 - the connectors raise their own types
        raise TSDBError(f"cannot connect to TDengine at {mask_password(url)}: "
                        f"{mask_password(f'{type(exc).__name__}: {exc}')}", transient=is_transient(exc)) from None


# --------------------------------------------------------------------------------- the TSDB


#: Hints added to the server's message for permanent errors whose cause is ours to explain.
_HINTS = {
    0x0219: "statements are cut at {max_bytes} bytes; this server's maxSQLLength is lower: raise it "
            "(taos.cfg) or open the TSDB with a smaller max_statement_bytes",
    0x060B: "TDengine refuses rows older than the database's KEEP ({keep}) or too far in the future: "
            "a replay of older events needs a longer KEEP (setting tsdb_keep_days; ALTER DATABASE {db} KEEP <days>)",
}


class TDengineTSDB(TSDB):
    """The TSDB on TDengine.

    :param url:        ``taosws://user:pass@host:port[/database]`` or ``taos://...``; the database
                       defaults to ``streamdrift``.
    :param connection: an open connection to use instead (it must offer ``execute``, ``query``
                       and ``close``); the URL then only names the database.
    :param keep_days:  KEEP of the database it creates (and the least it accepts of an existing
                       one, raised with ``ALTER DATABASE`` when shorter); the ``tsdb_keep_days`` setting.
    :param max_statement_bytes: the longest statement sent, in UTF-8 bytes.
    :param artifacts_dir: where an ``extra_data`` too big for a row is kept whole (see
                       :mod:`streamdrift.connectors.tsdb.base`).
    :param connect_retries: the WebSocket client's own retries of a refused connection (None:
                       its default); the writer retries transient errors itself.
    """

    def __init__(self, url: str | None = None, *, connection: Connection | None = None,
                 database: str | None = None, max_statement_bytes: int = MAX_STATEMENT_BYTES,
                 keep_days: int = DEFAULT_TSDB_KEEP_DAYS, artifacts_dir: str | None = None,
                 connect_retries: int | None = None):
        if url is None and connection is None:
            raise ValueError("give a taosws:// or taos:// URL, or a connection")
        self.url = url
        self.masked_url = mask_password(url) if url else "<connection>"
        parsed_db = TDengineURL.parse(url).database if url else DEFAULT_DATABASE
        self.database = check_database_name(parsed_db if database is None else database)
        self.max_statement_bytes = max_statement_bytes
        self.keep_days = _keep(keep_days)
        self.database_keep_days: int | None = None  # read by create_schema
        self.artifacts_dir = None if artifacts_dir is None else str(artifacts_dir)
        self.connect_retries = connect_retries
        self._conn = connection

    def __repr__(self) -> str:
        return f"TDengineTSDB({self.masked_url!r}, database={self.database!r})"

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = connect(self.url, self.connect_retries)
        return self._conn

    def _failed(self, what: str, exc: Exception, sql: str) -> TSDBError:
        """The error to raise: the server's message (password masked), the statement's start,
        a hint for a known cause, and ``transient`` from :func:`streamdrift.connectors.errors.is_transient`.
        A connection of our own is dropped, so the next call (a retry by the writer) opens a fresh
        one instead of reusing a broken one."""
        if self.url is not None and self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
            self._conn = None
        hint = _HINTS.get(tdengine_code(exc) or -1, "")
        if hint:
            keep = f"{self.database_keep_days} days" if self.database_keep_days else f"tsdb_keep_days {self.keep_days}"
            hint = " (" + hint.format(max_bytes=self.max_statement_bytes, keep=keep, db=self.database) + ")"
        return TSDBError(f"{what} failed on TDengine {self.masked_url}: "
                         f"{mask_password(f'{type(exc).__name__}: {exc}')}{hint} "
                         f"(statement: {mask_password(sql[:200])}{'...' if len(sql) > 200 else ''})",
                         transient=is_transient(exc))

    def _execute(self, statements: Iterable[str], what: str) -> None:
        for sql in statements:
            try:
                self.connection.execute(sql)
            except TSDBError:
                raise
            except Exception as exc:  # noqa: BLE001 - the connectors raise their own types
                raise self._failed(what, exc, sql) from None

    def _query(self, sql: str, what: str) -> list[tuple]:
        try:
            return self.connection.query(sql)
        except TSDBError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._failed(what, exc, sql) from None

    def create_schema(self) -> None:
        """Create the database (precision 'us', KEEP ``keep_days``) and its supertables if missing.

        An existing database of another precision is refused (:class:`TSDBError`, permanent,
        saying what to do); one whose KEEP is shorter than ``keep_days`` gets ``ALTER DATABASE
        ... KEEP``, or, if that is refused, a warning (older rows will then be refused)."""
        create_db, *stables = schema_sql(self.database, self.keep_days)
        self._execute([create_db], "creating the database")
        self._check_database()
        self._execute(stables, "creating the supertables")
        present = self._query(columns_sql(self.database), "reading the supertables' columns")
        self._execute(add_columns_sql(self.database, present), "adding new columns to the supertables")

    def _check_database(self) -> None:
        rows = self._query(database_options_sql(self.database), "reading the database's options")
        if not rows:
            log.warning("TDengine %s: database %r is not listed in information_schema.ins_databases; its "
                        "precision and KEEP cannot be checked", self.masked_url, self.database)
            return
        _, precision, keep = (as_text(v) for v in rows[0][:3])
        if str(precision).strip().lower() != "us":
            raise TSDBError(
                f"TDengine database {self.database!r} on {self.masked_url} has precision {precision!r}, but "
                "streamdrift writes microsecond timestamps (PRECISION 'us'): every write would fail with "
                "'Timestamp data out of range'. TDengine cannot change a database's precision: name another "
                f"database in the URL (taosws://user:pass@host:6041/streamdrift_us; streamdrift creates it), "
                f"or DROP DATABASE {self.database} if its data is not needed", transient=False)
        self.database_keep_days = keep_days_of(keep)
        if self.database_keep_days < self.keep_days:
            try:
                self._execute([alter_keep_sql(self.database, self.keep_days)], "raising the database's KEEP")
            except TSDBError as exc:
                log.warning("TDengine database %r keeps %d days, fewer than tsdb_keep_days %d, and its KEEP "
                            "cannot be raised (%s): rows older than %d days will be refused", self.database,
                            self.database_keep_days, self.keep_days, exc, self.database_keep_days)
                return
            log.info("TDengine database %r: KEEP raised from %d to %d days", self.database,
                     self.database_keep_days, self.keep_days)
            self.database_keep_days = self.keep_days

    def write_rows(self, table: Table, records: list[Any]) -> None:
        stable = _SUPERTABLE[table.name]
        statements = insert_sql(self.database, stable, map(functools.partial(row, stable), records),
                                max_bytes=self.max_statement_bytes)
        self._execute(statements, f"writing {table.noun}")

    def write_window(self, results: Sequence[ResultRecord], metrics: Sequence[MetricRecord],
                     errors: Sequence[ErrorRecord], predictions: Sequence[PredictionRecord],
                     feature_drift: Sequence[FeatureDriftRecord] = ()) -> None:
        """Every record checked (nothing sent when one is invalid), then all kinds packed into
        multi-table INSERT statements (TDengine has no transactions: after a failure the
        statements already run stay; writing the same records again is idempotent)."""
        checked = self.checked_window(results, metrics, errors, predictions, feature_drift)
        checked = (*checked[:4], feature_drift_records(checked[4]))  # a row per record in its statements
        statements = insert_statements(self.database, _window_groups(*checked), max_bytes=self.max_statement_bytes)
        self._execute(statements, "writing windows")

    def query_rows(self, table: Table, project: str, endpoint_id: str | None = None, start=None, end=None,
                   application_name: str | None = None, name: str | None = None) -> list[Any]:
        sql = _select_sql(self.database, _SUPERTABLE[table.name], project, endpoint_id, start, end,
                          application_name, name)
        rows = self._query(sql, f"querying {table.noun}")
        return sort_records(table, (decode_row(table, r) for r in rows))

    def latest_status(self, project: str, endpoint_id: str | None = None) -> list[ResultRecord]:
        sql = latest_status_sql(self.database, project, endpoint_id)
        rows = self._query(sql, "querying the latest status")
        return sorted((result_from_row(r) for r in rows),
                      key=lambda r: (r.endpoint_id, r.application_name, r.result_name))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


__all__ = [
    "TDengineTSDB", "TDengineURL", "SuperTable", "SUPERTABLES", "APP_RESULTS", "METRICS", "PREDICTIONS", "ERRORS",
    "FEATURE_DRIFT", "KEYWORDS", "MAX_STATEMENT_BYTES", "MAX_ROWS_PER_STATEMENT", "connect", "quote", "literal",
    "identifier", "check_database_name", "subtable_name", "create_database_sql", "create_stable_sql",
    "database_options_sql", "alter_keep_sql", "keep_days_of", "schema_sql", "insert_statements", "insert_sql",
    "insert_results_sql", "insert_metrics_sql", "insert_predictions_sql", "insert_errors_sql",
    "insert_feature_drift_sql", "insert_window_sql", "query_results_sql", "query_metrics_sql",
    "query_predictions_sql", "query_errors_sql", "query_feature_drift_sql", "latest_status_sql", "result_from_row",
    "metric_from_row", "prediction_from_row", "error_from_row", "feature_drift_from_row", "DEFAULT_DATABASE",
    "TYPES", "column_type", "row", "select_list",
]
