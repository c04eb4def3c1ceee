"""Transient or permanent (streamdrift.connectors.errors), on the exceptions the stores really raise: SQLite's
from a real file, the TDengine WebSocket client's from a real refused connection. No TDengine server
runs here, so the server's own errors are constructed from the clients' real exception types with
the server's messages (those tests say ``mock`` in their names). PyMySQL's errors come from a real
MariaDB in tests/integration/test_mariadb_errors.py."""

from __future__ import annotations

import datetime as dt
import importlib.util
import socket
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
import taosws
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.connectors.errors import StoreFailure, is_transient, tdengine_code
from streamdrift.connectors.settings import mask_password
from streamdrift.connectors.sql_store import StoreError
from streamdrift.connectors.tsdb import TSDBError
from streamdrift.connectors.tsdb.sqlite import SqliteTSDB
from streamdrift.connectors.tsdb.tdengine import TDengineTSDB
from streamdrift.udfs.records import ResultRecord

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
T1 = dt.datetime(2024, 1, 1, 0, 10, tzinfo=UTC)


def result(endpoint_id="ep") -> ResultRecord:
    return ResultRecord("p", endpoint_id, "app", "r", 0, 0, 0.5, T0, T1, {})


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _taospy_errors():
    """taospy's exception classes, loaded from its own file: importing the ``taos`` package needs
    the native client library, which is not installed here."""
    spec = importlib.util.find_spec("taos")
    path = Path(spec.origin).parent / "error.py"
    module_spec = importlib.util.spec_from_file_location("taospy_error", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------- SQLite


@pytest.fixture()
def locked_file(tmp_path):
    """A SQLite file another connection holds an exclusive lock on."""
    path = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER NOT NULL)")
    holder.execute("BEGIN EXCLUSIVE")
    yield path
    holder.execute("ROLLBACK")
    holder.close()


def test_a_locked_sqlite_database_is_transient(locked_file):
    other = sqlite3.connect(locked_file, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as info:
        other.execute("INSERT INTO t VALUES (1)")
    other.close()
    assert "locked" in str(info.value)
    assert is_transient(info.value)


def test_sqlite_errors_that_the_same_statement_meets_again_are_permanent(tmp_path):
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (x INTEGER NOT NULL)")
    failures = []
    for sql in ("INSERT INTO missing VALUES (1)", "INSERT INTO t VALUES (NULL)", "INSERT INTO t VALUES (",
                "INSERT INTO t (y) VALUES (1)"):
        with pytest.raises(sqlite3.Error) as info:
            conn.execute(sql)
        failures.append(info.value)
    assert [type(e).__name__ for e in failures] == ["OperationalError", "IntegrityError", "OperationalError",
                                                    "OperationalError"]
    assert [is_transient(e) for e in failures] == [False, False, False, False]


def test_the_sqlite_tsdb_says_transient_on_a_lock_and_carries_sqlites_message(tmp_path):
    path = tmp_path / "tsdb.sqlite"
    tsdb = SqliteTSDB(path, timeout=0.05)
    tsdb.create_schema()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TSDBError) as info:
            tsdb.write_results([result()])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert info.value.transient and is_transient(info.value)
    assert "database is locked" in str(info.value) and "SQLITE_BUSY" in str(info.value)
    assert tsdb.write_results([result()]) == 1  # the lock is gone: the retry succeeds
    tsdb.close()


def test_the_sqlite_tsdb_says_permanent_when_its_table_is_gone(tmp_path):
    path = tmp_path / "tsdb.sqlite"
    tsdb = SqliteTSDB(path)
    tsdb.create_schema()
    with sqlite3.connect(path) as other:
        other.execute("DROP TABLE app_results")
    with pytest.raises(TSDBError) as info:
        tsdb.write_results([result()])
    assert not info.value.transient and not is_transient(info.value)
    assert "no such table: app_results" in str(info.value)
    tsdb.close()


def test_sqlalchemy_wraps_are_classified_by_the_drivers_error(locked_file, tmp_path):
    engine = sa.create_engine(f"sqlite:///{locked_file}", connect_args={"timeout": 0})
    with pytest.raises(sa.exc.OperationalError) as locked:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    with pytest.raises(sa.exc.OperationalError) as missing:
        with sa.create_engine(f"sqlite:///{tmp_path / 'other.sqlite'}").begin() as conn:
            conn.execute(sa.text("SELECT * FROM missing"))
    engine.dispose()
    assert is_transient(locked.value) and not is_transient(missing.value)
    # a StoreError takes the class of the error it wraps
    assert StoreError("writing", locked.value).transient and not StoreError("reading", missing.value).transient


# ----------------------------------------------------------------------------------- TDengine


