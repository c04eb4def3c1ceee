"""The SQL store: endpoints, latest results and metrics, applications, alerts.

One class, :class:`SqlStore`, on SQLAlchemy 2, for ``mysql+pymysql://user:pass@host:port/db``
(MySQL or MariaDB) and ``sqlite:///path`` (the embedded default) with the same code.

Tables (the schema is created and upgraded by :meth:`SqlStore.create_schema`, never by hand):

``endpoints``          one row per model endpoint: what it is (project, model, function,
                       feature/output/label names), its reference (``feature_stats`` and a
                       bounded sample of the training rows as Parquet bytes), and what was seen
                       (request counts, first/last request, last window, drift status).
``endpoint_windows``   the serving counters of each window of an endpoint, keyed by
                       (endpoint_id, window_end); the totals in ``endpoints`` are derived from it,
                       so replaying a window never counts it twice.
``latest_results``     the newest result per (endpoint_id, application_name, result_name).
``latest_metrics``     the newest metric per (endpoint_id, application_name, metric_name).
``applications``       the monitoring applications of a project (``module:Class`` and params).
``alert_configs``      alert definitions; ``alert_activations`` what fired and when.
``schema_version``     the version of the schema, advanced by the steps in :data:`MIGRATIONS`.

Choices worth knowing:

* Every write is an idempotent upsert (``INSERT ... ON DUPLICATE KEY UPDATE`` on MySQL,
  ``INSERT ... ON CONFLICT DO UPDATE`` on SQLite). A latest result or metric is replaced only by
  one of the same or a later window (``end_infer_time``): replaying an old window does not turn
  the "latest" back.
* JSON and Parquet columns are ``LONGTEXT``/``LONGBLOB`` on MySQL (MySQL ``TEXT`` stops at 64 KB,
  about 200 features of statistics). A row must still fit the server's ``max_allowed_packet``.
* Strings are ``utf8mb4`` with a binary collation that does not pad (``utf8mb4_nopad_bin`` on
  MariaDB, ``utf8mb4_0900_bin`` on MySQL 8): ids compare byte for byte, ``"a"`` and ``"a "`` are
  different endpoints, and any Unicode is stored as given.
* Times are timezone-aware UTC ``datetime`` values with microseconds (``DATETIME(6)`` on MySQL); a
  naive ``datetime`` given to the store is taken as UTC.
* ``endpoints.updated`` changes when an endpoint's definition or reference changes, not when its
  counters move: :meth:`SqlStore.endpoints_version` is a cheap way for the job to notice new or
  changed references.
* Errors from the database are raised as :class:`StoreError` whose message never holds a password
  and whose ``transient`` says whether waiting may heal it (:func:`streamdrift.connectors.errors.is_transient`).
  Transient ones (a lost connection, a server restarting, a lock) are retried with exponential
  backoff (:func:`retrying`) before that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex, CreateTable

from streamdrift.connectors.errors import StoreFailure, backoff_delays, is_transient
from streamdrift.connectors.settings import mask_password
from streamdrift.udfs.records import (
    NAME_LENGTH,
    MetricRecord,
    PredictionRecord,
    ResultRecord,
    check_name,
    utc_from_ms,
    validate_application_name,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

UTC = dt.timezone.utc
ID_LENGTH = 255  # endpoint ids, projects, model/function names, alert names



class StoreError(StoreFailure):
    """The SQL store failed; the message says what and where, with any password masked.

    ``transient`` (:mod:`streamdrift.connectors.errors`) is that of ``original`` unless given."""

    def __init__(self, message: str, original: BaseException | None = None, *, transient: bool | None = None):
        if transient is None:
            transient = original is not None and is_transient(original)
        super().__init__(mask_password(message), transient=transient)
        self.original = original  # kept for debugging, never printed with the message


class NotFoundError(StoreError, KeyError):
    """An endpoint, application or alert that does not exist."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------- validation


def _check_id(value: Any, what: str) -> str:
    """Ids and free names (endpoint id, project, model...): any non-empty text up to 255 characters."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > ID_LENGTH:
        raise ValueError(f"{what} {value[:40]!r}... is {len(value)} characters long: at most {ID_LENGTH}")
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    return value


# --------------------------------------------------------------------------------- column types


class JSONText(sa.types.TypeDecorator):
    """JSON kept as text: ``LONGTEXT`` on MySQL, ``TEXT`` elsewhere. Floats round-trip exactly."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql_dialect.LONGTEXT())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        try:  # orjson: ~4x faster on references (10,000 endpoints' statistics are ~200 MB of JSON)
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # e.g. NaN, which json.dumps writes and orjson refuses
            return json.loads(value)


class LongBlob(sa.types.TypeDecorator):
    """Bytes: ``LONGBLOB`` on MySQL (up to 4 GB), ``BLOB`` elsewhere."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql_dialect.LONGBLOB())
        return dialect.type_descriptor(sa.LargeBinary())


class LongText(sa.types.TypeDecorator):
    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql_dialect.LONGTEXT())
        return dialect.type_descriptor(sa.Text())


class UTCDateTime(sa.types.TypeDecorator):
    """A UTC instant with microseconds; stored naive (``DATETIME(6)`` on MySQL), read back aware."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql_dialect.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite returns text when the column was written by hand
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id_column(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.String(ID_LENGTH), **kw)


def _name_column(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.String(NAME_LENGTH), **kw)


