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

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from udfs.catalog import EndpointCatalog
from udfs.window import WindowAggregate

LATE = -1
COMPACT_EVERY = 16

DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
"""Side output: the dead letters (their JSON) that come in beside the partials (flag ``dead``)."""

INPUT_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "body", "late", "dead"],
    [Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.BOOLEAN(), Types.BOOLEAN()],
)
"""A partial (body: its aggregate) or, with ``dead``, a dead letter (body: its JSON)."""

OUTPUT_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "window_end", "revision", "body"],
    [Types.STRING(), Types.LONG(), Types.LONG(), Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE())],
)


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
        self.catalog = EndpointCatalog(self.load_endpoints)
        group = runtime_context.get_metrics_group()
        self.late_partials = group.counter("late_partials")
        self.corrections = group.counter("corrections")
        self.idle_closes = group.counter("idle_closes")

    def _agg(self, data: bytes) -> WindowAggregate:
        return WindowAggregate.from_bytes(data, self.catalog.layout_by_fingerprint)

    def _compact(self, start: int, extra: bytes | None = None) -> bytes:
        """Merge the window's aggregate, its pending partials and ``extra`` into one; store it."""
        n = self.n_pending.get(start) or 0
        parts = [self.aggs.get(start)] + [self.pending.get(f"{start}/{i}") for i in range(n)] + [extra]
        parts = [p for p in parts if p is not None]
        if len(parts) == 1:
            data = parts[0]
        else:
            data = WindowAggregate.merge_all([self._agg(part) for part in parts]).to_bytes()
        self.aggs.put(start, data)
        for i in range(n):
            self.pending.remove(f"{start}/{i}")
        self.n_pending.remove(start)
        return data

    def _windows(self) -> list[int]:
        return sorted(set(self.aggs.keys()) | set(self.n_pending.keys()))

    def _emit(self, key: str, start: int, revision: int, data: bytes) -> Row:
        return Row(key, start, start + self.window_ms, revision, data)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        key, start, body = value[0], value[1], value[2]  # endpoint_id, window_start, body[, late[, dead]]
        if len(value) > 4 and value[4]:
            yield DEAD_LETTERS, bytes(body).decode()
            return
        flagged = len(value) > 3 and bool(value[3])  # late by the watermark where it was read
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
        # rounded up to the second: one timer per endpoint and second, not one per partial
        timers.register_processing_time_timer((now + self.idle_ms) // 1000 * 1000 + 1000)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        key = ctx.get_current_key()
        timers = ctx.timer_service()
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            for start in self._windows():
                end = start + self.window_ms
                if end - 1 + self.lateness <= timestamp:
                    if self.revisions.get(start) is None:
                        yield self._emit(key, start, 0, self._compact(start))
                    self._forget(start)
                elif end - 1 <= timestamp and self.revisions.get(start) is None:
                    self.revisions.put(start, 0)
                    yield self._emit(key, start, 0, self._compact(start))
                    if self.lateness > 0:
                        timers.register_event_time_timer(end - 1 + self.lateness)
        else:  # processing time: close windows that went idle
            for start in self._windows():
                touched = self.touched.get(start)
                if self.revisions.get(start) is None and touched is not None and touched + self.idle_ms <= timestamp:
                    self.revisions.put(start, 0)
                    self.idle_closes.inc()
                    yield self._emit(key, start, 0, self._compact(start))
                    if self.lateness > 0:
                        timers.register_event_time_timer(start + self.window_ms - 1 + self.lateness)

    def _forget(self, start: int) -> None:
        for i in range(self.n_pending.get(start) or 0):
            self.pending.remove(f"{start}/{i}")
        self.n_pending.remove(start)
        self.aggs.remove(start)
        self.revisions.remove(start)
        self.touched.remove(start)
