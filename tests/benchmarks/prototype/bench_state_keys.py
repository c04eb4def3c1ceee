"""Prototype measurement: the end of a Python operator's bundle with keyed state per endpoint, and
with the same entries under fewer keys (groups of endpoints), in a real Flink job.

    .venv/bin/python -m tests.benchmarks.prototype.bench_state_keys                # 5,000 endpoints, 4 bundles
    .venv/bin/python -m tests.benchmarks.prototype.bench_state_keys --groups 1 16 256 5000

A window stage keyed by endpoint ends a bundle that touched 5,000 endpoints with 5,000 state
requests to the JVM, one per key; the job's is keyed by 256 groups of endpoints
(``operators/windows.py``). Here one keyed operator gets, per bundle, one entry of
``--value-bytes`` for each of ``--endpoints`` endpoints (the merged counts of a window are ~4.8 KB),
keyed by ``endpoint % groups`` with the endpoint as the map key: with ``groups == endpoints`` it
is one key per endpoint. The Python worker times each bundle's end (``StatefulOperation.finish``: the
keyed state commit) and prints the median per layout.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def _timed_finish(path: str):
    """Record the duration of every keyed state commit of this worker in ``path`` (JSON lines)."""
    from pyflink.fn_execution.datastream.process import operations

    # on PyFlink's module, the one object every job's copy of this code shares in a worker that
    # serves several jobs (this file runs as __main__: its functions reach the worker by value)
    operations.commits_file_of_bench_state_keys = path
    finish = operations.StatefulOperation.finish
    if getattr(finish, "timed", False):
        return

    def timed(self):
        t = time.perf_counter()
        finish(self)
        with open(operations.commits_file_of_bench_state_keys, "a") as out:
            out.write(json.dumps(time.perf_counter() - t) + "\n")

    timed.timed = True
    operations.StatefulOperation.finish = timed


def run(endpoints: int, groups: int, bundles: int, value_bytes: int, path: str) -> float:
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction
    from pyflink.datastream.state import MapStateDescriptor

    from streamdrift.jobs.flink_env import stream_env
    from streamdrift.jobs.pyflink_internals import keyed_by_first_field

    class PutEntries(KeyedProcessFunction):
        def open(self, runtime_context):
            _timed_finish(path)
            self.slots = runtime_context.get_map_state(
                MapStateDescriptor("slots", Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())))
            self.value = bytes(value_bytes)

        def process_element(self, value, ctx):
            endpoint = int.from_bytes(value, "big")
            self.slots.put(endpoint, self.value)
            return []

    env = stream_env(1, extra={"python.fn-execution.bundle.size": endpoints, "python.state.cache-size": 2 * endpoints,
                               "python.map-state.write-cache-size": 2 * endpoints})
    payload = Types.PRIMITIVE_ARRAY(Types.BYTE())
    rows = [Row(e % groups, e.to_bytes(4, "big")) for _ in range(bundles) for e in range(endpoints)]
    stream = env.from_collection(rows, type_info=Types.ROW([Types.INT(), payload]))
    keyed_by_first_field(stream, payload, Types.INT()).process(PutEntries(), output_type=Types.INT())
    started = time.perf_counter()
    env.execute(f"state-keys-{groups}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=5000)
    parser.add_argument("--groups", type=int, nargs="+", default=[5000, 256, 16])
    parser.add_argument("--bundles", type=int, default=4)
    parser.add_argument("--value-bytes", type=int, default=4800)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    for repeat in range(args.repeats):
        for groups in args.groups:
            path = os.path.join(tempfile.mkdtemp(prefix="state-keys-"), "commits.jsonl")
            job_s = run(args.endpoints, groups, args.bundles, args.value_bytes, path)
            commits = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
            big = sorted(commits)[-args.bundles:]  # the bundles that carried the entries
            rows.append((groups, repeat + 1, job_s, statistics.median(big) if big else float("nan"), len(commits)))
    print(f"{args.endpoints:,} endpoints, one {args.value_bytes:,}-byte map entry each per bundle, {args.bundles} bundles; "
          "keyed state commit at each bundle's end (s)")
    print("| keys (groups of endpoints) | repeat | job s | commit s per bundle (median) | bundle ends |")
    print("|---|---|---|---|---|")
    for groups, repeat, job_s, commit_s, n in rows:
        print(f"| {groups:,} | {repeat} | {job_s:.1f} | {commit_s:.3f} | {n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
