"""The per-endpoint tumbling event-time window, with allowed lateness and an idle close.

Keyed by group of endpoints (:func:`endpoint_group`: the job keys each record by its endpoint's
group in the JVM). Input: partial aggregates (a row per group and batch, holding the group's
partials of the batch: few per endpoint), and the dead letters,
which go to the side output :data:`DEAD_LETTERS`; state: one merged aggregate per open window and
endpoint (bounded by columns × bins + sample size) and its revision. Partials are appended as they
come and merged into the window's aggregate every ``COMPACT_EVERY`` partials (and when a
correction, an idle close or MLRun's ``batch_complete`` fires it), so the large merged state is
read and written once per ``COMPACT_EVERY`` partials, not per partial; and at each partial in the
last ``CLOSING_MS`` of the window's events (:meth:`EndpointWindows._closing`), so that a window
that gets partials then fires with nothing left to merge: with windows aligned on the epoch every
endpoint's window fires at one watermark, in one burst that the writer waits for (staggered, a
group's windows at a time).

All the windows of a group's endpoints live in one map state (:class:`WindowSlots`): PyFlink sends
each keyed state a key changed in a bundle to the JVM in its own blocking request at the bundle's
end (~0.3 ms each, whatever its size), so the requests per bundle are the groups it touched, not
the endpoints; and one timer of a group fires all of its endpoints' windows that end together.

* event time: a window fires when the watermark passes its end. Neither that firing nor the
  drop of older windows at the same watermark writes to the state: no window of the bundle
  reaches the writer before the commit at the bundle's end ends. A window
  stored NOT_FIRED whose end the watermark has passed has fired (:meth:`EndpointWindows._fired`),
  unless its first partial came after that (``OPENED_LATE``, stored); a window leaves the state
  at its expiry (:meth:`EndpointWindows._expiry`), half a window away from its group's firings;
* idle close: when no partial arrives for a window during ``base_period + grace`` of processing
  time, it fires anyway (the watermark does not move when traffic stops; MLRun loses that window);
* lateness: partials up to ``allowed_lateness`` after the window fired update it and fire it again
  with the next revision (the writer replaces the earlier result); later ones are counted and
  emitted with revision -1 (the writer adds them to the endpoint's late count). A partial is later
  still when its ``late`` flag says so (the watermark where its records were read had passed:
  the rule of the late flag in Parquet) or when this operator's watermark has passed, or when
  its window has left the state (the group's ``group-expired-start``: after a restore the
  watermark starts again, and such a partial would otherwise open a new window whose firing
  replaces the window's result).
"""

from __future__ import annotations

import json
import logging
import pickle
import struct
import time
from typing import NamedTuple

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, TimeDomain
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from streamdrift.operators.metrics import ShowOnce
from streamdrift.operators.catalog import endpoint_catalog, keep_out_of_collections
from streamdrift.udfs.endpoint_id import GROUPS, endpoint_group  # noqa: F401 - the stage's keys, named here too
from streamdrift.udfs.window import WindowAggregate

LATE = -1
COMPACT_EVERY = 16
CLOSING_MS = 5_000
"""Event time, ms: in a window's last ``CLOSING_MS`` of events (at most a quarter of the window)
its partials are merged as they come (:meth:`EndpointWindows._closing`). Each merge then costs
~0.1 ms of Python; 5 s at 10,000 endpoints with events in real time is 2-3 partials per endpoint
window, so most windows get one there and fire with nothing left to merge."""
log = logging.getLogger("streamdrift.windows")

DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
"""Side output: the dead letters (their JSON) that come in beside the partials (flag ``dead``)."""

INPUT_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "body", "late", "dead", "close"],
    [Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.BOOLEAN(), Types.BOOLEAN(),
     Types.BOOLEAN()],
)
"""The partials of one group of endpoints from one batch of the parse stage (body: :func:`pack_partials`;
``endpoint_id``: one of theirs, the key's); with ``dead``, a dead letter (body: its JSON); with
``close``, MLRun's ``batch_complete``: the endpoint's windows that start at or before
``window_start`` close."""

OUTPUT_TYPE = Types.ROW_NAMED(
    ["endpoint_id", "window_start", "window_end", "revision", "body", "fired_ms"],
    [Types.STRING(), Types.LONG(), Types.LONG(), Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG()],
)
"""A window's aggregate as it fires (``fired_ms``: the wall clock then, epoch ms; the writer
measures from it how long the window took to be written)."""


