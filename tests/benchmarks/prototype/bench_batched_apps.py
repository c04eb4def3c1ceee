"""Prototype measurement: the built-in application's numbers for a batch of endpoint windows in
one numpy pass, against one window at a time as the job computes them.

    .venv/bin/python -m tests.benchmarks.prototype.bench_batched_apps                 # 1,000 endpoints
    .venv/bin/python -m tests.benchmarks.prototype.bench_batched_apps --endpoints 2000 --batch 100 1000

The applications are the largest Python cost per endpoint window left (docs/scale.md), and most of
it is Python around arrays of 20 columns. Here the windows of ``--endpoints`` endpoints (each with
its own reference, registered as the job benchmarks register them) close together, and their
numbers are computed in batches of ``--batch`` windows, each batch as one problem:

* TVD, Hellinger and KLD: every window's compared columns stacked into one (columns, bins)
  matrix per side, the project's own formulas on it (``udfs.drift``), the means per window;
* the verdict (``udfs.verdict``): the batch's references laid end to end as one reference whose
  columns are all the windows' columns (a column's tests depend on that column alone: its merge
  map, χ², rank sum and p-value), one ``column_tests`` call, then Benjamini–Hochberg per window.

Every run checks, window by window, that the batch gives the numbers of the per-window path
(``drift_from_accumulator`` and ``feature_drift_from_accumulator`` with the endpoint's plan, what
``HistogramDataDriftApplication`` runs): general drift and its status, the three means, each
column's TVD, Hellinger, KLD, p-value, rejection and effect, the verdict's value and status. It
prints µs per endpoint window (median of ``--repeats``): the job's ``monitor_window`` (numbers and
records), the per-window numbers alone, and the batched numbers. The records (result, metric and
per-feature rows) are not built by the batched path: what they cost is the difference of the
first two rows.
"""
from __future__ import annotations

import argparse
import gc
import pickle
import statistics
import time

import numpy as np
import orjson

from streamdrift.connectors import job_io
from streamdrift.udfs import verdict as vd
from streamdrift.udfs.drift import ZERO_SCALING, hellinger, kld, tvd
from streamdrift.udfs.histogram_drift import (DriftClassifier, drift_from_accumulator,
                                              feature_drift_from_accumulator, plan_reference)
from streamdrift.udfs.monitor import monitor_window
from streamdrift.udfs.window import WindowAggregate
from tests.benchmarks.bench_endpoint_window import START_MS, WINDOW_MS, endpoint_partials


def batched_drift(plans, accs, zero_scaling: float = ZERO_SCALING):
    """Per window (general drift, [tvd_mean, hellinger_mean, kld_mean], per column (C_i, 3)) of
    windows ``accs`` (accumulators) by their ``plans``; None for a window with an empty compared
    column (the per-window path takes it: its report skips that column)."""
    width = max(plan.q.shape[1] for plan in plans)
    flats, offsets, total = [], [], 0
    for acc in accs:
        offsets.append(total)
        flats += (acc.hist, acc.cat_hist)
        total += acc.hist.size + acc.cat_hist.size
    counts = np.append(np.concatenate(flats).astype(np.float64), 0.0)  # the last slot: zero padding
    n_flat = np.concatenate([c for acc in accs for c in (acc.count, acc.cat_count)]).astype(np.float64)
    sizes = [plan.gather.shape[0] for plan in plans]
    gather = np.full((sum(sizes), width), total, dtype=np.intp)
    q = np.zeros((sum(sizes), width))
    count_index = np.empty(sum(sizes), dtype=np.intp)
    row, n_off = 0, 0
    for plan, acc, off, c in zip(plans, accs, offsets, sizes):
        pad = plan.gather == acc.hist.size + acc.cat_hist.size  # the plan's own zero slot
        gather[row:row + c, :plan.gather.shape[1]] = np.where(pad, total, plan.gather + off)
        q[row:row + c, :plan.q.shape[1]] = plan.q
        count_index[row:row + c] = plan.count_index + n_off
        n_off += acc.count.size + acc.cat_count.size
        row += c
    win_n = n_flat[count_index]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts[gather] / win_n[:, None]
    measures = np.stack([tvd(p, q), hellinger(p, q), kld(p, q, zero_scaling)], axis=1)
    starts = np.cumsum([0] + sizes[:-1])
    full = np.logical_and.reduceat(win_n > 0, starts)
    means = np.add.reduceat(measures, starts, axis=0) / np.array(sizes)[:, None]
    general = (means[:, 0] + means[:, 1]) / 2
    classifier = DriftClassifier()
    out = []
    for i, lo in enumerate(starts.tolist()):
        g = float(general[i])
        out.append((g, int(classifier.status(min(max(g, 0.0), 1.0))), means[i], measures[lo:lo + sizes[i]])
                   if full[i] else None)
    return out


