"""A batch of windows is checked as each record alone is (:func:`check_record`), and written as
before: the same accepted records, the same first error, the same stored rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamdrift.connectors import job_io
from streamdrift.connectors.tsdb import tables
from streamdrift.connectors.tsdb.base import (
    BatchChecks,
    bound_extra_data,
    check_feature_drift,
    check_feature_drift_many,
    check_metric,
    check_result,
    encode_row,
    encode_rows,
    feature_drift_records,
)
from streamdrift.connectors.tsdb.sqlite import SqliteTSDB
from streamdrift.udfs.monitor import WindowOutput
from streamdrift.udfs.records import FeatureDriftRecord, FeatureDriftRows, MetricRecord, PredictionRecord, ResultRecord

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 29, tzinfo=UTC)

# A record: good values (few, so that windows and names repeat and take the batch's short way),
# with at most one field bad, of the kinds a store must refuse or convert.
BAD_TEXTS = ["", "a\x00b", "tab\tin", "x" * 256, 7, None]
BAD_TIMES = [dt.datetime(2026, 11, 29), dt.datetime(2026, 11, 29, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
             "2026-11-29", 1_764_374_400, None]
GOOD_MEASURES, BAD_MEASURES = [0.25, 0.0, None], [math.nan, math.inf, -math.inf, 1, True, "0.5", "x", 5e-324, -0.0]
FIELDS = {  # field: (good values, bad values)
    "project": (["模型-ü"], BAD_TEXTS),
    "endpoint_id": (["ep-1", "ep-2"], BAD_TEXTS),
    "application_name": (["histogram-data-drift"], ["1app", "-x", "a b", "a" * 129, None]),
    "result_name": (["general_drift", "tvd_mean"], ["9x", "a-b", "", "n" * 129, 3]),
    "metric_name": (["general_drift", "tvd_mean"], ["9x", "a-b", "", "n" * 129, 3]),
    "feature_name": (["f0", "f1", "feature ü"], ["", "bad\x07", "y" * 256, 1.5]),
    "start_infer_time": ([T0], BAD_TIMES),
    "end_infer_time": ([T0, T0 + dt.timedelta(minutes=1)], BAD_TIMES),
    "value": (GOOD_MEASURES, BAD_MEASURES),
    "tvd": (GOOD_MEASURES, BAD_MEASURES), "hellinger": (GOOD_MEASURES, BAD_MEASURES),
    "kld": (GOOD_MEASURES, BAD_MEASURES), "p_value": (GOOD_MEASURES, BAD_MEASURES),
    "effect_size": (GOOD_MEASURES, BAD_MEASURES), "invalid_share": (GOOD_MEASURES, BAD_MEASURES),
    "window_count": ([2000, 0, None], [-1, True, 2.0, "5"]),
    "reference_count": ([2000, 0, None], [-1, True, 2.0, "5"]),
    "rejected": ([True, False, None], [0, 1, "yes"]),
    "kind": ([0, 1], [True, "2", 2.5, "x"]),
    "status": ([0, 2], [-1, "1", None]),
    "extra_data": ([{"columns": {"f0": {"tvd": 0.1, "n": 20}}}, {}, None],
                   [{"p": math.nan, "big": 2 ** 70}, {"t": (1, 2), "when": T0}, {"ü": "模型"}, ["not", "a dict"],
                    {1: "int key"}, {"x": 1e-05, "y": 1e16}, {"c": {"f0": {"tvd": 0.5}}, "pad": "z" * 17_000}]),
}


@st.composite
def records(draw, cls):
    names = [f.name for f in dataclasses.fields(cls)]
    values = {name: draw(st.sampled_from(FIELDS[name][0])) for name in names}
    if draw(st.booleans()):
        bad = draw(st.sampled_from(names))
        values[bad] = draw(st.sampled_from(FIELDS[bad][1]))
    return cls(**values)


def feature_rows(n: int = 8):
    return st.lists(records(FeatureDriftRecord), max_size=n)


SERIES = ("project", "endpoint_id", "application_name", "start_infer_time", "end_infer_time")
VALUES = ("feature_name", "tvd", "hellinger", "kld", "p_value", "rejected", "effect_size", "window_count",
          "reference_count", "invalid_share")


@st.composite
def feature_blocks(draw):
    """One window's per-feature rows as values (FeatureDriftRows, as the built-in application
    makes them): good values, with at most one field of the window or of one row bad."""
    series = {name: draw(st.sampled_from(FIELDS[name][0])) for name in SERIES}
    rows = [{name: draw(st.sampled_from(FIELDS[name][0])) for name in VALUES} for _ in range(draw(st.integers(1, 12)))]
    if draw(st.booleans()):
        bad = draw(st.sampled_from(SERIES + VALUES))
        value = draw(st.sampled_from(FIELDS[bad][1]))
        if bad in SERIES:
            series[bad] = value
        else:
            rows[draw(st.integers(0, len(rows) - 1))][bad] = value
    return FeatureDriftRows(tuple(series[n] for n in SERIES), [tuple(row[n] for n in VALUES) for row in rows])


results = st.lists(records(ResultRecord), max_size=4)
metrics = st.lists(records(MetricRecord), max_size=4)


def outcome(fn):
    """What ``fn()`` returns, or the type and message of what it raises."""
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return type(exc).__name__, str(exc)


def one_by_one(res, met, feats):
    """The rows each record alone gives (check_*, bound, encode_row), in checked_window's order."""
    def run():
        checked = ([bound_extra_data(check_result(r)) for r in res], [check_metric(m) for m in met],
                   [check_feature_drift(f) for f in feats])
        return [[encode_row(t, r) for r in rs]
                for t, rs in zip((tables.RESULTS, tables.METRICS, tables.FEATURE_DRIFT), checked)]
    return outcome(run)