def build_tables(metadata: sa.MetaData, collation: str | None = None) -> dict[str, sa.Table]:
    """Define every table of the schema on ``metadata`` (``collation`` only matters on MySQL)."""
    mysql_kw: dict[str, str] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}
    if collation:
        mysql_kw["mysql_collate"] = collation
    t: dict[str, sa.Table] = {}
    t["schema_version"] = sa.Table(
        "schema_version", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["endpoints"] = sa.Table(
        "endpoints", metadata,
        _id_column("endpoint_id", primary_key=True),
        _id_column("project", nullable=False, index=True),
        _id_column("model_name", nullable=False),
        _id_column("model_version"),
        _id_column("function_name"),
        _id_column("function_tag"),
        sa.Column("feature_names", JSONText, nullable=False),
        sa.Column("output_names", JSONText, nullable=False),
        sa.Column("label_names", JSONText, nullable=False),
        sa.Column("feature_stats", JSONText, nullable=False),
        sa.Column("reference_sample", LongBlob),
        sa.Column("reference_rows", sa.BigInteger),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False, index=True),
        sa.Column("first_request", UTCDateTime),
        sa.Column("last_request", UTCDateTime),
        sa.Column("rows_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("events_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("error_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("late_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("last_window_end", UTCDateTime),
        sa.Column("drift_status", sa.Integer),
        sa.Column("drift_measure", sa.Float),
        sa.Column("monitoring_mode", sa.String(16), nullable=False, default="enabled"),
        **mysql_kw,
    )
    t["endpoint_windows"] = sa.Table(
        "endpoint_windows", metadata,
        _id_column("endpoint_id", primary_key=True),
        sa.Column("window_end", UTCDateTime, primary_key=True),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("rows_count", sa.BigInteger, nullable=False),
        sa.Column("events_count", sa.BigInteger, nullable=False),
        sa.Column("error_count", sa.BigInteger, nullable=False),
        sa.Column("late_count", sa.BigInteger, nullable=False),
        sa.Column("first_request", UTCDateTime),
        sa.Column("last_request", UTCDateTime),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["latest_results"] = sa.Table(
        "latest_results", metadata,
        _id_column("endpoint_id", primary_key=True),
        _name_column("application_name", primary_key=True),
        _name_column("result_name", primary_key=True),
        _id_column("project", nullable=False),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("extra_data", JSONText, nullable=False),
        sa.Column("start_infer_time", UTCDateTime, nullable=False),
        sa.Column("end_infer_time", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["latest_metrics"] = sa.Table(
        "latest_metrics", metadata,
        _id_column("endpoint_id", primary_key=True),
        _name_column("application_name", primary_key=True),
        _name_column("metric_name", primary_key=True),
        _id_column("project", nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("start_infer_time", UTCDateTime, nullable=False),
        sa.Column("end_infer_time", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["applications"] = sa.Table(
        "applications", metadata,
        _id_column("project", primary_key=True),
        _name_column("name", primary_key=True),
        sa.Column("class_path", sa.String(1024), nullable=False),
        sa.Column("params", JSONText, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["alert_configs"] = sa.Table(
        "alert_configs", metadata,
        _id_column("project", primary_key=True),
        _id_column("name", primary_key=True),
        sa.Column("summary", LongText, nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("entities", JSONText, nullable=False),
        sa.Column("trigger_kinds", JSONText, nullable=False),
        sa.Column("criteria", JSONText, nullable=False),
        sa.Column("reset_policy", sa.String(32), nullable=False),
        sa.Column("notifications", JSONText, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    t["alert_activations"] = sa.Table(
        "alert_activations", metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        _id_column("project", nullable=False),
        _id_column("alert_name", nullable=False),
        sa.Column("activated_at", UTCDateTime, nullable=False),
        sa.Column("entity", sa.String(1024), nullable=False),
        sa.Column("event_kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("summary", LongText, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("window_end", UTCDateTime),
        sa.Column("notified", JSONText, nullable=False),
        sa.Column("reset_at", UTCDateTime),
        sa.Index("ix_alert_activations_project_alert", "project", "alert_name", "activated_at"),
        **mysql_kw,
    )
    t["endpoint_problems"] = sa.Table(
        "endpoint_problems", metadata,
        _id_column("endpoint_id", primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        _id_column("project", nullable=False),
        sa.Column("message", LongText, nullable=False),
        sa.Column("occurrences", sa.BigInteger, nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        **mysql_kw,
    )
    return t


# --------------------------------------------------------------------------------- migrations


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    description: str
    tables: tuple[str, ...]  # tables this step creates (idempotently)
    apply: Callable[[sa.Connection, dict[str, sa.Table]], None] | None = None  # anything else


#: Schema steps, applied in order by :meth:`SqlStore.create_schema`. Append, never edit a step
#: that has shipped: a database at version N runs only the steps after N.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "endpoints, their window counters, latest results and metrics",
              ("endpoints", "endpoint_windows", "latest_results", "latest_metrics")),
    Migration(2, "monitoring applications registry", ("applications",)),
    Migration(3, "alert configurations and activations", ("alert_configs", "alert_activations")),
    Migration(4, "the last problem of each kind per endpoint (a store that refused a window, ...)",
              ("endpoint_problems",)),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


# --------------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class ModelEndpoint:
    """An endpoint as the SQL store holds it (the reference sample is read apart)."""

    endpoint_id: str
    project: str
    model_name: str
    model_version: str | None
    function_name: str | None
    function_tag: str | None
    feature_names: list[str]
    output_names: list[str]
    label_names: list[str]
    feature_stats: dict[str, Any]
    reference_rows: int | None
    has_reference_sample: bool
    created: dt.datetime
    updated: dt.datetime
    first_request: dt.datetime | None
    last_request: dt.datetime | None
    rows_count: int
    events_count: int
    error_count: int
    late_count: int
    last_window_end: dt.datetime | None
    drift_status: int | None
    drift_measure: float | None
    monitoring_mode: str

    # a mapping too: dict(endpoint) gives the fields with their Python values
    def keys(self) -> list[str]:
        return list(_ENDPOINT_FIELDS)

    def __getitem__(self, key: str) -> Any:
        if key not in _ENDPOINT_FIELD_SET:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self, with_stats: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 strings)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "feature_stats" and not with_stats:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


_ENDPOINT_FIELDS = tuple(f.name for f in dataclasses.fields(ModelEndpoint))
_ENDPOINT_FIELD_SET = frozenset(_ENDPOINT_FIELDS)


@dataclasses.dataclass(frozen=True)
class Application:
    project: str
    name: str
    class_path: str
    params: dict[str, Any]
    enabled: bool
    created: dt.datetime
    updated: dt.datetime


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    project: str
    name: str
    summary: str
    severity: str
    entities: Any
    trigger_kinds: list[str]
    criteria: dict[str, Any]
    reset_policy: str
    notifications: list[Any]
    state: str
    created: dt.datetime
    updated: dt.datetime


@dataclasses.dataclass(frozen=True)
class AlertActivation:
    id: int
    project: str
    alert_name: str
    activated_at: dt.datetime
    entity: str
    event_kind: str
    severity: str
    summary: str
    value: float | None
    window_end: dt.datetime | None
    notified: Any
    reset_at: dt.datetime | None


# --------------------------------------------------------------------------------- retries


def retrying(
    fn: Callable[[], T],
    attempts: int = 5,
    backoff: float = 0.5,
    *,
    max_backoff: float = 30.0,
    retry_if: Callable[[BaseException], bool] = is_transient,
    what: str = "SQL store operation",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn()``; when it raises an error for which ``retry_if`` is true (default
    :func:`is_transient`), wait ``backoff * 2**i`` seconds (at most ``max_backoff``) and call it
    again; after ``attempts`` calls raise :class:`StoreError`.

    A :class:`SQLAlchemyError` that is not retried is raised as a :class:`StoreError` (password
    masked, statement and parameters left out); any other exception is raised as it is.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    delays = backoff_delays(backoff, max_backoff)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below
            if not retry_if(exc):
                if isinstance(exc, SQLAlchemyError):
                    raise StoreError(f"{what} failed: {_describe(exc)}", exc) from None
                raise
            if attempt == attempts:
                raise StoreError(f"{what} failed after {attempts} attempt(s): {_describe(exc)}", exc) from None
            wait = next(delays)
            log.warning("%s failed (attempt %d of %d), retrying in %.2fs: %s",
                        what, attempt, attempts, wait, _describe(exc))
            sleep(wait)
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's statement and parameters (which can be
    megabytes of statistics), at most 500 characters."""
    orig = getattr(exc, "orig", None)
    text = f"{type(orig).__name__}: {orig}" if orig is not None else f"{type(exc).__name__}: {exc}"
    text = mask_password(text)
    return text if len(text) <= 500 else text[:497] + "..."


# --------------------------------------------------------------------------------- the store


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _finite(value: float | None) -> float | None:
    """NaN and infinities are not stored (MySQL refuses them, SQLite turns NaN into NULL)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class SqlStore:
    """Endpoints, latest results and metrics, applications and alerts in one SQL database.

    :param url:      SQLAlchemy URL, ``mysql+pymysql://user:pass@host:port/db`` or ``sqlite:///path``
                     (the parent folder of a SQLite file is created).
    :param attempts: calls per operation on transient errors (lost connection, server down).
    :param backoff:  first wait between attempts, doubled each time (at most 30 s).
    """

    def __init__(self, url: str, *, attempts: int = 4, backoff: float = 0.25, echo: bool = False):
        self.url = str(url)
        self.masked_url = mask_password(self.url)
        self.attempts = attempts
        self.backoff = backoff
        try:
            parsed = make_url(self.url)
        except Exception:  # noqa: BLE001 - SQLAlchemy raises several kinds; none may echo the URL
            raise StoreError(f"not a valid SQLAlchemy URL: {self.masked_url!r}; "
                             "expected mysql+pymysql://user:pass@host:port/db or sqlite:///path") from None
        kw: dict[str, Any] = {"pool_pre_ping": True, "echo": echo}
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            else:
                kw["poolclass"] = StaticPool
            kw["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif backend == "mysql":
            kw["pool_recycle"] = 3600
            if "charset" not in parsed.query:
                kw["connect_args"] = {"charset": "utf8mb4", "connect_timeout": 10}
        else:
            raise StoreError(f"unsupported SQL store {self.masked_url!r}: use mysql+pymysql:// or sqlite:///")
        self.backend = backend
        try:
            self.engine = sa.create_engine(parsed, **kw)
        except Exception as exc:  # noqa: BLE001 - e.g. the driver is not installed
            raise StoreError(f"cannot open the SQL store {self.masked_url!r}: {_describe(exc)}", exc) from None
        if backend == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
        self.tables = build_tables(sa.MetaData())
        self._t = self.tables
        self._upserts: dict[tuple, Any] = {}

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        return f"SqlStore({self.masked_url!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, what: str, fn: Callable[[sa.Connection], T], *, write: bool = True) -> T:
        """Run ``fn(conn)`` in one transaction, retried on transient errors."""

        def once() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return retrying(once, self.attempts, self.backoff, what=f"{what} on {self.masked_url}")

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]],
                update: Sequence[str], *, newer_only: str | None = None) -> None:
        """Insert ``rows``; on a primary-key clash update the ``update`` columns.

        With ``newer_only`` (a time column), an existing row is updated only when the incoming
        value of that column is the same or later.
        """
        if not rows:
            return
        key = (table.name, tuple(update), newer_only)
        stmt = self._upserts.get(key)
        if stmt is None:  # built once: building the statement cost as much as running it (SQLite)
            stmt = self._upserts[key] = self._upsert_statement(table, update, newer_only)
        conn.execute(stmt, rows)

    def _upsert_statement(self, table: sa.Table, update: Sequence[str], newer_only: str | None):
        keys = [c.name for c in table.primary_key.columns]
        if self.backend == "mysql":
            stmt = mysql_dialect.insert(table)
            if newer_only is None:
                sets = [(c, stmt.inserted[c]) for c in update]
            else:
                newer = stmt.inserted[newer_only] >= table.c[newer_only]
                # MySQL assigns left to right: the time column that the condition reads goes last
                cols = [c for c in update if c != newer_only] + [newer_only]
                sets = [(c, sa.case((newer, stmt.inserted[c]), else_=table.c[c])) for c in cols]
            stmt = stmt.on_duplicate_key_update(sets)
        else:
            stmt = sqlite_dialect.insert(table)
            where = None if newer_only is None else stmt.excluded[newer_only] >= table.c[newer_only]
            stmt = stmt.on_conflict_do_update(
                index_elements=keys, set_={c: stmt.excluded[c] for c in update}, where=where)
        return stmt

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int:
        """The schema version of the database (0 when it has none yet)."""

        def read(conn: sa.Connection) -> int:
            return self._read_version(conn)

        return self._run("reading the schema version", read)

    def _read_version(self, conn: sa.Connection) -> int:
        if not sa.inspect(conn).has_table("schema_version"):
            return 0
        t = self._t["schema_version"]
        return int(conn.execute(sa.select(sa.func.max(t.c.version))).scalar() or 0)

    def create_schema(self, target_version: int | None = None) -> int:
        """Create the tables or bring them up to date; return the schema version reached.

        Applies, in order, the steps of :data:`MIGRATIONS` that are newer than the database's
        version (up to ``target_version``, default the newest). Safe to call at every start and
        from several processes at once: each step is idempotent (``CREATE TABLE IF NOT EXISTS``).
        """
        target = SCHEMA_VERSION if target_version is None else target_version
        if not 0 <= target <= SCHEMA_VERSION:
            raise ValueError(f"target_version must be from 0 to {SCHEMA_VERSION}, got {target_version}")

        def migrate(conn: sa.Connection) -> int:
            ddl_tables = build_tables(sa.MetaData(), self._collation(conn))
            _create_table(conn, ddl_tables["schema_version"])
            current = self._read_version(conn)
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the SQL store {self.masked_url} has schema version {current}, newer than this "
                    f"streamdrift knows ({SCHEMA_VERSION}): upgrade streamdrift")
            for step in MIGRATIONS:
                if current < step.version <= target:
                    log.info("SQL store %s: schema step %d (%s)", self.masked_url, step.version, step.description)
                    for name in step.tables:
                        _create_table(conn, ddl_tables[name])
                    if step.apply is not None:
                        step.apply(conn, ddl_tables)
                    self._upsert(conn, self._t["schema_version"],
                                 [{"id": 1, "version": step.version, "updated": _now()}], ["version", "updated"])
                    current = step.version
            return current

        return self._run("creating the schema", migrate)

    def _collation(self, conn: sa.Connection) -> str | None:
        if self.backend != "mysql":
            return None
        available = {row[0] for row in conn.execute(sa.text(
            "SHOW COLLATION WHERE Collation IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin', 'utf8mb4_bin')"))}
        for name in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin"):
            if name in available:
                return name
        return None

    # ------------------------------------------------------------------ endpoints

    def upsert_endpoint(
        self,
        endpoint_id: str,
        *,
        project: str,
        model_name: str,
        model_version: str | None = None,
        function_name: str | None = None,
        function_tag: str | None = None,
        feature_names: Sequence[str] = (),
        output_names: Sequence[str] = (),
        label_names: Sequence[str] = (),
        feature_stats: dict[str, Any] | None = None,
        reference_sample: bytes | None = None,
        reference_rows: int | None = None,
        monitoring_mode: str = "enabled",
    ) -> ModelEndpoint:
        """Create the endpoint or replace its definition and reference; return it as stored.

        The counters, request times and drift status of an existing endpoint are kept; the totals
        are (re)derived from the window counters already stored for this id.
        """
        rows, update = self._endpoint_rows([dict(
            endpoint_id=endpoint_id, project=project, model_name=model_name, model_version=model_version,
            function_name=function_name, function_tag=function_tag, feature_names=feature_names,
            output_names=output_names, label_names=label_names, feature_stats=feature_stats,
            reference_sample=reference_sample, reference_rows=reference_rows, monitoring_mode=monitoring_mode)])

        def write(conn: sa.Connection) -> ModelEndpoint:
            self._upsert(conn, self._t["endpoints"], rows, update)
            self._refresh_totals(conn, endpoint_id)
            return self._get_endpoint(conn, endpoint_id)

        return self._run(f"writing endpoint {endpoint_id!r}", write)

    def upsert_endpoints(self, endpoints: Sequence[Mapping[str, Any]], chunk: int = 500) -> int:
        """Create or replace many endpoints (each a mapping of :meth:`upsert_endpoint`'s arguments,
        ``endpoint_id`` included), ``chunk`` at a time, each chunk in one transaction with one
        multi-row upsert and one set-based refresh of the totals; returns the number written.

        Every endpoint is checked before anything is written (ValueError naming the first bad one);
        a later id given twice replaces the earlier one. Registering 10,000 endpoints one by one
        with :meth:`upsert_endpoint` costs one transaction and four statements each."""
        rows, update = self._endpoint_rows(endpoints)
        for lo in range(0, len(rows), chunk):
            part = rows[lo:lo + chunk]

            def write(conn: sa.Connection, part=part) -> None:
                self._upsert(conn, self._t["endpoints"], part, update)
                self._refresh_totals_many(conn, [r["endpoint_id"] for r in part])

            self._run(f"writing endpoints {lo + 1}-{lo + len(part)} of {len(rows)}", write)
        return len(rows)

    def _endpoint_rows(self, endpoints: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Checked rows of the ``endpoints`` table (new endpoints' counters at zero) and the columns
        an existing endpoint's row takes from them."""
        now = _now()
        rows: dict[str, dict[str, Any]] = {}
        for e in endpoints:
            def opt(name: str, what: str):
                value = e.get(name)
                return None if value is None else _check_id(value, what)

            row = {
                "endpoint_id": _check_id(e["endpoint_id"], "endpoint id"),
                "project": _check_id(e["project"], "project"),
                "model_name": _check_id(e["model_name"], "model name"),
                "model_version": opt("model_version", "model version"),
                "function_name": opt("function_name", "function name"),
                "function_tag": opt("function_tag", "function tag"),
                "feature_names": _str_list(e.get("feature_names", ()), "feature_names"),
                "output_names": _str_list(e.get("output_names", ()), "output_names"),
                "label_names": _str_list(e.get("label_names", ()), "label_names"),
                "feature_stats": dict(e.get("feature_stats") or {}),
                "reference_sample": e.get("reference_sample"),
                "reference_rows": e.get("reference_rows"),
                "monitoring_mode": _check_mode(e.get("monitoring_mode", "enabled")),
            }
            rows[row["endpoint_id"]] = dict(row, created=now, updated=now, rows_count=0, events_count=0,
                                            error_count=0, late_count=0)
        update = [c for c in row if c != "endpoint_id"] + ["updated"] if rows else []
        return list(rows.values()), update

    def _refresh_totals_many(self, conn: sa.Connection, endpoint_ids: Sequence[str]) -> None:
        """:meth:`_refresh_totals` of many endpoints in one statement (correlated sub-queries)."""
        if not endpoint_ids:
            return
        w, t = self._t["endpoint_windows"], self._t["endpoints"]

        def over_windows(expr):
            return sa.select(expr).where(w.c.endpoint_id == t.c.endpoint_id).scalar_subquery()

        conn.execute(sa.update(t).where(t.c.endpoint_id.in_(list(endpoint_ids))).values(
            rows_count=over_windows(sa.func.coalesce(sa.func.sum(w.c.rows_count), 0)),
            events_count=over_windows(sa.func.coalesce(sa.func.sum(w.c.events_count), 0)),
            error_count=over_windows(sa.func.coalesce(sa.func.sum(w.c.error_count), 0)),
            late_count=over_windows(sa.func.coalesce(sa.func.sum(w.c.late_count), 0)),
            first_request=over_windows(sa.func.min(w.c.first_request)),
            last_request=over_windows(sa.func.max(w.c.last_request)),
            last_window_end=over_windows(sa.func.max(w.c.window_end))))

    def update_reference(
        self,
        endpoint_id: str,
        feature_stats: dict[str, Any],
        *,
        reference_sample: bytes | None = None,
        reference_rows: int | None = None,
        feature_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> ModelEndpoint:
        """Replace an endpoint's reference statistics (and sample, and names when given).

        Raises :class:`NotFoundError` when the endpoint does not exist.
        """
        values: dict[str, Any] = {
            "feature_stats": dict(feature_stats),
            "reference_sample": reference_sample,
            "reference_rows": reference_rows,
            "updated": _now(),
        }
        for key, names in (("feature_names", feature_names), ("output_names", output_names),
                           ("label_names", label_names)):
            if names is not None:
                values[key] = _str_list(names, key)
        t = self._t["endpoints"]

        def write(conn: sa.Connection) -> ModelEndpoint:
            done = conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id).values(**values))
            if done.rowcount == 0:
                raise NotFoundError(f"no endpoint {endpoint_id!r} in the SQL store {self.masked_url}")
            return self._get_endpoint(conn, endpoint_id)

        return self._run(f"updating the reference of endpoint {endpoint_id!r}", write)

    def set_monitoring_mode(self, endpoint_id: str, mode: str) -> None:
        t = self._t["endpoints"]
        mode = _check_mode(mode)

        def write(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id)
                                .values(monitoring_mode=mode, updated=_now()))
            if done.rowcount == 0:
                raise NotFoundError(f"no endpoint {endpoint_id!r} in the SQL store {self.masked_url}")

        self._run(f"setting the monitoring mode of {endpoint_id!r}", write)

    def set_drift_status(self, endpoint_id: str, drift_status: int | None, drift_measure: float | None) -> bool:
        """Record the endpoint's current drift status and measure; False when it does not exist."""
        t = self._t["endpoints"]

        def write(conn: sa.Connection) -> bool:
            done = conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id).values(
                drift_status=None if drift_status is None else int(drift_status),
                drift_measure=_finite(drift_measure)))
            return done.rowcount > 0

        return self._run(f"setting the drift status of {endpoint_id!r}", write)

    def _drift_status_writer(self, endpoint_ids: list[str], verdict: tuple[str, str]):
        """Each endpoint's drift status and measure from its latest verdict result (``latest_results``
        keeps the newest window's), to run in a transaction after the latest results are written."""
        t, latest = self._t["endpoints"], self._t["latest_results"]

        def write(conn: sa.Connection) -> None:
            rows = conn.execute(sa.select(latest.c.endpoint_id, latest.c.status, latest.c.value).where(
                latest.c.endpoint_id.in_(endpoint_ids), latest.c.application_name == verdict[0],
                latest.c.result_name == verdict[1])).all()
            for endpoint_id, status, value in rows:
                conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id).values(
                    drift_status=int(status), drift_measure=_finite(value)))

        return write

    def get_endpoint(self, endpoint_id: str) -> ModelEndpoint | None:
        """The endpoint, or None when there is none with this id."""
        return self._run(f"reading endpoint {endpoint_id!r}", lambda conn: self._get_endpoint(conn, endpoint_id))

    def _endpoint_columns(self, with_stats: bool = True) -> list:
        t = self._t["endpoints"]
        cols = [c for c in t.c if c.name != "reference_sample" and (with_stats or c.name != "feature_stats")]
        return cols + [(t.c.reference_sample.is_not(None)).label("has_reference_sample")]

    def _get_endpoint(self, conn: sa.Connection, endpoint_id: str) -> ModelEndpoint | None:
        t = self._t["endpoints"]
        row = conn.execute(sa.select(*self._endpoint_columns()).where(t.c.endpoint_id == endpoint_id)).mappings().first()
        return None if row is None else _endpoint_from_row(row)

    def get_reference_sample(self, endpoint_id: str) -> bytes | None:
        """The stored sample of the reference rows (Parquet bytes), None when there is none."""
        t = self._t["endpoints"]
        return self._run(f"reading the reference sample of {endpoint_id!r}", lambda conn: conn.execute(
            sa.select(t.c.reference_sample).where(t.c.endpoint_id == endpoint_id)).scalar())

    def list_endpoints(self, project: str | None = None, *, with_stats: bool = True) -> list[ModelEndpoint]:
        """Endpoints of ``project`` (all projects when None), by project, model, version and id.

        ``with_stats=False`` leaves ``feature_stats`` empty (cheaper for long lists).
        """
        t = self._t["endpoints"]
        query = sa.select(*self._endpoint_columns(with_stats)).order_by(
            t.c.project, t.c.model_name, t.c.model_version, t.c.endpoint_id)
        if project is not None:
            query = query.where(t.c.project == project)

        def read(conn: sa.Connection) -> list[ModelEndpoint]:
            return [_endpoint_from_row(r) for r in conn.execute(query).mappings()]

        return self._run("listing endpoints", read)

    def delete_endpoint(self, endpoint_id: str) -> bool:
        """Delete the endpoint with its window counters and latest results and metrics.

        Returns False when there was no such endpoint (nothing else is left behind either way).
        """

        def write(conn: sa.Connection) -> bool:
            for name in ("latest_results", "latest_metrics", "endpoint_windows", "endpoint_problems"):
                t = self._t[name]
                conn.execute(sa.delete(t).where(t.c.endpoint_id == endpoint_id))
            t = self._t["endpoints"]
            return conn.execute(sa.delete(t).where(t.c.endpoint_id == endpoint_id)).rowcount > 0

        return self._run(f"deleting endpoint {endpoint_id!r}", write)

    def endpoints_version(self) -> tuple[int, dt.datetime | None]:
        """``(number of endpoints, newest 'updated')``: changes whenever an endpoint is created,
        deleted, or its definition or reference changes. One cheap query, for polling."""
        t = self._t["endpoints"]

        def read(conn: sa.Connection):
            count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(t.c.updated))).one()
            return int(count), UTCDateTime().process_result_value(newest, None)

        return self._run("reading the endpoints version", read)

    def endpoints_changed_since(self, since: dt.datetime | None, project: str | None = None,
                                inclusive: bool = False) -> list[ModelEndpoint]:
        """Endpoints created or changed (definition, reference, mode) after ``since`` (at or after
        with ``inclusive``; all if None)."""
        t = self._t["endpoints"]
        query = sa.select(*self._endpoint_columns()).order_by(t.c.updated, t.c.endpoint_id)
        if since is not None:
            query = query.where(t.c.updated >= since if inclusive else t.c.updated > since)
        if project is not None:
            query = query.where(t.c.project == project)
        return self._run("listing changed endpoints",
                         lambda conn: [_endpoint_from_row(r) for r in conn.execute(query).mappings()])

    def endpoint_ids(self) -> list[str]:
        """The ids of every endpoint (cheap: no reference read)."""
        t = self._t["endpoints"]
        return self._run("listing endpoint ids", lambda conn: [r[0] for r in conn.execute(sa.select(t.c.endpoint_id))])

    # ------------------------------------------------------------------ window counters

    def _window_counters_writer(self, predictions: Sequence[PredictionRecord], late: int | None = None):
        """The write of :meth:`add_window_counters` for the windows of ``predictions`` (any
        endpoints), to run in a transaction (checked now): one multi-row upsert, then each
        endpoint's totals refreshed once."""
        now = _now()
        rows: dict[tuple[str, dt.datetime], dict[str, Any]] = {}  # the last given of a window wins
        for prediction in predictions:
            endpoint_id = _check_id(prediction.endpoint_id, "endpoint id")
            rows[(endpoint_id, prediction.end_infer_time)] = {
                "endpoint_id": endpoint_id,
                "window_end": prediction.end_infer_time,
                "window_start": prediction.start_infer_time,
                "rows_count": int(prediction.count),
                "events_count": int(prediction.events),
                "error_count": int(prediction.error_count),
                "late_count": 0 if late is None else int(late),
                "first_request": prediction.first_request,
                "last_request": prediction.last_request,
                "updated": now,
            }
        update = ["window_start", "rows_count", "events_count", "error_count", "first_request", "last_request",
                  "updated"] + (["late_count"] if late is not None else [])
        endpoints = list(dict.fromkeys(endpoint_id for endpoint_id, _ in rows))

        def write(conn: sa.Connection) -> dict[str, dict[str, Any]]:
            self._upsert(conn, self._t["endpoint_windows"], list(rows.values()), update)
            return {endpoint_id: self._refresh_totals(conn, endpoint_id) for endpoint_id in endpoints}

        return write

    def add_window_counters(self, endpoint_id: str, prediction: PredictionRecord,
                            late: int | None = None) -> dict[str, Any]:
        """Record one window's serving counters and refresh the endpoint's totals from all windows.

        Keyed by (endpoint_id, window end): writing the same window again replaces its counters
        rather than adding them, so a replay or a late-data revision never double-counts. ``late``
        sets the window's late-row count; None keeps what :meth:`add_late_rows` recorded. The
        endpoint's ``rows_count``, ``events_count``, ``error_count``, ``late_count`` are the sums
        over its windows, ``first_request``/``last_request`` the min/max, ``last_window_end`` the
        newest window end; all in the same transaction. Returns those totals. Counters of an
        endpoint that is not registered yet are kept and counted when it is.
        """
        _check_id(endpoint_id, "endpoint id")
        if prediction.endpoint_id != endpoint_id:
            raise ValueError(f"the prediction record is for endpoint {prediction.endpoint_id!r}, not {endpoint_id!r}")
        write = self._window_counters_writer([prediction], late)
        return self._run(f"adding window counters of {endpoint_id!r}", lambda conn: write(conn)[endpoint_id])

    def record_window(self, results: Iterable[ResultRecord], metrics: Iterable[MetricRecord],
                      prediction: PredictionRecord | Iterable[PredictionRecord] | None,
                      verdict: tuple[str, str] | None = None) -> None:
        """What the job writes per window, or per batch of windows, in one transaction: the
        latest results and metrics (:meth:`upsert_latest_results`, :meth:`upsert_latest_metrics`)
        and the windows' counters (:meth:`add_window_counters`).

        ``results``, ``metrics`` and ``prediction`` (one record, several, or None) may hold the
        records of many windows and endpoints: each table gets one multi-row upsert (PyMySQL
        sends it as one ``INSERT ... VALUES (...), (...)``), the newest window of a series wins
        whatever the order, and each endpoint's totals are refreshed once.

        ``verdict``: (application, result name) of the result that is an endpoint's drift verdict;
        each endpoint with such a result among ``results`` gets the status and value of its latest
        one as ``drift_status`` and ``drift_measure``."""
        results = list(results)
        if prediction is None:
            predictions: list[PredictionRecord] = []
        elif isinstance(prediction, PredictionRecord):
            predictions = [prediction]
        else:
            predictions = list(prediction)
        steps = [self._latest_writer("latest_results", results), self._latest_writer("latest_metrics", metrics)]
        if predictions:
            steps.append(self._window_counters_writer(predictions))
        if verdict is not None:
            judged = sorted({r.endpoint_id for r in results if (r.application_name, r.result_name) == verdict})
            if judged:
                steps.append(self._drift_status_writer(judged, verdict))

        def write(conn: sa.Connection) -> None:
            for step in steps:
                step(conn)

        self._run("recording a window", write)

    def add_late_rows(self, endpoint_id: str, window_end: dt.datetime | int, late_rows: int) -> dict[str, Any]:
        """Add rows that came after the window's allowed lateness to its late count (``window_end``
        a datetime or epoch milliseconds); returns the endpoint's totals.

        Additive, unlike :meth:`add_window_counters`: the same late rows given twice count twice.
        """
        _check_id(endpoint_id, "endpoint id")
        if isinstance(window_end, (int, float)) and not isinstance(window_end, bool):
            window_end = utc_from_ms(window_end)
        late_rows = int(late_rows)
        if late_rows < 0:
            raise ValueError(f"late_rows must be >= 0, got {late_rows}")
        w = self._t["endpoint_windows"]
        row = {"endpoint_id": endpoint_id, "window_end": window_end, "window_start": window_end, "rows_count": 0,
               "events_count": 0, "error_count": 0, "late_count": late_rows, "updated": _now()}

        def write(conn: sa.Connection) -> dict[str, Any]:
            done = conn.execute(sa.update(w).where(w.c.endpoint_id == endpoint_id, w.c.window_end == window_end)
                                .values(late_count=w.c.late_count + late_rows, updated=row["updated"]))
            if done.rowcount == 0:  # the window's counters are not stored (yet): start its row
                conn.execute(sa.insert(w).values(**row))
            return self._refresh_totals(conn, endpoint_id)

        return self._run(f"adding late rows of {endpoint_id!r}", write)

    @functools.cached_property
    def _totals_statements(self) -> tuple[sa.Select, sa.Update]:
        """The endpoint's totals over its windows, and their update (built once; ``eid`` binds the endpoint)."""
        w, t = self._t["endpoint_windows"], self._t["endpoints"]
        eid = sa.bindparam("eid")
        select = sa.select(
            sa.func.coalesce(sa.func.sum(w.c.rows_count), 0),
            sa.func.coalesce(sa.func.sum(w.c.events_count), 0),
            sa.func.coalesce(sa.func.sum(w.c.error_count), 0),
            sa.func.coalesce(sa.func.sum(w.c.late_count), 0),
            sa.func.min(w.c.first_request),
            sa.func.max(w.c.last_request),
            sa.func.max(w.c.window_end),
        ).where(w.c.endpoint_id == eid)
        return select, sa.update(t).where(t.c.endpoint_id == eid)

    def _refresh_totals(self, conn: sa.Connection, endpoint_id: str) -> dict[str, Any]:
        select, update = self._totals_statements
        sums = conn.execute(select, {"eid": endpoint_id}).one()
        as_time = UTCDateTime().process_result_value
        totals = {
            "rows_count": int(sums[0]), "events_count": int(sums[1]), "error_count": int(sums[2]),
            "late_count": int(sums[3]), "first_request": as_time(sums[4], None),
            "last_request": as_time(sums[5], None), "last_window_end": as_time(sums[6], None),
        }
        conn.execute(update, {"eid": endpoint_id, **totals})
        return totals

    # ------------------------------------------------------------------ problems

    def record_problem(self, project: str, endpoint_id: str, kind: str, message: str) -> None:
        """Note that ``kind`` of problem happened to an endpoint (e.g. ``store-write-failed``):
        its message and time replace the last ones, its occurrences grow by one."""
        _check_id(project, "project")
        _check_id(endpoint_id, "endpoint id")
        t, now = self._t["endpoint_problems"], _now()
        message = mask_password(str(message))[:4000]

        def write(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(t).where(t.c.endpoint_id == endpoint_id, t.c.kind == kind)
                                .values(message=message, last_seen=now, occurrences=t.c.occurrences + 1))
            if done.rowcount == 0:
                conn.execute(sa.insert(t).values(endpoint_id=endpoint_id, kind=kind, project=project,
                                                 message=message, occurrences=1, first_seen=now, last_seen=now))

        self._run(f"recording a problem of {endpoint_id!r}", write)

    def problems(self, endpoint_id: str | None = None, project: str | None = None) -> list[dict[str, Any]]:
        """The problems recorded (:meth:`record_problem`), newest first: dicts of endpoint_id, kind,
        project, message, occurrences, first_seen, last_seen."""
        t = self._t["endpoint_problems"]
        query = sa.select(t).order_by(t.c.last_seen.desc())
        if endpoint_id is not None:
            query = query.where(t.c.endpoint_id == endpoint_id)
        if project is not None:
            query = query.where(t.c.project == project)
        return self._run("reading problems", lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    def clear_problem(self, endpoint_id: str, kind: str) -> bool:
        """Forget a problem (fixed); True when there was one."""
        t = self._t["endpoint_problems"]
        return self._run(f"clearing a problem of {endpoint_id!r}", lambda conn: conn.execute(
            sa.delete(t).where(t.c.endpoint_id == endpoint_id, t.c.kind == kind)).rowcount > 0)

    def window_counters(self, endpoint_id: str) -> list[dict[str, Any]]:
        """The stored counters of each window of an endpoint, oldest first."""
        w = self._t["endpoint_windows"]
        query = sa.select(w).where(w.c.endpoint_id == endpoint_id).order_by(w.c.window_end)
        return self._run(f"reading window counters of {endpoint_id!r}",
                         lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    # ------------------------------------------------------------------ latest results and metrics

    def upsert_latest_results(self, results: Iterable[ResultRecord]) -> int:
        """Keep each result as the latest of its (endpoint, application, name) unless a later window
        is already stored. Returns the number of records given."""
        results = list(results)
        self._run("writing latest results", self._latest_writer("latest_results", results))
        return len(results)

    def upsert_latest_metrics(self, metrics: Iterable[MetricRecord]) -> int:
        """As :meth:`upsert_latest_results`, for metrics."""
        metrics = list(metrics)
        self._run("writing latest metrics", self._latest_writer("latest_metrics", metrics))
        return len(metrics)

    def _latest_writer(self, table: str, records: Iterable[ResultRecord] | Iterable[MetricRecord]):
        """The upsert of :meth:`upsert_latest_results` (``latest_results``) or of
        :meth:`upsert_latest_metrics` (``latest_metrics``), to run in a transaction (checked now)."""
        now = _now()
        rows = []
        for r in records:
            row = {
                "endpoint_id": _check_id(r.endpoint_id, "endpoint id"),
                "application_name": validate_application_name(r.application_name),
                "project": _check_id(r.project, "project"),
                "value": _finite(r.value),
                "start_infer_time": r.start_infer_time, "end_infer_time": r.end_infer_time, "updated": now,
            }
            if table == "latest_results":
                row.update(result_name=check_name(r.result_name, "result name"), kind=int(r.kind),
                           status=int(r.status), extra_data=dict(r.extra_data or {}))
            else:
                row.update(metric_name=check_name(r.metric_name, "metric name"))
            rows.append(row)
        update = ["project", "value", "start_infer_time", "end_infer_time", "updated"]
        if table == "latest_results":
            update += ["kind", "status", "extra_data"]
        name = "result_name" if table == "latest_results" else "metric_name"
        newest: dict[tuple, dict[str, Any]] = {}  # per key the newest window; of equal ones the last given
        for row in rows:
            key = (row["endpoint_id"], row["application_name"], row[name])
            if key not in newest or row["end_infer_time"] >= newest[key]["end_infer_time"]:
                newest[key] = row
        rows = list(newest.values())

        def write(conn: sa.Connection) -> None:
            if rows:
                self._upsert(conn, self._t[table], rows, update, newer_only="end_infer_time")

        return write

    def latest_results(self, endpoint_id: str) -> list[ResultRecord]:
        """The latest result of each (application, name) of an endpoint, sorted by both."""
        t = self._t["latest_results"]
        query = sa.select(t).where(t.c.endpoint_id == endpoint_id).order_by(t.c.application_name, t.c.result_name)

        def read(conn: sa.Connection) -> list[ResultRecord]:
            return [ResultRecord(
                project=r["project"], endpoint_id=r["endpoint_id"], application_name=r["application_name"],
                result_name=r["result_name"], kind=r["kind"], status=r["status"], value=r["value"],
                start_infer_time=r["start_infer_time"], end_infer_time=r["end_infer_time"],
                extra_data=r["extra_data"]) for r in conn.execute(query).mappings()]

        return self._run(f"reading latest results of {endpoint_id!r}", read)

    def latest_metrics(self, endpoint_id: str) -> list[MetricRecord]:
        """The latest value of each (application, metric) of an endpoint, sorted by both."""
        t = self._t["latest_metrics"]
        query = sa.select(t).where(t.c.endpoint_id == endpoint_id).order_by(t.c.application_name, t.c.metric_name)

        def read(conn: sa.Connection) -> list[MetricRecord]:
            return [MetricRecord(
                project=r["project"], endpoint_id=r["endpoint_id"], application_name=r["application_name"],
                metric_name=r["metric_name"], value=r["value"], start_infer_time=r["start_infer_time"],
                end_infer_time=r["end_infer_time"]) for r in conn.execute(query).mappings()]

        return self._run(f"reading latest metrics of {endpoint_id!r}", read)

    # ------------------------------------------------------------------ applications

    def add_application(self, project: str, name: str, class_path: str, params: dict[str, Any] | None = None,
                        enabled: bool = True) -> Application:
        """Register (or redefine) a monitoring application ``module:Class`` of a project."""
        from streamdrift.udfs.applications import split_class_path

        split_class_path(class_path)
        row = {"project": _check_id(project, "project"), "name": validate_application_name(name),
               "class_path": class_path, "params": dict(params or {}), "enabled": bool(enabled)}
        now = _now()

        def write(conn: sa.Connection) -> Application:
            self._upsert(conn, self._t["applications"], [dict(row, created=now, updated=now)],
                         ["class_path", "params", "enabled", "updated"])
            return self._get_application(conn, project, name)

        return self._run(f"registering application {name!r}", write)

    def _get_application(self, conn: sa.Connection, project: str, name: str) -> Application | None:
        t = self._t["applications"]
        row = conn.execute(sa.select(t).where(t.c.project == project, t.c.name == name)).mappings().first()
        return None if row is None else Application(**row)

    def get_application(self, project: str, name: str) -> Application | None:
        return self._run(f"reading application {name!r}", lambda conn: self._get_application(conn, project, name))

    def list_applications(self, project: str, *, enabled_only: bool = False) -> list[Application]:
        t = self._t["applications"]
        query = sa.select(t).where(t.c.project == project).order_by(t.c.name)
        if enabled_only:
            query = query.where(t.c.enabled.is_(True))
        return self._run("listing applications", lambda conn: [Application(**r) for r in conn.execute(query).mappings()])

    def remove_application(self, project: str, name: str) -> bool:
        t = self._t["applications"]
        return self._run(f"removing application {name!r}", lambda conn: conn.execute(
            sa.delete(t).where(t.c.project == project, t.c.name == name)).rowcount > 0)

    def set_application_enabled(self, project: str, name: str, enabled: bool) -> None:
        t = self._t["applications"]

        def write(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(t).where(t.c.project == project, t.c.name == name)
                                .values(enabled=bool(enabled), updated=_now()))
            if done.rowcount == 0:
                raise NotFoundError(f"no application {name!r} in project {project!r}")

        self._run(f"enabling application {name!r}", write)

    # ------------------------------------------------------------------ alerts

    def add_alert_config(
        self,
        project: str,
        name: str,
        *,
        summary: str,
        severity: str,
        entities: Any,
        trigger_kinds: Sequence[str],
        criteria: dict[str, Any] | None = None,
        reset_policy: str = "auto",
        notifications: Sequence[Any] = (),
        state: str = "inactive",
    ) -> AlertConfig:
        """Create or replace an alert configuration (its ``created`` time is kept)."""
        row = {
            "project": _check_id(project, "project"), "name": _check_id(name, "alert name"),
            "summary": str(summary), "severity": str(severity), "entities": entities,
            "trigger_kinds": [str(k) for k in trigger_kinds], "criteria": dict(criteria or {}),
            "reset_policy": str(reset_policy), "notifications": list(notifications), "state": str(state),
        }
        now = _now()
        update = [c for c in row if c not in ("project", "name")] + ["updated"]

        def write(conn: sa.Connection) -> AlertConfig:
            self._upsert(conn, self._t["alert_configs"], [dict(row, created=now, updated=now)], update)
            return self._get_alert_config(conn, project, name)

        return self._run(f"writing alert {name!r}", write)

    def _get_alert_config(self, conn: sa.Connection, project: str, name: str) -> AlertConfig | None:
        t = self._t["alert_configs"]
        row = conn.execute(sa.select(t).where(t.c.project == project, t.c.name == name)).mappings().first()
        return None if row is None else AlertConfig(**row)

    def get_alert_config(self, project: str, name: str) -> AlertConfig | None:
        return self._run(f"reading alert {name!r}", lambda conn: self._get_alert_config(conn, project, name))

    def list_alert_configs(self, project: str) -> list[AlertConfig]:
        t = self._t["alert_configs"]
        query = sa.select(t).where(t.c.project == project).order_by(t.c.name)
        return self._run("listing alerts", lambda conn: [AlertConfig(**r) for r in conn.execute(query).mappings()])

    def set_alert_state(self, project: str, name: str, state: str) -> None:
        t = self._t["alert_configs"]

        def write(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(t).where(t.c.project == project, t.c.name == name)
                                .values(state=str(state), updated=_now()))
            if done.rowcount == 0:
                raise NotFoundError(f"no alert {name!r} in project {project!r}")

        self._run(f"setting the state of alert {name!r}", write)

    def delete_alert_config(self, project: str, name: str) -> bool:
        """Delete an alert configuration (its activations stay, as history)."""
        t = self._t["alert_configs"]
        return self._run(f"deleting alert {name!r}", lambda conn: conn.execute(
            sa.delete(t).where(t.c.project == project, t.c.name == name)).rowcount > 0)

    def add_activation(
        self,
        project: str,
        alert_name: str,
        *,
        activated_at: dt.datetime,
        entity: str,
        event_kind: str,
        severity: str,
        summary: str,
        value: float | None = None,
        window_end: dt.datetime | None = None,
        notified: Any = None,
    ) -> int:
        """Record that an alert fired; returns the activation's id."""
        row = {
            "project": _check_id(project, "project"), "alert_name": _check_id(alert_name, "alert name"),
            "activated_at": activated_at, "entity": str(entity), "event_kind": str(event_kind),
            "severity": str(severity), "summary": str(summary), "value": _finite(value),
            "window_end": window_end, "notified": notified if notified is not None else {},
        }
        t = self._t["alert_activations"]
        return self._run(f"recording an activation of alert {alert_name!r}", lambda conn: int(
            conn.execute(sa.insert(t).values(**row)).inserted_primary_key[0]))

    def reset_activation(self, activation_id: int, reset_at: dt.datetime | None = None) -> bool:
        t = self._t["alert_activations"]
        return self._run(f"resetting activation {activation_id}", lambda conn: conn.execute(
            sa.update(t).where(t.c.id == activation_id).values(reset_at=reset_at or _now())).rowcount > 0)

    def find_activation(self, project: str, alert_name: str, entity: str,
                        window_end: dt.datetime) -> AlertActivation | None:
        """The activation of an alert for one entity and window end, if recorded (the alert stage's
        dedupe: a replayed window does not notify twice). The oldest one if several."""
        t = self._t["alert_activations"]
        query = (sa.select(t).where(t.c.project == project, t.c.alert_name == alert_name, t.c.entity == str(entity),
                                    t.c.window_end == window_end).order_by(t.c.id).limit(1))

        def read(conn: sa.Connection) -> AlertActivation | None:
            row = conn.execute(query).mappings().first()
            return None if row is None else AlertActivation(**row)

        return self._run(f"finding an activation of alert {alert_name!r}", read, write=False)

    def set_activation_notified(self, activation_id: int, notified: Any) -> bool:
        """Replace the ``notified`` JSON of an activation (what was sent, failed, suppressed)."""
        t = self._t["alert_activations"]
        return self._run(f"updating activation {activation_id}", lambda conn: conn.execute(
            sa.update(t).where(t.c.id == activation_id).values(notified=notified)).rowcount > 0)

    def list_activations(self, project: str, alert_name: str | None = None, *,
                         since: dt.datetime | None = None, limit: int | None = None) -> list[AlertActivation]:
        """Activations of a project (or one alert), oldest first; ``limit`` keeps the newest ones."""
        t = self._t["alert_activations"]
        query = sa.select(t).where(t.c.project == project)
        if alert_name is not None:
            query = query.where(t.c.alert_name == alert_name)
        if since is not None:
            query = query.where(t.c.activated_at >= since)
        query = query.order_by(t.c.activated_at.desc(), t.c.id.desc())
        if limit is not None:
            query = query.limit(int(limit))

        def read(conn: sa.Connection) -> list[AlertActivation]:
            return [AlertActivation(**r) for r in conn.execute(query).mappings()][::-1]

        return self._run("listing alert activations", read)


# --------------------------------------------------------------------------------- helpers


def _create_table(conn: sa.Connection, table: sa.Table) -> None:
    """``CREATE TABLE IF NOT EXISTS`` and its indexes, safe when another process does the same."""
    conn.execute(CreateTable(table, if_not_exists=True))
    dialect = conn.dialect
    for index in table.indexes:
        if dialect.name == "mysql" and not getattr(dialect, "is_mariadb", False):
            # MySQL has no CREATE INDEX IF NOT EXISTS: check, and accept losing a race
            if index.name in {i["name"] for i in sa.inspect(conn).get_indexes(table.name)}:
                continue
            try:
                conn.execute(CreateIndex(index))
            except SQLAlchemyError as exc:
                if getattr(getattr(exc, "orig", None), "args", [None])[0] != 1061:  # duplicate key name
                    raise
        else:
            conn.execute(CreateIndex(index, if_not_exists=True))


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # the job writes while the CLI reads
    except Exception:  # noqa: BLE001 - an in-memory database has no WAL; nothing to do
        pass
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _str_list(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of names, not the string {names!r}")
    out = [str(n) for n in names]
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise ValueError(f"{what} has duplicates: {dup}")
    return out


def _check_mode(mode: str) -> str:
    if mode not in ("enabled", "disabled"):
        raise ValueError(f"monitoring mode must be 'enabled' or 'disabled', got {mode!r}")
    return mode


def _endpoint_from_row(row) -> ModelEndpoint:
    data = dict(row)
    data["has_reference_sample"] = bool(data.get("has_reference_sample"))
    data.setdefault("feature_stats", {})
    if data["feature_stats"] is None:
        data["feature_stats"] = {}
    return ModelEndpoint(**data)


__all__ = [
    "SqlStore", "StoreError", "NotFoundError", "ModelEndpoint", "Application", "AlertConfig",
    "AlertActivation", "MIGRATIONS", "SCHEMA_VERSION", "Migration", "retrying", "build_tables",
    "validate_application_name", "is_transient",
]
