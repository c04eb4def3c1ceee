"""The parse stage's per-record work in Python (what the job runs) beside the same work in the JVM
(a prototype, ``prototype/JvmParseBin.java``): the measurement behind the design proposal for
100,000 events/s in ``tests/benchmarks/README.md`` ("Where the time goes").

    .venv/bin/python -m tests.benchmarks.bench_jvm_parse            # 200,000 events, 100 endpoints (~1 min)

Python: ``aggregate_records`` column-wise on batches of 20,000 records (the Arrow batch of the job),
no sample (the default application does not read it), on events of ``bench_job``'s shape. JVM: the
prototype reads each event with Jackson's streaming parser (Flink's shaded copy in ``flink-dist``),
checks its ids and time, bins its 20 values into its endpoint's open window and keeps the raw
row's columns; compiled here with ``javac`` (JDK 17). Both single-threaded, neither counts the
hand-over between JVM and Python that the job pays on top of the Python figure.
"""
from __future__ import annotations

import argparse
import gc
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.benchmarks.bench_job import register_endpoints, serialise_events

T0 = 1_700_000_040_000
WINDOW_MS = 60_000
PROTOTYPE = Path(__file__).parent / "prototype" / "JvmParseBin.java"


def python_us_per_event(events: int, endpoints: int, repeats: int, batch: int = 20_000) -> list[float]:
    from streamdrift.connectors import job_io
    from streamdrift.connectors.settings import load_settings
    from streamdrift.udfs.catalog import EndpointCatalog
    from streamdrift.udfs.columnar import ColumnarReader
    from streamdrift.udfs.batch import aggregate_records

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"data_dir": tmp, "project": "bench"}, env={})
        ids = register_endpoints(settings, "bench", endpoints)
        payloads = serialise_events(ids, events, 10, T0)
        records = job_io.load_endpoints(settings.endpoint_store_connection)
    catalog = EndpointCatalog(lambda: records)
    reader = ColumnarReader()
    # the parse stage's collector settings (operators.parse.ParseRecords.open): without them a full
    # collection walks the catalog's objects every few batches and triples the figure
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    out = []
    for _ in range(repeats + 1):  # the first: warm-up
        t0 = time.perf_counter()
        counted = 0
        for lo in range(0, events, batch):
            result = aggregate_records(payloads[lo:lo + batch], catalog, WINDOW_MS, 0, reader=reader)
            counted += sum(p.aggregate.rows for p in result.partials)
        out.append((time.perf_counter() - t0) * 1e6 / events)
        assert counted == events, (counted, events)
    return out[1:]


def jvm_us_per_event(events: int, endpoints: int, repeats: int, parser: str, build: Path) -> list[float]:
    import pyflink

    dist = next((Path(pyflink.__file__).parent / "lib").glob("flink-dist-*.jar"))
    if not (build / "JvmParseBin.class").exists():
        subprocess.run(["javac", "-nowarn", "-d", str(build), "-cp", str(dist), str(PROTOTYPE)], check=True,
                       capture_output=True)
    proc = subprocess.run(["java", "-Xmx2g", "-XX:+UseParallelGC", "-cp", f"{dist}:{build}", "JvmParseBin",
                           str(events), str(endpoints), "20", str(repeats), parser],
                          check=True, capture_output=True, text=True)
    return [float(x) for x in re.search(r"repeats=\[([^\]]*)\]", proc.stdout).group(1).split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the three rows")
    args = parser.parse_args(argv)
    runs: dict[str, list[float]] = {"python": [], "jvm-fast": [], "jvm-jdk": []}
    with tempfile.TemporaryDirectory() as build:
        for _ in range(args.rounds):
            runs["python"] += python_us_per_event(args.events, args.endpoints, args.repeats)
            runs["jvm-fast"] += jvm_us_per_event(args.events, args.endpoints, args.repeats, "fast", Path(build))
            runs["jvm-jdk"] += jvm_us_per_event(args.events, args.endpoints, args.repeats, "jdk", Path(build))
    labels = {"python": "Python: aggregate_records column-wise (pyarrow JSON reader), batches of 20,000",
              "jvm-fast": "JVM prototype: Jackson streaming parser, fast double parser",
              "jvm-jdk": "JVM prototype: Jackson streaming parser, JDK Double.parseDouble"}
    print(f"parse + check + bin, {args.events:,} events of 20 features over {args.endpoints} endpoints, "
          f"one thread; {args.rounds} rounds x {args.repeats} repeats")
    print(f"{'path':<82} {'median µs/event':>15} {'min':>6} {'max':>6}")
    for key, values in runs.items():
        print(f"{labels[key]:<82} {statistics.median(values):>15.2f} {min(values):>6.2f} {max(values):>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
