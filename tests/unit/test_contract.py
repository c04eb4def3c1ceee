"""One contract for accepted input: what the parse stage accepts, every sink accepts.

Records are generated with hostile strings (control characters, lone surrogates as JSON escapes and
as raw bytes, very long ids, characters Flink escapes in partition names) and times (far future,
year 9999, before the stores' retention); each must end either accepted and writable by every sink
(Arrow/Parquet on disk, the SQLite TSDB, the SQLite SQL store, TDengine's statements, Python's
datetime) or a dead letter with its reason, and none may be lost.
"""

from __future__ import annotations

import datetime as dt
import json
import string

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamdrift.udfs.partitions import hour_partitions, shard_partitions
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.connectors.tsdb.sqlite import SqliteTSDB
from streamdrift.connectors.tsdb.tdengine import insert_predictions_sql
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.columnar import ColumnarReader
from streamdrift.udfs.contract import TimeBounds, identifier_problem
from streamdrift.udfs.events import decode
from streamdrift.udfs.monitor import prediction_record
from streamdrift.udfs.batch import aggregate_records

NOW_MS = 1_795_694_400_000  # 2026-11-26T12:00Z
BOUNDS = TimeBounds(NOW_MS, max_future_ms=300_000, max_age_ms=3650 * 86_400_000)
WINDOW_MS = 60_000


@pytest.mark.parametrize("bad", ["tab\tid", "new\nline", "nul\x00", "del\x7f", "nel\x85", "ls\u2028", "cr\r"])
def test_control_characters_are_refused(bad):
    assert "control character" in identifier_problem(bad)


@pytest.mark.parametrize("bad, words", [("", "non-empty"), ("   ", "white space"), ("x" * 256, "256 characters"),
                                        ("a\ud800b", "lone surrogate"), (12, "must be a string")])
def test_other_bad_identifiers(bad, words):
    assert words in identifier_problem(bad)


@pytest.mark.parametrize("good", ["e1", "Ünïcødé-端点", "quote'and\"double", "semi;colon", "x" * 255, "a b"])
def test_good_identifiers(good):
    assert identifier_problem(good) is None


def _accepted_by_the_rule(value: str) -> bool:
    """The identifier rule written out character by character (the contract's docstring)."""
    import unicodedata

    return (0 < len(value) <= 255 and not all(c.isspace() for c in value)
            and not any(unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029" for c in value))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300),  # ASCII: the fast path
                 st.text(max_size=300),
                 st.text(alphabet=st.sampled_from(" \t\x0b\x0c\x1c\x1f\x7f\x85\xa0\u2028\ud800ab~"), max_size=8)))
def test_identifiers_are_accepted_exactly_by_the_rule(value):
    """Printable ASCII ids are accepted without the per-character loop; every string, ASCII or not,
    is accepted exactly when the rule accepts it."""
    assert (identifier_problem(value) is None) == _accepted_by_the_rule(value)


def test_time_bounds_name_the_clock_and_the_retention():
    assert BOUNDS.problem(NOW_MS) is None and BOUNDS.problem(NOW_MS + 300_000) is None
    assert "ahead of the job's clock" in BOUNDS.problem(NOW_MS + 300_001)
    assert "older than" in BOUNDS.problem(NOW_MS - 3651 * 86_400_000)


@pytest.mark.parametrize("payload, words", [
    (b'{"endpoint_id": "e", "timestamp": 1795694400000, "request_id": "\\ud800", "inputs": [1.0]}', "surrogate"),
    (b'{"endpoint_id": "e", "timestamp": 1795694400000, "request_id": "\xed\xa0\x80", "inputs": [1.0]}', "surrogate"),
    (b'{"endpoint_id": "tab\\tid", "timestamp": 1795694400000, "inputs": [1.0]}', "control character"),
    (b'{"endpoint_id": "e", "timestamp": "9999-12-31T23:59:30Z", "inputs": [1.0]}', "ahead of the job's clock"),
    (b'{"endpoint_id": "e", "timestamp": "2100-01-01T00:00:00Z", "inputs": [1.0]}', "ahead of the job's clock"),
    (b'{"endpoint_id": "e", "timestamp": 1, "inputs": [1.0]}', "older than"),
])
def test_the_hostile_records_of_the_issue_are_dead_letters_with_their_reason(payload, words):
    out = decode(payload, bounds=BOUNDS)
    assert words in out.reason
    # the same through the batch path, column-wise reader included, among good records
    good = [json.dumps({"endpoint_id": "e", "timestamp": NOW_MS - i, "inputs": [[1.0]]}).encode() for i in range(5)]
    batch = aggregate_records(good + [payload], _catalog(), WINDOW_MS, reader=ColumnarReader(), bounds=BOUNDS)
    assert [i for i, _ in batch.dead] == [5]
    assert words in batch.dead[0][1].reason
    assert sum(p.aggregate.events for p in batch.partials) == 5


