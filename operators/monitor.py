"""The monitoring applications stage and the writer stage."""

from __future__ import annotations

import json
import logging
import time

from pyflink.common import Row, Types
from pyflink.datastream.functions import MapFunction, RuntimeContext

from udfs.catalog import EndpointCatalog
from udfs.monitor import WindowOutput, monitor_window
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
        key, start, end, revision, body = value[0], value[1], value[2], value[3], value[4]
        agg = WindowAggregate.from_bytes(body, self.catalog.layout_by_fingerprint)
        if revision == LATE:
            record = self.catalog.record(key) or {}
            return WindowOutput(record.get("project") or self.project, key, start, end, LATE, agg.rows, None)
        out = monitor_window(self.catalog.record(key), key, self.project, start, end, agg, self._applications(),
                             revision)
        self.app_failures.inc(len(out.errors))
        return out


class WriteOutputs(MapFunction):
    """Writes a window's records to the stores (idempotently); returns a one-line summary row."""

    def __init__(self, open_writer):
        self.open_writer = open_writer

    def open(self, runtime_context: RuntimeContext):
        self.writer = self.open_writer()
        group = runtime_context.get_metrics_group()
        self.windows_written = group.counter("windows_written")

    def close(self):
        self.writer.close()

    def map(self, out: WindowOutput) -> Row:
        self.writer.write(out)
        self.windows_written.inc()
        drift = next((r for r in out.results if r.result_name == "general_drift"), None)
        top = ""
        if drift is not None:
            columns = drift.extra_data.get("columns", {})
            worst = sorted(columns, key=lambda name: -columns[name]["drift"])[:3]
            top = json.dumps({name: round(columns[name]["drift"], 3) for name in worst})
        rows = out.prediction.count if out.prediction is not None else out.late_rows
        return Row(out.endpoint_id, out.start_ms, out.end_ms, out.revision, rows,
                   None if drift is None else drift.value, None if drift is None else drift.status, top)
