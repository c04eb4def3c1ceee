"""The drift verdict (streamdrift.udfs.verdict): p-values against scipy, merge maps, merge invariance,
categorical columns, Benjamini–Hochberg, and false alarms of small in-distribution windows.

Expected values are computed here with scipy on the tables (chi2_contingency, ncx2, mannwhitneyu
on the bins expanded back into values) and merge groups by hand, never with streamdrift.udfs.verdict.
"""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from streamdrift.udfs.accumulator import Accumulator, Layout
from streamdrift.udfs.reference import feature_stats
from streamdrift.udfs.verdict import (
    MergeMaps,
    ReferenceCounts,
    benjamini_hochberg,
    column_tests,
    feature_verdict,
    merge_map,
    n_bucket,
    rank_pvalue,
    rank_sum,
    window_counts,
)

FAST = settings(max_examples=60, deadline=None)


def _numeric(*counts):
    return ReferenceCounts.from_counts([f"x{i}" for i in range(len(counts))], counts, len(counts))


def _reference(frame):
    """(layout, reference counts) of a training frame, as the job has them."""
    stats_ = feature_stats(frame)
    layout = Layout.from_feature_stats(stats_)
    return layout, ReferenceCounts.from_layout(layout, stats_)


def _verdict(layout, ref, x, **kwargs):
    """The verdict of the rows ``x`` (rows × numeric columns), counted by an Accumulator."""
    return feature_verdict(ref, window_counts(Accumulator(layout).add_batch(x)), **kwargs)


def _groups(reference, mm):
    """The merged groups of every column as lists of the column's bin positions."""
    out = [[] for _ in reference.names]
    bounds = np.append(mm.starts, mm.order.size)
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        col = mm.column[g]
        out[col].append(sorted(int(i - reference.starts[col]) for i in mm.order[a:b]))
    return out


def _satterthwaite_ncx2_sf(x2, q, n, big_n, d):
    """P(X² >= x2) for the Satterthwaite-scaled non-central χ² of the module docstring, with scipy."""
    g = len(q)
    df = g - 1
    var = 2 * df + max(np.sum(1 / q) - g * g - 2 * g + 2, 0) / min(n, big_n)
    a = var / (2 * df)
    lam = n * big_n / (n + big_n) * d * d
    return stats.ncx2.sf(x2 / a, df / a, lam)


def _floored_mannwhitney(x, y, d):
    """Two-sided p of Mann–Whitney (scipy, asymptotic, tie-corrected) with H0 |P(X>Y) − 1/2| <= θ."""
    res = stats.mannwhitneyu(x, y, use_continuity=False, method="asymptotic", alternative="two-sided")
    n, m = len(x), len(y)
    dev = abs(res.statistic - n * m / 2)
    sigma = dev / stats.norm.isf(res.pvalue / 2)  # scipy's tie-corrected standard deviation of U
    theta = stats.norm.cdf(d / math.sqrt(2)) - 0.5
    return min(1.0, 2 * stats.norm.sf((dev - theta * n * m) / sigma)), res.pvalue


# ------------------------------------------------------------------ p-values against scipy


def test_numeric_pvalue_is_scipy_chi2_and_mann_whitney_on_a_small_table():
    r = np.array([110, 200, 290, 250, 150])  # N = 1000; n = 100 (bucket 98): T = 10 · 1000 / 98 = 102, no merge
    w = np.array([5, 30, 20, 25, 20])
    ref = _numeric(r)
    tests = column_tests(ref, w)
    big_n, n, d = 1000, 100, 3 / math.sqrt(1000)

    x2, _, dof, _ = stats.chi2_contingency([w, r], correction=False)
    assert dof == 4
    p_chi = _satterthwaite_ncx2_sf(x2, r / big_n, n, big_n, d)
    bins = np.arange(5)
    p_rank, _ = _floored_mannwhitney(np.repeat(bins, w), np.repeat(bins, r), d)
    assert tests.p_value[0] == pytest.approx(min(1.0, 2 * min(p_chi, p_rank)), rel=1e-9)
    assert tests.n[0] == n and tests.total[0] == big_n