def _catalog():
    return EndpointCatalog(lambda: [{"endpoint_id": "e", "feature_names": ["x"], "output_names": [],
                                     "feature_stats": {}, "project": "p"}])


# --------------------------------------------------------------------------- property

_hostile_text = st.one_of(
    st.text(min_size=0, max_size=12),  # any code point, lone surrogates included
    st.text(alphabet=st.sampled_from(list("/:=%#?*'\"\\{}[]^ \t\n\x00\x7f\x85\u2028端é")), max_size=90),
    st.text(alphabet=string.ascii_letters, min_size=240, max_size=300),
    st.sampled_from(["ok-1", "ok-2", "ÜNÏ-端点"]),
)
_times = st.one_of(
    st.integers(NOW_MS - 10 * 86_400_000, NOW_MS + 600_000),
    st.integers(-(10 ** 15), 10 ** 15),
    st.sampled_from(["9999-12-31T23:59:30Z", "2100-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-11-26T11:59:00Z",
                     "2026-11-26 11:59:00.123456+02:00"]),
)


@st.composite
def _records(draw):
    obj = {"endpoint_id": draw(_hostile_text), "timestamp": draw(_times), "inputs": [[draw(st.floats(-1e6, 1e6))]]}
    if draw(st.booleans()):
        obj["request_id"] = draw(_hostile_text)
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")  # raw bytes of lone surrogates too


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_records(), min_size=1, max_size=30), st.booleans())
def test_accepted_records_are_written_by_every_sink_and_none_is_lost(tmp_path_factory, payloads, columnar):
    ids = {json.loads(p.decode("utf-8", "surrogatepass"))["endpoint_id"] for p in payloads}
    catalog = EndpointCatalog(lambda: [{"endpoint_id": i, "feature_names": ["x"], "output_names": [],
                                        "feature_stats": {}, "project": "p"} for i in ids if isinstance(i, str)])
    batch = aggregate_records(payloads, catalog, WINDOW_MS, reader=ColumnarReader() if columnar else False,
                              bounds=BOUNDS)
    dead = {i for i, _ in batch.dead}
    accepted = [i for i in range(len(payloads)) if i not in dead]
    assert all(letter.reason for _, letter in batch.dead)
    # sent = accepted + dead: every accepted record is in exactly one partial's events
    assert sum(p.aggregate.events for p in batch.partials) == len(accepted)
    if not accepted:
        return
    root = tmp_path_factory.mktemp("sinks")
    ts = batch.timestamps[accepted]
    # Arrow and Parquet, in the partition directories the raw-row sink makes
    endpoint_ids = [batch.endpoint_ids[i] for i in accepted]
    table = pa.table({"event_ms": ts, "request_id": pa.array([batch.request_ids[i] for i in accepted], pa.string()),
                      "endpoint_id": pa.array(endpoint_ids, pa.string())})
    for shard, hour in set(zip(shard_partitions(endpoint_ids), hour_partitions(ts).tolist())):
        folder = root / f"shard={shard}" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "part-0.parquet")
    # the stores, with one window record per accepted endpoint and window
    tsdb, store = SqliteTSDB(root / "tsdb.sqlite"), SqlStore(f"sqlite:///{root / 'store.sqlite'}")
    tsdb.create_schema()
    store.create_schema()
    for p in batch.partials:
        record = prediction_record("p", p.endpoint_id, p.window_start, p.window_start + WINDOW_MS, p.aggregate)
        assert record.end_infer_time > record.start_infer_time  # Python's datetime took both
        tsdb.write_predictions([record])
        insert_predictions_sql("streamdrift", [record])
        store.record_window([], [], record)
        counters = {c["window_end"]: c["rows_count"] for c in store.window_counters(p.endpoint_id)}
        assert counters[record.end_infer_time] == p.aggregate.rows
    tsdb.close()
    store.close()


def test_event_times_at_the_bounds():
    def ms_of(payload):
        out = decode(json.dumps(payload), bounds=BOUNDS)
        return getattr(out, "timestamp_ms", None), getattr(out, "reason", None)

    newest = BOUNDS.newest_ms
    assert ms_of({"endpoint_id": "e", "timestamp": newest, "inputs": [1.0]})[0] == newest
    assert "ahead" in ms_of({"endpoint_id": "e", "timestamp": newest + 1, "inputs": [1.0]})[1]
    oldest = BOUNDS.oldest_ms
    assert ms_of({"endpoint_id": "e", "timestamp": oldest, "inputs": [1.0]})[0] == oldest
    assert "older" in ms_of({"endpoint_id": "e", "timestamp": oldest - 1, "inputs": [1.0]})[1]
    when = dt.datetime.fromtimestamp((newest + 1000) / 1000, dt.timezone.utc).isoformat()
    assert "ahead" in ms_of({"function_uri": "p/f", "model": "m", "when": when, "request": {"inputs": [1.0]},
                             "resp": {"outputs": [1]}})[1]
    assert np.isfinite(newest)
