"""``make demo``: the monitoring job end to end, on the embedded defaults or on your own services.

1. trains a scikit-learn classifier on the breast-cancer data set that ships with scikit-learn;
2. registers its endpoint with reference statistics from the training split (the SQL store);
3. logs inference events for eight one-minute windows with the producer SDK to the stream, with
   drift injected into 20 features from the fifth window on, plus a few bad records;
4. runs the monitoring job (bounded: it stops at the end of the stream) on a local Flink;
5. prints one line per window from the TSDB: rows, MLRun's general_drift and its status,
   feature_drift (share of features drifted) and its status, the drifted features.

Settings as for ``streamdrift run`` (flags, ``STREAMDRIFT_*`` variables, a ``--config`` file); what
none of them names is the demo's own (:data:`DEFAULTS`: everything embedded in ``.streamdrift-demo/``,
project ``demo``), which it empties first. Connection strings are printed with passwords masked.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np

from streamdrift.connectors.settings import Settings, load_settings, mask_password

DEFAULTS = {"data_dir": ".streamdrift-demo", "project": "demo", "base_period": 1}
WINDOWS = 8
EVENTS_PER_WINDOW = 250
# window → (features whose names start with one of these, shift in standard deviations)
DRIFT = {4: (("mean_", "worst_"), 2.0), 5: (("mean_", "worst_"), 2.0), 6: (("",), 3.0), 7: (("",), 3.0)}
STATUS = {-1: "irrelevant", 0: "no drift", 1: "potential drift", 2: "DRIFT DETECTED"}


def _events(model, x_test: np.ndarray, names: list[str], start_ms: int, rng):
    """(timestamp, request id, row, prediction, latency) of each request, drift injected."""
    scale = x_test.std(axis=0)
    for w in range(WINDOWS):
        for i in range(EVENTS_PER_WINDOW):
            row = x_test[rng.integers(len(x_test))] + rng.normal(0, 0.05, size=x_test.shape[1]) * scale
            prefixes, shift = DRIFT.get(w, ((), 0.0))
            drifted = [j for j, n in enumerate(names) if n.startswith(prefixes)]
            row[drifted] += shift * scale[drifted]
            ts = start_ms + w * 60_000 + int(i * 60_000 / EVENTS_PER_WINDOW)
            yield ts, f"req-{w}-{i}", row.round(5), int(model.predict(row[None, :])[0]), float(rng.lognormal(7, 0.4))


def _bad_records(endpoint_id: str, start_ms: int) -> list:
    return ["{not json", {"endpoint_id": endpoint_id, "timestamp": start_ms, "inputs": [[1.0, 2.0]]},
            {"hello": "world"}]


def main(settings: Settings | None = None) -> int:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    from streamdrift.connectors import dead_letters
    from streamdrift.connectors.endpoints import get_or_create_model_endpoint
    from streamdrift.connectors.producer import MonitoringProducer
    from streamdrift.connectors.tsdb import open_tsdb
    from streamdrift.jobs.monitoring_job import JobOptions, failure_reason, run

    began = time.monotonic()
    if settings is None:
        settings = load_settings(defaults=DEFAULTS)
    if Path(settings.data_dir) == Path(DEFAULTS["data_dir"]).resolve():
        shutil.rmtree(settings.data_dir, ignore_errors=True)  # the demo's own folder: start afresh
    project = settings.project
    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, _ = train_test_split(data.data, data.target, test_size=0.3, random_state=7)
    model = RandomForestClassifier(n_estimators=50, random_state=7).fit(x_train.values, y_train.values)
    # the reference holds the features only (the prediction is an output without statistics)
    endpoint = get_or_create_model_endpoint(project, "breast-cancer-rf", "serving", reference=x_train,
                                            output_names=["prediction"], model_version="v1",
                                            store=settings.endpoint_store_connection)
    names = list(endpoint.feature_names)
    print(f"endpoint {endpoint.endpoint_id}: {len(names)} features, reference of {len(x_train)} training rows")

    start_ms = (int(time.time() * 1000) // 60_000 - WINDOWS) * 60_000
    rng = np.random.default_rng(7)
    letters_before = len(dead_letters.read(settings))
    # one batch: on the directory stream one file, read in order (the job reads a backlog of files in
    # no set order, and a window whose events come after the next window's is late)
    with MonitoringProducer(settings.stream_path, project, batch_size=10_000, linger_s=60) as producer:
        for ts, request_id, row, prediction, latency_us in _events(model, x_test.values, names, start_ms, rng):
            producer.log(endpoint.endpoint_id, [row], [prediction], request_id=request_id, timestamp=ts,
                         latency_us=latency_us)
        for record in _bad_records(endpoint.endpoint_id, start_ms):
            producer.send_record(record)
        producer.flush()
    print(f"logged {producer.sent} records to {mask_password(settings.stream_path)} (project {project}): {WINDOWS} "
          f"windows of one minute; the 20 mean_* and worst_* features shifted by 2 std in windows 5-6, all 30 by "
          f"3 std in windows 7-8; 3 bad records")

    print("running the monitoring job on a local Flink ...")
    try:
        run(settings, JobOptions(bounded=True, window_ms=60_000, checkpoint_interval_ms=5_000))
    except Exception as exc:  # noqa: BLE001 - say why in one line, passwords masked
        print(f"the monitoring job failed: {failure_reason(exc)}")
        return 1

    tsdb = open_tsdb(settings.tsdb_connection)
    since = dt.datetime.fromtimestamp(start_ms / 1000, dt.timezone.utc)  # this run's windows only

    def this_run(records):
        return [r for r in records if r.start_infer_time >= since]

    results = sorted(this_run(tsdb.query_results(project, endpoint.endpoint_id, result_name="general_drift")),
                     key=lambda r: r.start_infer_time)
    verdicts = {r.start_infer_time: r for r in this_run(tsdb.query_results(project, endpoint.endpoint_id,
                                                                            result_name="feature_drift"))}
    rows = {p.start_infer_time: p.count for p in this_run(tsdb.query_predictions(project, endpoint.endpoint_id))}
    print(f"\n{'endpoint':10} {'window (UTC)':13} {'rows':>5} {'general_drift':>13}  {'status':16} "
          f"{'feature_drift':>13}  {'status':16} drifted features (smallest p first)")
    for r in results:
        verdict = verdicts.get(r.start_infer_time)
        drifted = verdict.extra_data.get("drifted", []) if verdict else []
        named = ", ".join(drifted[:3]) + (f" +{len(drifted) - 3} more" if len(drifted) > 3 else "")
        print(f"{r.endpoint_id[:8]:10} {r.start_infer_time:%H:%M}-{r.end_infer_time:%H:%M}  "
              f"{rows.get(r.start_infer_time, 0):>5} {r.value:13.3f}  {STATUS[r.status]:16} "
              + (f"{verdict.value:13.3f}  {STATUS[verdict.status]:16} {named}" if verdict else f"{'-':>13}"))
    reasons = [letter.get("reason", "") for letter in dead_letters.read(settings)[letters_before:]]
    print(f"\n{len(reasons)} dead letters: " + "; ".join(reasons))
    print(f"results in {mask_password(settings.tsdb_connection)}, endpoint in "
          f"{mask_password(settings.endpoint_store_connection)}; demo took {time.monotonic() - began:.0f} s")
    return 0 if len(results) == len(verdicts) == WINDOWS else 1
