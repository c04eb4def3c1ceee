"""Reference statistics: MLRun's format, checked against pandas and numpy."""

import json
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.naming import normalize_name, normalize_names
from streamdrift.udfs.reference import bin_edges, feature_stats, pad_hist, reference_hist

MAX = sys.float_info.max


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(7)
    n = 2_000
    return pd.DataFrame(
        {
            "x": rng.normal(10, 3, n),
            "count (n)": rng.integers(0, 50, n),
            "flag": rng.random(n) < 0.3,
            "color": rng.choice(["red", "green", "blue", "cyan"], n, p=[0.5, 0.3, 0.15, 0.05]),
        }
    )


def test_numeric_column_matches_pandas_describe_and_numpy_histogram(frame):
    stats = feature_stats(frame)["x"]
    described = frame["x"].describe()
    for key in ("count", "mean", "std", "min", "25%", "50%", "75%", "max"):
        assert stats[key] == pytest.approx(described[key], rel=1e-12), key
    counts, edges = np.histogram(frame["x"], bins=20)  # what MLRun stores, before padding
    assert stats["hist"][0] == [0, *counts.tolist(), 0]
    assert stats["hist"][1] == [-MAX, *edges.tolist(), MAX]
    assert len(stats["hist"][0]) == 22 and len(stats["hist"][1]) == 23
    assert stats["nulls"] == 0 and stats["infs"] == 0


def test_names_are_normalised_as_mlrun_does(frame):
    assert list(feature_stats(frame)) == ["x", "count_n", "flag", "color"]
    assert normalize_name("petal length (cm)") == "petal_length_cm"
    assert normalize_name("a\tb") == "a\tb"  # only spaces are replaced
    with pytest.raises(ValueError, match="'a b' and 'a_b' both normalise to 'a_b'"):
        normalize_names(["a b", "a_b"])
    with pytest.raises(ValueError, match="both normalise"):
        feature_stats(pd.DataFrame({"a b": [1.0], "a_b": [2.0]}))


def test_booleans_are_numeric_zero_one(frame):
    stats = feature_stats(frame)["flag"]
    assert stats["mean"] == pytest.approx(frame["flag"].mean())
    assert stats["min"] == 0.0 and stats["max"] == 1.0
    assert stats["hist"][0][1] == (~frame["flag"]).sum()  # zeros in the first inner bin
    assert stats["hist"][0][20] == frame["flag"].sum()  # ones in the last inner bin


def test_categorical_column_counts_and_other_bucket(frame):
    stats = feature_stats(frame, max_categories=2)["color"]
    counts = frame["color"].value_counts()
    assert stats["count"] == len(frame)
    assert stats["unique"] == 4
    assert stats["top"] == counts.index[0] and stats["freq"] == counts.iloc[0]
    assert stats["categories"] == list(counts.index[:2])
    assert stats["category_counts"] == counts.iloc[:2].tolist()
    assert stats["other_count"] == counts.iloc[2:].sum()
    assert "hist" not in stats


def test_categorical_nulls_and_ties_are_deterministic():
    stats = feature_stats(pd.DataFrame({"c": ["b", "a", None, "b", "a", np.nan]}))["c"]
    assert stats["count"] == 4 and stats["nulls"] == 2
    assert stats["categories"] == ["a", "b"]  # tie on 2 each: broken by the value
    assert stats["top"] == "a" and stats["freq"] == 2


def test_nan_is_counted_and_the_histogram_kept():
    x = np.array([1.0, 2.0, np.nan, 3.0, np.nan])
    stats = feature_stats(pd.DataFrame({"x": x}))["x"]
    assert stats["count"] == 3 and stats["nulls"] == 2
    assert sum(stats["hist"][0]) == 3  # MLRun drops this histogram; we keep it
    assert stats["mean"] == 2.0


def test_infinities_go_to_the_outer_bins_and_out_of_the_moments():
    x = np.array([-np.inf, 1.0, 2.0, 3.0, np.inf, np.inf])
    stats = feature_stats(pa.table({"x": x}))["x"]
    assert stats["count"] == 6 and stats["infs"] == 3 and stats["nulls"] == 0
    assert stats["hist"][0][0] == 1 and stats["hist"][0][-1] == 2
    assert sum(stats["hist"][0]) == stats["count"]
    assert (stats["min"], stats["mean"], stats["max"]) == (1.0, 2.0, 3.0)
    assert stats["hist"][1][1] == 1.0 and stats["hist"][1][-2] == 3.0


def test_constant_column_uses_numpys_half_unit_range():
    stats = feature_stats(pd.DataFrame({"c": [4.0] * 10}))["c"]
    counts, edges = np.histogram([4.0] * 10, bins=20)
    assert stats["hist"][1][1:-1] == edges.tolist()
    assert stats["hist"][0][1:-1] == counts.tolist()
    assert stats["std"] == 0.0


