"""Benchmark of the monitoring job (issue 4): sustained events/s through Kafka → PyFlink → stores.

Run from the project root, with the local Kafka broker (``.venv/bin/streamdrift services up kafka``;
started here when it is not running, never stopped)::

    .venv/bin/python -m tests.benchmarks.bench_job                       # 2,000,000 events, 100 endpoints
    .venv/bin/python -m tests.benchmarks.bench_job --events 200000       # quicker
    .venv/bin/python -m tests.benchmarks.bench_job --events 200000 --cprofile   # + where Python time goes

What it does, in one run:

1. registers ``--endpoints`` endpoints (reference: 5,000 rows x 20 normal features each) in a SQLite
   store under a temporary data directory, project ``bench<random>``;
2. creates the events topic with 2 partitions and pre-loads it with ``--events`` native events (one
   row of 20 floats, a 0/1 output, a latency; round robin over the endpoints and the partitions,
   event time in order over ``--windows`` one-minute windows). Serialising and producing are timed
   apart: they are not part of the job's time;
3. runs, each in a fresh Python process (its own JVM, so memory peaks do not leak between runs):
   the monitoring job (``build()`` + ``env.execute()``, parallelism 2, bounded, checkpoints every
   30 s to files) on an empty topic, on the loaded topic (``--repeats`` times, each with its own
   consumer group, TSDB and Parquet directory) and on the empty topic again; then the same for two
   pure-JVM baselines over the same topic: ``consume`` (the job's Kafka source DDL into a
   ``blackhole`` sink) and ``pyfloor`` (the same source through a pandas function that does nothing
   but return a number per record, into a ``blackhole``: what PyFlink's Arrow path costs by itself);
4. samples every 0.5 s, from ``/proc``, the RSS (VmRSS, VmHWM) and CPU time of the JVM, of the
   Python worker processes and of the client; stamps the wall time at which each window summary
   is emitted, and the time the first batch of records reaches Python (the parse function's first
   endpoint lookup);
5. checks that the rows counted in the TSDB ``predictions`` of all windows equal the events produced;
6. measures offline (no Flink) where the per-record Python time goes: JSON decoding, event decoding,
   aggregation, partial serialisation and the window-state merge, per event, on ``--profile-events``
   serialised events; ``--cprofile`` adds the top functions of ``aggregate_records``.

Python workers run as processes, one per slot, as on a cluster (``--worker-mode process``); PyFlink's
local default, ``loopback``, runs every Python function inside the client process under one GIL.

The monitoring job's rate is ``events / (last window written - first record reaching Python)``; the
baselines' is ``events / (execute() - the shorter execute() on the empty topic)``, printed for the
monitoring job too. Figures are medians over ``--repeats``. Not collected by pytest (no ``test_`` names).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: put the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ROOT = Path(__file__).resolve().parents[2]
N_FEATURES = 20
REFERENCE_ROWS = 5_000
TARGET_EVENTS_PER_S = 50_000
NAIVE_EVENTS_PER_S = 5_000  # DESIGN.md: numpy state updated per record
SAMPLE_EVERY_S = 0.5
MB = 1024 * 1024


# --------------------------------------------------------------------------- data


def feature_names(features: int = N_FEATURES) -> list[str]:
    return [f"f{j}" for j in range(features)]


def register_endpoints(settings, project: str, n: int, seed: int = 0, features: int = N_FEATURES,
                       sample_size: int = 1_000) -> list[str]:
    """``n`` endpoints, each with its own reference of 5,000 rows x ``features`` standard normal
    features (and a stored sample of ``sample_size`` of its rows), registered in bulk
    (:func:`connectors.endpoints.register_model_endpoints`)."""
    import numpy as np
    import pyarrow as pa

    from streamdrift.connectors.endpoints import open_store, register_model_endpoints

    store = open_store(settings.endpoint_store_connection)
    rng = np.random.default_rng(seed)
    names = feature_names(features)

    def models():
        for i in range(n):
            x = rng.normal(size=(features, REFERENCE_ROWS))
            yield {"model_name": f"model-{i}", "function_name": "serving", "output_names": ["prediction"],
                   "reference": pa.table(dict(zip(names, x)))}

    try:
        return register_model_endpoints(project, models(), store, sample_size=sample_size)
    finally:
        store.close()


def serialise_events(endpoint_ids: list[str], n: int, windows: int, start_ms: int, seed: int = 1,
                     features: int = N_FEATURES) -> list[bytes]:
    """``n`` native events as JSON bytes, round robin over endpoints, event time in order over
    ``windows`` one-minute windows from ``start_ms``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    span = windows * 60_000
    out: list[bytes] = []
    chunk = 100_000
    n_ep = len(endpoint_ids)
    dumps = json.dumps
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        x = np.round(rng.normal(0.1, 1.0, size=(hi - lo, features)), 4).tolist()
        y = rng.integers(0, 2, size=hi - lo).tolist()
        lat = np.round(rng.lognormal(7, 0.4, size=hi - lo), 1).tolist()
        for k in range(hi - lo):
            i = lo + k
            out.append(dumps({
                "endpoint_id": endpoint_ids[i % n_ep], "timestamp": start_ms + i * span // n,
                "request_id": f"r{i}", "inputs": [x[k]], "outputs": [y[k]], "latency_us": lat[k],
            }, separators=(",", ":")).encode())
    return out