def test_a_refused_tdengine_connection_is_transient_and_masks_a_password_with_an_at_sign():
    port = _closed_port()
    with pytest.raises(taosws.Error) as raw:  # the real client, a real refusal
        taosws.connect(user="root", password="x", host="127.0.0.1", port=port, conn_retries="0")
    assert is_transient(raw.value)
    tsdb = TDengineTSDB(f"taosws://root:s3cr@t-Pw@127.0.0.1:{port}/monitoring", connect_retries=0)
    with pytest.raises(TSDBError) as info:
        tsdb.create_schema()
    message = str(info.value)
    assert info.value.transient and is_transient(info.value)
    assert "Connection refused" in message  # the client's own words
    assert "s3cr" not in message and "t-Pw" not in message
    assert f"taosws://root:***@127.0.0.1:{port}/monitoring" in message
    assert "s3cr" not in repr(tsdb)


#: (the server's message as taos-ws-py raises it, transient?) — from TDengine's error table
TDENGINE_MESSAGES = [
    ("[0x000B] Unable to establish connection", True),
    ("[0x0018] Conn is broken", True),
    ("[0x0019] Conn read timeout", True),
    ("[0x0213] Disconnected from service", True),
    ("[0x090C] Sync leader is unreachable", True),
    ("[0x0914] Sync leader is restoring", True),
    ("[0x0531] Query busy", True),
    ("[0xE001] Internal error: `WebSocket internal error: IO error: Connection reset by peer (os error 104)`", True),
    ("[0xE001] Internal error: `WebSocket closed`", True),
    ("[0x0219] SQL statement too long", False),
    ("[0x2600] syntax error near 'order PRECISION'", False),
    ("[0x060B] Timestamp data out of range", False),
    ("[0x2635] Incorrect timestamp value: 9999999999999999", False),
    ("[0x2653] Value too long for column/tag: model_error", False),
    ("[0x0388] Database not exist", False),
    ("[0x0357] Authentication failure", False),
    ("[0x2644] Permission denied or target object not exist", False),
    ("[0xE001] Internal error: `invalid utf-8 sequence`", False),
]


@pytest.mark.parametrize("message, transient", TDENGINE_MESSAGES)
@pytest.mark.parametrize("cls", [taosws.QueryError, taosws.ProgrammingError, taosws.OperationalError])
def test_tdengine_websocket_errors_by_code_mock(cls, message, transient):
    assert is_transient(cls(message)) is transient


@pytest.mark.parametrize("message, transient", [m for m in TDENGINE_MESSAGES if not m[0].startswith("[0xE")])
def test_tdengine_native_errors_by_errno_mock(message, transient):
    errors = _taospy_errors()
    code = int(message[3:7], 16)
    text = message.split("] ", 1)[1]
    for cls in (errors.ProgrammingError, errors.OperationalError, errors.DatabaseError):
        exc = cls(text, code | 0x80000000)  # taospy keeps the server's code as errno
        exc.__class__.__module__ = "taos.error"  # as imported from the package
        assert tdengine_code(exc) == code
        assert is_transient(exc) is transient


@pytest.mark.parametrize("message, transient, hint", [
    ("[0x060B] Timestamp data out of range", False, "KEEP"),
    ("[0x0219] SQL statement too long", False, "maxSQLLength"),
    ("[0x0019] Conn read timeout", True, None),
])
def test_the_tdengine_tsdb_keeps_the_servers_message_and_its_class_mock(message, transient, hint):
    class Failing:
        def execute(self, sql):
            raise taosws.QueryError(message)

        def close(self):
            pass

    with pytest.raises(TSDBError) as info:
        TDengineTSDB(connection=Failing()).write_results([result()])
    assert info.value.transient is transient and is_transient(info.value) is transient
    assert message in str(info.value)
    if hint:
        assert hint in str(info.value)


# ----------------------------------------------------------------------------------- the rest


@pytest.mark.parametrize("exc, transient", [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (TimeoutError("timed out"), True),
    (socket.timeout("timed out"), True),
    (ValueError("endpoint id 'a\\tb' contains control characters"), False),
    (KeyError("x"), False),
    (OSError(28, "No space left on device"), False),
    (StoreFailure("x", transient=True), True),
    (TSDBError("x"), False),
])
def test_python_errors(exc, transient):
    assert is_transient(exc) is transient


@given(password=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#"),
                        min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_a_password_is_masked_whole_whatever_it_holds(password):
    for scheme in ("taosws", "mysql+pymysql"):
        url = f"{scheme}://user:{password}@db.example:6041/monitoring"
        assert mask_password(url) == f"{scheme}://user:***@db.example:6041/monitoring"
        assert mask_password(f"cannot connect to {url}: refused") == \
            f"cannot connect to {scheme}://user:***@db.example:6041/monitoring: refused"


def test_an_unencoded_at_sign_in_a_password_is_masked_whole():
    assert mask_password("taosws://root:p@ss@host:6041/db") == "taosws://root:***@host:6041/db"
    assert mask_password("mysql+pymysql://u:a@b@c@h:3306/x and more") == "mysql+pymysql://u:***@h:3306/x and more"
