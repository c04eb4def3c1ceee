"""The built-in application's numbers of a batch of windows, as columns (the job's writer batch).

For each window of a batch, what ``histogram-data-drift`` stores: ``general_drift``'s value,
status, metrics and ``extra_data``, ``feature_drift``'s value, status and ``extra_data``, and the
per-feature rows' values, made straight from the batch's arrays: every window's measures, drifts
and column statuses in one pass of numpy, the verdict's tests of every window in one
(:func:`streamdrift.udfs.verdict.feature_verdict_batch`), then per window only the dicts and tuples
that are stored. They equal, float for float and type for type, what
:func:`streamdrift.udfs.histogram_drift.drift_from_accumulator` and
:func:`streamdrift.udfs.histogram_drift.feature_drift_from_accumulator` give the window alone,
turned into JSON-ready form (``DriftReport.to_dict``, ``FeatureDriftReport.to_dict``), without
their report objects.

A window gets no numbers here (None: the application computes it alone, which says what is wrong)
when it has no plan, a compared column without a non-null value, a number that is not finite (JSON
has none: the general path writes None for it), or a column name that is not ``str``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from streamdrift.udfs import verdict as vd
from streamdrift.udfs.histogram_drift import (
    FOUR_DIGITS,
    FEATURE_DRIFT_NAME,
    RESULT_NAME,
    ZERO_SCALING,
    DriftClassifier,
    ReferencePlan,
    column_measures,
    planned_window,
)
from streamdrift.udfs.records import ResultKindApp

_DATA_DRIFT = int(ResultKindApp.data_drift)


class WindowNumbers(NamedTuple):
    """One window's stored numbers (see the module doc).

    ``details``: ``general_drift``'s ``extra_data``, its ``missing_in_reference`` the plan's alone
    (the window's unknown columns are the caller's to add). ``verdict``: ``feature_drift``'s
    (value, status, extra_data), None when no column was tested. ``rows``: per compared column,
    in order, (name, tvd, hellinger, kld, p_value, rejected, effect, window_count,
    reference_count, invalid_share), the test's three None for a column not tested.
    """

    general: float
    status: int
    metrics: dict[str, float]
    details: dict[str, Any]
    verdict: tuple[float, int, dict[str, Any]] | None
    rows: list[tuple]


def _plain_names(plan: ReferencePlan) -> bool:
    return all(type(n) is str for n in (*plan.names, *plan.missing_in_window, *plan.missing_in_reference,
                                        *(name for name, _ in plan.skipped)))


def _statuses(drift: np.ndarray, classifier: DriftClassifier) -> list[int]:
    """``int(classifier.status(min(max(d, 0), 1)))`` of each (finite) drift."""
    clipped = np.minimum(np.maximum(drift, 0.0), 1.0)
    return np.where(clipped >= classifier.detected, 2, np.where(clipped >= classifier.potential, 1, 0)).tolist()


def _row_means(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``np.mean(values[s:s + c])`` of each window (start s, size c), as ``np.mean`` of each: the
    windows of one size as the rows of a matrix, each row summed as a 1-D array is."""
    out = np.empty(len(starts))
    for c in np.unique(sizes).tolist():
        members = np.flatnonzero(sizes == c)
        out[members] = values[starts[members][:, None] + np.arange(c)].mean(axis=1)
    return out


