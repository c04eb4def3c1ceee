"""Placeholder strings and the edge bin on the real job (real Kafka, Flink's local mini cluster).

The reference is a CSV whose ``amount`` column holds 1 % of "?", "-" and "unknown" and whose ``flag``
is a 0/1 column; the first window sends the training rows themselves (placeholders included), the
second moves ``amount`` to N(150, 10) with 3 % placeholders. Expected values come from numpy on the
numeric values the test sent.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.settings import topic_names
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.jobs.monitoring_job import JobOptions, build
from tests.integration.jobkit import consume, job_settings, new_project, produce

WINDOW_MS = 60_000
T0 = 1_700_000_040_000 - (1_700_000_040_000 % WINDOW_MS)
MAX = sys.float_info.max


def _numpy_measures(column_stats: dict, numbers: np.ndarray) -> tuple[float, float]:
    """(TVD, Hellinger) of the window's numeric values against a reference column, with numpy: the
    values within the inner edges counted as np.histogram counts the reference (last bin closed),
    the others in the padding bins; p = counts / numeric values, q = reference counts / count."""
    counts, edges = (np.asarray(v, dtype=float) for v in column_stats["hist"])
    inner = edges[1:-1]
    within = (numbers >= inner[0]) & (numbers <= inner[-1])
    window = np.concatenate([[np.sum(numbers < inner[0])], np.histogram(numbers[within], bins=inner)[0],
                             [np.sum(numbers > inner[-1])]])
    p, q = window / numbers.size, counts / column_stats["count"]
    return float(np.abs(p - q).sum() / 2), float(np.sqrt(max(1 - np.sqrt(p * q).sum(), 0)))


def test_placeholders_are_invalid_values_and_identical_rows_do_not_drift(tmp_path, kafka):
    project = new_project(kafka)
    rng = np.random.default_rng(15)
    n = 1_000
    amount = rng.normal(50, 10, n).round(4).astype(object)
    amount[rng.choice(n, 10, replace=False)] = rng.choice(["?", "-", "unknown"], 10)
    training = pd.DataFrame({"amount": amount, "flag": np.repeat([0, 1], n // 2)})
    csv = tmp_path / "train.csv"
    training.to_csv(csv, index=False)
    settings = job_settings(tmp_path / "job", kafka, project)
    endpoint = get_or_create_model_endpoint(project, "scorer", "serving", reference=str(csv),
                                            store=settings.endpoint_store_connection)
    stats = endpoint.feature_stats
    assert stats["amount"]["invalid"] == 10 and stats["amount"]["count"] == 990  # numeric, 1 % placeholders

    # window 0: the training rows as they were (numbers as JSON numbers, placeholders as strings)
    first = [{"amount": a, "flag": int(f)} for a, f in zip(training["amount"], training["flag"])]
    # window 1: amount at N(150, 10) with 3 % placeholders, flag as in training
    shifted = rng.normal(150, 10, n).round(4)
    second_amount = shifted.astype(object)
    tokens = rng.choice(n, 30, replace=False)
    second_amount[tokens] = rng.choice(["N/A", "?", "", "unknown"], 30)
    second = [{"amount": a, "flag": int(f)} for a, f in zip(second_amount, training["flag"])]
    records = [{"endpoint_id": endpoint.endpoint_id, "timestamp": start + i * 50, "request_id": f"{start}-{i}",
                "inputs": [row]}
               for start, rows in ((T0, first), (T0 + WINDOW_MS, second)) for i, row in enumerate(rows)]
    produce(kafka, topic_names(project)["events"], records)
    build(settings, JobOptions(bounded=True, window_ms=WINDOW_MS, checkpoint_interval_ms=2_000,
                               parallelism=2)).env.execute("it-input-values")

    assert consume(kafka, topic_names(project)["dead_letters"], timeout_ms=3_000) == []  # nothing refused
    tsdb = open_tsdb(settings.tsdb_connection)
    starts = [T0, T0 + WINDOW_MS]
    general = {int(r.start_infer_time.timestamp() * 1000): r
               for r in tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")}
    shares = {int(m.start_infer_time.timestamp() * 1000): m.value
              for m in tsdb.query_metrics(project, endpoint.endpoint_id, metric_name="invalid_share")}
    rows = {(int(f.start_infer_time.timestamp() * 1000), f.feature_name): f
            for f in tsdb.query_feature_drift(project, endpoint.endpoint_id)}
    assert sorted(general) == sorted(shares) == starts

    # window 0, identical data: TVD 0 on amount (its placeholders left out) and on the 0/1 flag
    columns = general[T0].extra_data["columns"]
    assert columns["amount"]["tvd"] == 0.0 and columns["flag"]["tvd"] == 0.0
    assert general[T0].value == pytest.approx(0.0, abs=1e-8) and general[T0].status == 0
    assert shares[T0] == pytest.approx(10 / (2 * n))  # over both numeric columns
    assert rows[T0, "amount"].invalid_share == pytest.approx(0.01) and rows[T0, "flag"].invalid_share == 0.0

    # window 1: drift on the numeric values, as numpy gives it; 3 % placeholders reported apart
    numbers = np.delete(shifted, tokens)
    tvd, hellinger = _numpy_measures(stats["amount"], numbers)
    columns = general[T0 + WINDOW_MS].extra_data["columns"]
    assert columns["amount"]["tvd"] == pytest.approx(tvd, abs=1e-12)
    assert columns["amount"]["hellinger"] == pytest.approx(hellinger, abs=1e-9)
    assert columns["amount"]["window_count"] == n - 30 and columns["amount"]["invalid_share"] == pytest.approx(0.03)
    expected = (tvd + hellinger + 0.0 + 0.0) / 4  # flag: identical to training
    assert general[T0 + WINDOW_MS].value == pytest.approx(expected, abs=1e-8)
    assert rows[T0 + WINDOW_MS, "amount"].invalid_share == pytest.approx(0.03)
    assert shares[T0 + WINDOW_MS] == pytest.approx(30 / (2 * n))
    verdict = {int(r.start_infer_time.timestamp() * 1000): r
               for r in tsdb.query_results(project, endpoint.endpoint_id, result_name="feature_drift")}
    assert verdict[T0].status == 0 and verdict[T0 + WINDOW_MS].extra_data["drifted"] == ["amount"]
    counts = {int(p.start_infer_time.timestamp() * 1000): p.count for p in tsdb.query_predictions(project)}
    assert counts == {T0: n, T0 + WINDOW_MS: n}
    tsdb.close()
