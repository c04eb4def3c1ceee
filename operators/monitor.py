"""The monitoring applications stage and the writer stage."""

from __future__ import annotations

import json
import logging
import time

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import MapFunction, ProcessFunction, RuntimeContext

from operators.metrics import ShowOnce
from udfs.catalog import EndpointCatalog
from udfs.monitor import WindowOutput, monitor_window, window_dead_letter, window_failed
from udfs.window import WindowAggregate

LATE = -1
log = logging.getLogger("streamdrift.applications")

SUMMARY_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "window_end", "revision", "rows", "general_drift", "status", "top_features"],
    [Types.STRING(), Types.LONG(), Types.LONG(), Types.INT(), Types.LONG(), Types.DOUBLE(), Types.INT(),
     Types.STRING()],
)


class RunApplications(MapFunction):
    """A closed window → :class:`udfs.monitor.WindowOutput` (every enabled application run on it)."""

    def __init__(self, load_endpoints, load_apps, project: str, apps_refresh_seconds: float = 30.0):
        self.load_endpoints = load_endpoints
        self.load_apps = load_apps
        self.project = project
        self.apps_refresh_seconds = apps_refresh_seconds

    def open(self, runtime_context: RuntimeContext):
        self.catalog = EndpointCatalog(self.load_endpoints)
        self.apps = list(self.load_apps())
        self.apps_loaded = time.monotonic()
        group = runtime_context.get_metrics_group()
        self.app_failures = group.counter("app_failures")
        self.window_failures = group.counter("window_failures")
        self.show_counters = ShowOnce(self.window_failures)

    def _applications(self) -> list:
        """The enabled applications, reloaded from the registry every ``apps_refresh_seconds``
        (a registry that cannot be read keeps the ones loaded before)."""
        if time.monotonic() - self.apps_loaded >= self.apps_refresh_seconds:
            self.apps_loaded = time.monotonic()
            try:
                self.apps = list(self.load_apps())
            except Exception as exc:
                log.warning("reloading the applications failed (%s); keeping %d", type(exc).__name__, len(self.apps))
        return self.apps

    def map(self, value) -> WindowOutput:
        self.show_counters()
        key, start, end, revision, body = value[0], value[1], value[2], value[3], value[4]
        record = None
        try:
            record = self.catalog.record(key)
            agg = WindowAggregate.from_bytes(body, self.catalog.layout_by_fingerprint)
            if revision == LATE:
                return WindowOutput((record or {}).get("project") or self.project, key, start, end, LATE, agg.rows,
                                    None)
            out = monitor_window(record, key, self.project, start, end, agg, self._applications(), revision)
        except Exception as exc:  # noqa: BLE001 - one window's fault: an error record, the job goes on
            log.exception("window %s/%s of endpoint %s failed", start, end, key)
            self.window_failures.inc()
            return window_failed((record or {}).get("project") or self.project, key, start, end, revision, exc)
        self.app_failures.inc(len(out.errors))
        return out


WRITE_FAILURES = OutputTag("write-failures", Types.STRING())
"""Side output of :class:`WriteOutputs`: dead letters of windows a store refused for good."""


class WriteOutputs(ProcessFunction):
    """Writes a window's records to the stores (idempotently); returns a one-line summary row. A
    window a store refuses for good (not an outage, which is waited out) goes to the side output
    :data:`WRITE_FAILURES` as a dead letter with the store's message; the endpoint's record shows
    the problem, and the job goes on."""

    def __init__(self, open_writer):
        self.open_writer = open_writer

    def open(self, runtime_context: RuntimeContext):
        self.writer = self.open_writer()
        group = runtime_context.get_metrics_group()
        self.windows_written = group.counter("windows_written")
        self.windows_refused = group.counter("windows_refused_by_store")
        group.gauge("store_retries", lambda: self.writer.retries)
        self.show_counters = ShowOnce(self.windows_refused)

    def close(self):
        self.writer.close()

    def process_element(self, out: WindowOutput, ctx):
        from connectors.job_io import WindowNotWritten

        self.show_counters()
        try:
            self.writer.write(out)
        except WindowNotWritten as exc:
            self.windows_refused.inc()
            message = f"a store refused the window's records: {exc}"
            log.error("endpoint %s window %s-%s: %s", out.endpoint_id, out.start_ms, out.end_ms, message)
            self.writer.record_problem(out, "store-write-failed", message)
            yield WRITE_FAILURES, window_dead_letter(out, message)
            return
        self.windows_written.inc()
        drift = next((r for r in out.results if r.result_name == "general_drift"), None)
        top = ""
        if drift is not None:
            columns = drift.extra_data.get("columns", {})
            worst = sorted(columns, key=lambda name: -columns[name]["drift"])[:3]
            top = json.dumps({name: round(columns[name]["drift"], 3) for name in worst})
        rows = out.prediction.count if out.prediction is not None else out.late_rows
        yield Row(out.endpoint_id, out.start_ms, out.end_ms, out.revision, rows,
                   None if drift is None else drift.value, None if drift is None else drift.status, top)
