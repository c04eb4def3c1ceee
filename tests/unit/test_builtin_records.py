"""The built-in application's records made straight from its numbers (``window_records``): the
same records, field for field and type for type, as its ``do_tracking`` output turned into records
(``normalise_output``) and per-feature rows (``window_feature_drift``), which is the way every
other application's output takes (``test_reference_plan.cases``: references and windows of every
shape the plan handles), alone and in a writer's batch."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.accumulator import Accumulator
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.histogram_drift import drift_from_accumulator
from streamdrift.udfs.monitor import monitor_window, windows_prepared
from streamdrift.udfs.records import FeatureDriftRows, utc_from_ms
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.window import WindowAggregate
from tests.unit.test_reference_plan import NUMERIC, _training, cases

START, END = 1_764_158_400_000, 1_764_158_460_000


class ThroughDoTracking(HistogramDataDriftApplication):
    """The built-in application as any other application runs: a subclass is not one of the
    built-in classes, so ``monitor_window`` calls its ``do_tracking`` and turns the output into
    records."""


def _typed(value):
    """``value`` with the type of every number, bool and text beside it: ``1 == 1.0 == True``, and
    a record whose float is an int or a numpy float is a different record here. Per-feature rows
    as values (FeatureDriftRows) compare as the tuple of their records."""
    if isinstance(value, FeatureDriftRows):
        value = tuple(value)
    if dataclasses.is_dataclass(value):
        return type(value).__name__, {f.name: _typed(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}, [type(k) for k in value]
    if isinstance(value, (list, tuple)):
        return type(value), [_typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return float, "nan"
    return type(value), value


def _window(acc, unknown):
    return WindowAggregate(rows=int(acc.count.max(initial=0)), accumulator=acc, unknown_columns=unknown)


def _outputs(records, aggs, app):
    return [monitor_window(r, r["endpoint_id"], "p", START, END, agg, [app]) for r, agg in zip(records, aggs)]


@settings(max_examples=150, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=5), st.booleans(), st.booleans(),
       st.sampled_from([{}, {"extra": 3}, {"a": 1, "zz": 2}]))
def test_the_records_are_those_of_do_tracking(batch, include_categorical, prepared, unknown):
    records = [{"endpoint_id": f"ep{i}", "project": "p", "feature_stats": fs} for i, (fs, _) in enumerate(batch)]
    aggs = [_window(acc, unknown) for _, acc in batch]
    direct = HistogramDataDriftApplication(include_categorical=include_categorical)
    general = ThroughDoTracking(include_categorical=include_categorical)
    if prepared:
        with windows_prepared([direct], list(zip(records, aggs))):
            fast = _outputs(records, aggs, direct)
    else:
        fast = _outputs(records, aggs, direct)
    slow = _outputs(records, aggs, general)
    assert [_typed(o) for o in fast] == [_typed(o) for o in slow]
    # and the direct way was taken wherever drift was measured (else the test compares nothing)
    start, end = utc_from_ms(START), utc_from_ms(END)
    for r, agg in zip(records, aggs):
        measured = drift_from_accumulator(r["feature_stats"], agg.accumulator, include_categorical=include_categorical)
        made = direct.window_records("p", r["endpoint_id"], "histogram-data-drift", start, end, r["feature_stats"], agg)
        assert (made is not None) == (measured.general_drift is not None)


def _shifted_window():
    training = _training(3)
    fs = feature_stats(training)
    frame = training.assign(a=training["a"] + 2)[:150]
    acc = Accumulator.from_reference(fs).add_batch(frame[NUMERIC].to_numpy(), {"c": frame["c"]})
    return fs, acc


def test_the_per_feature_rows_by_hand():
    """Each feature's row: TVD from numpy on the window's and the reference's counts, the counts
    compared on each side, and the test rejecting the shifted column only."""
    fs, acc = _shifted_window()
    record = {"endpoint_id": "ep1", "project": "p", "feature_stats": fs}
    out = monitor_window(record, "ep1", "p", START, END, _window(acc, {}), [HistogramDataDriftApplication()])
    rows = {f.feature_name: f for f in out.feature_drift}
    assert sorted(rows) == ["a", "b", "c", "d"]
    for name in NUMERIC:
        counts = acc.histogram(name).astype(float)
        reference = np.asarray(fs[name]["hist"][0], float)
        tvd = np.abs(counts / counts.sum() - reference / reference.sum()).sum() / 2
        assert rows[name].tvd == pytest.approx(tvd, abs=1e-12)
        assert (rows[name].window_count, rows[name].reference_count) == (150, 400)
    assert [n for n, f in rows.items() if f.rejected] == ["a"]
    assert rows["a"].p_value < 1e-6 and rows["b"].p_value > 0.01
    assert {f.application_name for f in rows.values()} == {"histogram-data-drift"}
    assert {(f.start_infer_time, f.end_infer_time) for f in rows.values()} == {(utc_from_ms(START), utc_from_ms(END))}


def test_a_number_that_is_not_finite_takes_the_way_that_makes_it_none():
    """JSON has no NaN or infinity: where the built-in application's extra_data would hold one,
    its records come from do_tracking, whose output is made plain JSON (None there)."""
    fs, acc = _shifted_window()
    app = HistogramDataDriftApplication()
    numbers = app._numbers

    def with_infinity(feature_stats, window):
        report, details, verdict = numbers(feature_stats, window)
        details["columns"]["b"]["kld"] = math.inf
        return report, details, verdict

    app._numbers = with_infinity
    record = {"endpoint_id": "ep1", "project": "p", "feature_stats": fs}
    start, end = utc_from_ms(START), utc_from_ms(END)
    assert app.window_records("p", "ep1", "histogram-data-drift", start, end, fs, _window(acc, {})) is None
    out = monitor_window(record, "ep1", "p", START, END, _window(acc, {}), [app])
    general = next(r for r in out.results if r.result_name == "general_drift")
    assert general.extra_data["columns"]["b"]["kld"] is None
    assert {f.feature_name: f.kld for f in out.feature_drift}["b"] is None
    assert not out.errors


def test_the_built_in_application_under_another_name_writes_no_per_feature_rows():
    """Per-feature rows are histogram-data-drift's (as window_feature_drift reads them): the same
    class registered under another name gives its results and metrics, no rows."""
    fs, acc = _shifted_window()
    app = HistogramDataDriftApplication()
    app.NAME = "my-drift"
    record = {"endpoint_id": "ep1", "project": "p", "feature_stats": fs}
    out = monitor_window(record, "ep1", "p", START, END, _window(acc, {}), [app])
    assert {r.application_name for r in out.results} == {"my-drift"}
    assert [r.result_name for r in out.results] == ["general_drift", "feature_drift"]
    assert out.feature_drift == ()


HIST = {"count": 4, "hist": [[2, 2], [0.0, 1.0, 2.0]]}


def _one(names):
    return Accumulator.from_reference({n: HIST for n in names}).add_batch(np.array([[0.5] * len(names)] * 4))


class _Hand:
    """Levels set on the application after it was made (the constructor makes them floats)."""

    def __init__(self, **attributes):
        self.attributes = attributes

    def __call__(self, app):
        for k, v in self.attributes.items():
            setattr(app, k, v)
        return app


@pytest.mark.parametrize("reference, layout_names, unknown, endpoint, hand", [
    ({np.str_("x"): HIST}, [np.str_("x")], {}, {}, _Hand()),  # a numpy name: plain str the old way
    ({"x": HIST, math.nan: {"count": 3}}, ["x"], {}, {}, _Hand()),  # NaN in missing_in_window: None
    ({"x": HIST, ("a", "b"): {"count": 3}, np.int64(7): {"count": 3}}, ["x"], {}, {}, _Hand()),  # list, int
    ({"x": HIST}, ["x"], {("u", 1): 3}, {}, _Hand()),  # a tuple in missing_in_reference: a list
    ({"x": HIST}, ["x"], {b"zz": 3}, {}, _Hand()),  # bytes: JSON cannot hold them, the app fails
    ({"x": HIST}, ["x"], {}, {}, _Hand(alpha=np.float64(0.02))),  # numpy levels: floats
    ({"x": HIST}, ["x"], {}, {"feature_names": 5}, _Hand()),  # the context refuses the record
    ({"x": HIST}, ["x"], {}, {"label_names": 5}, _Hand()),
    ({"x": HIST}, ["x"], {}, {}, _Hand(timeout_seconds="soon")),  # the call refuses the timeout
])
def test_what_the_general_way_changes_or_refuses_it_changes_or_refuses_here_too(reference, layout_names, unknown,
                                                                                endpoint, hand):
    """Records, names and applications that only a caller of monitor_window can make (the job
    reads references and events from JSON, with str names): the built-in application gives what
    do_tracking's way gives, its values made JSON or its failure recorded."""
    record = {"endpoint_id": "ep1", "project": "p", "feature_stats": reference, **endpoint}
    agg = _window(_one(layout_names), unknown)
    fast = monitor_window(record, "ep1", "p", START, END, agg, [hand(HistogramDataDriftApplication())])
    slow = monitor_window(record, "ep1", "p", START, END, agg, [hand(ThroughDoTracking())])
    assert _typed(fast) == _typed(slow)
