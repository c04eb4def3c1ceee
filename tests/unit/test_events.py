"""Decoding inference events (streamdrift.udfs.events): both shapes into rows, or a dead letter with its reason.

Expected values are computed here independently: times with datetime/calendar, MLRun endpoint ids
with hashlib.sha1, array summaries with numpy.
"""

import calendar
import datetime as dt
import hashlib
import json
import math

import numpy as np
import pytest

from streamdrift.udfs.events import (
    DEAD_LETTER_PAYLOAD_BYTES,
    MAX_EVENT_BYTES,
    NO_COLUMNS,
    Columns,
    DeadLetter,
    Event,
    decode,
    window_start,
)

UTC = dt.timezone.utc


def ms(year, month, day, hour=0, minute=0, second=0, micro=0, offset_minutes=0):
    """Epoch milliseconds of a wall time at a UTC offset, by integer arithmetic (floor)."""
    secs = calendar.timegm((year, month, day, hour, minute, second)) - offset_minutes * 60
    return secs * 1000 + micro // 1000


def mlrun_uid(project, function, tag, model, version):
    return hashlib.sha1(f"{project}_{function}_{tag or 'N/A'}_{model}_{version or 'N/A'}".encode()).hexdigest()


def native(**fields):
    event = {"endpoint_id": "ep1", "timestamp": 1_700_000_000_000, "request_id": "r1"}
    event.update(fields)
    return json.dumps(event, ensure_ascii=False)


def mlrun(**fields):
    event = {"model": "churn", "version": "v2", "function_uri": "shop/serving:prod",
             "request": {"id": "req-1", "inputs": [[1.0, 2.0]]}, "resp": {"id": "req-1", "outputs": [0.7]},
             "when": "2024-01-02 03:04:05.123456", "microsec": 1534}
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not _DROP})


_DROP = object()


def ok(payload, columns=None) -> Event:
    out = decode(payload, (lambda _: columns) if columns is not None else (lambda _: Columns()))
    assert isinstance(out, Event), out
    return out


def dead(payload, columns=None, **kwargs) -> DeadLetter:
    out = decode(payload, (lambda _: columns) if columns is not None else (lambda _: Columns()), **kwargs)
    assert isinstance(out, DeadLetter), out
    return out


# --------------------------------------------------------------------------- native events


def test_native_one_row_as_list_named_by_the_endpoint():
    ev = ok(native(inputs=[1.5, "red", True], outputs=[0.25], latency_us=830, error=None),
            Columns(("x", "color", "flag"), ("score",)))
    assert ev.endpoint_id == "ep1" and ev.request_id == "r1" and ev.shape == "native"
    assert ev.timestamp_ms == 1_700_000_000_000
    assert ev.rows == ({"x": 1.5, "color": "red", "flag": True, "score": 0.25},)
    assert ev.latency_us == 830.0 and ev.error is False


def test_native_one_row_as_list_without_names():
    ev = ok(native(inputs=[1, 2, 3], outputs=7))
    assert ev.rows == ({"f0": 1, "f1": 2, "f2": 3, "prediction": 7},)


def test_native_one_row_as_object():
    ev = ok(native(inputs={"age": 41, "city": "Oslo", "income": None}, outputs=[1]))
    assert ev.rows == ({"age": 41, "city": "Oslo", "income": None, "prediction": 1},)


def test_object_keys_are_normalised_as_the_reference_names():
    ev = ok(native(inputs={"petal length (cm)": 1.4, "sepal width": 3.0}))
    assert ev.rows == ({"petal_length_cm": 1.4, "sepal_width": 3.0},)


def test_two_keys_that_normalise_to_one_name_are_a_dead_letter():
    letter = dead(native(inputs={"a b": 1, "a_b": 2}))
    assert "'a_b'" in letter.reason and "twice" in letter.reason


