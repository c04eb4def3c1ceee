"""The columnar reader (streamdrift.udfs.columnar): a batch read column-wise counts exactly as the per-record path.

The expectation is the per-record path (streamdrift.udfs.events.decode + WindowAggregate.add_events), which
test_events and test_window check against numpy and hand-made events; here both paths run on the
same random batches (good events, bad ones, shapes the reader leaves to the other path) and every
count, the sample, the raw-row columns and the dead letters must agree.
"""

import dataclasses
import json
import random

import numpy as np
import pandas as pd
import pytest

from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.columnar import TOGETHER_ROWS, ColumnarReader, _candidate, _candidates
from streamdrift.udfs.events import MAX_EVENT_BYTES
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.batch import aggregate_records
from streamdrift.udfs.window import WindowAggregate

WINDOW_MS = 60_000
T0 = 1_704_067_200_000  # a window start


def _records():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.uniform(0, 10, 500),
                          "c": rng.integers(0, 5, 500).astype(float)})
    colors = pd.DataFrame({"a": rng.normal(0, 1, 500), "color": rng.choice(["red", "blue"], 500)})
    return [
        {"endpoint_id": "num", "project": "p", "feature_names": ["a", "b", "c"], "output_names": ["score"],
         "feature_stats": feature_stats(train.assign(score=rng.random(500)))},
        {"endpoint_id": "num2", "project": "p", "feature_names": ["a", "b"], "output_names": [],
         "feature_stats": feature_stats(train[["a", "b"]])},
        {"endpoint_id": "noref", "project": "p", "feature_names": ["a", "b"], "output_names": ["y"],
         "feature_stats": {}},
        {"endpoint_id": "cat", "project": "p", "feature_names": ["a", "color"], "output_names": [],
         "feature_stats": feature_stats(colors)},
        {"endpoint_id": "clash", "project": "p", "feature_names": ["a", "b", "score"], "output_names": ["score"],
         "feature_stats": {}},
    ]


WIDTH = {"num": 3, "num2": 2, "noref": 2, "cat": 2, "clash": 3, "ghost": 2}


def _clean(rng, i):
    endpoint = rng.choice(["num", "num", "num", "num2", "noref"])
    n = rng.choice([1, 1, 1, 2, 3])
    rows = [[round(rng.gauss(0, 2), rng.choice([1, 4, 17])) for _ in range(WIDTH[endpoint])] for _ in range(n)]
    event = {"endpoint_id": endpoint, "timestamp": T0 + rng.randrange(3 * WINDOW_MS),
             "request_id": rng.choice([f"r{i}", f"r{i}", None]), "inputs": rows,
             "latency_us": rng.choice([None, 12, 3.5, 1e6])}
    if endpoint != "num2" and rng.random() < 0.8:
        event["outputs"] = [rng.choice([0, 1, 0.25, None]) for _ in range(n)]
    if rng.random() < 0.1:
        event["extra"] = rng.choice([{"k": [1, "x"]}, "text", None, [[1], {}]])
    if rng.random() < 0.05:
        event["error"] = False
    if rng.random() < 0.05:
        rows[0][0] = None
    return event


def _odd(rng, i):
    """A record the reader must leave to the per-record path (or that makes it give up the batch)."""
    event = _clean(rng, i)
    kind = rng.randrange(13)
    if kind == 0:
        event["error"] = True
    elif kind == 1:
        event["endpoint_id"] = rng.choice(["cat", "clash", "ghost", " ", ""])
    elif kind == 2:
        event["inputs"][0] = event["inputs"][0] + [1.0]  # a row too long
    elif kind == 3:
        event["inputs"] = []
    elif kind == 4:
        event["outputs"] = [1] * (len(event["inputs"]) + 1)
    elif kind == 5:
        event["inputs"][0][0] = rng.choice([2 ** 60 + 1, -(10 ** 20), 1e300])  # beyond 2**53
    elif kind == 6:
        event["latency_us"] = rng.choice([-1, 2.0 ** 60])
    elif kind == 7:
        event["timestamp"] = rng.choice([-10 ** 15, 10 ** 15])  # outside years 1-9999
    elif kind == 8:
        del event["timestamp"]
    elif kind == 9:
        event["inputs"] = [None]
    elif kind == 10:
        event["outputs"] = None
        event["inputs"] = [[]]
    elif kind == 11:
        # nested deeper than the per-record path reads (a dead letter there)
        return (json.dumps(event)[:-1] + ', "extra": ' + "[" * 2000 + "]" * 2000 + "}").encode()
    else:
        event["request_id"] = None
    return json.dumps(event).encode()


