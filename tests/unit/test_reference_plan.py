"""The default application's per-endpoint plan (``plan_reference``): with it, a window's report and
verdict are those of the general path (``histogram_drift`` of ``to_stats()``), float for float,
for references and windows of every shape the general path handles."""

import copy
import sys

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.accumulator import Accumulator, Layout
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.histogram_drift import (
    ReferencePlans,
    drift_from_accumulator,
    feature_drift_from_accumulator,
    histogram_drift,
    plan_reference,
)
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.window import WindowAggregate

MAX = sys.float_info.max
NUMERIC = ["a", "b", "d"]
CATEGORIES = ["x", "y", "z"]


def _training(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    return pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.exponential(2, n), "d": rng.integers(0, 4, n) * 1.0,
                         "c": rng.choice(CATEGORIES, n, p=[0.6, 0.3, 0.1])})


# how the reference differs from the layout the window was counted on, one change per column
CHANGES = ["none", "no-hist", "zero-count", "other-edges", "not-in-layout", "not-in-reference", "unpadded-ref"]


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**16))
    fs = feature_stats(_training(seed))
    layout_stats = copy.deepcopy(fs)
    for name in [*NUMERIC, "c"]:
        change = draw(st.sampled_from(["none"] * 3 + CHANGES))
        if change == "no-hist":
            fs[name] = {"count": fs[name]["count"]}
        elif change == "zero-count":
            fs[name] = {**fs[name], "count": 0}
        elif change == "other-edges" and name != "c":
            counts, edges = layout_stats[name]["hist"]
            layout_stats[name] = {**layout_stats[name], "hist": [counts, [e if abs(e) == MAX else e * 1.5 + 0.1 for e in edges]]}
        elif change == "not-in-layout":
            del layout_stats[name]
        elif change == "not-in-reference":
            del fs[name]
        elif change == "unpadded-ref" and name != "c":
            counts, edges = fs[name]["hist"]
            fs[name] = {**fs[name], "hist": [counts[1:-1], edges[1:-1]]}  # padded again as MLRun pads
    if not layout_stats:
        layout_stats = {"only": {"hist": [[1], [0.0, 1.0]]}}
    layout = Layout.from_feature_stats(layout_stats)
    rows = draw(st.integers(0, 60))
    rng = np.random.default_rng(seed + 1)
    acc = Accumulator.from_reference(layout)
    x = rng.normal(draw(st.floats(-3, 3)), draw(st.floats(0.1, 4)), (rows, len(layout.numeric)))
    for j in range(len(layout.numeric)):  # nulls, infinities, or a column without a value
        kind = draw(st.sampled_from(["values"] * 4 + ["some-nan", "all-nan", "inf"]))
        if kind == "some-nan":
            x[rng.random(rows) < 0.3, j] = np.nan
        elif kind == "all-nan":
            x[:, j] = np.nan
        elif kind == "inf" and rows:
            x[0, j] = np.inf
    invalid = rng.random(x.shape) < draw(st.sampled_from([0.0, 0.0, 0.2]))
    categorical = {name: rng.choice([*CATEGORIES, "new", None], rows).tolist() for name in layout.categorical}
    acc.add_batch(x, categorical, invalid)
    return fs, acc


@settings(max_examples=300, deadline=None)
@given(cases(), st.booleans())
def test_the_plan_gives_the_general_paths_report_float_for_float(case, include_categorical):
    fs, acc = case
    plan = plan_reference(fs, acc.layout, include_categorical)
    general = histogram_drift(fs, acc.to_stats(), include_categorical=include_categorical)
    planned = drift_from_accumulator(fs, acc, plan=plan, include_categorical=include_categorical)
    assert planned == general  # frozen dataclasses: every float, name, reason and order equal
    columns = [c.name for c in general.columns]
    if columns:
        assert (feature_drift_from_accumulator(fs, acc, columns=columns, plan=plan)
                == feature_drift_from_accumulator(fs, acc, columns=columns))


def test_a_plan_is_made_once_per_catalog_entry_and_again_for_a_changed_reference():
    training = _training(1)
    fs = feature_stats(training)
    layout = Layout.from_feature_stats(fs)
    plans = ReferencePlans()
    assert plans.get(fs, layout) is plans.get(fs, layout)
    changed = copy.deepcopy(fs)  # a refreshed catalog entry: another object, other counts
    changed["a"]["hist"][0][3] += 100
    changed["a"]["count"] += 100
    assert plans.get(changed, layout) is not plans.get(fs, layout)
    acc = Accumulator.from_reference(layout).add_batch(training[NUMERIC].to_numpy()[:50], {"c": training["c"][:50]})
    # the changed reference's numbers, not the first one's: p = window share, q = reference share of each bin
    a = next(c for c in drift_from_accumulator(changed, acc, plan=plans.get(changed, layout)).columns if c.name == "a")
    j = list(layout.numeric).index("a")
    w = acc.histogram("a") / acc.count[j]
    r = np.asarray(changed["a"]["hist"][0], float) / changed["a"]["count"]
    assert a.tvd == np.abs(w - r).sum() / 2


def test_the_application_reports_the_same_with_its_plans_as_without():
    training = _training(2)
    fs = feature_stats(training)
    shifted = training.assign(a=training["a"] + 2)[:200]
    acc = Accumulator.from_reference(fs).add_batch(shifted[NUMERIC].to_numpy(), {"c": shifted["c"]})
    window = WindowAggregate(rows=200, accumulator=acc)

    def run(app):
        from streamdrift.udfs.monitor import monitor_window
        return monitor_window({"endpoint_id": "ep", "project": "p", "feature_stats": fs}, "ep", "p",
                              1_764_158_400_000, 1_764_158_460_000, window, [app])

    app = HistogramDataDriftApplication()
    first, second = run(app), run(app)  # the second window uses the plan the first one made
    without = HistogramDataDriftApplication()
    without.plans.capacity = 0  # a plan made, then dropped before each use: never kept
    without.plans.get = lambda *args: None
    assert first == second == run(without)
    assert {r.result_name: r.status for r in first.results}["feature_drift"] == 2  # a 2 σ shift of one column
