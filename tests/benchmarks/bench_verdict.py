"""Benchmark of the drift verdict (``streamdrift.udfs.verdict``, the ``feature_drift`` result) beside MLRun's rule.

Run from the project root::

    .venv/bin/python -m tests.benchmarks.bench_verdict            # ~30 s on 2 shared cores
    .venv/bin/python -m tests.benchmarks.bench_verdict --quick    # fewer windows, ~7 s

References: 10,000 rows of 20 independent N(0, 1) features, binned as ``feature_stats`` does
(20 equal-width bins over the sample's range, padded). Windows: bin counts drawn from the exact
multinomial of the rows' binned distribution (N(μ, 1) mass of each bin of the reference's
edges), which is what counting n independent rows gives. Each case reports the share of windows
flagged (status >= 1, potential or detected) by the verdict, the share detected (status 2), and
the share MLRun's rule flags (``general_drift`` >= 0.5) on the same windows.

Prints tables (rates over thousands of windows; times are medians). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: put the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from scipy import stats

from streamdrift.udfs import drift
from streamdrift.udfs.accumulator import Accumulator, Layout
from streamdrift.udfs.histogram_drift import feature_drift_from_accumulator
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.verdict import (
    ALPHA,
    MergeMaps,
    ReferenceCounts,
    benjamini_hochberg,
    chi2_pvalue,
    chi2_two_sample,
    effect_floor,
    feature_verdict,
    merge_map,
    n_bucket,
    rank_pvalue,
    rank_sum,
)

N_REF = 10_000
N_COLS = 20
CHUNK = 500  # windows per verdict call: bounds the memory of a (W, C, B) stack


class Reference:
    """One reference sample: its counts, its edges, and the bin masses of N(μ, 1) rows."""

    def __init__(self, seed: int, cols: int = N_COLS, rows: int = N_REF):
        rng = np.random.default_rng([7, seed])
        frame = pd.DataFrame(rng.normal(size=(rows, cols)), columns=[f"f{i:04d}" for i in range(cols)])
        self.stats = feature_stats(frame)
        self.layout = Layout.from_feature_stats(self.stats)
        self.counts = ReferenceCounts.from_layout(self.layout, self.stats)
        self.ref_matrix = self.counts.counts.reshape(cols, -1)
        self.inner = np.vstack([e[1:-1] for e in self.layout.edges])  # (C, 21) finite edges
        self.cols = cols

    def probs(self, shift, scale=1.0) -> np.ndarray:
        """(C, B) bin masses of rows N(shift_c, scale_c²) on the padded edges."""
        shift = np.broadcast_to(np.asarray(shift, dtype=float), (self.cols,))[:, None]
        scale = np.broadcast_to(np.asarray(scale, dtype=float), (self.cols,))[:, None]
        cdf = stats.norm.cdf((self.inner - shift) / scale)
        p = np.diff(np.concatenate([np.zeros((self.cols, 1)), cdf, np.ones((self.cols, 1))], axis=1), axis=1)
        return np.clip(p, 0, None) / np.clip(p, 0, None).sum(axis=1, keepdims=True)

    def draw(self, rng, n: int, probs: np.ndarray, windows: int) -> np.ndarray:
        """(windows, C·B) counts: each column's bins ~ Multinomial(n, probs_c)."""
        return rng.multinomial(n, probs, size=(windows, self.cols)).reshape(windows, -1).astype(np.float64)


def mlrun_flags(ref: Reference, counts: np.ndarray) -> np.ndarray:
    """MLRun's rule on each window: general_drift = mean_c (TVD_c + Hellinger_c) / 2 >= 0.5."""
    w = counts.reshape(-1, ref.ref_matrix.shape[1])
    p = w / w.sum(axis=1, keepdims=True)
    q = np.tile(ref.ref_matrix / ref.ref_matrix.sum(axis=1, keepdims=True), (counts.shape[0], 1))
    per_col = (drift.tvd(p, q) + drift.hellinger(p, q)) / 2
    return per_col.reshape(counts.shape[0], ref.cols).mean(axis=1) >= 0.5


