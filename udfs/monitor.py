"""One closed window of one endpoint → the records the writer stores (pure, no Flink, no I/O).

Applications are isolated from the job and from each other (:func:`monitor_window`): one that
raises, returns garbage, runs past its timeout, or is still stuck in an earlier call gives an
``mm-app-failed`` error record for itself and the endpoint, and the others go on.

Timeouts. Each ``do_tracking`` call runs on a worker thread of a small pool of daemon threads and
is waited for at most the application's ``timeout_seconds`` (default 60, see
:func:`udfs.applications.app_timeout`). Python cannot kill a thread: a call that times out keeps
running in the background, and its eventual return value is thrown away. While it runs, that
application (by name, in this process) is not called again: each later window reports
``mm-app-failed`` "still running" for it instead, so a hung application holds one thread, never
one per window. When the stuck call ends at last, the application runs again from the next
window on. The threads are daemons, so a stuck call never keeps the Python worker from exiting.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from udfs.applications import (
    HISTOGRAM_DATA_DRIFT,
    ModelMonitoringApplicationBase,
    MonitoringApplicationContext,
    app_name,
    app_timeout,
    normalise_output,
)
from udfs.histogram_drift import window_feature_drift
from udfs.records import (
    ErrorRecord,
    FeatureDriftRecord,
    MetricRecord,
    PredictionRecord,
    ResultRecord,
    record_from_json,
    record_to_json,
    utc_from_ms,
)
from udfs.window import Sample, WindowAggregate

log = logging.getLogger("streamdrift.applications")

APP_FAILED = "mm-app-failed"
MAX_MESSAGE = 2000


@dataclasses.dataclass(frozen=True)
class WindowOutput:
    """Everything one closed (or corrected) window produces."""

    project: str
    endpoint_id: str
    start_ms: int
    end_ms: int
    revision: int  # 0 = first result, 1.. = corrections by late data
    late_rows: int  # rows that arrived after the allowed lateness (counted, not in the window)
    prediction: PredictionRecord | None
    results: tuple[ResultRecord, ...] = ()
    metrics: tuple[MetricRecord, ...] = ()
    errors: tuple[ErrorRecord, ...] = ()
    feature_drift: tuple[FeatureDriftRecord, ...] = ()  # per-feature rows of the default application
    fired_ms: int | None = None  # wall clock (epoch ms) when the window stage fired the window


_RECORD_FIELDS = ("results", "metrics", "errors", "feature_drift")


def window_output_to_json(out: WindowOutput) -> dict[str, Any]:
    """``out`` as a JSON-ready dict (records by :func:`udfs.records.record_to_json`): what a dead
    letter of the writer carries, so that the window can be written later as it would have been."""
    data = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
    data["prediction"] = None if out.prediction is None else record_to_json(out.prediction)
    for name in _RECORD_FIELDS:
        data[name] = [record_to_json(r) for r in getattr(out, name)]
    return data


def window_output_from_json(data: Mapping[str, Any]) -> WindowOutput:
    """The :class:`WindowOutput` of :func:`window_output_to_json`."""
    fields = dict(data)
    fields["prediction"] = None if data.get("prediction") is None else record_from_json(data["prediction"])
    for name in _RECORD_FIELDS:
        fields[name] = tuple(record_from_json(r) for r in data.get(name) or ())
    return WindowOutput(**{f.name: fields[f.name] for f in dataclasses.fields(WindowOutput) if f.name in fields})


WINDOW_OUTPUT = "window-output"
"""The ``kind`` of a dead letter that holds a window's records a store refused."""


def window_dead_letter(out: WindowOutput, reason: str) -> str:
    """The dead letter (JSON) of a window whose records a store refused for good: the reason, the
    window, and everything it would have written (``streamdrift dead-letters replay`` writes it)."""
    import json

    return json.dumps({"kind": WINDOW_OUTPUT, "reason": reason, "endpoint_id": out.endpoint_id,
                       "window_start_ms": out.start_ms, "window_end_ms": out.end_ms,
                       "output": window_output_to_json(out)}, default=str)


def prediction_record(project: str, endpoint_id: str, start_ms: int, end_ms: int, agg: WindowAggregate) -> PredictionRecord:
    return PredictionRecord(
        project=project, endpoint_id=endpoint_id, start_infer_time=utc_from_ms(start_ms),
        end_infer_time=utc_from_ms(end_ms), count=agg.rows, events=agg.events, error_count=agg.errors,
        latency_count=agg.latency_count, latency_mean_us=agg.latency_mean,
        latency_p50_us=agg.latency_quantile(0.5), latency_p95_us=agg.latency_quantile(0.95),
        latency_p99_us=agg.latency_quantile(0.99),
        first_request=None if agg.first_ms is None else utc_from_ms(agg.first_ms),
        last_request=None if agg.last_ms is None else utc_from_ms(agg.last_ms),
        estimated_count=agg.estimated_rows)


WINDOW_FAILED = "mm-window-failed"
JOB_APPLICATION = "streamdrift"
"""The application name of errors of the job itself (not of a monitoring application)."""


def window_failed(project: str, endpoint_id: str, start_ms: int, end_ms: int, revision: int,
                  exc: BaseException) -> WindowOutput:
    """The output of a window whose processing raised: one ``mm-window-failed`` error record with
    the exception, so the window is visible (and alertable) instead of stopping the job."""
    message = f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]
    error = ErrorRecord(project, endpoint_id, JOB_APPLICATION, WINDOW_FAILED, message, utc_from_ms(end_ms))
    return WindowOutput(project, endpoint_id, start_ms, end_ms, max(revision, 0), 0, None, errors=(error,))


# --------------------------------------------------------------------------- isolation


