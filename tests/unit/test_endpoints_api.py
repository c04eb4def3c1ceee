"""The endpoint API and the ``streamdrift endpoints`` command, on the embedded SQLite store."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamdrift.connectors import endpoints as api
from streamdrift.connectors.sql_store import NotFoundError, SqlStore
from streamdrift.jobs import endpoints_cli
from tests.unit.clikit import run_command
from streamdrift.udfs.endpoint_id import endpoint_uid
from streamdrift.udfs.reference import read_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def training() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 2_000
    return pd.DataFrame({
        "row_id": np.arange(n),
        "petal length (cm)": rng.normal(4.0, 1.5, n),
        "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        "prediction": rng.integers(0, 2, n),
        "label": rng.integers(0, 2, n),
    })


# --------------------------------------------------------------------------------- endpoint id


def test_endpoint_id_is_mlruns_sha1_of_project_function_tag_model_version():
    # MLRun's EndpointUID: sha1(f"{project}_{function}_{tag or hash_key or 'N/A'}_{model}_{version or 'N/A'}")
    assert endpoint_uid("fraud", "serving", "latest", "classifier", "v2") == hashlib.sha1(
        b"fraud_serving_latest_classifier_v2").hexdigest()
    assert endpoint_uid("fraud", "serving", None, "classifier", None) == hashlib.sha1(
        b"fraud_serving_N/A_classifier_N/A").hexdigest()
    assert endpoint_uid("p", "f", "", "m", "") == hashlib.sha1(b"p_f_N/A_m_N/A").hexdigest()
    with pytest.raises(ValueError, match="model"):
        endpoint_uid("p", "f", None, "", None)


# --------------------------------------------------------------------------------- create


def test_create_from_a_dataframe_splits_features_outputs_and_labels(store, training):
    ep = api.get_or_create_model_endpoint("fraud", "classifier", "serving", reference=training,
                                          feature_names=["petal length (cm)", "color"], output_names=["prediction"],
                                          label_names=["label"], model_version="v1", store=store)
    assert ep.endpoint_id == hashlib.sha1(b"fraud_serving_N/A_classifier_v1").hexdigest()
    assert ep.feature_names == ["petal_length_cm", "color"]  # normalised as MLRun does
    assert ep.output_names == ["prediction"] and ep.label_names == ["label"]
    assert set(ep.feature_stats) == {"petal_length_cm", "color", "prediction", "label"}
    petal = ep.feature_stats["petal_length_cm"]
    assert petal["count"] == 2_000
    assert petal["mean"] == pytest.approx(training["petal length (cm)"].mean(), rel=1e-12)
    assert petal["min"] == training["petal length (cm)"].min() and petal["max"] == training["petal length (cm)"].max()
    assert sum(petal["hist"][0]) == 2_000
    counts = training["color"].value_counts()
    assert dict(zip(ep.feature_stats["color"]["categories"], ep.feature_stats["color"]["category_counts"])) == \
        counts.to_dict()
    assert ep.feature_stats["prediction"]["mean"] == pytest.approx(training["prediction"].mean())
    assert ep.reference_rows == 2_000 and ep.has_reference_sample


def test_without_feature_names_every_other_column_is_a_feature(store, training):
    ep = api.get_or_create_model_endpoint("fraud", "classifier", "serving", reference=training,
                                          output_names=["prediction"], label_names=["label"], store=store)
    assert ep.feature_names == ["row_id", "petal_length_cm", "color"]


def test_parquet_csv_and_dataframe_give_the_same_reference(store, training, tmp_path):
    parquet, csv = tmp_path / "train.parquet", tmp_path / "train.csv"
    training.to_parquet(parquet)
    training.to_csv(csv, index=False)
    eps = [api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=ref, model_version=version,
                                            output_names=["prediction"], store=store)
           for version, ref in (("df", training), ("pq", str(parquet)), ("csv", csv))]
    assert len({e.endpoint_id for e in eps}) == 3
    assert eps[0].feature_stats == eps[1].feature_stats
    for name, stats in eps[0].feature_stats.items():  # CSV text → floats may differ in the last digit
        for key, value in stats.items():
            if isinstance(value, float):
                assert eps[2].feature_stats[name][key] == pytest.approx(value, rel=1e-12), (name, key)
            elif key != "hist":
                assert eps[2].feature_stats[name][key] == value, (name, key)
    assert [e.feature_names for e in eps] == [eps[0].feature_names] * 3


def test_get_or_create_twice_returns_the_same_endpoint_without_duplicating(store, training):
    first = api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=training, function_tag="prod",
                                             store=store)
    again = api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=training.head(10),
                                             function_tag="prod", store=store)
    assert again == first  # unchanged: a new reference goes through update_reference
    assert [e.endpoint_id for e in store.list_endpoints()] == [first.endpoint_id]


def test_an_endpoint_created_without_reference_gets_one_later(store, training):
    bare = api.get_or_create_model_endpoint("fraud", "clf", "serving", feature_names=["color"], store=store)
    assert bare.feature_stats == {} and not bare.has_reference_sample
    filled = api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=training, store=store)
    assert filled.endpoint_id == bare.endpoint_id
    assert filled.feature_names == ["color"] and set(filled.feature_stats) == {"color"}


def test_missing_feature_is_a_clear_error(store, training):
    with pytest.raises(ValueError, match=r"features \['weight'\] are not columns"):
        api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=training, feature_names=["weight"],
                                         store=store)
    assert store.list_endpoints() == []


def test_output_absent_from_the_reference_is_recorded_without_statistics(store, training):
    ep = api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=training.drop(columns=["prediction"]),
                                          output_names=["prediction"], store=store)
    assert ep.output_names == ["prediction"] and "prediction" not in ep.feature_stats


# --------------------------------------------------------------------------------- sample


def test_reference_sample_is_bounded_uniform_and_seeded(store):
    n = 50_000
    big = pd.DataFrame({"row_id": np.arange(n), "x y": np.linspace(0, 1, n)})
    ep = api.get_or_create_model_endpoint("p", "m", "f", reference=big, sample_size=1_000, store=store)
    sample = api.get_reference_sample(ep.endpoint_id, store=store).to_pandas()
    assert list(sample.columns) == ["row_id", "x_y"]
    assert len(sample) == 1_000 and sample["row_id"].is_unique
    # the rows are real rows of the reference, in its order
    assert (big.set_index("row_id").loc[sample["row_id"], "x y"].to_numpy() == sample["x_y"].to_numpy()).all()
    assert sample["row_id"].is_monotonic_increasing
    # uniform: the ids' mean and spread are those of 1,000 draws from 0..49,999 (4 sigma bands)
    assert abs(sample["row_id"].mean() - (n - 1) / 2) < 4 * (n / np.sqrt(12)) / np.sqrt(1_000)
    assert np.histogram(sample["row_id"], bins=5, range=(0, n))[0].min() > 150
    # seeded: the same call gives the same sample, another seed another one
    again = api.reference_sample(read_table(big), 1_000)
    other = api.reference_sample(read_table(big), 1_000, seed=1)
    assert again.column("row_id").to_pylist() == sample["row_id"].tolist()
    assert other.column("row_id").to_pylist() != sample["row_id"].tolist()


def test_small_references_are_kept_whole(store, training):
    ep = api.get_or_create_model_endpoint("p", "m", "f", reference=training, store=store)
    assert len(api.get_reference_sample(ep.endpoint_id, store=store)) == len(training)


def test_wide_references_keep_fewer_sample_rows(store):
    wide = pd.DataFrame(np.ones((3_000, 2_000)), columns=[f"f{i}" for i in range(2_000)])
    ep = api.get_or_create_model_endpoint("p", "m", "f", reference=wide, store=store)
    sample = api.get_reference_sample(ep.endpoint_id, store=store)
    assert sample.num_columns == 2_000 and sample.num_rows == api.MAX_SAMPLE_CELLS // 2_000


# --------------------------------------------------------------------------------- update, list, delete


def test_update_reference_replaces_the_statistics_and_is_noticed_by_pollers(store, training):
    ep = api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=training, output_names=["prediction"],
                                          store=store)
    version = store.endpoints_version()
    shifted = training.assign(**{"petal length (cm)": training["petal length (cm)"] + 10})
    new = api.update_reference(ep.endpoint_id, shifted, store=store)
    assert new.feature_stats["petal_length_cm"]["mean"] == pytest.approx(ep.feature_stats["petal_length_cm"]["mean"] + 10)
    assert new.feature_names == ep.feature_names and new.output_names == ["prediction"]
    assert store.endpoints_version() != version
    with pytest.raises(NotFoundError, match="nope"):
        api.update_reference("nope", training, store=store)


def test_the_jobs_loader_sees_every_change_and_rereads_the_references_only_then(store, training, tmp_path,
                                                                                 monkeypatch):
    from streamdrift.connectors import job_io
    from streamdrift.udfs.records import PredictionRecord

    url = f"sqlite:///{tmp_path}/store.sqlite"
    reads = []  # endpoint records read from the store, per load

    def counted(method):
        original = getattr(SqlStore, method)
        monkeypatch.setattr(SqlStore, method, lambda self, *a, **kw: reads.append(len(out := original(self, *a, **kw)))
                            or out)

    counted("list_endpoints")
    counted("endpoints_changed_since")
    ep = api.get_or_create_model_endpoint("fraud", "clf", "serving", reference=training, store=store)
    first = job_io.load_endpoints(url)
    assert [e["endpoint_id"] for e in first] == [ep.endpoint_id]
    when = pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime()
    store.add_window_counters(ep.endpoint_id, PredictionRecord("fraud", ep.endpoint_id, when, when, 5, 5, 0, 0,
                                                               None, None, None, None, None, None))
    again = job_io.load_endpoints(url)
    assert again is first and again[0]["feature_stats"] == ep.feature_stats
    assert reads == [1]  # counters moved, definitions did not: nothing read again, the same records
    shifted = training.assign(**{"petal length (cm)": training["petal length (cm)"] + 10})
    api.update_reference(ep.endpoint_id, shifted, store=store)
    (changed,) = job_io.load_endpoints(url)
    assert changed["feature_stats"]["petal_length_cm"]["mean"] == pytest.approx(
        ep.feature_stats["petal_length_cm"]["mean"] + 10)
    other = api.get_or_create_model_endpoint("fraud", "other", "serving", reference=training, store=store)
    assert {e["endpoint_id"] for e in job_io.load_endpoints(url)} == {ep.endpoint_id, other.endpoint_id}
    assert reads[0] == 1 and all(n <= 2 for n in reads[1:])  # only what changed since (the newest again)
    store.delete_endpoint(other.endpoint_id)
    assert [e["endpoint_id"] for e in job_io.load_endpoints(url)] == [ep.endpoint_id]


def test_list_get_and_delete(store, training):
    a = api.get_or_create_model_endpoint("alpha", "m", "f", reference=training, store=store)
    b = api.get_or_create_model_endpoint("beta", "m", "f", reference=training, store=store)
    assert [e.endpoint_id for e in api.list_model_endpoints("alpha", store=store)] == [a.endpoint_id]
    assert {e.endpoint_id for e in api.list_model_endpoints(store=store)} == {a.endpoint_id, b.endpoint_id}
    assert api.list_model_endpoints(store=store)[0].feature_stats == {}  # listing leaves the stats out
    assert api.get_model_endpoint(b.endpoint_id, store=store).feature_stats == b.feature_stats
    assert api.delete_model_endpoint(a.endpoint_id, store=store) is True
    assert api.delete_model_endpoint(a.endpoint_id, store=store) is False
    with pytest.raises(NotFoundError, match=a.endpoint_id):
        api.get_model_endpoint(a.endpoint_id, store=store)


def test_store_can_be_a_url(tmp_path, training):
    url = f"sqlite:///{tmp_path}/nested/dir/store.sqlite"
    ep = api.get_or_create_model_endpoint("p", "m", "f", reference=training, store=url)
    assert api.get_model_endpoint(ep.endpoint_id, store=url).endpoint_id == ep.endpoint_id


# --------------------------------------------------------------------------------- CLI


run_cli = functools.partial(run_command, endpoints_cli.register)


@pytest.fixture()
def cli_env(tmp_path, training, monkeypatch):
    for name in ("STREAMDRIFT_ENDPOINT_STORE_CONNECTION", "STREAMDRIFT_PROJECT", "STREAMDRIFT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    csv = tmp_path / "train.csv"
    training.to_csv(csv, index=False)
    return {"store": ["--endpoint-store-connection", f"sqlite:///{tmp_path}/cli.sqlite"], "csv": str(csv)}


def test_cli_create_list_show_delete(cli_env, capsys):
    store = cli_env["store"]
    rc, out, _ = run_cli(["endpoints", "create", "--project", "fraud", "--model", "clf", "--function", "serving",
                          "--version", "v3", "--tag", "prod", "--reference", cli_env["csv"],
                          "--outputs", "prediction", "--labels", "label", *store], capsys)
    expected_id = hashlib.sha1(b"fraud_serving_prod_clf_v3").hexdigest()
    assert rc == 0 and expected_id in out

    rc, out, _ = run_cli(["endpoints", "list", *store], capsys)
    header, row = out.strip().splitlines()
    assert rc == 0 and header.split()[:3] == ["ID", "PROJECT", "MODEL"]
    assert row.split()[:6] == [expected_id, "fraud", "clf", "v3", "serving", "prod"]

    rc, out, _ = run_cli(["endpoints", "list", "--json", "--project", "other", *store], capsys)
    assert rc == 0 and json.loads(out) == []

    rc, out, _ = run_cli(["endpoints", "show", expected_id, *store], capsys)
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rc == 0
    assert lines["petal_length_cm"][1:3] == ["feature", "numeric"]
    assert lines["color"][1:3] == ["feature", "categorical"] and lines["color"][5] == "red"
    assert lines["prediction"][1] == "output" and lines["label"][1] == "label"

    rc, out, _ = run_cli(["endpoints", "show", expected_id, "--json", *store], capsys)
    shown = json.loads(out)
    assert shown["endpoint_id"] == expected_id and shown["feature_stats"]["color"]["top"] == "red"

    rc, out, _ = run_cli(["endpoints", "delete", expected_id, *store], capsys)
    assert rc == 0 and expected_id in out
    rc, out, err = run_cli(["endpoints", "show", expected_id, *store], capsys)
    assert rc == endpoints_cli.EXIT_NOT_FOUND and expected_id in err and out == ""


def test_cli_create_twice_keeps_one_endpoint(cli_env, capsys):
    argv = ["endpoints", "create", "--project", "fraud", "--model", "clf", "--function", "serving", "--reference",
            cli_env["csv"], "--json", *cli_env["store"]]
    first = json.loads(run_cli(argv, capsys)[1])
    second = json.loads(run_cli(argv, capsys)[1])
    assert first == second
    assert len(json.loads(run_cli(["endpoints", "list", "--json", *cli_env["store"]], capsys)[1])) == 1


def test_cli_reports_bad_input_in_one_line(cli_env, capsys, tmp_path):
    rc, out, err = run_cli(["endpoints", "create", "--model", "m", "--function", "f", "--reference",
                            str(tmp_path / "train.xlsx"), *cli_env["store"]], capsys)
    assert rc == endpoints_cli.EXIT_ERROR and "cannot tell the format" in err and out == ""
    rc, out, err = run_cli(["endpoints", "delete", "no-such-id", *cli_env["store"]], capsys)
    assert rc == endpoints_cli.EXIT_NOT_FOUND and "no-such-id" in err and out == ""


def test_cli_through_the_streamdrift_command(cli_env, tmp_path):
    from streamdrift.jobs import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "endpoints" not in commands:
        pytest.skip("jobs/cli.py does not register endpoints_cli yet (the lead wires it)")
    run = [sys.executable, "-m", "streamdrift.jobs.cli", "endpoints"]
    created = subprocess.run([*run, "create", "--project", "fraud", "--model", "clf", "--function", "serving",
                              "--reference", cli_env["csv"], "--json", *cli_env["store"]],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    endpoint_id = json.loads(created.stdout)["endpoint_id"]
    assert endpoint_id == hashlib.sha1(b"fraud_serving_N/A_clf_N/A").hexdigest()
    listed = subprocess.run([*run, "list", *cli_env["store"]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert endpoint_id in listed.stdout
    deleted = subprocess.run([*run, "delete", endpoint_id, *cli_env["store"]], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert deleted.returncode == 0
    shown = subprocess.run([*run, "show", endpoint_id, *cli_env["store"]], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 1 and endpoint_id in shown.stderr


def test_cli_create_prints_the_invalid_values_and_takes_the_overrides(cli_env, capsys, tmp_path):
    """A CSV whose amount holds 1 % of "?", "-" and "unknown": printed per column (and in --json);
    --numeric / --categorical, repeatable or comma-separated, force the types."""
    rng = np.random.default_rng(4)
    amount = rng.normal(50, 10, 2_000).astype(object)
    where = rng.choice(2_000, 20, replace=False)
    amount[where] = rng.choice(["?", "-", "unknown"], 20)
    put = Counter(amount[where].tolist())
    path = tmp_path / "tokens.csv"
    pd.DataFrame({"amount": amount, "note": ["a", "b"] * 1_000, "y": 1}).to_csv(path, index=False)
    base = ["endpoints", "create", "--project", "shop", "--function", "serving", "--reference", str(path),
            *cli_env["store"]]
    rc, out, _ = run_cli([*base, "--model", "a"], capsys)
    (line,) = [line for line in out.splitlines() if line.startswith("invalid")]
    assert rc == 0 and "'amount'" in line and "20 of 2000" in line
    assert all(f"{token!r} x{n}" in line for token, n in put.items())
    rc, out, _ = run_cli([*base, "--model", "b", "--json"], capsys)
    assert json.loads(out)["invalid_values"] == {"amount": {"invalid": 20, "invalid_tokens": dict(put.most_common())}}
    store = SqlStore(cli_env["store"][1])
    rc, out, _ = run_cli([*base, "--model", "c", "--json", "--categorical", "amount,y", "--numeric", "note"], capsys)
    created = store.get_endpoint(json.loads(out)["endpoint_id"]).feature_stats
    assert "categories" in created["amount"] and "categories" in created["y"]
    assert created["note"]["invalid"] == 2_000 and created["note"]["count"] == 0
    rc, out, _ = run_cli([*base, "--model", "d", "--json", "--categorical", "amount", "--categorical", "y"], capsys)
    created = store.get_endpoint(json.loads(out)["endpoint_id"]).feature_stats
    assert "categories" in created["amount"] and "categories" in created["y"]
    rc, out, _ = run_cli(["endpoints", "show", json.loads(run_cli([*base, "--model", "a", "--json"], capsys)[1])
                          ["endpoint_id"], *cli_env["store"]], capsys)
    assert [line for line in out.splitlines() if line.startswith("invalid")] == [line]
    store.close()


# --------------------------------------------------------------------------------- many at once


def test_register_many_gives_each_model_the_statistics_of_its_own_reference(store):
    rng = np.random.default_rng(3)
    refs = [pd.DataFrame({"x": rng.normal(i, 1 + i, 500), "y": rng.integers(0, 5, 500), "prediction": rng.random(500)})
            for i in range(3)]
    models = ({"model_name": f"m{i}", "function_name": "serving", "reference": ref, "output_names": ["prediction"]}
              for i, ref in enumerate(refs))  # a generator, as a fleet's list may be
    ids = api.register_model_endpoints("fleet", models, store, sample_size=100, chunk=2)
    assert ids == [hashlib.sha1(f"fleet_serving_N/A_m{i}_N/A".encode()).hexdigest() for i in range(3)]
    for endpoint_id, ref in zip(ids, refs):
        ep = store.get_endpoint(endpoint_id)
        assert ep.feature_names == ["x", "y"] and ep.output_names == ["prediction"]
        x = ep.feature_stats["x"]
        assert x["mean"] == pytest.approx(ref["x"].mean(), rel=1e-12)
        assert x["25%"] == pytest.approx(np.percentile(ref["x"], 25), rel=1e-12)
        inner = np.histogram(ref["x"], bins=np.linspace(ref["x"].min(), ref["x"].max(), 21))[0]
        assert x["hist"][0] == [0, *inner.tolist(), 0]
        assert ep.reference_rows == 500 and len(api.get_reference_sample(endpoint_id, store)) == 100
        assert ep.rows_count == 0 and ep.monitoring_mode == "enabled"


def test_register_many_replaces_definitions_and_keeps_counters_stored_before(store, training):
    import datetime as dt

    from streamdrift.udfs.records import PredictionRecord

    first = api.get_or_create_model_endpoint("fleet", "m0", "serving", reference=training.head(50), store=store)
    t0 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    for n, endpoint_id in ((1, first.endpoint_id), (2, first.endpoint_id), (3, "not-registered-yet")):
        start, end = t0 + dt.timedelta(minutes=n), t0 + dt.timedelta(minutes=n + 1)
        store.add_window_counters(endpoint_id, PredictionRecord(
            "fleet", endpoint_id, start, end, 10 * n, n, 0, 10 * n, 1.0, 1.0, 1.0, 1.0, start, end))
    api.register_model_endpoints("fleet", [
        {"model_name": "m0", "function_name": "serving", "reference": training, "output_names": ["prediction"]},
        {"model_name": "m1", "function_name": "serving", "endpoint_id": "not-registered-yet",
         "feature_names": ["color"]},
    ], store)
    again = store.get_endpoint(first.endpoint_id)
    assert again.reference_rows == len(training) and again.output_names == ["prediction"]
    assert (again.rows_count, again.events_count) == (10 + 20, 1 + 2)  # counted before, kept
    assert again.last_window_end == t0 + dt.timedelta(minutes=3)
    late = store.get_endpoint("not-registered-yet")
    assert (late.rows_count, late.feature_names, late.feature_stats) == (30, ["color"], {})


def test_register_many_names_the_model_that_is_wrong(store, training):
    with pytest.raises(ValueError, match="'bad'.*nope"):
        api.register_model_endpoints("fleet", [
            {"model_name": "good", "function_name": "serving", "reference": training},
            {"model_name": "bad", "function_name": "serving", "reference": training, "feature_names": ["nope"]},
        ], store)
    with pytest.raises(ValueError, match="unknown keys.*refernce"):
        api.register_model_endpoints("fleet", [{"model_name": "m", "function_name": "f", "refernce": training}], store)
    assert store.list_endpoints() == []  # nothing written: both were in the first chunk
