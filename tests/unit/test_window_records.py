"""A window's records as the stages make them: the same records, whichever way they are built."""

import dataclasses
import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.histogram_drift import ColumnDrift, feature_drift_records
from streamdrift.udfs.records import (ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord,
                                      record_builder)

T0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
ANY = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
NUMBER = st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6) | st.floats(allow_nan=False)


@given(st.sampled_from([ResultRecord, MetricRecord, PredictionRecord, ErrorRecord, FeatureDriftRecord, ColumnDrift]),
       st.data())
def test_a_built_record_is_the_record_its_class_makes(cls, data):
    values = [data.draw(ANY) for _ in dataclasses.fields(cls)]
    built, made = record_builder(cls)(*values), cls(*values)
    assert built == made and repr(built) == repr(made) and vars(built) == vars(made)
    try:
        assert hash(built) == hash(made)
    except TypeError:  # an unhashable value: the same for both
        assert values and any(isinstance(v, (list, dict)) for v in values)
    assert dataclasses.replace(built, **{dataclasses.fields(cls)[0].name: "x"}) == \
        dataclasses.replace(made, **{dataclasses.fields(cls)[0].name: "x"})


def test_a_builder_wants_every_field():
    try:
        record_builder(MetricRecord)("p", "ep1")
    except TypeError as exc:
        assert "takes 7 values" in str(exc)
    else:
        raise AssertionError("two values of seven were taken")


def reference_rows(general: ResultRecord, verdict: ResultRecord | None) -> list[FeatureDriftRecord]:
    """The per-feature rows, field by field as their docstring reads (an independent reading)."""
    columns = (general.extra_data or {}).get("columns")
    if not isinstance(columns, dict) or not columns or not all(
            isinstance(c, dict) and {"tvd", "hellinger", "kld"} <= set(c) for c in columns.values()):
        return []
    tested = ((verdict.extra_data or {}).get("columns") or {}) if verdict is not None else {}

    def number(v):
        return None if v is None or isinstance(v, bool) else float(v)

    def whole(v):
        return None if v is None or isinstance(v, bool) else int(v)

    rows = []
    for name, c in columns.items():
        t = tested.get(name)
        if isinstance(t, dict):
            p, rejected, effect = t.get("p_value"), t.get("rejected"), t.get("effect")
        else:
            p, rejected, effect = c.get("p_value"), c.get("rejected"), c.get("effect_size")
        rows.append(FeatureDriftRecord(
            general.project, general.endpoint_id, general.application_name, str(name), general.start_infer_time,
            general.end_infer_time, tvd=number(c["tvd"]), hellinger=number(c["hellinger"]), kld=number(c["kld"]),
            p_value=number(p), rejected=None if rejected is None else bool(rejected), effect_size=number(effect),
            window_count=whole(c.get("window_count")), reference_count=whole(c.get("reference_count")),
            invalid_share=number(c.get("invalid_share"))))
    return rows


MEASURE_KEYS = st.sampled_from(["tvd", "hellinger", "kld", "window_count", "reference_count", "invalid_share",
                                "p_value", "rejected", "effect_size", "drift", "kind"])
COLUMN = st.dictionaries(MEASURE_KEYS, NUMBER, max_size=9)
TEST = st.dictionaries(st.sampled_from(["p_value", "rejected", "effect", "n", "N", "shift"]), NUMBER, max_size=6)
NAMES = st.text(min_size=1, max_size=3)


@settings(max_examples=300)
@given(st.dictionaries(NAMES, COLUMN, max_size=6), st.none() | st.dictionaries(NAMES, TEST | NUMBER, max_size=6))
def test_per_feature_rows_read_every_column_and_its_test(columns, tests):
    general = ResultRecord("p", "ep1", "histogram-data-drift", "general_drift", 0, 0, 0.2, T0, T0,
                           {"columns": columns, "metrics": {}})
    verdict = None if tests is None else ResultRecord("p", "ep1", "histogram-data-drift", "feature_drift", 0, 0,
                                                      0.0, T0, T0, {"columns": tests})
    try:
        expected = reference_rows(general, verdict)
    except (OverflowError, ValueError) as exc:  # a count of inf or NaN: the same error
        with pytest.raises(type(exc)):
            feature_drift_records(general, verdict)
        return
    rows = feature_drift_records(general, verdict)
    assert rows == expected
    assert [[type(v) for v in vars(r).values()] for r in rows] == [[type(v) for v in vars(r).values()] for r in expected]


