"""Input fidelity (issue 15): every row counted where its sender meant it, or refused with the true reason.

The right values are computed here independently (hand counts, numpy on the rows sent).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.accumulator import Layout
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.columnar import ColumnarReader
from streamdrift.udfs.events import BatchComplete, Columns, DeadLetter, decode, epoch_ms, parse_timestamp
from streamdrift.udfs.monitor import UNMATCHED_COLUMNS, monitor_window
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.window import Sample, WindowAggregate
from streamdrift.udfs.batch import EventClock, aggregate_records

WINDOW_MS = 60_000
T = 1_795_694_400_000  # 2026-11-26T12:00:00Z, a window boundary
COLUMNS = Columns(("x", "y"), ("score",))


# ------------------------------------------------------------------------------ MLRun 1.12 events


def _mlrun_112(**over):
    """A monitoring event with the keys MLRun 1.12.1's serving writes."""
    event = {"class": "mlrun.frameworks.sklearn.SklearnModelServer", "worker": "0", "model": "scorer:v3",
             "host": "serving-abc", "function_uri": "fraud/serving:latest", "endpoint_id": "3f9c0a1b2e",
             "sampling_percentage": 100, "request": {"id": "r-1", "inputs": [[1.0, 2.0], [3.0, 4.0]]},
             "op": "infer", "resp": {"id": "r-1", "model_name": "scorer", "outputs": [0.1, 0.9]},
             "when": "2026-11-26 12:00:01.123456", "microsec": 1500, "effective_sample_count": 2}
    event.update(over)
    return json.dumps(event)


def test_an_mlrun_112_event_is_read_as_mlrun_with_the_id_mlrun_assigned():
    event = decode(_mlrun_112(), lambda e: COLUMNS)
    assert event.shape == "mlrun" and event.endpoint_id == "3f9c0a1b2e"
    assert event.timestamp_ms == T + 1123 and event.latency_us == 1500 and event.request_id == "r-1"
    assert [dict(r) for r in event.rows] == [{"x": 1.0, "y": 2.0, "score": 0.1}, {"x": 3.0, "y": 4.0, "score": 0.9}]


def test_without_an_endpoint_id_the_id_is_derived_as_mlrun_does_from_name_and_version():
    for given in ({"endpoint_id": None}, {}):
        text = json.loads(_mlrun_112())
        text.pop("endpoint_id")
        text.update(given)
        event = decode(json.dumps(text))
        # "scorer:v3" is the model "scorer" of version "v3"; tag "latest"
        assert event.endpoint_id == hashlib.sha1(b"fraud_serving_latest_scorer_v3").hexdigest()


def test_sampling_percentage_scales_the_rows_to_the_estimated_count():
    event = decode(_mlrun_112(sampling_percentage=25, effective_sample_count=None))
    assert event.estimated_rows == 2 * 100 / 25
    assert decode(_mlrun_112(sampling_percentage=10, effective_sample_count=3)).estimated_rows == 30
    assert decode(_mlrun_112(sampling_percentage=0)).reason.startswith("field 'sampling_percentage'")
    assert "effective_sample_count" in decode(_mlrun_112(effective_sample_count=-1)).reason


def test_an_mlrun_error_event_is_counted_as_an_error():
    event = decode(_mlrun_112(resp=None, error="model crashed"))
    assert event.error
    (partial,) = aggregate_records([_mlrun_112(resp=None, error="model crashed").encode()],
                                   EndpointCatalog(lambda: []), WINDOW_MS).partials
    assert (partial.aggregate.events, partial.aggregate.errors, partial.aggregate.rows) == (1, 1, 0)


def test_batch_complete_closes_up_to_its_last_timestamp():
    out = decode(json.dumps({"kind": "batch_complete", "endpoint_id": "3f9c0a1b2e", "first_timestamp": T,
                             "last_timestamp": "2026-11-26 12:05:00", "batch_completion_time": T + 400_000}))
    assert out == BatchComplete("3f9c0a1b2e", T + 300_000)
    batch = aggregate_records([json.dumps({"kind": "batch_complete", "endpoint_id": "e", "last_timestamp": T}).encode(),
                               _mlrun_112().encode()], EndpointCatalog(lambda: []), WINDOW_MS)
    assert batch.controls == [(0, BatchComplete("e", T))] and not batch.dead
    assert sum(p.aggregate.events for p in batch.partials) == 1


