"""The window stage with its applications (:class:`MonitorWindows`), and the writer stage.

The applications run in the window stage's Python operator, on each window as it fires: PyFlink
hands every record between two Python operators through the JVM (serialised, sent, read back), so
a window would otherwise cross three more times before it is written (to the applications, to a
Python step keying it for the writer, and to the alert stage). Its records now cross once, keyed
for the writer in the JVM; the rare alert events leave by a side output."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import time
import zlib

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from streamdrift.operators.app_calls import call_with_timeout
from streamdrift.operators.catalog import endpoint_catalog
from streamdrift.operators.windows import EndpointWindows
from streamdrift.udfs.alerts import events_from_output
from streamdrift.udfs.monitor import WindowOutput, monitor_window, window_dead_letter, window_failed
from streamdrift.udfs.reloading import Reloading
from streamdrift.udfs.window import WindowAggregate

LATE = -1
END_OF_INPUT = (1 << 63) - 2  # an event time only the last watermark of a bounded input passes
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
    """A closed window (a row of :data:`streamdrift.operators.windows.OUTPUT_TYPE`) →
    :class:`streamdrift.udfs.monitor.WindowOutput` (every enabled application run on it): what
    :class:`MonitorWindows` does with each window it emits."""

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
        # totals since the subtask started, for the operator's gauges (windows fire in timers, where
        # PyFlink reports no counter's increments): applications that failed, windows that failed
        self.failed_apps = 0
        self.failed_windows = 0

    def _applications(self) -> list:
        """The enabled applications, reloaded from the registry every ``apps_refresh_seconds``
        (a registry that cannot be read keeps the ones loaded before)."""
        self.apps.refresh()
        return self.apps.value

    def prepare(self, key: str) -> None:
        """Let the applications work out what depends on the endpoint's reference alone
        (``prepare_reference(feature_stats, layout)``, where an application has it) before its
        windows fire:
        at 10,000 endpoints that work at the first firing was ~15 % of it. A failure here is not
        the window's: the firing meets it again and records it."""
        record, layout = self.catalog.record(key), self.catalog.layout(key)
        stats = (record or {}).get("feature_stats")
        if not stats or layout is None:
            return
        for app in self._applications():
            prepare = getattr(app, "prepare_reference", None)
            if callable(prepare):
                try:
                    prepare(stats, layout)
                except Exception:  # noqa: BLE001
                    log.debug("application %r could not prepare endpoint %s", app, key, exc_info=True)

    def run(self, value) -> WindowOutput:
        out = self._run(value[0], value[1], value[2], value[3], value[4])
        return dataclasses.replace(out, fired_ms=value[5]) if len(value) > 5 else out

    def _run(self, key: str, start: int, end: int, revision: int, body: bytes) -> WindowOutput:
        record = None
        try:
            record = self.catalog.record(key)
            agg = WindowAggregate.from_bytes(body, self.catalog.layout_by_fingerprint)
            if revision == LATE:
                return WindowOutput((record or {}).get("project") or self.project, key, start, end, LATE, agg.rows,
                                    None)
            out = monitor_window(record, key, self.project, start, end, agg, self._applications(), revision,
                                 call=call_with_timeout)
        except Exception as exc:  # noqa: BLE001 - one window's fault: an error record, the job goes on
            log.exception("window %s/%s of endpoint %s failed", start, end, key)
            self.failed_windows += 1
            return window_failed((record or {}).get("project") or self.project, key, start, end, revision, exc)
        self.failed_apps += len(out.errors)
        return out


