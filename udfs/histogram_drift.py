"""The default application, ``histogram-data-drift``, as a pure function.

Per monitored column, with p the window's and q the reference's probabilities (bin counts
divided by the column's non-null ``count``, as MLRun's ``dict_to_histogram``):
TVD, Hellinger and KLD (:mod:`streamdrift.udfs.drift`). Then::

    tvd_mean, hellinger_mean, kld_mean   = means over the compared columns   (metrics)
    general_drift = (tvd_mean + hellinger_mean) / 2                          (result, kind 0)
    status        = 2 if general_drift >= detected (0.7)
                    1 if general_drift >= potential (0.5)
                    0 otherwise

For numeric columns these are MLRun's numbers for the same histograms. Categorical columns
(ours only: MLRun's application ignores them) take part with their category-count vectors,
categories plus ``other``; ``include_categorical=False`` gives MLRun's numeric-only means.

Nothing raises for a column that cannot be compared; the report lists it instead:

* ``missing_in_window``: in the reference, not in the window statistics;
* ``missing_in_reference``: in the window statistics, not in the reference (e.g. a timestamp);
* ``skipped``: (column, reason) for a column present on both sides but not comparable:
  no histogram in the reference (unsupported type, no values in training), no non-null value
  in the window, histograms on different edges, categorical with ``include_categorical=False``.

When no column can be compared the metrics and ``general_drift`` are None and the status is
``IRRELEVANT`` (-1): there is no value to classify, and 0 ("no drift") would be a claim.

Invalid values (strings that are not numbers in a numeric column, :mod:`streamdrift.udfs.accumulator`) take
no part in the measures; per numeric column the window's ``invalid_share`` = invalid values /
(non-null + invalid values) is reported beside them (None when the window statistics do not
count invalid values, e.g. MLRun's); the application's metric ``invalid_share`` is the same
share over all the window's numeric columns (:meth:`streamdrift.udfs.accumulator.Accumulator.invalid_share`).

Beside MLRun's result the application reports ``feature_drift`` (kind ``DATA_DRIFT``,
:func:`feature_drift_from_accumulator`): per compared column a two-sample test of the window's
bin counts against the reference's, combined over columns with Benjamini–Hochberg
(:mod:`streamdrift.udfs.verdict`)::

    status = 2 if some column is rejected at FDR alpha_detected (0.1 %)
             1 if some column is rejected at FDR alpha (1 %)
             0 otherwise
    value  = share of the compared columns rejected at alpha
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamdrift.udfs import verdict as vd
from streamdrift.udfs.drift import ZERO_SCALING, hellinger, kld, tvd
from streamdrift.udfs.records import FeatureDriftRecord, ResultKindApp, ResultRecord, ResultStatusApp, record_builder
from streamdrift.udfs.reference import is_categorical_stats, is_numeric_stats, pad_hist

APP_NAME = "histogram-data-drift"
RESULT_NAME = "general_drift"
FEATURE_DRIFT_NAME = vd.RESULT_NAME
METRIC_NAMES = ("tvd_mean", "hellinger_mean", "kld_mean")


@dataclass(frozen=True)
class DriftClassifier:
    """Thresholds from a drift value in [0, 1] to a status.

    ``detected`` at ``value >= detected``, ``potential_detection`` at ``value >= potential``,
    else ``no_detection``. Requires ``0 < potential < detected < 1``.

    Examples
    --------
    >>> DriftClassifier(potential=0.7, detected=0.5)
    Traceback (most recent call last):
    ...
    ValueError: drift thresholds must satisfy 0 < potential < detected < 1, got potential=0.7, detected=0.5
    """

    potential: float = 0.5
    detected: float = 0.7

    def __post_init__(self) -> None:
        if not (0 < self.potential < self.detected < 1):
            raise ValueError(
                "drift thresholds must satisfy 0 < potential < detected < 1, got "
                f"potential={self.potential!r}, detected={self.detected!r}"
            )

    def status(self, value: float) -> ResultStatusApp:
        """Return the status of ``value``; ValueError if it is NaN or outside [0, 1].

        >>> [int(DriftClassifier().status(v)) for v in (0.2, 0.5, 0.7)]
        [0, 1, 2]
        >>> DriftClassifier().status(float('nan'))
        Traceback (most recent call last):
        ...
        ValueError: drift value must be in [0, 1], got nan
        """
        if not (0 <= value <= 1):
            raise ValueError(f"drift value must be in [0, 1], got {value!r}")
        if value >= self.detected:
            return ResultStatusApp.detected
        if value >= self.potential:
            return ResultStatusApp.potential_detection
        return ResultStatusApp.no_detection


@dataclass(frozen=True)
class ColumnDrift:
    """One compared column: its measures, its drift ``(tvd + hellinger) / 2`` and status."""

    name: str
    kind: str  # "numeric" or "categorical"
    tvd: float
    hellinger: float
    kld: float
    drift: float
    status: ResultStatusApp
    window_count: int
    reference_count: int
    invalid_share: float | None = None  # numeric columns: the window's invalid values / (non-null + invalid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, without the name (the report keys the columns by name); ``status`` an int.

        >>> c = ColumnDrift('x', 'numeric', 0.25, 0.2, 0.3, 0.225, ResultStatusApp.no_detection, 4, 4)
        >>> c.to_dict()['status'], 'invalid_share' in c.to_dict()
        (0, False)
        """
        out = {
            "kind": self.kind,
            "tvd": self.tvd,
            "hellinger": self.hellinger,
            "kld": self.kld,
            "drift": self.drift,
            "status": int(self.status),
            "window_count": self.window_count,
            "reference_count": self.reference_count,
        }
        if self.invalid_share is not None:
            out["invalid_share"] = self.invalid_share
        return out