def test_the_window_estimated_count_sums_the_events():
    catalog = EndpointCatalog(lambda: [])
    payloads = [_mlrun_112(sampling_percentage=50, effective_sample_count=None).encode()] * 3
    (partial,) = aggregate_records(payloads, catalog, WINDOW_MS).partials
    assert partial.aggregate.rows == 6 and partial.aggregate.estimated_rows == 12.0
    again = WindowAggregate.from_bytes(partial.aggregate.to_bytes())
    assert (again + again).estimated_rows == 24.0


# ------------------------------------------------------------------------------ timestamp units


@pytest.mark.parametrize("value, ms", [
    (1_795_694_400, T), ("1795694400", T), (1_795_694_400.25, T + 250),  # seconds
    (1_795_694_400_000, T), ("1795694400000", T),  # milliseconds
    (1_795_694_400_000_123, T), (1_795_694_400_000_123_456, T),  # microseconds, nanoseconds
    (99_999_999_999, 99_999_999_999_000),  # the largest number of seconds (5138-11-16)
    (100_000_000_000, 100_000_000_000),  # the smallest of milliseconds (1973-03-03)
    (99_999_999_999_999, 99_999_999_999_999), (100_000_000_000_000, 100_000_000_000),  # ms | µs
    (99_999_999_999_999_999, 99_999_999_999_999), (100_000_000_000_000_000, 100_000_000_000),  # µs | ns
    (0, 0), (-1, -1000),
])
def test_epoch_numbers_are_told_apart_by_magnitude(value, ms):
    assert parse_timestamp(value) == ms


def test_the_columnar_reader_reads_units_as_the_record_path():
    catalog = EndpointCatalog(lambda: [{"endpoint_id": "e", "feature_names": ["x"], "output_names": [],
                                        "feature_stats": {}}])
    stamps = [1_795_694_400, 1_795_694_401_000, 1_795_694_402_000_000, 1_795_694_403_000_000_000]
    payloads = [json.dumps({"endpoint_id": "e", "timestamp": t, "inputs": [[1.0]]}).encode() for t in stamps]
    for reader in (ColumnarReader(), False):
        batch = aggregate_records(payloads, catalog, WINDOW_MS, reader=reader)
        assert batch.timestamps.tolist() == [T, T + 1000, T + 2000, T + 3000]
    assert epoch_ms(1_795_694_400) == T  # not a January 1970 window


# ------------------------------------------------------------------------------ orientations


_scalars = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-1000, 1000), st.none(),
                     st.sampled_from(["a", "b"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_scalars, _scalars, _scalars), min_size=1, max_size=6), st.booleans())
def test_every_orientation_gives_the_rows_of_the_row_oriented_event(rows, mlrun):
    names = ["x", "y", "z"]
    objects = [dict(zip(names, r)) for r in rows]
    outputs = [i % 2 for i in range(len(rows))]
    orientations = {
        "rows as lists": [list(r) for r in rows],
        "rows as objects": objects,
        "columns": {n: [r[j] for r in rows] for j, n in enumerate(names)},
        "columns in a list": [{n: [r[j] for r in rows] for j, n in enumerate(names)}],
        "split": {"columns": names, "data": [list(r) for r in rows]},
    }
    columns = Columns(tuple(names), ("label",))
    expected = [{**o, "label": y} for o, y in zip(objects, outputs)]
    for name, inputs in orientations.items():
        if mlrun:
            record = {"function_uri": "p/f", "model": "m", "when": T, "request": {"inputs": inputs},
                      "resp": {"outputs": outputs}}
        else:
            record = {"endpoint_id": "e", "timestamp": T, "inputs": inputs, "outputs": outputs}
        event = decode(json.dumps(record), lambda e: columns)
        assert not isinstance(event, DeadLetter), (name, event.reason)
        assert [dict(r) for r in event.rows] == expected, name


def test_the_issue_example_is_two_rows_not_one_row_of_arrays():
    record = {"function_uri": "p/f", "model": "m", "when": T, "request": {"inputs": [{"x": [0.1, 0.2], "y": [5.0, 5.5]}]},
              "resp": {"outputs": [0, 1]}}
    event = decode(json.dumps(record), lambda e: Columns(("x", "y"), ()))
    assert [dict(r) for r in event.rows] == [{"x": 0.1, "y": 5.0, "prediction": 0}, {"x": 0.2, "y": 5.5, "prediction": 1}]