def batched(res, met, feats, sqlite_rows: bool = True):
    """The rows a batch gives: as SqliteTSDB.write_window encodes them (the results' JSON written
    once, ``checks.texts``), or, ``sqlite_rows`` False, as TDengine's writer does (encode_row)."""
    tsdb = SqliteTSDB(":memory:")
    try:
        def run():
            checks = BatchChecks()
            checked = tsdb.checked_window(res, met, [], [], feats, checks)
            kinds = zip((tables.RESULTS, tables.METRICS, tables.FEATURE_DRIFT), (checked[0], checked[1], checked[4]))
            if sqlite_rows:
                return [encode_rows(t, rs, checks.texts) for t, rs in kinds]
            # TDengine's writer: a row per record (FeatureDriftRows as their records)
            return [[encode_row(t, r) for r in (feature_drift_records(rs) if t is tables.FEATURE_DRIFT else rs)]
                    for t, rs in kinds]
        return outcome(run)
    finally:
        tsdb.close()


def same(a, b) -> bool:
    """Equal outcomes, NaN equal to NaN (a row never holds one; a message may)."""
    return repr(a) == repr(b)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results, metrics, feature_rows())
def test_a_batch_accepts_and_refuses_what_each_record_alone_does(res, met, feats):
    alone = one_by_one(res, met, feats)
    assert same(batched(res, met, feats), alone)
    assert same(batched(res, met, feats, sqlite_rows=False), alone)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results, st.lists(st.one_of(feature_blocks(), records(FeatureDriftRecord)), max_size=5))
def test_a_windows_feature_rows_as_values_are_checked_and_stored_as_their_records_alone(res, items):
    """FeatureDriftRows checked together (BatchChecks.feature_rows) and written as values: the
    same accepted rows, the same first error, the same stored rows as each of their records alone,
    among other windows' records."""
    alone = one_by_one(res, [], feature_drift_records(items))
    assert same(batched(res, [], items), alone)
    assert same(batched(res, [], items, sqlite_rows=False), alone)