class AppTimeout(Exception):
    """A ``do_tracking`` call ran past its application's timeout."""


class AppStillRunning(Exception):
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


def _record_name(name: str) -> str:
    """An application name the stores accept, for the error record of an app whose name they refuse."""
    if re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_-]{0,127}", name or ""):
        return name
    fixed = re.sub(r"[^a-zA-Z0-9_-]", "_", name or "app")[:128]
    return fixed if re.match(r"[a-zA-Z_]", fixed) else ("_" + fixed)[:128]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (AppTimeout, AppStillRunning)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- the window


def monitor_window(
    endpoint: Mapping[str, Any] | None,
    endpoint_id: str,
    default_project: str,
    start_ms: int,
    end_ms: int,
    agg: WindowAggregate,
    apps: Sequence[ModelMonitoringApplicationBase],
    revision: int = 0,
    *,
    reference_sample_loader: Callable[[str, Mapping[str, Any]], Any] | None = None,
    artifacts_dir: str | None = None,
) -> WindowOutput:
    """Run every application on the window, one after the other, each within its timeout.

    An application that raises, returns garbage, times out or is still stuck in an earlier call
    gives an ``mm-app-failed`` error record (application name, endpoint, window end, the reason)
    and the others go on. Without a reference (no endpoint record, or no feature_stats) only the
    prediction aggregate is produced.

    ``reference_sample_loader(endpoint_id, endpoint)`` and ``artifacts_dir`` reach the contexts
    (``reference_sample_df``, ``artifact_path``); an application's own ``reference_sample_loader``
    and ``artifacts_dir`` attributes (set by :mod:`connectors.app_registry`) take precedence.
    """
    project = (endpoint or {}).get("project") or default_project
    prediction = prediction_record(project, endpoint_id, start_ms, end_ms, agg)
    feature_stats = (endpoint or {}).get("feature_stats") or {}
    # no reference (yet), or monitoring disabled: the window is counted, its rows kept raw, no drift
    if not feature_stats or agg.accumulator is None or (endpoint or {}).get("monitoring_mode") == "disabled":
        return WindowOutput(project, endpoint_id, start_ms, end_ms, revision, 0, prediction)
    start, end = utc_from_ms(start_ms), utc_from_ms(end_ms)
    results: list[ResultRecord] = []
    metrics: list[MetricRecord] = []
    errors: list[ErrorRecord] = []
    shared: dict[str, Any] = {}

    def stats():
        if "stats" not in shared:
            shared["stats"] = agg.window_stats()
        return copy.deepcopy(shared["stats"])

    def sample():
        if "sample" not in shared:
            shared["sample"] = agg.sample_frame()
        return shared["sample"].copy()

    def window():
        return agg + WindowAggregate(sample=Sample.empty(0))  # a copy

    where = f"endpoint {endpoint_id} window {start.isoformat()}/{end.isoformat()}"
    for app in apps:
        name = app_name(app)
        # each app gets its own copies: the endpoint record is the catalog's cache, and what one
        # app changes in place must reach neither the next app nor the next window
        mine = copy.deepcopy(dict(endpoint))
        try:
            context = MonitoringApplicationContext(
                application_name=name, project_name=project, endpoint_id=endpoint_id, model_endpoint=mine,
                start_infer_time=start, end_infer_time=end, feature_stats=mine["feature_stats"],
                sample_df_stats=stats, sample_df=sample,
                feature_names=list(mine.get("feature_names") or []), label_names=list(mine.get("label_names") or []),
                window=window,
                reference_sample_loader=getattr(app, "reference_sample_loader", None) or reference_sample_loader,
                artifacts_dir=getattr(app, "artifacts_dir", None) or artifacts_dir)
            output = call_with_timeout(name, lambda: app.do_tracking(context), app_timeout(app), where)
            r, m = normalise_output(output, context)
        except Exception as exc:  # isolation: one app's failure is recorded, never fatal
            message = _describe(exc)
            log.warning("application %r failed on %s: %s", name, where, message[:500])
            errors.append(ErrorRecord(project, endpoint_id, _record_name(name), APP_FAILED,
                                      message[:MAX_MESSAGE], end))
            continue
        results += r
        metrics += m
    unmatched = unmatched_columns(agg, feature_stats)
    if unmatched is not None:
        errors.append(ErrorRecord(project, endpoint_id, HISTOGRAM_DATA_DRIFT, UNMATCHED_COLUMNS, unmatched, end))
    return WindowOutput(project, endpoint_id, start_ms, end_ms, revision, 0, prediction,
                        tuple(results), tuple(metrics), tuple(errors), tuple(window_feature_drift(results)))


UNMATCHED_COLUMNS = "mm-app-unmatched-columns"
"""The error type of a window whose rows have no value in any column of the reference."""


def unmatched_columns(agg: WindowAggregate, feature_stats: Mapping[str, Any]) -> str | None:
    """Why a window that received rows has nothing to compare with the reference (no value in any
    reference column: renamed or re-cased features, all-null inputs), or None when it has."""
    acc = agg.accumulator
    if not agg.rows or acc is None or int(acc.count.sum()) + int(acc.cat_count.sum()) > 0:
        return None
    seen = sorted(agg.unknown_columns)
    invalid = int(acc.invalid.sum())
    return (f"the window's {agg.rows} rows have no value in any column of the reference: its columns "
            f"{seen[:20]}{'...' if len(seen) > 20 else ''} (all null when they are the reference's"
            f"{f', or {invalid} values that are not numbers' if invalid else ''}), the "
            f"reference's {sorted(feature_stats)[:20]}{'...' if len(feature_stats) > 20 else ''}; were features "
            "renamed or re-cased, or are the inputs empty?")
