"""The per-endpoint tumbling event-time window, with allowed lateness and an idle close.

Keyed by endpoint. Input: partial aggregates (few per batch and endpoint), and the dead letters,
which go to the side output :data:`DEAD_LETTERS` (they come keyed by the empty string); state: one merged
aggregate per open window (bounded by columns × bins + sample size) and its revision. Partials are
appended as they come and merged into the window's aggregate every ``COMPACT_EVERY`` partials and
when the window fires, so the large merged state is read and written once per ``COMPACT_EVERY``
partials, not per partial.

* event time: a window fires when the watermark passes its end;
* idle close: when no partial arrives for a window during ``base_period + grace`` of processing
  time, it fires anyway (the watermark does not move when traffic stops; MLRun loses that window);
* lateness: partials up to ``allowed_lateness`` after the window fired update it and fire it again
  with the next revision (the writer replaces the earlier result); later ones are counted and
  emitted with revision -1 (the writer adds them to the endpoint's late count). A partial is later
  still when its ``late`` flag says so (the watermark where its records were read had passed:
  the rule of the late flag in Parquet) or when this operator's watermark has passed.
"""

from __future__ import annotations

import json
import logging
import time

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from streamdrift.operators.metrics import ShowOnce
from streamdrift.operators.catalog import endpoint_catalog
from streamdrift.udfs.window import WindowAggregate

LATE = -1
COMPACT_EVERY = 16
log = logging.getLogger("streamdrift.windows")

DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
"""Side output: the dead letters (their JSON) that come in beside the partials (flag ``dead``)."""

INPUT_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "body", "late", "dead", "close"],
    [Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.BOOLEAN(), Types.BOOLEAN(),
     Types.BOOLEAN()],
)
"""A partial (body: its aggregate); with ``dead``, a dead letter (body: its JSON); with ``close``,
MLRun's ``batch_complete``: the endpoint's windows that start at or before ``window_start`` close."""

OUTPUT_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "window_end", "revision", "body", "fired_ms"],
    [Types.STRING(), Types.LONG(), Types.LONG(), Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG()],
)
"""A window's aggregate as it fires (``fired_ms``: the wall clock then, epoch ms; the writer
measures from it how long the window took to be written)."""


