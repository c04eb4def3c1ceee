"""The store writer's cost per endpoint window: ``SqlStore.record_window`` and the TSDB's
``write_window`` on batches of windows shaped as the default application writes them (general_drift
and feature_drift with 20 columns of extra_data, MLRun's three metrics, the window's prediction
record, 20 per-feature rows), on the embedded SQLite stores.

    .venv/bin/python -m tests.benchmarks.bench_writer                    # 1,000 endpoints, batches of 1,000, 3 windows
    .venv/bin/python -m tests.benchmarks.bench_writer --endpoints 10000  # the scale benchmark's fleet
    .venv/bin/python -m tests.benchmarks.bench_writer --endpoints 10000 --history 1440  # a day of 1-minute windows
    .venv/bin/python -m tests.benchmarks.bench_writer --busy-thread     # beside a thread running Python

Prints the median over the windows of µs per endpoint window, per store. ``--history N`` stores N
earlier windows per endpoint first (untimed, straight into ``endpoint_windows``; the endpoints'
registration then derives their totals from them): what a job that has run for N windows writes
into. ``--busy-thread``: a thread of the same process runs Python meanwhile, as the job's other
stages and the writer's other store do in its Python worker (a write that gives up the GIL waits
for it to come back).
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import threading
import time

import sqlalchemy as sa

from streamdrift.connectors.sql_store import SqlStore, build_tables
from streamdrift.connectors.sql_store.tables import UTCDateTime
from streamdrift.connectors.tsdb import open_tsdb
from streamdrift.udfs.applications import HISTOGRAM_DATA_DRIFT
from streamdrift.udfs.records import FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

FEATURES = [f"f{i}" for i in range(20)]
UTC = dt.timezone.utc


def window_records(project: str, endpoint: str, start: dt.datetime, seed: int):
    end = start + dt.timedelta(minutes=1)
    column = {name: {"tvd": 0.01 * (i + seed % 7), "hellinger": 0.02, "kld": 0.003, "p_value": 0.4, "rejected": False,
                     "n": 2000, "N": 5000, "effect": 0.01} for i, name in enumerate(FEATURES)}
    results = [ResultRecord(project, endpoint, HISTOGRAM_DATA_DRIFT, "general_drift", 0, 0, 0.05, start, end,
                            {"columns": column}),
               ResultRecord(project, endpoint, HISTOGRAM_DATA_DRIFT, "feature_drift", 0, seed % 3, 0.0, start, end,
                            {"columns": column, "fdr": 0.01})]
    metrics = [MetricRecord(project, endpoint, HISTOGRAM_DATA_DRIFT, name, 0.01, start, end)
               for name in ("tvd_mean", "hellinger_mean", "kld_mean")]
    prediction = PredictionRecord(project, endpoint, start, end, 2000, 2000, 3, 2000, 1100.0, 1000.0, 2000.0, 3000.0,
                                  start, end - dt.timedelta(seconds=1))
    features = [FeatureDriftRecord(project, endpoint, HISTOGRAM_DATA_DRIFT, name, start, end, 0.01, 0.02, 0.003,
                                   p_value=0.4, rejected=False, effect_size=0.01, window_count=2000,
                                   reference_count=5000) for name in FEATURES]
    return results, metrics, prediction, features


def store_history(store: SqlStore, ids: list[str], before: dt.datetime, windows: int) -> None:
    """``windows`` one-minute windows per endpoint of ``ids``, the last ending at ``before``,
    written into ``endpoint_windows`` by one ``INSERT ... SELECT`` over two temporary tables (ids ×
    window times: millions of rows in seconds, no Python per row)."""
    if windows <= 0:
        return
    meta = sa.MetaData()
    ids_table = sa.Table("bench_ids", meta, sa.Column("endpoint_id", sa.String(255)), prefixes=["TEMPORARY"])
    times = sa.Table("bench_times", meta, *(sa.Column(name, UTCDateTime) for name in (
        "window_end", "window_start", "first_request", "last_request")), prefixes=["TEMPORARY"])
    w = build_tables(sa.MetaData())["endpoint_windows"]
    ends = [before - dt.timedelta(minutes=n) for n in range(windows)]
    with store.engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(ids_table.insert(), [{"endpoint_id": e} for e in ids])
        conn.execute(times.insert(), [{"window_end": end, "window_start": end - dt.timedelta(minutes=1),
                                       "first_request": end - dt.timedelta(minutes=1),
                                       "last_request": end - dt.timedelta(seconds=1)} for end in ends])
        counts = [sa.literal(2000), sa.literal(2000), sa.literal(3), sa.literal(0)]
        conn.execute(w.insert().from_select(
            ["endpoint_id", "window_end", "window_start", "rows_count", "events_count", "error_count", "late_count",
             "first_request", "last_request", "updated"],
            sa.select(ids_table.c.endpoint_id, times.c.window_end, times.c.window_start, *counts,
                      times.c.first_request, times.c.last_request, times.c.window_end)
            .select_from(ids_table.join(times, sa.true()))))
        meta.drop_all(conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000, help="windows per write (the writer's batch)")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--history", type=int, default=0,
                        help="windows already stored per endpoint before the timed ones (untimed)")
    parser.add_argument("--busy-thread", action="store_true", help="a thread running Python meanwhile")
    args = parser.parse_args(argv)
    done = threading.Event()

    def busy() -> None:
        n = 0
        while not done.is_set():
            for i in range(1_000):
                n += i

    if args.busy_thread:
        threading.Thread(target=busy, daemon=True).start()
    project = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{tmp}/store.db")
        store.create_schema()
        tsdb = open_tsdb(f"sqlite:///{tmp}/tsdb.db")
        tsdb.create_schema()
        ids = [f"{i:040x}" for i in range(args.endpoints)]
        t0 = dt.datetime(2026, 11, 29, tzinfo=UTC)
        t = time.perf_counter()
        store_history(store, ids, t0, args.history)
        store.upsert_endpoints([{"endpoint_id": e, "project": project, "model_name": f"m{e[-6:]}",
                                 "feature_names": FEATURES} for e in ids])  # derives the totals from the history
        setup = time.perf_counter() - t
        times: dict[str, list[float]] = {"SQL store record_window": [], "TSDB write_window": []}
        for w in range(args.windows):
            start = t0 + dt.timedelta(minutes=w)
            for lo in range(0, len(ids), args.batch):
                batch = [window_records(project, e, start, i) for i, e in enumerate(ids[lo:lo + args.batch])]
                results = [r for b in batch for r in b[0]]
                metrics = [m for b in batch for m in b[1]]
                predictions = [b[2] for b in batch]
                features = [f for b in batch for f in b[3]]
                t = time.perf_counter()
                store.record_window(results, metrics, predictions, (HISTOGRAM_DATA_DRIFT, "feature_drift"))
                times["SQL store record_window"].append((time.perf_counter() - t) / len(batch))
                t = time.perf_counter()
                tsdb.write_window(results, metrics, [], predictions, features)
                times["TSDB write_window"].append((time.perf_counter() - t) / len(batch))
        store.close()
        tsdb.close()
    done.set()
    print(f"{args.endpoints:,} endpoints, {args.history:,} windows of history each, {args.windows} windows timed, "
          f"batches of {args.batch:,} windows (SQLite stores; history and registration took {setup:.0f} s)"
          + ("; beside a thread running Python" if args.busy_thread else ""))
    print(f"{'write':<28} {'µs per endpoint window (median)':>32} {'min':>8} {'max':>8}")
    for name, values in times.items():
        us = [v * 1e6 for v in values]
        print(f"{name:<28} {statistics.median(us):>32.0f} {min(us):>8.0f} {max(us):>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