def test_native_batch_of_lists_gives_one_row_per_sample():
    inputs = [[float(i), float(i) * 2] for i in range(5)]
    ev = ok(native(inputs=inputs, outputs=[i % 2 for i in range(5)]), Columns(("a", "b"), ("label",)))
    assert len(ev.rows) == 5
    assert [r["a"] for r in ev.rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [r["b"] for r in ev.rows] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [r["label"] for r in ev.rows] == [0, 1, 0, 1, 0]


def test_native_batch_of_objects():
    ev = ok(native(inputs=[{"a": 1}, {"a": 2}, {"a": 3, "b": "x"}], outputs=[10, 20, 30]))
    assert ev.rows == ({"a": 1, "prediction": 10}, {"a": 2, "prediction": 20},
                       {"a": 3, "b": "x", "prediction": 30})


def test_batch_of_one_row():
    ev = ok(native(inputs=[[1, 2]], outputs=[5]))
    assert ev.rows == ({"f0": 1, "f1": 2, "prediction": 5},)


def test_one_row_with_several_outputs_is_one_row():
    ev = ok(native(inputs=[1, 2], outputs=[0.1, 0.9]))
    assert ev.rows == ({"f0": 1, "f1": 2, "prediction_0": 0.1, "prediction_1": 0.9},)


def test_outputs_list_per_row_named_by_output_names():
    ev = ok(native(inputs=[[1], [2]], outputs=[[0.2, 0.8], [0.6, 0.4]]), Columns(("x",), ("p_no", "p_yes")))
    assert ev.rows == ({"x": 1, "p_no": 0.2, "p_yes": 0.8}, {"x": 2, "p_no": 0.6, "p_yes": 0.4})


def test_outputs_list_per_row_without_matching_names():
    ev = ok(native(inputs=[[1], [2]], outputs=[[0.2, 0.8], [0.6, 0.4]]), Columns(("x",), ("only_one",)))
    assert ev.rows == ({"x": 1, "prediction_0": 0.2, "prediction_1": 0.8},
                       {"x": 2, "prediction_0": 0.6, "prediction_1": 0.4})


def test_multi_port_outputs():
    outputs = {"label": [1, 0, 1], "proba": [[0.1, 0.9], [0.7, 0.3], [0.2, 0.8]]}
    ev = ok(native(inputs=[[1], [2], [3]], outputs=outputs))
    assert ev.rows == (
        {"f0": 1, "label": 1, "proba_0": 0.1, "proba_1": 0.9},
        {"f0": 2, "label": 0, "proba_0": 0.7, "proba_1": 0.3},
        {"f0": 3, "label": 1, "proba_0": 0.2, "proba_1": 0.8},
    )


def test_multi_port_outputs_of_one_row():
    ev = ok(native(inputs=[1, 2], outputs={"label": 1, "proba": [0.3, 0.7]}))
    assert ev.rows == ({"f0": 1, "f1": 2, "label": 1, "proba_0": 0.3, "proba_1": 0.7},)


@pytest.mark.parametrize("outputs, what", [
    ([1, 2], "field 'outputs' has 2 values"),
    ([1, 2, 3, 4], "field 'outputs' has 4 values"),
    ({"label": [1, 0]}, "output port 'label' has 2 values"),
])
def test_rows_and_outputs_of_different_lengths_are_a_dead_letter(outputs, what):
    letter = dead(native(inputs=[[1], [2], [3]], outputs=outputs))
    assert what in letter.reason and "3 rows" in letter.reason


def test_one_row_with_no_output_values_is_a_dead_letter():
    letter = dead(native(inputs=[1, 2], outputs=[]))
    assert "0 values" in letter.reason and "1 rows" in letter.reason


def test_output_reusing_an_input_name_is_a_dead_letter():
    letter = dead(native(inputs={"prediction": 3}, outputs=[1]))
    assert "'prediction'" in letter.reason


def test_row_of_wrong_width_for_the_endpoint_is_a_dead_letter():
    letter = dead(native(inputs=[[1, 2, 3]]), Columns(("a", "b")))
    assert "3 values" in letter.reason and "2 features" in letter.reason


def test_nested_numeric_arrays_are_summarised():
    image = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.5]]
    embedding = [0.5, -1.25, 3.0, 8.0]
    ev = ok(native(inputs=[[image, embedding, 7]]), Columns(("image", "emb", "n")))
    row = ev.rows[0]
    for name, values in (("image", image), ("emb", embedding)):
        a = np.asarray(values, dtype=float).ravel()
        assert row[f"{name}.mean"] == pytest.approx(np.mean(a))
        assert row[f"{name}.std"] == pytest.approx(np.std(a))
        assert row[f"{name}.min"] == a.min() and row[f"{name}.max"] == a.max()
        assert row[f"{name}.norm"] == pytest.approx(np.linalg.norm(a))
    assert row["n"] == 7
    assert set(row) == {f"{n}.{d}" for n in ("image", "emb") for d in ("mean", "std", "min", "max", "norm")} | {"n"}