WINDOW_OUTPUT_TYPE = Types.ROW([Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
"""What :class:`MonitorWindows` emits per window: the writer's bucket (:class:`WriterBucket`) and
the :class:`streamdrift.udfs.monitor.WindowOutput`, pickled (:func:`pickle.dumps`: PyFlink's own
pickled type goes through cloudpickle, several times slower, and again into the writer's state);
the job keys it by the bucket in the JVM."""

ALERT_EVENTS = OutputTag("alert-events", Types.ROW([Types.STRING(), Types.PICKLED_BYTE_ARRAY()]))
"""Side output of :class:`MonitorWindows`: (endpoint id, :class:`streamdrift.udfs.alert_config.AlertEvent`)
for each result or failure of a window that can raise an alert (``streamdrift.udfs.alerts.events_from_output``)."""


class MonitorWindows(EndpointWindows):
    """:class:`streamdrift.operators.windows.EndpointWindows` whose windows go through the
    applications (:class:`RunApplications`) as they fire: emits a :data:`WINDOW_OUTPUT_TYPE` row
    per window, its alert events to :data:`ALERT_EVENTS` (``verdict``: the default application's
    result that raises data-drift events, None: both), and the window stage's dead letters."""

    def __init__(self, load_endpoints, window_ms: int, allowed_lateness_ms: int, idle_grace_ms: int,
                 applications: RunApplications, writer_keys: int | list[int], verdict: str | None = None):
        super().__init__(load_endpoints, window_ms, allowed_lateness_ms, idle_grace_ms)
        self.applications = applications
        self.bucket = WriterBucket(writer_keys)
        self.verdict = verdict

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.applications.open(runtime_context)
        group = runtime_context.get_metrics_group()
        group.gauge("app_failures", lambda: self.applications.failed_apps)
        self.failed_alert_events = 0
        group.gauge("alert_event_failures", lambda: self.failed_alert_events)

    def _window_failures(self) -> int:
        return self.failed_windows + self.applications.failed_windows

    def _list_once(self, key: str) -> None:
        if key not in self.listed:  # the endpoint's first partial in this worker
            self.applications.prepare(key)
        super()._list_once(key)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        return self._monitored(super().process_element(value, ctx))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        return self._monitored(super().on_timer(timestamp, ctx))

    def _monitored(self, emitted):
        for item in emitted:
            if not isinstance(item, Row):  # a side output: (tag, value)
                yield item
                continue
            out = self.applications.run(item)
            yield Row(self.bucket(out), pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
            try:
                events = events_from_output(out, self.verdict)
            except Exception:  # noqa: BLE001 - the window is written; only its alerts are missed
                log.exception("the alert events of endpoint %s window %s failed", out.endpoint_id, out.start_ms)
                self.failed_alert_events += 1
                continue
            for event in events:
                yield ALERT_EVENTS, Row(event.endpoint_id, event)


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

    def __call__(self, out: WindowOutput) -> int:
        return self.keys[zlib.crc32(out.endpoint_id.encode("utf-8", "surrogatepass")) % len(self.keys)]


WRITE_FAILURES = OutputTag("write-failures", Types.STRING())
"""Side output of :class:`WriteOutputs`: dead letters of windows a store refused for good."""


class WriteOutputs(KeyedProcessFunction):
    """Writes windows' records to the stores (idempotently) in batches: at most ``max_batch``
    windows at a time, in one write per store; a batch not full is written when the next watermark
    reaches the writer (a watermark closes every endpoint's window at once, and the window stage
    hands it on after them) or ``linger_ms`` after its first window, whichever comes first. Returns
    a one-line summary row per window. The windows waiting are keyed state (checkpointed: none is
    lost by a restart). A window a store refuses for good (not an outage, which is waited out) goes
    to the side output :data:`WRITE_FAILURES` as a dead letter with the store's message; the
    endpoint's record shows the problem, and the job goes on."""

    def __init__(self, open_writer, max_batch: int = 1000, linger_ms: int = 200):
        self.open_writer = open_writer
        self.max_batch = max_batch
        self.linger_ms = linger_ms

    def open(self, runtime_context: RuntimeContext):
        self.writer = self.open_writer()
        # the windows as they come, pickled (WINDOW_OUTPUT_TYPE): stored and read back as bytes
        self.waiting = runtime_context.get_list_state(ListStateDescriptor("waiting-window-bytes",
                                                                          Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self.count = runtime_context.get_state(ValueStateDescriptor("waiting-window-count", Types.INT()))
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

    def close(self):
        self.writer.close()

    def process_element(self, data: bytes, ctx: KeyedProcessFunction.Context):
        self.waiting.add(data)
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        if n == 1:
            timers = ctx.timer_service()
            timers.register_processing_time_timer(timers.current_processing_time() + self.linger_ms)
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
        yield from self._flush()

    def _flush(self):
        outs = [pickle.loads(data) for data in self.waiting.get() or []]
        self.waiting.clear()
        self.count.clear()
        if not outs:
            return
        started = time.time()
        refused = {id(out): reason for out, reason in self.writer.write_many(outs)}
        written_ms = int(time.time() * 1000)
        fired = [out.fired_ms for out in outs if out.fired_ms is not None]
        if fired:
            self.write_delay_ms = written_ms - min(fired)
        log.info("wrote %d windows in %.0f ms (%d refused); %s ms from the earliest firing", len(outs),
                 written_ms - started * 1000, len(refused), self.write_delay_ms if fired else "-")
        for out in outs:
            if id(out) in refused:
                self.refused += 1
                message = f"a store refused the window's records: {refused[id(out)]}"
                log.error("endpoint %s window %s-%s: %s", out.endpoint_id, out.start_ms, out.end_ms, message)
                self.writer.record_problem(out, "store-write-failed", message)
                yield WRITE_FAILURES, window_dead_letter(out, message)
            else:
                self.written += 1
                yield summary_row(out, written_ms)


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
