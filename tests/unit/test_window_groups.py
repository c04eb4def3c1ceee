"""The window stage keyed by groups of endpoints: every endpoint of a group gets its own windows,
fired, corrected, closed when idle or at ``batch_complete``, and dropped, as if it had a key of its
own. Flink's keyed map state, timer service and context are in-memory stand-ins here (named so in
the tests: no Flink runs in a unit test); the integration tests run the stage in the real job."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyflink.datastream import TimeDomain

from streamdrift.operators.windows import (
    CLOSING_MS, DEAD_LETTERS, EARLIER_STATE, END_OF_INPUT, LATE, UNKNOWN_WATERMARK, EndpointWindows, PartialRow, WindowMeta,
    WindowSlots, endpoint_group, pack_meta, pack_partials)
from streamdrift.udfs.window import WindowAggregate

WINDOW = 60_000


def _same_group(n: int, offset: int = 0) -> list[str]:
    """``n`` endpoint ids that share one group (the ``offset``-th group found with ``n``)."""
    by_group = defaultdict(list)
    i = 0
    while True:
        endpoint = f"ep-{i}"
        by_group[endpoint_group(endpoint)].append(endpoint)
        full = [ids for ids in by_group.values() if len(ids) == n]
        if len(full) > offset:
            return full[offset]
        i += 1


class _FlinkStandIn:
    """What the stage sees of Flink, in memory: keyed map states (per state name and key), the
    current key, a watermark, a processing clock and the timers registered per key."""

    def __init__(self):
        self.states = defaultdict(dict)  # (state name, key) -> {map key: value}
        self.key = None
        self.watermark = -1  # one has come (before any, a window is idle only from the opening on)
        self.now = 1_000_000
        self.timers = set()  # (time, domain, key)
        self.registered = defaultdict(int)  # (time, domain, key) -> registrations sent to the JVM
        self.counters = defaultdict(int)
        self.gauges = {}

    # RuntimeContext
    def get_map_state(self, descriptor):
        return _MapStateStandIn(self, descriptor.name)

    def get_state(self, descriptor):
        return _ValueStateStandIn(self, descriptor.name)

    def get_metrics_group(self):
        flink = self

        class Counter:
            def __init__(self, name):
                self.name = name

            def inc(self, n=1):
                flink.counters[self.name] += n

        class Group:
            def counter(self, name):
                return Counter(name)

            def gauge(self, name, fn):
                flink.gauges[name] = fn

        return Group()

    # Context and TimerService
    def timer_service(self):
        return self

    def current_watermark(self):
        return self.watermark

    def current_processing_time(self):
        return self.now

    def register_event_time_timer(self, t):
        self.timers.add((t, TimeDomain.EVENT_TIME, self.key))
        self.registered[(t, TimeDomain.EVENT_TIME, self.key)] += 1

    def register_processing_time_timer(self, t):
        self.timers.add((t, TimeDomain.PROCESSING_TIME, self.key))

    def get_current_key(self):
        return self.key

    def time_domain(self):
        return self.domain


class _MapStateStandIn:
    def __init__(self, flink: _FlinkStandIn, name: str):
        self.flink, self.name = flink, name

    def _map(self) -> dict:
        return self.flink.states[(self.name, self.flink.key)]

    def get(self, k):
        return self._map().get(k)

    def put(self, k, v):
        self._map()[k] = bytes(v)

    def remove(self, k):
        self._map().pop(k, None)

    def keys(self):
        return list(self._map())

    def items(self):
        return list(self._map().items())

    def clear(self):
        self._map().clear()


class _ValueStateStandIn:
    def __init__(self, flink: _FlinkStandIn, name: str):
        self.flink, self.name = flink, name

    def value(self):
        return self.flink.states[(self.name, self.flink.key)].get("value")

    def update(self, v):
        self.flink.states[(self.name, self.flink.key)]["value"] = v

    def clear(self):
        self.flink.states[(self.name, self.flink.key)].clear()


class _Stage:
    """The window stage driven as Flink drives it: each record under its endpoint's group (as the
    job keys it in the JVM), timers fired in time order when the watermark or the clock passes them."""

    def __init__(self, lateness: int = WINDOW, idle_grace: int = 5_000, max_disorder: int = 0, window: int = WINDOW,
                 closing: bool = True):
        self.flink = _FlinkStandIn()
        self.args = (window, lateness, idle_grace, max_disorder, closing)
        self.restart()

    def restart(self) -> None:
        """A new instance of the stage opens on the state as it is (a restore), the watermark unknown
        until one comes. ``closing=False``: a stage that never merges a window's last partials as
        they come, to compare with."""
        window, lateness, idle_grace, max_disorder, closing = self.args
        self.stage = EndpointWindows(lambda: [], window, lateness, idle_grace, max_disorder_ms=max_disorder)
        if not closing:
            self.stage._closing = lambda end, watermark: False
        self.stage.open(self.flink)

    def partial(self, endpoint: str, start: int, rows: int, close: bool = False):
        self.flink.key = endpoint_group(endpoint)
        body = WindowAggregate(rows=rows, events=1).to_bytes()
        if not close:  # as the parse stage sends it: a row of its group's partials
            body = pack_partials([PartialRow(endpoint, start, False, body)])
        return list(self.stage.process_element((endpoint, start, body, False, False, close), self.flink))

    def _fire(self, domain, until: int):
        out = []
        while True:
            due = sorted(t for t in self.flink.timers if t[1] == domain and t[0] <= until)
            if not due:
                return out
            t = due[0]
            self.flink.timers.discard(t)
            self.flink.key, self.flink.domain = t[2], domain
            out += list(self.stage.on_timer(t[0], self.flink))

    def watermark(self, wm: int):
        self.flink.watermark = wm  # as Flink's timer service: the watermark first, then its timers
        return self._fire(TimeDomain.EVENT_TIME, wm)

    def clock(self, now: int):
        self.flink.now = now
        return self._fire(TimeDomain.PROCESSING_TIME, now)

    def entries(self) -> int:
        """The windows' entries in the state (a group's expired start, one number, stays)."""
        return sum(len(m) for (name, _), m in self.flink.states.items() if name == "group-windows")


def _windows(rows) -> dict:
    """(endpoint, start) -> (revision, rows of the aggregate) of each window row emitted."""
    return {(r[0], r[1]): (r[3], WindowAggregate.from_bytes(bytes(r[4])).rows) for r in rows
            if not (isinstance(r, tuple) and r[0] == DEAD_LETTERS)}


def test_the_endpoints_of_one_group_each_fire_their_own_window__flink_stand_in():
    shared, other = _same_group(3), _same_group(1)[0]
    stage = _Stage()
    sent = {shared[0]: [3, 5] * 10, shared[1]: [7], shared[2]: [1, 1, 1], other: [4, 4]}  # 20 partials: compacted
    for endpoint, parts in sent.items():
        for rows in parts:
            assert stage.partial(endpoint, 0, rows) == []
    fired = stage.watermark(WINDOW - 1)
    assert _windows(fired) == {(e, 0): (0, sum(parts)) for e, parts in sent.items()}
    assert len(fired) == 4  # once each
    # half a window after the end of the allowed lateness every window has left the state
    assert stage.watermark(WINDOW * 2 + WINDOW // 2) == []
    assert stage.entries() == 0


def test_a_late_partial_corrects_its_endpoints_window_alone__flink_stand_in():
    a, b = _same_group(2)
    stage = _Stage()
    stage.partial(a, 0, 2)
    stage.partial(b, 0, 3)
    stage.watermark(WINDOW - 1)
    assert _windows(stage.partial(a, 0, 10)) == {(a, 0): (1, 12)}
    assert stage.watermark(WINDOW + 5_000) == []  # nothing fires again
    # past the allowed lateness: counted late, handed on alone
    assert stage.watermark(WINDOW * 2) == []
    assert _windows(stage.partial(b, 0, 1)) == {(b, 0): (LATE, 1)}
    assert stage.flink.counters["late_partials"] == 1 and stage.flink.counters["corrections"] == 1


def test_a_groups_window_end_timer_is_sent_once_until_it_fires_and_again_after_a_restore__flink_stand_in():
    """Flink keeps one timer per key and time however often it is registered, but PyFlink sends
    each registration to the JVM: the stage registers a group's window-end timer once. A restored
    job has the timers of its checkpoint; one that fired before it is gone, and its window, stored
    as not fired (a firing writes nothing), fires again once its partials replayed after the
    checkpoint come, so the new instance registers the timer again."""
    a, b = _same_group(2, offset=2)
    stage = _Stage()
    for _ in range(10):
        stage.partial(a, 0, 1)
        stage.partial(b, 0, 2)
    end = (WINDOW - 1, TimeDomain.EVENT_TIME, endpoint_group(a))
    assert stage.flink.registered[end] == 1
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 10), (b, 0): (0, 20)}
    # a restore from a checkpoint taken after that firing: the state and the other timers are
    # restored, the watermark starts again, a new instance of the stage opens
    stage.stage = EndpointWindows(lambda: [], WINDOW, WINDOW, 5_000, max_disorder_ms=0)
    stage.stage.open(stage.flink)
    stage.flink.watermark = UNKNOWN_WATERMARK
    assert end not in stage.flink.timers
    stage.partial(a, 0, 5)  # a record read again after the checkpoint
    stage.partial(b, 0, 1)
    assert stage.flink.registered[end] == 2
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 15), (b, 0): (0, 21)}  # the writer replaces
    # a failure after the next window's timer was registered, and a restore from a checkpoint
    # taken before that: the timer is not in it, so the replayed partial registers it again
    checkpoint = ({k: dict(v) for k, v in stage.flink.states.items()}, set(stage.flink.timers))
    stage.partial(a, WINDOW, 3)
    stage.flink.states, stage.flink.timers = defaultdict(dict, checkpoint[0]), checkpoint[1]
    stage.stage = EndpointWindows(lambda: [], WINDOW, WINDOW, 5_000, max_disorder_ms=0)
    stage.stage.open(stage.flink)
    stage.partial(a, WINDOW, 3)
    assert _windows(stage.watermark(2 * WINDOW - 1)) == {(a, WINDOW): (0, 3)}


def test_idle_windows_close_on_the_clock_and_batch_complete_closes_one_endpoint__flink_stand_in():
    a, b, c = _same_group(3, offset=1)
    stage = _Stage(idle_grace=5_000)
    for endpoint in (a, b, c):
        stage.partial(endpoint, 0, 2)
    assert _windows(stage.partial(a, 0, 1, close=True)) == {(a, 0): (0, 2)}  # MLRun's batch_complete
    stage.flink.now += 30_000
    stage.partial(b, 0, 5)  # b stays busy
    closed = stage.clock(stage.flink.now + WINDOW + 4_000)  # c's last partial 64 s ago, b's 34 s ago
    assert _windows(closed) == {(c, 0): (0, 2)}
    assert _windows(stage.clock(stage.flink.now + 30_000)) == {(b, 0): (0, 7)}
    assert stage.watermark(WINDOW - 1) == []  # closed windows do not fire again


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.integers(0, 2), st.integers(1, 50)), min_size=1, max_size=80))
def test_every_window_of_every_endpoint_fires_once_with_all_its_rows__flink_stand_in(partials):
    # 12 endpoints, 3 sharing one group and 3 another, the rest spread; windows 0, 1, 2
    endpoints = _same_group(3) + _same_group(3, offset=1) + [f"solo-{i}" for i in range(6)]
    stage = _Stage(lateness=0)
    expected = defaultdict(int)
    for i, window, rows in sorted(partials, key=lambda p: p[1]):  # in event time: nothing late
        stage.flink.watermark = window * WINDOW - 1
        assert _windows(stage.partial(endpoints[i], window * WINDOW, rows)) == {}
        expected[(endpoints[i], window * WINDOW)] += rows
    fired = stage.watermark(3 * WINDOW)
    assert _windows(fired) == {k: (0, n) for k, n in expected.items()}
    assert len(fired) == len(expected)
    assert stage.watermark(4 * WINDOW) == [] and stage.entries() == 0  # gone half a window after the end


@pytest.mark.parametrize("max_disorder", [0, 5_000])
def test_partials_of_a_windows_last_seconds_are_merged_as_they_come_so_the_firing_merges_nothing__flink_stand_in(
        monkeypatch, max_disorder):
    """Once the events of a window's last CLOSING_MS come (the watermark, which trails the latest
    event by the bound on disorder, is that close to the end), each partial of the window is
    merged into its aggregate as it comes (the pending ones with it): the firing, which the writer
    waits for at every endpoint, reads one aggregate per window."""
    a, b = _same_group(2, offset=3)
    stage = _Stage(max_disorder=max_disorder)
    stage.flink.watermark = WINDOW - 1 - max_disorder - CLOSING_MS - 1  # the latest event just before the last seconds
    for rows in (2, 3, 4):
        stage.partial(a, 0, rows)  # kept pending
    stage.partial(b, 0, 6)
    assert _slots(stage, a) == {WindowSlots.META, WindowSlots.PENDING, WindowSlots.PENDING + 1, WindowSlots.PENDING + 2}
    stage.flink.watermark += 1  # the latest event at the first instant of the last seconds
    stage.partial(a, 0, 5)
    stage.partial(b, 0, 1)
    assert _slots(stage, a) == _slots(stage, b) == {WindowSlots.META, WindowSlots.MERGED}
    stage.partial(a, 0, 1)  # and each one after it
    assert _slots(stage, a) == {WindowSlots.META, WindowSlots.MERGED}
    merges = []
    merge_bytes = WindowAggregate.merge_bytes.__func__
    monkeypatch.setattr(WindowAggregate, "merge_bytes",
                        classmethod(lambda cls, parts, *args, **kw: merges.append(len(parts)) or
                                    merge_bytes(cls, parts, *args, **kw)))
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 2 + 3 + 4 + 5 + 1), (b, 0): (0, 6 + 1)}
    assert merges == []


def test_a_short_window_merges_as_they_come_only_in_its_last_quarter_beside_the_disorder__flink_stand_in():
    """The span before a window's end where partials are merged as they come is the bound on
    disorder plus CLOSING_MS, or a quarter of the window when that is shorter: an 8-second window
    with a disorder of 1 s from 3 s before its end (not 6 s), so that a short window does not merge
    at every partial."""
    window, disorder = 8_000, 1_000
    (a,) = _same_group(1, offset=6)
    stage = _Stage(window=window, max_disorder=disorder, lateness=0)
    stage.flink.watermark = window - 1 - (disorder + window // 4) - 1
    stage.partial(a, 0, 2)
    stage.partial(a, 0, 3)
    assert _slots(stage, a) == {WindowSlots.META, WindowSlots.PENDING, WindowSlots.PENDING + 1}
    stage.flink.watermark += 1
    stage.partial(a, 0, 4)
    assert _slots(stage, a) == {WindowSlots.META, WindowSlots.MERGED}
    assert _windows(stage.watermark(window - 1)) == {(a, 0): (0, 9)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2), st.integers(0, WINDOW - 2), st.integers(1, 50)),
                min_size=1, max_size=80), st.sampled_from([0, 5_000, 20_000]))
def test_partials_in_event_time_order_fire_each_window_once_with_all_its_rows__flink_stand_in(partials, max_disorder):
    # the watermark anywhere from the window's start to just before its end: partials kept pending,
    # compacted every COMPACT_EVERY, or merged as they come near the end
    endpoints = _same_group(3, offset=4) + [f"solo-{i}" for i in range(3)]
    stage = _Stage(lateness=0, max_disorder=max_disorder)
    expected, fired = defaultdict(int), []
    for i, window, offset, rows in sorted(partials, key=lambda p: (p[1], p[2])):
        fired += stage.watermark(window * WINDOW - 1 + offset)
        assert _windows(stage.partial(endpoints[i], window * WINDOW, rows)) == {}
        expected[(endpoints[i], window * WINDOW)] += rows
    fired += stage.watermark(3 * WINDOW)
    assert _windows(fired) == {k: (0, n) for k, n in expected.items()}
    assert len(fired) == len(expected)
    assert stage.watermark(4 * WINDOW) == [] and stage.entries() == 0  # gone half a window after the end


STEPS = st.lists(st.one_of(
    # a partial of the window the watermark is in (0), the one before (-1, late) or after (1)
    st.tuples(st.just("partial"), st.integers(0, 3), st.integers(-1, 1), st.integers(1, 9)),
    st.tuples(st.just("watermark"), st.integers(0, 40)),  # advanced by this many 32nds of a window
    st.tuples(st.just("close"), st.integers(0, 3), st.integers(-1, 1)),  # MLRun's batch_complete
    st.tuples(st.just("clock"), st.integers(0, 3 * WINDOW)),
    st.tuples(st.just("restore"))), max_size=60)


@settings(max_examples=150, deadline=None)
@given(STEPS, st.sampled_from([1_000, 8_000, WINDOW]), st.sampled_from([0, 1]), st.sampled_from([0, 5_000, 2 ** 63]))
def test_merging_a_windows_last_partials_as_they_come_changes_nothing_it_emits__flink_stand_in(
        steps, window, lateness_windows, max_disorder):
    """Whatever comes (partials on time, late and after the lateness, batch_complete, idle closes,
    a restore with the watermark unknown), the stage emits the same windows with the same rows,
    revisions and counters as one that merges only every COMPACT_EVERY partials and at the firing."""
    endpoints = _same_group(2, offset=5) + ["solo"]

    def run(closing: bool):
        stage = _Stage(lateness=lateness_windows * window, max_disorder=max_disorder, window=window, closing=closing)
        out, wm = [], -1
        for step in steps:
            if step[0] == "partial":
                out += stage.partial(endpoints[step[1] % 3], (max(wm, 0) // window + step[2]) * window, step[3])
            elif step[0] == "watermark":
                wm += step[1] * window // 32
                out += stage.watermark(wm)
            elif step[0] == "close":
                out += stage.partial(endpoints[step[1] % 3], (max(wm, 0) // window + step[2]) * window, 1, close=True)
            elif step[0] == "clock":
                out += stage.clock(stage.flink.now + step[1])
            else:
                stage.restart()
                stage.flink.watermark = UNKNOWN_WATERMARK
        out += stage.watermark(wm + 100 * window)
        out += stage.clock(stage.flink.now + 10 ** 9)
        rows = [(r[0], r[1], r[3], WindowAggregate.from_bytes(bytes(r[4])).rows) for r in out
                if not (isinstance(r, tuple) and r[0] == DEAD_LETTERS)]
        return rows, dict(stage.flink.counters), stage.entries()

    assert run(closing=True) == run(closing=False)


def _slots(stage: _Stage, endpoint: str, start: int = 0) -> set[int]:
    """The slots window ``start`` of ``endpoint`` has in the state."""
    entries = stage.flink.states[("group-windows", endpoint_group(endpoint))]
    return {slot for e, s, slot in map(WindowSlots.parse, entries) if (e, s) == (endpoint, start)}


def test_a_window_of_an_earlier_versions_savepoint_becomes_a_dead_letter__flink_stand_in():
    stage = _Stage()
    # what a version that kept windows per endpoint left under the endpoint's key, and its timer
    old = stage.flink.states[(EARLIER_STATE, "ep-old")]
    old[0 * 32 + WindowSlots.META] = pack_meta(WindowMeta(1, -1, 1, False))
    old[0 * 32 + WindowSlots.PENDING] = WindowAggregate(rows=3).to_bytes()
    stage.flink.timers.add((WINDOW - 1, TimeDomain.EVENT_TIME, "ep-old"))
    out = stage.watermark(WINDOW - 1)
    [(tag, letter)] = out
    letter = json.loads(letter)
    assert tag == DEAD_LETTERS and (letter["endpoint_id"], letter["window_start_ms"]) == ("ep-old", 0)
    assert "earlier version" in letter["reason"] and "--drain" in letter["reason"]
    assert stage.flink.gauges["window_failures"]() == 1
    assert not old  # dropped, counted once
    stage.flink.timers.add((2 * WINDOW - 1, TimeDomain.EVENT_TIME, "ep-old"))
    assert stage.watermark(2 * WINDOW - 1) == []


def _row_steps(watermark_steps, restores: bool = False) -> st.SearchStrategy:
    """Rows of a group's partials: (endpoint, window relative to the watermark's, rows, late flag)
    each; the watermark advanced by ``watermark_steps`` (a whole window is 32); the clock advanced;
    with ``restores``, a new instance of the stage opening on the state and timers as they are,
    with an allowed lateness of 0, half a window, one or two windows, its watermark starting again
    up to three windows back."""
    steps = [st.tuples(st.just("row"), st.lists(st.tuples(st.integers(0, 2), st.integers(-2, 1), st.integers(1, 9),
                                                          st.booleans()), min_size=1, max_size=12)),
             st.tuples(st.just("watermark"), watermark_steps),
             st.tuples(st.just("clock"), st.integers(0, 3 * WINDOW))]
    if restores:
        steps.append(st.tuples(st.just("restore"), st.sampled_from([0, WINDOW // 2, WINDOW, 2 * WINDOW]),
                               st.integers(0, 3)))
    return st.lists(st.one_of(*steps), max_size=40)


def _run_rows(steps, lateness_windows: int, together: bool):
    """(window rows emitted as (instance, endpoint, start, revision, rows), counters, state entries
    left) after ``steps`` of :func:`_row_steps`, a group's partials of a batch in one row
    (``together``) or each in a row of its own; the watermark at last far past every window. The
    instance counts the restores before the row."""
    endpoints = _same_group(3, offset=2)
    stage = _Stage(lateness=lateness_windows * WINDOW)
    out, wm, instance = [], -1, 0

    def emitted(rows):
        out.extend((instance, r) for r in rows)

    for step in steps:
        if step[0] == "row":
            parts = [PartialRow(endpoints[e], (max(wm, 0) // WINDOW + w) * WINDOW, late,
                                WindowAggregate(rows=rows, events=1).to_bytes()) for e, w, rows, late in step[1]]
            for row in [parts] if together else [[p] for p in parts]:
                stage.flink.key = endpoint_group(row[0].endpoint_id)
                emitted(stage.stage.process_element(
                    (row[0].endpoint_id, row[0].window_start, pack_partials(row), row[0].late, False, False),
                    stage.flink))
        elif step[0] == "watermark":
            wm += step[1] * WINDOW // 32
            emitted(stage.watermark(wm))
        elif step[0] == "clock":
            emitted(stage.clock(stage.flink.now + step[1]))
        else:  # a restore onto the state and timers as they are, the watermark unknown until the next
            stage.stage = EndpointWindows(lambda: [], WINDOW, step[1], 5_000, max_disorder_ms=0)
            stage.stage.open(stage.flink)
            stage.flink.watermark = UNKNOWN_WATERMARK
            wm -= step[2] * WINDOW  # the records read again after a checkpoint
            instance += 1
    emitted(stage.watermark(wm + 100 * WINDOW))
    rows = [(i, r[0], r[1], r[3], WindowAggregate.from_bytes(bytes(r[4])).rows) for i, r in out
            if not (isinstance(r, tuple) and r[0] == DEAD_LETTERS)]
    return rows, dict(stage.flink.counters), stage.entries()


@settings(max_examples=150, deadline=None)
@given(_row_steps(st.integers(0, 40)), st.sampled_from([0, 1]))
def test_a_row_of_a_groups_partials_is_those_partials_one_by_one__flink_stand_in(steps, lateness_windows):
    """The parse stage sends a group's partials of a batch in one row: the stage emits the same
    windows, revisions, late partials and counters as when each partial comes in a row of its own
    (several endpoints, windows on time, late and after the lateness, the late flag, in any order)."""
    assert _run_rows(steps, lateness_windows, together=True) == _run_rows(steps, lateness_windows, together=False)


@settings(max_examples=300, deadline=None)
@given(_row_steps(st.sampled_from([0, 8, 16, 32, 64]), restores=True), st.sampled_from([0, 1, 2]))
def test_every_row_sent_is_in_its_windows_last_firing_or_handed_on_late__flink_stand_in(steps, lateness_windows):
    """A hand count over partials on time, corrections, idle closes, partials past the lateness
    and restores with another allowed lateness, with the watermark often exactly at a window's end
    or the end of an allowed lateness of whole windows (where the group's next window fires): each
    row is in its window's last firing or comes back late, once; within an instance a window fires
    with a higher revision each time (a restored one may fire anew: the writer replaces it); every
    window leaves the state."""
    rows_out, _, entries = _run_rows(steps, lateness_windows, together=True)
    sent = sum(rows for step in steps if step[0] == "row" for _, _, rows, _ in step[1])
    late = sum(rows for _, _, _, revision, rows in rows_out if revision == LATE)
    last: dict[tuple, tuple[int, int, int]] = {}
    for instance, endpoint, start, revision, rows in rows_out:
        if revision != LATE:
            before = last.get((endpoint, start))
            assert before is None or before[0] < instance or before[1] < revision, (endpoint, start, before, revision)
            last[(endpoint, start)] = (instance, revision, rows)
    assert sum(rows for _, _, rows in last.values()) + late == sent
    assert entries == 0


def test_a_row_of_partials_adds_each_to_its_own_window_and_a_flagged_one_comes_back_late__flink_stand_in():
    a, b = _same_group(2, offset=3)
    stage = _Stage()
    stage.flink.key = endpoint_group(a)
    body = lambda rows: WindowAggregate(rows=rows, events=1).to_bytes()  # noqa: E731
    row = [PartialRow(a, 0, False, body(2)), PartialRow(b, 0, False, body(3)), PartialRow(a, WINDOW, False, body(4)),
           PartialRow(a, 0, False, body(5)), PartialRow(b, -WINDOW, True, body(7))]
    out = list(stage.stage.process_element((a, 0, pack_partials(row), False, False, False), stage.flink))
    assert _windows(out) == {(b, -WINDOW): (LATE, 7)}  # flagged late where it was read: sent back as late
    assert stage.flink.counters["late_partials"] == 1
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 7), (b, 0): (0, 3)}
    assert _windows(stage.watermark(2 * WINDOW - 1)) == {(a, WINDOW): (0, 4)}


def test_a_row_whose_partials_cannot_be_read_is_a_dead_letter_and_no_window_changes__flink_stand_in():
    a, b = _same_group(2, offset=4)
    stage = _Stage()
    stage.partial(a, 0, 3)
    stage.partial(b, 0, 1)
    stage.flink.key = endpoint_group(a)
    out = list(stage.stage.process_element((a, 0, b"SDP1 not a pickle", False, False, False), stage.flink))
    out += stage.stage.process_element((a, 0, b"neither partials nor an aggregate", False, False, False), stage.flink)
    assert [tag for tag, _ in out] == [DEAD_LETTERS, DEAD_LETTERS]
    (tag, letter) = out[0]
    assert tag == DEAD_LETTERS
    letter = json.loads(letter)
    assert letter["endpoint_id"] == a and letter["reason"].startswith("the window stage could not read a row of partials")
    assert stage.flink.gauges["window_failures"]() == 2
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 3), (b, 0): (0, 1)}


def test_a_partial_that_fails_costs_its_own_window_only_and_the_rows_others_count__flink_stand_in():
    a, b, c = _same_group(3, offset=6)
    stage = _Stage()
    stage.flink.key = endpoint_group(a)
    good = WindowAggregate(rows=4, events=1).to_bytes()
    row = [PartialRow(a, 0, False, good), PartialRow(b, 0, False, b"SDWA broken"), PartialRow(c, 0, False, good)]
    stage.partial(b, 0, 1)
    # in the window's last seconds each partial is merged as it comes: the broken one fails there
    stage.flink.watermark = WINDOW - 2_000
    out = list(stage.stage.process_element((a, 0, pack_partials(row), False, False, False), stage.flink))
    [(tag, letter)] = out
    assert tag == DEAD_LETTERS and json.loads(letter)["endpoint_id"] == b
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 4), (c, 0): (0, 4)}  # b's window is dropped


def test_a_body_of_one_aggregate_from_an_earlier_version_is_its_rows_partial__flink_stand_in():
    """In flight across an upgrade: the row of an earlier version carried one aggregate."""
    a = _same_group(1, offset=7)[0]
    stage = _Stage()
    stage.flink.key = endpoint_group(a)
    body = WindowAggregate(rows=6, events=2).to_bytes()
    assert list(stage.stage.process_element((a, 0, body, False, False, False), stage.flink)) == []
    assert _windows(stage.stage.process_element((a, -WINDOW, body, True, False, False), stage.flink)) == {
        (a, -WINDOW): (LATE, 6)}  # its row's late flag
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 6)}


@pytest.mark.parametrize("lateness_windows", [0, 1, 2])
@pytest.mark.parametrize("how", ["corrected", "idle close", "batch_complete"])
def test_a_window_whose_firing_is_stored_is_corrected_until_its_lateness_end_then_late_then_dropped__flink_stand_in(
        how, lateness_windows):
    """A window that fired otherwise than by the watermark passing its end (a correction, an idle
    close, ``batch_complete``) has its revision stored. The end of its allowed lateness falls, a
    whole number of windows after its end, where the group's window then fires (without lateness:
    its own end): a partial the watermark meets exactly there still corrects it, with every row of
    it (the parse stage does not flag it late), and the window leaves the state at its expiry,
    half a window later."""
    a, b = _same_group(2, offset=5)
    lateness = lateness_windows * WINDOW
    stage = _Stage(lateness=lateness, idle_grace=5_000)
    stage.partial(a, 0, 2)
    if how == "corrected":
        stage.watermark(WINDOW - 1)
        assert _windows(stage.partial(a, 0, 10)) == {(a, 0): (1, 12)}
        revision, rows = 1, 12
    elif how == "idle close":
        assert _windows(stage.clock(stage.flink.now + WINDOW + 10_000)) == {(a, 0): (0, 2)}
        revision, rows = 0, 2
    else:
        assert _windows(stage.partial(a, 0, 0, close=True)) == {(a, 0): (0, 2)}
        revision, rows = 0, 2
    lateness_end = WINDOW - 1 + lateness
    later = lateness_end + 1 - WINDOW  # the group's window whose end is window 0's lateness end
    stage.partial(b, later, 4)
    assert _windows(stage.watermark(lateness_end)) == {(b, later): (0, 4)}
    assert _windows(stage.partial(a, 0, 3)) == {(a, 0): (revision + 1, rows + 3)}
    stage.watermark(lateness_end + 1)
    assert _windows(stage.partial(a, 0, 1)) == {(a, 0): (LATE, 1)}
    assert _slots(stage, a) != set()
    assert stage.watermark(lateness_end + WINDOW) == []
    assert _slots(stage, a) == set()


@pytest.mark.parametrize("lateness_windows", [0, 1])
def test_a_window_opened_after_its_groups_end_timer_fired_fires_alone__flink_stand_in(lateness_windows):
    """The first partial of b's window after the group's end timer fired sets that timer again:
    a's window, fired then, is not fired anew with it."""
    a, b = _same_group(2, offset=6)
    stage = _Stage(lateness=lateness_windows * WINDOW)
    stage.partial(a, 0, 2)
    assert _windows(stage.watermark(WINDOW - 1)) == {(a, 0): (0, 2)}
    assert stage.partial(b, 0, 4) == []
    assert _windows(stage.watermark(WINDOW)) == {(b, 0): (0, 4)}
    assert _windows(stage.partial(a, 0, 1)) == ({(a, 0): (1, 3)} if lateness_windows else {(a, 0): (LATE, 1)})


