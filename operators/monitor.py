"""The window stage's hand-over to the writer (:class:`WindowsToWriter`), and the writer stage,
which runs the applications on its batches of windows and writes them (:class:`WriteOutputs`).

The applications run in the writer, on each batch of windows before it is written: the built-in
ones work out the numbers of the whole batch in one pass of numpy (``prepare_windows``) instead of
one window at a time (mostly Python around arrays of a few columns). PyFlink hands every record
between two Python operators through the JVM (serialised, sent, read back), so a window crosses
once, from the window stage to the writer, as its merged aggregate keyed for the writer in the
JVM; the rare alert events leave the writer by a side output."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import time
import zlib

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag
from pyflink.datastream import TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from streamdrift.operators.app_calls import call_with_timeout
from streamdrift.operators.catalog import endpoint_catalog, keep_out_of_collections
from streamdrift.operators.windows import END_OF_INPUT, EndpointWindows
from streamdrift.udfs.alerts import events_from_output
from streamdrift.udfs.monitor import WindowOutput, monitor_window, window_dead_letter, window_failed, windows_prepared
from streamdrift.udfs.reloading import Reloading
from streamdrift.udfs.verdict import load_tail_function
from streamdrift.udfs.window import WindowAggregate

LATE = -1
log = logging.getLogger("streamdrift.applications")

SUMMARY_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "window_end", "revision", "rows", "general_drift", "status", "top_features",
     "fired_ms", "written_ms"],
    [Types.STRING(), Types.LONG(), Types.LONG(), Types.INT(), Types.LONG(), Types.DOUBLE(), Types.INT(),
     Types.STRING(), Types.LONG(), Types.LONG()],
)
"""One row per written window; ``fired_ms`` and ``written_ms``: the wall clock (epoch ms) when the
window stage fired it and when the stores had its records."""


class RunApplications:
    """Closed windows (rows of :data:`streamdrift.operators.windows.OUTPUT_TYPE`) →
    :class:`streamdrift.udfs.monitor.WindowOutput` (every enabled application run on each): what
    :class:`WriteOutputs` does with each batch before writing it."""

    def __init__(self, load_endpoints, load_apps, project: str, apps_refresh_seconds: float = 30.0):
        self.load_endpoints = load_endpoints
        self.load_apps = load_apps
        self.project = project
        self.apps_refresh_seconds = apps_refresh_seconds

    def open(self, runtime_context: RuntimeContext):
        self.catalog = endpoint_catalog(self.load_endpoints)
        self.catalog.refresh()  # now, not when the first windows fire (seconds at 10,000 endpoints)
        self.apps = Reloading(lambda: list(self.load_apps()), self.apps_refresh_seconds, "applications")
        self.apps.refresh()
        load_tail_function()
        # totals since the subtask started, for the operator's gauges (windows fire in timers, where
        # PyFlink reports no counter's increments): applications that failed, windows that failed
        self.failed_apps = 0
        self.failed_windows = 0

    def _applications(self) -> list:
        """The enabled applications, reloaded from the registry every ``apps_refresh_seconds``
        (a registry that cannot be read keeps the ones loaded before)."""
        self.apps.refresh()
        return self.apps.value

    def prepare(self, endpoint_ids) -> None:
        """Let the applications work out what depends on each endpoint's reference alone
        (``prepare_reference(feature_stats, layout)``, where an application has it) before its
        windows come: at 10,000 endpoints that work in the first windows' batches was seconds. A
        failure here is not a window's: the window meets it again and records it."""
        apps = [app for app in self._applications() if callable(getattr(app, "prepare_reference", None))]
        for key in endpoint_ids:
            record, layout = self.catalog.record(key), self.catalog.layout(key)
            stats = (record or {}).get("feature_stats")
            if not stats or layout is None:
                continue
            for app in apps:
                try:
                    app.prepare_reference(stats, layout)
                except Exception:  # noqa: BLE001
                    log.debug("application %r could not prepare endpoint %s", app, key, exc_info=True)

    def run_many(self, values) -> list[WindowOutput]:
        """Windows (rows of :data:`streamdrift.operators.windows.OUTPUT_TYPE`, or their tuples) →
        their :class:`streamdrift.udfs.monitor.WindowOutput`, in order. The built-in applications
        work out the numbers of all of them together first (``prepare_windows``); one window's
        fault is its own error record."""
        aggs, windows = [], []
        for value in values:
            try:
                agg = WindowAggregate.from_bytes(value[4], self.catalog.layout_by_fingerprint)
                if value[3] != LATE:
                    windows.append((self.catalog.record(value[0]), agg))
            except Exception:  # noqa: BLE001 - the window's own run meets it again and records it
                agg = None
            aggs.append(agg)
        apps = self._applications()
        with windows_prepared(apps, windows):
            outs = [self._run(value[0], value[1], value[2], value[3], value[4], agg, apps)
                    for value, agg in zip(values, aggs)]
        return [dataclasses.replace(out, fired_ms=value[5]) if len(value) > 5 else out
                for value, out in zip(values, outs)]

    def _run(self, key: str, start: int, end: int, revision: int, body: bytes, agg: WindowAggregate | None,
             apps: list) -> WindowOutput:
        record = None
        try:
            record = self.catalog.record(key)
            if agg is None:
                agg = WindowAggregate.from_bytes(body, self.catalog.layout_by_fingerprint)
            if revision == LATE:
                return WindowOutput((record or {}).get("project") or self.project, key, start, end, LATE, agg.rows,
                                    None)
            out = monitor_window(record, key, self.project, start, end, agg, apps, revision,
                                 call=call_with_timeout)
        except Exception as exc:  # noqa: BLE001 - one window's fault: an error record, the job goes on
            log.exception("window %s/%s of endpoint %s failed", start, end, key)
            self.failed_windows += 1
            return window_failed((record or {}).get("project") or self.project, key, start, end, revision, exc)
        self.failed_apps += len(out.errors)
        return out