class PartialRow(NamedTuple):
    """One partial aggregate as it comes to the window stage."""

    endpoint_id: str
    window_start: int  # epoch ms
    late: bool  # late by the watermark where its records were read (streamdrift.udfs.batch.EventClock)
    body: bytes  # its aggregate (WindowAggregate.to_bytes)


PARTIALS_MAGIC = b"SDP1"
"""The first bytes of a body of partials (:func:`pack_partials`); a body of an earlier version of
the job is one aggregate (``SDWA``)."""


def pack_partials(partials: list[PartialRow]) -> bytes:
    """The body of the window stage's input row that carries ``partials`` (one group's, from one
    batch): one record for the group instead of one per partial, since PyFlink, the JVM's keyBy
    and the stage pay per record. :data:`PARTIALS_MAGIC` and a pickle: it only travels between
    the job's own operators.

    >>> rows = [PartialRow('ep1', 60_000, False, b'SDWA..'), PartialRow('ep2', 0, True, b'SDWA.')]
    >>> unpack_partials(pack_partials(rows)) == rows
    True
    """
    return PARTIALS_MAGIC + pickle.dumps([tuple(p) for p in partials], protocol=pickle.HIGHEST_PROTOCOL)


def unpack_partials(body: bytes, row: PartialRow | None = None) -> list[PartialRow]:
    """The partials of :func:`pack_partials`; a body of one aggregate (what earlier versions of the
    job sent, in flight across an upgrade) is ``row``'s partial, ``row`` its row's fields.
    Raises ``ValueError`` on a body that is neither.

    >>> unpack_partials(b'SDWA..', PartialRow('ep1', 0, False, b''))
    [PartialRow(endpoint_id='ep1', window_start=0, late=False, body=b'SDWA..')]
    """
    body = bytes(body)
    if not body.startswith(PARTIALS_MAGIC):
        if row is not None and body.startswith(b"SDWA"):
            return [row._replace(body=body)]
        raise ValueError(f"not a body of partials (it starts {body[:4]!r})")
    try:
        rows = pickle.loads(body[len(PARTIALS_MAGIC):])
        return [PartialRow(str(e), int(s), bool(late), bytes(b)) for e, s, late, b in rows]
    except Exception as exc:  # noqa: BLE001 - any malformed body is the same error
        raise ValueError(f"not a body of partials ({type(exc).__name__}: {exc})") from None


class WindowMeta(NamedTuple):
    """What the window stage knows of one open window besides its counts."""

    touched: int  # processing time of its last partial, ms
    revision: int  # NOT_FIRED, or the revision it last fired with
    pending: int  # partials appended since the last merge
    merged: bool  # whether a merged aggregate is stored (a look for one that is not is a round trip)


NOT_FIRED = -1
UNKNOWN_WATERMARK = -(1 << 63)  # Flink's watermark before the first one of a new or restored job
END_OF_INPUT = (1 << 63) - 2  # an event time only the last watermark of a bounded input (or a drain) passes
OPENED_LATE = -2  # its first partial came when the watermark had passed its end: it fires at the next one
_META = struct.Struct("<qii?")


EARLIER_STATE, EARLIER_SLOTS = "endpoint-windows", 32
"""The window stage's map state in savepoints of versions that keyed it by endpoint (its keys:
window start × 32 + slot)."""

GROUP_SQL = "SUBSTRING(MD5(COALESCE(endpoint_id, '')) FROM 1 FOR 2)"
""":func:`endpoint_group` in Flink SQL (the job keys the window stage's input by it)."""


class WindowSlots:
    """The map-state keys of an endpoint's window: slot 0 its :class:`WindowMeta`, 1 its merged
    aggregate, 2.. its pending partials. ``"<start>/<slot>/<endpoint id>"``: the id last, so that
    any id gives a key of its own, and :meth:`parse` gives all three back.

    >>> key = WindowSlots.key('ep/1', -60_000, WindowSlots.PENDING + 3)
    >>> key, WindowSlots.parse(key)
    ('-60000/5/ep/1', ('ep/1', -60000, 5))
    """

    SLOTS = 32
    META, MERGED, PENDING = 0, 1, 2

    @staticmethod
    def key(endpoint_id: str, start: int, slot: int) -> str:
        return f"{start}/{slot}/{endpoint_id}"

    @staticmethod
    def parse(key: str) -> tuple[str, int, int]:
        """(endpoint id, start, slot) of a key of :meth:`key`."""
        start, slot, endpoint_id = key.split("/", 2)
        return endpoint_id, int(start), int(slot)