def test_rank_sum_without_a_floor_is_scipy_mann_whitney_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        bins = int(rng.integers(2, 12))
        r = rng.integers(0, 40, bins)
        w = rng.integers(0, 15, bins)
        r[0] += 1
        w[-1] += 1
        ref = _numeric(r)
        s_e, v = rank_sum(w.astype(float), np.array([w.sum()], float), ref)
        p = rank_pvalue(s_e, v, np.array([w.sum()], float), ref.total, np.zeros(1))
        res = stats.mannwhitneyu(np.repeat(np.arange(bins), w), np.repeat(np.arange(bins), r),
                                 use_continuity=False, method="asymptotic")
        assert p[0] == pytest.approx(res.pvalue, rel=1e-9, abs=1e-15)
        assert s_e[0] == pytest.approx(res.statistic - w.sum() * r.sum() / 2, abs=1e-9)


def test_merged_bins_give_the_chi2_of_the_merged_table():
    # N = 150, n = 40 (bucket 38): T = 10 · 150 / 38 = 39.5 reference rows per group
    r = np.array([0, 40, 30, 10, 30, 40, 0])
    w = np.array([1, 10, 8, 6, 7, 7, 1])
    ref = _numeric(r)
    assert n_bucket(40) == 38
    mm = merge_map(ref, n_bucket(40))
    # 0+40 >= 39.5; 30+10 >= 39.5; 30+40 >= 39.5; the last bin (0) joins the group before
    assert _groups(ref, mm) == [[[0, 1], [2, 3], [4, 5, 6]]]
    tests = column_tests(ref, w)
    wg, rg = [11, 14, 15], [40, 40, 70]
    x2 = stats.chi2_contingency([wg, rg], correction=False)[0]
    d = 3 / math.sqrt(150)
    p_chi = _satterthwaite_ncx2_sf(x2, np.array(rg) / 150, 40, 150, d)
    p_rank, _ = _floored_mannwhitney(np.repeat(np.arange(7), w), np.repeat(np.arange(7), r), d)
    assert tests.p_value[0] == pytest.approx(min(1.0, 2 * min(p_chi, p_rank)), rel=1e-9)


def test_categorical_pvalue_is_the_chi2_alone_on_merged_categories():
    r = np.array([500, 300, 150, 30, 15, 5])  # categories a to e, then other; N = 1000
    w = np.array([10, 20, 10, 5, 3, 2])  # n = 50, bucket 49: T = 10 · 1000 / 49 = 204.1
    ref = ReferenceCounts.from_counts(["color"], [r], 0)
    groups = _groups(ref, merge_map(ref, n_bucket(50)))[0]
    # kept: a, b; pooled c, d, e, other = 200 < T, so the pool joins the smallest kept category, b
    assert groups == [[0], [1, 2, 3, 4, 5]]
    x2, _, _, _ = stats.chi2_contingency([[w[0], w[1:].sum()], [500, 500]], correction=False)
    expected = _satterthwaite_ncx2_sf(x2, np.array([0.5, 0.5]), 50, 1000, 3 / math.sqrt(1000))
    tests = column_tests(ref, w)
    assert tests.p_value[0] == pytest.approx(expected, rel=1e-9)
    assert np.isnan(tests.shift[0])


def _ncx2_sf_by_poisson_mixture(x, k, lam):
    """P(χ'²(k, λ) >= x) as the Poisson(λ/2) mixture of central χ² tails (regularised upper gamma),
    summed over every weight above 1e-300: independent of scipy's non-central χ² routines."""
    from scipy.special import gammaincc

    mu = lam / 2
    j = np.arange(0, int(mu + 40 * math.sqrt(mu) + 60))
    weights = stats.poisson.pmf(j, mu) if mu > 0 else (j == 0).astype(float)
    keep = weights > 1e-300
    return float(np.sum(weights[keep] * gammaincc(k / 2 + j[keep], x / 2)))


@pytest.mark.parametrize("w", [[25, 25, 50], [35, 35, 70], [40, 40, 80], [45, 45, 90], [49, 49, 98], [0, 0, 60],
                               [0, 0, 800]])
