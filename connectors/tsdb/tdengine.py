"""The TSDB on TDengine, over WebSocket (``taosws://user:pass@host:port[/database]``, taos-ws-py)
or the native client (``taos://user:pass@host:port[/database]``, taospy); the statements are the
same on both.

Layout (column and tag names follow MLRun's TDengine schema where it has one):

``CREATE DATABASE IF NOT EXISTS <db> PRECISION 'us'`` (default database ``streamdrift``), and in it
the supertables

=================  =====================================================  ============================
supertable         columns (the first one is the row's timestamp key)     tags
=================  =====================================================  ============================
``app_results``    end_infer_time, start_infer_time, result_value,        project, endpoint_id,
                   result_status, result_extra_data                       application_name,
                                                                          result_name, result_kind
``metrics``        end_infer_time, start_infer_time, metric_value         project, endpoint_id,
                                                                          application_name,
                                                                          metric_name
``predictions``    end_infer_time, start_infer_time, row_count,           project, endpoint_id
                   event_count, error_count, latency_count,
                   latency_mean_us, latency_p50_us, latency_p95_us,
                   latency_p99_us, first_request, last_request
``errors``         time, model_error                                      project, endpoint_id,
                                                                          application_name,
                                                                          error_type
=================  =====================================================  ============================

One subtable per series (see :mod:`connectors.tsdb.base` for the keys). Its name is a prefix and
the SHA-1 of the series' identity (``res_<40 hex>``): no name given by a user ever becomes an
identifier, so none can inject SQL, and a long or Unicode name cannot make an invalid table name.
In TDengine a row is keyed by (subtable, timestamp), so writing a window again overwrites it.
Tag and text values are single-quoted string literals with ``\\``, ``'``, newline, carriage return
and tab escaped; every value was checked first (:func:`connectors.tsdb.base.check_record`).
Timestamps are written and compared as integers: microseconds since the epoch.

Statement building (the ``*_sql`` functions) is pure and separate from execution, so tests can
assert on the exact statements; :class:`TDengineTSDB` executes them on a connection.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from connectors.settings import mask_password
from connectors.tsdb.base import (
    TSDB,
    TSDBError,
    check_error,
    check_filters,
    check_metric,
    check_prediction,
    check_result,
    extra_data_json,
    from_micros,
    micros,
    sort_errors,
    sort_metrics,
    sort_predictions,
    sort_results,
)
from udfs.records import ErrorRecord, MetricRecord, PredictionRecord, ResultRecord

DEFAULT_DATABASE = "streamdrift"
MAX_STATEMENT_CHARS = 512_000  # TDengine's maxSQLLength defaults to 1 MB; stay well below
MAX_ROWS_PER_STATEMENT = 5_000
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


# --------------------------------------------------------------------------------- literals


def identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain TDengine identifier (letters, digits, ``_``; at most 64)."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{what} {name!r} is invalid: use letters, digits and '_', not starting with a digit, "
                         "at most 64 characters")
    return name


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


@dataclasses.dataclass(frozen=True)
class SuperTable:
    name: str
    prefix: str  # of subtable names
    columns: tuple[tuple[str, str], ...]  # (name, type); the first is the timestamp key
    tags: tuple[tuple[str, str], ...]
    identity: tuple[str, ...]  # tags that name a series (hashed into the subtable name)

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def tag_names(self) -> list[str]:
        return [t for t, _ in self.tags]


APP_RESULTS = SuperTable(
    "app_results", "res",
    columns=(("end_infer_time", "TIMESTAMP"), ("start_infer_time", "TIMESTAMP"), ("result_value", "DOUBLE"),
             ("result_status", "INT"), ("result_extra_data", "VARCHAR(16000)")),
    tags=(("project", "NCHAR(255)"), ("endpoint_id", "NCHAR(255)"), ("application_name", "VARCHAR(128)"),
          ("result_name", "VARCHAR(128)"), ("result_kind", "INT")),
    identity=("endpoint_id", "application_name", "result_name"),
)
METRICS = SuperTable(
    "metrics", "met",
    columns=(("end_infer_time", "TIMESTAMP"), ("start_infer_time", "TIMESTAMP"), ("metric_value", "DOUBLE")),
    tags=(("project", "NCHAR(255)"), ("endpoint_id", "NCHAR(255)"), ("application_name", "VARCHAR(128)"),
          ("metric_name", "VARCHAR(128)")),
    identity=("endpoint_id", "application_name", "metric_name"),
)
PREDICTIONS = SuperTable(
    "predictions", "pred",
    columns=(("end_infer_time", "TIMESTAMP"), ("start_infer_time", "TIMESTAMP"), ("row_count", "BIGINT"),
             ("event_count", "BIGINT"), ("error_count", "BIGINT"), ("latency_count", "BIGINT"),
             ("latency_mean_us", "DOUBLE"), ("latency_p50_us", "DOUBLE"), ("latency_p95_us", "DOUBLE"),
             ("latency_p99_us", "DOUBLE"), ("first_request", "TIMESTAMP"), ("last_request", "TIMESTAMP")),
    tags=(("project", "NCHAR(255)"), ("endpoint_id", "NCHAR(255)")),
    identity=("endpoint_id",),
)
ERRORS = SuperTable(
    "errors", "err",
    columns=(("time", "TIMESTAMP"), ("model_error", "NCHAR(1000)")),
    tags=(("project", "NCHAR(255)"), ("endpoint_id", "NCHAR(255)"), ("application_name", "VARCHAR(128)"),
          ("error_type", "NCHAR(255)")),
    identity=("endpoint_id", "application_name", "error_type"),
)
SUPERTABLES = (APP_RESULTS, METRICS, PREDICTIONS, ERRORS)


def subtable_name(stable: SuperTable, tags: dict[str, Any]) -> str:
    """``<prefix>_<sha1 hex>`` of the supertable and the series' identity tags (JSON-encoded, so
    ``("a_b", "c")`` and ``("a", "b_c")`` differ)."""
    identity = [stable.name, *(tags[t] for t in stable.identity)]
    digest = hashlib.sha1(json.dumps(identity, ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"{stable.prefix}_{digest}"


def create_database_sql(database: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {identifier(database, 'database name')} PRECISION 'us'"


def create_stable_sql(database: str, stable: SuperTable) -> str:
    db = identifier(database, "database name")
    columns = ", ".join(f"{c} {t}" for c, t in stable.columns)
    tags = ", ".join(f"{c} {t}" for c, t in stable.tags)
    return f"CREATE STABLE IF NOT EXISTS {db}.{stable.name} ({columns}) TAGS ({tags})"


def schema_sql(database: str) -> list[str]:
    """Every statement :meth:`TDengineTSDB.create_schema` runs, in order."""
    return [create_database_sql(database), *(create_stable_sql(database, s) for s in SUPERTABLES)]


# --------------------------------------------------------------------------------- inserts


def _result_row(r: ResultRecord) -> tuple[dict[str, Any], list[Any]]:
    tags = {"project": r.project, "endpoint_id": r.endpoint_id, "application_name": r.application_name,
            "result_name": r.result_name, "result_kind": int(r.kind)}
    where = f"result {r.result_name!r} of endpoint {r.endpoint_id!r}"
    values = [micros(r.end_infer_time), micros(r.start_infer_time), r.value, int(r.status),
              extra_data_json(r.extra_data, where)]
    return tags, values


def _metric_row(m: MetricRecord) -> tuple[dict[str, Any], list[Any]]:
    tags = {"project": m.project, "endpoint_id": m.endpoint_id, "application_name": m.application_name,
            "metric_name": m.metric_name}
    return tags, [micros(m.end_infer_time), micros(m.start_infer_time), m.value]


def _prediction_row(p: PredictionRecord) -> tuple[dict[str, Any], list[Any]]:
    tags = {"project": p.project, "endpoint_id": p.endpoint_id}
    values = [micros(p.end_infer_time), micros(p.start_infer_time), p.count, p.events, p.error_count,
              p.latency_count, p.latency_mean_us, p.latency_p50_us, p.latency_p95_us, p.latency_p99_us,
              None if p.first_request is None else micros(p.first_request),
              None if p.last_request is None else micros(p.last_request)]
    return tags, values


def _error_row(e: ErrorRecord) -> tuple[dict[str, Any], list[Any]]:
    tags = {"project": e.project, "endpoint_id": e.endpoint_id, "application_name": e.application_name,
            "error_type": e.error_type}
    return tags, [micros(e.time), e.message]


def insert_sql(
    database: str,
    stable: SuperTable,
    rows: Iterable[tuple[dict[str, Any], list[Any]]],
    *,
    max_chars: int = MAX_STATEMENT_CHARS,
    max_rows: int = MAX_ROWS_PER_STATEMENT,
) -> list[str]:
    """Batched ``INSERT`` statements for ``(tags, values)`` rows (values in ``stable.columns`` order).

    One statement holds many ``<db>.<subtable> USING <db>.<stable> (tags) TAGS (...) (columns)
    VALUES (...) (...)`` clauses, one per subtable, and stays under ``max_chars`` characters and
    ``max_rows`` rows (a single row longer than ``max_chars`` still gets its own statement). A
    subtable is created by its first insert. When the same (subtable, timestamp) comes twice, the
    last one is kept, as TDengine itself would.
    """
    db = identifier(database, "database name")
    tag_list = ", ".join(stable.tag_names)
    column_list = ", ".join(stable.column_names)
    by_table: dict[str, tuple[dict[str, Any], dict[int, list[Any]]]] = {}
    for tags, values in rows:
        name = subtable_name(stable, tags)
        entry = by_table.setdefault(name, (tags, {}))
        entry[1][values[0]] = values  # keyed by timestamp: the last write of a window wins
    statements: list[str] = []
    clauses: list[str] = []  # of the statement being built
    prefix = "INSERT INTO"
    size, n_rows = len(prefix), 0  # the statement's length so far and its rows
    for name, (tags, by_time) in by_table.items():
        head = (f"{db}.{name} USING {db}.{stable.name} ({tag_list}) "
                f"TAGS ({', '.join(literal(tags[t]) for t in stable.tag_names)}) ({column_list}) VALUES")
        current: list[str] = []  # value tuples of this subtable's clause
        clause_len = len(head)
        for values in by_time.values():
            tup = "(" + ", ".join(literal(v) for v in values) + ")"
            too_big = size + 1 + clause_len + 1 + len(tup) > max_chars or n_rows + 1 > max_rows
            if too_big and (current or clauses):
                if current:
                    clauses.append(f"{head} {' '.join(current)}")
                statements.append(" ".join([prefix, *clauses]))
                clauses, current, clause_len, size, n_rows = [], [], len(head), len(prefix), 0
            current.append(tup)
            clause_len += 1 + len(tup)
            n_rows += 1
        clauses.append(f"{head} {' '.join(current)}")
        size += 1 + clause_len
    if clauses:
        statements.append(" ".join([prefix, *clauses]))
    return statements


def insert_results_sql(database: str, records: Sequence[ResultRecord], **kw) -> list[str]:
    return insert_sql(database, APP_RESULTS, (_result_row(check_result(r)) for r in records), **kw)


def insert_metrics_sql(database: str, records: Sequence[MetricRecord], **kw) -> list[str]:
    return insert_sql(database, METRICS, (_metric_row(check_metric(m)) for m in records), **kw)


def insert_predictions_sql(database: str, records: Sequence[PredictionRecord], **kw) -> list[str]:
    return insert_sql(database, PREDICTIONS, (_prediction_row(check_prediction(p)) for p in records), **kw)


def insert_errors_sql(database: str, records: Sequence[ErrorRecord], **kw) -> list[str]:
    return insert_sql(database, ERRORS, (_error_row(check_error(e)) for e in records), **kw)


# --------------------------------------------------------------------------------- queries


def _where(conditions: Sequence[tuple[str, str, Any]]) -> str:
    parts = [f"{column} {op} {literal(value)}" for column, op, value in conditions if value is not None]
    return " WHERE " + " AND ".join(parts) if parts else ""


def _time_conditions(column: str, start: dt.datetime | None, end: dt.datetime | None) -> list:
    return [(column, ">=", None if start is None else micros(start)),
            (column, "<=", None if end is None else micros(end))]


RESULT_SELECT = ("CAST(end_infer_time AS BIGINT), CAST(start_infer_time AS BIGINT), result_value, result_status, "
                 "result_extra_data, project, endpoint_id, application_name, result_name, result_kind")
METRIC_SELECT = ("CAST(end_infer_time AS BIGINT), CAST(start_infer_time AS BIGINT), metric_value, "
                 "project, endpoint_id, application_name, metric_name")
PREDICTION_SELECT = ("CAST(end_infer_time AS BIGINT), CAST(start_infer_time AS BIGINT), row_count, event_count, "
                     "error_count, latency_count, latency_mean_us, latency_p50_us, latency_p95_us, latency_p99_us, "
                     "CAST(first_request AS BIGINT), CAST(last_request AS BIGINT), project, endpoint_id")
ERROR_SELECT = "CAST(time AS BIGINT), model_error, project, endpoint_id, application_name, error_type"


def query_results_sql(database: str, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                      end: dt.datetime | None = None, application_name: str | None = None,
                      result_name: str | None = None) -> str:
    check_filters(project, endpoint_id, start, end, application_name, result_name, "result name")
    db = identifier(database, "database name")
    where = _where([("project", "=", project), ("endpoint_id", "=", endpoint_id),
                    ("application_name", "=", application_name), ("result_name", "=", result_name),
                    *_time_conditions("end_infer_time", start, end)])
    return f"SELECT {RESULT_SELECT} FROM {db}.{APP_RESULTS.name}{where}"


def query_metrics_sql(database: str, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                      end: dt.datetime | None = None, application_name: str | None = None,
                      metric_name: str | None = None) -> str:
    check_filters(project, endpoint_id, start, end, application_name, metric_name, "metric name")
    db = identifier(database, "database name")
    where = _where([("project", "=", project), ("endpoint_id", "=", endpoint_id),
                    ("application_name", "=", application_name), ("metric_name", "=", metric_name),
                    *_time_conditions("end_infer_time", start, end)])
    return f"SELECT {METRIC_SELECT} FROM {db}.{METRICS.name}{where}"


def query_predictions_sql(database: str, project: str, endpoint_id: str | None = None,
                          start: dt.datetime | None = None, end: dt.datetime | None = None) -> str:
    check_filters(project, endpoint_id, start, end)
    db = identifier(database, "database name")
    where = _where([("project", "=", project), ("endpoint_id", "=", endpoint_id),
                    *_time_conditions("end_infer_time", start, end)])
    return f"SELECT {PREDICTION_SELECT} FROM {db}.{PREDICTIONS.name}{where}"


def query_errors_sql(database: str, project: str, endpoint_id: str | None = None, start: dt.datetime | None = None,
                     end: dt.datetime | None = None, application_name: str | None = None,
                     error_type: str | None = None) -> str:
    check_filters(project, endpoint_id, start, end, application_name, error_type, "error type")
    db = identifier(database, "database name")
    where = _where([("project", "=", project), ("endpoint_id", "=", endpoint_id),
                    ("application_name", "=", application_name), ("error_type", "=", error_type),
                    *_time_conditions("time", start, end)])
    return f"SELECT {ERROR_SELECT} FROM {db}.{ERRORS.name}{where}"


def latest_status_sql(database: str, project: str, endpoint_id: str | None = None) -> str:
    """The newest row of every result series of a project: ``LAST_ROW`` grouped by the series tags."""
    check_filters(project, endpoint_id)
    db = identifier(database, "database name")
    where = _where([("project", "=", project), ("endpoint_id", "=", endpoint_id)])
    return ("SELECT LAST_ROW(end_infer_time), LAST_ROW(start_infer_time), LAST_ROW(result_value), "
            "LAST_ROW(result_status), LAST_ROW(result_extra_data), project, endpoint_id, application_name, "
            f"result_name, result_kind FROM {db}.{APP_RESULTS.name}{where} "
            "GROUP BY project, endpoint_id, application_name, result_name, result_kind")


# --------------------------------------------------------------------------------- rows → records


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def result_from_row(row: Sequence[Any]) -> ResultRecord:
    end, start, value, status, extra, project, endpoint_id, app, name, kind = row
    extra = _text(extra)
    return ResultRecord(
        project=_text(project), endpoint_id=_text(endpoint_id), application_name=_text(app),
        result_name=_text(name), kind=int(kind), status=int(status), value=_float(value),
        start_infer_time=from_micros(start), end_infer_time=from_micros(end),
        extra_data=json.loads(extra) if extra else {},
    )


def metric_from_row(row: Sequence[Any]) -> MetricRecord:
    end, start, value, project, endpoint_id, app, name = row
    return MetricRecord(
        project=_text(project), endpoint_id=_text(endpoint_id), application_name=_text(app),
        metric_name=_text(name), value=_float(value), start_infer_time=from_micros(start),
        end_infer_time=from_micros(end),
    )


def prediction_from_row(row: Sequence[Any]) -> PredictionRecord:
    (end, start, rows, events, errors, lat_count, mean, p50, p95, p99, first, last, project, endpoint_id) = row
    return PredictionRecord(
        project=_text(project), endpoint_id=_text(endpoint_id), start_infer_time=from_micros(start),
        end_infer_time=from_micros(end), count=int(rows), events=int(events), error_count=int(errors),
        latency_count=int(lat_count), latency_mean_us=_float(mean), latency_p50_us=_float(p50),
        latency_p95_us=_float(p95), latency_p99_us=_float(p99), first_request=from_micros(first),
        last_request=from_micros(last),
    )


def error_from_row(row: Sequence[Any]) -> ErrorRecord:
    time, message, project, endpoint_id, app, error_type = row
    return ErrorRecord(
        project=_text(project), endpoint_id=_text(endpoint_id), application_name=_text(app),
        error_type=_text(error_type), message=_text(message) or "", time=from_micros(time),
    )


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
        identifier(database, f"database name in {masked!r}")
        return cls(
            scheme=parts.scheme, host=parts.hostname, port=port or (6041 if parts.scheme == "taosws" else 6030),
            user=unquote(parts.username or "root"), password=unquote(parts.password or "taosdata"),
            database=database,
        )


class _TaosWsConnection:
    """taos-ws-py (``taosws``): TDengine's WebSocket connector, through taosAdapter."""

    def __init__(self, url: TDengineURL):
        import taosws

        self._conn = taosws.connect(user=url.user, password=url.password, host=url.host, port=url.port)

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


