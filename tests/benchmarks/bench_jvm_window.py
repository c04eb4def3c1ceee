"""The Python work of an endpoint window's fire and of the built-in application's numbers beside
the same work in the JVM (a prototype, ``prototype/JvmWindowDrift.java``), and a check that the
JVM computes the same numbers: the measurement behind the design proposal of moving the window
stage's merge and the built-in application's numbers into a Java operator.

    .venv/bin/python -m tests.benchmarks.bench_jvm_window --endpoints 2000 --repeats 5   # ~2 min
    .venv/bin/python -m tests.benchmarks.bench_jvm_window --endpoints 10000 --repeats 3

Windows as ``bench_endpoint_window`` makes them (``endpoint_partials``: 20 normal features, 33
rows per window in partials of 2 rows, ~17 partials per window; ``--drifted``, a quarter of the
endpoints by default, with four features shifted so that their verdicts reject columns). Per
endpoint window, median of
``--repeats``:

* Python (what the job runs): (a) fire: ``WindowAggregate.merge_bytes`` of the window's partials
  and ``to_bytes``; (b) the numbers: the fired bytes decoded (``WindowAggregate.from_bytes``) and
  the built-in application's ``prepare_windows`` of the whole batch (as ``windows_prepared`` calls
  it: the plans, cached, and ``windows_numbers``); (c) records: ``monitor_window`` of each window
  with the project's applications, taking the prepared numbers. Beside them: the decoding alone
  and ``windows_numbers`` alone.
* JVM (single thread, no Flink, JDK of the machine, commons-math3 of ``flink-dist``): the window's
  partials as arrays (as a Java operator's state would hold them, which assumes the parse stage's
  counting in the JVM too: ``bench_jvm_parse``) merged: counts summed, moments, minimum and
  maximum merged (the sample is not: these windows have none); the numbers (distances, general
  drift, the verdict); the output objects (results, metrics, per-feature rows with their
  extra_data as maps). Warm-up passes over the windows (at least 20,000 windows: a long-running
  operator is warm) are not counted; at a few hundred windows one pass leaves the JIT cold.
* Beside them, in Python, what the proposal keeps of the hand-over: ``orjson.loads`` of each
  window's results' ``extra_data`` as JSON (the JVM would send it so; the JSON made here from
  Python's records). Not measured: the JVM writing that JSON, Flink's crossing to Python and
  PyFlink's decoding of the row.

Python runs with the collector as the job's Python worker sets it (``gc.freeze()`` after the
setup, the young generation every 50,000 allocations), and its first repeat is not counted.

The JVM's numbers are compared with ``windows_numbers``' (and the raw p-value, effect and shift
with ``feature_verdict_batch``'s, the merged moments with ``merge_bytes``') for every window and
column; exit status 1 when a difference exceeds 1e-9 (absolute; KLD and the moments relative to
max(1, |x|); a p-value relative to itself, or above 1e-10 within 4 ulp of 1.0, the rounding of
``1 - CDF``, which both sides compute above 1e-9, the survival function below), or a stored
4-digit value, a status, a rejection or the order of ``drifted`` differs. A stored value that
differs only because its raw values, within those bounds, round to either side of a 4-digit
boundary is listed instead. The non-central
χ² CDF of the prototype (it is not in commons-math3) is checked against scipy's ``chndtr`` on a
grid including large λ. The records' objects are not compared.

Numeric columns only: the export refuses an endpoint with a categorical or not compared column.

Export (Python -> JVM), little-endian::

    "SDJW" int32 version(2) int32 endpoints int32 repeats
    float64 alpha, alpha_detected, min_effect, zero_scaling, min_expected, potential, detected, noise_sigmas
    int32 buckets_per_doubling
    int32 K, then K x float64 (x, df, lambda): points for the non-central chi2 check
    per endpoint:
      int32 len + UTF-8 endpoint id
      int32 C (reference columns, all numeric), int32 B (flat numeric bins, padding bins included)
      per column: int32 len + UTF-8 name, int32 start, int32 width       (ReferenceCounts)
      float64 counts[B], float64 total[C]                                (ReferenceCounts)
      int32 P (compared columns, the plan's order), int32 W (plan width)
      per compared column: int32 reference_index, int32 count_index, int32 invalid_index,
        int32 gather[W] (a flat bin, -1: the zero pad), float64 q[W], float64 ref_n
      int32 partials; per partial: int64 rows, events, errors, latency_count, first_ms, last_ms
        (-1: none), float64 latency_sum, int32 L + L x (int32 bin, int64 count) latency histogram,
        int32 nnz + nnz x (int32 index, int64 value) into the int64 vector [hist[B], count[C], invalid[C]],
        float64 mean[C], m2[C], min[C], max[C] (of the finite values), int64 nulls[C], infs[C]

Result (JVM -> Python), little-endian float64 throughout::

    K x float64: the chi2 CDF at the check points
    per window: flag (1: numbers, 0: none), P, general, status, tvd_mean, hellinger_mean, kld_mean,
      verdict value, verdict status (-1: nothing tested), then per compared column 17 values:
      tvd, hellinger, kld, drift, status, p_raw, p4, rejected, rejected_detected, effect_raw,
      effect4, shift_raw, shift4, n, window_count, invalid_share (NaN: None), place in drifted (-1: not)
    per window: the merged mean[C], m2[C], min[C], max[C]
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from streamdrift.connectors import job_io
from streamdrift.udfs import verdict as vd
from streamdrift.udfs.accumulator import Accumulator
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.drift_batch import windows_numbers
from streamdrift.udfs.histogram_drift import FOUR_DIGITS, ZERO_SCALING
from streamdrift.udfs.monitor import monitor_window, windows_prepared
from streamdrift.udfs.window import WindowAggregate
from tests.benchmarks.bench_endpoint_window import START_MS, WINDOW_MS, endpoint_partials

PROTOTYPE = Path(__file__).parent / "prototype" / "JvmWindowDrift.java"
COLUMN_FIELDS = ("tvd", "hellinger", "kld", "drift", "status", "p_raw", "p4", "rejected", "rejected_detected",
                 "effect_raw", "effect4", "shift_raw", "shift4", "n", "window_count", "invalid_share", "drifted_at")
TOLERANCE = 1e-9
P_FLOOR = 4 * 2.0 ** -52  # a χ² p-value above 1e-9 is 1 - CDF: its error is a few ulp of 1.0
P_TAIL = 1e-10  # below 1e-9 both take the survival function: relative, whatever its size
# (x, df, lambda): small and large non-centrality, fractional df (Satterthwaite's df / a)
NCX2_POINTS = [(x * (df + lam) + 0.1, df, lam) for df in (0.3, 2.0, 7.7, 21.0, 150.0)
               for lam in (0.0, 1e-3, 0.5, 12.0, 300.0, 5000.0, 40000.0) for x in (0.25, 0.8, 1.0, 1.3, 2.0)]


def java_version() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return out.splitlines()[0] if out else "?"


def compile_prototype(build: Path) -> Path:
    """flink-dist's jar (commons-math3 is in it, unshaded), the prototype compiled against it
    (as ``bench_jvm_parse`` does)."""
    import pyflink

    dist = next((Path(pyflink.__file__).parent / "lib").glob("flink-dist-*.jar"))
    subprocess.run(["javac", "-nowarn", "-d", str(build), "-cp", str(dist), str(PROTOTYPE)], check=True)
    return dist


def export(path: Path, app: HistogramDataDriftApplication, catalog, parts: dict[str, list[bytes]], repeats: int,
           keys: list[str]) -> None:
    """The file the prototype reads (module doc); each partial decoded once here."""
    layouts = catalog.layout_by_fingerprint
    out = bytearray(b"SDJW")
    out += struct.pack("<3i", 2, len(keys), repeats)
    out += struct.pack("<8d", app.alpha, app.alpha_detected, app.min_effect, ZERO_SCALING, vd.MIN_EXPECTED,
                       app.classifier.potential, app.classifier.detected, vd.NOISE_SIGMAS)
    out += struct.pack("<i", vd.BUCKETS_PER_DOUBLING)
    out += struct.pack("<i", len(NCX2_POINTS)) + np.asarray(NCX2_POINTS, "<f8").tobytes()
    for key in keys:
        stats = catalog.record(key)["feature_stats"]
        layout = catalog.layout(key)
        plan = app.plans.get(stats, layout, app.include_categorical)
        ref = plan.reference
        if ref.n_numeric != len(ref.names) or any(k != "numeric" for k in plan.kinds) or layout.n_cat_bins:
            raise SystemExit(f"endpoint {key}: a categorical column; the JVM prototype supports numeric columns only")
        kb = key.encode()
        out += struct.pack("<i", len(kb)) + kb + struct.pack("<2i", len(ref.names), ref.counts.size)
        for name, start, width in zip(ref.names, ref.starts.tolist(), ref.widths.tolist()):
            b = name.encode()
            out += struct.pack("<i", len(b)) + b + struct.pack("<2i", start, width)
        out += ref.counts.astype("<f8").tobytes() + ref.total.astype("<f8").tobytes()
        p, w = plan.gather.shape
        out += struct.pack("<2i", p, w)
        pad = layout.n_bins + layout.n_cat_bins  # the gather's zero slot
        for i in range(p):
            g = np.where(plan.gather[i] == pad, -1, plan.gather[i]).astype("<i4")
            out += struct.pack("<3i", int(plan.reference_index[i]), int(plan.count_index[i]),
                               int(plan.invalid_index[i]))
            out += g.tobytes() + plan.q[i].astype("<f8").tobytes() + struct.pack("<d", float(plan.ref_n[i]))
        out += struct.pack("<i", len(parts[key]))
        for data in parts[key]:
            agg = WindowAggregate.from_bytes(data, layouts, "drop")
            lat = np.flatnonzero(agg.latency_hist)
            out += struct.pack("<6qd", agg.rows, agg.events, agg.errors, agg.latency_count,
                               -1 if agg.first_ms is None else agg.first_ms, -1 if agg.last_ms is None else agg.last_ms,
                               agg.latency_sum)
            out += struct.pack("<i", lat.size) + np.rec.fromarrays(
                [lat.astype("<i4"), agg.latency_hist[lat].astype("<i8")], formats="<i4,<i8").tobytes()
            acc = agg.accumulator if agg.accumulator is not None else Accumulator(catalog.layout(key))
            ints = np.concatenate([acc.hist, acc.count, acc.invalid]).astype(np.int64)
            nz = np.flatnonzero(ints)
            out += struct.pack("<i", nz.size) + np.rec.fromarrays(
                [nz.astype("<i4"), ints[nz].astype("<i8")], formats="<i4,<i8").tobytes()
            out += np.concatenate([acc.mean, acc.m2, acc.min, acc.max]).astype("<f8").tobytes()
            out += np.concatenate([acc.nulls, acc.infs]).astype("<i8").tobytes()
    path.write_bytes(bytes(out))


def read_result(path: Path, keys: list[str], catalog):
    data = np.fromfile(path, "<f8")
    at = len(NCX2_POINTS)
    cdf, windows = data[:at], []
    for _ in keys:
        flag, p = int(data[at]), int(data[at + 1])
        head = data[at + 2:at + 9]
        cols = data[at + 9:at + 9 + p * len(COLUMN_FIELDS)].reshape(p, len(COLUMN_FIELDS))
        at += 9 + p * len(COLUMN_FIELDS)
        windows.append(None if flag == 0 else (head, cols))
    moments = []
    for key in keys:
        c = 4 * len(catalog.layout(key).numeric)
        moments.append(data[at:at + c].reshape(4, -1))
        at += c
    assert at == data.size, (at, data.size)
    return cdf, windows, moments


def compare(app, catalog, fired: dict[str, bytes], keys: list[str], jvm_windows, jvm_cdf, jvm_moments
            ) -> tuple[dict, dict, bool, str, list[str]]:
    """(max difference per float, scaled as the module doc says, mismatches per discrete field, ok,
    what the verdicts were, the stored values listed)."""
    from scipy.special import chndtr

    layouts = catalog.layout_by_fingerprint
    accs = [WindowAggregate.from_bytes(fired[k], layouts).accumulator for k in keys]
    stats = [catalog.record(k)["feature_stats"] for k in keys]
    plans = [app.plans.get(s, a.layout, app.include_categorical) for s, a in zip(stats, accs)]
    numbers = windows_numbers(plans, accs, app.classifier, alpha=app.alpha, alpha_detected=app.alpha_detected,
                              min_effect=app.min_effect)
    # the raw test values (before the 4 digits), as windows_numbers' verdict computes them
    raw = vd.feature_verdict_batch([p.reference for p in plans], [vd.window_counts(a) for a in accs],
                                   [p.tested for p in plans], alpha=app.alpha, alpha_detected=app.alpha_detected,
                                   min_effect=app.min_effect)
    diff: dict[str, float] = {}
    bad: dict[str, int] = {}

    def d(name, a, b, scale=1.0):
        if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
            same = (a is None or (isinstance(a, float) and math.isnan(a))) == \
                   (b is None or (isinstance(b, float) and math.isnan(b)))
            if not same:
                bad[f"{name} (None/NaN)"] = bad.get(f"{name} (None/NaN)", 0) + 1
            return
        diff[name] = max(diff.get(name, 0.0), abs(a - b) / scale)

    def same(name, a, b):
        bad.setdefault(name, 0)
        if a != b:
            bad[name] += 1

    listed: list[str] = []

    def stored4(field, py_stored, jvm_stored, py_raw, jvm_raw, where, scale=1.0):
        """A stored 4-digit value; one that differs while the raw values agree (|difference| /
        ``scale`` within the tolerance) is listed, not counted as a mismatch: the JVM sums in
        order, numpy pairwise, and the last bits that differ move a value at a rounding boundary."""
        name = f"{field} stored (4 digits)"
        if py_stored != jvm_stored and abs(py_raw - jvm_raw) / scale <= TOLERANCE \
                and float(FOUR_DIGITS(jvm_raw)) == jvm_stored and float(FOUR_DIGITS(py_raw)) == py_stored:
            listed.append(f"{where}: {field} {py_raw!r} (Python) and {jvm_raw!r} (JVM) stored as "
                            f"{py_stored!r} and {jvm_stored!r}")
            return
        same(name, py_stored, jvm_stored)

    expected = [float(x) for x in chndtr(*np.asarray(NCX2_POINTS).T)]
    for e, j in zip(expected, jvm_cdf.tolist()):
        d("non-central chi2 CDF vs scipy chndtr", e, j)
    for i, acc in enumerate(accs):  # the merge: moments relative to max(1, |x|), minimum and maximum exact
        mean, m2, low, high = jvm_moments[i]
        for name, py_v, jvm_v in (("merged mean", acc.mean, mean), ("merged M2", acc.m2, m2)):
            for a, b in zip(py_v.tolist(), jvm_v.tolist()):
                d(f"{name} (relative to max(1, |x|))", a, b, max(1.0, abs(a)))
        same("merged minimum and maximum", (acc.min.tolist(), acc.max.tolist()), (low.tolist(), high.tolist()))
    for i, (py, jv) in enumerate(zip(numbers, jvm_windows)):
        same("window numbers or none", py is None, jv is None)
        if py is None or jv is None:
            continue
        head, cols = jv
        d("general", py.general, head[0])
        same("general status", py.status, int(head[1]))
        for name, h in zip(("tvd_mean", "hellinger_mean", "kld_mean"), head[2:5]):
            d(name, py.metrics[name], float(h), max(1.0, abs(py.metrics[name])) if name == "kld_mean" else 1.0)
        same("verdict tested (None)", py.verdict is None, int(head[6]) < 0)
        if py.verdict is not None:
            d("verdict value", py.verdict[0], float(head[5]))
            same("verdict status", py.verdict[1], int(head[6]))
            order = sorted((int(c[16]), py.rows[j][0]) for j, c in enumerate(cols.tolist()) if c[16] >= 0)
            same("drifted (order)", py.verdict[2]["drifted"], [name for _, name in order])
        columns = py.details["columns"]
        tests = py.verdict[2]["columns"] if py.verdict is not None else {}
        ref_index = plans[i].reference_index
        assert len(py.rows) == len(cols), (keys[i], len(py.rows), len(cols))
        for j, (row, c) in enumerate(zip(py.rows, cols.tolist())):
            name, t, h, kl, p4, rejected, effect4, wc, rc, share = row
            col = dict(zip(COLUMN_FIELDS, c))
            d("tvd", t, col["tvd"])
            d("hellinger", h, col["hellinger"])
            d("kld (relative to max(1, |kld|))", kl, col["kld"], max(1.0, abs(kl)))
            d("column drift", columns[name]["drift"], col["drift"])
            same("column status", columns[name]["status"], int(col["status"]))
            same("window_count", wc, int(col["window_count"]))
            d("invalid_share", share, None if math.isnan(col["invalid_share"]) else col["invalid_share"])
            k = int(ref_index[j])
            tested = bool(raw.tested[i, k])
            same("tested", tested, not math.isnan(col["p_raw"]))
            if not tested:
                continue
            p_raw = float(raw.p_value[i, k])
            tail = max(p_raw, col["p_raw"]) < P_TAIL
            p_scale = abs(p_raw) if tail else max(abs(p_raw), P_FLOOR / TOLERANCE)
            d("p_value below 1e-10 (raw; relative)" if tail else "p_value (raw; relative, or within 4 ulp of 1.0)",
              p_raw, col["p_raw"], p_scale)
            d("effect (raw)", float(raw.effect[i, k]), col["effect_raw"])
            d("shift (raw)", float(raw.shift[i, k]), col["shift_raw"])
            for field, stored, raw_py, jvm, scale in (
                    ("p_value", p4, p_raw, "p", p_scale), ("effect", effect4, float(raw.effect[i, k]), "effect", 1.0),
                    ("shift", tests[name]["shift"], float(raw.shift[i, k]), "shift", 1.0)):
                stored4(field, stored, col[jvm + "4"], raw_py, col[jvm + "_raw"], f"{keys[i]} {name}", scale)
            same("rejected", rejected, bool(col["rejected"]))
            same("rejected at alpha_detected", bool(raw.rejected_detected[i, k]), bool(col["rejected_detected"]))
            same("n", int(round(float(raw.n[i, k]))), int(col["n"]))
    ok = all(v <= TOLERANCE for v in diff.values()) and not any(bad.values())
    # how much of the verdict's branches the windows reach (only the --drifted endpoints' reject)
    statuses = [n.verdict[1] for n in numbers if n is not None and n.verdict is not None]
    coverage = (f"Python's verdicts: {statuses.count(1)} potential, {statuses.count(2)} detected of {len(statuses)}; "
                f"{int(raw.rejected.sum())} columns rejected at alpha of {int(raw.tested.sum())} tested")
    return diff, bad, ok, coverage, listed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=33, help="rows per endpoint window")
    parser.add_argument("--rows-per-partial", type=int, default=2, help="rows of each partial")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--drifted", type=float, default=0.25, help="share of endpoints whose first four features "
                        "drift (0.5 to 4 standard deviations), so that the comparison covers rejected columns")
    parser.add_argument("--heap", default="3g", help="the JVM's -Xmx")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    settings, catalog, parts, _ = endpoint_partials(args.endpoints, args.rows, args.rows_per_partial,
                                                    args.drifted)
    apps = job_io.load_applications(settings.endpoint_store_connection, "bench")
    app = next(a for a in apps if type(a) is HistogramDataDriftApplication)
    layouts = catalog.layout_by_fingerprint
    keys = list(parts)
    print(f"setup {time.perf_counter() - t0:.0f} s; applications: {[type(a).__name__ for a in apps]}", file=sys.stderr)
    gc.freeze()  # the job's Python worker's collector (operators.parse.ParseRecords.open)
    gc.set_threshold(50_000, 20, 100)

    times: dict[str, list[float]] = {}

    def timed(name, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        times.setdefault(name, []).append((time.perf_counter() - t) / len(keys) * 1e3)
        return out

    def fire():
        return {k: WindowAggregate.merge_bytes(parts[k], layouts, "drop").to_bytes() for k in keys}

    fired = {}
    for repeat in range(args.repeats + 1):  # the first is a warm-up, not counted
        if repeat == 1:
            times.clear()
        start = START_MS + repeat * WINDOW_MS
        fired = timed("merge", fire)
        aggs = timed("numbers: decode", lambda: [WindowAggregate.from_bytes(fired[k], layouts) for k in keys])
        records = [catalog.record(k) for k in keys]
        prepared = windows_prepared(apps, list(zip(records, aggs)))
        timed("numbers: prepare_windows", prepared.__enter__)
        try:
            outs = timed("records", lambda: [monitor_window(r, k, "bench", start, start + WINDOW_MS, agg, apps)
                                             for r, k, agg in zip(records, keys, aggs)])
        finally:
            prepared.__exit__(None, None, None)
        assert all(o.results for o in outs)
        accs = [a.accumulator for a in aggs]
        plans = [app.plans.get(r["feature_stats"], a.layout, app.include_categorical) for r, a in zip(records, accs)]
        timed("beside: windows_numbers alone", lambda: windows_numbers(
            plans, accs, app.classifier, alpha=app.alpha, alpha_detected=app.alpha_detected,
            min_effect=app.min_effect))
        sent = [[orjson.dumps(r.extra_data) for r in o.results] for o in outs]  # as the JVM would send them
        timed("beside: hand-over, orjson.loads of a window's results' extra_data",
              lambda: [[orjson.loads(text) for text in window] for window in sent])
    sent_kb = statistics.median(sum(map(len, window)) for window in sent) / 1e3

    with tempfile.TemporaryDirectory(prefix="bench-jvm-window-") as tmp:
        tmp = Path(tmp)
        dist = compile_prototype(tmp)
        export(tmp / "windows.bin", app, catalog, parts, args.repeats, keys)
        size_mb = (tmp / "windows.bin").stat().st_size / 1e6
        proc = subprocess.run(["java", f"-Xmx{args.heap}", "-XX:+UseParallelGC", "-XX:ParallelGCThreads=1",
                               "-XX:CICompilerCount=2", "-cp", f"{dist}:{tmp}", "JvmWindowDrift",
                               str(tmp / "windows.bin"), str(tmp / "numbers.bin")],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 2
        jvm = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+) ms_per_window_median=(\S+)", proc.stdout,
                                                                    re.M)}
        cdf, jvm_windows, jvm_moments = read_result(tmp / "numbers.bin", keys, catalog)
    diff, bad, ok, coverage, listed = compare(app, catalog, fired, keys, jvm_windows, cdf, jvm_moments)

    py = {k: statistics.median(v) for k, v in times.items()}
    py_numbers = py["numbers: decode"] + py["numbers: prepare_windows"]
    sizes = [len(p) for p in parts.values()]
    print(f"{len(keys):,} endpoint windows x 20 numeric features, {args.rows} rows per window in partials of "
          f"{args.rows_per_partial} rows ({statistics.median(sizes):.0f} partials per window, median); "
          f"median of {args.repeats} repeats after warm-up; ms per endpoint window; "
          f"{java_version()}; os.cpu_count() = {os.cpu_count()}; export {size_mb:.1f} MB; "
          f"a window's results' extra_data {sent_kb:.1f} kB of JSON")
    print("\n".join(proc.stdout.splitlines()))
    print()
    rows = [("merge of the window's partials (Python: merge_bytes + to_bytes; JVM: arrays)", py["merge"],
             jvm["merge"]),
            ("built-in application's numbers, distances + verdict (Python: decode + prepare_windows)", py_numbers,
             jvm["numbers"]),
            ("per-window output records (Python: monitor_window; JVM: result/metric/row objects)", py["records"],
             jvm["records"])]
    print(f"| {'step':<88} | {'Python ms/window':>16} | {'JVM ms/window':>13} |")
    print(f"|{'-' * 90}|{'-' * 18}:|{'-' * 15}:|".replace("-:|", ":|"))
    for name, a, b in rows:
        print(f"| {name:<88} | {a:16.4f} | {b:13.4f} |")
    print(f"| {'total':<88} | {sum(r[1] for r in rows):16.4f} | {sum(r[2] for r in rows):13.4f} |")
    print()
    print("Python, beside: " + "; ".join(f"{k} {v:.4f}" for k, v in py.items() if k.startswith(("numbers", "beside"))))
    print()
    print(f"JVM vs Python, {len(keys):,} windows (tolerance {TOLERANCE:g}; absolute unless the quantity says how "
          f"it is scaled):")
    print("| quantity | max difference |")
    print("|---|---:|")
    for k, v in diff.items():
        print(f"| {k} | {v:.3g} |")
    print("| discrete field | mismatches |")
    print("|---|---:|")
    for k, v in bad.items():
        print(f"| {k} | {v} |")
    print(f"stored 4-digit values that differ with the raw values within the tolerance: {len(listed)}")
    for line in listed[:10]:
        print(f"  {line}")
    print(coverage)
    print("agreement: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
