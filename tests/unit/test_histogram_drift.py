"""The default application's logic: MLRun's numbers, statuses, and what it reports."""

import dataclasses
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cityblock, euclidean
from scipy.special import rel_entr

from streamdrift.udfs.accumulator import Accumulator
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.histogram_drift import (
    DriftClassifier,
    drift_from_accumulator,
    feature_drift_from_accumulator,
    histogram_drift,
)
from streamdrift.udfs.records import ResultKindApp, ResultStatusApp
from streamdrift.udfs.reference import feature_stats

MAX = sys.float_info.max


def _independent(p_counts, p_n, q_counts, q_n):
    """TVD, Hellinger, KLD of one column, computed with scipy (not with streamdrift.udfs.drift)."""
    p = np.asarray(p_counts, float) / p_n
    q = np.asarray(q_counts, float) / q_n
    t = cityblock(p, q) / 2
    h = euclidean(np.sqrt(p), np.sqrt(q)) / math.sqrt(2)
    k = rel_entr(p, np.where(q == 0, 1e-4, q)).sum() + rel_entr(q, np.where(p == 0, 1e-4, p)).sum()
    return t, h, k


# ------------------------------------------------------------------ classifier


@pytest.mark.parametrize(("potential", "detected"), [(0.4, 0.2), (0.0, 0.5), (0.7, 1.0), (-1, 2), (0.5, 0.5)])
def test_invalid_thresholds_are_refused(potential, detected):
    with pytest.raises(ValueError, match="0 < potential < detected < 1"):
        DriftClassifier(potential=potential, detected=detected)


@pytest.mark.parametrize(
    ("value", "status"),
    [(0, 0), (0.2, 0), (0.4999, 0), (0.5, 1), (0.6, 1), (0.6999, 1), (0.7, 2), (1, 2)],
)
def test_status_thresholds(value, status):
    assert DriftClassifier().status(value) == status


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_values_outside_the_unit_interval_are_refused(value):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        DriftClassifier().status(value)


# ------------------------------------------------------------------ MLRun's numbers


def test_mlrun_application_fixture_gives_mlrun_expected_status():
    # The fixture of MLRun's own test of HistogramDataDriftApplication, which expects
    # potential detection (its timestamp and ticker columns have no reference).
    sample = {
        "timestamp": {"count": 12, "min": "2024-03-11 09:31:39"},
        "ticker": {"count": 12, "unique": 1, "top": "AAPL", "freq": 12},
        "f1": {"count": 12, "hist": [[2, 3, 0, 3, 1, 3], [-10, -5, 0, 5, 10, 15, 20]]},
        "f2": {"count": 12, "hist": [[0, 6, 0, 2, 1, 3], [66, 67, 68, 69, 70, 71, 72]]},
        "l": {"count": 12, "hist": [[10, 0, 0, 0, 0, 2], [0.0, 0.16, 0.33, 0.5, 0.67, 0.83, 1.0]]},
    }
    reference = {
        "f1": {"count": 100, "hist": [[0, 0, 0, 30, 70, 0], [-10, -5, 0, 5, 10, 15, 20]]},
        "f2": {"count": 100, "hist": [[0, 45, 5, 15, 35, 0], [66, 67, 68, 69, 70, 71, 72]]},
        "l": {"count": 100, "hist": [[30, 0, 0, 0, 0, 70], [0.0, 0.16, 0.33, 0.5, 0.67, 0.83, 1.0]]},
    }
    report = histogram_drift(reference, sample)
    assert report.status == ResultStatusApp.potential_detection
    assert report.kind == ResultKindApp.data_drift and report.name == "general_drift"
    assert set(report.missing_in_reference) == {"timestamp", "ticker"}
    per_col = [_independent(sample[c]["hist"][0], 12, reference[c]["hist"][0], 100) for c in ("f1", "f2", "l")]
    t_mean, h_mean, k_mean = np.mean(per_col, axis=0)
    assert report.metrics["tvd_mean"] == pytest.approx(t_mean, abs=1e-12)
    assert report.metrics["hellinger_mean"] == pytest.approx(h_mean, abs=1e-7)
    assert report.metrics["kld_mean"] == pytest.approx(k_mean, rel=1e-12)
    assert report.general_drift == pytest.approx((t_mean + h_mean) / 2, abs=1e-7)


