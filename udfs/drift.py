"""Distances between histograms, in the style of ``scipy.spatial.distance``.

Every measure takes two probability vectors ``p`` (the window) and ``q`` (the reference)
of the same shape. A 2-D input is a stack of distributions, one per row (columns × bins):
the measure is computed for all rows at once and an array with one value per row is
returned; a 1-D input gives a float. Inputs are not re-normalised: pass counts through
:func:`probabilities` first, which divides by the non-null count as MLRun does (so a
histogram whose counts do not add up to the count keeps its missing mass missing).

``tvd``, ``hellinger`` and ``kld`` are MLRun's ``histogram_distance`` metrics, operation for
operation; ``psi`` and ``jensen_shannon`` are extras with their zero handling documented.
"""

from __future__ import annotations

import numpy as np

ZERO_SCALING = 1e-4
"""What MLRun puts in place of a zero denominator in the KL divergence."""

PSI_EPSILON = 1e-4
"""What :func:`psi` puts in place of a zero probability, in either distribution."""


def _pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    if p.ndim not in (1, 2):
        raise ValueError(f"p and q must be 1-D (bins) or 2-D (columns × bins), got {p.ndim}-D")
    return p, q


def _out(x: np.ndarray):
    return float(x) if x.ndim == 0 else x


def probabilities(counts, total=None) -> np.ndarray:
    """Return ``counts / total`` along the last axis.

    .. math:: p_i = c_i / n

    :param counts: bin counts, 1-D (bins) or 2-D (columns × bins).
    :param total:  the non-null count per distribution (a scalar, or one per row); by
                   default the sum of the counts. A row whose total is 0 gives NaN.

    >>> probabilities([2, 6, 0, 2]).tolist()
    [0.2, 0.6, 0.0, 0.2]
    >>> probabilities([[1, 3], [0, 0]]).tolist()  # a row of no values is NaN
    [[0.25, 0.75], [nan, nan]]
    >>> probabilities([2, 6, 0, 2], total=20).tolist()  # 10 of 20 values were null
    [0.1, 0.3, 0.0, 0.1]
    """
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=-1) if total is None else np.asarray(total, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return c / np.expand_dims(n, -1) if c.ndim == 2 else c / n


def tvd(p, q):
    """Total variation distance.

    .. math:: \\mathrm{TVD}(p, q) = \\frac{1}{2} \\sum_i |p_i - q_i|

    In [0, 1] for probability vectors; 0 for equal distributions, 1 for disjoint ones.

    >>> tvd([0.5, 0.5, 0.0], [0.25, 0.25, 0.5])
    0.5
    >>> tvd([[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]).tolist()  # one per row
    [1.0, 0.0]
    """
    p, q = _pair(p, q)
    return _out(np.sum(np.abs(p - q), axis=-1) / 2)


def hellinger(p, q):
    """Hellinger distance.

    .. math:: H(p, q) = \\sqrt{\\max\\left(1 - \\sum_i \\sqrt{p_i q_i},\\ 0\\right)}

    The ``max`` absorbs rounding (the Bhattacharyya coefficient can exceed 1 by an ulp).
    Equals :math:`\\frac{1}{\\sqrt 2} \\lVert \\sqrt p - \\sqrt q \\rVert_2` for probability vectors.

    >>> round(hellinger([0.5, 0.5, 0.0], [0.25, 0.25, 0.5]), 6)
    0.541196
    >>> hellinger([1.0, 0.0], [0.0, 1.0])
    1.0
    """
    p, q = _pair(p, q)
    return _out(np.sqrt(np.maximum(1 - np.sum(np.sqrt(q * p), axis=-1), 0)))


def kl_divergence(p, q, zero_scaling: float = ZERO_SCALING):
    """One-sided Kullback–Leibler divergence with MLRun's zero handling.

    .. math:: \\mathrm{KL}(p \\| q) = \\sum_{i:\\, p_i \\neq 0} p_i \\ln \\frac{p_i}{\\tilde q_i},
              \\qquad \\tilde q_i = q_i \\text{ if } q_i \\neq 0 \\text{ else } s

    Terms whose numerator bin ``p_i`` is 0 are dropped (0 ln 0 = 0); a zero denominator is
    replaced by ``s = zero_scaling`` (1e-4), without re-normalising q. Natural logarithm.

    >>> round(kl_divergence([0.5, 0.5], [0.25, 0.75]), 6)
    0.143841
    >>> round(kl_divergence([0.5, 0.5], [1.0, 0.0]), 6)  # q_2 = 0 counts as 1e-4
    3.912023
    """
    p, q = _pair(p, q)
    denom = np.where(q != 0, q, zero_scaling)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = p * np.log(p / denom)
    return _out(np.sum(np.where(p != 0, terms, 0.0), axis=-1))


def kld(p, q, zero_scaling: float = ZERO_SCALING):
    """Symmetric Kullback–Leibler divergence, MLRun's ``kld``.

    .. math:: \\mathrm{KLD}(p, q) = \\mathrm{KL}(p \\| q) + \\mathrm{KL}(q \\| p)

    each side with the zero handling of :func:`kl_divergence`. In [0, ∞); not bounded, so
    MLRun reports no status for it.

    >>> round(kld([0.5, 0.5], [0.25, 0.75]), 6)
    0.274653
    >>> kld([0.3, 0.7], [0.3, 0.7])
    0.0
    """
    return _out(
        np.asarray(kl_divergence(p, q, zero_scaling)) + np.asarray(kl_divergence(q, p, zero_scaling))
    )


def psi(p, q, epsilon: float = PSI_EPSILON):
    """Population stability index.

    .. math:: \\mathrm{PSI}(p, q) = \\sum_i (\\tilde p_i - \\tilde q_i) \\ln \\frac{\\tilde p_i}{\\tilde q_i},
              \\qquad \\tilde x_i = x_i \\text{ if } x_i \\neq 0 \\text{ else } \\varepsilon

    Zero probabilities in either vector are replaced by ``epsilon`` (1e-4), without
    re-normalising, so a bin empty on both sides adds 0. Without zeros, PSI = KL(p‖q) + KL(q‖p).
    Common reading: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 large shift.

    >>> round(psi([0.5, 0.5], [0.25, 0.75]), 6)
    0.274653
    >>> round(psi([0.5, 0.5, 0.0], [0.25, 0.75, 0.0]), 6)  # a bin empty on both sides adds 0
    0.274653
    """
    p, q = _pair(p, q)
    pe = np.where(p != 0, p, epsilon)
    qe = np.where(q != 0, q, epsilon)
    return _out(np.sum((pe - qe) * np.log(pe / qe), axis=-1))


def jensen_shannon(p, q, base: float | None = None):
    """Jensen–Shannon distance (the square root of the divergence), as ``scipy``'s.

    .. math:: \\mathrm{JS}(p, q) = \\sqrt{\\frac{\\mathrm{KL}(p \\| m) + \\mathrm{KL}(q \\| m)}{2}},
              \\qquad m = \\frac{p + q}{2}

    No epsilon is needed: wherever p_i or q_i is non-zero, m_i is too, and terms with a zero
    numerator are 0 (0 ln 0 = 0). Natural logarithm unless ``base`` is given (base 2 bounds
    the distance by 1). Unlike ``scipy.spatial.distance.jensenshannon``, p and q are not
    re-normalised.

    >>> round(jensen_shannon([1.0, 0.0], [0.0, 1.0], base=2), 6)
    1.0
    >>> round(jensen_shannon([0.5, 0.5], [0.25, 0.75]), 6)
    0.183908
    """
    p, q = _pair(p, q)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    js = np.sum(left + right, axis=-1) / 2
    if base is not None:
        js = js / np.log(base)
    return _out(np.sqrt(np.maximum(js, 0.0)))