def test_an_array_column_of_the_reference_stays_an_array():
    columns = Columns(("image.mean", "image.std", "image.min", "image.max", "image.norm", "y"), ())
    one_row = decode(json.dumps({"endpoint_id": "e", "timestamp": T, "inputs": {"image": [1.0, 3.0], "y": 2.0}}),
                     lambda e: columns)
    assert [dict(r) for r in one_row.rows] == [{"image.mean": 2.0, "image.std": 1.0, "image.min": 1.0,
                                                "image.max": 3.0, "image.norm": np.sqrt(10.0), "y": 2.0}]
    two_rows = decode(json.dumps({"endpoint_id": "e", "timestamp": T,
                                  "inputs": {"image": [[1.0, 3.0], [2.0, 2.0]], "y": [2.0, 4.0]}}), lambda e: columns)
    assert [r["image.mean"] for r in two_rows.rows] == [2.0, 2.0] and [r["y"] for r in two_rows.rows] == [2.0, 4.0]


def test_columns_of_different_lengths_are_one_row_of_arrays_not_a_silent_truncation():
    event = decode(json.dumps({"endpoint_id": "e", "timestamp": T, "inputs": {"x": [1.0, 2.0], "y": [3.0]}}))
    assert len(event.rows) == 1 and event.rows[0]["x.mean"] == 1.5


def test_a_split_row_of_the_wrong_width_is_a_dead_letter():
    out = decode(json.dumps({"endpoint_id": "e", "timestamp": T, "inputs": {"columns": ["x", "y"], "data": [[1.0]]}}))
    assert "split orientation" in out.reason


# ------------------------------------------------------------------------------ unmatched windows


def _reference():
    rng = np.random.default_rng(0)
    return feature_stats(pd.DataFrame({"Age": rng.normal(40, 5, 1000), "Income": rng.normal(5e4, 1e4, 1000)}))


@pytest.mark.parametrize("inputs", [
    {"age": 41, "income": 5.1e4, "channel": 1},  # re-cased after a redeploy
    {"years": 41, "salary": 5.1e4},  # renamed
    {"Age": None, "Income": None},  # all null
])
def test_a_window_that_matches_no_reference_column_says_so(inputs):
    stats = _reference()
    agg = WindowAggregate(sample=Sample.empty(10))
    events = [decode(json.dumps({"endpoint_id": "e", "timestamp": T + i, "inputs": inputs}),
                     lambda e: Columns(("Age", "Income"), ())) for i in range(100)]
    agg.add_events(events, Layout.from_feature_stats(stats), 10)
    out = monitor_window({"project": "p", "feature_stats": stats}, "e", "p", T, T + WINDOW_MS, agg,
                         [HistogramDataDriftApplication()])
    general = next(r for r in out.results if r.result_name == "general_drift")
    assert general.status == -1 and general.value is None and general.extra_data["unmatched"]
    # no reference column has a value in the window (present but null counts as absent)
    assert sorted([*general.extra_data["missing_in_window"], *general.extra_data["skipped"]]) == ["Age", "Income"]
    (error,) = out.errors
    assert error.error_type == UNMATCHED_COLUMNS and "100 rows" in error.message
    assert out.prediction.count == 100


def test_a_partial_match_stays_a_drift_result_with_the_unknown_names():
    stats = _reference()
    agg = WindowAggregate(sample=Sample.empty(10))
    events = [decode(json.dumps({"endpoint_id": "e", "timestamp": T, "inputs": {"Age": 40.0 + i % 7, "channel": 1}}),
                     lambda e: Columns(("Age", "Income"), ())) for i in range(50)]
    agg.add_events(events, Layout.from_feature_stats(stats), 10)
    out = monitor_window({"project": "p", "feature_stats": stats}, "e", "p", T, T + WINDOW_MS, agg,
                         [HistogramDataDriftApplication()])
    general = next(r for r in out.results if r.result_name == "general_drift")
    assert general.value is not None and "channel" in general.extra_data["missing_in_reference"]
    assert out.errors == ()