def test_a_far_tail_chi2_pvalue_keeps_its_digits(w):
    # twice the reference's share of its third category, or every row there: p-values from ~1e-8 to
    # ~1e-223, where 1 − CDF keeps few digits or gives 0
    r = np.array([500, 300, 200])  # categories a, b, then other; N = 1000
    w = np.array(w)
    n = int(w.sum())
    ref = ReferenceCounts.from_counts(["color"], [r], 0)
    assert _groups(ref, merge_map(ref, n_bucket(n)))[0] == [[0], [1], [2]]
    x2, _, dof, _ = stats.chi2_contingency([w, r], correction=False)
    g, q, d = 3, r / 1000, 3 / math.sqrt(1000)
    a = (2 * dof + max(np.sum(1 / q) - g * g - 2 * g + 2, 0) / min(n, 1000)) / (2 * dof)
    expected = _ncx2_sf_by_poisson_mixture(x2 / a, dof / a, n * 1000 / (n + 1000) * d * d)
    assert 0 < expected < 1e-7
    assert column_tests(ref, w).p_value[0] == pytest.approx(expected, rel=1e-6, abs=0)


@pytest.mark.parametrize("third", [240_000, 245_000, 250_000])
def test_a_far_tail_pvalue_with_a_large_effect_floor_keeps_its_digits(third):
    # min_effect 0.1 over a reference of 1,000,000 rows: λ₀ = 5,000; p ~2e-2, ~3e-28, ~3e-87
    r = np.array([500_000, 300_000, 200_000])
    w = np.array([500_000 - (third - 200_000), 300_000, third])
    ref = ReferenceCounts.from_counts(["color"], [r], 0)
    assert _groups(ref, merge_map(ref, n_bucket(1_000_000)))[0] == [[0], [1], [2]]
    x2, _, dof, _ = stats.chi2_contingency([w, r], correction=False)
    q, big = r / 1_000_000, 1_000_000
    a = (2 * dof + max(np.sum(1 / q) - 9 - 6 + 2, 0) / big) / (2 * dof)
    expected = _ncx2_sf_by_poisson_mixture(x2 / a, dof / a, big * big / (2 * big) * 0.1 ** 2)
    assert column_tests(ref, w, min_effect=0.1).p_value[0] == pytest.approx(expected, rel=1e-6, abs=0)


def test_the_chi2_pvalue_falls_strictly_as_the_same_drift_gets_more_rows():
    # across 1e-9, where the p-value changes method (the two differ there by ~1e-6 relative at most,
    # far less than these steps), and on into the far tail
    r = np.array([500, 300, 200])
    ref = ReferenceCounts.from_counts(["color"], [r], 0)
    ps = [column_tests(ref, np.array([n // 4, n // 4, n - 2 * (n // 4)])).p_value[0] for n in range(100, 800, 20)]
    assert ps[0] > 1e-9 > ps[-1] > 0
    assert all(b < a for a, b in zip(ps, ps[1:]))


def test_new_categories_in_the_window_flag_a_categorical_column():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], 5000, p=[0.5, 0.3, 0.2])})
    layout, ref = _reference(reference)
    same = Accumulator(layout).add_batch(categorical={"color": rng.choice(["red", "green", "blue"], 300,
                                                                          p=[0.5, 0.3, 0.2])})
    unseen = Accumulator(layout).add_batch(categorical={"color": rng.choice(["red", "green", "violet"], 300)})
    assert int(feature_verdict(ref, window_counts(same)).status) == 0
    assert int(feature_verdict(ref, window_counts(unseen)).status) == 2


# ------------------------------------------------------------------ merge maps


def test_numeric_merge_groups_by_hand():
    # N = 37 and n >= 37: T = 10 reference rows
    ref = _numeric([0, 5, 3, 8, 20, 1, 0], [12, 0, 0, 9, 1, 30, 2])
    assert _groups(ref, merge_map(ref, 1000)) == [
        [[0, 1, 2, 3], [4, 5, 6]],  # 16 >= 10, 20 >= 10, then 1 + 0 < 10 joins the group before
        [[0], [1, 2, 3, 4], [5, 6]],  # 12, 0+0+9+1 = 10, then 30 + 2
    ]
    # windows of one row: T = 10 · N, one group each
    assert _groups(ref, merge_map(ref, 1)) == [[[0, 1, 2, 3, 4, 5, 6]], [[0, 1, 2, 3, 4, 5, 6]]]


