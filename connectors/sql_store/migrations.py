"""The SQL store's schema versions: the steps that create and upgrade the tables, applied by
:meth:`SchemaMixin.create_schema`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from streamdrift.connectors.sql_store.base import SqlStoreBase, StoreError, utc_now
from streamdrift.connectors.sql_store.tables import STATUS_COLUMNS, build_tables

log = logging.getLogger(__name__)


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
    Migration(5, "endpoints' totals and drift status in their own table, apart from their reference",
              ("endpoint_status",), lambda conn, tables: _move_status(conn)),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def _move_status(conn: sa.Connection) -> None:
    """Step 5: the totals and drift status of a store created before it move from ``endpoints`` to
    ``endpoint_status``, and their columns leave ``endpoints`` (a store created since has none)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns("endpoints")}
    moved = [name for name in STATUS_COLUMNS if name in present]
    if not moved:
        return
    columns = ", ".join(moved)
    conn.execute(sa.text(f"INSERT INTO endpoint_status (endpoint_id, {columns}) SELECT endpoint_id, {columns} "
                         "FROM endpoints WHERE endpoint_id NOT IN (SELECT endpoint_id FROM endpoint_status)"))
    if conn.dialect.name == "mysql":  # one rebuild of the table
        conn.execute(sa.text("ALTER TABLE endpoints " + ", ".join(f"DROP COLUMN {name}" for name in moved)))
    else:
        for name in moved:
            conn.execute(sa.text(f"ALTER TABLE endpoints DROP COLUMN {name}"))


class SchemaMixin(SqlStoreBase):
    """Creating and upgrading the schema."""

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
                                 [{"id": 1, "version": step.version, "updated": utc_now()}], ["version", "updated"])
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