assert WindowSlots.PENDING + COMPACT_EVERY <= WindowSlots.SLOTS


def pack_meta(meta: WindowMeta) -> bytes:
    """
    >>> unpack_meta(pack_meta(WindowMeta(1_764_158_400_123, NOT_FIRED, 15, True)))
    WindowMeta(touched=1764158400123, revision=-1, pending=15, merged=True)
    """
    return _META.pack(*meta)


def unpack_meta(data: bytes) -> WindowMeta:
    return WindowMeta._make(_META.unpack(bytes(data)))


class EndpointWindows(KeyedProcessFunction):
    def __init__(self, load_endpoints, window_ms: int, allowed_lateness_ms: int, idle_grace_ms: int, *,
                 max_disorder_ms: int):
        self.load_endpoints = load_endpoints
        self.window_ms = window_ms
        self.lateness = allowed_lateness_ms
        self.idle_ms = window_ms + idle_grace_ms
        self.max_disorder_ms = max_disorder_ms  # the watermark's bound on disorder: how far it trails the events

    def open(self, runtime_context: RuntimeContext):
        self.state = runtime_context.get_map_state(MapStateDescriptor("group-windows", Types.STRING(),
                                                                      Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self.listed: set[str] = set()
        # the start of the group's latest window that has left the state: a partial of it or of an
        # earlier one is late, whatever the watermark (which starts again after a restore)
        self.expired = runtime_context.get_state(ValueStateDescriptor("group-expired-start", Types.LONG()))
        # (group, timestamp) of the window-end timers this instance registered that have not fired
        # yet: a partial of a window whose group has that timer set needs no second registration,
        # which PyFlink sends to the JVM each time (~7 % of the stage at 10,000 endpoints). A new
        # instance (a restart, a restore) starts empty: its first partials register them again.
        self.armed: set[tuple[str, int]] = set()
        # the same for the expiry timers (:meth:`_expiry`) this instance registered: a new instance
        # sets a group's again at its first timer, as the allowed lateness may have changed
        self.expiries: set[tuple[str, int]] = set()
        # the state of a savepoint of an earlier version, keyed by endpoint (EARLIER_STATE)
        self.earlier = runtime_context.get_map_state(MapStateDescriptor(EARLIER_STATE, Types.LONG(),
                                                                        Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self.earlier_checked: set[str] = set()
        self.opened_ms = int(time.time() * 1000)
        self.catalog = endpoint_catalog(self.load_endpoints)
        self.catalog.refresh()  # now, not when the first windows fire (seconds at 10,000 endpoints)
        keep_out_of_collections()
        group = runtime_context.get_metrics_group()
        self.late_partials = group.counter("late_partials")
        self.corrections = group.counter("corrections")
        self.idle_closes = group.counter("idle_closes")
        # a gauge: windows fail in timers too, and PyFlink reports no counter's increments made in one
        self.failed_windows = 0
        group.gauge("window_failures", self._window_failures)
        self.batch_closes = group.counter("batch_complete_closes")
        self.show_counters = ShowOnce(self.late_partials, self.corrections, self.idle_closes, self.batch_closes)

    def _window_failures(self) -> int:
        """Windows this subtask failed since it started (the gauge ``window_failures``)."""
        return self.failed_windows

    def _list_once(self, group: str) -> None:
        """Read the group's whole window state once in this worker. PyFlink's cache then holds
        every entry of it (the job sets its map-state cache to hold a group), so looking for one
        that does not exist (the meta of a window's first partial) needs no round trip to the JVM;
        it answers only for entries read or written before. A hint, not state: after the cache
        drops the group the looks are round trips again."""
        if group not in self.listed:
            self._windows(group)

    def _windows(self, group: str) -> list[tuple[int, str, WindowMeta]]:
        """The group's open windows: (start, endpoint id, meta) of each (a window has a meta entry
        from its first partial until :meth:`_forget`), in that order. One look at the whole map:
        answered from PyFlink's cache once it holds the group, else one round trip to the JVM."""
        windows = []
        for k, v in self.state.items():
            endpoint_id, start, slot = WindowSlots.parse(k)
            if slot == WindowSlots.META:
                windows.append((start, endpoint_id, unpack_meta(v)))
        self.listed.add(group)
        return sorted(windows)

    def _meta(self, endpoint_id: str, start: int) -> WindowMeta | None:
        data = self.state.get(WindowSlots.key(endpoint_id, start, WindowSlots.META))
        return None if data is None else unpack_meta(data)

    def _fired(self, start: int, meta: WindowMeta, watermark: int | None) -> int:
        """The revision window ``start`` last fired with, or NOT_FIRED. Its firing when the
        watermark passed its end is not stored: a window stored NOT_FIRED whose end the watermark
        ``watermark`` has passed fired then, with revision 0 (Flink fires a key's event-time
        timers before it hands on any element that sees the later watermark)."""
        if meta.revision >= 0:
            return meta.revision
        if meta.revision == NOT_FIRED and watermark is not None and start + self.window_ms - 1 <= watermark:
            return 0
        return NOT_FIRED

    def _put_meta(self, endpoint_id: str, start: int, meta: WindowMeta) -> None:
        self.state.put(WindowSlots.key(endpoint_id, start, WindowSlots.META), pack_meta(meta))

    def _failed(self, endpoint_id: str, start: int, what: str, exc: Exception):
        """One window's fault: its state is dropped and a dead letter says why (the job goes on)."""
        log.exception("endpoint %s window %s: %s failed", endpoint_id, start, what)
        self.failed_windows += 1
        self._forget(endpoint_id, start, None)
        return DEAD_LETTERS, json.dumps({"kind": "window", "endpoint_id": endpoint_id, "window_start_ms": start,
                                         "reason": f"the window stage failed ({what}): {type(exc).__name__}: {exc}"})

    def _merged(self, endpoint_id: str, start: int, meta: WindowMeta, extra: bytes | None = None) -> bytes:
        """The window's aggregate merged with its pending partials and ``extra`` (nothing stored)."""
        key = WindowSlots.key
        parts = [self.state.get(key(endpoint_id, start, WindowSlots.MERGED))] if meta.merged else []
        parts += [self.state.get(key(endpoint_id, start, WindowSlots.PENDING + i)) for i in range(meta.pending)]
        parts = [p for p in parts + [extra] if p is not None]
        if len(parts) == 1:
            return parts[0]
        return WindowAggregate.merge_bytes(parts, self.catalog.layout_by_fingerprint,
                                           unknown_reference="drop").to_bytes()

    def _compact(self, endpoint_id: str, start: int, meta: WindowMeta, extra: bytes | None = None,
                 **changes) -> bytes:
        """Merge the window's aggregate, its pending partials and ``extra`` into one; store it with
        its meta (``changes``: fields of the meta to set besides)."""
        data = self._merged(endpoint_id, start, meta, extra)
        self.state.put(WindowSlots.key(endpoint_id, start, WindowSlots.MERGED), data)
        for i in range(meta.pending):
            self.state.remove(WindowSlots.key(endpoint_id, start, WindowSlots.PENDING + i))
        self._put_meta(endpoint_id, start, meta._replace(pending=0, merged=True, **changes))
        return data

    def _timer_starts(self, timestamp: int) -> set[int]:
        """The starts of the windows an event-time timer at ``timestamp`` is for: the one it fires
        (its end - 1) and the one it drops (:meth:`_expiry`), if any."""
        expiring = self._expiring(timestamp)
        return {timestamp + 1 - self.window_ms} | ({expiring} if self._expiry(expiring) == timestamp else set())

    def _arm_expiry(self, group: str, start: int, timers) -> None:
        """Set the timer that drops window ``start`` of ``group``, unless this instance has."""
        expiry = self._expiry(start)
        if (group, expiry) not in self.expiries:
            timers.register_event_time_timer(expiry)
            self.expiries.add((group, expiry))

    def _tidy(self, group: str, windows, timestamp: int, timers) -> None:
        """After an event-time timer at ``timestamp``: drop the group's ``windows`` past their
        expiry and set the expiry timer of those fired (once per instance: a new one sets them
        again). Needed where the timers in the state were set by another configuration (a restore
        with another allowed lateness, a savepoint of an earlier version), which would otherwise
        leave a window in the state for good."""
        for start, endpoint_id, meta in windows:
            if self._expiry(start) <= timestamp:
                self._forget(endpoint_id, start, meta)
            elif start + self.window_ms - 1 <= timestamp:
                self._arm_expiry(group, start, timers)

    def _closing(self, end: int, watermark: int | None) -> bool:
        """Whether a window ending at ``end`` (event time, ms) gets its last ``CLOSING_MS`` of
        events: the watermark (event time, ms), which trails the latest event by at least
        ``max_disorder_ms``, is that close to its end. A partial then is merged into the window at
        once, so a window that gets one fires (with every endpoint's window, in the burst the
        writer waits for) without merging. At most a quarter of a short window: merging there
        costs a merge per partial instead of one per ``COMPACT_EVERY``."""
        lead = self.max_disorder_ms + min(CLOSING_MS, self.window_ms // 4)
        return watermark is not None and watermark != UNKNOWN_WATERMARK and end - 1 - lead <= watermark

    def _expiry(self, start: int) -> int:
        """When window ``start`` leaves the state (event time, ms): the first time half a window
        after a firing (``start + window_ms / 2 - 1`` plus whole windows) after the end of its
        allowed lateness, its end - 1 without lateness: a partial the watermark meets exactly there
        still corrects it, as the parse stage does not flag it late. Dropping a group's windows
        commits its key, and at the end of a lateness of whole windows the group's next window
        fires (every endpoint's, when windows are aligned): there, the commit would hold them back."""
        lateness_end = start + self.window_ms - 1 + self.lateness
        return lateness_end + 1 + (start + self.window_ms // 2 - 2 - lateness_end) % self.window_ms

    def _expiring(self, timestamp: int) -> int:
        """The start of the window whose :meth:`_expiry` is ``timestamp``, if any window's is (else
        a start whose expiry is not ``timestamp``)."""
        phase = timestamp - (self.window_ms // 2 - 1)
        return phase + (timestamp - self.window_ms - self.lateness - phase) // self.window_ms * self.window_ms

    def _emit(self, endpoint_id: str, start: int, revision: int, data: bytes) -> Row:
        return Row(endpoint_id, start, start + self.window_ms, revision, data, int(time.time() * 1000))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        self.show_counters()
        endpoint_id, start, body = value[0], value[1], value[2]  # endpoint_id, window_start, body[, late[, dead[, close]]]
        if len(value) > 4 and value[4]:
            yield DEAD_LETTERS, bytes(body).decode()
            return
        if len(value) > 5 and value[5]:
            yield from self._close_up_to(ctx.get_current_key(), endpoint_id, start, ctx.timer_service())
            return
        try:
            partials = unpack_partials(body, PartialRow(endpoint_id, start, len(value) > 3 and bool(value[3]), b""))
        except ValueError as exc:  # no window's state is touched: the partials in it are not known
            log.error("a row of partials of endpoint %s's group could not be read: %s", endpoint_id, exc)
            self.failed_windows += 1
            yield DEAD_LETTERS, json.dumps({
                "kind": "window", "endpoint_id": endpoint_id, "window_start_ms": start,
                "reason": "the window stage could not read a row of partials (those of one batch of the parse stage "
                          f"for this endpoint's group of endpoints, which are lost): {exc}"})
            return
        for p in partials:
            try:
                yield from self._partial(p.endpoint_id, p.window_start, p.body, p.late, ctx)
            except Exception as exc:  # noqa: BLE001
                yield self._failed(p.endpoint_id, p.window_start, "adding a partial", exc)

    def _partial(self, endpoint_id: str, start: int, body: bytes, flagged: bool, ctx):
        """A partial of window ``start``; ``flagged``: late by the watermark where it was read."""
        end = start + self.window_ms
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        if flagged or end - 1 + self.lateness < watermark:
            self.late_partials.inc()
            yield self._emit(endpoint_id, start, LATE, body)
            return
        now = timers.current_processing_time()
        group = ctx.get_current_key()
        self._list_once(group)
        meta = self._meta(endpoint_id, start)
        if meta is None and self._expired(start):
            self.late_partials.inc()
            yield self._emit(endpoint_id, start, LATE, body)
            return
        fired = NOT_FIRED if meta is None else self._fired(start, meta, watermark)
        if fired != NOT_FIRED:  # already fired: a correction by late data
            revision = fired + 1
            data = self._compact(endpoint_id, start, meta, body, touched=now, revision=revision)
            self.corrections.inc()
            yield self._emit(endpoint_id, start, revision, data)
            return
        first = meta is None
        opened = OPENED_LATE if watermark is not None and end - 1 <= watermark else NOT_FIRED
        meta = (meta or WindowMeta(now, opened, 0, False))._replace(touched=now)
        if meta.pending + 1 >= COMPACT_EVERY or self._closing(end, watermark):
            self._compact(endpoint_id, start, meta, body)
        else:
            self.state.put(WindowSlots.key(endpoint_id, start, WindowSlots.PENDING + meta.pending), body)
            self._put_meta(endpoint_id, start, meta._replace(pending=meta.pending + 1))
        # also when not first: a window stored NOT_FIRED that the watermark has not passed may still
        # have fired, before a restore, whose watermark starts again from the records read after it.
        # Its end's timer, set again after the restore, fires it anew (the writer replaces the
        # earlier result)
        if (group, end - 1) not in self.armed:
            if first and opened == OPENED_LATE:
                self._store_fired(endpoint_id, start, group)
            timers.register_event_time_timer(end - 1)
            self.armed.add((group, end - 1))
        if first:
            # the idle close: one timer per window, which re-arms itself from the window's last
            # partial when it fires early (one per partial and second fired ~10,000 a second at
            # 10,000 endpoints, each reading the key's state)
            timers.register_processing_time_timer(self._idle_deadline(now))

    def _expired(self, start: int) -> bool:
        """Whether the group's window ``start`` has left the state (its latest to have left is not earlier)."""
        expired = self.expired.value()
        return expired is not None and start <= expired

    def _note_expired(self, windows, timestamp: int, watermark: int | None) -> None:
        """Note the latest of ``windows`` (start, ...) that an event-time timer at ``timestamp`` drops,
        unless the last watermark of the input drops it (``flink stop --drain``): a job started again
        from that savepoint goes on with the window the input's end cut short."""
        if watermark is not None and watermark >= END_OF_INPUT:
            return
        starts = [w[0] for w in windows if self._expiry(w[0]) <= timestamp]
        if starts and not self._expired(max(starts)):
            self.expired.update(max(starts))

    def _store_fired(self, endpoint_id: str, start: int, group: str) -> None:
        """Store as fired (revision 0) the group's other windows at ``start`` whose firing is only
        implied by the watermark: the end timer set again for this endpoint's window, opened after
        that end, would fire them anew."""
        for other_start, other, meta in self._windows(group):
            if other_start == start and other != endpoint_id and meta.revision == NOT_FIRED:
                self._put_meta(other, start, meta._replace(revision=0))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        group = ctx.get_current_key()
        if group not in self.earlier_checked:
            self.earlier_checked.add(group)
            yield from self._earlier_windows(group)
        event_time = ctx.time_domain() == TimeDomain.EVENT_TIME
        timers = ctx.timer_service()
        listed = self._windows(group)
        if event_time:
            self.armed.discard((group, timestamp))
            self.expiries.discard((group, timestamp))
            starts = self._timer_starts(timestamp)
            windows = [w for w in listed if w[0] in starts]
        else:
            windows = listed
        for start, endpoint_id, meta in windows:
            try:
                out = self._on_timer(group, endpoint_id, start, meta, timestamp, event_time, timers)
            except Exception as exc:  # noqa: BLE001
                out = self._failed(endpoint_id, start, "firing the window", exc)
            if out is not None:
                yield out
        if event_time:
            try:
                self._note_expired(listed, timestamp, timers.current_watermark())
                self._tidy(group, [w for w in listed if w[0] not in starts], timestamp, timers)
            except Exception:  # noqa: BLE001 - nothing is lost: the next timer of the group tries again
                log.exception("group %s: dropping or setting the expiry of its windows failed", group)

    def _earlier_windows(self, key: str):
        """A dead letter per window that a savepoint of an earlier version holds under ``key`` (an
        endpoint id: that version keyed the stage by endpoint), and the state dropped: its windows'
        partials are not merged into this version's. Its timers come here, under their key. Stopped
        with ``flink stop --drain``, that version fired and dropped all of them itself."""
        starts = sorted({k // EARLIER_SLOTS for k in self.earlier.keys()})
        for start in starts:
            self.failed_windows += 1
            yield DEAD_LETTERS, json.dumps({
                "kind": "window", "endpoint_id": key, "window_start_ms": start,
                "reason": "the window was open in a savepoint of an earlier version of the job, which kept "
                          "windows per endpoint: it is dropped (stop that version with its windows fired, "
                          "flink stop --drain, before starting this one from its savepoint)"})
        if starts:
            log.error("dropped %d windows of endpoint %s left by an earlier version's savepoint", len(starts), key)
            self.earlier.clear()

    def _close_up_to(self, group: str, endpoint_id: str, last_ms: int, timers):
        """MLRun's ``batch_complete``: every open window of the endpoint that starts at or before
        ``last_ms`` fires now (as an idle window would), without waiting for the watermark."""
        for start, other, meta in self._windows(group):
            if other != endpoint_id or start > last_ms:
                continue
            try:
                if self._fired(start, meta, timers.current_watermark()) != NOT_FIRED:
                    continue
                self.batch_closes.inc()
                self._arm_expiry(group, start, timers)
                yield self._emit(endpoint_id, start, 0, self._compact(endpoint_id, start, meta, revision=0))
            except Exception as exc:  # noqa: BLE001
                yield self._failed(endpoint_id, start, "closing the window at batch_complete", exc)

    def _on_timer(self, group: str, endpoint_id: str, start: int, meta: WindowMeta, timestamp: int, event_time: bool,
                  timers):
        """What a timer at ``timestamp`` does to window ``start`` of the endpoint: its output row, or None."""
        end = start + self.window_ms
        unfired = meta.revision in (NOT_FIRED, OPENED_LATE)
        if event_time:
            if self._expiry(start) <= timestamp:
                self._forget(endpoint_id, start, meta)  # the end's timer, earlier, has fired it
                return None
            if end - 1 == timestamp and unfired:
                self._arm_expiry(group, start, timers)
                if meta.revision == OPENED_LATE:  # not implied by the watermark: stored (rare)
                    self._put_meta(endpoint_id, start, meta._replace(revision=0))
                return self._emit(endpoint_id, start, 0, self._merged(endpoint_id, start, meta))
            return None
        # processing time: close a window that went idle, or look again when it can have
        watermark = timers.current_watermark()
        if self._fired(start, meta, watermark) != NOT_FIRED:
            return None
        touched = meta.touched
        if watermark is None or watermark == UNKNOWN_WATERMARK:
            # no watermark yet since this worker opened (a restore): whether the window fired
            # before it is not known yet, so it is idle only from the opening on
            touched = max(touched, self.opened_ms)
        if touched + self.idle_ms > timestamp:
            timers.register_processing_time_timer(self._idle_deadline(touched))
            return None
        self.idle_closes.inc()
        self._arm_expiry(group, start, timers)
        return self._emit(endpoint_id, start, 0, self._compact(endpoint_id, start, meta, revision=0))

    def _idle_deadline(self, touched: int) -> int:
        """When a window last touched at ``touched`` (processing time, ms) is idle: ``idle_ms``
        later, rounded up to the second (the timers of a second coincide, the group's too)."""
        return (touched + self.idle_ms) // 1000 * 1000 + 1000

    def _forget(self, endpoint_id: str, start: int, meta: WindowMeta | None) -> None:
        """Drop the window's entries (``meta``: its meta when read; else every slot it can have)."""
        if meta is None:
            try:
                meta = self._meta(endpoint_id, start)
            except Exception:  # noqa: BLE001 - an unreadable meta: drop every slot
                meta = None
        pending = COMPACT_EVERY if meta is None else meta.pending
        slots = [WindowSlots.META, WindowSlots.MERGED] + [WindowSlots.PENDING + i for i in range(pending)]
        for slot in slots:
            self.state.remove(WindowSlots.key(endpoint_id, start, slot))
