"""The SQL store's connection: the engine, one transaction per operation retried on transient
errors (:func:`retrying`), idempotent upserts, the store's errors and the checks every table's rows share."""

from __future__ import annotations

import datetime as dt
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from streamdrift.connectors.errors import StoreFailure, backoff_delays, is_transient
from streamdrift.connectors.settings import mask_password
from streamdrift.connectors.sqlite_files import SYNCHRONOUS
from streamdrift.connectors.sql_store.tables import ID_LENGTH, UTC, build_tables

log = logging.getLogger(__name__)

T = TypeVar("T")


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


def check_id(value: Any, what: str) -> str:
    """Ids and free names (endpoint id, project, model...): any non-empty text up to 255 characters."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > ID_LENGTH:
        raise ValueError(f"{what} {value[:40]!r}... is {len(value)} characters long: at most {ID_LENGTH}")
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    return value


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


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)


def finite(value: float | None) -> float | None:
    """NaN and infinities are not stored (MySQL refuses them, SQLite turns NaN into NULL)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class SqlStoreBase:
    """The connection of :class:`streamdrift.connectors.sql_store.SqlStore`, which composes this
    with one mixin per kind of thing stored; the mixins reach the database only through
    :meth:`_run` (a transaction, retried) and :meth:`_upsert`. Parameters: see ``SqlStore``."""

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
        self._t = build_tables(sa.MetaData())
        self._upserts: dict[tuple, Any] = {}
        self._many_rows: dict[tuple, tuple] = {}  # (statement key, row keys) -> _many_rows_plan

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        return f"SqlStore({self.masked_url!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, what: str, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction, retried on transient errors."""

        def once() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return retrying(once, self.attempts, self.backoff, what=f"{what} on {self.masked_url}")

    def _named(self, conn: sa.Connection, table: str, record: Callable[..., T], project: str, name: str) -> T | None:
        """The row of ``table`` keyed by (project, name) as ``record(**row)``, or None."""
        t = self._t[table]
        row = conn.execute(sa.select(t).where(t.c.project == project, t.c.name == name)).mappings().first()
        return None if row is None else record(**row)

    def _update_named(self, table: str, project: str, name: str, values: dict[str, Any], what: str, noun: str) -> None:
        """Set ``values`` (and ``updated``) on the row of ``table`` keyed by (project, name);
        :class:`NotFoundError` naming the ``noun`` when there is none."""
        t = self._t[table]

        def write(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(t).where(t.c.project == project, t.c.name == name)
                                .values(**values, updated=utc_now()))
            if done.rowcount == 0:
                raise NotFoundError(f"no {noun} {name!r} in project {project!r}")

        self._run(what, write)

    def _delete_named(self, table: str, project: str, name: str, what: str) -> bool:
        """Delete the row of ``table`` keyed by (project, name); whether there was one."""
        t = self._t[table]
        return self._run(what, lambda conn: conn.execute(
            sa.delete(t).where(t.c.project == project, t.c.name == name)).rowcount > 0)

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
        self._execute_rows(conn, key, stmt, rows)

    def _accumulate(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], *,
                    add: Sequence[str] = (), earliest: Sequence[str] = (), latest: Sequence[str] = ()) -> None:
        """Insert ``rows``; on a primary-key clash move the stored row by them in the database, so
        that writers at the same time add up rather than overwrite each other: each ``add`` column
        becomes stored + given, each ``earliest`` (``latest``) column the earlier (later) of the
        stored and the given value, where NULL means no value."""
        if not rows:
            return
        key = ("accumulate", table.name, tuple(add), tuple(earliest), tuple(latest))
        stmt = self._upserts.get(key)
        if stmt is None:
            stmt = self._upserts[key] = self._accumulate_statement(table, add, earliest, latest)
        self._execute_rows(conn, key, stmt, rows)

    def _execute_rows(self, conn: sa.Connection, key: tuple, stmt, rows: list[dict[str, Any]]) -> None:
        """Run the one-row INSERT ``stmt`` for each of ``rows`` (dicts with the same keys), in row
        order. SQLite: up to 1,000 rows per statement, each value through its column type's bind
        processing as SQLAlchemy's own execution does: pysqlite gives up the GIL at every step of
        a statement and waits for it after, so a statement per row waited once per row on the
        worker's other threads. MySQL: PyMySQL sends the rows as one statement already."""
        names = tuple(rows[0])
        plan = None
        if self.backend == "sqlite" and len(rows) > 1 and all(tuple(row) == names for row in rows):
            if (key, names) not in self._many_rows:
                self._many_rows[(key, names)] = _many_rows_plan(stmt, names, self.engine.dialect)
            plan = self._many_rows[(key, names)]
        if plan is None:
            conn.execute(stmt, rows)
            return
        sql_of, order, processors = plan
        variables = conn.connection.dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(1_000, variables // len(order)))
        for i in range(0, len(rows), per):
            chunk = rows[i:i + per]
            try:
                values = [value if process is None else process(value)
                          for row in chunk for name, process in zip(order, processors) for value in (row[name],)]
            except Exception as exc:  # as SQLAlchemy's own execution reports a value its type refuses
                raise sa.exc.StatementError(f"({type(exc).__name__}) {exc}", sql_of(1), None, exc) from exc
            conn.exec_driver_sql(sql_of(len(chunk)), tuple(values))

    def _upsert_from_select(self, table: sa.Table, columns: Sequence[str], update: Sequence[str],
                            select: sa.Select):
        """``INSERT INTO table (columns) SELECT ...``; on a primary-key clash the ``update``
        columns take the selected values. ``select`` must have a WHERE clause (SQLite reads an
        upsert after a bare SELECT as a join)."""
        if self.backend == "mysql":
            stmt = mysql_dialect.insert(table).from_select(list(columns), select)
            return stmt.on_duplicate_key_update([(c, stmt.inserted[c]) for c in update])
        stmt = sqlite_dialect.insert(table).from_select(list(columns), select)
        return stmt.on_conflict_do_update(index_elements=[c.name for c in table.primary_key.columns],
                                          set_={c: stmt.excluded[c] for c in update})

    def _accumulate_statement(self, table: sa.Table, add: Sequence[str], earliest: Sequence[str],
                              latest: Sequence[str]):
        if self.backend == "mysql":
            stmt = mysql_dialect.insert(table)
            given = stmt.inserted
        else:
            stmt = sqlite_dialect.insert(table)
            given = stmt.excluded
        # each column reads only itself: MySQL's left-to-right assignment cannot change a result
        sets = {c: table.c[c] + given[c] for c in add}
        sets.update({c: _pick(table.c[c], given[c], earlier=True) for c in earliest})
        sets.update({c: _pick(table.c[c], given[c], earlier=False) for c in latest})
        if self.backend == "mysql":
            return stmt.on_duplicate_key_update(list(sets.items()))
        return stmt.on_conflict_do_update(index_elements=[c.name for c in table.primary_key.columns], set_=sets)

    def _lock_for_update(self, conn: sa.Connection) -> None:
        """Make what ``conn``'s transaction reads next hold until it commits, for a write computed
        from a read. MySQL: nothing to do here, the read says ``FOR UPDATE``. SQLite: pysqlite
        opens the transaction at the first write only, so a read before it sees a state another
        writer may change before ours starts; this takes the database's write lock first
        (``BEGIN IMMEDIATE``, waiting up to the busy timeout) unless the transaction has written."""
        if self.backend == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

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


def _many_rows_plan(stmt, names: tuple[str, ...], dialect) -> tuple[Callable[[int], str], list[str], list] | None:
    """How to run the one-row INSERT ``stmt`` (its values named ``names``) on many rows at once on
    SQLite: the SQL of n rows (its ``VALUES`` group n times, the rest as compiled), the values'
    names in their order, and each one's bind processor (None: the value as given). None for a
    statement of another shape (a value that is not a parameter of ``names``)."""
    import functools

    compiled = stmt.compile(dialect=dialect, column_keys=list(names))
    head, values_word, rest = compiled.string.partition(" VALUES (")
    group, _, tail = rest.partition(")")
    order = list(compiled.positiontup)
    if not values_word or group.replace(" ", "") != ",".join("?" * len(order)) or any(n not in names for n in order):
        return None
    processors = [compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in order]
    one = f"({group})"

    @functools.lru_cache(maxsize=64)
    def sql_of(n: int) -> str:
        return f"{head} VALUES {', '.join([one] * n)}{tail}"

    return sql_of, order, processors


def _pick(stored: sa.ColumnElement, given: sa.ColumnElement, earlier: bool) -> sa.ColumnElement:
    """The earlier (or later) of two values of a column in SQL, NULL standing for no value."""
    better = given < stored if earlier else given > stored
    return sa.case((given.is_(None), stored), (stored.is_(None), given), (better, given), else_=stored)


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # the job writes while the CLI reads
        wal = cursor.fetchone()[0] == "wal"
    except Exception:  # noqa: BLE001 - an in-memory database has no WAL; nothing to do
        wal = False
    cursor.execute("PRAGMA busy_timeout=30000")
    if wal:  # as the SQLite TSDB, for the same reason (safe in WAL mode only)
        cursor.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    cursor.close()