def reference_columns(verdict) -> dict:
    """A verdict's per-column dicts read element by element from its arrays (as its docstring reads)."""
    t, out = verdict.tests, {}
    for j, name in enumerate(verdict.names):
        if t.tested[j]:
            entry = {"p_value": float(t.p_value[j]), "rejected": bool(verdict.rejected[j]), "n": int(round(t.n[j])),
                     "N": int(round(t.total[j])), "effect": float(t.effect[j])}
            if j < verdict.n_numeric:
                entry["shift"] = float(t.shift[j])
            out[name] = entry
    return out


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_verdicts_columns_are_its_arrays_per_tested_column(data):
    from streamdrift.udfs.verdict import ReferenceCounts, feature_verdict

    counts = data.draw(st.lists(st.lists(st.integers(0, 400), min_size=2, max_size=6), min_size=1, max_size=5))
    n_numeric = data.draw(st.integers(0, len(counts)))
    reference = ReferenceCounts.from_counts([f"c{i}" for i in range(len(counts))], counts, n_numeric)
    window = data.draw(st.lists(st.integers(0, 60), min_size=reference.counts.size, max_size=reference.counts.size))
    verdict = feature_verdict(reference, window)
    columns, expected = verdict.columns(), reference_columns(verdict)
    assert list(columns) == list(expected)
    for name, entry in expected.items():
        assert list(columns[name]) == list(entry)
        for key, value in entry.items():
            got = columns[name][key]
            assert type(got) is type(value) and (got == value or (got != got and value != value)), (name, key)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, 300), st.integers(1, 50), max_size=12),
       st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_latency_quantiles_are_the_first_bin_reaching_q_of_the_rows(bins, qs):
    import numpy as np

    from streamdrift.udfs.window import LATENCY_EDGES, WindowAggregate

    agg = WindowAggregate()
    for i, count in bins.items():
        agg.latency_hist[min(i, agg.latency_hist.size - 1)] += count
    hist = agg.latency_hist.tolist()
    total = sum(hist)

    def by_hand(q):
        if total == 0:
            return None
        seen = 0
        for i, count in enumerate(hist):
            seen += count
            if seen >= q * total:
                break
        if i == 0:
            return float(LATENCY_EDGES[0])
        if i >= LATENCY_EDGES.size:
            return float(LATENCY_EDGES[-1])
        return float(np.sqrt(LATENCY_EDGES[i - 1] * LATENCY_EDGES[i]))

    assert agg.latency_quantiles(qs) == [by_hand(q) for q in qs] == [agg.latency_quantile(q) for q in qs]


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=3), st.dictionaries(
    st.sampled_from(["p_value", "rejected", "n", "N", "effect", "shift"]),
    st.floats() | st.booleans() | st.integers(-10 ** 20, 10 ** 20), max_size=6), max_size=5))
def test_a_verdicts_stored_columns_keep_four_significant_digits(columns):
    from decimal import Decimal

    from streamdrift.udfs.histogram_drift import FeatureDriftReport
    from streamdrift.udfs.records import ResultStatusApp

    stored = FeatureDriftReport(0.0, ResultStatusApp.no_detection, columns, (), 0.01, 0.001, 0.0).to_dict()["columns"]
    assert list(stored) == list(columns)
    for name, c in columns.items():
        assert list(stored[name]) == list(c)
        for key, value in c.items():
            got = stored[name][key]
            if not isinstance(value, float):
                assert got is value
            elif not math.isfinite(value):
                assert got == value or (got != got and value != value)
            else:  # the float nearest to the value rounded half-even to 4 significant digits, by Decimal
                exponent = Decimal(value).adjusted() if value else 0
                expected = float(Decimal(value).quantize(Decimal(1).scaleb(exponent - 3)))
                assert type(got) is float and got == expected, (value, got, expected)
