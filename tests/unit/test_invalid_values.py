"""Numbers with a few placeholder strings ("N/A", "?", "-", "unknown", ""): a numeric column whose
placeholders are counted as invalid values, in the reference and in every window, never part of the
drift; ``--numeric`` / ``--categorical`` override the guess.

Expected values come from numpy and hand counts on the rows (the numeric values alone), never from
the code under test.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.connectors import endpoints as api
from streamdrift.connectors.sql_store import SqlStore
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.histogram_drift import window_feature_drift
from streamdrift.udfs.monitor import monitor_window
from streamdrift.udfs.reference import feature_stats, parse_numbers
from streamdrift.udfs.batch import aggregate_batch

MAX = sys.float_info.max
T0 = 1_704_067_200_000
WINDOW_MS = 600_000
TOKENS = ["?", "-", "unknown"]


def _amount(n=2_000, token_share=0.01, seed=0, tokens=("N/A",), loc=50.0):
    """(object column of N(loc, 10) numbers with a share of placeholder tokens, the numbers alone,
    Counter of the tokens put in)."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(loc, 10, n)
    column = numbers.astype(object)
    where = rng.choice(n, int(round(token_share * n)), replace=False)
    put = rng.choice(list(tokens), where.size)
    column[where] = put
    return column, np.delete(numbers, where), Counter(put.tolist())


# --------------------------------------------------------------------------------- what is a number


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False), st.sampled_from(["{!r}", "{:e}", "{:.3g}", " {!r} ", "\t{:f}\n", "+{!r}"]))
def test_numbers_written_as_text_read_back_as_python_reads_them(x, form):
    text = form.format(abs(x) if form.startswith("+") else x)
    values, invalid = parse_numbers([text])
    assert not invalid[0] and values[0] == float(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=8), st.text(alphabet="0123456789.eE+-naif ", max_size=8)))
def test_text_is_a_number_only_where_python_reads_the_same_number(text):
    values, invalid = parse_numbers([text])
    try:
        expected = float(text.strip())
    except ValueError:
        expected = None
    if not invalid[0]:
        assert expected is not None and (values[0] == expected or (np.isnan(values[0]) and np.isnan(expected)))
    elif expected is not None:  # Python reads more: "1_0", non-ASCII digits, other spaces
        assert "_" in text or not text.strip().isascii() or text.strip() != text.strip(" \t\n\r\x0b\x0c")


def test_placeholders_and_nulls():
    values, invalid = parse_numbers(["N/A", "?", "-", "unknown", "", "1,5", "0x10", None, "nan", " 7 ", ".5"])
    assert invalid.tolist() == [True] * 7 + [False] * 4
    np.testing.assert_array_equal(values, [np.nan] * 9 + [7.0, 0.5])


# --------------------------------------------------------------------------------- the reference


def _padded_numpy_hist(numbers):
    counts, edges = np.histogram(numbers, bins=20)  # what MLRun stores for the numbers, then padded
    return [0, *counts.tolist(), 0], [-MAX, *edges.tolist(), MAX]


def test_a_pandas_object_column_with_1_percent_na_is_numeric_with_its_tokens_counted():
    column, numbers, put = _amount()
    stats = feature_stats(pd.DataFrame({"amount": column}))["amount"]
    assert stats["invalid"] == 20 == sum(put.values())
    assert stats["invalid_tokens"] == {"N/A": 20}
    assert stats["count"] == numbers.size and stats["nulls"] == 0
    assert stats["mean"] == pytest.approx(numbers.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(numbers.std(ddof=1), rel=1e-12)
    assert (stats["min"], stats["max"]) == (numbers.min(), numbers.max())
    counts, edges = _padded_numpy_hist(numbers)
    assert stats["hist"][0] == counts
    np.testing.assert_allclose(stats["hist"][1], edges, rtol=1e-15)


def test_a_csv_with_question_marks_dashes_and_unknown_is_numeric(tmp_path):
    column, numbers, put = _amount(tokens=TOKENS, seed=1)
    path = tmp_path / "train.csv"
    pd.DataFrame({"amount": column, "other": np.arange(column.size)}).to_csv(path, index=False)
    stats = feature_stats(str(path))["amount"]
    assert stats["invalid"] == sum(put.values()) and stats["invalid_tokens"] == dict(put.most_common())
    # the CSV holds the numbers as decimal text: read back as numpy reads them
    read = pd.read_csv(path, dtype={"amount": str})["amount"]
    written = pd.to_numeric(read, errors="coerce").dropna().to_numpy()
    assert stats["count"] == written.size == numbers.size
    assert stats["hist"][0] == _padded_numpy_hist(written)[0]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.data())
