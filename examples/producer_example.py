"""Serving code that logs its inferences with the producer SDK, then the monitoring job on them.

    python examples/producer_example.py                                   # embedded file:// stream
    python examples/producer_example.py --stream-path kafka://127.0.0.1:9092   # your Kafka
                                                   # (e.g. `streamdrift services up kafka`)

1. registers the endpoint (model "churn", function "serving", version "v1") with reference
   statistics from its training data;
2. a "model server" loop: 600 requests over three one-minute windows, each logged with
   ``MonitoringProducer.log`` (NumPy rows, a DataFrame now and then, latency, one failed request);
   the third window's requests come from a shifted distribution;
3. runs the monitoring job until the end of the stream (``streamdrift run --bounded``) and prints
   the rows and drift of each window from the TSDB.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from streamdrift.connectors.endpoints import get_or_create_model_endpoint
from streamdrift.connectors.producer import MonitoringProducer
from streamdrift.connectors.settings import load_settings, mask_password

FEATURES = ["tenure_months", "monthly_charges", "support_calls"]


def training_data(rng, n: int = 2_000) -> pd.DataFrame:
    return pd.DataFrame({"tenure_months": rng.gamma(2.0, 12.0, n), "monthly_charges": rng.normal(70, 20, n),
                         "support_calls": rng.poisson(1.5, n).astype(float)})


def predict(rows: np.ndarray) -> np.ndarray:
    """A stand-in model: churn probability from the three features."""
    z = -1.0 - 0.04 * rows[:, 0] + 0.02 * (rows[:, 1] - 70) + 0.5 * rows[:, 2]
    return 1 / (1 + np.exp(-z))


def serve(producer: MonitoringProducer, rng, start_ms: int) -> int:
    """The serving loop; returns the rows logged."""
    rows_logged = 0
    for i in range(600):
        window = i // 200
        batch = training_data(rng, 1 + i % 3).to_numpy()
        if window == 2:  # the population changes: newer customers, more support calls
            batch[:, 0] *= 0.3
            batch[:, 2] += 3
        began = time.perf_counter_ns()
        scores = predict(batch)
        latency_us = (time.perf_counter_ns() - began) / 1000
        inputs = pd.DataFrame(batch, columns=FEATURES) if i % 10 == 0 else batch
        producer.log(("churn", "serving", "v1"), inputs, scores, request_id=f"req-{i}",
                     timestamp=start_ms + window * 60_000 + (i % 200) * 250, latency_us=latency_us)
        rows_logged += len(batch)
        if i == 50:  # a request that failed: counted as an error of its window, its rows not monitored
            producer.log(("churn", "serving", "v1"), batch[:1], None, request_id="req-failed",
                         timestamp=start_ms + (i % 200) * 250, error="model timed out")
    return rows_logged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream-path", help="kafka://host:port or file:///dir (default: file:// in --data-dir)")
    parser.add_argument("--data-dir", default=".streamdrift-example", help="stores of the example (SQLite, Parquet)")
    parser.add_argument("--project", default="example")
    args = parser.parse_args(argv)

    settings = load_settings({"data_dir": args.data_dir, "project": args.project, "base_period": 1,
                              "stream_path": args.stream_path}, env={})
    rng = np.random.default_rng(3)
    endpoint = get_or_create_model_endpoint(args.project, "churn", "serving", reference=training_data(rng),
                                            output_names=["churn_probability"], model_version="v1",
                                            store=settings.endpoint_store_connection)
    start_ms = (int(time.time() * 1000) // 60_000 - 5) * 60_000

    # one file on the directory stream: it reads a backlog of files in no set order, and a window's
    # events read after a later window's would be late (a live producer's files come in order)
    with MonitoringProducer(settings.stream_path, args.project, batch_size=10_000, linger_s=60) as producer:
        rows = serve(producer, rng, start_ms)
        producer.flush()
    print(f"logged {producer.logged} events ({rows} rows + 1 failed request) to {mask_password(settings.stream_path)}: "
          f"{producer.sent} sent, {producer.dropped} dropped, {producer.failed} failed")

    from streamdrift.connectors.tsdb import open_tsdb
    from streamdrift.jobs.monitoring_job import JobOptions, run

    print("running the monitoring job until the end of the stream ...")
    run(settings, JobOptions(bounded=True, checkpoint_interval_ms=5_000))
    tsdb = open_tsdb(settings.tsdb_connection)
    drift = {r.start_infer_time: r for r in tsdb.query_results(args.project, endpoint.endpoint_id,
                                                               result_name="feature_drift")}
    print(f"{'window (UTC)':13} {'rows':>5} {'errors':>6} {'feature_drift':>13}  status")
    for p in sorted(tsdb.query_predictions(args.project, endpoint.endpoint_id), key=lambda p: p.start_infer_time):
        r = drift.get(p.start_infer_time)
        status = {0: "no drift", 1: "potential drift", 2: "DRIFT DETECTED"}.get(r.status, "-") if r else "-"
        print(f"{p.start_infer_time:%H:%M}-{p.end_infer_time:%H:%M}   {p.count:5} {p.error_count:6} "
              f"{(r.value if r else float('nan')):13.3f}  {status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
