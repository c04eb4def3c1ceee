"""What the job's operators get from the outside world, as picklable callables built in ``jobs``:
the endpoints (with their references), the enabled applications, and a writer to the stores."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamdrift.connectors.errors import wait_out
from streamdrift.udfs.applications import HISTOGRAM_DATA_DRIFT
from streamdrift.udfs.monitor import WindowOutput
from streamdrift.udfs.records import FeatureDriftRows

log = logging.getLogger("streamdrift.writer")


def feature_drift_items(outs: list[WindowOutput]) -> list[Any]:
    """The windows' per-feature rows as the TSDB takes them: records, and each window's
    :class:`FeatureDriftRows` as one item (checked and written together, not a record each)."""
    return [f for o in outs for f in ((o.feature_drift,) if type(o.feature_drift) is FeatureDriftRows
                                      else o.feature_drift)]


_loaded: dict[str, tuple[Any, list]] = {}  # store url → (endpoints_version, endpoint records) of this process


def load_endpoints(store_url: str) -> list[dict[str, Any]]:
    """Every endpoint record (endpoint_id, project, feature_names, output_names, feature_stats, ...).

    The operators of a worker process reload every 30 s. While
    :meth:`~streamdrift.connectors.sql_store.SqlStore.endpoints_version` has not moved, the very list this
    process read last is given again (its readers can tell nothing changed without looking).
    When it has moved, only the endpoints changed since are read (with 10,000 endpoints, reading
    every reference again stalled the parse stage), deleted ones dropped; the other records stay
    the same objects."""
    from streamdrift.connectors.sql_store import SqlStore

    store = SqlStore(store_url)
    try:
        version = store.endpoints_version()  # before the records: a change meanwhile reloads next time
        known = _loaded.get(store_url)
        if known is not None and known[0] == version:
            return known[1]
        if known is None or known[0][1] is None:
            records = [dict(e) for e in store.list_endpoints()]
        else:
            by_id = {r["endpoint_id"]: r for r in known[1]}
            # from the newest change known, included: one committed in the same instant is not missed
            for endpoint in store.endpoints_changed_since(known[0][1], inclusive=True):
                by_id[endpoint.endpoint_id] = dict(endpoint)
            if len(by_id) != version[0]:  # some were deleted
                present = set(store.endpoint_ids())
                by_id = {k: r for k, r in by_id.items() if k in present}
            records = list(by_id.values())
        _loaded[store_url] = (version, records)
        return records
    finally:
        store.close()


def load_applications(store_url: str, project: str) -> list:
    """The applications enabled for ``project`` (:func:`streamdrift.connectors.app_registry.load_applications`):
    the built-in histogram drift app unless registered disabled, then every enabled registered app;
    one that cannot be imported or built stands in as an app reporting ``mm-app-failed``."""
    from streamdrift.connectors import app_registry

    return app_registry.load_applications(store_url, project)


def describe(exc: BaseException) -> str:
    """The error's own message (a store's message included), passwords masked, at most 1,000 characters."""
    from streamdrift.connectors.settings import mask_password

    text = mask_password(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= 1000 else text[:997] + "..."


class WindowNotWritten(RuntimeError):
    """A store refused a window for good (not an outage: retrying cannot help); the message is the store's."""