def test_the_5_percent_boundary(n_numbers, data):
    """Numeric when invalid values are at most 5 % of the non-null values, categorical above."""
    k = data.draw(st.integers(0, n_numbers))
    values = [str(float(i)) for i in range(n_numbers)] + ["N/A"] * k + [None] * 3
    stats = feature_stats(pd.DataFrame({"x": pd.Series(values, dtype=object)}))["x"]
    total = n_numbers + k
    if 100 * k <= 5 * total:
        assert "hist" in stats and stats["invalid"] == k and stats["count"] == n_numbers and stats["nulls"] == 3
    else:
        assert "categories" in stats and "hist" not in stats


@pytest.mark.parametrize("tokens, numeric", [(5, True), (6, False)])
def test_the_5_percent_boundary_on_both_sides(tokens, numeric):
    values = [float(i) for i in range(100 - tokens)] + ["?"] * tokens  # 100 non-null values
    stats = feature_stats(pd.DataFrame({"x": pd.Series(values, dtype=object)}))["x"]
    assert ("hist" in stats) is numeric and ("categories" in stats) is not numeric
    if numeric:
        assert stats["invalid"] == 5


def test_overrides_force_numeric_or_categorical():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "Amount (USD)": pd.Series([*rng.normal(0, 1, 50).tolist(), *["n/a"] * 50], dtype=object),  # 50 % tokens
        "code": pd.Series(["1", "2", "2", "3"] * 25, dtype=object),  # numbers as text: guessed numeric
        "score": rng.uniform(size=100),
    })
    guessed = feature_stats(frame)
    assert "categories" in guessed["Amount_USD"] and "hist" in guessed["code"]
    forced = feature_stats(frame, numeric=["Amount (USD)"], categorical=["code", "score"])
    assert forced["Amount_USD"]["invalid"] == 50 and forced["Amount_USD"]["count"] == 50
    assert forced["code"]["categories"] == ["2", "1", "3"] and forced["code"]["category_counts"] == [50, 25, 25]
    assert "categories" in forced["score"]
    assert feature_stats(frame, numeric=["Amount_USD"])["Amount_USD"]["invalid"] == 50  # the normalised name too
    with pytest.raises(ValueError, match=r"\['nope'\].*not in the training data"):
        feature_stats(frame, numeric=["nope"])
    with pytest.raises(ValueError, match="both as numeric and as categorical"):
        feature_stats(frame, numeric=["code"], categorical=["code"])
    times = pa.table({"t": pa.array([1, 2], type=pa.timestamp("s"))})
    with pytest.raises(ValueError, match="cannot be read as numbers"):
        feature_stats(times, numeric=["t"])


def test_text_that_is_not_numbers_and_declared_categories_stay_categorical():
    frame = pd.DataFrame({"color": ["red", "blue", "1"] * 10,
                          "size": pd.Categorical(["1", "2", "3"] * 10)})  # declared categories
    stats = feature_stats(frame)
    assert "categories" in stats["color"] and "categories" in stats["size"]


# --------------------------------------------------------------------------------- windows


def _endpoint(column):
    return {"endpoint_id": "ep", "project": "shop", "feature_names": ["amount", "age"], "output_names": [],
            "feature_stats": feature_stats(pd.DataFrame({"amount": column, "age": np.arange(column.size) % 90}))}


def _run_window(endpoint, amounts, ages):
    payloads = [json.dumps({"endpoint_id": "ep", "timestamp": T0 + i, "request_id": f"r{i}",
                            "inputs": [{"amount": a, "age": g}]}) for i, (a, g) in enumerate(zip(amounts, ages))]
    (partial,), dead = aggregate_batch(payloads, EndpointCatalog(lambda: [endpoint]), WINDOW_MS)
    assert dead == []
    return monitor_window(endpoint, "ep", "shop", T0, T0 + WINDOW_MS, partial.aggregate,
                          [HistogramDataDriftApplication()])


def _numpy_tvd(ref, numbers):
    edges = np.asarray(ref["hist"][1])
    p = np.histogram(numbers, bins=edges)[0] / numbers.size  # continuous values: none on the maximum
    q = np.asarray(ref["hist"][0]) / ref["count"]
    return np.abs(p - q).sum() / 2