def test_one_column_by_hand():
    edges = [-MAX, 0.0, 1.0, 2.0, MAX]
    reference = {"x": {"count": 100, "hist": [[0, 50, 50, 0], edges]}}
    window = {"x": {"count": 10, "hist": [[0, 10, 0, 0], edges]}}
    report = histogram_drift(reference, window)
    col = report.columns[0]
    assert col.tvd == pytest.approx(0.5)
    assert col.hellinger == pytest.approx(math.sqrt(1 - math.sqrt(0.5)))
    assert col.kld == pytest.approx(0.5 * math.log(1e4))  # ln 2 + .5 ln .5 + .5 ln 5000
    assert report.general_drift == pytest.approx((0.5 + math.sqrt(1 - math.sqrt(0.5))) / 2)
    assert report.status == ResultStatusApp.potential_detection  # 0.52...
    assert col.status == ResultStatusApp.potential_detection
    assert (col.window_count, col.reference_count) == (10, 100)


def test_probabilities_divide_by_count_not_by_the_histogram_sum():
    # MLRun's sample_df_stats can hold infinities in count but not in hist: we divide by count
    edges = [-MAX, 0.0, 1.0, MAX]
    reference = {"x": {"count": 4, "hist": [[0, 2, 2], edges]}}
    window = {"x": {"count": 4, "hist": [[0, 1, 1], edges]}}
    col = histogram_drift(reference, window).columns[0]
    assert col.tvd == pytest.approx(0.5 * (0.25 + 0.25))


def test_identical_and_disjoint_windows():
    edges = [-MAX, 0.0, 1.0, 2.0, MAX]
    reference = {"x": {"count": 10, "hist": [[0, 5, 5, 0], edges]}}
    same = histogram_drift(reference, reference)
    assert same.general_drift == 0.0 and same.status == ResultStatusApp.no_detection
    disjoint = histogram_drift(reference, {"x": {"count": 3, "hist": [[0, 0, 0, 3], edges]}})
    assert disjoint.general_drift == pytest.approx(1.0)
    assert disjoint.status == ResultStatusApp.detected


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def training():
    rng = np.random.default_rng(11)
    n = 5_000
    return pd.DataFrame(
        {
            "a": rng.normal(0, 1, n),
            "b": rng.exponential(2, n),
            "c": rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1]),
        }
    )


def _window(frame, fs):
    acc = Accumulator.from_reference(fs)
    acc.add_batch(frame[list(acc.numeric_columns)].to_numpy(), {"c": frame["c"].to_numpy()})
    return acc


def test_window_like_training_is_not_drift_and_shifted_window_is(training):
    fs = feature_stats(training)
    rng = np.random.default_rng(12)
    n = 2_000
    similar = pd.DataFrame(
        {"a": rng.normal(0, 1, n), "b": rng.exponential(2, n), "c": rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1])}
    )
    shifted = pd.DataFrame(
        {"a": rng.normal(4, 1, n), "b": rng.exponential(20, n), "c": rng.choice(["z", "new"], n)}
    )
    calm = drift_from_accumulator(fs, _window(similar, fs))
    assert calm.status == ResultStatusApp.no_detection and calm.general_drift < 0.1
    alarm = drift_from_accumulator(fs, _window(shifted, fs))
    assert alarm.status == ResultStatusApp.detected
    assert {c.name for c in alarm.columns} == {"a", "b", "c"}


def test_accumulator_path_equals_mlruns_way_of_computing_window_stats(training):
    """MLRun: np.histogram(window column, bins=padded reference edges), count = non-null count."""
    fs = feature_stats(training)
    rng = np.random.default_rng(13)
    window = pd.DataFrame({"a": rng.normal(0.5, 1.2, 800), "b": rng.exponential(3, 800), "c": ["x"] * 800})
    mlrun_window = {
        name: {"count": int(window[name].count()),
               "hist": [np.histogram(window[name], bins=fs[name]["hist"][1])[0].tolist(), fs[name]["hist"][1]]}
        for name in ("a", "b")
    }
    ours = drift_from_accumulator(fs, _window(window, fs), include_categorical=False)
    mlrun = histogram_drift(fs, mlrun_window)
    assert ours.metrics == mlrun.metrics
    assert ours.general_drift == mlrun.general_drift
    assert ours.skipped == (("c", "categorical, excluded by include_categorical=False"),)