class EndpointWindows(KeyedProcessFunction):
    def __init__(self, load_endpoints, window_ms: int, allowed_lateness_ms: int, idle_grace_ms: int):
        self.load_endpoints = load_endpoints
        self.window_ms = window_ms
        self.lateness = allowed_lateness_ms
        self.idle_ms = window_ms + idle_grace_ms

    def open(self, runtime_context: RuntimeContext):
        blob = Types.PRIMITIVE_ARRAY(Types.BYTE())
        self.aggs = runtime_context.get_map_state(MapStateDescriptor("window-aggregates", Types.LONG(), blob))
        self.revisions = runtime_context.get_map_state(MapStateDescriptor("window-revisions", Types.LONG(), Types.INT()))
        self.touched = runtime_context.get_map_state(MapStateDescriptor("window-touched", Types.LONG(), Types.LONG()))
        self.pending = runtime_context.get_map_state(MapStateDescriptor("window-pending", Types.STRING(), blob))
        self.n_pending = runtime_context.get_map_state(MapStateDescriptor("window-pending-count", Types.LONG(),
                                                                          Types.INT()))
        self.catalog = endpoint_catalog(self.load_endpoints)
        self.catalog.refresh()  # now, not when the first windows fire (seconds at 10,000 endpoints)
        group = runtime_context.get_metrics_group()
        self.late_partials = group.counter("late_partials")
        self.corrections = group.counter("corrections")
        self.idle_closes = group.counter("idle_closes")
        self.window_failures = group.counter("window_failures")
        self.batch_closes = group.counter("batch_complete_closes")
        self.show_counters = ShowOnce(self.late_partials, self.corrections, self.idle_closes, self.window_failures,
                                      self.batch_closes)

    def _failed(self, key: str, start: int, what: str, exc: Exception):
        """One window's fault: its state is dropped and a dead letter says why (the job goes on)."""
        log.exception("endpoint %s window %s: %s failed", key, start, what)
        self.window_failures.inc()
        self._forget(start)
        return DEAD_LETTERS, json.dumps({"kind": "window", "endpoint_id": key, "window_start_ms": start,
                                         "reason": f"the window stage failed ({what}): {type(exc).__name__}: {exc}"})

    def _compact(self, start: int, extra: bytes | None = None) -> bytes:
        """Merge the window's aggregate, its pending partials and ``extra`` into one; store it."""
        n = self.n_pending.get(start) or 0
        parts = [self.aggs.get(start)] + [self.pending.get(f"{start}/{i}") for i in range(n)] + [extra]
        parts = [p for p in parts if p is not None]
        if len(parts) == 1:
            data = parts[0]
        else:
            data = WindowAggregate.merge_bytes(parts, self.catalog.layout_by_fingerprint,
                                               unknown_reference="drop").to_bytes()
        self.aggs.put(start, data)
        for i in range(n):
            self.pending.remove(f"{start}/{i}")
        self.n_pending.remove(start)
        return data

    def _windows(self) -> list[int]:
        """The key's open windows: each partial puts its window in ``touched``, :meth:`_forget` takes it out."""
        return sorted(self.touched.keys())

    def _timer_windows(self, timestamp: int) -> list[int]:
        """The open windows an event-time timer at ``timestamp`` is for: the one it fires (its end
        - 1) and the one whose allowed lateness it ends (end - 1 + lateness). Every window
        registers both timers, so no other window needs a look; listing the key's windows
        (:meth:`_windows`) is a round trip to the JVM's state at every timer, which PyFlink does
        not cache (a third of the stage's time while 10,000 endpoints' windows fired). One look
        (``touched``, written by every partial), not two: a state that is not cached is a round trip."""
        fire = timestamp + 1 - self.window_ms
        return [start for start in sorted({fire, fire - self.lateness}) if self.touched.contains(start)]

    def _emit(self, key: str, start: int, revision: int, data: bytes) -> Row:
        return Row(key, start, start + self.window_ms, revision, data, int(time.time() * 1000))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        self.show_counters()
        key, start, body = value[0], value[1], value[2]  # endpoint_id, window_start, body[, late[, dead[, close]]]
        if len(value) > 4 and value[4]:
            yield DEAD_LETTERS, bytes(body).decode()
            return
        if len(value) > 5 and value[5]:
            yield from self._close_up_to(key, start, ctx.timer_service())
            return
        try:
            yield from self._partial(key, start, body, len(value) > 3 and bool(value[3]), ctx)
        except Exception as exc:  # noqa: BLE001
            yield self._failed(key, start, "adding a partial", exc)

    def _partial(self, key: str, start: int, body: bytes, flagged: bool, ctx):
        """A partial of window ``start``; ``flagged``: late by the watermark where it was read."""
        end = start + self.window_ms
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        if flagged or end - 1 + self.lateness < watermark:
            self.late_partials.inc()
            yield self._emit(key, start, LATE, body)
            return
        now = timers.current_processing_time()
        first = self.touched.get(start) is None
        self.touched.put(start, now)
        revision = self.revisions.get(start)
        if revision is not None:  # already fired: a correction by late data
            data = self._compact(start, body)
            self.revisions.put(start, revision + 1)
            self.corrections.inc()
            yield self._emit(key, start, revision + 1, data)
            return
        n = self.n_pending.get(start) or 0
        if n + 1 >= COMPACT_EVERY:
            self._compact(start, body)
        else:
            self.pending.put(f"{start}/{n}", body)
            self.n_pending.put(start, n + 1)
        if first:
            timers.register_event_time_timer(end - 1)
            # the idle close: one timer per window, which re-arms itself from the window's last
            # partial when it fires early (one per partial and second fired ~10,000 a second at
            # 10,000 endpoints, each reading the key's state)
            timers.register_processing_time_timer(self._idle_deadline(now))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        key = ctx.get_current_key()
        event_time = ctx.time_domain() == TimeDomain.EVENT_TIME
        for start in self._timer_windows(timestamp) if event_time else self._windows():
            try:
                out = self._on_timer(key, start, timestamp, event_time, ctx.timer_service())
            except Exception as exc:  # noqa: BLE001
                out = self._failed(key, start, "firing the window", exc)
            if out is not None:
                yield out

    def _close_up_to(self, key: str, last_ms: int, timers):
        """MLRun's ``batch_complete``: every open window of the endpoint that starts at or before
        ``last_ms`` fires now (as an idle window would), without waiting for the watermark."""
        for start in self._windows():
            if start <= last_ms and self.revisions.get(start) is None:
                try:
                    self.revisions.put(start, 0)
                    self.batch_closes.inc()
                    if self.lateness > 0:
                        timers.register_event_time_timer(start + self.window_ms - 1 + self.lateness)
                    yield self._emit(key, start, 0, self._compact(start))
                except Exception as exc:  # noqa: BLE001
                    yield self._failed(key, start, "closing the window at batch_complete", exc)

    def _on_timer(self, key: str, start: int, timestamp: int, event_time: bool, timers):
        """What a timer at ``timestamp`` does to window ``start``: its output row, or None."""
        end = start + self.window_ms
        if event_time:
            if end - 1 + self.lateness <= timestamp:
                out = self._emit(key, start, 0, self._compact(start)) if self.revisions.get(start) is None else None
                self._forget(start)
                return out
            if end - 1 <= timestamp and self.revisions.get(start) is None:
                self.revisions.put(start, 0)
                if self.lateness > 0:
                    timers.register_event_time_timer(end - 1 + self.lateness)
                return self._emit(key, start, 0, self._compact(start))
            return None
        # processing time: close a window that went idle, or look again when it can have
        touched = self.touched.get(start)
        if self.revisions.get(start) is not None or touched is None:
            return None
        if touched + self.idle_ms > timestamp:
            timers.register_processing_time_timer(self._idle_deadline(touched))
            return None
        self.revisions.put(start, 0)
        self.idle_closes.inc()
        if self.lateness > 0:
            timers.register_event_time_timer(end - 1 + self.lateness)
        return self._emit(key, start, 0, self._compact(start))

    def _idle_deadline(self, touched: int) -> int:
        """When a window last touched at ``touched`` (processing time, ms) is idle: ``idle_ms``
        later, rounded up to the second (the timers of a second coincide)."""
        return (touched + self.idle_ms) // 1000 * 1000 + 1000

    def _forget(self, start: int) -> None:
        for i in range(self.n_pending.get(start) or 0):
            self.pending.remove(f"{start}/{i}")
        self.n_pending.remove(start)
        self.aggs.remove(start)
        self.revisions.remove(start)
        self.touched.remove(start)
