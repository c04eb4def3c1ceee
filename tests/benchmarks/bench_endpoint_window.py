"""The Python work of one endpoint window, offline (no Flink): its events counted into partials
by the parse stage, and what 10,000 endpoints closing a window together cost the job after that.

    .venv/bin/python -m tests.benchmarks.bench_endpoint_window                  # 200 endpoints, 33 rows per window
    .venv/bin/python -m tests.benchmarks.bench_endpoint_window --rows 100 --rows-per-partial 5

Endpoints registered as the job benchmarks register them (20 normal features, bulk, SQLite), events
as they produce them; the events of one window are aggregated in batches of ``endpoints x
rows-per-partial`` records, as the parse stage does with many endpoints, so each endpoint's window
gets its partials of a few rows each. Then, per endpoint window, each step as the job runs it:

0. parse stage: the window's events counted into partials in those batches, encoded and packed per
   group of endpoints (``parse_stage``: ``ParseRecords.eval`` without PyFlink's conversions; the
   events' JSON read included, the raw rows' columns for Parquet and the window stage's handling
   of each partial not);
   beside it, the window stage's own Python for the window (``window_stage``: each partial into
   its state, the pending ones merged every 16 and the last three as they come, then the firing;
   PyFlink's state a dict, so without its cache and commits);
1. fire: the window stage merges the window's pending partials (``WindowAggregate.merge_bytes``;
   beside it ``merge_all`` of each partial decoded, the merge it replaced) and encodes the window;
2. crossing: the window (its aggregate's bytes) pickled once and read back once (the window stage
   to the writer, which keeps the bytes in its keyed state until its batch);
3. applications: ``monitor_window`` with the project's applications (the built-in histogram drift
   application: MLRun's numbers, the verdict, the per-feature rows) on all the windows as one
   batch of the writer (``windows_prepared``: the built-in application's numbers of the batch in
   one pass); beside it, one window at a time;
4. writer: ``StoreWriter.write_many`` of all the windows as one batch (SQLite TSDB and SQL store);
   each repeat writes the next minute's windows, new rows as in the job.

``--steps``: beside these, the applications and the writer split into their steps, each timed
alone: the aggregates decoded, ``prepare_windows``, ``monitor_window`` of each window; the TSDB's
checks, its rows encoded, SQLite's upserts and commit, and the SQL store's ``record_window`` (in the
job it runs on its own thread, meanwhile).

Prints the median over ``--repeats`` of ms per endpoint window. ``--worker-gc``: the cyclic
collector as the job's Python worker sets it (``operators.parse.ParseRecords.open``), not
CPython's defaults, under which its full collections walk the catalog and the windows' records.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import pickle
import shutil
import statistics
import tempfile
import time
import types

from pyflink.common import Row
from pyflink.datastream import TimeDomain

from streamdrift.connectors import job_io
from streamdrift.connectors.tsdb import tables as tsdb_tables
from streamdrift.connectors.tsdb.base import BatchChecks, encode_rows
from streamdrift.connectors.tsdb.sqlite import _upsert_rows as upsert_rows
from streamdrift.operators.windows import CLOSING_MS, EndpointWindows, PartialRow, pack_partials
from streamdrift.udfs.batch import aggregate_records
from streamdrift.udfs.catalog import EndpointCatalog
from streamdrift.udfs.columnar import ColumnarReader
from streamdrift.udfs.endpoint_id import endpoint_group
from streamdrift.udfs.monitor import monitor_window, windows_prepared
from streamdrift.udfs.window import WindowAggregate, encode_aggregates
from tests.benchmarks.bench_job import register_endpoints, serialise_events

START_MS = 1_764_158_400_000
WINDOW_MS = 60_000


def endpoint_partials(endpoints: int, rows: int, rows_per_partial: int, drifted: float = 0.0):
    """(store settings, catalog, endpoint id → its window's partials as bytes, the events as JSON
    bytes) of ``endpoints`` endpoints registered in new SQLite stores, with ``rows`` rows each in
    one window, aggregated in batches of ``endpoints x rows_per_partial`` records (as the parse
    stage does). ``drifted``:
    the share of endpoints (every k-th) whose first four features are shifted by 0.5, 1, 2 and 4
    standard deviations, so that their verdicts reject columns (the events otherwise follow the
    reference)."""
    tmp = tempfile.mkdtemp(prefix="bench-endpoint-window-")
    atexit.register(shutil.rmtree, tmp, True)  # the stores: ~370 MB at 2,000 endpoints, GBs at 10,000
    settings = types.SimpleNamespace(endpoint_store_connection=f"sqlite:///{tmp}/store.sqlite",
                                     tsdb_connection=f"sqlite:///{tmp}/tsdb.sqlite")
    ids = register_endpoints(settings, "bench", endpoints, sample_size=0)
    records = job_io.load_endpoints(settings.endpoint_store_connection)
    catalog = EndpointCatalog(lambda: records)
    payloads = serialise_events(ids, endpoints * rows, 1, START_MS)
    if drifted > 0:
        every = max(1, round(1 / drifted))
        shifted = set(ids[::every])
        for i, payload in enumerate(payloads):
            event = json.loads(payload)
            if event["endpoint_id"] in shifted:
                event["inputs"] = [[x + s for x, s in zip(row, (0.5, 1.0, 2.0, 4.0))] + row[4:]
                                   for row in event["inputs"]]
                payloads[i] = json.dumps(event).encode()
    return settings, catalog, parse_stage(payloads, catalog, endpoints * rows_per_partial), payloads


def parse_stage(payloads: list[bytes], catalog, batch: int) -> dict[str, list[bytes]]:
    """Endpoint id → its partials (bytes) of ``payloads`` read in batches of ``batch`` records, as
    the parse stage makes them (``operators.parse.ParseRecords.eval``): each batch's records
    counted into one partial per endpoint and window, the partials encoded in one pass, packed into
    one body per group of endpoints (the window stage's key). Left out: the time bounds, the late
    flags of the event clock, the window starts and the raw rows' columns of the stage's DataFrame,
    and PyFlink's conversion of that DataFrame to Arrow (its partial bytes are the same)."""
    parts: dict[str, list[bytes]] = {}
    reader = ColumnarReader()  # one for all batches, as the stage keeps one (it keeps each reference's plan)
    for lo in range(0, len(payloads), batch):
        partials = aggregate_records(payloads[lo:lo + batch], catalog, WINDOW_MS, 0, reader).partials
        groups: dict[str, list[PartialRow]] = {}
        for p, data in zip(partials, encode_aggregates([p.aggregate for p in partials])):
            parts.setdefault(p.endpoint_id, []).append(data)
            groups.setdefault(endpoint_group(p.endpoint_id), []).append(
                PartialRow(p.endpoint_id, p.window_start, bool(p.late), data))
        for rows in groups.values():
            pack_partials(rows)
    return parts


class _DictMapState(dict):
    """PyFlink's map state as a dict (the window stage's own Python only: no state cache, no
    commit to the JVM at a bundle's end)."""

    def put(self, key, value):
        self[key] = value

    def remove(self, key):
        self.pop(key, None)


class _NoState:
    """PyFlink's value state, empty (no window has left the window stage's state yet)."""

    def value(self):
        return None


class _Timers:
    """The timer service of one watermark and processing time; registrations only counted."""

    def __init__(self, watermark: int):
        self.watermark = watermark
        self.registered = 0

    def current_watermark(self) -> int:
        return self.watermark

    def current_processing_time(self) -> int:
        return 0

    def register_event_time_timer(self, timestamp: int) -> None:
        self.registered += 1

    register_processing_time_timer = register_event_time_timer


class _Context:
    def __init__(self, timers: _Timers):
        self.timers, self.key = timers, None

    def timer_service(self) -> _Timers:
        return self.timers

    def get_current_key(self) -> str:
        return self.key

    def time_domain(self):
        return TimeDomain.EVENT_TIME


class _NoCounter:
    def inc(self, n: int = 1) -> None:
        pass


def window_batches(parts: dict[str, list[bytes]]) -> list[list[tuple[str, str, bytes]]]:
    """The window stage's input rows of ``parts``, batch by batch as the parse stage sends them:
    batch i holds the i-th partial of every endpoint, one row (group, one of its endpoint ids, its
    partials packed) per group of endpoints."""
    batches: list[dict[str, list[PartialRow]]] = []
    for endpoint_id, data in parts.items():
        for i, body in enumerate(data):
            if i == len(batches):
                batches.append({})
            row = PartialRow(endpoint_id, START_MS, False, body)
            batches[i].setdefault(endpoint_group(endpoint_id), []).append(row)
    return [[(group, rows[0].endpoint_id, pack_partials(rows)) for group, rows in batch.items()] for batch in batches]


def window_stage(batches: list[list[tuple[str, str, bytes]]], catalog, closing: int = 3,
                 max_disorder_ms: int = 5_000) -> tuple[int, int]:
    """The window stage's own Python for one window of every endpoint: the rows of ``batches``
    (:func:`window_batches`) are fed through ``EndpointWindows.process_element``, the pending
    partials merged every ``COMPACT_EVERY``; the last ``closing`` batches come with the watermark
    in the window's last seconds (``_closing``), so that each of their partials is merged as it
    comes, as live with partials of about one row (2-3 of them then); then every group's end timer
    fires (``on_timer``: anything left merged, the window encoded). PyFlink's state is a dict per
    group (:class:`_DictMapState`): its cache and its commits to the JVM are not in it, nor the hand
    over to the writer (``WindowsToWriter``: the crossing step) or the idle timers. Returns the
    windows fired (revision 0) and the windows that failed."""
    stage = EndpointWindows(lambda: [], WINDOW_MS, 0, WINDOW_MS, max_disorder_ms=max_disorder_ms)
    # what open() sets, without a runtime context
    stage.catalog, stage.listed, stage.armed, stage.expiries = catalog, set(), set(), set()
    stage.earlier_checked = set()
    stage.late_partials = stage.corrections = stage.idle_closes = stage.batch_closes = _NoCounter()
    stage.show_counters, stage.failed_windows, stage.opened_ms = (lambda: None), 0, 0
    stage.expired, stage.earlier = _NoState(), _DictMapState()
    end = START_MS + WINDOW_MS
    timers = _Timers(end - WINDOW_MS)
    context, states = _Context(timers), {}
    for i, batch in enumerate(batches):
        if i == len(batches) - closing:
            # within the bound on disorder plus the closing lead of the window's end
            timers.watermark = end - 1 - max_disorder_ms - min(CLOSING_MS, WINDOW_MS // 4)
        for group, endpoint_id, body in batch:
            stage.state, context.key = states.setdefault(group, _DictMapState()), group
            for _ in stage.process_element((endpoint_id, START_MS, body), context):
                pass
    timers.watermark = end - 1
    fired = 0
    for group, state in states.items():
        stage.state, context.key = state, group
        fired += sum(1 for out in stage.on_timer(end - 1, context) if isinstance(out, Row) and out[3] == 0)
    return fired, stage.failed_windows

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--rows", type=int, default=33, help="rows per endpoint window (10,000 endpoints, "
                        "1,000,000 events, 3 windows: 33)")
    parser.add_argument("--rows-per-partial", type=int, default=2, help="rows of each partial (a pre-loaded "
                        "topic's batches of 20,000 records over 10,000 endpoints: 2; events in real time, "
                        "2-s batches of 5,556 a second: about 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker-gc", action="store_true", help="gc.freeze() after the setup and the young "
                        "generation collected every 50,000 allocations, as in the job's Python worker")
    parser.add_argument("--steps", action="store_true", help="also time the applications' and the writer's steps "
                        "one by one")
    args = parser.parse_args(argv)
    settings, catalog, parts, payloads = endpoint_partials(args.endpoints, args.rows, args.rows_per_partial)
    batches = window_batches(parts)
    apps = job_io.load_applications(settings.endpoint_store_connection, "bench")
    writer = job_io.StoreWriter(settings.tsdb_connection, settings.endpoint_store_connection)
    layouts = catalog.layout_by_fingerprint

    def fire():
        return {k: WindowAggregate.merge_bytes(p, layouts, "drop").to_bytes() for k, p in parts.items()}

    def fire_decoding_each():
        return {k: WindowAggregate.merge_all([WindowAggregate.from_bytes(b, layouts, "drop") for b in p]).to_bytes()
                for k, p in parts.items()}

    def crossing(fired, start_ms):
        return [pickle.loads(pickle.dumps((k, start_ms, start_ms + WINDOW_MS, 0, body, None),
                                          protocol=pickle.HIGHEST_PROTOCOL)) for k, body in fired.items()]

    def applications_one_at_a_time(windows):
        return [monitor_window(catalog.record(w[0]), w[0], "bench", w[1], w[2], WindowAggregate.from_bytes(w[4], layouts),
                               apps) for w in windows]

    def applications(windows):
        aggs = [WindowAggregate.from_bytes(w[4], layouts) for w in windows]
        with windows_prepared(apps, [(catalog.record(w[0]), agg) for w, agg in zip(windows, aggs)]):
            return [monitor_window(catalog.record(w[0]), w[0], "bench", w[1], w[2], agg, apps)
                    for w, agg in zip(windows, aggs)]

    def steps(windows, later_ms):
        # windows not written yet (as the job's are), ``later_ms`` after these: new rows, not updates
        windows = [(w[0], w[1] + later_ms, w[2] + later_ms, *w[3:]) for w in windows]
        aggs = timed("applications, beside: the aggregates decoded",
                     lambda: [WindowAggregate.from_bytes(w[4], layouts) for w in windows])
        records = [catalog.record(w[0]) for w in windows]
        prepared = windows_prepared(apps, list(zip(records, aggs)))
        timed("applications, beside: prepare_windows", prepared.__enter__)
        try:
            outs = timed("applications, beside: monitor_window of each", lambda: [
                monitor_window(r, w[0], "bench", w[1], w[2], agg, apps) for r, w, agg in zip(records, windows, aggs)])
        finally:
            prepared.__exit__(None, None, None)
        results, metrics = [r for o in outs for r in o.results], [m for o in outs for m in o.metrics]
        predictions, rows = [o.prediction for o in outs], job_io.feature_drift_items(outs)
        checks = BatchChecks()
        checked = timed("writer, beside: TSDB checks", writer.tsdb.checked_window, results, metrics, [], predictions,
                        rows, checks)
        order = (tsdb_tables.RESULTS, tsdb_tables.METRICS, tsdb_tables.ERRORS, tsdb_tables.PREDICTIONS,
                 tsdb_tables.FEATURE_DRIFT)
        encoded = timed("writer, beside: TSDB rows encoded",
                        lambda: [(t, encode_rows(t, r, checks.texts)) for t, r in zip(order, checked)])

        def upsert(conn):  # the rest of SqliteTSDB.write_window, through its own (private) steps
            for table, table_rows in encoded:
                upsert_rows(conn, table, table_rows)

        timed("writer, beside: TSDB SQLite upserts and commit", writer.tsdb._transaction, "writing windows", upsert)
        timed("writer, beside: SQL store record_window alone", writer.store.record_window, results, metrics,
              predictions, writer.verdict)

    if args.worker_gc:
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    times: dict[str, list[float]] = {}

    def timed(name, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        times.setdefault(name, []).append((time.perf_counter() - t) / len(parts) * 1e3)
        return out

    for repeat in range(args.repeats):
        timed("parse stage: the window's events into partials", parse_stage, payloads, catalog,
              args.endpoints * args.rows_per_partial)
        fired, failed = timed("window stage, beside: partials in, firing (dict state)", window_stage, batches,
                              catalog)
        if fired != len(parts) or failed:
            raise SystemExit(f"the window stage fired {fired} windows of {len(parts)} endpoints ({failed} failed)")
        timed("fire, beside: merge_all of each partial decoded", fire_decoding_each)
        fired = timed("fire: merge_bytes of the pending partials", fire)
        # each repeat's windows are new ones (the next minute), as the job's are: rows inserted, not updated
        windows = timed("crossing (pickle, once)", crossing, fired, START_MS + repeat * WINDOW_MS)
        timed("applications, beside: one window at a time", applications_one_at_a_time, windows)
        outs = timed("applications (the writer's batch)", applications, windows)
        timed("writer (one batch, SQLite stores)", writer.write_many, outs)
        if args.steps:
            steps(windows, (repeat + 1) * 1000 * WINDOW_MS)
    writer.close()
    sizes = [len(p) for p in parts.values()]
    collector = "the worker's" if args.worker_gc else "CPython's defaults"
    print(f"{args.endpoints:,} endpoints x 20 features, {args.rows} rows per window in partials of "
          f"{args.rows_per_partial} rows ({statistics.median(sizes):.0f} partials per window); "
          f"median of {args.repeats}, ms per endpoint window; collector: {collector}")
    print(f"| {'step':<56} | {'ms':>7} |")
    print(f"|{'-' * 58}|{'-' * 9}|")
    total = 0.0
    for name, values in times.items():
        ms = statistics.median(values)
        if ", beside" not in name:
            total += ms
        print(f"| {name:<56} | {ms:7.3f} |")
    print(f"| {'total (without the steps beside)':<56} | {total:7.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