def recent_events(endpoint_ids: list[str], n: int, windows: int, features: int) -> tuple[list[bytes], float, int]:
    """:func:`serialise_events` over ``windows`` minutes ending 5 minutes ago: (payloads, seconds it
    took, bytes)."""
    start_ms = (int(time.time() * 1000) // 60_000 - windows - 5) * 60_000
    t0 = time.perf_counter()
    payloads = serialise_events(endpoint_ids, n, windows, start_ms, features=features)
    return payloads, time.perf_counter() - t0, sum(map(len, payloads))


def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        existing = set(admin.list_topics())
        gone = [t for t in topics if t in existing]
        if gone:
            admin.delete_topics(gone)
    except Exception as exc:  # leave them; they only cost disk
        print(f"(could not delete topics {topics}: {exc})", file=sys.stderr)
    finally:
        admin.close()


def _produce_partition(bootstrap: str, topic: str, payloads: list[bytes], partition: int, partitions: int) -> None:
    from kafka import KafkaProducer

    try:
        import lz4  # noqa: F401
        compression = "lz4"
    except ImportError:
        compression = None
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20, acks=1,
                             compression_type=compression, max_request_size=16 << 20)
    send = producer.send
    for i in range(partition, len(payloads), partitions):
        send(topic, value=payloads[i], partition=partition)
    producer.flush()
    producer.close()


def _produce_paced(bootstrap: str, topic: str, payloads: list[bytes], partition: int, partitions: int,
                   rate: float, out: str) -> None:
    """Send every ``partitions``-th payload from ``partition`` on to that partition, at ``rate /
    partitions`` events per second (every 50 ms, what is due); writes its start, end and CPU seconds
    to ``out``; exits non-zero if a send failed. Idempotent, so that a retried send is not written
    twice: the job stops at the offset the events end at. librdkafka's client (confluent-kafka): the
    producers share the job's cores here, and kafka-python's took ~27-49 µs of CPU per event."""
    from confluent_kafka import Producer

    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(err)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all", "enable.idempotence": True,
                         "message.max.bytes": 16 << 20, "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 1 << 20})
    mine = payloads[partition::partitions]
    t0 = time.time()
    cpu0 = time.process_time()
    sent = 0
    while sent < len(mine):  # every 50 ms, what the rate allows by then
        due = min(len(mine), int((time.time() - t0) * rate / partitions) + 1)
        for value in mine[sent:due]:
            producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
        sent = max(sent, due)
        producer.poll(0)  # the delivery reports so far
        time.sleep(0.05)
    left = producer.flush(120)
    if failures or left:
        print(f"partition {partition}: {len(failures)} sends failed, {left} not delivered; the first failure: "
              f"{failures[0] if failures else None!r}", file=sys.stderr)
        sys.exit(1)
    with open(out, "w") as f:
        f.write(f"{t0} {time.time()} {time.process_time() - cpu0} {len(mine)}\n")


def produce_paced(bootstrap: str, topic: str, payloads: list[bytes], rate: float, out_dir: Path,
                  partitions: int = 2) -> list:
    """Start producing ``payloads`` as :func:`produce` does, at ``rate`` events per second in all,
    one forked process per partition; returns the processes (each writes
    ``out_dir/produced-<partition>.txt``: start, end, CPU seconds, events)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_produce_paced, args=(bootstrap, topic, payloads, p, partitions, rate,
                                                      str(out_dir / f"produced-{p}.txt")))
             for p in range(partitions)]
    for proc in procs:
        proc.start()
    return procs


def end_offsets(bootstrap: str, topic: str, partitions: int = 2) -> dict[int, int]:
    """Each partition's next offset now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}


def produce(bootstrap: str, topic: str, payloads: list[bytes], partitions: int = 2) -> float:
    """Send every payload, event ``i`` to partition ``i % partitions`` (so each partition is in event-time
    order), one forked producer process per partition; returns seconds until every ack."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # the children share the payloads, no copy
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_produce_partition, args=(bootstrap, topic, payloads, p, partitions))
             for p in range(partitions)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    if any(proc.exitcode != 0 for proc in procs):
        raise RuntimeError(f"producing to {topic} failed (exit codes {[proc.exitcode for proc in procs]})")
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- memory (/proc)


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid → (ppid, comm) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        table[int(entry)] = (ppid, comm)
    return table


def descendants(root: int) -> dict[int, str]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return out


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_seconds() -> float:
    """CPU seconds the machine's cores spent busy since boot (``/proc/stat``: user, nice, system,
    irq and softirq; not idle, iowait, nor steal, which another guest of the host ran)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / _TICK


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