def test_a_window_at_150_shows_the_drift_numpy_gives_on_the_numeric_values():
    column, _, _ = _amount()
    endpoint = _endpoint(column)
    rng = np.random.default_rng(5)
    window = rng.normal(150, 10, 1_000)
    out = _run_window(endpoint, window.tolist(), rng.integers(0, 90, 1_000).tolist())
    general = next(r for r in out.results if r.result_name == "general_drift")
    amount = general.extra_data["columns"]["amount"]
    assert amount["tvd"] == pytest.approx(_numpy_tvd(endpoint["feature_stats"]["amount"], window), abs=1e-12)
    assert amount["tvd"] > 0.99 and amount["invalid_share"] == 0.0
    assert general.value > 0.5 and general.status >= 1


def test_a_window_with_3_percent_tokens_reports_invalid_share_003_outside_the_drift():
    column, _, _ = _amount()
    endpoint = _endpoint(column)
    values, numbers, put = _amount(n=1_000, token_share=0.03, seed=9, tokens=["N/A", "?", "-", "unknown", ""])
    assert sum(put.values()) == 30
    ages = (np.arange(1_000) % 90).tolist()
    out = _run_window(endpoint, values.tolist(), ages)
    metrics = {m.metric_name: m.value for m in out.metrics}
    assert metrics["invalid_share"] == pytest.approx(30 / 2_000)  # over amount and age: 30 of 2,000 values
    general = next(r for r in out.results if r.result_name == "general_drift")
    amount = general.extra_data["columns"]["amount"]
    assert amount["invalid_share"] == pytest.approx(0.03) and general.extra_data["columns"]["age"]["invalid_share"] == 0
    assert amount["window_count"] == 970
    assert amount["tvd"] == pytest.approx(_numpy_tvd(endpoint["feature_stats"]["amount"], numbers), abs=1e-12)
    rows = {r.feature_name: r for r in window_feature_drift(out.results)}
    assert rows["amount"].invalid_share == pytest.approx(0.03) and rows["age"].invalid_share == 0.0


def test_a_window_of_placeholders_only_says_so_and_reports_an_invalid_share_of_1():
    column, _, _ = _amount()
    out = _run_window(_endpoint(column), ["N/A"] * 40, ["?"] * 40)
    assert {m.metric_name: m.value for m in out.metrics} == {"invalid_share": 1.0}
    assert {(r.result_name, r.status, r.value) for r in out.results} == {("general_drift", -1, None),
                                                                        ("feature_drift", -1, None)}
    (error,) = out.errors
    assert "80 values that are not numbers" in error.message


def test_numbers_as_text_in_a_window_count_as_numbers():
    column, _, _ = _amount()
    endpoint = _endpoint(column)
    rng = np.random.default_rng(2)
    numbers = rng.normal(50, 10, 300).round(4)
    as_text = [f" {v} " if i % 2 else str(v) for i, v in enumerate(numbers.tolist())]
    out_text = _run_window(endpoint, as_text, [30] * 300)
    out_numbers = _run_window(endpoint, numbers.tolist(), [30] * 300)
    assert [r.extra_data for r in out_text.results] == [r.extra_data for r in out_numbers.results]


# --------------------------------------------------------------------------------- registration


@pytest.fixture()
def csv_with_tokens(tmp_path):
    column, _, put = _amount(tokens=TOKENS, seed=4)
    path = tmp_path / "train.csv"
    pd.DataFrame({"amount": column, "note": ["a", "b"] * (column.size // 2), "y": 1}).to_csv(path, index=False)
    return path, put


def test_the_python_api_returns_and_logs_the_invalid_values(tmp_path, csv_with_tokens, caplog):
    path, put = csv_with_tokens
    url = f"sqlite:///{tmp_path}/store.sqlite"
    with caplog.at_level(logging.WARNING, logger="streamdrift.connectors.endpoints"):
        ep = api.get_or_create_model_endpoint("shop", "m", "serving", reference=str(path), output_names=["y"],
                                              store=url)
    assert ep.feature_stats["amount"]["invalid"] == sum(put.values())
    assert ep.feature_stats["amount"]["invalid_tokens"] == dict(put.most_common())
    (line,) = [r.getMessage() for r in caplog.records if "amount" in r.getMessage()]
    assert f"{sum(put.values())} of 2000 non-null values" in line and "'unknown'" in line
    forced = api.get_or_create_model_endpoint("shop", "m2", "serving", reference=str(path), output_names=["y"],
                                              categorical=["amount"], store=url)
    assert "categories" in forced.feature_stats["amount"]
    assert SqlStore(url).get_endpoint(forced.endpoint_id).feature_stats["amount"] == forced.feature_stats["amount"]