@pytest.mark.parametrize("before, after", [(WINDOW, 0), (0, WINDOW), (WINDOW, 2 * WINDOW), (2 * WINDOW, WINDOW // 2)])
def test_a_restore_with_another_allowed_lateness_leaves_no_window_in_the_state__flink_stand_in(before, after):
    """The timers restored were set for the lateness before: the windows still leave the state
    (each at its expiry for the lateness after or at the group's first timer past it)."""
    a, b = _same_group(2, offset=7)
    stage = _Stage(lateness=before)
    for start in (0, WINDOW, 2 * WINDOW):
        stage.partial(a, start, 1)
        stage.partial(b, start, 2)
    stage.watermark(2 * WINDOW - 1)  # windows 0 and WINDOW fired
    stage.stage = EndpointWindows(lambda: [], WINDOW, after, 5_000, max_disorder_ms=0)
    stage.stage.open(stage.flink)
    stage.flink.watermark = UNKNOWN_WATERMARK
    assert _windows(stage.watermark(3 * WINDOW - 1)) == {(a, 2 * WINDOW): (0, 1), (b, 2 * WINDOW): (0, 2)}
    stage.watermark(100 * WINDOW)
    assert stage.entries() == 0


def test_after_a_restore_a_partial_of_a_window_that_left_the_state_is_late_before_any_watermark__flink_stand_in():
    """The watermark starts again after a restore: a partial of a window that fired and left the
    state before it is late, not a new window that would replace that window's result."""
    (a,) = _same_group(1, offset=8)
    stage = _Stage(lateness=0)
    stage.partial(a, 0, 5)
    assert _windows(stage.watermark(2 * WINDOW)) == {(a, 0): (0, 5)}
    assert _slots(stage, a) == set()
    stage.restart()
    stage.flink.watermark = UNKNOWN_WATERMARK
    assert _windows(stage.partial(a, 0, 1)) == {(a, 0): (LATE, 1)}
    assert _windows(stage.partial(a, WINDOW, 2)) == {}  # the next window is open as ever
    assert _windows(stage.watermark(2 * WINDOW - 1)) == {(a, WINDOW): (0, 2)}


@pytest.mark.parametrize("lateness_windows", [0, 1])
def test_a_job_started_again_from_a_drained_savepoint_goes_on_with_the_window_its_end_cut_short__flink_stand_in(
        lateness_windows):
    """``flink stop --drain``: the last watermark fires every window and drops it. Started again
    from that savepoint, the window in progress at the drain takes the partials of every endpoint
    of the group, whose first ones are not late."""
    a, b = _same_group(2, offset=9)
    stage = _Stage(lateness=lateness_windows * WINDOW)
    stage.partial(a, 8 * WINDOW, 3)
    stage.watermark(9 * WINDOW + 1_000)
    stage.partial(a, 10 * WINDOW, 2)
    stage.watermark(10 * WINDOW + WINDOW // 2)  # window 8W has left the state (lateness of one window: at 10.5W - 1)
    assert _slots(stage, a, 8 * WINDOW) == set()
    assert _windows(stage.watermark(END_OF_INPUT + 1)) == {(a, 10 * WINDOW): (0, 2)}
    assert stage.entries() == 0
    stage.restart()
    stage.flink.watermark = UNKNOWN_WATERMARK
    assert stage.partial(a, 10 * WINDOW, 1) == [] and stage.partial(b, 10 * WINDOW, 4) == []
    assert _windows(stage.partial(a, 8 * WINDOW, 5)) == {(a, 8 * WINDOW): (LATE, 5)}  # it left before the drain
    assert _windows(stage.watermark(11 * WINDOW - 1)) == {(a, 10 * WINDOW): (0, 1), (b, 10 * WINDOW): (0, 4)}
