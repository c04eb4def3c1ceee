"""Transient or permanent: one classification of the stores' errors.

A store error is **transient** when waiting may heal it: the server is down, restarting or busy,
the connection was refused, lost or timed out, a lock is held (a locked SQLite file, a MySQL lock
wait or deadlock). Retrying those is right. Anything else is **permanent**: the same statement will
fail again (a statement too long, a syntax error, a time out of range, a wrong precision or a
keyword as a name, NOT NULL, a value too long, an unknown table, wrong credentials), so the writer
must set the window aside instead of retrying forever. An error of an unknown kind is permanent:
a window set aside can be replayed, a retry loop stalls the job.

:func:`is_transient` answers for every exception the stores raise: :class:`StoreFailure` (the base
of :class:`streamdrift.connectors.tsdb.TSDBError` and :class:`streamdrift.connectors.sql_store.StoreError`, whose
``transient`` is decided where they are raised), SQLAlchemy and PyMySQL errors, ``sqlite3``
errors, TDengine's clients (taos-ws-py ``taosws``, taospy ``taos``), and Python's own
``ConnectionError`` / ``TimeoutError``.

Rules, per source:

* MySQL / MariaDB: client errors 2000-2999 (cannot connect, server gone away, lost connection)
  and the server codes in :data:`MYSQL_TRANSIENT_CODES` (too many connections, shutdown in
  progress, lock wait timeout, deadlock, connection killed, read-only during a failover, ...).
* SQLite: ``SQLITE_BUSY`` and ``SQLITE_LOCKED`` (by error code, else by the words "locked" /
  "busy" in the message).
* TDengine: the codes in :data:`TDENGINE_TRANSIENT_CODES` (``[0x000B] Unable to establish
  connection``, ``Conn read timeout``, ``Disconnected from service``, not-leader and restoring
  vnodes, ...); the WebSocket client's own errors (``[0xE0xx]``) by their message (connection
  refused, reset, closed, timed out).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "StoreFailure", "is_transient", "mysql_transient", "sqlite_transient", "tdengine_transient",
    "tdengine_code", "MYSQL_TRANSIENT_CODES", "TDENGINE_TRANSIENT_CODES",
]


class StoreFailure(RuntimeError):
    """A store's error whose class (``transient``) was decided where it was raised."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = bool(transient)


#: MySQL/MariaDB server error codes that may pass on their own (client codes 2000-2999 always do).
MYSQL_TRANSIENT_CODES = frozenset({
    1040,  # ER_CON_COUNT_ERROR: too many connections
    1043,  # ER_HANDSHAKE_ERROR: bad handshake (a connection cut while opening)
    1053,  # ER_SERVER_SHUTDOWN: shutdown in progress
    1077,  # ER_NORMAL_SHUTDOWN
    1078,  # ER_GOT_SIGNAL
    1079,  # ER_SHUTDOWN_COMPLETE
    1080,  # ER_FORCING_CLOSE
    1081,  # ER_IPSOCK_ERROR: cannot create an IP socket
    1152,  # ER_ABORTING_CONNECTION
    1158, 1159, 1160, 1161,  # ER_NET_READ_ERROR / _INTERRUPTED, ER_NET_ERROR_ON_WRITE / _WRITE_INTERRUPTED
    1205,  # ER_LOCK_WAIT_TIMEOUT
    1213,  # ER_LOCK_DEADLOCK
    1290,  # ER_OPTION_PREVENTS_STATEMENT: --read-only, e.g. a replica during a failover
    1317,  # ER_QUERY_INTERRUPTED
    1836,  # ER_READ_ONLY_MODE
    1927,  # ER_CONNECTION_KILLED (MariaDB)
    3024,  # ER_QUERY_TIMEOUT (MySQL max_execution_time)
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT: disconnected for inactivity
})

#: TDengine error codes (the low 16 bits, as the clients print them: ``[0x000B] ...``) that may
#: pass on their own; from TDengine's ``include/util/taoserror.h``.
TDENGINE_TRANSIENT_CODES = frozenset({
    0x000B,  # Unable to establish connection
    0x0015,  # Unable to resolve FQDN
    0x0018,  # Conn is broken
    0x0019,  # Conn read timeout
    0x0020,  # some vnode/qnode/mnode(s) out of service
    0x0021,  # some node's link broken
    0x0022,  # rpc open too many session
    0x0023,  # rpc network error
    0x0024,  # rpc network busy
    0x0125,  # Retry needed
    0x0126,  # Out of memory in rpc queue
    0x012C,  # Operation timeout
    0x0130,  # Database is starting up
    0x0131,  # Database is closing down
    0x0139,  # socket error
    0x020B,  # Invalid connection
    0x0213,  # Disconnected from service
    0x0215,  # Connection killed
    0x0396,  # Database in creating status
    0x03D3,  # Conflict transaction not completed
    0x03D5,  # Unable to establish connection while executing a transaction
    0x03D7,  # Sync timeout while executing a transaction
    0x0408,  # Dnode is offline
    0x042A,  # Mnode stopped
    0x0503,  # Vnode is closed or removed (moving)
    0x0529,  # Vnode stopped
    0x0531,  # Query busy
    0x0532,  # Vnode didn't catch up its leader
    0x0903,  # Sync timeout
    0x090C,  # Sync leader is unreachable / not leader
    0x0911,  # Sync not ready to propose
    0x0914,  # Sync leader is restoring
    0x0916,  # Sync buffer is full
    0x0917,  # Sync write stall
    0x0918,  # Sync negotiation window is full
    0x2402,  # catalog not ready
    0x2405,  # catalog out of service
    0x2504,  # scheduler timeout
})