class _OneMergeMap:
    """``MergeMaps`` for a reference seen once: the map of all its columns' buckets in one pass
    (``merge_map`` takes a bucket per column; the cache assembles a mix of buckets from one map
    of the whole reference per bucket, to reuse them)."""

    def get(self, reference, n_lo):
        return vd.merge_map(reference, n_lo)


def batched_verdict(plans, accs, alpha: float = vd.ALPHA, alpha_detected: float = vd.ALPHA_DETECTED):
    """Per window (status, value, p-values, rejected, effects over its reference's columns) of
    windows ``accs`` against their plans' references, as one reference of all their columns."""
    refs = [plan.reference for plan in plans]
    num_c, cat_c, num_w, cat_w, num_r, cat_r, num_t, cat_t = ([] for _ in range(8))
    for ref, plan, acc in zip(refs, plans, accs):
        k, nb = ref.n_numeric, ref.numeric_bins
        w = vd.window_counts(acc)
        num_c.append(ref.counts[:nb]), cat_c.append(ref.counts[nb:])
        num_w.append(ref.widths[:k]), cat_w.append(ref.widths[k:])
        num_r.append(w[:nb]), cat_r.append(w[nb:])
        num_t.append(plan.tested[:k]), cat_t.append(plan.tested[k:])
    n_numeric = sum(len(x) for x in num_w)
    widths = np.concatenate(num_w + cat_w)
    combined = vd.ReferenceCounts._build(tuple(range(widths.size)), np.concatenate(num_c + cat_c), widths,
                                         n_numeric, b"batch")
    tests = vd.column_tests(combined, np.concatenate(num_r + cat_r), _OneMergeMap(),
                            columns=np.concatenate(num_t + cat_t))
    # each window's columns in its own order (numeric, then categorical) on rows of a (windows, C) matrix
    c_max = max(len(ref.names) for ref in refs)
    where = np.full((len(refs), c_max), -1, dtype=np.intp)
    num_at, cat_at = 0, n_numeric
    for i, ref in enumerate(refs):
        k, c = ref.n_numeric, len(ref.names)
        where[i, :k] = np.arange(num_at, num_at + k)
        where[i, k:c] = np.arange(cat_at, cat_at + c - k)
        num_at, cat_at = num_at + k, cat_at + c - k
    real = where >= 0
    p = np.where(real, tests.p_value[where], 1.0)
    tested = real & tests.tested[where]
    ranked = vd._bh_sorted(p, tested)
    rejected = vd._bh_reject(*ranked, alpha)
    detected = vd._bh_reject(*ranked, alpha_detected)
    m = ranked[2][..., 0]
    status = np.where(m == 0, -1, np.where(detected.any(axis=-1), 2, np.where(rejected.any(axis=-1), 1, 0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(m > 0, rejected.sum(axis=-1) / m, np.nan)
    effect = np.where(real, tests.effect[where], 0.0)
    return [(int(status[i]), float(value[i]), p[i, :len(ref.names)], rejected[i, :len(ref.names)],
             effect[i, :len(ref.names)], tested[i, :len(ref.names)]) for i, ref in enumerate(refs)]


_FOUR_DIGITS = "{:.4g}".format


def batched_rows(keys, plans, accs, drift, verdicts, start_ms: int, end_ms: int):
    """What the stores take of each window, built from the batched numbers: the two results'
    ``extra_data`` as JSON text (the shapes the application writes), the metric rows and the
    per-feature rows as tuples (no record object per row)."""
    classifier = DriftClassifier()
    rows = []
    for key, plan, acc, d, v in zip(keys, plans, accs, drift, verdicts):
        if d is None:
            continue
        general, status, means, per_col = d
        v_status, v_value, p, rejected, effect, tested = v
        n = plan.reference.total
        win_n = np.concatenate([acc.count, acc.cat_count])[plan.count_index].tolist()
        cols = per_col.tolist()
        drift_of = [(t + h) / 2 for t, h, _ in cols]
        columns = {name: {"kind": kind, "tvd": t, "hellinger": h, "kld": k, "drift": dr,
                          "status": int(classifier.status(min(max(dr, 0.0), 1.0))), "window_count": int(wn),
                          "reference_count": int(rn)}
                   for name, kind, (t, h, k), dr, wn, rn in zip(plan.names, plan.kinds, cols, drift_of, win_n,
                                                                plan.ref_n.tolist())}
        means = means.tolist()
        general_json = orjson.dumps({"name": "general_drift", "kind": 0, "value": general, "status": status,
                                     "metrics": dict(zip(("tvd_mean", "hellinger_mean", "kld_mean"), means)),
                                     "columns": columns, "missing_in_window": [], "missing_in_reference": [],
                                     "skipped": {}})
        names = plan.reference.names
        p_l, r_l, e_l, n_l = p.tolist(), rejected.tolist(), effect.tolist(), n.tolist()
        tested_at = np.flatnonzero(tested).tolist()
        verdict_columns = {names[j]: {"p_value": float(_FOUR_DIGITS(p_l[j])), "rejected": r_l[j],
                                      "N": int(n_l[j]), "effect": float(_FOUR_DIGITS(e_l[j]))} for j in tested_at}
        verdict_json = orjson.dumps({"name": "feature_drift", "kind": 0, "value": v_value, "status": v_status,
                                     "columns": verdict_columns})
        per_feature = [("bench", key, "histogram-data-drift", name, start_ms, end_ms, t, h, k,
                        verdict_columns.get(name, {}).get("p_value"), verdict_columns.get(name, {}).get("rejected"),
                        verdict_columns.get(name, {}).get("effect"), int(wn), int(rn))
                       for name, (t, h, k), wn, rn in zip(plan.names, cols, win_n, plan.ref_n.tolist())]
        metrics = [("bench", key, "histogram-data-drift", name, start_ms, end_ms, value)
                   for name, value in zip(("tvd_mean", "hellinger_mean", "kld_mean"), means)]
        rows.append((general_json, verdict_json, metrics, per_feature))
    return rows


def check_equal(plans, accs, stats, drift, verdicts, maps) -> int:
    """Windows whose batched numbers equal the per-window path's (raises AssertionError naming the
    first that does not); the number checked."""
    checked = 0
    for i, (plan, acc, fs) in enumerate(zip(plans, accs, stats)):
        report = drift_from_accumulator(fs, acc, plan=plan)
        if drift[i] is None:  # some compared column is empty: the per-window report skips it
            assert len(report.columns) < len(plan.names), f"window {i}: the batch skipped a window compared whole"
            continue
        general, status, means, per_col = drift[i]
        assert np.isclose(general, report.general_drift, rtol=1e-12, atol=1e-15), (i, general, report.general_drift)
        assert status == int(report.status), (i, status, int(report.status))
        expect = [report.metrics[m] for m in ("tvd_mean", "hellinger_mean", "kld_mean")]
        assert np.allclose(means, expect, rtol=1e-12, atol=1e-15), (i, means, expect)
        cols = np.array([[c.tvd, c.hellinger, c.kld] for c in report.columns])
        assert np.allclose(per_col, cols, rtol=1e-12, atol=1e-15), i
        v = feature_drift_from_accumulator(fs, acc, columns=[c.name for c in report.columns], maps=maps, plan=plan)
        b_status, b_value, p, rejected, effect, tested = verdicts[i]
        assert b_status == int(v.status) and np.isclose(b_value, v.value, rtol=1e-12), (i, b_status, b_value, v)
        names = plan.reference.names
        assert sorted(v.columns) == sorted(names[j] for j in np.flatnonzero(tested)), i
        for j in np.flatnonzero(tested):
            c = v.columns[names[j]]
            assert np.isclose(p[j], c["p_value"], rtol=1e-9, atol=1e-300), (i, names[j], p[j], c["p_value"])
            assert bool(rejected[j]) == c["rejected"], (i, names[j])
            assert np.isclose(effect[j], c["effect"], rtol=1e-9, atol=1e-15), (i, names[j])
        checked += 1
    return checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=33, help="rows per endpoint window")
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 1000], help="windows per batch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    # every row of a window in one partial: its bytes are the window's merged aggregate
    settings, catalog, parts = endpoint_partials(args.endpoints, args.rows, args.rows)
    windows = {k: p[0] for k, p in parts.items()}
    layouts = catalog.layout_by_fingerprint
    keys = sorted(windows)
    apps = job_io.load_applications(settings.endpoint_store_connection, "bench")
    aggs = [WindowAggregate.from_bytes(windows[k], layouts) for k in keys]
    accs = [agg.accumulator for agg in aggs]
    stats = [catalog.record(k)["feature_stats"] for k in keys]
    plans = [plan_reference(fs, acc.layout) for fs, acc in zip(stats, accs)]
    maps = vd.MergeMaps()

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)  # the job's Python worker's collector
    checked = 0
    for size in args.batch:
        for lo in range(0, len(keys), size):
            sl = slice(lo, lo + size)
            checked += check_equal(plans[sl], accs[sl], stats[sl], batched_drift(plans[sl], accs[sl]),
                                   batched_verdict(plans[sl], accs[sl]), maps)

    def per_window_app():
        for k, agg in zip(keys, aggs):
            monitor_window(catalog.record(k), k, "bench", START_MS, START_MS + WINDOW_MS, agg, apps)

    def per_window_numbers():
        for fs, acc, plan in zip(stats, accs, plans):
            report = drift_from_accumulator(fs, acc, plan=plan)
            feature_drift_from_accumulator(fs, acc, columns=[c.name for c in report.columns], maps=maps, plan=plan)

    def batched(size):
        def run():
            for lo in range(0, len(keys), size):
                batched_drift(plans[lo:lo + size], accs[lo:lo + size])
                batched_verdict(plans[lo:lo + size], accs[lo:lo + size])
        return run

    cases = [("per window: monitor_window (numbers and records, as the job)", per_window_app),
             ("per window: the numbers alone", per_window_numbers)]
    cases += [(f"batched numbers, {size:,} windows per batch", batched(size)) for size in args.batch]

    def batched_and_rows(size):
        def run():
            for lo in range(0, len(keys), size):
                sl = slice(lo, lo + size)
                batched_rows(keys[sl], plans[sl], accs[sl], batched_drift(plans[sl], accs[sl]),
                             batched_verdict(plans[sl], accs[sl]), START_MS, START_MS + WINDOW_MS)
        return run

    cases += [(f"batched numbers and the stores' rows, {size:,} per batch", batched_and_rows(size))
              for size in args.batch]
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(args.repeats):
        for name, fn in cases:  # alternated, so a change of the machine's speed touches every row
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) / len(keys) * 1e6)
    print(f"{len(keys):,} endpoint windows x 20 features, {args.rows} rows each; every batched window checked "
          f"against the per-window numbers ({checked:,} checks); median of {args.repeats}, µs per endpoint window")
    print(f"| {'path':<62} | {'µs':>7} |")
    print(f"|{'-' * 64}|{'-' * 9}|")
    for name, values in times.items():
        print(f"| {name:<62} | {statistics.median(values):7.1f} |")
    # what would cross from the window stage to a stage running the applications on batches
    outs = [monitor_window(catalog.record(k), k, "bench", START_MS, START_MS + WINDOW_MS, agg, apps)
            for k, agg in zip(keys, aggs)]
    pickled = statistics.median(len(pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL)) for o in outs)
    print(f"bytes per window, median: the merged aggregate {statistics.median(len(windows[k]) for k in keys):,.0f}; "
          f"its records pickled (what crosses to the writer today) {pickled:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