@pytest.mark.parametrize("field", VALUES)
def test_a_bad_value_inside_a_block_of_known_names_is_found_as_its_record_alone(field):
    """Each bad value of the field, on the second row of a window's block whose names passed in
    an earlier window of the batch (where the block's short way applies), among good rows: the
    same accepted rows, first error and stored rows as each record alone; two huge floats whose
    sum overflows as well."""
    end = T0 + dt.timedelta(minutes=1)
    good = ("f0", 0.25, 0.5, 0.1, 0.01, True, 1.5, 10, 20, None)
    earlier = FeatureDriftRows(("p", "ep0", "histogram-data-drift", T0, end), [good, ("f1",) + good[1:]])
    i = VALUES.index(field)
    cases = [value for value in FIELDS[field][1]] + ([1e308] if FIELDS[field][1] is BAD_MEASURES else [])
    for value in cases:
        row = list(good)
        row[i] = value
        block = FeatureDriftRows(("p", "ep1", "histogram-data-drift", T0, end), [good, tuple(row), ("f1",) + good[1:]])
        items = [earlier, block]
        alone = one_by_one([], [], feature_drift_records(items))
        assert same(batched([], [], items), alone), value
        assert same(batched([], [], items, sqlite_rows=False), alone), value
    huge = FeatureDriftRows(("p", "ep2", "histogram-data-drift", T0, end),
                            [("f0", 1e308, 0.5, 0.1, None, None, None, 1, 1, None),
                             ("f1", 1e308, 0.5, 0.1, None, None, None, 1, 1, None)])
    assert same(batched([], [], [earlier, huge]), one_by_one([], [], feature_drift_records([earlier, huge])))


def test_feature_rows_of_plain_values_stay_one_block_and_others_are_checked_one_by_one():
    """The block is kept whole where every record would come out as it is (the built-in
    application's case: names that passed in the batch, plain values), and checked record by
    record otherwise: the batch's first window of these names, an int measure (made a float)."""
    end = T0 + dt.timedelta(minutes=1)
    values = [("f0", 0.25, 0.5, 0.1, 0.01, True, 1.5, 10, 20, None), ("f1", 0.0, 0.0, 0.0, None, None, None, 10, 20, 0.5)]
    first = FeatureDriftRows(("p", "ep0", "app", T0, end), values)
    plain = FeatureDriftRows(("p", "ep", "app", T0, end), values)
    ints = FeatureDriftRows(("p", "ep2", "app", T0, end), [("f0", 1, 0.5, 0.1, None, None, None, 10, 20, None)])
    checks = BatchChecks()
    checked = checks.feature_rows(first)
    assert type(checked) is list and checked == list(first)
    assert checks.feature_rows(plain) is plain
    [record] = checks.feature_rows(ints)
    assert record.tvd == 1.0 and type(record.tvd) is float
    rows = encode_rows(tables.FEATURE_DRIFT, [plain])
    assert rows == [encode_row(tables.FEATURE_DRIFT, r) for r in plain]
    assert rows[0][:2] == [us(end), us(T0)]  # end_infer_time, start_infer_time: microseconds


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=1, max_size=40), feature_rows(4))
def test_a_window_of_many_feature_rows_is_checked_as_each_row_alone(picks, pool):
    # a window's rows repeat the same series fields: the short way is taken for most of them
    feats = [pool[i % len(pool)] for i in picks] if pool else []
    assert same(outcome(lambda: check_feature_drift_many(feats)),
                outcome(lambda: [check_feature_drift(f) for f in feats]))


def test_the_first_bad_row_of_a_window_gives_the_message_it_gives_alone():
    good = FeatureDriftRecord("fraud", "ep", "histogram-data-drift", "f0", T0, T0 + dt.timedelta(minutes=1),
                              0.1, 0.2, 0.3, window_count=10, reference_count=20)
    bad = FeatureDriftRecord("fraud", "ep", "histogram-data-drift", "f1", T0, T0 + dt.timedelta(minutes=1),
                             0.1, 0.2, 0.3, window_count=-3, reference_count=20)
    _, message = outcome(lambda: check_feature_drift_many([good, good, bad, good]))
    assert message == "feature drift of 'f1' of endpoint 'ep': window_count must be a whole number >= 0 or None, got -3"


# --------------------------------------------------------------------------------- stored rows