@dataclass(frozen=True)
class DriftReport:
    """What ``histogram-data-drift`` reports for one window.

    ``general_drift`` is the result (name ``general_drift``, kind ``DATA_DRIFT``); ``metrics``
    maps ``tvd_mean``, ``hellinger_mean``, ``kld_mean`` to their values; ``columns`` holds the
    per-column details for the UI. See the module docstring for None values and the lists.
    """

    general_drift: float | None
    status: ResultStatusApp
    metrics: dict[str, float | None]
    columns: tuple[ColumnDrift, ...]
    missing_in_window: tuple[str, ...] = ()
    missing_in_reference: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    kind: ResultKindApp = ResultKindApp.data_drift
    name: str = field(default=RESULT_NAME)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (plain ints, floats, strings, lists; None for "no value").

        >>> report = histogram_drift({'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}, {'y': {}})
        >>> report.to_dict()['value'], report.to_dict()['status'], report.to_dict()['missing_in_window']
        (None, -1, ['x'])
        """
        return {
            "name": self.name,
            "kind": int(self.kind),
            "value": self.general_drift,
            "status": int(self.status),
            "metrics": dict(self.metrics),
            "columns": {c.name: c.to_dict() for c in self.columns},
            "missing_in_window": list(self.missing_in_window),
            "missing_in_reference": list(self.missing_in_reference),
            "skipped": {name: reason for name, reason in self.skipped},
        }


_column_drift = record_builder(ColumnDrift)


def _category_vector(ref: Mapping[str, Any], win: Mapping[str, Any]) -> np.ndarray | None:
    """Window counts aligned on the reference categories + other; None if not categorical."""
    if not is_categorical_stats(win):
        return None
    index = {c: i for i, c in enumerate(ref["categories"])}
    out = np.zeros(len(index) + 1)
    for cat, n in zip(win["categories"], win["category_counts"]):
        out[index.get(cat, len(index))] += n
    out[-1] += win.get("other_count", 0)
    return out


def _invalid_share(stats: Mapping[str, Any]) -> float | None:
    """A numeric column's invalid values / (non-null + invalid values); None without a count of
    invalid values or without any value."""
    invalid = stats.get("invalid")
    if invalid is None or not is_numeric_stats(stats):
        return None
    total = invalid + (stats.get("count") or 0)
    return invalid / total if total else None


def _count(stats: Mapping[str, Any], counts: np.ndarray) -> float:
    """The non-null count MLRun divides by: ``count``, or the counts' sum when it is absent."""
    n = stats.get("count")
    return float(counts.sum()) if n is None else float(n)


def _hist_lists(name: str, stats: Mapping[str, Any]) -> tuple[list, list]:
    """Padded (counts, edges) lists of a numeric entry; ValueError naming a malformed one."""
    hist = stats["hist"]
    if not isinstance(hist, (list, tuple)) or len(hist) != 2:
        raise ValueError(f"column {name!r}: 'hist' must be [counts, edges], got {hist!r:.80}")
    counts, edges = pad_hist(hist[0], hist[1])
    if len(edges) != len(counts) + 1:
        raise ValueError(
            f"column {name!r}: 'hist' needs len(edges) == len(counts) + 1, "
            f"got {len(counts)} counts and {len(edges)} edges"
        )
    return counts, edges


def _pair_counts(name: str, ref: Mapping[str, Any], win: Mapping[str, Any]):
    """(kind, window counts, reference counts) or (None, reason, None) when not comparable."""
    if is_numeric_stats(ref):
        ref_counts, ref_edges = _hist_lists(name, ref)
        if not is_numeric_stats(win):
            return None, "numeric in the reference, no histogram in the window", None
        win_counts, win_edges = _hist_lists(name, win)
        if win_edges != ref_edges:
            return None, "window histogram is not on the reference edges", None
        return (
            "numeric",
            np.asarray(win_counts, dtype=np.float64),
            np.asarray(ref_counts, dtype=np.float64),
        )
    if is_categorical_stats(ref):
        win_counts = _category_vector(ref, win)
        if win_counts is None:
            return None, "categorical in the reference, no category counts in the window", None
        ref_counts = np.asarray([*ref["category_counts"], ref.get("other_count", 0)], dtype=np.float64)
        return "categorical", win_counts, ref_counts
    return None, "no histogram in the reference (unsupported type or no values in training)", None


def histogram_drift(
    feature_stats: Mapping[str, Mapping[str, Any]],
    window_stats: Mapping[str, Mapping[str, Any]],
    *,
    classifier: DriftClassifier | None = None,
    include_categorical: bool = True,
    zero_scaling: float = ZERO_SCALING,
) -> DriftReport:
    """Compare a window with the reference, as MLRun's ``HistogramDataDriftApplication``.

    :param feature_stats: the reference statistics (``streamdrift.udfs.reference.feature_stats`` or
        MLRun's ``feature_stats``; unpadded histograms are padded as MLRun does).
    :param window_stats:  the window's statistics in the same form, on the reference edges
        (``Accumulator.to_stats()`` or MLRun's ``sample_df_stats``).
    :param classifier:    thresholds; default potential 0.5, detected 0.7.
    :param include_categorical: let categorical columns take part (False: MLRun's means).
    :param zero_scaling:  KLD's replacement for a zero denominator (MLRun: 1e-4).

    Examples
    --------
    A reference of 4 rows in two bins [0, 1), [1, 2] (padded by MLRun's two outer bins) and a
    window of 4 rows, 1 in the first bin and 3 in the second: p = (0, 1/4, 3/4, 0) and
    q = (0, 1/2, 1/2, 0).

    >>> from streamdrift.udfs.accumulator import Accumulator
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> window = Accumulator.from_reference(stats).add_batch(np.array([[0.5], [1.5], [1.5], [1.5]]))
    >>> window.to_stats()['x']['hist'][0]
    [0, 1, 3, 0]
    >>> report = histogram_drift(stats, window.to_stats())
    >>> p, q = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    >>> tvd = np.abs(p - q).sum() / 2
    >>> hellinger = np.sqrt(1 - np.sqrt(p * q).sum())
    >>> kld = (p * np.log(p / q)).sum() + (q * np.log(q / p)).sum()  # MLRun's: both directions
    >>> float(tvd), bool(np.isclose(report.metrics['hellinger_mean'], hellinger))
    (0.25, True)
    >>> bool(np.isclose(report.metrics['kld_mean'], kld))
    True
    >>> bool(np.isclose(report.general_drift, (tvd + hellinger) / 2)), int(report.status)  # below 0.5
    (True, 0)

    A column on one side only is listed, not compared; with nothing compared there is no value:

    >>> report = histogram_drift(stats, {'timestamp': {'count': 4}})
    >>> report.general_drift, int(report.status), report.missing_in_window, report.missing_in_reference
    (None, -1, ('x',), ('timestamp',))
    """
    classifier = classifier or DriftClassifier()
    names, kinds, win_rows, ref_rows, win_n, ref_n, shares = [], [], [], [], [], [], []
    missing_in_window, skipped = [], []
    for name, ref in feature_stats.items():
        if name not in window_stats:
            missing_in_window.append(name)
            continue
        win = window_stats[name]
        kind, win_counts, ref_counts = _pair_counts(name, ref, win)
        if kind is None:
            skipped.append((name, win_counts))
            continue
        if kind == "categorical" and not include_categorical:
            skipped.append((name, "categorical, excluded by include_categorical=False"))
            continue
        n_ref, n_win = _count(ref, ref_counts), _count(win, win_counts)
        if n_ref <= 0:
            skipped.append((name, "no values in the reference"))
            continue
        if n_win <= 0:
            held = [f"{win[k]} {k if k == 'nulls' else 'invalid values'}" for k in ("nulls", "invalid") if win.get(k)]
            suffix = f" ({', '.join(held)})" if held else ""
            skipped.append((name, f"no non-null values in the window{suffix}"))
            continue
        names.append(name)
        kinds.append(kind)
        win_rows.append(win_counts)
        ref_rows.append(ref_counts)
        win_n.append(n_win)
        ref_n.append(n_ref)
        shares.append(_invalid_share(win) if kind == "numeric" else None)
    missing_in_reference = tuple(n for n in window_stats if n not in feature_stats)

    if not names:
        return DriftReport(
            general_drift=None,
            status=ResultStatusApp.irrelevant,
            metrics={m: None for m in METRIC_NAMES},
            columns=(),
            missing_in_window=tuple(missing_in_window),
            missing_in_reference=missing_in_reference,
            skipped=tuple(skipped),
        )

    # one matrix per side, columns × bins, zero-padded to the widest histogram: a bin that
    # is 0 on both sides adds nothing to TVD, Hellinger or KLD
    width = max(r.size for r in win_rows)
    p = np.zeros((len(names), width))
    q = np.zeros((len(names), width))
    for i, (w, r) in enumerate(zip(win_rows, ref_rows)):
        p[i, : w.size] = w / win_n[i]
        q[i, : r.size] = r / ref_n[i]
    return _report(names, kinds, p, q, win_n, ref_n, shares, classifier, zero_scaling,
                   tuple(missing_in_window), missing_in_reference, tuple(skipped))


def _report(names: Sequence[str], kinds: Sequence[str], p: np.ndarray, q: np.ndarray, win_n: Sequence[float],
            ref_n: Sequence[float], shares: Sequence[float | None], classifier: DriftClassifier, zero_scaling: float,
            missing_in_window: tuple[str, ...], missing_in_reference: tuple[str, ...],
            skipped: tuple[tuple[str, str], ...]) -> DriftReport:
    """The report of the compared columns' probabilities ``p`` (window) and ``q`` (reference),
    (C, W) each, and their non-null counts."""
    return _report_of_measures(names, kinds, *column_measures(p, q, zero_scaling), win_n, ref_n, shares, classifier,
                               missing_in_window, missing_in_reference, skipped)


def column_measures(p: np.ndarray, q: np.ndarray, zero_scaling: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TVD, Hellinger and KLD of each row of ``p`` and ``q`` (R, W), probabilities: three (R,)
    arrays (:mod:`streamdrift.udfs.drift`; ``zero_scaling`` replaces KLD's empty bins).

    >>> [m.tolist() for m in column_measures(np.array([[0.25, 0.75]]), np.array([[0.5, 0.5]]), ZERO_SCALING)][0]
    [0.25]
    """
    return np.atleast_1d(tvd(p, q)), np.atleast_1d(hellinger(p, q)), np.atleast_1d(kld(p, q, zero_scaling))


def _report_of_measures(names: Sequence[str], kinds: Sequence[str], col_tvd: np.ndarray, col_hel: np.ndarray,
                        col_kld: np.ndarray, win_n: Sequence[float], ref_n: Sequence[float],
                        shares: Sequence[float | None], classifier: DriftClassifier,
                        missing_in_window: tuple[str, ...], missing_in_reference: tuple[str, ...],
                        skipped: tuple[tuple[str, str], ...]) -> DriftReport:
    """The report of the compared columns' measures, (C,) each, and their non-null counts."""
    col_drift = (col_tvd + col_hel) / 2

    columns = tuple(
        _column_drift(name, kind, t, h, k, d, classifier.status(min(max(d, 0.0), 1.0)), int(win_n[i]), int(ref_n[i]),
                      shares[i])
        for i, (name, kind, t, h, k, d) in enumerate(zip(names, kinds, col_tvd.tolist(), col_hel.tolist(),
                                                         col_kld.tolist(), col_drift.tolist()))
    )
    tvd_mean, hellinger_mean, kld_mean = (float(np.mean(v)) for v in (col_tvd, col_hel, col_kld))
    general = (tvd_mean + hellinger_mean) / 2
    # TVD and Hellinger are in [0, 1]; clip only the rounding of their sums
    status = classifier.status(min(max(general, 0.0), 1.0)) if math.isfinite(general) else ResultStatusApp.irrelevant
    return DriftReport(
        general_drift=general,
        status=status,
        metrics={"tvd_mean": tvd_mean, "hellinger_mean": hellinger_mean, "kld_mean": kld_mean},
        columns=columns,
        missing_in_window=missing_in_window,
        missing_in_reference=missing_in_reference,
        skipped=skipped,
    )


def drift_from_accumulator(
    feature_stats: Mapping[str, Mapping[str, Any]],
    accumulator: Any,
    *,
    plan: ReferencePlan | None = None,
    **kwargs: Any,
) -> DriftReport:
    """``histogram_drift(feature_stats, accumulator.to_stats(), **kwargs)``.

    With ``plan`` (:func:`plan_reference` of the same ``feature_stats`` and the accumulator's
    layout, the same ``include_categorical``) the reference's side is not worked out again and
    the window's counts are read from the accumulator's arrays; the report is the same, float
    for float. A window with no non-null value in some compared column takes the path above.

    >>> from streamdrift.udfs.accumulator import Accumulator
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> window = Accumulator.from_reference(stats).add_batch(np.array([[0.5], [0.6], [1.5], [1.6]]))
    >>> drift_from_accumulator(stats, window).general_drift  # the reference's own proportions
    0.0
    >>> drift_from_accumulator(stats, window, plan=plan_reference(stats, window.layout)).general_drift
    0.0
    """
    if plan is not None and kwargs.get("include_categorical", True) == plan.include_categorical:
        report = _planned_drift(plan, accumulator, kwargs.get("classifier"), kwargs.get("zero_scaling", ZERO_SCALING))
        if report is not None:
            return report
    return histogram_drift(feature_stats, accumulator.to_stats(), **kwargs)


@dataclass(frozen=True, eq=False)
class ReferencePlan:
    """What :func:`histogram_drift` and the verdict derive from one reference on one accumulator
    layout, whatever the window: made once per endpoint (:func:`plan_reference`), used for each
    of its windows. C compared columns, W the widest of their padded histograms.

    ``gather`` (C, W) indexes ``[*hist, *cat_hist, 0]`` of an accumulator (the last slot pads a
    row with zeros), ``count_index`` (C,) ``[*count, *cat_count]``, ``invalid_index`` (C,) the
    numeric columns' ``invalid`` (-1: categorical); ``ref_n`` (C,) the reference's non-null
    counts and ``q`` (C, W) its probabilities, as :func:`histogram_drift` computes them.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    gather: np.ndarray
    count_index: np.ndarray
    invalid_index: np.ndarray
    ref_n: np.ndarray
    q: np.ndarray
    missing_in_window: tuple[str, ...]
    missing_in_reference: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    include_categorical: bool
    reference: vd.ReferenceCounts  # the verdict's counts on the layout (ReferenceCounts.from_layout)
    tested: np.ndarray  # (len(reference.names),) bool: the compared columns, the verdict's ``columns``
    reference_index: np.ndarray  # (C,) each compared column's place in ``reference.names`` (-1: not there)


def plan_reference(feature_stats: Mapping[str, Mapping[str, Any]], layout: Any,
                   include_categorical: bool = True) -> ReferencePlan | None:
    """The :class:`ReferencePlan` of ``feature_stats`` on ``layout`` (an accumulator's), or None
    when the reference is one :func:`histogram_drift` compares only through its general path: a
    malformed histogram (it raises there, naming the column), unpadded layout edges, categories
    other than the layout's, or no column to compare.

    >>> from streamdrift.udfs.accumulator import Layout
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}, 'ts': {'count': 4}}
    >>> plan = plan_reference(stats, Layout.from_feature_stats(stats))
    >>> plan.names, plan.q.tolist(), plan.missing_in_window  # no histogram: the layout has no 'ts'
    (('x',), [[0.0, 0.5, 0.5, 0.0]], ('ts',))
    """
    try:
        return _plan(feature_stats, layout, include_categorical)
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def _plan(feature_stats: Mapping[str, Mapping[str, Any]], layout: Any, include_categorical: bool) -> ReferencePlan | None:
    # (kind, index) as Accumulator.to_stats() lists the window's columns: numeric, then categorical
    window = {**{n: ("numeric", j) for j, n in enumerate(layout.numeric)},
              **{n: ("categorical", j) for j, n in enumerate(layout.categorical)}}
    n_hist = layout.n_bins
    pad = n_hist + layout.n_cat_bins  # the zero appended after cat_hist
    names, kinds, rows, ref_rows, ref_n, count_index, invalid_index = [], [], [], [], [], [], []
    missing, skipped = [], []
    for name, ref in feature_stats.items():
        if name not in window:
            missing.append(name)
            continue
        wkind, j = window[name]
        if is_numeric_stats(ref):
            ref_counts, ref_edges = _hist_lists(name, ref)
            if wkind != "numeric":
                skipped.append((name, "numeric in the reference, no histogram in the window"))
                continue
            edges = layout.edges[j].tolist()
            if pad_hist([0] * (len(edges) - 1), edges)[1] != edges:
                return None  # the window's histogram would be padded: the general path
            if edges != ref_edges:
                skipped.append((name, "window histogram is not on the reference edges"))
                continue
            start = int(layout.bin_start[j])
            kind, bins = "numeric", list(range(start, start + len(edges) - 1))
            ref_array = np.asarray(ref_counts, dtype=np.float64)
        elif is_categorical_stats(ref):
            if wkind != "categorical":
                skipped.append((name, "categorical in the reference, no category counts in the window"))
                continue
            cats = tuple(ref["categories"])
            if cats != tuple(layout.categories[j]) or len(set(cats)) != len(cats):
                return None  # window counts would be re-aligned on the reference's categories
            kind = "categorical"
            bins = list(range(n_hist + int(layout.cat_start[j]), n_hist + int(layout.cat_start[j + 1])))
            ref_array = np.asarray([*ref["category_counts"], ref.get("other_count", 0)], dtype=np.float64)
        else:
            skipped.append((name, "no histogram in the reference (unsupported type or no values in training)"))
            continue
        if kind == "categorical" and not include_categorical:
            skipped.append((name, "categorical, excluded by include_categorical=False"))
            continue
        n = _count(ref, ref_array)
        if n <= 0:
            skipped.append((name, "no values in the reference"))
            continue
        if len(bins) != ref_array.size:
            return None
        names.append(name)
        kinds.append(kind)
        rows.append(bins)
        ref_rows.append(ref_array)
        ref_n.append(n)
        count_index.append(j if kind == "numeric" else len(layout.numeric) + j)
        invalid_index.append(j if kind == "numeric" else -1)
    if not names:
        return None
    width = max(len(r) for r in rows)
    gather = np.full((len(names), width), pad, dtype=np.intp)
    q = np.zeros((len(names), width))
    for i, (bins, r) in enumerate(zip(rows, ref_rows)):
        gather[i, : len(bins)] = bins
        q[i, : r.size] = r / ref_n[i]
    reference = vd.ReferenceCounts.from_layout(layout, feature_stats)
    place = {n: i for i, n in enumerate(reference.names)}
    return ReferencePlan(
        names=tuple(names), kinds=tuple(kinds), gather=gather, count_index=np.array(count_index, dtype=np.intp),
        invalid_index=np.array(invalid_index, dtype=np.intp), ref_n=np.array(ref_n), q=q,
        missing_in_window=tuple(missing), missing_in_reference=tuple(n for n in window if n not in feature_stats),
        skipped=tuple(skipped), include_categorical=include_categorical, reference=reference,
        tested=np.isin(np.array(reference.names, dtype=object), list(names)),
        reference_index=np.array([place.get(n, -1) for n in names], dtype=np.intp))


def _planned_drift(plan: ReferencePlan, acc: Any, classifier: DriftClassifier | None,
                   zero_scaling: float) -> DriftReport | None:
    """:func:`histogram_drift` of the accumulator's window by ``plan``; None when some compared
    column has no non-null value in it (that column is skipped there, with its reason)."""
    window = planned_window(plan, acc)
    if window is None:
        return None
    p, win_counts, shares = window
    return _report(plan.names, plan.kinds, p, plan.q, win_counts, plan.ref_n.tolist(), shares,
                   classifier or DriftClassifier(), zero_scaling, plan.missing_in_window, plan.missing_in_reference,
                   plan.skipped)


def planned_window(plan: ReferencePlan, acc: Any) -> tuple[np.ndarray, list[float], list[float | None]] | None:
    """The window's side of :func:`_planned_drift`: its probabilities (C, W), non-null counts and
    invalid shares per compared column; None when some compared column has no non-null value.

    >>> from streamdrift.udfs.accumulator import Accumulator
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> acc = Accumulator.from_reference(stats).add_batch(np.array([[0.5], [1.5], [1.5], [1.5]]))
    >>> p, counts, shares = planned_window(plan_reference(stats, acc.layout), acc)
    >>> p.tolist(), counts, shares  # MLRun's padding bins on either side
    ([[0.0, 0.25, 0.75, 0.0]], [4.0], [0.0])
    """
    win_n = np.concatenate([acc.count, acc.cat_count]).astype(np.float64)[plan.count_index]
    if not (win_n > 0).all():
        return None
    counts = np.concatenate([acc.hist, acc.cat_hist, [0]]).astype(np.float64)
    p = counts[plan.gather] / win_n[:, None]
    invalid = acc.invalid.tolist()
    win_counts = win_n.tolist()
    shares = []
    for i, j in enumerate(plan.invalid_index.tolist()):  # as _invalid_share of to_stats(): Python ints
        total = int(invalid[j]) + int(win_counts[i]) if j >= 0 else 0
        shares.append(int(invalid[j]) / total if total else None)
    return p, win_counts, shares


class ReferencePlans:
    """The :class:`ReferencePlan` of each endpoint, kept while its catalog entry is the same
    object: keyed by the identity of ``feature_stats`` and of the layout, both held by the entry
    (so an id is never reused while its plan is kept). A changed reference is a new object and
    gets a new plan. At most ``capacity`` plans; when full it starts again empty.
    Thread-safe for the job's use (dict operations only)."""

    def __init__(self, capacity: int = 50_000):
        self.capacity = capacity
        self._plans: dict[tuple[int, int, bool], tuple[Any, Any, ReferencePlan | None]] = {}

    def __getstate__(self) -> dict:  # a copy starts empty
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def get(self, feature_stats: Mapping[str, Mapping[str, Any]], layout: Any,
            include_categorical: bool = True) -> ReferencePlan | None:
        """:func:`plan_reference`, made once per (``feature_stats``, ``layout``) objects.

        >>> from streamdrift.udfs.accumulator import Layout
        >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
        >>> layout, plans = Layout.from_feature_stats(stats), ReferencePlans()
        >>> plans.get(stats, layout) is plans.get(stats, layout), plans.get(dict(stats), layout) is plans.get(stats, layout)
        (True, False)
        """
        key = (id(feature_stats), id(layout), include_categorical)
        hit = self._plans.get(key)
        if hit is not None and hit[0] is feature_stats and hit[1] is layout:
            return hit[2]
        plan = plan_reference(feature_stats, layout, include_categorical)
        if len(self._plans) >= self.capacity:
            self._plans.clear()
        self._plans[key] = (feature_stats, layout, plan)
        return plan


_MEASURES = ("tvd", "hellinger", "kld")
_MEASURE_SET = frozenset(_MEASURES)


def per_feature_columns(extra_data: Mapping[str, Any] | None) -> Mapping[str, Mapping[str, Any]] | None:
    """``extra_data["columns"]`` when it is per-feature drift (name → a dict with ``tvd``,
    ``hellinger`` and ``kld``, as :meth:`DriftReport.to_dict` writes it), else None.

    >>> per_feature_columns({'columns': {'x': {'tvd': 0.25, 'hellinger': 0.18, 'kld': 0.27}}})
    {'x': {'tvd': 0.25, 'hellinger': 0.18, 'kld': 0.27}}
    >>> per_feature_columns({'columns': {'x': {'p_value': 0.5}}}) is None  # not per-feature drift
    True
    """
    columns = (extra_data or {}).get("columns") if isinstance(extra_data, Mapping) else None
    if not isinstance(columns, Mapping) or not columns:
        return None
    for c in columns.values():
        if not (isinstance(c, Mapping) and _MEASURE_SET <= c.keys()):
            return None
    return columns


def _number(value: Any) -> float | None:
    return value if type(value) is float else None if value is None or isinstance(value, bool) else float(value)


def _whole(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


_feature_drift_record = record_builder(FeatureDriftRecord)


def feature_drift_records(result: ResultRecord, verdict: ResultRecord | None = None) -> list[FeatureDriftRecord]:
    """One :class:`~streamdrift.udfs.records.FeatureDriftRecord` per column of a result whose ``extra_data``
    holds per-feature drift (:func:`per_feature_columns`; ``histogram-data-drift``'s
    ``general_drift``), in the columns' order; ``[]`` for any other result.

    Read per column: ``tvd``, ``hellinger``, ``kld``, ``window_count`` (n), ``reference_count``
    (N), ``invalid_share``, and the per-feature test's ``p_value``, ``rejected``, ``effect_size``: from ``verdict``
    (the same window's ``feature_drift`` result: its ``p_value``, ``rejected``, ``effect``) when
    given, else where the result itself holds them. Pure: the window, endpoint and application
    are the result's.

    Examples
    --------
    >>> import datetime as dt
    >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
    >>> general = ResultRecord('p', 'ep1', APP_NAME, RESULT_NAME, 0, 0, 0.2, t0, t0 + dt.timedelta(minutes=1),
    ...                        {'columns': {'x': {'tvd': 0.25, 'hellinger': 0.18, 'kld': 0.27, 'window_count': 4}}})
    >>> verdict = ResultRecord('p', 'ep1', APP_NAME, FEATURE_DRIFT_NAME, 0, 0, 0.0, t0, t0 + dt.timedelta(minutes=1),
    ...                        {'columns': {'x': {'p_value': 0.9, 'rejected': False, 'effect': 0.0}}})
    >>> [row] = feature_drift_records(general, verdict)
    >>> row.feature_name, row.tvd, row.window_count, row.p_value, row.rejected
    ('x', 0.25, 4, 0.9, False)
    >>> feature_drift_records(verdict)  # not per-feature drift
    []
    """
    columns = per_feature_columns(result.extra_data)
    if columns is None:
        return []
    tested = (verdict.extra_data or {}).get("columns") or {} if verdict is not None else {}
    series = (result.project, result.endpoint_id, result.application_name)
    window = (result.start_infer_time, result.end_infer_time)
    rows = []
    for name, c in columns.items():
        t = tested.get(name)
        test = (t.get("p_value"), t.get("rejected"), t.get("effect")) if isinstance(t, Mapping) else \
            (c.get("p_value"), c.get("rejected"), c.get("effect_size"))
        rows.append(_feature_drift_record(
            *series, str(name), *window, _number(c["tvd"]), _number(c["hellinger"]), _number(c["kld"]),
            _number(test[0]), _flag(test[1]), _number(test[2]), _whole(c.get("window_count")),
            _whole(c.get("reference_count")), _number(c.get("invalid_share"))))
    return rows


def window_feature_drift(results: Sequence[ResultRecord]) -> list[FeatureDriftRecord]:
    """The per-feature rows of one window's results: :func:`feature_drift_records` of
    ``histogram-data-drift``'s ``general_drift`` with the same application's ``feature_drift``.

    >>> import datetime as dt
    >>> t0 = dt.datetime(2025, 11, 26, 12, tzinfo=dt.timezone.utc)
    >>> general = ResultRecord('p', 'ep1', APP_NAME, RESULT_NAME, 0, 0, 0.2, t0, t0,
    ...                        {'columns': {'x': {'tvd': 0.25, 'hellinger': 0.18, 'kld': 0.27}}})
    >>> [(r.feature_name, r.tvd) for r in window_feature_drift([general])]
    [('x', 0.25)]
    >>> window_feature_drift([])
    []
    """
    by_name = {r.result_name: r for r in results if r.application_name == APP_NAME}
    general = by_name.get(RESULT_NAME)
    return [] if general is None else feature_drift_records(general, by_name.get(FEATURE_DRIFT_NAME))


# --------------------------------------------------------------------------- the verdict


FOUR_DIGITS = "{:.4g}".format
"""``x`` → its text with 4 significant digits: ``float`` of it is what the stored per-column numbers need."""


@dataclass(frozen=True)
class FeatureDriftReport:
    """What ``feature_drift`` reports for one window (see :mod:`streamdrift.udfs.verdict`).

    ``value``: share of the tested columns rejected at ``alpha``; ``status``: 2 / 1 / 0, or
    ``IRRELEVANT`` when no column could be tested (then ``value`` is None); ``columns``: per
    tested column a flat dict ``p_value``, ``rejected`` (at alpha), ``n`` (window non-null rows),
    ``N`` (reference rows), ``effect`` (reference σ, ≥ 0) and, for numeric columns, ``shift``
    (signed, reference σ); ``drifted``: the rejected columns, smallest p-value first (then the
    largest effect: strong drifts' p-values underflow to 0).
    """

    value: float | None
    status: ResultStatusApp
    columns: dict[str, dict[str, float | int | bool]]
    drifted: tuple[str, ...]
    alpha: float
    alpha_detected: float
    min_effect: float
    kind: ResultKindApp = ResultKindApp.data_drift
    name: str = field(default=FEATURE_DRIFT_NAME)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; p-values, effects and shifts to 4 significant digits (it is stored).

        >>> report = FeatureDriftReport(0.0, ResultStatusApp.no_detection,
        ...                             {'x': {'p_value': 0.123456, 'rejected': False, 'n': 4}}, (), 0.01, 0.001, 0.0)
        >>> report.to_dict()['columns']
        {'x': {'p_value': 0.1235, 'rejected': False, 'n': 4}}
        """
        columns = {
            name: {k: (float(FOUR_DIGITS(v)) if isinstance(v, float) else v) for k, v in c.items()}
            for name, c in self.columns.items()
        }
        return {
            "name": self.name,
            "kind": int(self.kind),
            "value": self.value,
            "status": int(self.status),
            "columns": columns,
            "drifted": list(self.drifted),
            "alpha": self.alpha,
            "alpha_detected": self.alpha_detected,
            "min_effect": self.min_effect,
        }


def feature_drift_from_accumulator(
    feature_stats: Mapping[str, Mapping[str, Any]],
    accumulator: Any,
    *,
    columns: Sequence[str] | None = None,
    maps: vd.MergeMaps | None = None,
    alpha: float = vd.ALPHA,
    alpha_detected: float = vd.ALPHA_DETECTED,
    min_effect: float = 0.0,
    plan: ReferencePlan | None = None,
) -> FeatureDriftReport:
    """The verdict of a window's counts (an :class:`streamdrift.udfs.accumulator.Accumulator`) against the
    reference ``feature_stats``.

    :param columns: the columns to test (default: every column of the accumulator with values
        on both sides); the application passes the columns ``general_drift`` compared.
    :param maps: a :class:`streamdrift.udfs.verdict.MergeMaps` kept between windows (the merge maps depend
        on the reference and the bucket of n only).
    :param alpha, alpha_detected: FDR levels of potential and detected.
    :param min_effect: the smallest drift worth a flag, in reference standard deviations
        (default 0: the floor is the reference's own noise, 3 / √N).
    :param plan: :func:`plan_reference` of the same ``feature_stats`` and layout: its reference
        counts are used when ``columns`` are its compared columns (the result is the same).
    Raises ValueError for bad levels or ``min_effect`` (see :func:`streamdrift.udfs.verdict.feature_verdict`).

    Examples
    --------
    A reference of 1,000 rows over [0, 5) and a window of 100 rows all in its last bin:

    >>> from streamdrift.udfs.accumulator import Accumulator
    >>> stats = {'x': {'count': 1000, 'hist': [[100, 200, 400, 200, 100], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]}}
    >>> window = Accumulator.from_reference(stats).add_batch(np.full((100, 1), 4.5))
    >>> report = feature_drift_from_accumulator(stats, window)
    >>> int(report.status), report.value, report.drifted  # detected; 1 of 1 columns rejected
    (2, 1.0, ('x',))
    >>> report.columns['x']['n'], report.columns['x']['N']
    (100, 1000)
    """
    if plan is not None and columns is not None and tuple(columns) == plan.names:
        reference, wanted = plan.reference, plan.tested
    else:
        reference = vd.ReferenceCounts.from_layout(accumulator.layout, feature_stats)
        wanted = None if columns is None else np.isin(np.array(reference.names, dtype=object), list(columns))
    verdict = vd.feature_verdict(reference, vd.window_counts(accumulator), maps, alpha=alpha,
                                 alpha_detected=alpha_detected, min_effect=min_effect, columns=wanted)
    return _feature_drift_report(verdict, min_effect)


def _feature_drift_report(verdict: vd.Verdict, min_effect: float) -> FeatureDriftReport:
    """The :class:`FeatureDriftReport` of one window's verdict."""
    alpha, alpha_detected = verdict.alpha, verdict.alpha_detected
    status = int(verdict.status)
    per_column = verdict.columns()
    drifted = sorted((n for n, c in per_column.items() if c["rejected"]),
                     key=lambda n: (per_column[n]["p_value"], -per_column[n]["effect"]))
    return FeatureDriftReport(
        value=None if status < 0 else float(verdict.value),
        status=ResultStatusApp(status),
        columns=per_column,
        drifted=tuple(drifted),
        alpha=alpha,
        alpha_detected=alpha_detected,
        min_effect=float(min_effect),
    )