def rates(ref: Reference, rng, n: int, shift, windows: int, maps: MergeMaps, **kw) -> tuple[float, float, float]:
    """(flagged, detected, MLRun flagged) shares over ``windows`` windows of n rows."""
    probs = ref.probs(shift)
    flagged = detected = mlrun = 0
    for start in range(0, windows, CHUNK):
        k = min(CHUNK, windows - start)
        counts = ref.draw(rng, n, probs, k)
        v = feature_verdict(ref.counts, counts, maps, **kw)
        flagged += int((v.status >= 1).sum())
        detected += int((v.status == 2).sum())
        mlrun += int(mlrun_flags(ref, counts).sum())
    return flagged / windows, detected / windows, mlrun / windows


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


class Table:
    def __init__(self, title: str, header: list[str]):
        self.title, self.header, self.rows = title, header, []

    def add(self, *cells) -> None:
        self.rows.append([str(c) for c in cells])
        print("  " + " | ".join(self.rows[-1]), file=sys.stderr, flush=True)

    def print(self) -> None:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.header)]
        print(f"\n{self.title}\n")
        print("| " + " | ".join(h.ljust(w) for h, w in zip(self.header, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in self.rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def shifted(k: int, delta: float) -> np.ndarray:
    s = np.zeros(N_COLS)
    s[:k] = delta
    return s


# --------------------------------------------------------------------------- the cases


def false_alarms(refs: list[Reference], windows: int, sizes: list[int], seed: int) -> Table:
    t = Table(f"False alarms: no drift, {len(refs)} references x {windows // len(refs):,} windows per n "
              "(target <= 1 % flagged)",
              ["n", "windows", "verdict flagged", "verdict detected", "MLRun >= 0.5"])
    for n in sizes:
        rng = np.random.default_rng([seed, n])
        per = [rates(r, rng, n, 0.0, windows // len(refs), MergeMaps()) for r in refs]
        f, d, m = (float(np.mean([x[i] for x in per])) for i in range(3))
        t.add(f"{n:,}", f"{windows // len(refs) * len(refs):,}", pct(f), pct(d), pct(m))
    return t


def references_at_1m(count: int, windows: int, seed: int) -> Table:
    t = Table(f"False alarms across {count} references at n = 1,000,000, {windows:,} windows each "
              "(target: no reference above 1 %)",
              ["references", "mean flagged", "median", "max", "references > 1 %", "MLRun max"])
    flagged, mlrun = [], []
    for i in range(count):
        ref = Reference(1000 + i)
        f, _, m = rates(ref, np.random.default_rng([seed, i]), 1_000_000, 0.0, windows, MergeMaps())
        flagged.append(f)
        mlrun.append(m)
        if (i + 1) % 10 == 0:
            print(f"  {i + 1} references: max {pct(max(flagged))}", file=sys.stderr, flush=True)
    t.add(count, pct(float(np.mean(flagged))), pct(float(np.median(flagged))), pct(max(flagged)),
          sum(f > 0.01 for f in flagged), pct(max(mlrun)))
    return t


def power(refs: list[Reference], windows: int, seed: int) -> Table:
    t = Table("Power (share of windows flagged)",
              ["case", "n", "windows", "verdict flagged", "verdict detected", "MLRun >= 0.5"])
    per_ref = max(1, windows // len(refs))

    def run(case, n, shift):
        rng = np.random.default_rng([seed, n, int(1000 * np.max(shift))])
        per = [rates(r, rng, n, shift, per_ref, MergeMaps()) for r in refs]
        f, d, m = (float(np.mean([x[i] for x in per])) for i in range(3))
        t.add(case, f"{n:,}", f"{per_ref * len(refs):,}", pct(f), pct(d), pct(m))
        return f

    run("0.25 sigma on 3 of 20 (target >= 95 %)", 1_000, shifted(3, 0.25))
    for n in (10, 100, 1_000, 10_000):
        run("+3 sigma on 1 of 20", n, shifted(1, 3.0))
    return t


def smallest(refs: list[Reference], windows: int, seed: int) -> Table:
    t = Table("Smallest drift found", ["question", "answer", "flagged per window there", "MLRun there"])
    per_ref = max(1, windows // len(refs))

    def rate(n, delta):
        rng = np.random.default_rng([seed, n, int(1e4 * delta)])
        per = [rates(r, rng, n, shifted(3, delta), per_ref, MergeMaps()) for r in refs]
        return float(np.mean([x[0] for x in per])), float(np.mean([x[2] for x in per]))

    # within 2 windows: 1 - (1 - rate)^2 >= 0.95, i.e. rate >= 1 - sqrt(0.05) = 77.6 %
    need = 1 - math.sqrt(0.05)
    lo, hi = 0.05, 0.40  # shift in sigma, at n = 1,000
    for _ in range(9):
        mid = (lo + hi) / 2
        if rate(1_000, mid)[0] >= need:
            hi = mid
        else:
            lo = mid
    r, m = rate(1_000, hi)
    t.add("smallest shift on 3 of 20 flagged in >= 95 % within 2 windows, n = 1,000",
          f"{hi:.3f} sigma", pct(r), pct(m))
    lo_n, hi_n = 50, 2_000  # rows, for 0.25 sigma on 3 of 20
    while hi_n - lo_n > max(5, lo_n // 50):
        mid = (lo_n + hi_n) // 2
        if rate(mid, 0.25)[0] >= 0.95:
            hi_n = mid
        else:
            lo_n = mid
    r, m = rate(hi_n, 0.25)
    t.add("smallest n at which 0.25 sigma on 3 of 20 is flagged in >= 95 % of windows", f"{hi_n:,} rows",
          pct(r), pct(m))
    return t


def cost(repeats: int) -> Table:
    t = Table("Cost per window (one window per call, median)",
              ["features", "verdict", "target", "merge map (cache miss)", "whole result", "MLRun's numbers (numpy)"])
    for cols, target, calls in ((20, "<= 200 us", 2_000), (2_000, "<= 20 ms", 40)):
        ref = Reference(0, cols=cols)
        rng = np.random.default_rng(1)
        counts = ref.draw(rng, 1_000, ref.probs(0.0), 1)[0]
        maps = MergeMaps()
        feature_verdict(ref.counts, counts, maps)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            feature_verdict(ref.counts, counts, maps)
            times.append(time.perf_counter() - t0)
        miss = []
        for _ in range(max(3, repeats)):
            t0 = time.perf_counter()
            merge_map(ref.counts, n_bucket(1_000))
            miss.append(time.perf_counter() - t0)
        acc = Accumulator(ref.layout).add_batch(rng.normal(size=(1_000, cols)))
        whole = []
        for _ in range(calls):
            t0 = time.perf_counter()
            feature_drift_from_accumulator(ref.stats, acc, maps=maps).to_dict()
            whole.append(time.perf_counter() - t0)
        q = ref.ref_matrix / ref.ref_matrix.sum(axis=1, keepdims=True)
        mlrun = []
        for _ in range(calls):
            t0 = time.perf_counter()
            w = counts.reshape(cols, -1)
            p = w / w.sum(axis=1, keepdims=True)
            drift.tvd(p, q), drift.hellinger(p, q), drift.kld(p, q)
            mlrun.append(time.perf_counter() - t0)
        t.add(f"{cols:,}", fmt_time(statistics.median(times)), target, fmt_time(statistics.median(miss)),
              fmt_time(statistics.median(whole)), fmt_time(statistics.median(mlrun)))
    return t


def fmt_time(s: float) -> str:
    return f"{s * 1e6:,.0f} us" if s < 1e-3 else f"{s * 1e3:,.2f} ms"


# --------------------------------------------------------------------------- variants


def variant_flags(ref: Reference, counts: np.ndarray, maps: MergeMaps, variant: str) -> np.ndarray:
    """Status >= 1 of one variant of the test (BH at 1 %), from the module's public pieces."""
    rc = ref.counts
    w = counts
    n = np.add.reduceat(w, rc.starts, axis=-1)
    floor = effect_floor(rc.total) if variant != "no floor" else np.zeros(rc.total.shape)
    mm = maps.get(rc, np.full(rc.total.shape, int(n_bucket(n[0, 0]))))
    x2, df = chi2_two_sample(w, n, mm, rc)
    if variant == "no Satterthwaite":
        p_chi = np.where(df > 0, stats.ncx2.sf(x2, np.maximum(df, 1e-9), n * rc.total / (n + rc.total) * floor**2), 1)
    else:
        p_chi = chi2_pvalue(x2, df, n, mm, rc, floor)
    s_e, v = rank_sum(w, n, rc)
    p_rank = rank_pvalue(s_e, v, n, rc.total, floor)
    p = {"chi2 only": p_chi, "rank only": p_rank}.get(variant, np.minimum(1, 2 * np.minimum(p_chi, p_rank)))
    return benjamini_hochberg(p, ALPHA).any(axis=-1)


def variants(refs: list[Reference], windows: int, many: int, many_windows: int, seed: int) -> Table:
    names = ["chi2 + rank (used)", "chi2 only", "rank only", "no floor", "no Satterthwaite"]
    t = Table("Variants (share of windows flagged; at n = 1,000,000: references above 1 %)", ["case", *names])
    cases = [("no drift, n = 3", 3, 0.0, 1.0), ("no drift, n = 30", 30, 0.0, 1.0),
             ("no drift, n = 1,000", 1_000, 0.0, 1.0),
             ("0.25 sigma on 3 of 20, n = 1,000", 1_000, shifted(3, 0.25), 1.0),
             ("0.15 sigma on 3 of 20, n = 1,000", 1_000, shifted(3, 0.15), 1.0),
             ("sd x 1.3 on 3 of 20, n = 300", 300, 0.0, 1 + shifted(3, 0.3)),
             ("+3 sigma on 1 of 20, n = 10", 10, shifted(1, 3.0), 1.0)]
    per_ref = max(1, windows // len(refs))
    for case, n, shift, scale in cases:
        rng = np.random.default_rng([seed, n, 99])
        out = {v: [] for v in names}
        for r in refs:
            maps = MergeMaps()
            counts = r.draw(rng, n, r.probs(shift, scale), per_ref)
            for v in names:
                out[v].append(float(variant_flags(r, counts, maps, v.replace(" (used)", "")).mean()))
        t.add(case, *(pct(float(np.mean(out[v]))) for v in names))
    above = {v: 0 for v in names}
    worst = {v: 0.0 for v in names}
    for i in range(many):
        r = Reference(1000 + i)
        counts = r.draw(np.random.default_rng([seed, i, 99]), 1_000_000, r.probs(0.0), many_windows)
        maps = MergeMaps()
        for v in names:
            rate = float(variant_flags(r, counts, maps, v.replace(" (used)", "")).mean())
            above[v] += rate > 0.01
            worst[v] = max(worst[v], rate)
    t.add(f"no drift, n = 1,000,000: references above 1 % of {many} (worst)",
          *(f"{above[v]} ({pct(worst[v])})" for v in names))
    return t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=10_000, help="windows per case (split over the references)")
    ap.add_argument("--references", type=int, default=10, help="references the windows are split over")
    ap.add_argument("--many", type=int, default=100, help="references at n = 1,000,000")
    ap.add_argument("--many-windows", type=int, default=1_000, help="windows per reference at n = 1,000,000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--quick", action="store_true", help="1,000 windows per case, 20 references x 200 at 1M")
    ap.add_argument("--skip-variants", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.windows, args.many, args.many_windows = 1_000, 20, 200
    refs = [Reference(i) for i in range(args.references)]
    sizes = [3, 10, 30, 100, 300, 1_000, 10_000, 100_000, 1_000_000]
    tables = [
        false_alarms(refs, args.windows, sizes, args.seed),
        references_at_1m(args.many, args.many_windows, args.seed),
        power(refs, args.windows, args.seed),
        smallest(refs, min(args.windows, 2_000), args.seed),
        cost(args.repeats),
    ]
    if not args.skip_variants:
        tables.append(variants(refs, min(args.windows, 2_000), args.many, args.many_windows // 5, args.seed))
    print(f"\nbench_verdict: reference {N_REF:,} rows x {N_COLS} N(0,1) features; alpha {ALPHA}; "
          f"numpy {np.__version__}; {time.strftime('%Y-%m-%d %H:%M')}")
    for t in tables:
        t.print()


if __name__ == "__main__":
    main()