def connect(url: str) -> Connection:
    """Open a connection for a ``taosws://`` or ``taos://`` URL (errors never show the password)."""
    parsed = TDengineURL.parse(url)
    try:
        if parsed.scheme == "taosws":
            return _TaosWsConnection(parsed)
        return _TaosNativeConnection(parsed)
    except TSDBError:
        raise
    except Exception as exc:  # noqa: BLE001 - the connectors raise their own types
        raise TSDBError(f"cannot connect to TDengine at {mask_password(url)}: "
                        f"{mask_password(f'{type(exc).__name__}: {exc}')}") from None


# --------------------------------------------------------------------------------- the TSDB


class TDengineTSDB(TSDB):
    """The TSDB on TDengine.

    :param url:        ``taosws://user:pass@host:port[/database]`` or ``taos://...``; the database
                       defaults to ``streamdrift``.
    :param connection: an open connection to use instead (it must offer ``execute``, ``query``
                       and ``close``); the URL then only names the database.
    """

    def __init__(self, url: str | None = None, *, connection: Connection | None = None,
                 database: str | None = None, max_statement_chars: int = MAX_STATEMENT_CHARS):
        if url is None and connection is None:
            raise ValueError("give a taosws:// or taos:// URL, or a connection")
        self.url = url
        self.masked_url = mask_password(url) if url else "<connection>"
        parsed_db = TDengineURL.parse(url).database if url else DEFAULT_DATABASE
        self.database = identifier(parsed_db if database is None else database, "database name")
        self.max_statement_chars = max_statement_chars
        self._conn = connection

    def __repr__(self) -> str:
        return f"TDengineTSDB({self.masked_url!r}, database={self.database!r})"

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = connect(self.url)
        return self._conn

    def _failed(self, what: str, exc: Exception, sql: str) -> TSDBError:
        """The error to raise; a connection of our own is dropped, so the next call (a retry by
        the writer) opens a fresh one instead of reusing a broken one."""
        if self.url is not None and self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
            self._conn = None
        return TSDBError(f"{what} failed on TDengine {self.masked_url}: "
                         f"{mask_password(f'{type(exc).__name__}: {exc}')} "
                         f"(statement: {sql[:200]}{'...' if len(sql) > 200 else ''})")

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
        self._execute(schema_sql(self.database), "creating the schema")

    def write_results(self, records: Sequence[ResultRecord]) -> int:
        statements = insert_results_sql(self.database, records, max_chars=self.max_statement_chars)
        self._execute(statements, "writing results")
        return len(records)

    def write_metrics(self, records: Sequence[MetricRecord]) -> int:
        statements = insert_metrics_sql(self.database, records, max_chars=self.max_statement_chars)
        self._execute(statements, "writing metrics")
        return len(records)

    def write_predictions(self, records: Sequence[PredictionRecord]) -> int:
        statements = insert_predictions_sql(self.database, records, max_chars=self.max_statement_chars)
        self._execute(statements, "writing predictions")
        return len(records)

    def write_errors(self, records: Sequence[ErrorRecord]) -> int:
        statements = insert_errors_sql(self.database, records, max_chars=self.max_statement_chars)
        self._execute(statements, "writing errors")
        return len(records)

    def query_results(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                      result_name=None) -> list[ResultRecord]:
        sql = query_results_sql(self.database, project, endpoint_id, start, end, application_name, result_name)
        return sort_results(result_from_row(r) for r in self._query(sql, "querying results"))

    def query_metrics(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                      metric_name=None) -> list[MetricRecord]:
        sql = query_metrics_sql(self.database, project, endpoint_id, start, end, application_name, metric_name)
        return sort_metrics(metric_from_row(r) for r in self._query(sql, "querying metrics"))

    def query_predictions(self, project, endpoint_id=None, start=None, end=None) -> list[PredictionRecord]:
        sql = query_predictions_sql(self.database, project, endpoint_id, start, end)
        return sort_predictions(prediction_from_row(r) for r in self._query(sql, "querying predictions"))

    def query_errors(self, project, endpoint_id=None, start=None, end=None, application_name=None,
                     error_type=None) -> list[ErrorRecord]:
        sql = query_errors_sql(self.database, project, endpoint_id, start, end, application_name, error_type)
        return sort_errors(error_from_row(r) for r in self._query(sql, "querying errors"))

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
    "connect", "quote", "literal", "identifier", "subtable_name", "create_database_sql", "create_stable_sql",
    "schema_sql", "insert_sql", "insert_results_sql", "insert_metrics_sql", "insert_predictions_sql",
    "insert_errors_sql", "query_results_sql", "query_metrics_sql", "query_predictions_sql", "query_errors_sql",
    "latest_status_sql", "result_from_row", "metric_from_row", "prediction_from_row", "error_from_row",
    "DEFAULT_DATABASE",
]
