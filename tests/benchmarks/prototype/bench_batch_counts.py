"""Prototype measurement: the counts of a batch's partials made together instead of one partial at a
time, offline (no Flink).

    .venv/bin/python -m tests.benchmarks.prototype.bench_batch_counts                       # 2,000 endpoints x 20, 2 and 10 rows each
    .venv/bin/python -m tests.benchmarks.prototype.bench_batch_counts --endpoints 500 --rows 2 10 50

The parse stage makes one partial per endpoint, window and Arrow batch (``columnar._aggregate``):
for each an ``Accumulator`` of the endpoint's reference, its rows binned on that reference's edges
(``bin_index``), counted and their moments taken, then its bytes. At 10,000 endpoints a batch of
20,000 records holds ~2 rows per endpoint, and each of those steps is a few numpy calls on 2 rows.

Here a batch of ``--endpoints`` endpoints × ``rows`` rows each (20 numeric features, every
endpoint its own reference) is counted both ways:

- **per partial**: ``Accumulator.from_reference(layout).add_batch(rows)`` and ``to_bytes``, as now;
- **together**: every row binned against its own endpoint's edges in one pass (the same guess and
  correction as ``bin_index``, with each row's scale, shift and offset into the batch's edges laid
  end to end), one ``np.bincount`` for all the partials' bins, their moments with
  ``np.add.reduceat`` over the rows sorted by partial, then per partial an ``Accumulator`` given
  its slices and its bytes.

It checks that both give every partial the same histogram, counts, minimum and maximum, and the
same mean and M2 within 1e-9 (relative; the sums run in another order), and prints the median of
``--repeats`` timings per way, µs per partial and per row.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from streamdrift.udfs.accumulator import Accumulator, Layout, merge_moments


def references(endpoints: int, features: int, rng: np.random.Generator) -> list[Layout]:
    """One layout per endpoint: ``features`` numeric columns, 20 bins each over 5,000 normal rows
    of the endpoint's own mean and scale (as the scale benchmark registers them)."""
    layouts = []
    for _ in range(endpoints):
        stats = {}
        for j in range(features):
            mean, scale = rng.normal(0, 5), rng.uniform(0.5, 3)
            counts, edges = np.histogram(rng.normal(mean, scale, 5_000), bins=20)
            stats[f"f{j}"] = {"count": 5_000, "hist": [counts.tolist(), edges.tolist()]}
        layouts.append(Layout.from_feature_stats(stats))
    return layouts


def per_partial(layouts: list[Layout], x: np.ndarray, rows: int) -> list[bytes]:
    """Each partial alone, as the parse stage counts it now."""
    out = []
    for g, layout in enumerate(layouts):
        acc = Accumulator.from_reference(layout).add_batch(x[g * rows:(g + 1) * rows])
        out.append(acc.to_bytes())
    return out


class BatchEdges:
    """The edges of many layouts laid end to end, with each layout's binning arrays (what a
    catalog would keep per layout, made once)."""

    def __init__(self, layouts: list[Layout]):
        self.layouts = layouts
        self.offset = np.concatenate(([0], np.cumsum([lay.n_bins for lay in layouts])))
        self.left = np.concatenate([lay.left for lay in layouts])
        self.right = np.concatenate([lay.right for lay in layouts])
        self.scale = np.stack([lay.scale[:, 0] for lay in layouts])  # (G, C)
        self.shift = np.stack([lay.shift[:, 0] for lay in layouts])
        self.last_bin = np.stack([lay.last_bin[:, 0] for lay in layouts])
        self.bin_start = np.stack([lay.bin_start + off for lay, off in zip(layouts, self.offset[:-1])])