def test_categorical_columns_take_part_and_unseen_values_go_to_other(training):
    fs = feature_stats(training[["c"]])
    acc = Accumulator.from_reference(fs).add_batch(None, {"c": ["new"] * 50 + ["x"] * 50})
    report = drift_from_accumulator(fs, acc)
    (col,) = report.columns
    assert col.kind == "categorical"
    ref = fs["c"]
    ref_counts = [*ref["category_counts"], ref["other_count"]]
    win_counts = [50 if cat == "x" else 0 for cat in ref["categories"]] + [50]
    t, h, k = _independent(win_counts, 100, ref_counts, ref["count"])
    assert (col.tvd, col.kld) == (pytest.approx(t), pytest.approx(k))
    assert col.hellinger == pytest.approx(h, abs=1e-7)
    # window categories given by name, in another order and with names the reference lacks
    window = {"c": {"count": 100, "categories": ["new", "x"], "category_counts": [50, 50], "other_count": 0}}
    assert histogram_drift(fs, window).columns[0].tvd == pytest.approx(t)


# ------------------------------------------------------------------ what cannot be compared


def test_missing_columns_are_reported_not_raised(training):
    fs = feature_stats(training)
    window = _window(training.iloc[:100], fs).to_stats()
    del window["b"]
    window["extra"] = {"count": 3, "hist": [[1, 2], [0.0, 1.0, 2.0]]}
    report = histogram_drift(fs, window)
    assert report.missing_in_window == ("b",)
    assert report.missing_in_reference == ("extra",)
    assert [c.name for c in report.columns] == ["a", "c"]


def test_all_nan_window_column_is_skipped_with_its_null_count(training):
    fs = feature_stats(training)
    window = training.iloc[:10].copy()
    window["a"] = np.nan
    report = drift_from_accumulator(fs, _window(window, fs))
    assert report.skipped == (("a", "no non-null values in the window (10 nulls)"),)
    assert [c.name for c in report.columns] == ["b", "c"]


def test_empty_window_gives_no_value_and_irrelevant_status(training):
    fs = feature_stats(training)
    report = drift_from_accumulator(fs, Accumulator.from_reference(fs))
    assert report.general_drift is None and report.status == ResultStatusApp.irrelevant
    assert report.metrics == {"tvd_mean": None, "hellinger_mean": None, "kld_mean": None}
    assert {name for name, _ in report.skipped} == {"a", "b", "c"}


def test_unmonitored_and_mismatched_columns_are_skipped():
    edges = [-MAX, 0.0, 1.0, MAX]
    reference = {
        "t": {"count": 5, "nulls": 0},
        "x": {"count": 2, "hist": [[0, 1, 1], edges]},
        "y": {"count": 2, "hist": [[0, 1, 1], edges]},
    }
    window = {
        "t": {"count": 5},
        "x": {"count": 2, "hist": [[0, 2, 0], [-MAX, 0.0, 0.5, MAX]]},
        "y": {"count": 2, "hist": [[0, 2, 0], edges]},
    }
    report = histogram_drift(reference, window)
    reasons = dict(report.skipped)
    assert reasons["t"].startswith("no histogram in the reference")
    assert reasons["x"] == "window histogram is not on the reference edges"
    assert [c.name for c in report.columns] == ["y"]


def test_report_is_frozen_and_json_ready(training):
    fs = feature_stats(training)
    report = drift_from_accumulator(fs, _window(training.iloc[:500], fs))
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.general_drift = 0.0
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["name"] == "general_drift" and data["kind"] == 0
    assert set(data["columns"]) == {"a", "b", "c"}
    assert data["metrics"].keys() == {"tvd_mean", "hellinger_mean", "kld_mean"}


# ------------------------------------------------------------------ per-feature rows


def _general_drift(extra):
    import datetime as dt

    from streamdrift.udfs.records import ResultRecord

    utc = dt.timezone.utc
    return ResultRecord("shop", "ep", "histogram-data-drift", "general_drift", 0, 1, 0.52,
                        dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2024, 1, 1, 0, 10, tzinfo=utc), extra)


