"""Benchmark of the statistics core (``udfs``): accumulation, drift, and the whole job.

Run from the project root::

    python -m tests.benchmarks.bench_stats            # or: python tests/benchmarks/bench_stats.py
    tests/benchmarks/run_stats_bench.sh               # the same, beside Evidently, in .venv-bench/

Prints one table. Every figure is the median over ``--repeats`` runs in this process, and
each comparison (``np.histogram``, Evidently) runs on the same data in the same run.
Not collected by pytest (no ``test_`` names here).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: put the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd

from streamdrift.udfs import drift
from streamdrift.udfs.accumulator import Accumulator, Layout
from streamdrift.udfs.histogram_drift import drift_from_accumulator, histogram_drift
from streamdrift.udfs.reference import feature_stats

N_COLS = 20
TARGET_ROWS_PER_S = 2_000_000
TARGET_DRIFT_S = 1e-3
TARGET_SPEEDUP = 50


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_call_seconds(fn, repeats: int, calls: int) -> float:
    """Median over ``repeats`` of the mean time of ``calls`` back-to-back calls."""
    def loop():
        for _ in range(calls):
            fn()
    return median_seconds(loop, repeats) / calls


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 1.0, (rows, N_COLS))
    data[:, : N_COLS // 4] += shift  # a quarter of the columns drift
    data[:, N_COLS // 2:] = np.exp(data[:, N_COLS // 2:])  # skewed columns too
    return pd.DataFrame(data, columns=[f"f{i}" for i in range(N_COLS)])


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, case: str, time_s: str, rate: str = "", note: str = "") -> None:
        self.rows.append((case, time_s, rate, note))

    def print(self) -> None:
        head = ("case", "median time", "throughput", "note")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |"
        print(line)
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in self.rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def fmt_rate(x: float, unit: str) -> str:
    return f"{x / 1e6:.2f} M {unit}/s"


def bench_accumulation(table: Table, rows: int, repeats: int) -> None:
    reference = frame(100_000, seed=1)
    fs = feature_stats(reference)
    layout = Layout.from_feature_stats(fs)
    x = frame(rows, seed=2, shift=0.3).to_numpy()
    for batch in (1_000, 10_000):
        def ours():
            acc = Accumulator.from_reference(layout)
            for i in range(0, rows, batch):
                acc.add_batch(x[i:i + batch])
            return acc

        t = median_seconds(ours, repeats)
        ok = "meets" if rows / t >= TARGET_ROWS_PER_S else "BELOW"
        table.add(
            f"accumulate {rows:,} rows × {N_COLS} cols, batches of {batch:,}",
            fmt_time(t),
            f"{fmt_rate(rows / t, 'rows')}, {fmt_rate(rows * N_COLS / t, 'values')}",
            f"{ok} target {TARGET_ROWS_PER_S / 1e6:.0f} M rows/s",
        )

        def numpy_hist():
            for i in range(0, rows, batch):
                chunk = x[i:i + batch]
                for j in range(N_COLS):
                    np.histogram(chunk[:, j], bins=layout.edges[j])

        t_np = median_seconds(numpy_hist, max(1, repeats // 2))
        table.add(
            f"  np.histogram per column, same batches of {batch:,}",
            fmt_time(t_np),
            f"{fmt_rate(rows / t_np, 'rows')}, {fmt_rate(rows * N_COLS / t_np, 'values')}",
            f"counts only; accumulator is {t_np / t:.1f}× faster",
        )

    def numpy_whole():
        for j in range(N_COLS):
            np.histogram(x[:, j], bins=layout.edges[j])

    t_whole = median_seconds(numpy_whole, max(1, repeats // 2))
    table.add(
        f"  np.histogram per column, all {rows:,} rows at once",
        fmt_time(t_whole),
        f"{fmt_rate(rows / t_whole, 'rows')}, {fmt_rate(rows * N_COLS / t_whole, 'values')}",
        "counts only, no batching",
    )
    acc = Accumulator.from_reference(layout).add_batch(x[:100_000])
    table.add("  accumulator state (to_bytes)", "", "", f"{len(acc.to_bytes()):,} bytes")
    t_bytes = per_call_seconds(lambda: Accumulator.from_bytes(acc.to_bytes(), layout), repeats, 200)
    table.add("  to_bytes + from_bytes round trip", fmt_time(t_bytes))
    t_merge = per_call_seconds(lambda: acc.merge(acc), repeats, 200)
    table.add("  merge two accumulators", fmt_time(t_merge))


def bench_drift(table: Table, repeats: int) -> None:
    rng = np.random.default_rng(3)
    p = drift.probabilities(rng.integers(0, 100, (N_COLS, 22)))
    q = drift.probabilities(rng.integers(0, 100, (N_COLS, 22)))

    def measures():
        drift.tvd(p, q)
        drift.hellinger(p, q)
        drift.kld(p, q)

    t = per_call_seconds(measures, repeats, 500)
    table.add(
        f"drift measures TVD+Hellinger+KLD, {N_COLS} cols × 22 bins",
        fmt_time(t), "", f"{'meets' if t < TARGET_DRIFT_S else 'ABOVE'} target < 1 ms",
    )
    fs = feature_stats(frame(20_000, seed=4))
    acc = Accumulator.from_reference(fs).add_batch(frame(20_000, seed=5, shift=0.5).to_numpy())
    ws = acc.to_stats()
    t = per_call_seconds(lambda: histogram_drift(fs, ws), repeats, 200)
    table.add(
        "histogram_drift(feature_stats, window_stats) → DriftReport",
        fmt_time(t), "", f"{'meets' if t < TARGET_DRIFT_S else 'ABOVE'} target < 1 ms",
    )
    t = per_call_seconds(lambda: drift_from_accumulator(fs, acc), repeats, 200)
    table.add("drift_from_accumulator (to_stats + histogram_drift)", fmt_time(t))


def evidently_runner():
    """Return (version, fn(reference_df, current_df)) or None when Evidently is not installed."""
    try:
        import evidently
    except ImportError:
        return None
    version = getattr(evidently, "__version__", "?")
    try:  # Evidently >= 0.7
        from evidently import Report
        from evidently.presets import DataDriftPreset

        def run(ref, cur):
            return Report([DataDriftPreset()]).run(cur, ref)
    except ImportError:  # Evidently <= 0.6
        from evidently.metric_preset import DataDriftPreset
        from evidently.report import Report

        def run(ref, cur):
            report = Report(metrics=[DataDriftPreset()])
            report.run(reference_data=ref, current_data=cur)
            return report
    return version, run


def bench_whole_job(table: Table, rows: int, repeats: int) -> None:
    ref, cur = frame(rows, seed=6), frame(rows, seed=7, shift=0.5)

    def ours():
        fs = feature_stats(ref)
        acc = Accumulator.from_reference(fs)
        values = cur.to_numpy()
        for i in range(0, rows, 10_000):
            acc.add_batch(values[i:i + 10_000])
        return drift_from_accumulator(fs, acc)

    report = ours()
    t_ours = median_seconds(ours, repeats)
    table.add(
        f"whole job ours: reference stats + window + drift, {rows:,}+{rows:,} rows × {N_COLS}",
        fmt_time(t_ours), "",
        f"general_drift={report.general_drift:.3f} status={int(report.status)}",
    )
    t_ref = median_seconds(lambda: feature_stats(ref), repeats)
    table.add("  of which reference stats (feature_stats)", fmt_time(t_ref))

    runner = evidently_runner()
    if runner is None:
        table.add("whole job Evidently DataDriftPreset", "—", "", "evidently not installed")
        return
    version, run = runner
    run(ref, cur)  # warm-up (imports, registries)
    t_ev = median_seconds(lambda: run(ref, cur), max(1, min(repeats, 3)))
    speedup = t_ev / t_ours
    table.add(
        f"whole job Evidently {version} DataDriftPreset (Report.run), same frames",
        fmt_time(t_ev), "",
        f"ours is {speedup:.0f}× faster ({'meets' if speedup >= TARGET_SPEEDUP else 'BELOW'} "
        f"target {TARGET_SPEEDUP}×)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to accumulate")
    parser.add_argument("--job-rows", type=int, default=100_000, help="reference and window rows")
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args(argv)

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"{os.cpu_count()} cpus, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}, "
        f"repeats={args.repeats}"
    )
    table = Table()
    bench_accumulation(table, args.rows, args.repeats)
    bench_drift(table, args.repeats)
    if args.skip_evidently:
        sys.modules["evidently"] = None  # makes the import fail: reported as not installed
    bench_whole_job(table, args.job_rows, args.repeats)
    table.print()


if __name__ == "__main__":
    main()