WINDOW_OUTPUT_TYPE = Types.ROW([Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
"""What :class:`WindowsToWriter` emits per window: the writer's bucket (:class:`WriterBucket`) and
the window (a row of :data:`streamdrift.operators.windows.OUTPUT_TYPE` as a tuple, its aggregate
as bytes) pickled (:func:`pickle.dumps`: PyFlink's own pickled type goes through cloudpickle,
several times slower, and again into the writer's state); the job keys it by the bucket in the JVM."""

ALERT_EVENTS = OutputTag("alert-events", Types.ROW([Types.STRING(), Types.PICKLED_BYTE_ARRAY()]))
"""Side output of :class:`WriteOutputs`: (endpoint id, :class:`streamdrift.udfs.alert_config.AlertEvent`)
for each result or failure of a window that can raise an alert (``streamdrift.udfs.alerts.events_from_output``)."""


WRITER_START = b""
"""What :class:`WindowsToWriter` sends each writer key once, at its first record: the writer
opens then, not at the first windows (the writer ignores it)."""


class WindowsToWriter(EndpointWindows):
    """:class:`streamdrift.operators.windows.EndpointWindows` whose windows go to the writer as
    they fire: emits a :data:`WINDOW_OUTPUT_TYPE` row per window, and the window stage's dead
    letters."""

    def __init__(self, load_endpoints, window_ms: int, allowed_lateness_ms: int, idle_grace_ms: int,
                 writer_keys: int | list[int], *, max_disorder_ms: int):
        super().__init__(load_endpoints, window_ms, allowed_lateness_ms, idle_grace_ms,
                         max_disorder_ms=max_disorder_ms)
        self.bucket = WriterBucket(writer_keys)

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.writers_started = False

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        if not self.writers_started:
            # PyFlink opens a Python operator at its first bundle: without a record now, the writer
            # would load the catalog and prepare its endpoints when the first windows fire
            self.writers_started = True
            for key in self.bucket.keys:
                yield Row(key, WRITER_START)
        yield from self._keyed(super().process_element(value, ctx))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        return self._keyed(super().on_timer(timestamp, ctx))

    def _keyed(self, emitted):
        for item in emitted:
            if not isinstance(item, Row):  # a side output: (tag, value)
                yield item
                continue
            window = (item[0], item[1], item[2], item[3], bytes(item[4]), item[5])
            yield Row(self.bucket(item[0]), pickle.dumps(window, protocol=pickle.HIGHEST_PROTOCOL))


class WriterBucket:
    """The writer's key: the key of one of the buckets of the window's endpoint id (CRC-32: the same
    in every worker process). The windows that close together are written by every writer subtask,
    each its share in batches; an endpoint's windows and their corrections all reach one writer,
    in order. ``keys``: the buckets' keys (the job's spread evenly over the writer's subtasks:
    ``jobs.pyflink_internals.balanced_int_keys``), or a number of buckets keyed 0, 1, ..."""

    def __init__(self, keys: int | list[int]):
        self.keys = list(range(max(1, int(keys)))) if isinstance(keys, int) else [int(k) for k in keys]
        if not self.keys:
            raise ValueError("the writer needs at least one bucket key")

    def __call__(self, endpoint_id: str) -> int:
        return self.keys[zlib.crc32(endpoint_id.encode("utf-8", "surrogatepass")) % len(self.keys)]


WRITE_FAILURES = OutputTag("write-failures", Types.STRING())
"""Side output of :class:`WriteOutputs`: dead letters of windows a store refused for good."""


class WriteOutputs(KeyedProcessFunction):
    """Runs the applications on windows (:class:`RunApplications`) and writes their records to
    the stores (idempotently) in batches: at most ``max_batch`` windows at a time, in one write per
    store; a batch not full is written when the next watermark reaches the writer (a watermark
    closes every endpoint's window at once, or a few groups' when windows are staggered, and the
    window stage hands it on after them) or
    ``linger_ms`` after its first window, whichever comes first (the linger timer of a batch
    written full is ignored when it fires: it would cut the next batch short while a firing's windows
    still come, and write the rest of them later, when a later stale timer fires). Returns a one-line summary row
    per window; the windows' alert events go to :data:`ALERT_EVENTS` (``verdict``: the default
    application's result that raises data-drift events, None: both). The windows waiting are
    keyed state (checkpointed: none is lost by a restart). A window a store refuses for good (not
    an outage, which is waited out) goes to the side output :data:`WRITE_FAILURES` as a dead letter
    with the store's message; the endpoint's record shows the problem, and the job goes on."""

    def __init__(self, open_writer, applications: RunApplications, writer_keys: int | list[int],
                 verdict: str | None = None, max_batch: int = 1000, linger_ms: int = 200):
        self.open_writer = open_writer
        self.applications = applications
        self.bucket = WriterBucket(writer_keys)
        self.verdict = verdict
        self.max_batch = max_batch
        self.linger_ms = linger_ms

    def open(self, runtime_context: RuntimeContext):
        self.writer = self.open_writer()
        self.applications.open(runtime_context)
        # the endpoints whose windows come here: the i-th writer key is on subtask i % parallelism
        # (jobs.pyflink_internals.balanced_int_keys); after a rescale the guess is only less useful
        mine = set(self.bucket.keys[runtime_context.get_index_of_this_subtask()::
                                    runtime_context.get_number_of_parallel_subtasks()])
        self.applications.prepare(e for e in self.applications.catalog.endpoint_ids() if self.bucket(e) in mine)
        keep_out_of_collections()  # after the plans: they live as long as the catalog
        # the windows as they come, pickled (WINDOW_OUTPUT_TYPE): stored and read back as bytes
        self.waiting = runtime_context.get_list_state(ListStateDescriptor("waiting-window-bytes",
                                                                          Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self.count = runtime_context.get_state(ValueStateDescriptor("waiting-window-count", Types.INT()))
        # when the waiting batch's linger ends (processing time, ms); none in a savepoint of an earlier version
        self.deadline = runtime_context.get_state(ValueStateDescriptor("waiting-window-deadline", Types.LONG()))
        # gauges, not counters: most windows are written from a timer, and PyFlink does not report a
        # counter's increments made in one (the numbers are this subtask's totals since it started)
        self.written = self.refused = 0
        self.write_delay_ms = 0
        group = runtime_context.get_metrics_group()
        group.gauge("windows_written", lambda: self.written)
        # how far the stores are behind the windows: from the firing of the earliest window of the
        # last batch to the end of its write
        group.gauge("window_write_delay_ms", lambda: self.write_delay_ms)
        group.gauge("windows_refused_by_store", lambda: self.refused)
        group.gauge("store_retries", lambda: self.writer.retries)
        group.gauge("app_failures", lambda: self.applications.failed_apps)
        group.gauge("window_failures", lambda: self.applications.failed_windows)
        self.failed_alert_events = 0
        group.gauge("alert_event_failures", lambda: self.failed_alert_events)

    def close(self):
        self.writer.close()

    def process_element(self, data: bytes, ctx: KeyedProcessFunction.Context):
        if len(data) == 0:  # WRITER_START: this operator is open now, nothing to write
            return
        self.waiting.add(data)
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        if n == 1:
            timers = ctx.timer_service()
            deadline = timers.current_processing_time() + self.linger_ms
            self.deadline.update(deadline)
            timers.register_processing_time_timer(deadline)
            # and at the next watermark: the window stage hands a watermark on after every window it
            # fired at it, so a firing's last batch is written once complete, at the latest (a
            # processing-time timer reaches Python only when the writer's bundle ends, 1-2 s later at
            # 10,000 endpoints; with several window subtasks an earlier watermark may cut a batch short)
            watermark = timers.current_watermark()
            if watermark < END_OF_INPUT:
                timers.register_event_time_timer(watermark + 1)
            # and at the end of a bounded input (its last watermark), which drops processing-time timers
            timers.register_event_time_timer(END_OF_INPUT)
        if n >= self.max_batch:
            yield from self._flush()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        deadline = self.deadline.value()
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME and deadline is not None and timestamp != deadline:
            return  # the linger of a batch already written
        yield from self._flush()

    def _flush(self):
        items = [pickle.loads(data) for data in self.waiting.get() or []]
        self.waiting.clear()
        self.count.clear()
        self.deadline.clear()
        if not items:
            return
        started = time.time()
        monitored = iter(self.applications.run_many([item for item in items if not isinstance(item, WindowOutput)]))
        # a window kept by an earlier version of the job (its savepoint) came with its applications run
        outs = [item if isinstance(item, WindowOutput) else next(monitored) for item in items]
        applied = time.time()
        refused = {id(out): reason for out, reason in self.writer.write_many(outs)}
        written_ms = int(time.time() * 1000)
        fired = [out.fired_ms for out in outs if out.fired_ms is not None]
        if fired:
            self.write_delay_ms = written_ms - min(fired)
        log.info("ran the applications on %d windows in %.0f ms and wrote them in %.0f ms (%d refused); "
                 "%s ms from the earliest firing", len(outs), (applied - started) * 1000,
                 written_ms - applied * 1000, len(refused), self.write_delay_ms if fired else "-")
        for out in outs:
            yield from self._alert_events(out)
            if id(out) in refused:
                self.refused += 1
                message = f"a store refused the window's records: {refused[id(out)]}"
                log.error("endpoint %s window %s-%s: %s", out.endpoint_id, out.start_ms, out.end_ms, message)
                self.writer.record_problem(out, "store-write-failed", message)
                yield WRITE_FAILURES, window_dead_letter(out, message)
            else:
                self.written += 1
                yield summary_row(out, written_ms)

    def _alert_events(self, out: WindowOutput):
        try:
            events = events_from_output(out, self.verdict)
        except Exception:  # noqa: BLE001 - the window is written; only its alerts are missed
            log.exception("the alert events of endpoint %s window %s failed", out.endpoint_id, out.start_ms)
            self.failed_alert_events += 1
            return
        for event in events:
            yield ALERT_EVENTS, Row(event.endpoint_id, event)


def summary_row(out: WindowOutput, written_ms: int | None = None) -> Row:
    """The one-line summary of a written window (``--print``): rows, general_drift, its status and
    the three most drifted columns."""
    drift = next((r for r in out.results if r.result_name == "general_drift"), None)
    top = ""
    if drift is not None:
        columns = drift.extra_data.get("columns", {})
        worst = sorted(columns, key=lambda name: -columns[name]["drift"])[:3]
        top = json.dumps({name: round(columns[name]["drift"], 3) for name in worst})
    rows = out.prediction.count if out.prediction is not None else out.late_rows
    return Row(out.endpoint_id, out.start_ms, out.end_ms, out.revision, rows,
               None if drift is None else drift.value, None if drift is None else drift.status, top, out.fired_ms,
               written_ms)