class StoreWriter:
    """Writes a window's records: results, metrics, predictions and errors to the TSDB; latest
    results and metrics and the endpoint's window counters to the SQL store. Every write is an
    idempotent upsert keyed by the window, so a replay or a correction leaves one row.

    A store that is down or busy is retried with exponential backoff for as long as it takes (the
    job waits: nothing is dropped). Any other error is permanent for that window: :meth:`write`
    raises :class:`WindowNotWritten` with the store's message, and the caller sets the window aside
    (a dead letter that ``streamdrift dead-letters replay`` writes once the cause is fixed).

    The two stores are written at the same time, the SQL store from a thread of this writer: both
    drivers release the GIL while the database works (SQLite's engine, a server's round trip). So
    a store may hold a window the other refused; the dead letter writes both again."""

    def __init__(self, tsdb_url: str, store_url: str, max_backoff_s: float = 30.0, keep_days: int | None = None,
                 verdict: str = "feature_drift"):
        from streamdrift.connectors.app_registry import default_artifacts_dir
        from streamdrift.connectors.sql_store import SqlStore
        from streamdrift.connectors.tsdb import open_tsdb

        self.tsdb = open_tsdb(tsdb_url, keep_days=keep_days, artifacts_dir=default_artifacts_dir(store_url))
        self.store = SqlStore(store_url)
        self.max_backoff_s = max_backoff_s
        self.verdict = (HISTOGRAM_DATA_DRIFT, verdict)  # the result that is an endpoint's drift status
        self.retries = 0
        self._retries_lock = threading.Lock()  # both stores' writes retry, from two threads
        self._sql_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sql-store-write")
        self._retry(self.tsdb.create_schema)
        self._retry(self.store.create_schema)

    def _retry(self, fn, *args):
        """Call ``fn(*args)``; while a store is unreachable, wait (0.5 s doubling up to
        ``max_backoff_s``) and call again. Other errors are raised."""
        def retried(exc: BaseException, delay: float) -> None:
            with self._retries_lock:
                self.retries += 1
            log.warning("store write failed, retrying in %.1f s: %s", delay, describe(exc))

        return wait_out(lambda: fn(*args), max_backoff_s=self.max_backoff_s, on_retry=retried)

    def write(self, out: WindowOutput) -> None:
        """Write the window's records; :class:`WindowNotWritten` when a store refuses them for good."""
        if out.revision < 0:  # rows later than the allowed lateness: only counted
            try:
                self._retry(self.store.add_late_rows, out.endpoint_id, out.end_ms, out.late_rows)
            except Exception as exc:  # permanent: transient errors were retried
                raise WindowNotWritten(describe(exc)) from exc
            return
        self._write_windows([out])

    def _write_windows(self, outs: list[WindowOutput]) -> None:
        """Windows' records in one transaction per store (where the store has them)."""
        results = [r for o in outs for r in o.results]
        metrics = [m for o in outs for m in o.metrics]
        predictions = [o.prediction for o in outs if o.prediction is not None]
        sql = self._sql_thread.submit(self._retry, self.store.record_window, results, metrics, predictions,
                                      self.verdict)
        failure: BaseException | None = None
        try:
            self._retry(self.tsdb.write_window, results, metrics, [e for o in outs for e in o.errors], predictions,
                        feature_drift_items(outs))
        except Exception as exc:  # permanent: transient errors were retried
            failure = exc
        try:
            sql.result()  # the batch is done when both stores are
        except Exception as exc:  # noqa: BLE001 - as above
            failure = failure or exc
        if failure is not None:
            raise WindowNotWritten(describe(failure)) from failure
        for out in outs:
            for error in out.errors:  # what went wrong stays visible on the endpoint (streamdrift endpoints show)
                self.record_problem(out, error.error_type, error.message)

    def write_many(self, outs: list[WindowOutput]) -> list[tuple[WindowOutput, str]]:
        """Write many windows at once: one write per store for all of them (a window's upserts
        replace an earlier revision of it). When a store refuses the batch, each window is written
        on its own, so that only the windows it refuses are set aside. Returns those, each with the
        store's message."""
        regular = [o for o in outs if o.revision >= 0]
        refused: list[tuple[WindowOutput, str]] = []
        try:
            if regular:
                self._write_windows(regular)
            singles = [o for o in outs if o.revision < 0]  # late rows: added to their window's count
        except WindowNotWritten:
            singles = outs  # each on its own: the refused ones are found and set aside
        for out in singles:
            try:
                self.write(out)
            except WindowNotWritten as exc:
                refused.append((out, str(exc)))
        return refused

    def record_problem(self, out: WindowOutput, kind: str, message: str) -> None:
        """Show the problem on the endpoint's record (best effort: the SQL store may be what failed)."""
        try:
            self.store.record_problem(out.project, out.endpoint_id, kind, message)
        except Exception as exc:  # noqa: BLE001 - the dead letter already holds the window
            log.warning("could not record the problem of endpoint %s in the SQL store: %s", out.endpoint_id,
                        describe(exc))

    def close(self) -> None:
        self._sql_thread.shutdown(wait=True)
        for part in (self.tsdb, self.store):
            try:
                part.close()
            except Exception:
                pass
