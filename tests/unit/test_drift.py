"""Drift measures against independent computations (scipy) and hand-worked values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cityblock, euclidean, jensenshannon
from scipy.special import rel_entr
from scipy.stats import entropy

from streamdrift.udfs import drift

FAST = settings(max_examples=60, deadline=None)


@st.composite
def distribution_pairs(draw, min_bins=1, max_bins=30, allow_zero=True):
    """Two probability vectors over the same bins; zero bins on either side when allowed."""
    n = draw(st.integers(min_bins, max_bins))
    low = 0 if allow_zero else 1
    counts = st.lists(st.integers(low, 1000), min_size=n, max_size=n).filter(lambda c: sum(c) > 0)
    p = np.array(draw(counts), dtype=float)
    q = np.array(draw(counts), dtype=float)
    return p / p.sum(), q / q.sum()


# ------------------------------------------------------------------ against scipy


@FAST
@given(distribution_pairs())
def test_tvd_is_half_the_l1_distance(pq):
    p, q = pq
    assert drift.tvd(p, q) == pytest.approx(cityblock(p, q) / 2, abs=1e-12)


@FAST
@given(distribution_pairs())
def test_hellinger_is_scaled_euclidean_distance_of_square_roots(pq):
    p, q = pq
    expected = euclidean(np.sqrt(p), np.sqrt(q)) / math.sqrt(2)
    assert drift.hellinger(p, q) == pytest.approx(expected, abs=1e-7)


@FAST
@given(distribution_pairs(allow_zero=False))
def test_kld_without_zeros_is_the_symmetric_relative_entropy(pq):
    p, q = pq
    expected = entropy(p, q) + entropy(q, p)
    assert drift.kld(p, q) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@FAST
@given(distribution_pairs())
def test_kld_with_zeros_replaces_zero_denominators_by_1e_4(pq):
    p, q = pq
    # MLRun's rule: drop terms whose numerator is 0, replace a zero denominator by 1e-4
    kl_pq = rel_entr(p, np.where(q == 0, 1e-4, q)).sum()
    kl_qp = rel_entr(q, np.where(p == 0, 1e-4, p)).sum()
    assert drift.kl_divergence(p, q) == pytest.approx(kl_pq, rel=1e-9, abs=1e-12)
    assert drift.kld(p, q) == pytest.approx(kl_pq + kl_qp, rel=1e-9, abs=1e-12)


@FAST
@given(distribution_pairs(allow_zero=False))
def test_psi_without_zeros_equals_symmetric_kl(pq):
    p, q = pq
    assert drift.psi(p, q) == pytest.approx(entropy(p, q) + entropy(q, p), rel=1e-9, abs=1e-12)


@FAST
@given(distribution_pairs())
def test_psi_with_zeros_uses_epsilon_on_both_sides(pq):
    p, q = pq
    pe, qe = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    expected = (rel_entr(pe, qe) + rel_entr(qe, pe)).sum()
    assert drift.psi(p, q) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@FAST
@given(distribution_pairs())
def test_jensen_shannon_matches_scipy(pq):
    p, q = pq
    assert drift.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q), abs=1e-7)
    assert drift.jensen_shannon(p, q, base=2) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-7)


@FAST
@given(distribution_pairs())
def test_bounded_measures_stay_in_unit_interval(pq):
    p, q = pq
    for measure in (drift.tvd, drift.hellinger):
        assert 0.0 <= measure(p, q) <= 1.0 + 1e-12
    assert 0.0 <= drift.jensen_shannon(p, q, base=2) <= 1.0 + 1e-12


# ------------------------------------------------------------------ 2-D = row by row


@FAST
@given(st.integers(1, 8).flatmap(lambda n: st.lists(distribution_pairs(5, 5), min_size=n, max_size=n)))
def test_two_dimensional_input_gives_one_value_per_row(pairs):
    P = np.stack([p for p, _ in pairs])
    Q = np.stack([q for _, q in pairs])
    for measure in (drift.tvd, drift.hellinger, drift.kld, drift.psi, drift.jensen_shannon):
        all_at_once = measure(P, Q)
        assert all_at_once.shape == (len(pairs),)
        one_by_one = [measure(p, q) for p, q in pairs]
        np.testing.assert_allclose(all_at_once, one_by_one, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ worked examples


def test_identical_distributions_are_at_distance_zero():
    p = np.array([0.0, 0.25, 0.25, 0.5])
    for measure in (drift.tvd, drift.hellinger, drift.kld, drift.psi, drift.jensen_shannon):
        assert measure(p, p) == pytest.approx(0.0, abs=1e-7)


def test_disjoint_distributions_by_hand():
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert drift.tvd(p, q) == 1.0
    assert drift.hellinger(p, q) == 1.0
    # each side: 1 * ln(1 / 1e-4); the zero-numerator term is dropped
    assert drift.kld(p, q) == pytest.approx(2 * math.log(1e4))
    assert drift.jensen_shannon(p, q, base=2) == pytest.approx(1.0)


def test_half_overlap_by_hand():
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    assert drift.tvd(p, q) == pytest.approx(0.5)
    assert drift.hellinger(p, q) == pytest.approx(math.sqrt(1 - math.sqrt(0.5)))
    # KL(p||q) = ln 2 ; KL(q||p) = .5 ln .5 + .5 ln(.5 / 1e-4)
    assert drift.kld(p, q) == pytest.approx(math.log(2) + 0.5 * math.log(0.5) + 0.5 * math.log(5000))


def test_zero_scaling_is_a_parameter():
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert drift.kld(p, q, zero_scaling=1e-2) == pytest.approx(2 * math.log(1e2))


def test_probabilities_divide_by_the_given_count():
    counts = np.array([[1, 3, 0], [0, 0, 0]])
    probs = drift.probabilities(counts, total=[8, 0])
    np.testing.assert_allclose(probs[0], [1 / 8, 3 / 8, 0])
    assert np.isnan(probs[1]).all()  # a row without values is NaN, for the caller to skip
    np.testing.assert_allclose(drift.probabilities([2, 2]), [0.5, 0.5])


def test_mismatched_shapes_raise_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        drift.tvd([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        drift.hellinger(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
