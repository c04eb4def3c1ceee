"""``make demo``: the monitoring job end to end on the embedded defaults (no servers).

1. trains a scikit-learn classifier on the breast-cancer data set that ships with scikit-learn;
2. registers its endpoint with reference statistics from the training split (SQLite store);
3. writes inference events for eight one-minute windows to the embedded directory stream, with
   drift injected into 20 features from the fifth window on, plus a few bad records;
4. runs the monitoring job (bounded: it stops at the end of the stream) on a local Flink;
5. prints one line per window from the stores: rows, MLRun's general_drift and its status, feature_drift
   (share of features drifted) and its status, the drifted features.

Everything lands in ``.streamdrift-demo/`` (TSDB and store in SQLite, dead letters as files).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from connectors.settings import load_settings, topic_names

WINDOWS = 8
EVENTS_PER_WINDOW = 250
# window → (features whose names start with one of these, shift in standard deviations)
DRIFT = {4: (("mean_", "worst_"), 2.0), 5: (("mean_", "worst_"), 2.0), 6: (("",), 3.0), 7: (("",), 3.0)}
STATUS = {-1: "irrelevant", 0: "no drift", 1: "potential drift", 2: "DRIFT DETECTED"}


def _events(model, x_test: np.ndarray, names: list[str], endpoint_id: str, start_ms: int, rng) -> list[str]:
    scale = x_test.std(axis=0)
    lines = []
    for w in range(WINDOWS):
        for i in range(EVENTS_PER_WINDOW):
            row = x_test[rng.integers(len(x_test))] + rng.normal(0, 0.05, size=x_test.shape[1]) * scale
            prefixes, shift = DRIFT.get(w, ((), 0.0))
            drifted = [j for j, n in enumerate(names) if n.startswith(prefixes)]
            row[drifted] += shift * scale[drifted]
            ts = start_ms + w * 60_000 + int(i * 60_000 / EVENTS_PER_WINDOW)
            lines.append(json.dumps({
                "endpoint_id": endpoint_id, "timestamp": ts, "request_id": f"req-{w}-{i}",
                "inputs": [row.round(5).tolist()], "outputs": [int(model.predict(row[None, :])[0])],
                "latency_us": float(rng.lognormal(7, 0.4)),
            }))
    lines += ["{not json", json.dumps({"endpoint_id": endpoint_id, "timestamp": start_ms, "inputs": [[1.0, 2.0]]}),
              json.dumps({"hello": "world"})]
    return lines


def main(data_dir: str = ".streamdrift-demo") -> int:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    from connectors.endpoints import get_or_create_model_endpoint
    from connectors.tsdb import open_tsdb
    from jobs.monitoring_job import JobOptions, run

    began = time.monotonic()
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = load_settings({"data_dir": data_dir, "project": "demo", "base_period": 1}, env={})
    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, _ = train_test_split(data.data, data.target, test_size=0.3, random_state=7)
    model = RandomForestClassifier(n_estimators=50, random_state=7).fit(x_train.values, y_train.values)
    # the reference holds the features only: a 0/1 prediction column would always look drifted,
    # because a window counts the training maximum in the padded last bin (MLRun's convention)
    endpoint = get_or_create_model_endpoint("demo", "breast-cancer-rf", "serving", reference=x_train,
                                            output_names=["prediction"], model_version="v1",
                                            store=settings.endpoint_store_connection)
    names = list(endpoint.feature_names)
    print(f"endpoint {endpoint.endpoint_id}: {len(names)} features, reference of {len(x_train)} training rows")

    start_ms = (int(time.time() * 1000) // 60_000 - WINDOWS) * 60_000
    rng = np.random.default_rng(7)
    lines = _events(model, x_test.values, names, endpoint.endpoint_id, start_ms, rng)
    stream = Path(settings.stream_path.removeprefix("file://")) / topic_names("demo")["events"]
    stream.mkdir(parents=True, exist_ok=True)
    (stream / "events-0.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} records to {stream}: {WINDOWS} windows of one minute; the 20 mean_* and "
          f"worst_* features shifted by 2 std in windows 5-6, all 30 by 3 std in windows 7-8; 3 bad records")

    print("running the monitoring job on a local Flink ...")
    run(settings, JobOptions(bounded=True, checkpoint_interval_ms=5_000))

    tsdb = open_tsdb(settings.tsdb_connection)
    results = sorted(tsdb.query_results("demo", endpoint.endpoint_id, result_name="general_drift"),
                     key=lambda r: r.start_infer_time)
    verdicts = {r.start_infer_time: r for r in tsdb.query_results("demo", endpoint.endpoint_id,
                                                                   result_name="feature_drift")}
    rows = {p.start_infer_time: p.count for p in tsdb.query_predictions("demo", endpoint.endpoint_id)}
    print(f"\n{'endpoint':10} {'window (UTC)':13} {'rows':>5} {'general_drift':>13}  {'status':16} "
          f"{'feature_drift':>13}  {'status':16} drifted features (smallest p first)")
    for r in results:
        verdict = verdicts.get(r.start_infer_time)
        drifted = verdict.extra_data.get("drifted", []) if verdict else []
        named = ", ".join(drifted[:3]) + (f" +{len(drifted) - 3} more" if len(drifted) > 3 else "")
        print(f"{r.endpoint_id[:8]:10} {r.start_infer_time:%H:%M}-{r.end_infer_time:%H:%M}  "
              f"{rows.get(r.start_infer_time, 0):>5} {r.value:13.3f}  {STATUS[r.status]:16} "
              + (f"{verdict.value:13.3f}  {STATUS[verdict.status]:16} {named}" if verdict else f"{'-':>13}"))
    dead = sorted((Path(data_dir) / "stream" / topic_names("demo")["dead_letters"]).rglob("part-*"))
    reasons = [json.loads(line)["reason"] for f in dead for line in f.read_text().splitlines() if line]
    print(f"\n{len(reasons)} dead letters: " + "; ".join(reasons))
    print(f"results in {settings.tsdb_connection}, endpoint in {settings.endpoint_store_connection}; "
          f"demo took {time.monotonic() - began:.0f} s")
    return 0 if len(results) == len(verdicts) == WINDOWS else 1