def together(edges: BatchEdges, x: np.ndarray, group: np.ndarray, starts: np.ndarray) -> list[bytes]:
    """All partials at once: ``x`` (n × C, rows sorted by partial), ``group`` each row's partial,
    ``starts`` each partial's first row. Finite values only (as the benchmark's rows are)."""
    xt = np.ascontiguousarray(x.T)  # (C, n)
    g = xt * edges.scale[group].T
    g -= edges.shift[group].T
    np.floor(g, out=g)
    np.fmax(g, 0.0, out=g)
    np.fmin(g, edges.last_bin[group].T, out=g)
    k = g.astype(np.intp)
    k += edges.bin_start[group].T
    left, right = edges.left, edges.right
    dec = xt < left[k]
    inc = xt >= right[k]
    k -= dec
    k += inc
    moved = dec | inc
    if moved.any():
        flat_k, flat_x = k.reshape(-1), xt.reshape(-1)
        idx = np.flatnonzero(moved)
        while idx.size:
            kk, xx = flat_k[idx], flat_x[idx]
            step = (xx >= right[kk]).astype(np.intp) - (xx < left[kk])
            flat_k[idx] = kk + step
            idx = idx[step != 0]
    hist = np.bincount(k.reshape(-1), minlength=int(edges.offset[-1]))
    n_b = np.diff(np.append(starts, xt.shape[1]))  # rows per partial
    mean_b = np.add.reduceat(xt, starts, axis=1) / n_b
    d = xt - mean_b[:, group]
    m2_b = np.add.reduceat(d * d, starts, axis=1)
    mn, mx = np.minimum.reduceat(xt, starts, axis=1), np.maximum.reduceat(xt, starts, axis=1)
    zeros = np.zeros_like(mean_b)
    _, mean, m2 = merge_moments(np.zeros(mean_b.shape, np.int64), zeros, zeros, n_b[None, :], mean_b, m2_b)
    out = []
    for p, layout in enumerate(edges.layouts):
        acc = Accumulator(layout)
        acc.rows = int(n_b[p])
        acc.count = np.full(len(layout.numeric), n_b[p], dtype=np.int64)
        acc.hist = hist[edges.offset[p]:edges.offset[p + 1]]
        acc.mean, acc.m2, acc.min, acc.max = mean[:, p], m2[:, p], mn[:, p], mx[:, p]
        out.append(acc.to_bytes())
    return out


def _same(a: bytes, b: bytes, layout: Layout) -> bool:
    x, y = Accumulator.from_bytes(a, layout), Accumulator.from_bytes(b, layout)
    exact = all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("count", "nulls", "infs", "hist", "min", "max"))
    return exact and x.rows == y.rows and np.allclose(x.mean, y.mean, rtol=1e-9, atol=0) and \
        np.allclose(x.m2, y.m2, rtol=1e-9, atol=1e-12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=2_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rows", type=int, nargs="+", default=[2, 10], help="rows per partial")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    layouts = references(args.endpoints, args.features, rng)
    edges = BatchEdges(layouts)
    print(f"{args.endpoints:,} endpoints x {args.features} features: references laid out in "
          f"{time.perf_counter() - t0:.1f} s; medians of {args.repeats} runs\n")
    print("| rows per partial | per partial: ms per batch | µs per partial | together: ms per batch | µs per partial | same counts |")
    print("|---|---|---|---|---|---|")
    for rows in args.rows:
        x = np.concatenate([rng.normal(rng.normal(0, 5), 2, size=(rows, args.features)) for _ in layouts])
        group = np.repeat(np.arange(len(layouts)), rows)
        starts = np.arange(len(layouts)) * rows
        timings = {"per": [], "together": []}
        for _ in range(args.repeats):
            for name, fn in (("per", lambda: per_partial(layouts, x, rows)),
                             ("together", lambda: together(edges, x, group, starts))):
                t = time.perf_counter()
                out = fn()
                timings[name].append(time.perf_counter() - t)
                if name == "per":
                    expected = out
                else:
                    got = out
        same = all(_same(a, b, lay) for a, b, lay in zip(expected, got, layouts))
        per, tog = statistics.median(timings["per"]), statistics.median(timings["together"])
        n = len(layouts)
        print(f"| {rows} | {per * 1e3:,.1f} | {per / n * 1e6:,.1f} | {tog * 1e3:,.1f} | {tog / n * 1e6:,.1f} | "
              f"{'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