#: What a connection problem says when it has no code (the WebSocket client's ``[0xE0xx]``
#: errors, Python's socket errors): matched case-insensitively.
_CONNECTION_WORDS = re.compile(
    r"connection (?:refused|reset|aborted|closed|lost|timed out)|broken pipe|timed? ?out\b|timeout"
    r"|websocket (?:closed|internal error: io error)|network is unreachable|no route to host"
    r"|temporarily unavailable|temporary failure in name resolution|unable to establish connection"
    r"|conn is broken|disconnected from service|server has gone away|lost connection",
    re.IGNORECASE,
)
_TDENGINE_CODE = re.compile(r"\[0x([0-9A-Fa-f]{4})\]")

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def tdengine_code(exc: BaseException) -> int | None:
    """The TDengine error code of a client exception (its low 16 bits), None when it has none.

    taospy's errors carry it as ``errno`` (and print ``[0x060b]: ...``); taos-ws-py's as the
    message prefix ``[0x060B] ...``."""
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and not isinstance(errno, bool) and errno not in (0, 0xFFFF) \
            and type(exc).__module__.split(".")[0] in ("taos", "_taosws", "taosws"):
        return errno & 0xFFFF
    match = _TDENGINE_CODE.search(str(exc))
    return int(match.group(1), 16) if match else None


def tdengine_transient(exc: BaseException) -> bool:
    """True for a TDengine client error that may pass (see the module doc)."""
    code = tdengine_code(exc)
    if code is not None and code in TDENGINE_TRANSIENT_CODES:
        return True
    if code is None or code >= 0xE000:  # the WebSocket client's own errors: read the message
        return bool(_CONNECTION_WORDS.search(str(exc)))
    return False


def sqlite_transient(exc: BaseException) -> bool:
    """True for ``SQLITE_BUSY`` / ``SQLITE_LOCKED`` (another connection holds the lock)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def mysql_transient(exc: BaseException) -> bool:
    """True for a PyMySQL error that may pass: client errors 2000-2999 (no connection, server
    gone away, lost connection), :data:`MYSQL_TRANSIENT_CODES`, and a closed connection
    (``InterfaceError``)."""
    if type(exc).__name__ == "InterfaceError":  # PyMySQL: the connection is closed or broken
        return True
    args = getattr(exc, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code is None:
        return bool(_CONNECTION_WORDS.search(str(exc)))
    return 2000 <= code < 3000 or code in MYSQL_TRANSIENT_CODES


def _sqlalchemy_transient(exc: Any) -> bool:
    from sqlalchemy.exc import DisconnectionError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, (DisconnectionError, PoolTimeout)) or getattr(exc, "connection_invalidated", False):
        return True
    orig = getattr(exc, "orig", None)
    return orig is not None and is_transient(orig)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` may pass by waiting (retry it), False when the same call would fail again
    (set the work aside with the error). See the module doc for the rules."""
    if isinstance(exc, StoreFailure):
        return exc.transient
    module = type(exc).__module__.split(".")[0]
    if module == "sqlalchemy":
        return _sqlalchemy_transient(exc)
    if module == "pymysql":
        return mysql_transient(exc)
    if module == "sqlite3":
        return type(exc).__name__ == "OperationalError" and sqlite_transient(exc)
    if module in ("taos", "_taosws", "taosws"):
        return tdengine_transient(exc)
    if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout, socket.gaierror)):
        return True
    return False


def backoff_delays(first: float = 0.5, most: float = 30.0) -> Iterator[float]:
    """The waits between attempts, in seconds: ``first``, doubled each time, at most ``most``.

    >>> delays = backoff_delays(0.5, 3.0)
    >>> [next(delays) for _ in range(5)]
    [0.5, 1.0, 2.0, 3.0, 3.0]
    """
    delay = first
    while True:
        yield min(delay, most)
        delay *= 2


def wait_out(fn: Callable[[], T], transient: Callable[[BaseException], bool] = is_transient, *,
             max_backoff_s: float = 30.0, on_retry: Callable[[BaseException, float], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn()`` until it returns: while it raises an error that ``transient`` says may pass
    (a store that is down or busy), wait (:func:`backoff_delays` from 0.5 s up to ``max_backoff_s``)
    and call it again, ``on_retry(exc, wait)`` told first. Any other error is raised."""
    delays = backoff_delays(0.5, max_backoff_s)
    while True:
        try:
            return fn()
        except Exception as exc:
            if not transient(exc):
                raise
            delay = next(delays)
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