@FAST
@given(st.lists(st.integers(0, 60), min_size=1, max_size=25), st.integers(1, 5000))
def test_numeric_groups_are_contiguous_cover_every_bin_and_hold_the_threshold(counts, n):
    r = np.array(counts, dtype=float)
    r[0] += 1
    ref = _numeric(r)
    n_lo = int(n_bucket(n))
    big_n = r.sum()
    t = 10 * big_n / min(n_lo, big_n)
    (groups,) = _groups(ref, merge_map(ref, n_lo))
    assert [i for g in groups for i in g] == list(range(r.size))  # contiguous, in order, all bins
    masses = [r[g].sum() for g in groups]
    if len(groups) > 1:
        assert min(masses) >= t
    for g in groups[:-1]:  # greedy: a group closes at the first bin that brings it to T
        assert r[g[:-1]].sum() < t


@FAST
@given(st.lists(st.integers(0, 500), min_size=2, max_size=12), st.integers(1, 5000))
def test_category_groups_keep_frequent_categories_and_pool_the_rest(counts, n):
    r = np.array(counts, dtype=float)
    r[0] += 1
    ref = ReferenceCounts.from_counts(["c"], [r], 0)
    n_lo = int(n_bucket(n))
    t = 10 * r.sum() / min(n_lo, r.sum())
    (groups,) = _groups(ref, merge_map(ref, n_lo))
    assert sorted(i for g in groups for i in g) == list(range(r.size))
    kept = [i for i in range(r.size - 1) if r[i] >= t]
    pool = [i for i in range(r.size) if i not in kept]
    if r[pool].sum() < t and kept:
        smallest = min(kept, key=lambda i: (r[i], i))
        kept.remove(smallest)
        pool = sorted([*pool, smallest])
    assert groups == [[i] for i in kept] + [pool]


def test_n_bucket_has_eight_buckets_per_doubling_and_stays_below_n():
    n = np.arange(1, 70_000)
    b = n_bucket(n)
    assert np.all(b <= n) and np.all(np.diff(b) >= 0)
    assert np.all(b >= np.floor(n / 2 ** (1 / 8)))
    for lo in (64, 1024, 32768):
        assert len(np.unique(b[(n >= lo) & (n < 2 * lo)])) == 8
    assert n_bucket(0) == 1 and n_bucket(0.5) == 1


def test_maps_are_cached_per_reference_and_bucket():
    maps = MergeMaps()
    ref = _numeric([5, 10, 20, 10, 5], [1, 2, 3, 4, 5])
    a = maps.get(ref, np.array([64, 64]))
    assert maps.get(ref, np.array([64, 64])) is a and len(maps) == 1
    maps.get(ref, np.array([64, 128]))  # a mix: the map of each bucket, then the mix
    assert len(maps) == 3
    other = _numeric([5, 10, 20, 10, 6], [1, 2, 3, 4, 5])  # same shape, other counts: its own maps
    assert maps.get(other, np.array([64, 64])) is not a


def test_columns_with_different_n_get_the_maps_of_their_own_bucket():
    rng = np.random.default_rng(11)
    r = [rng.integers(0, 200, 12) + 1 for _ in range(3)]
    w = [rng.integers(0, k, 12) for k in (3, 40, 400)]  # three very different n
    together = column_tests(_numeric(*r), np.concatenate(w), MergeMaps())
    for j in range(3):
        alone = column_tests(_numeric(r[j]), w[j])
        assert together.p_value[j] == pytest.approx(alone.p_value[0], rel=1e-12)


# ------------------------------------------------------------------ over columns


@FAST
@given(st.lists(st.floats(0, 0.05), min_size=1, max_size=40), st.sampled_from([0.01, 0.001, 0.05]))
def test_benjamini_hochberg_rejects_what_scipy_adjusts_below_alpha(ps, alpha):
    p = np.array(ps)
    expected = stats.false_discovery_control(p, method="bh") <= alpha
    assert np.array_equal(benjamini_hochberg(p, alpha), expected)


