"""Transient or permanent (streamdrift.connectors.errors) on the errors a real MariaDB gives through PyMySQL and
SQLAlchemy: what waiting can heal (no server, a lost connection, a lock wait) against what the same
statement meets again (syntax, NOT NULL, a value too long, an unknown table, wrong credentials)."""

from __future__ import annotations

import logging
import socket
import uuid

import pymysql
import pytest
import sqlalchemy as sa

from streamdrift.connectors.errors import is_transient
from streamdrift.connectors.sql_store import SqlStore, StoreError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def database(mysql):
    """A fresh database with one table, dropped afterwards; yields (connect, name)."""
    name = f"streamdrift_errors_{uuid.uuid4().hex[:8]}"

    def connect(**kw) -> pymysql.connections.Connection:
        args = dict(host="127.0.0.1", port=mysql.port, user=mysql.user, password=mysql.password, autocommit=True)
        args.update(kw)
        return pymysql.connect(**args)

    admin = connect()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE TABLE `{name}`.t (id INT PRIMARY KEY, label VARCHAR(4) NOT NULL) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO `{name}`.t VALUES (1, 'a')")
    yield connect, name
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def _error_of(conn, sql: str) -> pymysql.MySQLError:
    with pytest.raises(pymysql.MySQLError) as info:
        with conn.cursor() as cur:
            cur.execute(sql)
    return info.value


def test_statements_that_fail_again_are_permanent(database):
    connect, name = database
    conn = connect(database=name)
    cur = conn.cursor()
    cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
    errors = {
        "syntax": _error_of(conn, "INSERT INTO t VALUES ("),
        "not null": _error_of(conn, "INSERT INTO t VALUES (2, NULL)"),
        "too long": _error_of(conn, "INSERT INTO t VALUES (3, 'abcdefgh')"),
        "unknown table": _error_of(conn, "SELECT * FROM missing"),
        "unknown column": _error_of(conn, "SELECT nope FROM t"),
        "duplicate key": _error_of(conn, "INSERT INTO t VALUES (1, 'b')"),
    }
    conn.close()
    assert {k: e.args[0] for k, e in errors.items()} == {
        "syntax": 1064, "not null": 1048, "too long": 1406, "unknown table": 1146, "unknown column": 1054,
        "duplicate key": 1062}
    assert {k: is_transient(e) for k, e in errors.items()} == dict.fromkeys(errors, False)


def test_wrong_credentials_are_permanent_and_no_server_is_transient(mysql):
    with pytest.raises(pymysql.MySQLError) as denied:
        pymysql.connect(host="127.0.0.1", port=mysql.port, user=mysql.user, password="not-the-password")
    with pytest.raises(pymysql.MySQLError) as refused:
        pymysql.connect(host="127.0.0.1", port=_closed_port(), user="u", password="p", connect_timeout=2)
    assert (denied.value.args[0], refused.value.args[0]) == (1045, 2003)
    assert not is_transient(denied.value) and is_transient(refused.value)


def test_a_lock_wait_timeout_is_transient(database):
    connect, name = database
    holder, waiter = connect(database=name, autocommit=False), connect(database=name)
    with holder.cursor() as cur:
        cur.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
    with waiter.cursor() as cur:
        cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
    error = _error_of(waiter, "UPDATE t SET label = 'z' WHERE id = 1")
    holder.rollback()
    holder.close(), waiter.close()
    assert error.args[0] == 1205 and is_transient(error)


def test_a_killed_connection_is_transient(database):
    connect, name = database
    victim, killer = connect(database=name), connect()
    victim_id = victim.thread_id()
    with killer.cursor() as cur:
        cur.execute(f"KILL {victim_id}")
    killer.close()
    error = _error_of(victim, "SELECT * FROM t")
    assert error.args[0] in (2006, 2013, 1927, 4031) and is_transient(error)


def test_sqlalchemy_and_the_sql_store_keep_the_drivers_class(mysql, database):
    _, name = database
    url = mysql.url.rsplit("/", 1)[0] + "/" + name
    engine = sa.create_engine(url)
    with pytest.raises(sa.exc.SQLAlchemyError) as missing:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT * FROM missing"))
    engine.dispose()
    assert not is_transient(missing.value)
    down = SqlStore(f"mysql+pymysql://streamdrift:p%40ss@127.0.0.1:{_closed_port()}/x", attempts=2, backoff=0.01)
    with pytest.raises(StoreError) as unreachable:
        down.create_schema()
    assert unreachable.value.transient and is_transient(unreachable.value)
    assert "Can't connect" in str(unreachable.value) and "p%40ss" not in str(unreachable.value)
    store = SqlStore(url)
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE latest_results"))
    with pytest.raises(StoreError) as gone:
        store.latest_results("ep")
    store.close()
    assert not gone.value.transient and "1146" in str(gone.value)


def test_a_lock_held_while_the_store_writes_is_waited_out(mysql, database, caplog):
    """A transient error inside the SQL store is retried: the write lands once the lock is gone."""
    connect, name = database
    url = mysql.url.rsplit("/", 1)[0] + "/" + name
    store = SqlStore(url, attempts=6, backoff=0.2)
    store.create_schema()
    store.add_application("p", "app", "streamdrift.udfs.example_apps:DataQualityApplication")
    store.engine.dispose()  # its next connections wait at most 1 s for a lock

    @sa.event.listens_for(store.engine, "connect")
    def short_lock_wait(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")

    holder = connect(database=name, autocommit=False)
    with holder.cursor() as cur:
        cur.execute("SELECT * FROM applications FOR UPDATE")

    class ReleaseOnRetry(logging.Handler):
        """Lets the lock go when the store says it retries (a timer could free it before the first
        attempt even met it, on a slow machine)."""
        def emit(self, record):
            if "retrying" in record.getMessage() and holder.open:
                holder.rollback()

    release = ReleaseOnRetry(logging.WARNING)
    logging.getLogger().addHandler(release)
    try:
        with caplog.at_level("WARNING"):
            store.set_application_enabled("p", "app", False)  # the first attempt meets error 1205
    finally:
        logging.getLogger().removeHandler(release)
        holder.close()
    assert "retrying" in caplog.text and "1205" in caplog.text and "Lock wait timeout" in caplog.text
    assert store.get_application("p", "app").enabled is False
    store.close()