def test_one_row_mixing_scalars_and_arrays():
    ev = ok(native(inputs={"v": [3.0, 4.0], "k": 2}))
    assert ev.rows[0]["v.norm"] == pytest.approx(5.0) and ev.rows[0]["k"] == 2


def test_empty_array_gives_nulls():
    ev = ok(native(inputs={"v": [], "k": 1}))
    assert all(math.isnan(ev.rows[0][f"v.{d}"]) for d in ("mean", "std", "min", "max", "norm"))


@pytest.mark.parametrize("array, why", [
    ([[1, 2], [3]], "ragged"),
    ([1, "a"], "string"),
    (["1.5", "2"], "numeric strings"),
    ([1, {"x": 1}], "object"),
    ([10 ** 400, 1], "beyond float64"),
])
def test_bad_arrays_are_a_dead_letter_naming_the_column(array, why):
    letter = dead(native(inputs={"emb": array, "k": 1}))
    assert "'emb'" in letter.reason, why


def test_object_value_is_a_dead_letter_naming_the_column():
    letter = dead(native(inputs={"meta": {"a": 1}}))
    assert "'meta'" in letter.reason and "dict" in letter.reason


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("text, expected", [
    ("2024-01-02T03:04:05", ms(2024, 1, 2, 3, 4, 5)),
    ("2024-01-02 03:04:05", ms(2024, 1, 2, 3, 4, 5)),
    ("2024-01-02T03:04:05.123456", ms(2024, 1, 2, 3, 4, 5, 123456)),
    ("2024-01-02 03:04:05.999999", ms(2024, 1, 2, 3, 4, 5, 999999)),
    ("2024-01-02T03:04:05.5Z", ms(2024, 1, 2, 3, 4, 5, 500000)),
    ("2024-01-02T03:04:05Z", ms(2024, 1, 2, 3, 4, 5)),
    ("2024-01-02T03:04:05+02:00", ms(2024, 1, 2, 3, 4, 5, offset_minutes=120)),
    ("2024-01-02 03:04:05.250-05:30", ms(2024, 1, 2, 3, 4, 5, 250000, offset_minutes=-330)),
    ("2024-01-02 03:04:05.123456+00:00", ms(2024, 1, 2, 3, 4, 5, 123456)),
    ("1999-12-31T23:59:59.001", ms(1999, 12, 31, 23, 59, 59, 1000)),
    # float seconds × 1000 gives ...836 for these two
    ("2004-02-08T07:49:54.837Z", ms(2004, 2, 8, 7, 49, 54, 837000)),
    ("1974-04-28 03:10:32.809", ms(1974, 4, 28, 3, 10, 32, 809000)),
])
def test_iso_timestamps(text, expected):
    assert ok(native(timestamp=text, inputs=[1])).timestamp_ms == expected


def test_epoch_milliseconds_as_number_and_as_digits():
    assert ok(native(timestamp=1_704_164_645_123, inputs=[1])).timestamp_ms == 1_704_164_645_123
    assert ok(native(timestamp="1704164645123", inputs=[1])).timestamp_ms == 1_704_164_645_123


def test_iso_milliseconds_are_exact_for_every_millisecond_of_a_second():
    for milli in range(1000):
        when = dt.datetime(2031, 7, 9, 11, 22, 33, milli * 1000, tzinfo=UTC)
        assert ok(native(timestamp=when.isoformat(), inputs=[1])).timestamp_ms == ms(2031, 7, 9, 11, 22, 33, milli * 1000)


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00", None, True, [1], {"t": 1},
                                   1e30, "9" * 30, "10000-01-01T00:00:00"])
