"""The built-in application on a batch of windows (the writer's): the numbers of all of them worked
out together give every window the records it gets alone, float for float, for references and
windows of every shape the plan handles (``test_reference_plan.cases``: columns missing on either
side, other edges, empty and all-null columns, invalid values, categories), mixed in one batch."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.operators.monitor import RunApplications
from streamdrift.udfs.accumulator import Accumulator
from streamdrift.udfs import verdict as vd
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.histogram_drift import (
    drift_from_accumulator,
    feature_drift_from_accumulator,
    plan_reference,
    DriftClassifier,
    planned_window,
)
from streamdrift.udfs.drift_batch import windows_numbers
from streamdrift.udfs.monitor import monitor_window, windows_prepared
from streamdrift.udfs.records import FeatureDriftRows
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.window import WindowAggregate
from tests.unit.test_reference_plan import NUMERIC, _training, cases

START, END = 1_764_158_400_000, 1_764_158_460_000


def _records(out):
    """A window output's records with NaN made comparable (NaN != NaN); per-feature rows as
    values (FeatureDriftRows) as their records."""
    def fix(value):
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, FeatureDriftRows)):
            return [fix(v) for v in value]
        if dataclasses.is_dataclass(value):
            return fix({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
        return value
    return fix(out)


@settings(max_examples=150, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=6), st.booleans())
def test_a_batch_gives_each_window_the_records_it_gets_alone(batch, include_categorical):
    records = [{"endpoint_id": f"ep{i}", "project": "p", "feature_stats": fs} for i, (fs, _) in enumerate(batch)]
    aggs = [WindowAggregate(rows=int(acc.count.max(initial=0)), accumulator=acc) for _, acc in batch]
    alone = [monitor_window(r, r["endpoint_id"], "p", START, END, agg,
                            [HistogramDataDriftApplication(include_categorical=include_categorical)])
             for r, agg in zip(records, aggs)]
    app = HistogramDataDriftApplication(include_categorical=include_categorical)
    with windows_prepared([app], list(zip(records, aggs))):
        # the batch's numbers are used: every window the plan compares whole is prepared
        for (fs, acc) in batch:
            plan = plan_reference(fs, acc.layout, include_categorical)
            full = plan is not None and drift_from_accumulator(fs, acc, plan=plan).general_drift is not None
            assert (id(acc) in app._prepared) == (full and planned_window(plan, acc) is not None)
        together = [monitor_window(r, r["endpoint_id"], "p", START, END, agg, [app]) for r, agg in zip(records, aggs)]
    assert [_records(o) for o in together] == [_records(o) for o in alone]
    assert app._prepared == {}  # nothing kept after the batch


@settings(max_examples=150, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=6), st.booleans())
def test_the_numbers_of_a_batch_are_those_of_each_window_alone(batch, include_categorical):
    """windows_numbers against the report objects of each window alone (drift_from_accumulator,
    feature_drift_from_accumulator, in JSON-ready form): every float, int, name and order equal."""
    planned = [(fs, acc, plan_reference(fs, acc.layout, include_categorical)) for fs, acc in batch]
    numbers = windows_numbers([p for _, _, p in planned], [a for _, a, _ in planned], DriftClassifier(),
                              alpha=vd.ALPHA, alpha_detected=vd.ALPHA_DETECTED, min_effect=0.0)
    for (fs, acc, plan), n in zip(planned, numbers):
        if plan is None or planned_window(plan, acc) is None:
            assert n is None  # no plan, or an empty compared column: the general path
            continue
        alone = drift_from_accumulator(fs, acc, plan=plan, include_categorical=include_categorical)
        assert n is not None
        assert _typed(n.details) == _typed(alone.to_dict())
        assert _typed((n.general, n.status, n.metrics)) == _typed(
            (alone.general_drift, int(alone.status), alone.metrics))
        verdict = feature_drift_from_accumulator(fs, acc, columns=list(plan.names), plan=plan)
        if verdict.value is None:
            assert n.verdict is None
            tested = {}
        else:
            assert _typed(n.verdict) == _typed((verdict.value, int(verdict.status), verdict.to_dict()))
            tested = verdict.to_dict()["columns"]
        rows = [(c.name, c.tvd, c.hellinger, c.kld,
                 *((tested[c.name]["p_value"], tested[c.name]["rejected"], tested[c.name]["effect"])
                   if c.name in tested else (None, None, None)), c.window_count, c.reference_count, c.invalid_share)
                for c in alone.columns]
        assert _typed(n.rows) == _typed(rows)


def _typed(value):
    """``value`` with the type of every number beside it (1 == 1.0 == True otherwise) and the
    keys of every dict in their order (the stored JSON's)."""
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return type(value).__name__, value


def test_a_batch_of_one_reference_against_the_statistics_by_hand():
    """Two windows of one reference in one batch: each column's TVD from numpy on its counts, and
    the verdict rejects the shifted column only."""
    training = _training(5)
    fs = feature_stats(training)
    same, shifted = training[:200], training.assign(a=training["a"] + 3)[200:400]
    aggs = [Accumulator.from_reference(fs).add_batch(frame[NUMERIC].to_numpy(), {"c": frame["c"]})
            for frame in (same, shifted)]
    plan = plan_reference(fs, aggs[0].layout)
    numbers = windows_numbers([plan, plan], aggs, DriftClassifier(), alpha=0.01, alpha_detected=0.001, min_effect=0.0)
    for acc, n in zip(aggs, numbers):
        j = list(acc.layout.numeric).index("a")
        w = acc.histogram("a") / acc.count[j]
        r = np.asarray(fs["a"]["hist"][0], float) / fs["a"]["count"]
        assert n.details["columns"]["a"]["tvd"] == pytest.approx(np.abs(w - r).sum() / 2, abs=1e-12)
        assert {row[0]: row[1] for row in n.rows}["a"] == n.details["columns"]["a"]["tvd"]
    assert numbers[0].verdict[2]["drifted"] == []
    assert numbers[1].verdict[2]["drifted"] == ["a"]
    assert [row[0] for row in numbers[1].rows if row[5]] == ["a"]  # rejected, on its per-feature row


def test_verdicts_of_windows_of_different_references_and_widths():
    """feature_verdicts of windows against references of other columns, kinds and bin counts:
    each as feature_verdict of the window alone."""
    refs = [vd.ReferenceCounts.from_counts(["x", "color"], [[100, 200, 400, 200, 100], [500, 300, 200]], 1),
            vd.ReferenceCounts.from_counts(["y"], [[50, 50]], 1),
            vd.ReferenceCounts.from_counts(["k"], [[10, 30, 60]], 0),
            vd.ReferenceCounts.from_counts(["u", "v"], [[5] * 12, [0, 0, 9]], 2)]
    rng = np.random.default_rng(7)
    windows = [rng.integers(0, 40, ref.counts.size).astype(float) for ref in refs]
    windows[1][:] = 0  # nothing to test: status -1
    columns = [None, None, np.array([True]), np.array([True, False])]
    together = vd.feature_verdicts(refs, windows, columns)
    for ref, w, wanted, v in zip(refs, windows, columns, together):
        alone = vd.feature_verdict(ref, w, columns=wanted)
        assert int(v.status) == int(alone.status)
        assert v.columns() == alone.columns()
    assert int(together[1].status) == -1
    with pytest.raises(ValueError, match="bins"):
        vd.feature_verdicts(refs[:1], [np.zeros(3)], [None])


def _window_row(key, revision, body, fired_ms=None):
    return (key, START, END, revision, body, fired_ms)


def test_run_many_keeps_the_order_and_gives_each_fault_its_own_record():
    training = _training(6)
    fs = feature_stats(training)
    from streamdrift.udfs.accumulator import Accumulator
    acc = Accumulator.from_reference(fs).add_batch(training[NUMERIC].to_numpy()[:80], {"c": training["c"][:80]})
    body = WindowAggregate(rows=80, accumulator=acc).to_bytes()
    endpoints = [{"endpoint_id": k, "project": "p", "feature_stats": fs} for k in ("ep1", "ep2")]
    runner = RunApplications(lambda: endpoints, lambda: [HistogramDataDriftApplication()], "p")
    runner.open(None)
    outs = runner.run_many([_window_row("ep1", 0, body, 123), _window_row("ep2", 0, b"not an aggregate"),
                            _window_row("ep2", -1, body), _window_row("ep1", 1, body)])
    assert [(o.endpoint_id, o.revision) for o in outs] == [("ep1", 0), ("ep2", 0), ("ep2", -1), ("ep1", 1)]
    assert outs[0].fired_ms == 123
    assert [e.error_type for e in outs[1].errors] == ["mm-window-failed"]  # the bad body, alone
    assert outs[2].late_rows == 80 and outs[2].results == ()  # a late partial: counted, not monitored
    alone = monitor_window(endpoints[0], "ep1", "p", START, END, WindowAggregate.from_bytes(body, runner.catalog.layout_by_fingerprint),
                           [HistogramDataDriftApplication()])
    assert _records(dataclasses.replace(outs[0], fired_ms=None)) == _records(alone)
    assert runner.failed_windows == 1


def test_endpoints_prepared_at_the_writers_start_make_no_plan_in_their_first_batch(monkeypatch):
    """What the writer does when it opens (``RunApplications.prepare`` of its endpoints): their
    first batch then makes no plan, and reports what an application never prepared reports."""
    import streamdrift.udfs.histogram_drift as hd
    from streamdrift.udfs.accumulator import Accumulator

    training = _training(8)
    endpoints = [{"endpoint_id": k, "project": "p", "feature_stats": feature_stats(training.sample(300, random_state=i))}
                 for i, k in enumerate(("ep1", "ep2"))]
    runner = RunApplications(lambda: endpoints, lambda: [HistogramDataDriftApplication()], "p")
    runner.open(None)
    assert runner.catalog.endpoint_ids() == ["ep1", "ep2"]
    runner.prepare(["ep1"])
    bodies = []
    for e in endpoints:
        acc = Accumulator.from_reference(runner.catalog.layout(e["endpoint_id"]))
        acc.add_batch(training[NUMERIC].to_numpy()[:60] * 1.5, {"c": training["c"][:60]})
        bodies.append(WindowAggregate(rows=60, accumulator=acc).to_bytes())
    made = []
    real = hd.plan_reference
    monkeypatch.setattr(hd, "plan_reference", lambda *args: made.append(args) or real(*args))
    outs = runner.run_many([_window_row(e["endpoint_id"], 0, b) for e, b in zip(endpoints, bodies)])
    assert len(made) == 1 and made[0][0] is endpoints[1]["feature_stats"]  # ep2's, in the batch
    fresh = RunApplications(lambda: endpoints, lambda: [HistogramDataDriftApplication()], "p")
    fresh.open(None)
    again = fresh.run_many([_window_row(e["endpoint_id"], 0, b) for e, b in zip(endpoints, bodies)])
    assert [_records(o) for o in outs] == [_records(o) for o in again]
    assert {r.result_name: r.status for r in outs[0].results}["feature_drift"] == 2  # 1.5 times the values


class _StateStandIn:
    """Flink's keyed list and value state for one key, in memory (no Flink runs in a unit test)."""

    def __init__(self):
        self.items = []

    def add(self, value):
        self.items.append(value)

    def get(self):
        return list(self.items)

    def value(self):
        return self.items[-1] if self.items else None

    def update(self, value):
        self.items = [value]

    def clear(self):
        self.items = []


class _TimersStandIn:
    """Flink's timer service and a timer's context for one key (no Flink runs in a unit test):
    the clock and watermark are set by the test; registered timers are recorded, not fired."""

    def __init__(self, now_ms=0, watermark=0, domain=None):
        from pyflink.datastream import TimeDomain

        self.now_ms, self.watermark = now_ms, watermark
        self.domain = TimeDomain.EVENT_TIME if domain is None else domain
        self.processing, self.event = [], []

    def timer_service(self):
        return self

    def time_domain(self):
        return self.domain

    def current_processing_time(self):
        return self.now_ms

    def current_watermark(self):
        return self.watermark

    def register_processing_time_timer(self, t):
        self.processing.append(t)

    def register_event_time_timer(self, t):
        self.event.append(t)


class _RuntimeContextStandIn:
    def get_list_state(self, descriptor):
        return _StateStandIn()

    def get_state(self, descriptor):
        return _StateStandIn()

    def get_metrics_group(self):
        return type("Group", (), {"gauge": lambda self, name, fn: None})()

    def get_index_of_this_subtask(self):
        return 0

    def get_number_of_parallel_subtasks(self):
        return 1


def test_the_writer_runs_the_applications_on_its_batch_and_writes_what_an_earlier_version_left_as_it_is__flink_state_stand_in(
        tmp_path):
    """A batch holding a window as the window stage hands it now (its aggregate) and one a
    savepoint of the previous version left in the writer's state (its records, applications run):
    both are written, each with its own numbers, and the new one's alert events leave."""
    import pickle

    from streamdrift.connectors import job_io
    from streamdrift.connectors.tsdb import open_tsdb
    from streamdrift.operators.monitor import ALERT_EVENTS, WriteOutputs
    from streamdrift.udfs.accumulator import Accumulator

    training = _training(9)
    endpoints = [{"endpoint_id": k, "project": "p", "feature_stats": feature_stats(training.sample(300, random_state=i))}
                 for i, k in enumerate(("ep1", "ep2"))]
    aggs = []
    for i, e in enumerate(endpoints):
        acc = Accumulator.from_reference(e["feature_stats"])
        acc.add_batch(training[NUMERIC].to_numpy()[:70] * (1 + 2 * i), {"c": training["c"][:70]})
        aggs.append(WindowAggregate(rows=70, accumulator=acc))
    tsdb, store = f"sqlite:///{tmp_path}/tsdb.sqlite", f"sqlite:///{tmp_path}/store.sqlite"
    writer = WriteOutputs(lambda: job_io.StoreWriter(tsdb, store), RunApplications(
        lambda: endpoints, lambda: [HistogramDataDriftApplication()], "p"), writer_keys=[0])
    writer.open(_RuntimeContextStandIn())
    earlier = monitor_window(endpoints[0], "ep1", "p", START, END, aggs[0], [HistogramDataDriftApplication()])
    writer.waiting.add(pickle.dumps(earlier))
    writer.waiting.add(pickle.dumps(_window_row("ep2", 0, aggs[1].to_bytes(), 456)))
    emitted = list(writer.on_timer(END, _TimersStandIn()))
    writer.close()
    summaries = [e for e in emitted if not (isinstance(e, tuple) and e[0] is ALERT_EVENTS)]
    events = [e[1] for e in emitted if isinstance(e, tuple) and e[0] is ALERT_EVENTS]
    assert [(s[0], s[4], s[8]) for s in summaries] == [("ep1", 70, None), ("ep2", 70, 456)]
    alone = monitor_window(endpoints[1], "ep2", "p", START, END, aggs[1], [HistogramDataDriftApplication()])
    drift = {o.endpoint_id: next(r.value for r in o.results if r.result_name == "general_drift") for o in (earlier, alone)}
    assert [s[5] for s in summaries] == [drift["ep1"], drift["ep2"]]
    assert {e[0] for e in events} == {"ep2"}  # ep2's values tripled: its drift raises events; ep1's none
    stored = open_tsdb(tsdb)
    for out in (earlier, alone):  # each window's results as its own applications gave them
        got = {r.result_name: r.value for r in stored.query_results("p", out.endpoint_id)}
        assert got == {r.result_name: r.value for r in out.results}
    stored.close()


def test_the_writers_start_record_opens_the_writer_and_leaves_nothing_to_write__flink_state_stand_in(tmp_path):
    from streamdrift.connectors import job_io
    from streamdrift.operators.monitor import WRITER_START, WriteOutputs

    writer = WriteOutputs(lambda: job_io.StoreWriter(f"sqlite:///{tmp_path}/t.sqlite", f"sqlite:///{tmp_path}/s.sqlite"),
                          RunApplications(lambda: [], lambda: [], "p"), writer_keys=[0])
    writer.open(_RuntimeContextStandIn())
    assert list(writer.process_element(WRITER_START, None)) == []
    assert writer.waiting.get() == [] and writer.count.value() is None
    assert list(writer.on_timer(END, _TimersStandIn())) == []  # an empty batch: nothing written
    writer.close()


def test_a_linger_timer_of_a_batch_written_full_does_not_cut_the_next_batch_short__flink_state_stand_in(tmp_path):
    """A batch written because it is full leaves its linger timer behind. When it fires, the next
    batch's first windows must go on waiting (for the rest of the firing, the watermark or their
    own linger), not be written alone; their own linger, the watermark, and a batch left by an
    earlier version (no deadline in its state) are written."""
    import pickle

    from pyflink.datastream import TimeDomain

    from streamdrift.connectors import job_io
    from streamdrift.operators.monitor import END_OF_INPUT, WriteOutputs

    training = _training(5)
    endpoints = [{"endpoint_id": f"ep{i}", "project": "p", "feature_stats": feature_stats(training.sample(200, random_state=i))}
                 for i in range(7)]

    def window(i):
        acc = Accumulator.from_reference(endpoints[i]["feature_stats"])
        acc.add_batch(training[NUMERIC].to_numpy()[:10 + i], {"c": training["c"][:10 + i]})
        return pickle.dumps(_window_row(f"ep{i}", 0, WindowAggregate(rows=10 + i, accumulator=acc).to_bytes()))

    writer = WriteOutputs(lambda: job_io.StoreWriter(f"sqlite:///{tmp_path}/t.sqlite", f"sqlite:///{tmp_path}/s.sqlite"),
                          RunApplications(lambda: endpoints, lambda: [HistogramDataDriftApplication()], "p"),
                          writer_keys=[0], max_batch=2, linger_ms=200)
    writer.open(_RuntimeContextStandIn())
    written = lambda emitted: [row[0] for row in emitted]  # noqa: E731 - the summary rows' endpoints
    first = _TimersStandIn(now_ms=1_000, watermark=500)
    assert written(writer.process_element(window(0), first)) == []
    assert first.processing == [1_200] and first.event == [501, END_OF_INPUT]
    assert written(writer.process_element(window(1), first)) == ["ep0", "ep1"]  # full: written at once
    second = _TimersStandIn(now_ms=1_100, watermark=500)
    assert written(writer.process_element(window(2), second)) == []
    assert second.processing == [1_300]
    processing = lambda now: _TimersStandIn(now_ms=now, domain=TimeDomain.PROCESSING_TIME)  # noqa: E731
    assert written(writer.on_timer(1_200, processing(1_200))) == []  # the full batch's linger
    assert writer.count.value() == 1
    assert written(writer.on_timer(1_300, processing(1_300))) == ["ep2"]  # its own linger
    assert written(writer.on_timer(1_300, processing(1_300))) == []  # nothing left
    assert written(writer.process_element(window(3), _TimersStandIn(now_ms=2_000, watermark=600))) == []
    assert written(writer.on_timer(601, _TimersStandIn(now_ms=2_050, watermark=601))) == ["ep3"]  # the watermark
    # a batch an earlier version left in its state: no deadline, so any linger timer writes it
    writer.waiting.add(window(4))
    writer.count.update(1)
    assert written(writer.on_timer(900, processing(3_000))) == ["ep4"]
    writer.close()


def test_large_whole_number_counts_give_each_window_its_verdict_alone():
    """The batch's rank sums run over every window's columns: with whole-number counts whose sum
    stays below 2**53 (here 10**12 reference rows beside a reference of 10) every window still
    gets the verdict it gets alone, float for float."""
    big = vd.ReferenceCounts.from_counts(["a"], [[10 ** 12, 3 * 10 ** 12, 10 ** 12]], 1)
    small = vd.ReferenceCounts.from_counts(["a"], [[3, 4, 3]], 1)
    windows = [np.array([5.0, 1.0, 7.0]), np.array([0.0, 1.0, 9.0])]
    together = vd.feature_verdicts([big, small], windows, [None, None])
    for ref, w, v in zip((big, small), windows, together):
        alone = vd.feature_verdict(ref, w)
        assert v.columns() == alone.columns()
        assert v.tests.shift.tolist() == alone.tests.shift.tolist()


@st.composite
def wide_windows(draw):
    """A reference of many numeric columns (the means' sums change method past 8 and 128 terms)
    and a categorical one, and a window counted on it, shifted in some columns."""
    columns = draw(st.sampled_from([1, 7, 8, 9, 20, 127, 129, 300]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    names = [f"f{j}" for j in range(columns)]
    training = pd.DataFrame(rng.normal(0, 1, (300, columns)), columns=names)
    training["color"] = rng.choice(["red", "green", "blue"], 300)
    fs = feature_stats(training)
    rows = draw(st.integers(1, 80))
    window = pd.DataFrame(rng.normal(0, 1, (rows, columns)) + rng.choice([0.0, 2.0], columns), columns=names)
    acc = Accumulator.from_reference(fs).add_batch(window[names].to_numpy(), {"color": rng.choice(["red", "teal"], rows)})
    return fs, acc


@settings(max_examples=40, deadline=None)
@given(st.lists(wide_windows(), min_size=1, max_size=5))
def test_a_batch_of_wide_windows_gives_each_the_records_it_gets_alone(batch):
    """Every window of the batch is prepared (its records come from the batch's arrays) and gets
    the records it gets alone, float for float: the means over 1 to 300 columns included."""
    records = [{"endpoint_id": f"ep{i}", "project": "p", "feature_stats": fs} for i, (fs, _) in enumerate(batch)]
    aggs = [WindowAggregate(rows=int(acc.count.max(initial=0)), accumulator=acc) for _, acc in batch]
    alone = [monitor_window(r, r["endpoint_id"], "p", START, END, agg, [HistogramDataDriftApplication()])
             for r, agg in zip(records, aggs)]
    app = HistogramDataDriftApplication()
    with windows_prepared([app], list(zip(records, aggs))):
        assert sorted(app._prepared) == sorted(id(acc) for _, acc in batch)
        together = [monitor_window(r, r["endpoint_id"], "p", START, END, agg, [app]) for r, agg in zip(records, aggs)]
    assert [_records(o) for o in together] == [_records(o) for o in alone]
    for (fs, acc), out in zip(batch, together):  # and the mean against numpy on the rows' histograms
        tvd = {f.feature_name: f.tvd for f in out.feature_drift}
        mean = {m.metric_name: m.value for m in out.metrics}["tvd_mean"]
        assert mean == pytest.approx(np.mean(list(tvd.values())), rel=1e-12)
        assert len(tvd) == len(fs)


def test_column_statuses_at_the_thresholds_are_the_classifiers():
    """The batch's column statuses (vectorised) are DriftClassifier.status of each drift, at the
    thresholds exactly, at the floats next to them and at the ends of [0, 1]."""
    from streamdrift.udfs.drift_batch import _statuses

    classifier = DriftClassifier(0.5, 0.7)
    drifts = [0.0, -0.0, 1.0, 0.5, 0.7, 0.25, 0.99]
    drifts += [np.nextafter(t, d) for t in (0.5, 0.7) for d in (0.0, 1.0)]
    want = [int(classifier.status(min(max(d, 0.0), 1.0))) for d in map(float, drifts)]
    assert _statuses(np.array(drifts, dtype=float), classifier) == want
    assert want[3:5] == [1, 2] and want[7:11] == [0, 1, 1, 2]  # what the thresholds mean, by hand


class _StricterClassifier(DriftClassifier):
    def status(self, value):  # a subclass's own rule: a batch must not replace it with the thresholds
        return super().status(min(1.0, value * 3))


def test_a_classifier_with_its_own_rule_is_used_as_it_is():
    """An application whose classifier is a subclass gets its windows computed alone: every
    column status and the result's status by its own rule."""
    training = _training(5)
    fs = feature_stats(training)
    frame = training.assign(a=training["a"] + 1)[:200]
    acc = Accumulator.from_reference(fs).add_batch(frame[NUMERIC].to_numpy(), {"c": frame["c"]})
    record = {"endpoint_id": "ep1", "project": "p", "feature_stats": fs}
    agg = WindowAggregate(rows=200, accumulator=acc)
    app = HistogramDataDriftApplication()
    app.classifier = _StricterClassifier(0.5, 0.7)
    with windows_prepared([app], [(record, agg)]):
        assert app._prepared == {}
        out = monitor_window(record, "ep1", "p", START, END, agg, [app])
    general = next(r for r in out.results if r.result_name == "general_drift")
    for column in general.extra_data["columns"].values():
        assert column["status"] == int(_StricterClassifier(0.5, 0.7).status(column["drift"]))
    assert general.status == int(_StricterClassifier(0.5, 0.7).status(general.value))