@pytest.mark.parametrize(
    "values", [[1e17] * 5, [-1e308, 1e308], [MAX, MAX], [-MAX, 0.0, MAX], [5e-324, 0.0]]
)
def test_extreme_ranges_still_give_finite_increasing_edges(values):
    stats = feature_stats(pd.DataFrame({"x": values}))["x"]
    counts, edges = reference_hist("x", stats)  # validates finite, non-decreasing edges
    assert counts.sum() == len(values)
    assert json.loads(json.dumps(stats, allow_nan=False)) == stats


def test_bin_edges_equal_numpys_for_ordinary_ranges():
    for lo, hi in [(0.0, 1.0), (-3.7, 12.25), (5.0, 5.0), (-1e-9, 1e-9)]:
        expected = np.histogram_bin_edges([lo, hi], bins=20)
        np.testing.assert_array_equal(bin_edges(lo, hi, 20), expected)


def test_empty_and_single_value_columns_are_defined():
    stats = feature_stats(pd.DataFrame({"e": [np.nan, np.nan], "one": [np.nan, 2.0]}))
    assert stats["e"] == {"count": 0, "nulls": 2, "infs": 0, "invalid": 0}
    assert stats["one"]["count"] == 1 and "std" not in stats["one"]  # pandas: std is NaN
    assert sum(stats["one"]["hist"][0]) == 1
    empty = feature_stats(pd.DataFrame({"a": pd.Series([], dtype=float), "s": pd.Series([], dtype=object)}))
    assert empty["a"]["count"] == 0 and "hist" not in empty["a"]
    assert empty["s"]["count"] == 0


def test_other_types_get_count_and_nulls_only():
    df = pd.DataFrame(
        {
            "t": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
            "mixed": ["a", 1, None],
            "none": [None, None, None],
        }
    )
    stats = feature_stats(df)
    assert stats["t"] == {"count": 2, "nulls": 1}
    assert stats["mixed"]["categories"] == ["1", "a"] and stats["mixed"]["nulls"] == 1
    assert stats["none"] == {"count": 0, "nulls": 3}


def test_all_input_forms_give_the_same_stats(tmp_path, frame):
    numeric = frame[["x", "count (n)"]]
    expected = feature_stats(numeric)
    table = pa.Table.from_pandas(numeric, preserve_index=False)
    pq.write_table(table, tmp_path / "train.parquet")
    pacsv.write_csv(table, tmp_path / "train.csv")
    assert feature_stats(table) == expected
    assert feature_stats(table.to_batches()[0]) == expected
    assert feature_stats(tmp_path / "train.parquet") == expected
    from_csv = feature_stats(str(tmp_path / "train.csv"))
    assert from_csv.keys() == expected.keys()
    assert from_csv["count_n"] == expected["count_n"]
    assert from_csv["x"]["hist"][0] == expected["x"]["hist"][0]


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the format"):
        feature_stats(tmp_path / "train.json")
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        feature_stats([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="num_bins"):
        feature_stats(pd.DataFrame({"a": [1.0]}), num_bins=0)
    with pytest.raises(ValueError, match=r"columns not in the training data: \['b'\]"):
        feature_stats(pd.DataFrame({"a": [1.0]}), columns=["b"])


def test_many_columns():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(500, 250))
    stats = feature_stats(pa.table({f"c{i}": data[:, i] for i in range(250)}))
    assert len(stats) == 250
    assert all(sum(s["hist"][0]) == 500 for s in stats.values())


def test_pad_hist_matches_mlrun_and_is_idempotent():
    counts, edges = pad_hist([1, 2], [0.0, 1.0, 2.0])
    assert counts == [0, 1, 2, 0] and edges == [-MAX, 0.0, 1.0, 2.0, MAX]
    assert pad_hist(counts, edges) == (counts, edges)


def test_malformed_reference_histogram_names_the_column():
    with pytest.raises(ValueError, match="column 'f'.*len\\(edges\\)"):
        reference_hist("f", {"hist": [[1, 2, 3], [0.0, 1.0]]})
    with pytest.raises(ValueError, match="column 'f'.*non-decreasing"):
        reference_hist("f", {"hist": [[1, 2], [0.0, 2.0, 1.0]]})


finite_or_special = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]),
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(finite_or_special, min_size=0, max_size=40),
    st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=0, max_size=40),
)
def test_json_round_trip_is_lossless(numbers, strings):
    n = min(len(numbers), len(strings))
    df = pd.DataFrame({"x": pd.Series(numbers[:n], dtype=float), "s": pd.Series(strings[:n], dtype=object)})
    stats = feature_stats(df)
    assert json.loads(json.dumps(stats, allow_nan=False)) == stats
    x = stats["x"]
    assert x["count"] + x["nulls"] == n
    if "hist" in x:
        assert sum(x["hist"][0]) == x["count"]
        reference_hist("x", x)