def test_bad_timestamps_are_a_dead_letter_naming_the_field(value):
    assert "'timestamp'" in dead(native(timestamp=value, inputs=[1])).reason


def test_window_start_is_epoch_aligned():
    start = window_start(ms(2024, 1, 2, 3, 7, 30), 10 * 60_000)
    assert start == ms(2024, 1, 2, 3, 0, 0)


# --------------------------------------------------------------------------- MLRun serving events


def test_mlrun_event():
    ev = ok(mlrun())
    assert ev.shape == "mlrun" and ev.project == "shop"
    assert ev.endpoint_id == mlrun_uid("shop", "serving", "prod", "churn", "v2")
    assert ev.timestamp_ms == ms(2024, 1, 2, 3, 4, 5, 123456)
    assert ev.request_id == "req-1" and ev.latency_us == 1534.0 and ev.error is False
    assert ev.rows == ({"f0": 1.0, "f1": 2.0, "prediction": 0.7},)


def test_mlrun_event_named_by_the_endpoint():
    uid = mlrun_uid("shop", "serving", "prod", "churn", "v2")
    names = {uid: Columns(("tenure", "spend"), ("churn_proba",))}
    out = decode(mlrun(request={"id": "q", "inputs": [[1, 2], [3, 4]]}, resp={"outputs": [0.1, 0.9]}),
                 lambda e: names.get(e, Columns()))
    assert out.rows == ({"tenure": 1, "spend": 2, "churn_proba": 0.1}, {"tenure": 3, "spend": 4, "churn_proba": 0.9})


@pytest.mark.parametrize("uri, model, version, expected", [
    ("shop/serving:prod", "churn", "v2", ("shop", "serving", "prod", "churn", "v2")),
    ("shop/serving", "churn", "v2", ("shop", "serving", None, "churn", "v2")),
    ("shop/serving:prod", "churn", None, ("shop", "serving", "prod", "churn", None)),
    ("shop/serving:prod", "churn", "", ("shop", "serving", "prod", "churn", None)),
    ("shop/serving:prod", "churn:v7", None, ("shop", "serving", "prod", "churn", "v7")),
    ("shop/serving:prod", "churn:v7", _DROP, ("shop", "serving", "prod", "churn", "v7")),
    ("shop/serving:latest", "m", "3", ("shop", "serving", "latest", "m", "3")),
    # a function hash key stands in for a missing tag, as in MLRun's EndpointUID
    ("shop/serving@abc123", "churn", "v2", ("shop", "serving", "abc123", "churn", "v2")),
])
def test_mlrun_endpoint_id_is_mlrun_s_sha1(uri, model, version, expected):
    ev = ok(mlrun(function_uri=uri, model=model, version=version))
    assert ev.endpoint_id == mlrun_uid(*expected)


def test_mlrun_multi_port_response():
    ev = ok(mlrun(request={"inputs": [[1], [2]]}, resp={"outputs": {"label": [0, 1], "proba": [[0.8, 0.2], [0.3, 0.7]]}}))
    assert ev.rows == ({"f0": 1, "label": 0, "proba_0": 0.8, "proba_1": 0.2},
                       {"f0": 2, "label": 1, "proba_0": 0.3, "proba_1": 0.7})


def test_mlrun_error_without_resp_is_an_error_event():
    ev = ok(mlrun(resp=_DROP, microsec=_DROP, error="ValueError: bad input"))
    assert ev.error is True and ev.latency_us is None
    assert ev.endpoint_id == mlrun_uid("shop", "serving", "prod", "churn", "v2")


def test_mlrun_error_with_malformed_inputs_is_still_counted_as_an_error():
    ev = ok(mlrun(resp=_DROP, error="TypeError", request={"id": "q", "inputs": "not rows"}))
    assert ev.error is True and ev.rows == ()
    ev = ok(mlrun(resp=_DROP, error="boom", request=_DROP))
    assert ev.error is True and ev.rows == ()


def test_mlrun_without_resp_or_error_is_a_dead_letter():
    assert "'resp'" in dead(mlrun(resp=_DROP)).reason