def _breaking(rng, i):
    """A record the JSON reader cannot take in a batch of the others: the batch goes per record."""
    event = _clean(rng, i)
    return rng.choice([
        b'{"endpoint_id": "num", "timestamp": 1, "inputs": [[1, 2, 3]]} {"x": 1}',  # two objects
        b"{not json}",
        json.dumps({**event, "timestamp": "2024-01-01T00:00:05Z"}).encode(),
        json.dumps({**event, "request_id": 7}).encode(),
        json.dumps({**event, "inputs": [["x", 1, 2]]}).encode(),
        json.dumps({**event, "error": "boom"}).encode(),
        json.dumps({**event, "latency_us": float("nan")}).encode(),
        json.dumps(event, indent=1).encode(),  # several lines
        json.dumps({**event, "inputs": [[True, 1, 2]]}).encode(),
        json.dumps({**event, "endpoint_id": "num\udc80"}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps({**event, "extra": "x\udc80"}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        b"",
        b"[1, 2]",
    ])


def _with_text(rng, i):
    """An event with placeholder strings and numbers as text among its values (invalid values and
    numbers, whichever path reads them)."""
    event = _clean(rng, i)
    for row in event["inputs"]:
        for j in range(len(row)):
            if rng.random() < 0.5:
                row[j] = rng.choice(["N/A", "?", "-", "", "unknown", "1.5", " 7 ", "nan", "1e3"])
    return json.dumps(event).encode()


def _batch(rng, seed):
    n = rng.choice([1, 5, 50, 300])
    odd_share = rng.choice([0.0, 0.0, 0.05, 0.3])
    out = []
    for i in range(n):
        r = rng.random()
        if r < odd_share:
            out.append(_odd(rng, i))
        else:
            event = _clean(rng, i)
            out.append(json.dumps(event, separators=rng.choice([(",", ":"), (", ", ": ")])).encode())
    if rng.random() < 0.2:
        out.insert(rng.randrange(len(out) + 1), _breaking(rng, seed))
    if rng.random() < 0.15:
        for _ in range(rng.choice([1, 3])):
            out.insert(rng.randrange(len(out) + 1), _with_text(rng, seed))
    if rng.random() < 0.1:  # flat rows: one row as a list of numbers
        out = [json.dumps({"endpoint_id": "num2", "timestamp": T0 + k, "inputs": [float(k), 1.5],
                           "request_id": f"f{k}"}).encode() for k in range(n)]
    return out


def _summary(batch):
    """Everything a window result depends on, per (endpoint, window), order-free."""
    out = {}
    for p in batch.partials:
        agg = p.aggregate
        key = (p.endpoint_id, p.window_start)
        assert key not in out  # one partial per endpoint and window and batch
        acc = agg.accumulator
        sample = sorted(zip(agg.sample.priorities.tolist(), (json.dumps(r, sort_keys=True) for r in agg.sample.rows)))
        out[key] = {
            "counts": (agg.rows, agg.events, agg.errors, agg.first_ms, agg.last_ms, agg.latency_count,
                       agg.latency_hist.tolist(), sorted(agg.unknown_columns.items()), p.max_timestamp_ms),
            "latency_sum": agg.latency_sum,
            "hist": None if acc is None else (acc.hist.tolist(), acc.count.tolist(), acc.nulls.tolist(),
                                             acc.infs.tolist(), acc.invalid.tolist(), acc.cat_hist.tolist()),
            "moments": None if acc is None else (acc.mean, acc.m2, acc.min, acc.max),
            "sample": sample,
            "carrier": p.index,
        }
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        assert x["counts"] == y["counts"], key
        assert x["hist"] == y["hist"], key
        assert x["sample"] == y["sample"], key
        assert x["latency_sum"] == pytest.approx(y["latency_sum"], rel=1e-12)
        if x["moments"] is not None:
            for u, v in zip(x["moments"], y["moments"]):
                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


def test_random_batches_count_the_same_read_column_wise_or_record_by_record():
    rng = random.Random(11)
    catalog = EndpointCatalog(_records)
    read = fell_back = invalid = 0
    for seed in range(150):
        payloads = _batch(rng, seed)
        reader = ColumnarReader()
        columnar = aggregate_records(payloads, catalog, WINDOW_MS, sample_size=rng.choice([5, 1000]), reader=reader)
        k = columnar.partials[0].aggregate.sample.k if columnar.partials else 1000
        plain = aggregate_records(payloads, catalog, WINDOW_MS, sample_size=k, reader=False)
        read += reader.read_batches
        fell_back += reader.unread_batches
        invalid += sum(int(p.aggregate.accumulator.invalid.sum()) for p in plain.partials if p.aggregate.accumulator)
        _same(_summary(columnar), _summary(plain))
        assert sorted((i, d.to_json()) for i, d in columnar.dead) == sorted((i, d.to_json()) for i, d in plain.dead)
        assert columnar.endpoint_ids == plain.endpoint_ids
        assert columnar.request_ids == plain.request_ids
        assert columnar.errors == plain.errors
        assert columnar.timestamps.tolist() == plain.timestamps.tolist()
        np.testing.assert_array_equal(columnar.latency_us, plain.latency_us)
    assert read > 80 and fell_back > 10  # both ways were taken
    assert invalid > 20  # with placeholder strings among the values


def test_the_whole_batch_test_of_candidates_agrees_with_the_per_record_one():
    """Which records the reader takes is decided on the joined batch; a record with a newline or a
    carriage return inside, one that is not an object, empty, too large or too deeply nested is
    left out exactly as the per-record test leaves it out."""
    rng = random.Random(5)
    specials = [b"", b"{", b"}", b"{}", b" {}", b"{} ", b'{"a":\r1}', b'{"a":\n1}', b"\n", b"\r",
                b'{"x":"' + b"y" * (MAX_EVENT_BYTES - 7) + b'"}', b'{"x":"' + b"y" * (MAX_EVENT_BYTES - 8) + b'"}',
                b'{"x":' + b"[" * 499 + b"]" * 499 + b"}", b'{"x":' + b"[" * 500 + b"]" * 500 + b"}"]
    for seed in range(200):
        payloads = _batch(rng, seed)
        for _ in range(rng.choice([0, 0, 1, 3])):
            payloads.insert(rng.randrange(len(payloads) + 1), rng.choice(specials))
        index, joined = _candidates(payloads)
        expected = [i for i, p in enumerate(payloads) if _candidate(p)]
        assert index.tolist() == expected
        assert joined == b"\n".join(payloads[i] for i in expected)


def test_a_clean_batch_is_read_column_wise_and_gives_the_same_bytes():
    """A partial of more rows than TOGETHER_ROWS is counted alone, as the per-record path counts
    it: the same bytes."""
    rng = random.Random(3)
    catalog = EndpointCatalog(_records)
    payloads = [json.dumps({**_clean(rng, i), "endpoint_id": "num", "outputs": [1.0], "timestamp": T0 + i}).encode()
                for i in range(200)]
    payloads = [json.dumps({**json.loads(p), "inputs": json.loads(p)["inputs"][:1]}).encode() for p in payloads]
    reader = ColumnarReader()
    columnar = aggregate_records(payloads, catalog, WINDOW_MS, reader=reader)
    plain = aggregate_records(payloads, catalog, WINDOW_MS, reader=False)
    assert reader.read_batches == 1
    assert len(columnar.partials) == 1 and columnar.partials[0].aggregate.rows > TOGETHER_ROWS
    assert [(p.endpoint_id, p.window_start, p.index, p.aggregate.to_bytes()) for p in columnar.partials] == \
        [(p.endpoint_id, p.window_start, p.index, p.aggregate.to_bytes()) for p in plain.partials]


def _fleet(seed: int, endpoints: int):
    """Endpoints of every kind the reader takes: references of some of their features (a feature
    without statistics is an unknown column; a reference column the rows lack is a null), of their
    output or not, uneven and one-bin histograms, no reference at all; with one output or none."""
    rng = np.random.default_rng(seed)
    pool = ["a", "b", "c", "d", "e"]
    out = []
    for i in range(endpoints):
        features = list(rng.choice(pool, rng.integers(1, 5), replace=False))
        outputs = [["score"], [], ["y"]][i % 3]
        train = pd.DataFrame({name: rng.normal(rng.normal(0, 3), rng.uniform(0.1, 3), 300) for name in pool})
        train["score"] = rng.integers(0, 2, 300).astype(float)
        train["y"] = rng.uniform(-1, 1, 300)
        described = [name for name in features if rng.random() < 0.8] + list(rng.choice(pool, 1))
        if outputs and rng.random() < 0.5:
            described.append(outputs[0])
        stats = feature_stats(train[list(dict.fromkeys(described))])
        if i % 7 == 0:
            stats = {}
        elif i % 7 == 1:  # hand-made MLRun style: unpadded, uneven, a one-bin column
            stats[features[0]] = {"count": 10, "hist": [[1, 2, 3, 0, 4], [-5.0, -4.9, 0.0, 0.0, 3.0, 1e6]]}
            stats[pool[-1]] = {"count": 3, "hist": [[3], [0.0, 1.0]]}
        out.append({"endpoint_id": f"ep{i}", "project": "p", "feature_names": features, "output_names": outputs,
                    "feature_stats": stats})
    return out


def test_a_batch_spread_over_many_endpoints_counts_the_same_together():
    """A batch of a few rows per endpoint: its partials are counted together
    (streamdrift.udfs.accumulator.count_parts), and every count, sample and latency equals the
    per-record path's, whatever the reference, the output, nulls and sample size."""
    rng = random.Random(21)
    for seed in range(25):
        fleet = _fleet(seed, 40)
        catalog = EndpointCatalog(lambda fleet=fleet: fleet)
        payloads = []
        for i in range(rng.choice([40, 150, 400])):
            record = rng.choice(fleet)
            n = rng.choice([1, 1, 2, 3])
            rows = [[rng.choice([rng.gauss(0, 3), None, 0.0, 1e6, -4.9]) if rng.random() < 0.2 else rng.gauss(0, 3)
                     for _ in record["feature_names"]] for _ in range(n)]
            event = {"endpoint_id": record["endpoint_id"], "timestamp": T0 + rng.randrange(3 * WINDOW_MS),
                     "request_id": rng.choice([f"r{i}", None]), "inputs": rows,
                     "latency_us": rng.choice([None, 12, 3.5, 1e6, 0])}
            if record["output_names"] != ["y"] or rng.random() < 0.5:
                event["outputs"] = [rng.choice([0, 1, 0.25, None]) for _ in range(n)]
            payloads.append(json.dumps(event).encode())
        sample_size = rng.choice([0, 1, 3, 1000])
        reader = ColumnarReader()
        columnar = aggregate_records(payloads, catalog, WINDOW_MS, sample_size=sample_size, reader=reader)
        plain = aggregate_records(payloads, catalog, WINDOW_MS, sample_size=sample_size, reader=False)
        assert reader.read_batches == 1, seed
        assert all(p.aggregate.rows <= TOGETHER_ROWS for p in columnar.partials)
        _same(_summary(columnar), _summary(plain))
        assert sorted((i, d.to_json()) for i, d in columnar.dead) == sorted((i, d.to_json()) for i, d in plain.dead)
        # and their bytes read back the same
        layouts = {p.endpoint_id: catalog.layout(p.endpoint_id) for p in columnar.partials}
        again = [dataclasses.replace(p, aggregate=WindowAggregate.from_bytes(p.aggregate.to_bytes(), layouts[p.endpoint_id]))
                 for p in columnar.partials]
        _same(_summary(dataclasses.replace(columnar, partials=again)), _summary(plain))


def test_after_an_unreadable_batch_the_reader_rests_then_tries_again():
    catalog = EndpointCatalog(_records)
    good = [json.dumps({"endpoint_id": "num2", "timestamp": T0, "inputs": [[1.0, 2.0]]}).encode()]
    bad = good + [b'{"endpoint_id": "num2", "timestamp": "2024-01-01T00:00:00Z", "inputs": [[1, 2]]}']
    reader = ColumnarReader(max_rest=4)
    tried = []
    for payloads in [bad, bad, bad, good, good, good, bad, good, good]:
        before = reader.read_batches + reader.unread_batches
        batch = aggregate_records(payloads, catalog, WINDOW_MS, reader=reader)
        tried.append(reader.read_batches + reader.unread_batches > before)
        assert batch.partials[0].aggregate.rows == len(payloads)  # counted either way
    # rests 1 batch after a failure, 2 after a second one in a row; a batch read resets that
    assert tried == [True, False, True, False, False, True, True, False, True]
