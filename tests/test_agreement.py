"""Kendall's W of the builds' method rankings (modelgif.score.agreement), against the identity
with the mean pairwise Spearman correlation and a direct count with ties."""

import itertools

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from modelgif.score.agreement import kendalls_w, kendalls_w_interval


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


def test_interval_holds_w_and_separates_agreement_from_noise():
    rng = np.random.default_rng(0)
    effect = np.linspace(-0.6, 0.0, 6)[None, :, None]
    agree = kendalls_w_interval(effect + 0.05 * rng.standard_normal((3, 6, 17)), n=300)
    noise = kendalls_w_interval(0.05 * rng.standard_normal((3, 6, 17)), n=300)
    lo, hi = agree["w_ci95"]
    assert lo <= agree["w"] <= hi and agree["w"] > 0.9
    assert noise["w"] < agree["w"] and noise["w_ci95"][1] < lo
    assert agree["n_builds"] == 3 and agree["n_methods"] == 6