JVM_THREAD_GROUPS = (("JIT compiler", ("C1 CompilerThre", "C2 CompilerThre")), ("GC", ("GC Thread", "VM Thread", "G1 ")))
"""JVM threads by name (``/proc/<pid>/task/*/comm``) whose CPU the benchmark reports apart."""


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """thread id → (name, utime + stime in seconds) of ``pid``'s live threads."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        out[int(tid)] = (head.partition("(")[2], (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def _rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes; (0, 0) when the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


class MemorySampler(threading.Thread):
    """Every ``SAMPLE_EVERY_S``: RSS of the JVM (``java``) and of the Python processes under ``root``
    (the job's client process itself is kept apart)."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.stop_event = threading.Event()
        self.jvm_peak = 0  # max VmHWM of any java process
        self.py_sum_peak = 0  # max over samples of the sum of Python workers' VmRSS
        self.py_one_peak = 0  # max VmHWM of any single Python worker
        self.py_workers: set[int] = set()
        self.py_cmdlines: set[str] = set()
        self.cmdlines: dict[int, str] = {}
        self.client_peak = 0
        self.cpu: dict[int, tuple[str, float]] = {}  # pid → (kind, last CPU seconds seen)
        # (wall time, JVM CPU s, Python workers' CPU s, the machine's busy CPU s: every process's)
        self.series: list[tuple[float, float, float, float]] = []
        self.jvm_threads: dict[tuple[int, int], tuple[str, float]] = {}  # (pid, tid) → (group, last CPU s)
        self.jvm_series: list[tuple[float, dict[str, float]]] = []  # (wall time, CPU s per JVM thread group)

    def sample(self) -> None:
        py_sum = 0
        _, client_hwm = _rss(self.root)
        self.client_peak = max(self.client_peak, client_hwm)
        cpu = _cpu_seconds(self.root)
        if cpu is not None:
            self.cpu[self.root] = ("client", cpu)
        for pid, comm in descendants(self.root).items():
            rss, hwm = _rss(pid)
            cpu = _cpu_seconds(pid)
            if comm == "java":
                self.jvm_peak = max(self.jvm_peak, hwm)
                if cpu is not None:
                    self.cpu[pid] = ("jvm", cpu)
                # kept per thread as last seen: a compiler thread that ends keeps what it spent
                for tid, (name, secs) in _thread_cpu(pid).items():
                    group = next((g for g, prefixes in JVM_THREAD_GROUPS if name.startswith(prefixes)), "other")
                    self.jvm_threads[pid, tid] = (group, secs)
            elif comm.startswith("python"):
                if pid not in self.cmdlines:
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            self.cmdlines[pid] = f.read().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        continue
                if "pyflink.fn_execution" not in self.cmdlines[pid]:
                    continue  # a short-lived helper, not a worker
                self.py_cmdlines.add(self.cmdlines[pid][:120])
                self.py_workers.add(pid)
                if cpu is not None:
                    self.cpu[pid] = ("python", cpu)
                py_sum += rss
                self.py_one_peak = max(self.py_one_peak, hwm)
        self.py_sum_peak = max(self.py_sum_peak, py_sum)
        now = time.time()
        self.series.append((now, sum(c for k, c in self.cpu.values() if k == "jvm"),
                            sum(c for k, c in self.cpu.values() if k == "python"), _machine_busy_seconds()))
        groups = {g: 0.0 for g, _ in JVM_THREAD_GROUPS}
        for group, secs in self.jvm_threads.values():
            if group in groups:
                groups[group] += secs
        self.jvm_series.append((now, groups))

    def cpu_between(self, t0: float, t1: float) -> tuple[float, float] | None:
        """CPU seconds (JVM, Python workers) spent between wall times t0 and t1 (nearest samples)."""
        inside = [s for s in self.series if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return None
        return inside[-1][1] - inside[0][1], inside[-1][2] - inside[0][2]

    def cores_between(self, t0: float, t1: float) -> dict[str, float] | None:
        """Cores busy on average between wall times t0 and t1 (each CPU total interpolated
        linearly between the samples either side): the Python workers', the JVM's (``gc``: of it,
        its GC threads) and the rest of the machine's (``rest``: other processes, such as the
        benchmark's producers, the Kafka broker and the job's client, and the kernel's interrupt
        work); None when the samples do not cover [t0, t1] or t1 <= t0."""
        import numpy as np

        if t1 <= t0 or len(self.series) < 2 or not (self.series[0][0] <= t0 and t1 <= self.series[-1][0]):
            return None
        times = [s[0] for s in self.series]

        def moved(values) -> float:
            return float(np.interp(t1, times, values) - np.interp(t0, times, values))

        jvm, python, busy = (moved([s[i] for s in self.series]) for i in (1, 2, 3))
        gc_seconds = moved([groups["GC"] for _, groups in self.jvm_series])
        span = t1 - t0
        return {"python": python / span, "jvm": jvm / span, "gc": gc_seconds / span,
                "rest": max(busy - jvm - python, 0.0) / span, "seconds": span}

    def jvm_groups_between(self, t0: float, t1: float) -> dict[str, float] | None:
        """CPU seconds of the JVM's thread groups (:data:`JVM_THREAD_GROUPS`) between t0 and t1."""
        inside = [s for s in self.jvm_series if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return None
        return {g: inside[-1][1][g] - inside[0][1][g] for g in inside[0][1]}

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


# --------------------------------------------------------------------------- one job run (child process)


def _stamp_class():
    from pyflink.datastream.functions import MapFunction, RuntimeContext

    class StampWindows(MapFunction):
        """Appends the wall time at which each window summary leaves the writer (one file per subtask)."""

        def __init__(self, directory: str):
            self.directory = directory

        def open(self, runtime_context: RuntimeContext):
            index = runtime_context.get_index_of_this_subtask()
            self.file = open(os.path.join(self.directory, f"stamps-{index}-{os.getpid()}.txt"), "a")

        def map(self, value):
            # wall time, window start, and when the window stage fired it and the stores had it (epoch ms)
            self.file.write(f"{time.time()} {value[1]} {value[8]} {value[9]}\n")
            self.file.flush()
            return 0

        def close(self):
            self.file.close()

    return StampWindows


def _stamp_first_record(stamp_dir: str) -> None:
    """Make the job's endpoint loader stamp the wall time of each call (in the Python workers).

    The parse function loads the endpoints at its first lookup, i.e. on the first batch of records
    (about ``parse_bundle_time_ms`` after the first record arrives, at most about twice that): the
    earliest stamp is the "first record" mark. Only the function ``build()`` wraps in a ``functools.partial`` is replaced, in this
    client process; the closure is pickled by value, so the workers need not import this module.
    The wrapper finds the loader in ``job_io`` when called: a loader pickled by value with the
    wrapper would take a copy of the module's per-process cache into each stage, and each stage
    of a worker would read every reference (three full loads per worker, where the job makes one)."""
    from streamdrift.connectors import job_io

    if not hasattr(job_io, "_unstamped_load_endpoints"):  # this process's original, once
        job_io._unstamped_load_endpoints = job_io.load_endpoints

    def load_endpoints(store_url):
        import os as _os
        import time as _time

        from streamdrift.connectors import job_io as _job_io

        # in a worker the module is unpatched: its own load_endpoints, with the worker's cache
        original = getattr(_job_io, "_unstamped_load_endpoints", _job_io.load_endpoints)
        start = _time.time()
        records = original(store_url)
        with open(_os.path.join(stamp_dir, f"load-{_os.getpid()}.txt"), "a") as f:
            f.write(f"{start} {_time.time() - start}\n")  # the call's start, its seconds
        return records

    job_io.load_endpoints = load_endpoints


def _read_offsets(offsets: dict) -> None:
    """Make the job's Kafka source read each partition from ``offsets["start"][p]`` up to
    ``offsets["stop"][p]`` (bounded; the source waits for offsets not yet produced), instead of
    from its group's offsets to the latest ones at start: a benchmark that produces while the job
    runs (``bench_scale --live``). Only this client process's ``source_ddl`` is replaced."""
    from streamdrift.connectors import event_source

    original = event_source.source_ddl

    def spec(which: str) -> str:
        return ";".join(f"partition:{p},offset:{o}" for p, o in sorted(offsets[which].items(), key=lambda x: int(x[0])))

    def source_ddl(settings, bounded=False, group_id=None):
        ddl = original(settings, True, group_id)
        for old, new in [("'scan.startup.mode' = 'group-offsets'",
                          f"'scan.startup.mode' = 'specific-offsets',\n  'scan.startup.specific-offsets' = '{spec('start')}'"),
                         ("'scan.bounded.mode' = 'latest-offset'",
                          f"'scan.bounded.mode' = 'specific-offsets',\n  'scan.bounded.specific-offsets' = '{spec('stop')}'")]:
            if old not in ddl:
                raise RuntimeError(f"the source's DDL no longer holds {old!r}: update bench_job._read_offsets")
            ddl = ddl.replace(old, new)
        return ddl

    event_source.source_ddl = source_ddl


def _job_option(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` of a JobOptions field, the value parsed as JSON when it is JSON."""
    from streamdrift.jobs.monitoring_job import JobOptions

    name, sep, value = text.partition("=")
    if not sep or name not in {f.name for f in dataclasses.fields(JobOptions)}:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE with NAME a JobOptions field")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def child(spec: dict) -> dict:
    """Build and run one job as ``spec`` says; return its timings."""
    from streamdrift.connectors.settings import Settings
    from streamdrift.jobs.monitoring_job import JobOptions

    settings = Settings(**spec["settings"])
    options = JobOptions(**spec["options"])
    t_build = time.time()
    if spec["kind"] == "monitor":
        from pyflink.common import Types

        from streamdrift.jobs.monitoring_job import build

        _stamp_first_record(spec["stamp_dir"])
        if spec.get("kafka_offsets"):
            _read_offsets(spec["kafka_offsets"])
        graph = build(settings, options)
        graph.summaries.map(_stamp_class()(spec["stamp_dir"]), output_type=Types.INT()).name("bench-stamp")
        t0 = time.time()
        result = graph.env.execute(f"bench-{spec['name']}")
        t1 = time.time()
    else:  # "consume" (source → blackhole, JVM only) or "pyfloor" (source → a no-op pandas function → blackhole)
        from pyflink.table import StreamTableEnvironment

        from streamdrift.jobs.flink_env import stream_env
        from streamdrift.connectors.event_source import source_ddl

        extra = {"execution.checkpointing.dir": options.checkpoint_dir} if options.checkpoint_dir else {}
        env = stream_env(options.parallelism, options.checkpoint_interval_ms, extra)
        t_env = StreamTableEnvironment.create(env)
        t_env.get_config().set("pipeline.name", f"bench-{spec['name']}")
        t_env.get_config().set("table.local-time-zone", "UTC")
        t_env.execute_sql(source_ddl(settings, options.bounded, options.group_id))
        if spec["kind"] == "pyfloor":
            from pyflink.table import DataTypes
            from pyflink.table.udf import udf

            def noop(payloads):  # one number per record, nothing else (nested: pickled by value)
                import pandas as pd

                return pd.Series(0, index=payloads.index, dtype="int64")

            for key in ("python.fn-execution.arrow.batch.size", "python.fn-execution.bundle.size"):
                t_env.get_config().set(key, str(options.arrow_batch_size))
            t_env.create_temporary_function("noop", udf(noop, result_type=DataTypes.BIGINT(), func_type="pandas"))
            t_env.execute_sql("CREATE TABLE sink (payload BYTES, n BIGINT) WITH ('connector' = 'blackhole')")
            insert = "INSERT INTO sink SELECT payload, noop(payload) FROM inference_events"
        else:
            t_env.execute_sql("CREATE TABLE sink (payload BYTES) WITH ('connector' = 'blackhole')")
            insert = "INSERT INTO sink SELECT payload FROM inference_events"
        t0 = time.time()
        table_result = t_env.execute_sql(insert)
        table_result.wait()
        t1 = time.time()
        try:
            result = table_result.get_job_client().get_job_execution_result().result()
        except Exception:
            result = None
    net = None
    if result is not None:
        try:
            net = result.get_net_runtime() / 1000.0
        except Exception:
            net = None
    return {"build_s": t0 - t_build, "start": t0, "end": t1, "execute_s": t1 - t0, "net_s": net}


def run_child(spec: dict, workdir: Path) -> dict:
    """Run ``spec`` in a fresh Python process, sampling its memory; returns timings + memory."""
    spec_file = workdir / f"spec-{spec['name']}.json"
    out_file = workdir / f"result-{spec['name']}.json"
    stamp_dir = workdir / f"stamps-{spec['name']}"
    stamp_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "stamp_dir": str(stamp_dir), "result": str(out_file)}
    spec_file.write_text(json.dumps(spec))
    log = workdir / f"log-{spec['name']}.txt"
    with open(log, "w") as log_f:
        env = {**os.environ, "_python_worker_execution_mode": spec["worker_mode"]}
        if spec.get("jvm_args"):
            env["JVM_ARGS"] = spec["jvm_args"]  # read by PyFlink's gateway launcher
        proc = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.bench_job", "--child", str(spec_file)],
                                cwd=ROOT, stdout=log_f, stderr=subprocess.STDOUT, env=env)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop()
    if rc != 0 or not out_file.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"job run {spec['name']} failed (exit {rc}); log {log}:\n{tail}")
    res = json.loads(out_file.read_text())
    written = [line.split() for f in stamp_dir.glob("stamps-*") for line in f.read_text().splitlines() if line]
    stamps = sorted(float(w[0]) for w in written)
    by_window: dict[int, list[float]] = {}
    for w in written:
        by_window.setdefault(int(w[1]), []).append(float(w[0]) - res["start"])
    loads = sorted(float(line.split()[0]) for f in stamp_dir.glob("load-*") for line in f.read_text().splitlines()
                   if line.strip())
    steady = sampler.cpu_between(loads[0], stamps[-1]) if loads and stamps else None
    steady_jvm = sampler.jvm_groups_between(loads[0], stamps[-1]) if loads and stamps else None
    res.update(windows_written=len(stamps), first_record_s=(loads[0] - res["start"]) if loads else None,
               steady_cpu=steady, steady_jvm_groups=steady_jvm,
               first_window_s=(stamps[0] - res["start"]) if stamps else None,
               last_window_s=(stamps[-1] - res["start"]) if stamps else None,
               jvm_peak=sampler.jvm_peak, py_sum_peak=sampler.py_sum_peak, py_one_peak=sampler.py_one_peak,
               py_workers=len(sampler.py_workers), client_peak=sampler.client_peak,
               py_cmdlines=sorted(sampler.py_cmdlines),
               cpu={kind: sum(c for k, c in sampler.cpu.values() if k == kind) for kind in ("jvm", "python", "client")},
               cpu_workers=sorted((round(c, 1) for k, c in sampler.cpu.values() if k == "python"), reverse=True),
               window_times=[[start, min(t), max(t), len(t)] for start, t in sorted(by_window.items())])
    res["cores_between"] = sampler.cores_between  # not JSON: for the caller, on the run's wall times
    return res


# --------------------------------------------------------------------------- offline: where Python time goes


def offline_profile(settings, payloads: list[bytes], window_ms: int, sample_size: int, cprofile: bool):
    """Per-event µs of each step of the Python path, on ``payloads`` (one batch, as the pandas UDF gets it)."""
    from streamdrift.connectors import job_io
    from streamdrift.udfs.catalog import EndpointCatalog
    from streamdrift.udfs.events import decode
    from streamdrift.udfs.columnar import ColumnarReader
    from streamdrift.udfs.window import Sample, WindowAggregate
    from streamdrift.udfs.batch import aggregate_records

    records = job_io.load_endpoints(settings.endpoint_store_connection)
    catalog = EndpointCatalog(lambda: records)
    n = len(payloads)

    def best(fn, repeats=3):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    rows = []
    t_json, _ = best(lambda: [json.loads(p) for p in payloads])
    rows.append(("json.loads (stdlib)", t_json))
    try:
        import orjson

        t_orjson, _ = best(lambda: [orjson.loads(p) for p in payloads])
        rows.append(("orjson.loads (what the per-record path uses)", t_orjson))
    except ImportError:
        pass
    t_decode, _ = best(lambda: [decode(p, catalog.columns) for p in payloads])
    rows.append(("events.decode (JSON + checks + row dicts)", t_decode))
    t_records, _ = best(lambda: aggregate_records(payloads, catalog, window_ms, sample_size, reader=False))
    rows.append(("aggregate_records record by record (decode + group + count + sample)", t_records))
    rows.append(("  of which aggregation (that - decode)", t_records - t_decode))
    t_read, _ = best(lambda: ColumnarReader()._read(b"\n".join(payloads), n))
    rows.append(("pyarrow JSON reader on the joined batch", t_read))
    t_batch, batch = best(lambda: aggregate_records(payloads, catalog, window_ms, sample_size, reader=ColumnarReader()))
    partials = batch.partials
    rows.append(("aggregate_records column-wise (what the job does: read + group + count + sample)", t_batch))
    t_bytes, bodies = best(lambda: [p.aggregate.to_bytes() for p in partials])
    rows.append((f"partials .to_bytes ({len(partials)} partials, {sum(map(len, bodies)) / n:.0f} B/event)", t_bytes))

    # EndpointWindows.process_element per partial: from_bytes(state) + from_bytes(body) + merge + to_bytes,
    # with the window state already holding a full sample (sample_size rows), as in steady state
    first = partials[0].endpoint_id
    own = serialise_events([first], max(sample_size, 1), 1, partials[0].window_start, seed=2,
                           features=len(catalog.record(first)["feature_names"]))
    full = WindowAggregate(sample=Sample.empty(sample_size))
    full.add_events([decode(p, catalog.columns) for p in own], catalog.layout(first), sample_size)
    state = full.to_bytes()

    def merge_all():
        for body in bodies:
            a = WindowAggregate.from_bytes(state, catalog.layout_by_fingerprint)
            b = WindowAggregate.from_bytes(body, catalog.layout_by_fingerprint)
            (a + b).to_bytes()

    t_merge, _ = best(merge_all)
    rows.append((f"window merge per partial, state of {len(state) / 1024:.0f} KiB (from_bytes x2 + add + to_bytes)",
                 t_merge))
    rows.append(("Python path per event (column-wise aggregate_records + to_bytes + merge)",
                 t_batch + t_bytes + t_merge))
    if cprofile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        aggregate_records(payloads, catalog, window_ms, sample_size, reader=ColumnarReader())
        prof.disable()
        print(f"\ncProfile of aggregate_records on {n:,} events (top 15 by own time):")
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return [(name, seconds / n * 1e6) for name, seconds in rows], len(partials), len(state)


def state_bound(settings, payloads: list[bytes], endpoints: int, window_ms: int, sample_size: int) -> dict:
    """Bytes of one endpoint's window aggregate (20 columns) after a full window of its events."""
    from streamdrift.connectors import job_io
    from streamdrift.udfs.catalog import EndpointCatalog
    from streamdrift.udfs.events import decode
    from streamdrift.udfs.window import Sample, WindowAggregate

    records = job_io.load_endpoints(settings.endpoint_store_connection)
    catalog = EndpointCatalog(lambda: records)
    evs = [decode(p, catalog.columns) for p in payloads]
    first = evs[0].endpoint_id
    mine = [e for e in evs if e.endpoint_id == first]
    agg = WindowAggregate(sample=Sample.empty(sample_size))
    agg.add_events(mine, catalog.layout(first), sample_size)
    total = len(agg.to_bytes())
    acc = len(agg.accumulator.to_bytes()) if agg.accumulator is not None else 0
    empty_sample = WindowAggregate(**{**agg.__dict__, "sample": Sample.empty(sample_size)})
    return {"events": len(mine), "total": total, "accumulator": acc,
            "without_sample": len(empty_sample.to_bytes()), "endpoints": endpoints}


# --------------------------------------------------------------------------- main


def _fmt_mb(b) -> str:
    return f"{b / MB:,.0f}" if b else "-"


def _fmt(x, spec=",.1f") -> str:
    return "-" if x is None else format(x, spec)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_job", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--features", type=int, default=N_FEATURES, help="numeric features per endpoint")
    parser.add_argument("--reference-sample", type=int, default=1_000,
                        help="rows of each reference kept in the store (the job does not read them)")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--windows", type=int, default=10, help="one-minute windows the event time spans")
    parser.add_argument("--sample-size", type=int, default=1_000, help="JobOptions.sample_size")
    parser.add_argument("--option", action="append", default=[], type=_job_option, metavar="NAME=VALUE",
                        help="a JobOptions field of the monitoring job, e.g. bundle_batches=4 (repeatable)")
    parser.add_argument("--arrow-batch-size", type=int, default=None,
                        help="JobOptions.arrow_batch_size (records per batch handed to Python; default the job's)")
    parser.add_argument("--profile-events", type=int, default=10_000)
    parser.add_argument("--cprofile", action="store_true", help="print cProfile's top functions of aggregate_records")
    parser.add_argument("--worker-mode", choices=["process", "loopback"], default="process",
                        help="Python workers: one process per slot, as on a cluster (default), or PyFlink's "
                             "local default 'loopback' (every Python function runs in the client process, "
                             "one GIL for all subtasks)")
    parser.add_argument("--jvm-args", default="", help="JVM options of the job's JVM, e.g. '-Xmx1g' "
                        "(PyFlink's JVM_ARGS; default: none, so the heap may grow to 1/4 of RAM)")
    parser.add_argument("--skip-consume", action="store_true", help="do not run the consume-only job")
    parser.add_argument("--skip-floor", action="store_true",
                        help="do not run the pyfloor job (source → a pandas function doing nothing → blackhole)")
    parser.add_argument("--skip-empty", action="store_true",
                        help="do not run the jobs on the empty topic (start-up; only 'ev/s exec-empty' needs them)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory and topics")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        spec = json.loads(Path(args.child).read_text())
        out = child(spec)
        Path(spec["result"]).write_text(json.dumps(out))
        return 0

    from streamdrift.connectors.local_services import Kafka
    from streamdrift.connectors.settings import kafka_bootstrap, load_settings, topic_names
    from streamdrift.connectors.tsdb import open_tsdb

    Kafka().start()  # idempotent: returns at once when the broker already answers
    tmp = Path(tempfile.mkdtemp(prefix="bench-job-"))
    project = f"bench{random.randrange(16 ** 6):06x}"
    cli = {"data_dir": str(tmp), "project": project, "stream_path": f"kafka://127.0.0.1:{Kafka().port}",
           "base_period": 1}
    settings = load_settings(cli, env={})
    empty = load_settings({**cli, "project": project + "-empty"}, env={})
    bootstrap = kafka_bootstrap(settings.stream_path)
    topic, empty_topic = topic_names(project)["events"], topic_names(empty.project)["events"]
    window_ms = settings.base_period_ms

    print(f"bench_job: {args.events:,} events, {args.endpoints} endpoints x {args.features} numeric features, "
          f"parallelism {args.parallelism}, repeats {args.repeats}; {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} cores; project {project}, data {tmp}")
    try:
        t0 = time.perf_counter()
        ids = register_endpoints(settings, project, args.endpoints, features=args.features,
                                 sample_size=args.reference_sample)
        t_register = time.perf_counter() - t0
        payloads, t_serialise, size = recent_events(ids, args.events, args.windows, args.features)
        create_topic(bootstrap, topic)
        create_topic(bootstrap, empty_topic)
        t_produce = produce(bootstrap, topic, payloads)
        print(f"setup: registered {args.endpoints} endpoints in {t_register:.1f} s; serialised {args.events:,} "
              f"events ({size / MB:,.0f} MiB, {size / max(args.events, 1):.0f} B/event) in {t_serialise:.1f} s; "
              f"produced to {topic} (2 partitions) in {t_produce:.1f} s ({args.events / t_produce:,.0f} events/s)")

        profile_payloads = payloads[: args.profile_events]
        steps, n_partials, state_len = offline_profile(settings, profile_payloads, window_ms, args.sample_size,
                                                       args.cprofile)
        per_window = args.events // max(args.endpoints * args.windows, 1)
        bound = state_bound(settings, payloads[: per_window * args.endpoints], args.endpoints, window_ms,
                            args.sample_size)
        del payloads

        def spec(kind, name, s, group):
            # checkpoints to files: the default (JobManager memory) storage refuses state over 5 MiB,
            # which the window state passes here (see the README); the job then fails and restarts forever
            options = {"parallelism": args.parallelism, "bounded": True, "checkpoint_interval_ms": 30_000,
                       "sample_size": args.sample_size, "group_id": group,
                       **({"arrow_batch_size": args.arrow_batch_size} if args.arrow_batch_size else {}),
                       **dict(args.option),
                       "checkpoint_dir": (tmp / "checkpoints" / name).as_uri()}
            return {"kind": kind, "name": name, "settings": dataclasses.asdict(s), "options": options,
                    "worker_mode": args.worker_mode, "jvm_args": args.jvm_args}

        kinds = (["monitor"] + ([] if args.skip_consume else ["consume"])
                 + ([] if args.skip_floor else ["pyfloor"]))
        results: dict[str, dict] = {}
        for kind in kinds:
            empties, runs = [], []
            if not args.skip_empty:
                print(f"running {kind} job on the empty topic (start-up) ...", flush=True)
                empties.append(run_child(spec(kind, f"{kind}-empty-0", empty, f"bench-{kind}-e0-{project}"), tmp))
            for r in range(args.repeats):
                s = settings
                if kind != "consume":  # own TSDB and Parquet directory per run
                    s = dataclasses.replace(settings, tsdb_connection=f"sqlite:///{tmp / f'tsdb-{kind}-{r}.sqlite'}",
                                            parquet_path=str(tmp / f"parquet-{kind}-{r}"))
                print(f"running {kind} job on {args.events:,} events (repeat {r + 1}/{args.repeats}) ...", flush=True)
                res = run_child(spec(kind, f"{kind}-{r}", s, f"bench-{kind}-{r}-{project}"), tmp)
                if kind == "monitor":
                    preds = open_tsdb(s.tsdb_connection).query_predictions(project)
                    res["rows_in_tsdb"] = sum(p.count for p in preds)
                    res["tsdb_windows"] = len(preds)
                runs.append(res)
            if not args.skip_empty:
                print(f"running {kind} job on the empty topic again (start-up) ...", flush=True)
                empties.append(run_child(spec(kind, f"{kind}-empty-1", empty, f"bench-{kind}-e1-{project}"), tmp))
            results[kind] = {"empties": empties, "runs": runs}

        # ------------------------------------------------------------------ tables
        print(f"\nJob runs, {args.events:,} events (medians over {args.repeats}; times in s from the start of "
              "execute()):\n")
        head = (f"{'job':16} {'execute':>7} {'net rt':>6} {'1st rec':>7} {'1st win':>7} {'last win':>8} "
                f"{'ev/s rec→win':>12} {'ev/s exec-empty':>15} {'JVM MB':>6} {'client MB':>9} {'py sum MB':>9} "
                f"{'py max MB':>9} {'#py':>3}")
        print(head)
        print("-" * len(head))
        rates, headline = {}, {}

        def line(name, execute, net, rec, first, last, r1, r2, runs):
            print(f"{name:16} {_fmt(execute):>7} {_fmt(net):>6} {_fmt(rec):>7} {_fmt(first):>7} {_fmt(last):>8} "
                  f"{_fmt(r1, ',.0f'):>12} {_fmt(r2, ',.0f'):>15} {_fmt_mb(max(r['jvm_peak'] for r in runs)):>6} "
                  f"{_fmt_mb(max(r['client_peak'] for r in runs)):>9} "
                  f"{_fmt_mb(max(r['py_sum_peak'] for r in runs)):>9} {_fmt_mb(max(r['py_one_peak'] for r in runs)):>9} "
                  f"{max(r['py_workers'] for r in runs) or '-':>3}")

        for kind, res in results.items():
            empties, runs = res["empties"], res["runs"]
            startup = min((e["execute_s"] for e in empties), default=None)
            for i, e in enumerate(empties):
                line(f"{kind} empty {'before' if i == 0 else 'after'}", e["execute_s"], e["net_s"], None, None, None,
                     None, None, [e])
            execute = _median([r["execute_s"] for r in runs])
            rec_to_win = _median([args.events / (r["last_window_s"] - r["first_record_s"]) for r in runs
                                  if r.get("last_window_s") and r.get("first_record_s") is not None])
            rates[kind] = args.events / (execute - startup) if startup is not None and execute > startup else None
            headline[kind] = rec_to_win if kind == "monitor" else rates[kind]
            line(kind, execute, _median([r["net_s"] for r in runs]),
                 _median([r.get("first_record_s") for r in runs]), _median([r["first_window_s"] for r in runs]),
                 _median([r["last_window_s"] for r in runs]), rec_to_win, rates[kind], runs)
        print("\nev/s rec→win: events / (last window written - first record reaching Python); "
              "ev/s exec-empty: events / (execute() - the shorter execute() on an empty topic).")
        print("JVM MB: peak RSS (VmHWM) of the java process; client MB: the Python process that runs execute() "
              "(in loopback mode it also runs every Python function); py sum MB: peak of the summed RSS of the "
              "Python worker processes; py max MB: peak of one worker; #py: worker processes seen.")
        print("\nCPU seconds of the whole run, start-up included (utime + stime, first repeat; sampled every 0.5 s):")
        for kind, res in results.items():
            r = res["runs"][0]
            busy = (r["last_window_s"] - r["first_record_s"]) if r.get("last_window_s") and r.get("first_record_s") \
                else r["execute_s"]
            workers = ", ".join(f"{c:.0f}" for c in r["cpu_workers"]) or "-"
            print(f"  {kind:8} JVM {r['cpu']['jvm']:6.0f} s, Python workers {r['cpu']['python']:6.0f} s ({workers}), "
                  f"client {r['cpu']['client']:4.0f} s; busy for {busy:.0f} s of "
                  f"{'first record to last window' if kind == 'monitor' else 'execute()'} "
                  f"(2 cores = {2 * busy:.0f} CPU s, shared with other work)")
        run0 = results["monitor"]["runs"][0]
        if run0.get("steady_cpu"):
            jvm_s, py_s = run0["steady_cpu"]
            per = 1e6 / max(args.events, 1)
            print(f"  monitor, first record to last window only (start-up left out): JVM {jvm_s:.0f} s "
                  f"({jvm_s * per:.1f} µs/event), Python workers {py_s:.0f} s ({py_s * per:.1f} µs/event); "
                  f"50,000 events/s on 2 cores leaves 40 µs/event for both")
            if run0.get("steady_jvm_groups"):
                print("  of the JVM's, by thread: " + ", ".join(
                    f"{group} {secs:.1f} s ({secs * per:.1f} µs/event)" for group, secs in run0["steady_jvm_groups"].items())
                    + f", the rest {jvm_s - sum(run0['steady_jvm_groups'].values()):.1f} s "
                    "(reading, Arrow hand-over, Parquet, Flink's operators)")
        if run0.get("window_times") and run0.get("first_record_s") is not None:
            print("Windows written (monitoring job, first repeat; s after the first record; event-time window: "
                  "first-last write, windows):")
            print("  " + "; ".join(f"{(start - run0['window_times'][0][0]) // window_ms:+d}m: "
                                   f"{lo - run0['first_record_s']:.0f}-{hi - run0['first_record_s']:.0f} s ({n})"
                                   for start, lo, hi, n in run0["window_times"]))
        cmdlines = sorted({c for r in results["monitor"]["runs"] for c in r["py_cmdlines"]})
        if cmdlines:
            print("Python worker processes (monitoring job): " + "; ".join(cmdlines[:4]))
        summary = f"\nmonitoring job: {_fmt(headline['monitor'], ',.0f')} events/s sustained, target " \
                  f"{TARGET_EVENTS_PER_S:,} ({_fmt(headline['monitor'] and headline['monitor'] / TARGET_EVENTS_PER_S, '.2f')}x)"
        if rates.get("monitor") and rates.get("consume"):
            summary += (f"; consume-only {_fmt(rates['consume'], ',.0f')} events/s; monitoring / consume-only "
                        f"(both exec-empty) = {rates['monitor'] / rates['consume']:.2f}")
        if rates.get("pyfloor"):
            summary += f"; PyFlink's Arrow path alone (no-op function) {_fmt(rates['pyfloor'], ',.0f')} events/s"
        print(summary + f"; naive per-record numpy state (DESIGN.md): ~{NAIVE_EVENTS_PER_S:,} events/s")
        for i, r in enumerate(results["monitor"]["runs"]):
            busy = r["last_window_s"] - r["first_record_s"] if r.get("last_window_s") and \
                r.get("first_record_s") is not None else None
            jvm_s, py_s = r.get("steady_cpu") or (None, None)
            per = 1e6 / max(args.events, 1)
            print(f"repeat {i + 1}: {_fmt(busy and args.events / busy, ',.0f')} events/s, CPU µs/event JVM "
                  f"{_fmt(jvm_s and jvm_s * per)} / Python {_fmt(py_s and py_s * per)}")
            ok = "OK" if r["rows_in_tsdb"] == args.events else "MISMATCH"
            print(f"correctness: rows in TSDB predictions {r['rows_in_tsdb']:,} over {r['tsdb_windows']} windows "
                  f"(summaries emitted: {r['windows_written']}), events produced {args.events:,}: {ok}")

        print(f"\nState bound (one endpoint window of {bound['events']:,} events, {args.features} numeric columns, "
              f"sample_size {args.sample_size}):")
        print(f"  WindowAggregate.to_bytes: {bound['total']:,} B (accumulator {bound['accumulator']:,} B, "
              f"without the sample {bound['without_sample']:,} B)")
        print(f"  x {bound['endpoints']} endpoints = {bound['total'] * bound['endpoints'] / MB:,.1f} MiB per open "
              f"window ({bound['without_sample'] * bound['endpoints'] / 1024:,.0f} KiB without samples); "
              f"bounded by endpoints x (columns x bins + sample_size rows), not by events")

        print(f"\nWhere Python time goes, offline (one batch of {len(profile_payloads):,} events, "
              f"{n_partials} partials; no Flink):\n")
        print(f"{'step':86} {'µs/event':>9} {'events/s':>10}")
        for name, us in steps:
            print(f"{name:86} {us:9.2f} {1e6 / us if us > 0 else 0:10,.0f}")
        print("\nNotes: 2-core machine shared with other engineers' tests: figures are noisy; compare rows of one run.")
        return 0 if all(r["rows_in_tsdb"] == args.events for r in results["monitor"]["runs"]) else 1
    finally:
        if not args.keep:
            delete_topics(bootstrap, [topic, empty_topic, topic_names(project)["dead_letters"],
                                      topic_names(empty.project)["dead_letters"]])
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} and topics {topic}, {empty_topic}")


if __name__ == "__main__":
    sys.exit(main())
