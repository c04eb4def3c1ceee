"""Application calls with a timeout, for the job's applications stage (:class:`RunApplications`
calls :func:`streamdrift.udfs.monitor.monitor_window` with ``call=call_with_timeout``).

Each ``do_tracking`` call runs on a worker thread of a small pool of daemon threads and is waited
for at most the application's ``timeout_seconds`` (default 60, see
:func:`streamdrift.udfs.applications.app_timeout`). Python cannot kill a thread: a call that times
out keeps running in the background, and its eventual return value is thrown away. While it runs,
that application (by name, in this process) is not called again: each later window reports
``mm-app-failed`` "still running" for it instead, so a hung application holds one thread, never one
per window. When the stuck call ends at last, the application runs again from the next window on.
The threads are daemons, so a stuck call never keeps the Python worker from exiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from streamdrift.udfs.monitor import ApplicationCallError

log = logging.getLogger("streamdrift.applications")

__all__ = ["AppTimeout", "AppStillRunning", "call_with_timeout", "hung_applications"]


class AppTimeout(ApplicationCallError):
    """A ``do_tracking`` call ran past its application's timeout."""


class AppStillRunning(ApplicationCallError):
    """An application's earlier call, which timed out, has not returned yet."""


class _Call:
    """One ``do_tracking`` call handed to a worker thread."""

    __slots__ = ("fn", "done", "value", "error", "started", "where")

    def __init__(self, fn: Callable[[], Any], where: str):
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.where = where

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # noqa: BLE001 - everything the app raises is its failure
            self.error = exc
        finally:
            self.fn = None  # drop the context (and its data) as soon as the call ends
            self.done.set()


class _DaemonPool:
    """Worker threads for application calls: daemon threads (a stuck call never blocks the
    interpreter's exit, as ``concurrent.futures`` threads would), reused while idle, a new one
    started when every existing one is busy (or stuck)."""

    def __init__(self, idle_seconds: float = 60.0):
        self._tasks: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self.idle_seconds = idle_seconds

    def submit(self, call: _Call) -> None:
        with self._lock:
            start = self._idle == 0
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        self._tasks.put(call)
        if start:
            threading.Thread(target=self._work, name=f"streamdrift-app-{self._threads}", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                call = self._tasks.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody has counted on this thread: leave
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a submit counted on us just now: its task is on the way
            call.run()
            with self._lock:
                self._idle += 1

    @property
    def threads(self) -> int:
        return self._threads


_POOL = _DaemonPool()
_HUNG: dict[str, _Call] = {}  # application name → its call that timed out and has not returned
_HUNG_LOCK = threading.Lock()


def call_with_timeout(name: str, fn: Callable[[], Any], timeout: float | None, where: str = "") -> Any:
    """``fn()`` on a pool thread, waited for at most ``timeout`` seconds (None: no limit).

    Raises what ``fn`` raised, :class:`AppTimeout` when it runs too long (it goes on running; the
    application ``name`` is then refused with :class:`AppStillRunning` until that call returns)."""
    with _HUNG_LOCK:
        stuck = _HUNG.get(name)
        if stuck is not None:
            if not stuck.done.is_set():
                raise AppStillRunning(
                    f"still running: its call for {stuck.where} timed out "
                    f"{time.monotonic() - stuck.started:.0f} s ago and has not returned; not called again until it does")
            del _HUNG[name]
            log.warning("application %r: the call that timed out (%s) has returned at last; running it again",
                        name, stuck.where)
    call = _Call(fn, where)
    _POOL.submit(call)
    if not call.done.wait(timeout):
        with _HUNG_LOCK:
            _HUNG[name] = call
        raise AppTimeout(f"timed out after {timeout:g} s (timeout_seconds); the call goes on in the background "
                         "and the application is not called again until it returns")
    if call.error is not None:
        if not isinstance(call.error, Exception):  # SystemExit, KeyboardInterrupt... from an app
            raise RuntimeError(f"{type(call.error).__name__}: {call.error}") from None
        raise call.error
    return call.value


def hung_applications() -> dict[str, float]:
    """Applications whose timed-out call has not returned yet → seconds since it started."""
    now = time.monotonic()
    with _HUNG_LOCK:
        return {name: now - call.started for name, call in _HUNG.items() if not call.done.is_set()}