def test_benjamini_hochberg_by_hand_and_untested_columns():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205])
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True] + [False] * 6
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.04], 0.04).all()  # step-up: all four
    # untested entries are never rejected and do not count in m
    tested = np.array([True, True, False, False])
    assert benjamini_hochberg([0.01, 0.02, 0.0, 0.0], 0.04, tested).tolist() == [True, True, False, False]
    assert benjamini_hochberg(np.array([[0.001, 0.5], [0.5, 0.5]]), 0.01).tolist() == [[True, False],
                                                                                     [False, False]]


# ------------------------------------------------------------------ from an accumulator


def _reference_frame(rows=10_000, cols=20, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, cols)), columns=[f"f{i:02d}" for i in range(cols)])


@pytest.fixture(scope="module")
def twenty():
    """10,000 rows of 20 N(0, 1) features."""
    return _reference(_reference_frame())


def _mixed_window():
    rng = np.random.default_rng(2)
    ref_df = _reference_frame(5000, 5)
    ref_df["color"] = rng.choice(["red", "green", "blue"], 5000)
    layout, ref = _reference(ref_df)
    x = rng.normal(size=(600, 5)) + np.array([0, 0.4, 0, 0, 0])
    x[rng.random(x.shape) < 0.05] = np.nan
    colors = rng.choice(["red", "green", "blue", "violet"], 600)
    return layout, ref, x, colors


MIXED = _mixed_window()


@FAST
@given(st.lists(st.integers(0, 600), min_size=5, max_size=5))
def test_six_merged_parts_through_bytes_give_the_verdict_of_one_accumulator(cuts):
    layout, ref, x, colors = MIXED
    whole = Accumulator(layout).add_batch(x, {"color": colors})
    bounds = [0, *sorted(cuts), 600]
    parts = [Accumulator(layout).add_batch(x[a:b], {"color": colors[a:b]}) for a, b in zip(bounds[:-1], bounds[1:])]
    merged = Accumulator.from_bytes(parts[0].to_bytes(), layout)
    for part in parts[1:]:
        merged = merged + Accumulator.from_bytes(part.to_bytes(), layout)
    one, six = feature_verdict(ref, window_counts(whole)), feature_verdict(ref, window_counts(merged))
    assert np.array_equal(one.tests.p_value, six.tests.p_value)
    assert one.columns() == six.columns() and int(one.status) == int(six.status) == 2


def test_n_is_the_windows_non_null_count_and_big_n_the_references_rows():
    layout, ref, x, colors = MIXED
    columns = feature_verdict(ref, window_counts(Accumulator(layout).add_batch(x, {"color": colors}))).columns()
    assert [c["n"] for c in columns.values()] == [*np.sum(~np.isnan(x), axis=0).tolist(), 600]
    assert {c["N"] for c in columns.values()} == {5000}
    assert [name for name, c in columns.items() if c["rejected"]] == ["f01", "color"]  # the shift, violet


def test_in_distribution_windows_of_1_2_and_5_rows_rarely_flag(twenty):
    layout, ref = twenty
    # the rows' true bin probabilities on the reference's padded edges: N(0, 1) mass per bin
    probs = np.vstack([np.diff(stats.norm.cdf(np.r_[-np.inf, e[1:-1], np.inf])) for e in layout.edges])
    rng = np.random.default_rng(9)
    maps = MergeMaps()
    for n in (1, 2, 5):
        counts = np.stack([rng.multinomial(n, p, size=10_000) for p in probs], axis=1).reshape(10_000, -1)
        v = feature_verdict(ref, counts, maps)
        assert (v.status >= 1).mean() <= 0.01, n
        assert np.all(v.tests.n == n)


def test_a_shift_of_three_features_names_those_three(twenty):
    layout, ref = twenty
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1000, 20))
    x[:, [3, 7, 15]] += 0.5
    v = _verdict(layout, ref, x)
    assert int(v.status) == 2
    assert sorted(name for name, c in v.columns().items() if c["rejected"]) == ["f03", "f07", "f15"]
    assert v.value == pytest.approx(3 / 20)


def test_one_feature_shifted_three_sigma_is_flagged_at_ten_rows(twenty):
    layout, ref = twenty
    rng = np.random.default_rng(6)
    x = rng.normal(size=(10, 20))
    x[:, 0] += 3
    v = _verdict(layout, ref, x)
    assert int(v.status) >= 1 and [n for n, c in v.columns().items() if c["rejected"]] == ["f00"]


