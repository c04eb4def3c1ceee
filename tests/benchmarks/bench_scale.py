"""Benchmark of the monitoring job at scale (issue 18): 10,000 endpoints in one job.

Run from the project root (the local Kafka broker is started on ``STREAMDRIFT_KAFKA_PORT`` when it
is not running, never stopped)::

    .venv/bin/python -m tests.benchmarks.bench_scale                          # 10,000 endpoints x 20 features
    .venv/bin/python -m tests.benchmarks.bench_scale --endpoints 1000 --events 200000 --backends hashmap
    .venv/bin/python -m tests.benchmarks.bench_scale --live --backends hashmap   # events produced as the job runs

What it does, with the pieces of :mod:`tests.benchmarks.bench_job`:

1. registers ``--endpoints`` endpoints, each with its own reference (5,000 rows x ``--features``
   normal features), in bulk in a SQLite store (timed; the store's size is reported);
2. times the endpoint catalog offline (no Flink), as the parse stage builds it: the first load of
   every reference (store read + layouts), a refresh while nothing changed, and a full collection
   of Python's cyclic garbage collector with the catalog in its generations and frozen, as the
   job's operators keep it;
3. pre-loads a 2-partition topic with ``--events`` native events, round robin over all endpoints,
   event time in order over ``--windows`` one-minute windows (the job reads a backlog as fast as it
   can); with ``--live``, produces them while the job runs instead, at ``--rate`` events per second
   (default: in real time, ``--events`` over ``--windows`` minutes; one paced producer process per
   partition, librdkafka's client, its CPU reported), and the job reads from the offsets where this run's events begin
   to where they end;
4. runs the monitoring job (parallelism 2, bounded, checkpoints every ``--checkpoint-interval``
   seconds to files) once per state backend of ``--backends``, alternately, ``--repeats`` times,
   each in a fresh process sampled from ``/proc``; the JVM writes a GC log (heap used before and
   after each collection); the checkpoint directory is measured every second;
5. checks every row: the TSDB's ``predictions`` rows equal the events produced, and one window is
   written per endpoint and window (``endpoints x windows``);
6. latency: the window stage stamps the wall clock on each window as it fires it (``fired_ms``, the
   first firing of a window's end is the moment the watermark passed it there), the writer stamps
   it again once the stores hold the window's results, metrics, predictions and per-feature rows
   (``written_ms``); per event-time window: last written - first fired, over all endpoints, and the
   cores busy meanwhile: the Python workers', the JVM's (its GC threads apart) and the rest of the
   machine's (the producers, the broker, the kernel's interrupts), from ``/proc``.

Figures are medians over the repeats of a backend. Not collected by pytest (no ``test_`` names).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: put the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_job import (  # noqa: E402
    MB, N_FEATURES, _fmt, _job_option, _median, create_topic, delete_topics, end_offsets, produce, produce_paced,
    recent_events, register_endpoints, run_child)
from streamdrift.jobs.monitoring_job import JobOptions  # noqa: E402

LATENCY_TARGET_S = 10.0


# --------------------------------------------------------------------------- measurements


class CheckpointSampler(threading.Thread):
    """Every second: the bytes of each checkpoint (the files of each ``chk-N`` directory under
    ``directory``; full checkpoints, as the job takes them, hold all their state there) and of the
    whole directory."""

    def __init__(self, directory: Path):
        super().__init__(daemon=True)
        self.directory = directory
        self.stop_event = threading.Event()
        self.sizes: dict[int, int] = {}  # N of chk-N → largest size seen (bytes)
        self.completed: set[int] = set()  # chk-N seen with its _metadata (complete)
        self.total_peak = 0

    def sample(self) -> None:
        total = 0
        for root, _, files in os.walk(self.directory):
            size = 0
            for name in files:
                try:
                    size += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
            total += size
            chk = next((part for part in Path(root).relative_to(self.directory).parts if part.startswith("chk-")), None)
            if chk is not None:
                n = int(chk[4:])
                self.sizes[n] = self.sizes.get(n, 0) + size
                if "_metadata" in files:
                    self.completed.add(n)
        self.total_peak = max(self.total_peak, total)

    def run(self) -> None:
        while not self.stop_event.is_set():
            before, self.sizes = self.sizes, {}
            self.sample()
            self.sizes = {n: max(self.sizes.get(n, 0), before.get(n, 0)) for n in set(before) | set(self.sizes)}
            self.stop_event.wait(1.0)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()

    def summary(self) -> dict:
        sizes = [self.sizes[n] for n in sorted(self.completed) if n in self.sizes]
        return {"checkpoints": len(sizes), "max_bytes": max(sizes) if sizes else None,
                "last_bytes": sizes[-1] if sizes else None, "dir_peak_bytes": self.total_peak}


_GC_LINE = re.compile(r"\[([\d.]+)s\].*GC\(\d+\) (Pause \w+).* (\d+)M->(\d+)M\((\d+)M\)")


def heap_from_gc_log(path: Path) -> dict:
    """Peak heap used (before a collection), peak live heap (after one) and the last full
    collection's result, in MiB, from a JVM's ``-Xlog:gc`` file."""
    before, after, full_after, committed, pauses = [], [], [], [], 0
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    for m in _GC_LINE.finditer(text):
        pauses += 1
        before.append(int(m.group(3)))
        after.append(int(m.group(4)))
        committed.append(int(m.group(5)))
        if m.group(2) == "Pause Full":
            full_after.append(int(m.group(4)))
    if not before:
        return {}
    return {"used_peak_mb": max(before), "live_peak_mb": max(after), "full_gc_live_max_mb": max(full_after or [0]),
            "committed_peak_mb": max(committed), "collections": pauses}


def catalog_timings(store_url: str) -> dict:
    """Seconds to build the endpoint catalog the parse stage builds at its first batch (the store
    read of every reference and one layout per endpoint), of a refresh while nothing changed
    (one query of the store's endpoints version), and of a full collection of Python's cyclic
    collector with the catalog in its generations (``full_collection_s``) and frozen, as the job's
    stages keep it (``full_collection_frozen_s``). Run in a fresh process, offline."""
    import tracemalloc

    from streamdrift.connectors import job_io, sql_store  # noqa: F401 - imported before the clock starts
    from streamdrift.udfs.catalog import EndpointCatalog

    sql_store.SqlStore(store_url).endpoints_version()  # the driver's first connection, apart
    tracemalloc.start()
    t0 = time.perf_counter()
    records = job_io.load_endpoints(store_url)
    t_load = time.perf_counter() - t0
    catalog = EndpointCatalog(lambda: job_io.load_endpoints(store_url))
    t0 = time.perf_counter()
    catalog.refresh(force=True)  # the records come from the cache now: the layouts only
    t_layouts = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    refreshes = []
    for _ in range(5):
        t0 = time.perf_counter()
        catalog.refresh(force=True)
        refreshes.append(time.perf_counter() - t0)
    # a full collection of the cyclic collector with the catalog in its generations, then frozen
    # as the job's operators keep it (operators.catalog); each the median of 3
    full_collections = {}
    for name in ("walked", "frozen"):
        if name == "frozen":
            gc.freeze()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            gc.collect()
            times.append(time.perf_counter() - t0)
        full_collections[name] = statistics.median(times)
    return {"endpoints": len(records), "load_s": t_load, "layouts_s": t_layouts,
            "refresh_unchanged_s": statistics.median(refreshes), "python_mb": peak / MB,
            "full_collection_s": full_collections["walked"], "full_collection_frozen_s": full_collections["frozen"]}


def _catalog_in_child(store_url: str, out: Path) -> None:
    import json
    import subprocess

    code = ("import json, sys; from tests.benchmarks.bench_scale import catalog_timings; "
            f"json.dump(catalog_timings({store_url!r}), open({str(out)!r}, 'w'))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    return json.loads(out.read_text())


def window_latencies(stamp_dir: Path) -> list[dict]:
    """Per event-time window, from the summary stamps (bench_job's StampWindows): windows written,
    the first and last firing, the last write (epoch s), and last write - first firing."""
    by_window: dict[int, list[tuple[float, float]]] = {}
    for f in stamp_dir.glob("stamps-*"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] != "None":
                by_window.setdefault(int(parts[1]), []).append((int(parts[2]) / 1000, int(parts[3]) / 1000))
    out = []
    for start, stamps in sorted(by_window.items()):
        fired = [f for f, _ in stamps]
        written = [w for _, w in stamps]
        out.append({"window_start": start, "windows": len(stamps), "first_fired": min(fired),
                    "last_fired": max(fired), "last_written": max(written),
                    "latency_s": max(written) - min(fired), "firing_s": max(fired) - min(fired),
                    "max_window_s": max(w - f for f, w in stamps)})
    return out


def staggered_windows(payloads: list[bytes], window_ms: int = 60_000) -> int:
    """Endpoint windows the events fall in when each endpoint's windows start at its offset
    (``--stagger-windows``: window × g / 256 for g the first byte of the MD5 of its id)."""
    events = [json.loads(p) for p in payloads]
    offset = {e: int(hashlib.md5(e.encode()).hexdigest()[:2], 16) * window_ms // 256
              for e in {ev["endpoint_id"] for ev in events}}
    return len({(ev["endpoint_id"], ev["timestamp"] - (ev["timestamp"] - offset[ev["endpoint_id"]]) % window_ms)
                for ev in events})


def by_minute(latencies: list[dict]) -> list[dict]:
    """The event-time windows of each minute (windows that start in it; with ``--stagger-windows``
    one per group of endpoints and offset): how many, their endpoint windows, the longest and the
    median of their first firing → last written, and the longest single window."""
    minutes: dict[int, list[dict]] = {}
    for w in latencies:
        minutes.setdefault(w["window_start"] // 60_000, []).append(w)
    return [{"minute": k, "starts": len(ws), "windows": sum(w["windows"] for w in ws),
             "worst_s": max(w["latency_s"] for w in ws), "median_s": statistics.median(w["latency_s"] for w in ws),
             "max_window_s": max(w["max_window_s"] for w in ws)} for k, ws in sorted(minutes.items())]


STARTUP_S = 30.0


def by_phase(latencies: list[dict], first_record_s: float | None, input_end_s: float | None) -> dict[str, dict]:
    """The event-time windows by when they first fired (epoch s): in the job's first
    :data:`STARTUP_S` seconds after its Python workers opened (``first_record_s``: the first call
    of the endpoint loader; catalog loads, the backlog of the job's start), after the input ended (a bounded input's end fires every open window at once), or
    while the events flowed; per phase how many, their endpoint windows, the median and longest
    first firing → last written, and from the phase's first firing to its last write (``span_s``:
    at the end of the input, an upper bound of its latency: some of them fired at their own time)."""
    phases: dict[str, list[dict]] = {"the job's first 30 s": [], "while the events flow": [],
                                      "at the end of the input": []}
    for w in latencies:
        if first_record_s is not None and w["first_fired"] < first_record_s + STARTUP_S:
            phase = "the job's first 30 s"
        elif input_end_s is not None and w["first_fired"] > input_end_s:
            phase = "at the end of the input"
        else:
            phase = "while the events flow"
        phases[phase].append(w)
    return {k: {"windows": len(v), "endpoint_windows": sum(w["windows"] for w in v),
                "median_s": statistics.median(w["latency_s"] for w in v), "longest_s": max(w["latency_s"] for w in v),
                "span_s": max(w["last_written"] for w in v) - min(w["first_fired"] for w in v)}
            for k, v in phases.items() if v}


def fired_by_the_end(latencies: list[dict], last_event_ms: int, max_disorder_ms: int,
                     window_ms: int = 60_000) -> dict | None:
    """The event-time windows that only the input's end fired: their end is beyond the events' last
    watermark (the latest event time less ``max_disorder_ms``), so the watermark of the input's
    end passed all their ends at once. How many, their endpoint windows, and from the first of them
    firing to the last write (``span_s``: their latency). None when there are none."""
    last_watermark = last_event_ms - max_disorder_ms
    # the window stage fires a window when the watermark reaches its end - 1
    mine = [w for w in latencies if w["window_start"] + window_ms - 1 > last_watermark]
    if not mine:
        return None
    return {"windows": len(mine), "endpoint_windows": sum(w["windows"] for w in mine),
            "span_s": max(w["last_written"] for w in mine) - min(w["first_fired"] for w in mine)}


def first_load_seconds(stamp_dir: Path) -> float | None:
    """The longest first call of the endpoint loader in a Python worker process (bench_job stamps
    each call's start and duration): the parse stage's first catalog load in the job."""
    firsts = []
    for f in stamp_dir.glob("load-*"):
        calls = [line.split() for line in f.read_text().splitlines() if line.strip()]
        if calls and len(calls[0]) > 1:
            firsts.append(float(min(calls)[1]))
    return max(firsts) if firsts else None


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=N_FEATURES)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=3, help="one-minute windows the event time spans")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs per state backend (medians)")
    parser.add_argument("--backends", default="hashmap,rocksdb", help="state backends, comma separated")
    parser.add_argument("--checkpoint-interval", type=float, default=10.0, help="seconds between checkpoints")
    parser.add_argument("--reference-sample", type=int, default=1_000,
                        help="rows of each reference kept in the store (the job does not read them)")
    parser.add_argument("--jvm-args", default="-Xmx2g", help="JVM options of the job's JVM (default -Xmx2g)")
    parser.add_argument("--store", default=None, help="an endpoint store (SQLite file) registered by an earlier "
                        "run (--keep): its endpoints and project are used, registration is skipped")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory and topics")
    parser.add_argument("--live", action="store_true", help="produce the events while the job runs, at --rate, "
                        "instead of pre-loading the topic")
    parser.add_argument("--rate", type=float, default=None, help="events/s produced with --live (default: in real "
                        "time, --events over --windows minutes)")
    parser.add_argument("--option", action="append", default=[], type=_job_option, metavar="NAME=VALUE",
                        help="a JobOptions field of the job, e.g. arrow_batch_size=100000 (repeatable)")
    args = parser.parse_args(argv)
    if args.rate is not None and not (args.live and args.rate > 0):
        parser.error("--rate takes a number of events per second above 0, with --live")

    from streamdrift.connectors.local_services import Kafka
    from streamdrift.connectors.settings import kafka_bootstrap, load_settings, topic_names
    from streamdrift.connectors.tsdb import open_tsdb

    kafka = Kafka()
    kafka.start()  # idempotent: returns at once when the broker already answers
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    project = f"scale{random.randrange(16 ** 6):06x}"
    reused = None
    if args.store:
        from streamdrift.connectors.sql_store import SqlStore

        reused = SqlStore(f"sqlite:///{Path(args.store).resolve()}")
        endpoints = reused.list_endpoints(with_stats=False)
        project = endpoints[0].project
        args.endpoints = len(endpoints)
    cli = {"data_dir": str(tmp), "project": project, "stream_path": f"kafka://127.0.0.1:{kafka.port}",
           "base_period": 1, **({"endpoint_store_connection": reused.url} if reused else {})}
    settings = load_settings(cli, env={})
    bootstrap = kafka_bootstrap(settings.stream_path)
    topic = topic_names(project)["events"]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    expected_windows = args.endpoints * args.windows
    print(f"bench_scale: {args.events:,} events, {args.endpoints:,} endpoints x {args.features} features, "
          f"{args.windows} windows, parallelism {args.parallelism}, backends {backends} x {args.repeats}; "
          f"{os.cpu_count()} cores, load average {load_average()}; project {project}, data {tmp}", flush=True)
    try:
        t0 = time.perf_counter()
        if reused is None:
            ids = register_endpoints(settings, project, args.endpoints, features=args.features,
                                     sample_size=args.reference_sample)
        else:
            ids = [e.endpoint_id for e in endpoints]
        t_register = time.perf_counter() - t0
        store_file = Path(settings.endpoint_store_connection.removeprefix("sqlite:///"))
        store_bytes = store_file.stat().st_size if store_file.exists() else None
        print(f"registered {len(ids):,} endpoints in {t_register:.1f} s ({t_register / len(ids) * 1e3:.1f} ms each); "
              f"store {_fmt(store_bytes and store_bytes / MB, ',.0f')} MiB", flush=True)
        catalog = _catalog_in_child(settings.endpoint_store_connection, tmp / "catalog.json")
        print(f"catalog: {catalog}", flush=True)

        payloads, t_serialise, size = recent_events(ids, args.events, args.windows, args.features)
        last_event_ms = max(json.loads(p)["timestamp"] for p in payloads)
        if not isinstance(dict(args.option).get("stagger_windows", False), bool):
            parser.error("--option stagger_windows takes true or false")
        if dict(args.option).get("stagger_windows") is True:  # NAME=VALUE values are read as JSON
            expected_windows = staggered_windows(payloads)
            print(f"staggered windows: the events fall in {expected_windows:,} endpoint windows", flush=True)
        create_topic(bootstrap, topic)
        rate = (args.rate or args.events / (args.windows * 60)) if args.live else None
        if rate is None:
            t_produce = produce(bootstrap, topic, payloads)
            del payloads
            print(f"serialised {args.events:,} events ({size / MB:,.0f} MiB) in {t_serialise:.1f} s; produced in "
                  f"{t_produce:.1f} s", flush=True)
        else:
            print(f"serialised {args.events:,} events ({size / MB:,.0f} MiB) in {t_serialise:.1f} s; each run "
                  f"produces them as it runs, at {rate:,.0f} events/s", flush=True)

        runs: list[dict] = []
        for r in range(args.repeats):
            for backend in backends:
                name = f"{backend}-{r}"
                s = dataclasses.replace(settings, tsdb_connection=f"sqlite:///{tmp / f'tsdb-{name}.sqlite'}",
                                        parquet_path=str(tmp / f"parquet-{name}"))
                checkpoints = tmp / "checkpoints" / name
                checkpoints.mkdir(parents=True)
                gc_log = tmp / f"gc-{name}.log"
                options = {"parallelism": args.parallelism, "bounded": True,
                           "checkpoint_interval_ms": int(args.checkpoint_interval * 1000), "state_backend": backend,
                           "group_id": f"bench-{name}-{project}", "checkpoint_dir": checkpoints.as_uri(),
                           **dict(args.option)}
                spec = {"kind": "monitor", "name": name, "settings": dataclasses.asdict(s), "options": options,
                        "worker_mode": "process", "jvm_args": f"{args.jvm_args} -Xlog:gc:file={gc_log}".strip()}
                producers = []
                if rate is not None:
                    start = end_offsets(bootstrap, topic)
                    spec["kafka_offsets"] = {"start": start, "stop": {p: o + len(payloads[p::2])
                                                                      for p, o in start.items()}}
                print(f"running the job, {backend}, repeat {r + 1}/{args.repeats} (load average {load_average()}) ...",
                      flush=True)
                watcher = None
                if rate is not None:  # from the job's start: its first seconds read a backlog
                    producers = produce_paced(bootstrap, topic, payloads, rate, tmp)  # forked before the sampler's thread
                    watcher = ProducerWatcher(producers, bootstrap, topic, spec["kafka_offsets"]["stop"])
                    watcher.start()
                sampler = CheckpointSampler(checkpoints)
                sampler.start()
                try:
                    res = run_child(spec, tmp)
                except BaseException:
                    for proc in producers:
                        proc.terminate()
                    if watcher is not None and watcher.problem:
                        raise RuntimeError(f"the producers failed: {watcher.problem}") from None
                    raise
                finally:
                    sampler.stop()
                    for proc in producers:
                        proc.join()
                if producers:
                    watcher.join()
                    if watcher.problem:
                        raise RuntimeError(f"the producers failed: {watcher.problem}")
                    res["producer"] = _producer_figures(tmp, len(producers))
                preds = open_tsdb(s.tsdb_connection).query_predictions(project)
                res.update(backend=backend, load=load_average(), rows_in_tsdb=sum(p.count for p in preds),
                           tsdb_windows=len(preds), checkpoint=sampler.summary(), heap=heap_from_gc_log(gc_log),
                           latencies=window_latencies(tmp / f"stamps-{name}"),
                           parquet_bytes=dir_size(Path(s.parquet_path)),
                           first_load_s=first_load_seconds(tmp / f"stamps-{name}"))
                cores = res.pop("cores_between")
                for w in res["latencies"]:
                    w["cores"] = cores(w["first_fired"], w["last_written"])
                if res.get("producer") and res["latencies"]:
                    # the end of the input: from the producers' end to the last write
                    res["end_cores"] = cores(res["producer"]["end"], max(w["last_written"] for w in res["latencies"]))
                disorder = dict(args.option).get("max_disorder_ms", JobOptions().max_disorder_ms)
                res["by_the_end"] = fired_by_the_end(res["latencies"], last_event_ms, disorder)
                runs.append(res)
                _print_run(res, args)

        # ------------------------------------------------------------------ tables
        print(f"\nScale, {args.events:,} events over {args.endpoints:,} endpoints x {args.features} features, "
              f"{args.windows} windows (medians over {args.repeats} runs per backend; load average now "
              f"{load_average()}):\n")
        print(f"registration: {t_register:.1f} s for {len(ids):,} endpoints ({t_register / len(ids) * 1e3:.1f} ms "
              f"each); SQLite store {_fmt(store_bytes and store_bytes / MB, ',.0f')} MiB "
              f"(reference samples of {args.reference_sample} rows)")
        print(f"catalog (offline): first load {catalog['load_s']:.2f} s (store read) + {catalog['layouts_s']:.2f} s "
              f"(layouts), refresh while nothing changed {catalog['refresh_unchanged_s'] * 1e3:.1f} ms; "
              f"Python memory {catalog['python_mb']:,.0f} MiB; a full collection of Python's cyclic collector "
              f"{catalog['full_collection_s']:.2f} s with the catalog in its generations, "
              f"{catalog['full_collection_frozen_s'] * 1e6:,.0f} µs with it frozen as the job keeps it")
        head = (f"| backend | events/s | CPU µs/event JVM / Python | rows counted | windows written | "
                f"latency s (worst window) | checkpoint MiB (max) | JVM heap used / live peak MiB | JVM RSS MiB | "
                f"Python workers RSS MiB (sum, #) | in-job first catalog load s |")
        print("\n" + head)
        print("|" + "---|" * (head.count("|") - 1))
        ok = True
        for backend in backends:
            mine = [r for r in runs if r["backend"] == backend]
            rate = _median([args.events / (r["last_window_s"] - r["first_record_s"]) for r in mine
                            if r.get("last_window_s") and r.get("first_record_s") is not None])
            jvm = _median([r["steady_cpu"][0] * 1e6 / args.events for r in mine if r.get("steady_cpu")])
            py = _median([r["steady_cpu"][1] * 1e6 / args.events for r in mine if r.get("steady_cpu")])
            rows_ok = all(r["rows_in_tsdb"] == args.events for r in mine)
            wins_ok = all(r["tsdb_windows"] == expected_windows and r["windows_written"] == expected_windows
                          for r in mine)
            ok &= rows_ok and wins_ok
            worst = _median([max((w["latency_s"] for w in r["latencies"]), default=None) for r in mine])
            ckpt = _median([r["checkpoint"]["max_bytes"] for r in mine])
            used = _median([r["heap"].get("used_peak_mb") for r in mine])
            live = _median([r["heap"].get("live_peak_mb") for r in mine])
            loads = _median([r.get("first_load_s") for r in mine])
            rows_seen = ", ".join(format(r["rows_in_tsdb"], ",") for r in mine)
            windows_seen = ", ".join(format(r["tsdb_windows"], ",") for r in mine)
            print(f"| {backend} | {_fmt(rate, ',.0f')} | {_fmt(jvm)} / {_fmt(py)} | "
                  f"{'all' if rows_ok else 'MISMATCH'} ({rows_seen}) | "
                  f"{'all' if wins_ok else 'MISMATCH'} ({windows_seen}) | "
                  f"{_fmt(worst)} | {_fmt(ckpt and ckpt / MB)} | {_fmt(used, ',.0f')} / {_fmt(live, ',.0f')} | "
                  f"{_fmt(_median([r['jvm_peak'] / MB for r in mine]), ',.0f')} | "
                  f"{_fmt(_median([r['py_sum_peak'] / MB for r in mine]), ',.0f')} "
                  f"({max(r['py_workers'] for r in mine)}) | {_fmt(loads, '.2f')} |")
        print(f"\nlatency target {LATENCY_TARGET_S:.0f} s: from the first firing of an event-time window (the watermark "
              f"passing its end at the window stage) to the last of its {args.endpoints:,} endpoints' records written")
        print("all rows counted: " + ("OK" if ok else "MISMATCH"))
        return 0 if ok else 1
    finally:
        if not args.keep:
            delete_topics(bootstrap, [topic, topic_names(project)["dead_letters"]])
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} and topic {topic}")


class ProducerWatcher(threading.Thread):
    """Waits for the paced producers; if one failed, or the topic does not end at the offsets the
    job stops at, stops the job (its process, a child of this one), which would wait for them for
    ever, and keeps the reason in ``problem``."""

    def __init__(self, producers: list, bootstrap: str, topic: str, stop: dict):
        super().__init__(daemon=True)
        self.producers, self.bootstrap, self.topic, self.stop = producers, bootstrap, topic, stop
        self.problem: str | None = None

    def run(self) -> None:
        for proc in self.producers:
            proc.join()
        codes = [proc.exitcode for proc in self.producers]
        if any(code != 0 for code in codes):
            self.problem = f"exit codes {codes}"
        else:
            ends = end_offsets(self.bootstrap, self.topic)
            if ends != {int(p): o for p, o in self.stop.items()}:
                self.problem = f"the topic ends at offsets {ends}, the job stops at {self.stop}"
        if self.problem:
            for pid in _job_children():
                os.kill(pid, signal.SIGTERM)


def _job_children() -> list[int]:
    """The job processes this process started (``bench_job --child``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"--child" in args and b"tests.benchmarks.bench_job" in args:
            found.append(int(entry))
    return found


def _producer_figures(directory: Path, partitions: int) -> dict:
    """The paced producers' events/s (events / (last end - first start)) and CPU µs per event."""
    rows = [[float(x) for x in (directory / f"produced-{p}.txt").read_text().split()] for p in range(partitions)]
    events = sum(r[3] for r in rows)
    return {"events_per_s": events / (max(r[1] for r in rows) - min(r[0] for r in rows)),
            "cpu_us_per_event": sum(r[2] for r in rows) * 1e6 / events, "start": min(r[0] for r in rows),
            "end": max(r[1] for r in rows)}


def _print_run(res: dict, args) -> None:
    """One run's figures, as they come."""
    if res.get("producer"):
        print(f"  produced while the job ran: {res['producer']['events_per_s']:,.0f} events/s, producers' CPU "
              f"{res['producer']['cpu_us_per_event']:.1f} µs/event", flush=True)
    busy = (res["last_window_s"] - res["first_record_s"]) if res.get("last_window_s") and \
        res.get("first_record_s") is not None else None
    cpu = res.get("steady_cpu") or (None, None)
    per = 1e6 / max(args.events, 1)
    print(f"  {res['backend']}: {_fmt(busy and args.events / busy, ',.0f')} events/s (first record → last window "
          f"{_fmt(busy)} s, execute {res['execute_s']:.1f} s); CPU JVM {_fmt(cpu[0] and cpu[0] * per)} / Python "
          f"{_fmt(cpu[1] and cpu[1] * per)} µs/event; rows {res['rows_in_tsdb']:,} in {res['tsdb_windows']:,} windows "
          f"(summaries {res['windows_written']:,}; Python "
          f"{_fmt(cpu[1] and cpu[1] * 1e3 / max(res['windows_written'], 1), '.2f')} ms of CPU per endpoint window "
          f"over that span, the job's start (its catalog loads) and every event's work included); "
          f"checkpoints {res['checkpoint']}; heap {res['heap']}; JVM RSS "
          f"{res['jvm_peak'] / MB:,.0f} MiB; Python workers {res['py_sum_peak'] / MB:,.0f} MiB "
          f"({res['py_workers']}), largest {res['py_one_peak'] / MB:,.0f}; Parquet {res['parquet_bytes'] / MB:,.0f} "
          f"MiB; load {res['load']}", flush=True)
    if dict(args.option).get("stagger_windows") is True:  # a window per group and minute
        first = res["latencies"][0]["window_start"] // 60_000
        for m in by_minute(res["latencies"]):
            print(f"    windows starting in minute +{m['minute'] - first}m: {m['starts']} event-time windows, "
                  f"{m['windows']:,} endpoint windows written; first firing → last written: longest "
                  f"{m['worst_s']:.1f} s, median {m['median_s']:.1f} s (longest single window "
                  f"{m['max_window_s']:.1f} s)", flush=True)
        _print_phases(res)
        return
    for w in res["latencies"]:
        # live: the producers send event time at wall-clock pace from their start, so a window's end
        # passed at start + (its end - the first window's start); the watermark follows 5 s later
        # (max disorder), and a batch reaches Python about parse_bundle_time_ms (at most about twice)
        # after its first record
        since_end = ""
        if res.get("producer"):
            passed = res["producer"]["start"] + (w["window_start"] + 60_000 - res["latencies"][0]["window_start"]) / 1000
            since_end = f"; the window's end at the producers → last written {w['last_written'] - passed:.1f} s"
        print(f"    window +{(w['window_start'] - res['latencies'][0]['window_start']) // 60_000}m: "
              f"{w['windows']:,} written; firing took {w['firing_s']:.1f} s; first firing → last written "
              f"{w['latency_s']:.1f} s (longest single window {w['max_window_s']:.1f} s){since_end}", flush=True)
        c = w.get("cores")
        if c:
            print(f"      cores busy from its first firing to its last write: Python workers {c['python']:.2f}, JVM "
                  f"{c['jvm']:.2f} (GC {c['gc']:.2f}), the rest of the machine (the producers, the broker, the "
                  f"job's client, the kernel's interrupts) {c['rest']:.2f}, of {os.cpu_count()}", flush=True)
    _print_phases(res)


def _print_phases(res: dict) -> None:
    end = res["producer"]["end"] if res.get("producer") else None
    opened = res["start"] + res["first_record_s"] if res.get("first_record_s") is not None else None
    phases = by_phase(res["latencies"], opened, end)
    for phase, f in phases.items():
        print(f"    fired in {phase}: {f['windows']} event-time windows, first firing → last written median "
              f"{f['median_s']:.1f} s, longest {f['longest_s']:.1f} s", flush=True)
        if phase == "at the end of the input":
            # some fired at their own time while the job read the last events: an upper bound
            print(f"      all of them, from the first of them firing to the last write: "
                  f"{f['span_s']:.1f} s", flush=True)
    if res.get("by_the_end"):
        e = res["by_the_end"]
        print(f"    fired by the input's end alone (their ends beyond the events' last watermark): {e['windows']} "
              f"event-time windows, {e['endpoint_windows']:,} endpoint windows; from the first of them firing to "
              f"the last write {e['span_s']:.1f} s", flush=True)
    c, ending = res.get("end_cores"), phases.get("at the end of the input")
    if c and ending:
        # the Python work after the producers stopped: the events still to read when they did
        # (the job trails them), the windows that fire meanwhile and at the end, their writes
        print(f"    from the input's end to the last write ({c['seconds']:.1f} s): cores busy: Python workers "
              f"{c['python']:.2f}, JVM {c['jvm']:.2f}, the rest of the machine {c['rest']:.2f}, of {os.cpu_count()}; "
              f"the workers' CPU {c['python'] * c['seconds']:.1f} s, "
              f"{c['python'] * c['seconds'] * 1e3 / ending['endpoint_windows']:.2f} ms per endpoint window that fired "
              f"then ({ending['endpoint_windows']:,}; the events read then included)", flush=True)
    if end is not None:
        # the producers send event time at wall-clock pace from the first minute's start (the
        # events' first time): a window's end passed at start + (its end - that), or when the
        # input ended, if earlier (a bounded input's last windows close with it)
        first_ms = -(-min(w["window_start"] for w in res["latencies"]) // 60_000) * 60_000
        since = [w["last_written"] - min(end, res["producer"]["start"] + (w["window_start"] + 60_000 - first_ms) / 1000)
                 for w in res["latencies"]]
        print(f"    the window's end at the producers (or the input's end) → last written: median "
              f"{statistics.median(since):.1f} s, longest {max(since):.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
