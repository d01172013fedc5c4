"""Kendall's W of the builds' method rankings (modelgif.score.agreement), against the identity
with the mean pairwise Spearman correlation and a direct count with ties."""

import itertools

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from modelgif.score.agreement import concordance_p, kendalls_w, kendalls_w_interval


@pytest.mark.parametrize("m", [2, 3, 5])
def test_w_without_ties_is_the_mean_pairwise_spearman(m):
    rng = np.random.default_rng(m)
    scores = rng.standard_normal((m, 9))
    w = kendalls_w(scores)
    rbar = np.mean([spearmanr(scores[a], scores[b]).statistic for a, b in itertools.combinations(range(m), 2)])
    assert rbar == pytest.approx((m * w - 1) / (m - 1))


def test_w_with_ties_by_a_direct_count():
    scores = np.array([[0.1, 0.1, 0.3, 0.4], [0.2, 0.1, 0.1, 0.5], [0.3, 0.2, 0.1, 0.4]])
    r = np.array([rankdata(row) for row in scores])
    m, n = r.shape
    s = ((r.sum(axis=0) - m * (n + 1) / 2) ** 2).sum()
    t = 2 * (2 ** 3 - 2)  # one pair tied in each of the first two builds
    assert kendalls_w(scores) == pytest.approx(12 * s / (m ** 2 * (n ** 3 - n) - m * t))


def test_w_extremes_and_orientation():
    order = np.arange(6.0)
    assert kendalls_w(np.stack([order] * 4)) == pytest.approx(1.0)
    assert kendalls_w(np.stack([order, order[::-1]])) == pytest.approx(0.0)
    # "higher" ranks the other way round: the same agreement
    assert kendalls_w(np.stack([order, order + 1]), "higher") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="m >= 2"):
        kendalls_w(order[None])
    with pytest.raises(ValueError, match="NaN"):
        kendalls_w(np.array([[0.1, np.nan], [0.2, 0.3]]))


def test_range_holds_w_and_separates_agreement_from_noise():
    rng = np.random.default_rng(0)
    effect = np.linspace(-0.6, 0.0, 6)[None, :, None]
    agree = kendalls_w_interval(effect + 0.05 * rng.standard_normal((3, 6, 17)), n=300, permutations=2000)
    noise = kendalls_w_interval(0.05 * rng.standard_normal((3, 6, 17)), n=300, permutations=2000)
    lo, hi = agree["w_range95_targets"]
    assert lo <= agree["w"] <= hi and agree["w"] > 0.9
    assert noise["w"] < agree["w"] and noise["w_range95_targets"][1] < lo
    assert agree["n_builds"] == 3 and agree["n_methods"] == 6
    # every build ranks the 6 methods alike: only the 1/6!^2 permutations that repeat it are as extreme
    assert agree["p_perm"] == pytest.approx(1 / 2001) and noise["p_perm"] > 0.05


@pytest.mark.parametrize("ties", [False, True])
def test_w_is_friedmans_statistic_over_m_n_minus_1(ties):
    """Friedman's chi-square (scipy, tie-corrected) is m (n - 1) W."""
    from scipy.stats import friedmanchisquare

    rng = np.random.default_rng(4)
    scores = rng.standard_normal((4, 7))
    if ties:
        scores = np.round(scores, 0)
    m, n = scores.shape
    assert m * (n - 1) * kendalls_w(scores) == pytest.approx(friedmanchisquare(*scores.T).statistic)


def test_concordance_p_against_scipys_permutation_test():
    """The within-build permutation null, against scipy.stats.permutation_test permuting each
    build's values among the methods (``permutation_type="samples"``), both Monte Carlo."""
    from scipy.stats import permutation_test

    rng = np.random.default_rng(7)
    scores = rng.standard_normal((3, 8))
    scores[1:] += 0.3 * scores[0]  # some agreement: p well inside (0, 1)
    mine = concordance_p(scores, n=20000, seed=1)
    ref = permutation_test(tuple(scores.T), lambda *x: kendalls_w(np.stack(x, axis=-1)), permutation_type="samples",
                           n_resamples=20000, alternative="greater", random_state=3).pvalue
    assert 0.01 < ref < 0.5 and mine == pytest.approx(ref, abs=0.015)
    # "higher" is better: the same agreement, the same p
    assert concordance_p(-scores, "higher", n=20000, seed=1) == mine