def test_feature_drift_records_from_the_general_drift_result_by_hand():
    from streamdrift.udfs.histogram_drift import feature_drift_records

    edges = [-MAX, 0.0, 1.0, 2.0, MAX]
    reference = {"x": {"count": 100, "hist": [[0, 50, 50, 0], edges]},
                 "y": {"count": 40, "hist": [[0, 10, 30, 0], edges]},
                 "ts": {"count": 40}}  # no histogram: skipped, so no row
    window = {"x": {"count": 10, "hist": [[0, 10, 0, 0], edges]},
              "y": {"count": 20, "hist": [[0, 5, 15, 0], edges]}, "ts": {"count": 20}}
    result = _general_drift(json.loads(json.dumps(histogram_drift(reference, window).to_dict())))
    rows = feature_drift_records(result)
    assert [r.feature_name for r in rows] == ["x", "y"]
    x, y = rows
    assert (x.tvd, x.hellinger, x.kld) == pytest.approx((0.5, math.sqrt(1 - math.sqrt(0.5)), 0.5 * math.log(1e4)))
    assert (y.tvd, y.hellinger, y.kld) == (0.0, 0.0, 0.0)  # same proportions, 1:3
    assert (x.window_count, x.reference_count, y.window_count, y.reference_count) == (10, 100, 20, 40)
    assert (x.p_value, x.rejected, x.effect_size) == (None, None, None)  # no per-feature test ran
    assert {(r.project, r.endpoint_id, r.application_name, r.start_infer_time, r.end_infer_time) for r in rows} == {
        (result.project, result.endpoint_id, result.application_name, result.start_infer_time,
         result.end_infer_time)}


def test_feature_drift_records_take_the_per_feature_test_when_present():
    from streamdrift.udfs.histogram_drift import feature_drift_records

    extra = {"columns": {"age": {"tvd": 0.1, "hellinger": 0.2, "kld": 0.3, "window_count": 7, "reference_count": 9,
                                 "p_value": 1e-5, "rejected": True, "effect_size": 0.8}}}
    (row,) = feature_drift_records(_general_drift(extra))
    assert (row.p_value, row.rejected, row.effect_size, row.window_count) == (1e-5, True, 0.8, 7)


@pytest.mark.parametrize("extra", [{}, {"columns": {}}, {"columns": {"a": {"tvd": 0.1}}}, {"columns": [1, 2]},
                                   {"truncated": True, "bytes": 40_000}])
def test_results_without_per_feature_drift_give_no_rows(extra):
    from streamdrift.udfs.histogram_drift import feature_drift_records

    assert feature_drift_records(_general_drift(extra)) == []


# ------------------------------------------------------------------ the verdict beside MLRun's numbers


def test_feature_drift_tests_the_compared_columns_and_names_the_drifted_one(training):
    fs = feature_stats(training)
    rng = np.random.default_rng(13)
    n = 1_500
    window = pd.DataFrame({"a": rng.normal(0.5, 1, n), "b": rng.exponential(2, n),
                           "c": rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1])})
    window.loc[window.index[:40], "b"] = np.nan
    acc = _window(window, fs)
    general = drift_from_accumulator(fs, acc)
    report = feature_drift_from_accumulator(fs, acc, columns=[c.name for c in general.columns])
    assert report.status == ResultStatusApp.detected and report.drifted == ("a",)
    assert report.value == pytest.approx(1 / 3)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["name"] == "feature_drift" and data["kind"] == 0 and data["status"] == 2
    columns = data["columns"]
    assert set(columns) == {"a", "b", "c"}
    # per column a flat dict of numbers and bools; shift only for numeric columns
    assert set(columns["a"]) == set(columns["b"]) == {"p_value", "rejected", "n", "N", "effect", "shift"}
    assert set(columns["c"]) == {"p_value", "rejected", "n", "N", "effect"}
    assert all(isinstance(v, (int, float, bool)) for c in columns.values() for v in c.values())
    assert [columns[k]["rejected"] for k in "abc"] == [True, False, False]
    assert {k: columns[k]["n"] for k in "abc"} == {"a": n, "b": int(window["b"].notna().sum()), "c": n}
    assert {k: columns[k]["N"] for k in "abc"} == {"a": 5_000, "b": 5_000, "c": 5_000}
    assert columns["a"]["p_value"] < 1e-6 and columns["a"]["shift"] == pytest.approx(0.5, abs=0.1)
    # MLRun's numbers are the same with or without the verdict beside them
    assert general.to_dict() == histogram_drift(fs, acc.to_stats()).to_dict()