def us(when: dt.datetime) -> int:
    """Microseconds since the epoch, by hand."""
    return round((when - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000 + when.microsecond


def windows(n_endpoints: int, n_features: int, as_values: bool = False):
    outs = []
    for i in range(n_endpoints):
        start = T0 + dt.timedelta(microseconds=250)
        end = start + dt.timedelta(minutes=1)
        endpoint = f"ep-{i}"
        extra = {"columns": {f"f{k}": {"tvd": 0.125 * k, "n": 100 + i} for k in range(n_features)}, "fdr": 0.5}
        results = [ResultRecord("fraud", endpoint, "histogram-data-drift", "general_drift", 0, i % 3, 0.25 * i,
                                start, end, extra)]
        metrics = [MetricRecord("fraud", endpoint, "histogram-data-drift", "tvd_mean", math.nan if i == 1 else 0.5,
                                start, end)]
        prediction = PredictionRecord("fraud", endpoint, start, end, 100 + i, 90, 1, 90, 1500.0, 1000.0, 2000.0,
                                      math.inf, start, end - dt.timedelta(seconds=1), None)
        feats = [FeatureDriftRecord("fraud", endpoint, "histogram-data-drift", f"f{k}", start, end, 0.125 * k,
                                    math.nan if k == 2 and not as_values else 0.5, 0.0, p_value=None, rejected=k == 1,
                                    effect_size=0.25, window_count=100 + i, reference_count=500,
                                    invalid_share=None) for k in range(n_features)]
        if as_values:  # as the built-in application gives them
            feats = FeatureDriftRows(("fraud", endpoint, "histogram-data-drift", start, end),
                                     [tuple(getattr(f, n) for n in VALUES) for f in feats])
        outs.append(WindowOutput(project="fraud", endpoint_id=endpoint, start_ms=us(start) // 1000,
                                 end_ms=us(end) // 1000, revision=0, late_rows=0, results=results, metrics=metrics, prediction=prediction,
                                 feature_drift=feats))
    return outs


@pytest.mark.parametrize("as_values", [False, True])
def test_the_stores_keep_a_batch_of_windows_as_its_records_say(tmp_path, as_values):
    outs = windows(4, 5, as_values)
    writer = job_io.StoreWriter(f"sqlite:///{tmp_path}/tsdb.sqlite", f"sqlite:///{tmp_path}/store.sqlite")
    try:
        assert writer.write_many(outs) == []
    finally:
        writer.close()
    start, end = outs[0].results[0].start_infer_time, outs[0].results[0].end_infer_time
    tsdb = sqlite3.connect(tmp_path / "tsdb.sqlite")
    got = sorted(tsdb.execute("SELECT project, endpoint_id, application_name, feature_name, end_infer_time, "
                              "start_infer_time, tvd, hellinger, kld, p_value, rejected, effect_size, window_count, "
                              "reference_count, invalid_share FROM feature_drift").fetchall())
    want = sorted(("fraud", f"ep-{i}", "histogram-data-drift", f"f{k}", us(end), us(start), 0.125 * k,
                   None if k == 2 and not as_values else 0.5, 0.0, None, int(k == 1), 0.25, 100 + i, 500, None)
                  for i in range(4) for k in range(5))
    assert got == want
    got = sorted(tsdb.execute("SELECT endpoint_id, result_name, result_kind, result_status, result_value, "
                              "end_infer_time, start_infer_time, result_extra_data FROM app_results").fetchall())
    want = sorted((f"ep-{i}", "general_drift", 0, i % 3, 0.25 * i, us(end), us(start),
                   json.dumps(outs[i].results[0].extra_data, sort_keys=True, separators=(",", ":")))
                  for i in range(4))
    assert got == want
    got = sorted(tsdb.execute("SELECT endpoint_id, metric_name, metric_value, end_infer_time FROM metrics"))
    assert got == sorted((f"ep-{i}", "tvd_mean", None if i == 1 else 0.5, us(end)) for i in range(4))
    got = sorted(tsdb.execute("SELECT endpoint_id, row_count, latency_mean_us, latency_p99_us, first_request, "
                              "last_request, estimated_count FROM predictions"))
    assert got == sorted((f"ep-{i}", 100 + i, 1500.0, None, us(start), us(end) - 1_000_000, None) for i in range(4))
    tsdb.close()

    store = sqlite3.connect(tmp_path / "store.sqlite")
    text = "%Y-%m-%d %H:%M:%S.%f"
    got = sorted(store.execute("SELECT endpoint_id, application_name, result_name, project, kind, status, value, "
                               "extra_data, start_infer_time, end_infer_time FROM latest_results"))
    want = sorted((f"ep-{i}", "histogram-data-drift", "general_drift", "fraud", 0, i % 3, 0.25 * i,
                   json.dumps(outs[i].results[0].extra_data, ensure_ascii=False, separators=(",", ":")),
                   start.strftime(text), end.strftime(text)) for i in range(4))
    assert got == want
    got = sorted(store.execute("SELECT endpoint_id, metric_name, value, start_infer_time, end_infer_time "
                               "FROM latest_metrics"))
    assert got == sorted((f"ep-{i}", "tvd_mean", None if i == 1 else 0.5, start.strftime(text), end.strftime(text))
                         for i in range(4))
    got = sorted(store.execute("SELECT endpoint_id, window_end, window_start, rows_count, events_count, "
                               "error_count, first_request, last_request FROM endpoint_windows"))
    assert got == sorted((f"ep-{i}", end.strftime(text), start.strftime(text), 100 + i, 90, 1, start.strftime(text),
                          (end - dt.timedelta(seconds=1)).strftime(text)) for i in range(4))
    store.close()


@pytest.mark.parametrize("locked", ["tsdb", "store"])
def test_a_batch_waits_for_a_store_another_connection_is_writing_and_lands_in_both(tmp_path, locked):
    """The two stores are written at the same time (the SQL store from a thread): a store busy with
    another writer's transaction is waited for, and every record of the batch lands in both."""
    import threading

    outs = windows(4, 3)
    writer = job_io.StoreWriter(f"sqlite:///{tmp_path}/tsdb.sqlite", f"sqlite:///{tmp_path}/store.sqlite")
    other = sqlite3.connect(tmp_path / f"{locked}.sqlite", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the file's write lock, as another writer holds it
    release = threading.Timer(1.0, lambda: other.execute("COMMIT"))
    release.start()
    try:
        assert writer.write_many(outs) == []
    finally:
        release.join()
        other.close()
        writer.close()
    tsdb = sqlite3.connect(tmp_path / "tsdb.sqlite")
    assert sorted(tsdb.execute("SELECT endpoint_id, feature_name FROM feature_drift")) == sorted(
        (f"ep-{i}", f"f{k}") for i in range(4) for k in range(3))
    assert tsdb.execute("SELECT COUNT(*) FROM predictions").fetchone() == (4,)
    tsdb.close()
    store = sqlite3.connect(tmp_path / "store.sqlite")
    assert sorted(store.execute("SELECT endpoint_id, rows_count FROM endpoint_windows")) == [
        (f"ep-{i}", 100 + i) for i in range(4)]
    store.close()


def test_a_window_the_tsdb_refuses_is_set_aside_and_the_others_land_in_both_stores(tmp_path):
    outs = windows(4, 3)
    bad = outs[2]
    outs[2] = dataclasses.replace(bad, feature_drift=(dataclasses.replace(bad.feature_drift[0], window_count=-3),
                                                      *bad.feature_drift[1:]))
    writer = job_io.StoreWriter(f"sqlite:///{tmp_path}/tsdb.sqlite", f"sqlite:///{tmp_path}/store.sqlite")
    try:
        refused = writer.write_many(outs)
    finally:
        writer.close()
    assert [out.endpoint_id for out, _ in refused] == ["ep-2"]
    assert "window_count must be a whole number >= 0" in refused[0][1]
    tsdb = sqlite3.connect(tmp_path / "tsdb.sqlite")
    assert sorted(r[0] for r in tsdb.execute("SELECT endpoint_id FROM predictions")) == ["ep-0", "ep-1", "ep-3"]
    tsdb.close()
    store = sqlite3.connect(tmp_path / "store.sqlite")
    written = {r[0] for r in store.execute("SELECT endpoint_id FROM endpoint_windows")}
    assert {"ep-0", "ep-1", "ep-3"} <= written  # the refused one may be there too: its dead letter writes both
    store.close()