def test_a_disabled_endpoint_is_counted_without_drift():
    stats = _reference()
    agg = WindowAggregate(sample=Sample.empty(10))
    agg.add_events([decode(json.dumps({"endpoint_id": "e", "timestamp": T, "inputs": {"Age": 40.0, "Income": 5e4}}),
                           lambda e: Columns(("Age", "Income"), ()))] * 5, Layout.from_feature_stats(stats), 10)
    out = monitor_window({"project": "p", "feature_stats": stats, "monitoring_mode": "disabled"}, "e", "p", T,
                         T + WINDOW_MS, agg, [HistogramDataDriftApplication()])
    assert out.results == () and out.metrics == () and out.prediction.count == 5


def test_sample_df_stats_has_the_quartiles_of_the_window():
    stats = _reference()
    values = np.arange(200, dtype=float)
    agg = WindowAggregate(sample=Sample.empty(1000))
    agg.add_events([decode(json.dumps({"endpoint_id": "e", "timestamp": T, "request_id": str(i),
                                       "inputs": {"Age": v, "Income": 5e4}}), lambda e: Columns(("Age", "Income"), ()))
                    for i, v in enumerate(values)], Layout.from_feature_stats(stats), 1000)
    window = agg.window_stats()
    # the sample holds every row here (200 < 1000): exact
    assert [window["Age"][q] for q in ("25%", "50%", "75%")] == np.percentile(values, [25, 50, 75]).tolist()


# ------------------------------------------------------------------------------ late rows


def _stream():
    """The issue's example: 60 s windows, disorder 5 s, lateness 60 s."""
    def ev(ts, i):
        return json.dumps({"endpoint_id": "e", "timestamp": ts, "request_id": f"{ts}-{i}", "inputs": [[1.0]]}).encode()

    w0, w1, w2 = T, T + WINDOW_MS, T + 2 * WINDOW_MS
    records = [ev(w0 + i * 100, i) for i in range(100)] + [ev(w1 + i * 100, i) for i in range(100)]
    records += [ev(w1 + 20_000 - 80_000, i) for i in range(20)]  # 80 s behind: W0, within the lateness
    records += [ev(w2 + i * 100, i) for i in range(100)]
    records += [ev(w2 + 10_000 - 130_000, i) for i in range(10)]  # 130 s behind: W0, beyond it
    return records


@pytest.mark.parametrize("batch", [1, 7, 20_000])
def test_late_rows_are_counted_once_whatever_the_batch_boundaries(batch):
    records = _stream()
    catalog = EndpointCatalog(lambda: [{"endpoint_id": "e", "feature_names": ["x"], "output_names": [],
                                        "feature_stats": {}}])
    clock = EventClock(WINDOW_MS, 60_000, 5_000)
    on_time, late, late_flags = {}, 0, []
    for i in range(0, len(records), batch):
        out = aggregate_records(records[i:i + batch], catalog, WINDOW_MS, reader=ColumnarReader(), clock=clock)
        late_flags += out.late.tolist()
        for p in out.partials:
            if p.late:
                late += p.aggregate.rows
            else:
                on_time[p.window_start] = on_time.get(p.window_start, 0) + p.aggregate.rows
    # counted by hand: the 10 records 130 s behind are the only late ones
    assert on_time == {T: 120, T + WINDOW_MS: 100, T + 2 * WINDOW_MS: 100} and late == 10
    assert late_flags == [False] * 320 + [True] * 10  # the raw rows' flag: exactly the rows counted late


def test_a_dead_letter_is_counted_on_the_endpoint_its_record_named():
    from streamdrift.udfs.contract import TimeBounds

    named = decode(json.dumps({"endpoint_id": "e-1", "timestamp": T, "inputs": [[1.0], [2.0]], "outputs": [1, 2, 3]}))
    assert named.endpoint_id == "e-1" and "'inputs' has 2 rows" in named.reason
    future = decode(json.dumps({"endpoint_id": "e-1", "timestamp": "2100-01-01", "inputs": [1.0]}),
                    bounds=TimeBounds(T, 300_000, 86_400_000))
    assert future.endpoint_id == "e-1" and json.loads(future.to_json())["endpoint_id"] == "e-1"
    for bad in ('{"endpoint_id": "tab\\tid", "timestamp": 1, "inputs": [1]}', "{not json", '{"hello": 1}'):
        letter = decode(bad)
        assert letter.endpoint_id is None and "endpoint_id" not in json.loads(letter.to_json())
