"""The producer SDK without services: what it writes is what the job decodes, for every input
type; the embedded directory stream; the queue-full rule (a real Kafka client, no broker)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import socket

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from streamdrift.connectors.producer import MonitoringProducer, encode_event
from streamdrift.udfs.events import Columns, DeadLetter, decode

FEATURES = ("f_a", "f_b", "f_c")
COLUMNS = Columns(FEATURES, ("score",))


def _rows(payload: bytes):
    event = decode(payload, lambda _: COLUMNS)
    assert not isinstance(event, DeadLetter), event.reason
    return event, [dict(r) for r in event.rows]


def _expected(values: np.ndarray, scores) -> list[dict]:
    return [{**dict(zip(FEATURES, map(float, row))), "score": float(s)} for row, s in zip(values, scores)]


def _floats(rows: list[dict]) -> list[dict]:
    return [{k: float(v) for k, v in r.items()} for r in rows]


VALUES = np.array([[1.5, -2.0, 3.25], [0.0, 7.0, -1.0], [4.0, 4.5, 5.0]])
SCORES = np.array([0.1, 0.9, 0.5])


@pytest.mark.parametrize("kind", ["list of rows", "numpy 2-D", "numpy non-contiguous", "numpy float32",
                                  "DataFrame", "DataFrame reordered", "list of dicts"])
def test_every_input_type_decodes_to_the_rows_sent(kind):
    frame = pd.DataFrame(VALUES, columns=FEATURES)
    inputs, outputs = {
        "list of rows": (VALUES.tolist(), SCORES.tolist()),
        "numpy 2-D": (VALUES, SCORES),
        "numpy non-contiguous": (np.hstack([VALUES, VALUES])[:, :3], SCORES[::1]),
        "numpy float32": (VALUES.astype(np.float32), SCORES.astype(np.float32)),
        "DataFrame": (frame, pd.DataFrame({"score": SCORES})),
        "DataFrame reordered": (frame[["f_c", "f_a", "f_b"]], pd.Series(SCORES)),
        "list of dicts": ([dict(zip(FEATURES, row)) for row in VALUES.tolist()], SCORES),
    }[kind]
    event, rows = _rows(encode_event("ep", inputs, outputs, request_id="r-1", timestamp=1_700_000_000_123,
                                     latency_us=850))
    if kind == "numpy float32":  # written as float32's shortest decimal: equal at float32 precision
        got = np.array([[r[n] for n in (*FEATURES, "score")] for r in rows], dtype=np.float32)
        np.testing.assert_array_equal(got, np.column_stack([VALUES, SCORES]).astype(np.float32))
    else:
        assert _floats(rows) == _expected(VALUES, SCORES)
    assert (event.endpoint_id, event.timestamp_ms, event.request_id, event.latency_us) == \
           ("ep", 1_700_000_000_123, "r-1", 850.0)


def test_one_row_as_a_1d_array_a_series_or_a_dict():
    row = VALUES[0]
    for inputs in (row, pd.Series(row, index=FEATURES), dict(zip(FEATURES, row)), row.tolist()):
        _, rows = _rows(encode_event("ep", inputs, [0.25]))
        assert _floats(rows) == [{**dict(zip(FEATURES, row.tolist())), "score": 0.25}]


def test_a_dict_of_equal_length_lists_is_a_batch_by_columns_and_a_list_beside_scalars_an_array_feature():
    _, rows = _rows(encode_event("ep", {"f_a": np.array([1.0, 2.0]), "f_b": [3, 4]}, [0, 1]))
    assert [(r["f_a"], r["f_b"]) for r in rows] == [(1.0, 3), (2.0, 4)]
    _, (row,) = _rows(encode_event("ep", {"f_a": 1.0, "emb": [0.5, 1.5]}, [0]))
    assert (row["f_a"], row["emb.mean"], row["emb.max"]) == (1.0, 1.0, 1.5)


def test_missing_values_are_null_and_strings_stay_strings():
    frame = pd.DataFrame({"f_a": [1.0, np.nan], "f_b": ["x", "y"], "f_c": [np.nan, 2.0]})
    payload = encode_event("ep", frame, [1, 0])
    assert json.loads(payload)["inputs"] == [{"f_a": 1.0, "f_b": "x", "f_c": None}, {"f_a": None, "f_b": "y", "f_c": 2.0}]
    _, rows = _rows(payload)
    assert [r["f_b"] for r in rows] == ["x", "y"] and rows[0]["f_c"] is None


@pytest.mark.parametrize("when, ms", [
    (1_700_000_000_123, 1_700_000_000_123),
    ("2023-11-14T22:13:20.123Z", 1_700_000_000_123),
    (dt.datetime(2023, 11, 14, 22, 13, 20, 123000), 1_700_000_000_123),  # naive = UTC
    (dt.datetime(2023, 11, 15, 0, 13, 20, 123000, tzinfo=dt.timezone(dt.timedelta(hours=2))), 1_700_000_000_123),
    (pd.Timestamp("2023-11-14 22:13:20.123", tz="UTC"), 1_700_000_000_123),
    (np.datetime64("2023-11-14T22:13:20.123"), 1_700_000_000_123),
])
def test_timestamps_become_epoch_milliseconds(when, ms):
    assert json.loads(encode_event("ep", [1, 2, 3], timestamp=when))["timestamp"] == ms


def test_the_event_carries_error_and_labels():
    event = json.loads(encode_event("ep", [1, 2, 3], error="timeout", labels={"zone": "eu"}))
    assert event["error"] == "timeout" and event["labels"] == {"zone": "eu"}
    assert isinstance(decode(json.dumps(event)), DeadLetter) is False


@pytest.mark.parametrize("inputs, message", [
    ({1, 2, 3}, "inputs must be a list"),
    (np.ones((2, 2, 2)), "must be 1-D"),
    ([object()], "cannot be written as JSON"),
])
def test_what_cannot_be_sent_is_refused_in_the_callers_thread(inputs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        encode_event("ep", inputs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=3, max_size=3),
                min_size=1, max_size=20))
def test_any_finite_batch_round_trips_exactly(rows):
    values = np.array(rows)
    scores = np.arange(len(rows), dtype=float)
    for inputs in (values, pd.DataFrame(values, columns=FEATURES), rows):
        _, decoded = _rows(encode_event("ep", inputs, scores))
        assert _floats(decoded) == _expected(values, scores)


def test_model_function_version_name_the_endpoint_as_mlrun_does(tmp_path):
    with MonitoringProducer((tmp_path / "s").as_uri(), "fraud") as producer:
        expected = hashlib.sha1(b"fraud_serving_N/A_scorer_v3").hexdigest()
        assert producer.endpoint_id(("scorer", "serving", "v3")) == expected
        assert producer.endpoint_id(("scorer", "serving", "v3", "prod")) == \
            hashlib.sha1(b"fraud_serving_prod_scorer_v3").hexdigest()
        assert producer.endpoint_id("given-id") == "given-id"
        with pytest.raises(ValueError, match="model, function, version"):
            producer.endpoint_id(("scorer",))


def _stream_records(directory) -> list[dict]:
    return [json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_file_stream_writes_whole_visible_files_the_job_reads(tmp_path):
    producer = MonitoringProducer((tmp_path / "stream").as_uri(), "demo", batch_size=7, linger_s=0.05)
    for i in range(50):
        assert producer.log("ep", VALUES[i % 3], [float(i)], request_id=f"r{i}")
    assert producer.flush(10)
    directory = tmp_path / "stream" / "demo.inference-events"
    records = _stream_records(directory)
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(50)]
    # every file holds whole records and ends with a newline; no hidden file is left behind
    files = list(directory.iterdir())
    assert all(not f.name.startswith((".", "_")) and f.read_bytes().endswith(b"\n") for f in files)
    assert len(files) >= 50 // 7
    assert producer.close() and (producer.logged, producer.sent, producer.failed, producer.dropped) == (50, 50, 0, 0)
    with pytest.raises(RuntimeError, match="closed"):
        producer.log("ep", [1, 2, 3])


def _counter(name: str, project: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total", {"project": project}) or 0.0


def test_a_full_queue_drops_counts_and_says_so(tmp_path, caplog):
    # the background thread sends when a batch is full or after linger_s: neither happens here
    producer = MonitoringProducer((tmp_path / "stream").as_uri(), "full", max_queue=5, batch_size=1000, linger_s=60)
    before = _counter("streamdrift_producer_dropped_events", "full")
    with caplog.at_level(logging.WARNING, logger="streamdrift.producer"):
        accepted = [producer.log("ep", [i, i, i], [i], request_id=f"r{i}") for i in range(12)]
    assert accepted == [True] * 5 + [False] * 7
    assert (producer.logged, producer.dropped) == (5, 7)
    assert _counter("streamdrift_producer_dropped_events", "full") - before == 7
    drops = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(drops) == 1  # one line, not one per dropped event
    assert producer.close(10)
    assert [r["request_id"] for r in _stream_records(tmp_path / "stream" / "full.inference-events")] == \
           [f"r{i}" for i in range(5)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_broker_never_blocks_log_events_wait_then_drop(caplog):
    port = _closed_port()
    producer = MonitoringProducer(f"kafka://127.0.0.1:{port}", "down", max_queue=100, batch_size=10, linger_s=0.05)
    with caplog.at_level(logging.WARNING, logger="streamdrift.producer"):
        accepted = [producer.log("ep", [i, i, i], [i]) for i in range(150)]
        assert sum(accepted) == 100 and producer.dropped == 50
        assert not producer.flush(timeout=1.0)  # nothing can be sent
        assert not producer.close(timeout=1.0)
    assert (producer.sent, producer.failed) == (0, 100)  # what was queued at close is counted as failed
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "queue full" in messages and f"127.0.0.1:{port}" in messages


def test_log_from_many_threads_loses_nothing(tmp_path):
    import threading

    producer = MonitoringProducer((tmp_path / "stream").as_uri(), "threads", batch_size=100, linger_s=0.01)

    def serve(t: int) -> None:
        for i in range(500):
            producer.log("ep", [t, i, 0.5], [1.0], request_id=f"{t}-{i}")

    threads = [threading.Thread(target=serve, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert producer.close(30)
    ids = [r["request_id"] for r in _stream_records(tmp_path / "stream" / "threads.inference-events")]
    assert sorted(ids) == sorted(f"{t}-{i}" for t in range(4) for i in range(500))
    assert (producer.logged, producer.sent, producer.dropped, producer.failed) == (2000, 2000, 0, 0)
