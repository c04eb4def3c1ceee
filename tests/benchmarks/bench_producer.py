"""Throughput of ``MonitoringProducer.log`` from one thread: events/s the serving code can log.

    python -m tests.benchmarks.bench_producer                      # the embedded file:// stream
    python -m tests.benchmarks.bench_producer --kafka kafka://127.0.0.1:9092   # and a real broker

For each input type (20 features; a one-row request and a 10-row batch) it logs ``--events`` events
as fast as one thread can, ``--repeats`` times, and prints the median events/s of ``log`` alone
(the caller's cost: serialising and queueing) and the median events/s until ``flush()`` returned
(everything written by the background thread). The queue holds every event (nothing dropped): the
numbers are the caller's cost, not a full queue's. Reads nothing back.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid

import numpy as np
import pandas as pd

from streamdrift.connectors.producer import MonitoringProducer

FEATURES = [f"f{i}" for i in range(20)]


def _cases(rng) -> dict[str, tuple]:
    row = rng.normal(size=20)
    batch = rng.normal(size=(10, 20))
    return {
        "list, 1 row": (row.tolist(), [0.5]),
        "NumPy 1-D, 1 row": (row, [0.5]),
        "dict, 1 row": (dict(zip(FEATURES, row.tolist())), [0.5]),
        "list of lists, 10 rows": (batch.tolist(), [0.5] * 10),
        "NumPy 2-D, 10 rows": (batch, np.full(10, 0.5)),
        "DataFrame, 10 rows": (pd.DataFrame(batch, columns=FEATURES), np.full(10, 0.5)),
    }


def _one(stream_path: str, project: str, inputs, outputs, events: int) -> tuple[float, float]:
    producer = MonitoringProducer(stream_path, project, max_queue=events + 1, batch_size=1_000)
    try:
        began = time.perf_counter()
        for i in range(events):
            producer.log("bench-endpoint", inputs, outputs, latency_us=250.0)
        logged = time.perf_counter() - began
        assert producer.flush(120), "flush did not finish in 120 s"
        flushed = time.perf_counter() - began
        assert producer.dropped == 0 and producer.failed == 0, (producer.dropped, producer.failed)
    finally:
        producer.close()
    return events / logged, events / flushed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kafka", help="also a real broker, e.g. kafka://127.0.0.1:9092 (topic of a new project)")
    args = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="bench-producer-")
    streams = {"file://": (f"file://{folder}/stream", "bench")}
    if args.kafka:
        streams["kafka://"] = (args.kafka, f"bench-{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(0)
    print(f"MonitoringProducer.log from one thread ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {args.events:,} events x {args.repeats} repeats, medians; 20 features)")
    print(f"{'stream':9} {'inputs':24} {'log events/s':>13} {'rows/s':>11} {'until flushed events/s':>23}")
    try:
        for stream, (path, project) in streams.items():
            for name, (inputs, outputs) in _cases(rng).items():
                runs = [_one(path, project, inputs, outputs, args.events) for _ in range(args.repeats)]
                rows = 10 if "10 rows" in name else 1
                log_rate = statistics.median(r[0] for r in runs)
                print(f"{stream:9} {name:24} {log_rate:13,.0f} {log_rate * rows:11,.0f} "
                      f"{statistics.median(r[1] for r in runs):23,.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
