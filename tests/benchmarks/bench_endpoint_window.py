"""The Python work of one endpoint window after the parse stage, offline (no Flink): what 10,000
endpoints closing a window together cost the job besides reading events.

    .venv/bin/python -m tests.benchmarks.bench_endpoint_window                  # 200 endpoints, 33 rows per window
    .venv/bin/python -m tests.benchmarks.bench_endpoint_window --rows 100 --rows-per-partial 5

Endpoints registered as the job benchmarks register them (20 normal features, bulk, SQLite), events
as they produce them; the events of one window are aggregated in batches of ``endpoints x
rows-per-partial`` records, as the parse stage does with many endpoints, so each endpoint's window
gets its partials of a few rows each. Then, per endpoint window, each step as the job runs it:

1. fire: the window stage merges the window's pending partials (``WindowAggregate.merge_bytes``;
   beside it ``merge_all`` of each partial decoded, the merge it replaced) and encodes the window;
2. crossing: the window (its aggregate's bytes) pickled once and read back once (the window stage
   to the writer, which keeps the bytes in its keyed state until its batch);
3. applications: ``monitor_window`` with the project's applications (the built-in histogram drift
   application: MLRun's numbers, the verdict, the per-feature rows) on all the windows as one
   batch of the writer (``windows_prepared``: the built-in application's numbers of the batch in
   one pass); beside it, one window at a time;
4. writer: ``StoreWriter.write_many`` of all the windows as one batch (SQLite TSDB and SQL store).

Prints the median over ``--repeats`` of ms per endpoint window. ``--worker-gc``: the cyclic
collector as the job's Python worker sets it (``operators.parse.ParseRecords.open``), not
CPython's defaults, under which its full collections walk the catalog and the windows' records.
"""
from __future__ import annotations

import argparse
import gc
import pickle
import statistics
import tempfile
import time
import types

from streamdrift.connectors import job_io
from streamdrift.udfs.batch import aggregate_records
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.monitor import monitor_window, windows_prepared
from streamdrift.udfs.window import WindowAggregate
from tests.benchmarks.bench_job import register_endpoints, serialise_events

START_MS = 1_764_158_400_000
WINDOW_MS = 60_000


def endpoint_partials(endpoints: int, rows: int, rows_per_partial: int):
    """(store settings, catalog, endpoint id → its window's partials as bytes) of ``endpoints``
    endpoints registered in new SQLite stores, with ``rows`` rows each in one window, aggregated
    in batches of ``endpoints x rows_per_partial`` records (as the parse stage does)."""
    tmp = tempfile.mkdtemp(prefix="bench-endpoint-window-")
    settings = types.SimpleNamespace(endpoint_store_connection=f"sqlite:///{tmp}/store.sqlite",
                                     tsdb_connection=f"sqlite:///{tmp}/tsdb.sqlite")
    ids = register_endpoints(settings, "bench", endpoints, sample_size=0)
    records = job_io.load_endpoints(settings.endpoint_store_connection)
    catalog = EndpointCatalog(lambda: records)
    payloads = serialise_events(ids, endpoints * rows, 1, START_MS)
    parts: dict[str, list[bytes]] = {}
    step = endpoints * rows_per_partial
    for lo in range(0, len(payloads), step):
        for partial in aggregate_records(payloads[lo:lo + step], catalog, WINDOW_MS, 0).partials:
            parts.setdefault(partial.endpoint_id, []).append(partial.aggregate.to_bytes())
    return settings, catalog, parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--rows", type=int, default=33, help="rows per endpoint window (10,000 endpoints, "
                        "1,000,000 events, 3 windows: 33)")
    parser.add_argument("--rows-per-partial", type=int, default=2, help="rows of each partial (a batch of "
                        "20,000 records over 10,000 endpoints: 2)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker-gc", action="store_true", help="gc.freeze() after the setup and the young "
                        "generation collected every 50,000 allocations, as in the job's Python worker")
    args = parser.parse_args(argv)
    settings, catalog, parts = endpoint_partials(args.endpoints, args.rows, args.rows_per_partial)
    apps = job_io.load_applications(settings.endpoint_store_connection, "bench")
    writer = job_io.StoreWriter(settings.tsdb_connection, settings.endpoint_store_connection)
    layouts = catalog.layout_by_fingerprint

    def fire():
        return {k: WindowAggregate.merge_bytes(p, layouts, "drop").to_bytes() for k, p in parts.items()}

    def fire_decoding_each():
        return {k: WindowAggregate.merge_all([WindowAggregate.from_bytes(b, layouts, "drop") for b in p]).to_bytes()
                for k, p in parts.items()}

    def crossing(fired):
        return [pickle.loads(pickle.dumps((k, START_MS, START_MS + WINDOW_MS, 0, body, None),
                                          protocol=pickle.HIGHEST_PROTOCOL)) for k, body in fired.items()]

    def applications_one_at_a_time(windows):
        return [monitor_window(catalog.record(w[0]), w[0], "bench", w[1], w[2], WindowAggregate.from_bytes(w[4], layouts),
                               apps) for w in windows]

    def applications(windows):
        aggs = [WindowAggregate.from_bytes(w[4], layouts) for w in windows]
        with windows_prepared(apps, [(catalog.record(w[0]), agg) for w, agg in zip(windows, aggs)]):
            return [monitor_window(catalog.record(w[0]), w[0], "bench", w[1], w[2], agg, apps)
                    for w, agg in zip(windows, aggs)]

    if args.worker_gc:
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    times: dict[str, list[float]] = {}

    def timed(name, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        times.setdefault(name, []).append((time.perf_counter() - t) / len(parts) * 1e3)
        return out

    for _ in range(args.repeats):
        timed("fire, beside: merge_all of each partial decoded", fire_decoding_each)
        fired = timed("fire: merge_bytes of the pending partials", fire)
        windows = timed("crossing (pickle, once)", crossing, fired)
        timed("applications, beside: one window at a time", applications_one_at_a_time, windows)
        outs = timed("applications (the writer's batch)", applications, windows)
        timed("writer (one batch, SQLite stores)", writer.write_many, outs)
    writer.close()
    sizes = [len(p) for p in parts.values()]
    collector = "the worker's" if args.worker_gc else "CPython's defaults"
    print(f"{args.endpoints:,} endpoints x 20 features, {args.rows} rows per window in partials of "
          f"{args.rows_per_partial} rows ({statistics.median(sizes):.0f} partials per window); "
          f"median of {args.repeats}, ms per endpoint window; collector: {collector}")
    print(f"| {'step':<50} | {'ms':>7} |")
    print(f"|{'-' * 52}|{'-' * 9}|")
    total = 0.0
    for name, values in times.items():
        ms = statistics.median(values)
        if ", beside" not in name:
            total += ms
        print(f"| {name:<50} | {ms:7.3f} |")
    print(f"| {'total (without the merge beside)':<50} | {total:7.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