def test_feature_drift_leaves_out_what_general_drift_leaves_out(training):
    fs = feature_stats(training)
    acc = _window(training.iloc[:300], fs)
    general = drift_from_accumulator(fs, acc, include_categorical=False)
    report = feature_drift_from_accumulator(fs, acc, columns=[c.name for c in general.columns])
    assert set(report.columns) == {"a", "b"} and report.status == ResultStatusApp.no_detection
    empty = feature_drift_from_accumulator(fs, Accumulator.from_reference(fs))
    assert empty.value is None and empty.status == ResultStatusApp.irrelevant and empty.columns == {}


def test_stored_numbers_keep_four_significant_digits(training):
    fs = feature_stats(training)
    acc = _window(training.sample(700, random_state=3).assign(a=lambda f: f["a"] + 0.3), fs)
    report = feature_drift_from_accumulator(fs, acc)
    stored = report.to_dict()["columns"]
    for name, c in report.columns.items():
        for key in ("p_value", "effect"):
            assert stored[name][key] == pytest.approx(c[key], rel=5e-4)
            digits = np.format_float_positional(stored[name][key], trim="-").replace(".", "").strip("0")
            assert len(digits) <= 4


@pytest.mark.parametrize(("params", "message"), [
    ({"alpha": 0.001, "alpha_detected": 0.01}, "0 < alpha_detected <= alpha < 1"),
    ({"alpha": 1.0}, "0 < alpha_detected <= alpha < 1"),
    ({"min_effect": -0.1}, "min_effect"),
])
def test_the_application_refuses_bad_verdict_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        HistogramDataDriftApplication(**params)


# ------------------------------------------------------------------ discrete and capped columns


def test_the_training_rows_sent_as_events_show_no_drift():
    """A 0/1 flag (50/50), a 1-5 rating and a score capped at 1.0, whose maxima are frequent values:
    the training rows themselves, sent as events, give TVD 0 per column and general_drift 0
    (MLRun counts the maximum in the padding bin: TVD 0.5 for the flag)."""
    from streamdrift.udfs.catalog import EndpointCatalog
    from streamdrift.udfs.monitor import monitor_window
    from streamdrift.udfs.batch import aggregate_batch

    rng = np.random.default_rng(21)
    n = 2_000
    training = pd.DataFrame({"flag": np.repeat([0.0, 1.0], n // 2), "rating": rng.integers(1, 6, n).astype(float),
                             "score": np.minimum(rng.uniform(0.2, 1.4, n), 1.0)})
    assert (training["score"] == 1.0).mean() > 0.3
    endpoint = {"endpoint_id": "ep", "project": "shop", "feature_names": list(training), "output_names": [],
                "feature_stats": feature_stats(training)}
    t0 = 1_704_067_200_000
    payloads = [json.dumps({"endpoint_id": "ep", "timestamp": t0 + i, "request_id": f"r{i}", "inputs": [row]})
                for i, row in enumerate(training.to_numpy().tolist())]
    (partial,), dead = aggregate_batch(payloads, EndpointCatalog(lambda: [endpoint]), 600_000)
    assert not dead
    out = monitor_window(endpoint, "ep", "shop", t0, t0 + 600_000, partial.aggregate,
                         [HistogramDataDriftApplication()])
    results = {r.result_name: r for r in out.results}
    general = results["general_drift"]
    # 0 up to rounding: Hellinger's sqrt(1 - Σ sqrt(p q)) of equal p and q (MLRun's formula)
    assert general.value == pytest.approx(0.0, abs=1e-8) and general.status == ResultStatusApp.no_detection
    assert {name: c["tvd"] for name, c in general.extra_data["columns"].items()} == {
        "flag": 0.0, "rating": 0.0, "score": 0.0}
    assert results["feature_drift"].status == ResultStatusApp.no_detection and results["feature_drift"].value == 0.0
    assert {m.metric_name: m.value for m in out.metrics}["tvd_mean"] == 0.0