def test_effect_and_shift_estimate_the_shift_in_reference_sigmas():
    layout, ref = _reference(_reference_frame(50_000, 2, seed=1))
    x = np.random.default_rng(8).normal(size=(100_000, 2)) + np.array([0.5, -0.25])
    cols = _verdict(layout, ref, x).columns()
    assert cols["f00"]["shift"] == pytest.approx(0.5, abs=0.03)
    assert cols["f01"]["shift"] == pytest.approx(-0.25, abs=0.03)
    # the χ² divergence of a δ shift of a normal is exp(δ²) − 1, a bit less on 22 bins
    assert 0.8 * math.sqrt(math.exp(0.25) - 1) < cols["f00"]["effect"] <= 1.05 * math.sqrt(math.exp(0.25) - 1)


def test_min_effect_raises_the_smallest_flagged_drift():
    layout, ref = _reference(_reference_frame(10_000, 3, seed=1))
    x = np.random.default_rng(8).normal(size=(100_000, 3)) + np.array([0.2, 0, 0])
    counts = window_counts(Accumulator(layout).add_batch(x))
    assert int(feature_verdict(ref, counts).status) == 2
    assert int(feature_verdict(ref, counts, min_effect=0.5).status) == 0


def test_a_column_without_values_is_not_tested_and_not_counted():
    layout, ref = _reference(_reference_frame(2000, 3))
    x = np.random.default_rng(1).normal(size=(50, 3))
    x[:, 1] = np.nan
    x[:, 0] += 4
    v = _verdict(layout, ref, x)
    assert list(v.columns()) == ["f00", "f02"] and v.value == pytest.approx(1 / 2)
    empty = feature_verdict(ref, np.zeros(ref.counts.size))
    assert int(empty.status) == -1 and np.isnan(empty.value) and empty.columns() == {}
    nothing = feature_verdict(ReferenceCounts.from_counts([], [], 0), np.zeros(0))
    assert int(nothing.status) == -1 and nothing.columns() == {}


def test_bad_input_is_refused_with_the_reason():
    ref = _numeric([5, 5, 5])
    with pytest.raises(ValueError, match="window counts have 4 bins, the reference 3"):
        feature_verdict(ref, np.ones(4))
    with pytest.raises(ValueError, match="0 < alpha_detected <= alpha < 1"):
        feature_verdict(ref, np.ones(3), alpha=0.001, alpha_detected=0.01)
    with pytest.raises(ValueError, match="min_effect"):
        feature_verdict(ref, np.ones(3), min_effect=-1)
    with pytest.raises(ValueError, match="finite and >= 0"):
        _numeric([1, -1, 3])


def test_a_binary_column_on_identical_rows_does_not_drift():
    # 0/1 in training: 1 is the training maximum, counted in the last inner bin as the reference counts it
    rng = np.random.default_rng(12)
    training = pd.DataFrame({"flag": rng.integers(0, 2, 4000).astype(float), "score": rng.random(4000)})
    layout, ref = _reference(training)
    window = Accumulator(layout).add_batch(training.to_numpy()[:1000])
    v = feature_verdict(ref, window_counts(window))
    assert int(v.status) == 0 and v.columns()["flag"]["p_value"] > 0.5
    flipped = Accumulator(layout).add_batch(np.column_stack([np.ones(60), rng.random(60)]))
    assert [n for n, c in feature_verdict(ref, window_counts(flipped)).columns().items() if c["rejected"]] == ["flag"]


def test_a_pickled_cache_starts_empty_and_works():
    import pickle

    maps = MergeMaps(max_bins=1000)
    ref = _numeric([5, 10, 20, 10, 5])
    maps.get(ref, np.array([64]))
    copy = pickle.loads(pickle.dumps(maps))
    assert len(copy) == 0 and copy.max_bins == 1000
    assert np.array_equal(copy.get(ref, np.array([64])).starts, maps.get(ref, np.array([64])).starts)


def test_the_cache_is_bounded_by_bins():
    maps = MergeMaps(max_bins=12)
    ref = _numeric([5, 10, 20, 10, 5])  # 5 bins a map
    for b in (1, 2, 4, 8):
        maps.get(ref, np.array([b]))
    assert len(maps) == 2