@pytest.mark.parametrize("fields, field", [
    ({"function_uri": "no-project"}, "function_uri"),
    ({"function_uri": "/serving"}, "function_uri"),
    ({"function_uri": 5}, "function_uri"),
    ({"model": ""}, "model"),
    ({"model": 3, "function_uri": "p/f"}, "model"),
    ({"when": _DROP}, "when"),
    ({"when": "soon"}, "when"),
    ({"request": "x"}, "request"),
    ({"request": {"id": 1}}, "request.inputs"),
    ({"resp": [1]}, "resp"),
    ({"microsec": "fast"}, "microsec"),
    ({"microsec": -5}, "microsec"),
    ({"version": {"v": 1}}, "version"),
])
def test_mlrun_bad_fields_are_a_dead_letter_naming_the_field(fields, field):
    assert f"'{field}'" in dead(mlrun(**fields)).reason


# --------------------------------------------------------------------------- bad records


@pytest.mark.parametrize("payload, words", [
    ('{"endpoint_id": "e", ', "malformed JSON"),
    (b"\xff\xfe{}", "malformed JSON"),
    ("[1, 2]", "JSON object"),
    ('"text"', "JSON object"),
    ("42", "JSON object"),
    ('{"inputs": [1]}', "unknown event format"),
    ('{"endpoint_id": "", "timestamp": 1, "inputs": [1]}', "'endpoint_id'"),
    ('{"endpoint_id": 7, "timestamp": 1, "inputs": [1]}', "'endpoint_id'"),
    ('{"endpoint_id": "e", "inputs": [1]}', "'timestamp'"),
    ('{"endpoint_id": "e", "timestamp": 1}', "'inputs'"),
    ('{"endpoint_id": "e", "timestamp": 1, "inputs": []}', "'inputs'"),
    ('{"endpoint_id": "e", "timestamp": 1, "inputs": 5}', "'inputs'"),
    ('{"endpoint_id": "e", "timestamp": 1, "inputs": "a,b"}', "'inputs'"),
    ('{"endpoint_id": "e", "timestamp": 1, "inputs": [1], "latency_us": "1ms"}', "'latency_us'"),
    ('{"endpoint_id": "e", "timestamp": 1, "inputs": [1], "latency_us": NaN}', "'latency_us'"),
    ('{"endpoint_id": "e", "timestamp": 1, "inputs": [1], "latency_us": Infinity}', "'latency_us'"),
    ('{"endpoint_id": "e", "timestamp": 1, "inputs": [1], "latency_us": true}', "'latency_us'"),
    ('{"endpoint_id": "e", "timestamp": NaN, "inputs": [1]}', "'timestamp'"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_malformed_records_are_dead_letters_with_a_reason(payload, words):
    letter = dead(payload)
    assert words in letter.reason
    body = json.loads(letter.to_json())
    assert body["reason"] == letter.reason
    expected_payload = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
    assert body["payload"] == expected_payload[:DEAD_LETTER_PAYLOAD_BYTES]


def test_dead_letter_json_keeps_the_payload():
    payload = '{"endpoint_id": "e", "inputs": [1]}'
    body = json.loads(dead(payload).to_json())
    assert body["payload"] == payload and body["truncated"] is False
    assert body["size_bytes"] == len(payload.encode())
    assert "timestamp" in body["reason"]


@pytest.mark.parametrize("as_text", [False, True])
def test_a_record_over_the_size_limit_is_a_truncated_dead_letter(as_text):
    rows = [[1.0] * 10] * 220_000
    payload = native(inputs=rows)  # ~10 MB
    size = len(payload.encode())
    assert size > 10 * 2 ** 20 > MAX_EVENT_BYTES
    letter = dead(payload if as_text else payload.encode())
    assert str(size) in letter.reason and str(MAX_EVENT_BYTES) in letter.reason
    assert letter.truncated is True and letter.size == size
    assert letter.payload == payload[:DEAD_LETTER_PAYLOAD_BYTES]
    body = json.loads(letter.to_json())
    assert body["truncated"] is True and len(body["payload"].encode()) == DEAD_LETTER_PAYLOAD_BYTES


def test_size_limit_counts_bytes_not_characters():
    text = native(inputs={"name": "é" * 600})  # 600 characters, 1200 bytes of them
    assert len(text) < 1000 < len(text.encode())
    assert isinstance(decode(text, max_bytes=1000), DeadLetter)
    assert isinstance(decode(text, max_bytes=len(text.encode())), Event)


def test_a_truncated_multibyte_payload_is_still_valid_text():
    payload = native(inputs={"name": "€" * DEAD_LETTER_PAYLOAD_BYTES})
    letter = dead(payload.encode(), max_bytes=1000)
    assert letter.truncated and json.loads(letter.to_json())["payload"].startswith('{"endpoint_id"')


def test_native_error_event_counts_as_error():
    ev = ok(native(inputs=[1, 2], error="timeout", latency_us=30_000_000))
    assert ev.error is True and ev.latency_us == 30_000_000.0


def test_the_fast_path_decodes_exactly_as_the_general_path(monkeypatch):
    """Common native events take a fast path; whatever it accepts must decode exactly as the general
    path does, and whatever is unusual (or wrong) must fall through to it: 4,000 random events."""
    import random

    from streamdrift.udfs import events as events_module

    rng = random.Random(7)
    t0 = 1_700_000_000_000
    known = Columns(("a", "b", "c"), ("score",))
    clash = Columns(("a", "b", "score"), ("score",))

    def value():
        return rng.choice([1, 2.5, -0.0, None, True, "x", 10 ** 30, [1, 2], {"k": 1}])

    def row(width=3):
        return [value() if rng.random() < 0.1 else rng.random() for _ in range(width + rng.choice([0, 0, 0, 1, -1]))]

    def clean():
        n = rng.choice([1, 2, 3])
        inputs = [[rng.random() for _ in range(3)] for _ in range(n)] if rng.random() < 0.7 else [1, 2.5, 3]
        n = len(inputs) if isinstance(inputs[0], list) else 1
        return {"endpoint_id": "ep", "timestamp": t0 + rng.randrange(10 ** 6), "inputs": inputs,
                "outputs": [rng.random() for _ in range(n)], "request_id": f"r{rng.randrange(100)}",
                "latency_us": rng.choice([None, 12, 3.5])}

    def event():
        if rng.random() < 0.4:
            return clean()
        n = rng.choice([1, 1, 2, 3])
        inputs = rng.choice([[row() for _ in range(n)], row(), [], "nope", None, [row(), 5]])
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], list):
            n = len(inputs)
        else:
            n = 1
        obj = {"endpoint_id": rng.choice(["ep", "ep", "ep", " ", 5, "unknown"]),
               "timestamp": rng.choice([t0, t0, 1.5e12, "2024-01-01T00:00:00Z", -10 ** 20, True, None]),
               "inputs": inputs,
               "outputs": rng.choice([[rng.random() for _ in range(n)], [1] * (n + 1), None, 3, {"p": [1] * n},
                                      [[1, 2]] * n]),
               "request_id": rng.choice(["r1", 7, None]),
               "latency_us": rng.choice([None, 12, 3.5, -1, float("nan"), True, "9", 10 ** 400]),
               "error": rng.choice([None, None, None, False, 0, "", "boom"])}
        return {k: v for k, v in obj.items() if rng.random() > 0.05}

    general = events_module._native
    fast_taken = 0
    for i in range(4000):
        payload = json.dumps(event())
        columns_of = (lambda e: known if e == "ep" else NO_COLUMNS) if i % 5 else (lambda e: clash)
        try:
            fast = decode(payload, columns_of)
        except OverflowError:  # a latency beyond float: both paths raise it alike (not a fast-path concern)
            continue
        monkeypatch.setattr(events_module, "_fast_native", lambda obj, cols: None)
        slow = decode(payload, columns_of)
        monkeypatch.undo()
        assert fast == slow, payload
        fast_taken += events_module._fast_native(json.loads(payload), columns_of) is not None \
            if "endpoint_id" in json.loads(payload) else 0
    assert general is events_module._native
    assert fast_taken > 200  # the test did exercise the fast path