def windows_numbers(plans: Sequence[ReferencePlan | None], accumulators: Sequence[Any], classifier: DriftClassifier,
                    *, alpha: float, alpha_detected: float, min_effect: float,
                    zero_scaling: float = ZERO_SCALING) -> list[WindowNumbers | None]:
    """The :class:`WindowNumbers` of each window i (``accumulators[i]`` by ``plans[i]``), None for a
    window left to the application alone (module doc). All None when the levels or thresholds are
    not plain floats (the general path writes them as it finds them) or ``classifier`` is not a
    :class:`DriftClassifier` itself (a subclass may classify otherwise). Raises as
    :func:`streamdrift.udfs.verdict.feature_verdict_batch` does.

    A window of 4 rows, 1 in [0, 1) and 3 in [1, 2], against a reference of 2 and 2 (TVD
    (|1/4 - 1/2| + |3/4 - 1/2|) / 2 = 0.25), and a window with no row (left to the application):

    >>> from streamdrift.udfs.accumulator import Accumulator
    >>> from streamdrift.udfs.histogram_drift import plan_reference
    >>> stats = {'x': {'count': 4, 'hist': [[2, 2], [0.0, 1.0, 2.0]]}}
    >>> a = Accumulator.from_reference(stats).add_batch(np.array([[0.5], [1.5], [1.5], [1.5]]))
    >>> plan = plan_reference(stats, a.layout)
    >>> n, empty = windows_numbers([plan, plan], [a, Accumulator.from_reference(stats)], DriftClassifier(),
    ...                            alpha=0.01, alpha_detected=0.001, min_effect=0.0)
    >>> n.metrics['tvd_mean'], n.status, n.rows[0][:2], n.verdict[:2], empty
    (0.25, 0, ('x', 0.25), (0.0, 0), None)
    """
    out: list[WindowNumbers | None] = [None] * len(plans)
    # the column statuses are DriftClassifier.status's thresholds, vectorised: not a subclass's own rule
    if type(classifier) is not DriftClassifier or not all(
            type(x) is float for x in (alpha, alpha_detected, classifier.potential, classifier.detected)):
        return out
    windows = {}
    for i, (plan, acc) in enumerate(zip(plans, accumulators)):
        if plan is not None and acc is not None and plan.names and _plain_names(plan):
            window = planned_window(plan, acc)
            if window is not None:
                windows[i] = window
    if not windows:
        return out
    members = list(windows)
    member_plans = [plans[i] for i in members]
    sizes = np.array([len(plan.names) for plan in member_plans], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    drift = _drift_columns(member_plans, [windows[i][0] for i in members], starts, sizes, zero_scaling)
    col_tvd, col_hel, col_kld, col_drift = drift
    means = [_row_means(v, starts, sizes).tolist() for v in (col_tvd, col_hel, col_kld)]
    window_finite = np.logical_and.reduceat(np.isfinite(col_drift + col_kld), starts).tolist()
    # the verdict of every window whose drift was measured, as the application's batch tests them
    batch = vd.feature_verdict_batch([plan.reference for plan in member_plans],
                                     [vd.window_counts(accumulators[i]) for i in members],
                                     [plan.tested for plan in member_plans], alpha=alpha,
                                     alpha_detected=alpha_detected, min_effect=min_effect)
    verdicts, tests = _verdicts(batch, member_plans, sizes, alpha, alpha_detected, float(min_effect))
    tvd_l, hel_l, kld_l, drift_l = (v.tolist() for v in drift)
    status_l = _statuses(col_drift, classifier)
    p_l, rejected_l, effect_l = tests
    for k, (i, plan) in enumerate(zip(members, member_plans)):
        tvd_mean, hellinger_mean, kld_mean = means[0][k], means[1][k], means[2][k]
        general = (tvd_mean + hellinger_mean) / 2
        verdict = verdicts[k]
        if not (window_finite[k] and verdict is not False
                and math.isfinite(general + (0 + tvd_mean + hellinger_mean + kld_mean))):
            continue
        _, win_counts, shares = windows[i]
        lo, hi = int(starts[k]), int(starts[k] + sizes[k])
        counts = [int(n) for n in win_counts]
        ref_counts = [int(n) for n in plan.ref_n.tolist()]
        columns = {}
        for name, kind, t, h, kl, d, s, n, big_n, share in zip(
                plan.names, plan.kinds, tvd_l[lo:hi], hel_l[lo:hi], kld_l[lo:hi], drift_l[lo:hi], status_l[lo:hi],
                counts, ref_counts, shares):
            entry = {"kind": kind, "tvd": t, "hellinger": h, "kld": kl, "drift": d, "status": s, "window_count": n,
                     "reference_count": big_n}
            if share is not None:
                entry["invalid_share"] = share
            columns[name] = entry
        if verdict is None:  # nothing tested: no test on any row
            rows = list(zip(plan.names, tvd_l[lo:hi], hel_l[lo:hi], kld_l[lo:hi], [None] * (hi - lo),
                            [None] * (hi - lo), [None] * (hi - lo), counts, ref_counts, shares))
        else:
            rows = list(zip(plan.names, tvd_l[lo:hi], hel_l[lo:hi], kld_l[lo:hi], p_l[lo:hi], rejected_l[lo:hi],
                            effect_l[lo:hi], counts, ref_counts, shares))
        metrics = {"tvd_mean": tvd_mean, "hellinger_mean": hellinger_mean, "kld_mean": kld_mean}
        status = int(classifier.status(min(max(general, 0.0), 1.0)))
        details = {"name": RESULT_NAME, "kind": _DATA_DRIFT, "value": general, "status": status,
                   "metrics": dict(metrics), "columns": columns, "missing_in_window": list(plan.missing_in_window),
                   "missing_in_reference": list(plan.missing_in_reference),
                   "skipped": {name: reason for name, reason in plan.skipped}}
        out[i] = WindowNumbers(general, status, metrics, details, verdict, rows)
    return out


def _drift_columns(plans: Sequence[ReferencePlan], probabilities: Sequence[np.ndarray], starts: np.ndarray,
                   sizes: np.ndarray, zero_scaling: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TVD, Hellinger, KLD and drift of every window's compared columns, end to end (window k's
    from ``starts[k]``): one pass per histogram width, each row's measures as a window alone has them."""
    total = int(sizes.sum())
    col_tvd, col_hel, col_kld = np.empty(total), np.empty(total), np.empty(total)
    by_width: dict[int, list[int]] = {}
    for k, p in enumerate(probabilities):
        by_width.setdefault(p.shape[1], []).append(k)
    for ks in by_width.values():
        at = np.concatenate([np.arange(starts[k], starts[k] + sizes[k]) for k in ks])
        t, h, d = column_measures(np.concatenate([probabilities[k] for k in ks]), np.concatenate([plans[k].q for k in ks]),
                            zero_scaling)
        col_tvd[at], col_hel[at], col_kld[at] = t, h, d
    return col_tvd, col_hel, col_kld, (col_tvd + col_hel) / 2


def _verdicts(batch: vd.VerdictBatch, plans: Sequence[ReferencePlan], sizes: np.ndarray,
              alpha: float, alpha_detected: float, min_effect: float
              ) -> tuple[list[tuple[float, int, dict[str, Any]] | None | bool], tuple[list, list, list]]:
    """``feature_drift``'s (value, status, extra_data) of each window (``FeatureDriftReport.to_dict``;
    None when no column was tested, False when a stored number would not be finite), and the
    test's stored p_value, rejected and effect of every window's compared columns end to end (None
    where not tested), as the per-feature rows take them."""
    tested = batch.tested
    at = np.flatnonzero(tested)  # window by window, each in its reference's order
    window_of, column_of = np.divmod(at, tested.shape[1])
    p, effect, shift = (a.ravel()[at] for a in (batch.p_value, batch.effect, batch.shift))
    # stored to 4 significant digits: the text's float, as FeatureDriftReport.to_dict writes it
    p4, effect4, shift4 = (list(map(float, map(FOUR_DIGITS, a.tolist()))) for a in (p, effect, shift))
    numeric = column_of < np.array([plan.reference.n_numeric for plan in plans], dtype=np.intp)[window_of]
    stored = np.array(p4) + np.array(effect4) + np.where(numeric, shift4, 0.0)
    bad = set(window_of[~np.isfinite(stored)].tolist()) if len(at) else set()
    rejected = batch.rejected.ravel()[at].tolist()
    first_column = np.cumsum([0] + [len(plan.reference.names) for plan in plans])[:-1]
    totals = np.concatenate([plan.reference.total for plan in plans])[first_column[window_of] + column_of]
    # int(round(x)) of each, as Verdict.columns() writes them (both round half to even)
    n, big_n = ([int(x) for x in np.rint(a).tolist()] for a in (batch.n.ravel()[at], totals))
    p_l, effect_l, shift_l, numeric_l = p.tolist(), effect.tolist(), shift.tolist(), numeric.tolist()
    bounds = np.searchsorted(window_of, np.arange(len(plans) + 1)).tolist()
    status, value = batch.status.tolist(), batch.value.tolist()
    out: list[tuple[float, int, dict[str, Any]] | None | bool] = []
    for k, plan in enumerate(plans):
        if status[k] < 0:
            out.append(None)
            continue
        if k in bad:
            out.append(False)
            continue
        names = plan.reference.names
        columns, drifted = {}, []
        for x in range(bounds[k], bounds[k + 1]):
            entry = {"p_value": p4[x], "rejected": rejected[x], "n": n[x], "N": big_n[x], "effect": effect4[x]}
            if numeric_l[x]:
                entry["shift"] = shift4[x]
            name = names[column_of[x]]
            columns[name] = entry
            if rejected[x]:
                drifted.append((p_l[x], -effect_l[x], name))
        drifted.sort(key=lambda d: (d[0], d[1]))  # stable: ties keep the columns' order
        out.append((value[k], status[k], {
            "name": FEATURE_DRIFT_NAME, "kind": _DATA_DRIFT, "value": value[k], "status": status[k],
            "columns": columns, "drifted": [name for _, _, name in drifted], "alpha": alpha,
            "alpha_detected": alpha_detected, "min_effect": min_effect}))
    # the rows' test values, in each plan's order of its compared columns
    place = np.full(tested.shape, -1, dtype=np.intp)
    place.ravel()[at] = np.arange(len(at))
    row_window = np.repeat(np.arange(len(plans)), sizes)
    reference_index = np.concatenate([plan.reference_index for plan in plans])
    found = place[row_window, np.maximum(reference_index, 0)]
    found = np.where(reference_index >= 0, found, -1).tolist()
    rows_p = [p4[x] if x >= 0 else None for x in found]
    rows_rejected = [rejected[x] if x >= 0 else None for x in found]
    rows_effect = [effect4[x] if x >= 0 else None for x in found]
    return out, (rows_p, rows_rejected, rows_effect)


__all__ = ["WindowNumbers", "windows_numbers"]
