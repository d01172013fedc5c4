"""The noise ceiling from readout replicates (modelgif.score.ceiling), against direct loops of
the rsatoolbox / Nili et al. (2014) definitions and the Spearman–Brown formula."""

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from modelgif.score.ceiling import per_target_ceiling, readout_noise_ceiling, spearman_brown


def _replicates(r=3, k=8, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.random((k, k))
    return truth, truth[None] + noise * rng.standard_normal((r, k, k))


@pytest.mark.parametrize("diagonal", [True, False])
def test_bounds_by_the_definition(diagonal):
    """upper: each replicate vs the mean rank of all; lower: vs the mean rank of the others
    (rsatoolbox pools Spearman RDMs by their ranks); single: the mean pairwise ρ."""
    _, reps = _replicates()
    r, k = reps.shape[:2]
    got = per_target_ceiling(reps, diagonal)
    for j in range(k):
        rows = [i for i in range(k) if diagonal or i != j]
        cols = [reps[a][rows, j] for a in range(r)]
        ranks = [rankdata(c) for c in cols]
        upper = np.mean([spearmanr(cols[a], np.mean(ranks, axis=0)).statistic for a in range(r)])
        lower = np.mean([spearmanr(cols[a], np.mean([ranks[b] for b in range(r) if b != a], axis=0)).statistic
                         for a in range(r)])
        single = np.mean([spearmanr(cols[a], cols[b]).statistic for a in range(r) for b in range(a + 1, r)])
        np.testing.assert_allclose([got["upper"][j], got["lower"][j], got["single"][j]], [upper, lower, single])
    assert (got["lower"] <= got["upper"] + 1e-12).all()


def test_spearman_brown_and_the_ceiling():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.5, 1) == pytest.approx(0.5)
    _, reps = _replicates(r=4)
    out = readout_noise_ceiling(reps, n=50)
    assert out["reliability"] == pytest.approx(spearman_brown(out["reliability_single"], 4))
    assert out["ceiling"] == pytest.approx(np.sqrt(out["reliability"]))
    assert out["replicates"] == 4 and out["n_targets"] == 8
    for key in ("upper", "lower", "reliability", "ceiling"):
        lo, hi = out[key + "_ci95"]
        assert lo <= out[key] <= hi


def test_noise_free_replicates_reach_one_and_pure_noise_stays_near_zero():
    truth, _ = _replicates()
    exact = readout_noise_ceiling(np.stack([truth] * 3), n=20)
    assert exact["upper"] == pytest.approx(1) and exact["lower"] == pytest.approx(1)
    assert exact["ceiling"] == pytest.approx(1)
    rng = np.random.default_rng(5)
    noise = readout_noise_ceiling(rng.random((3, 17, 17)), n=200)
    assert abs(noise["reliability_single"]) < 0.15 and noise["lower"] < 0.2
    lo, hi = noise["lower_ci95"]
    assert lo < 0 < hi  # no signal: the interval holds 0


def test_more_noise_lowers_the_ceiling():
    a = readout_noise_ceiling(_replicates(noise=0.1)[1], n=20)
    b = readout_noise_ceiling(_replicates(noise=0.3)[1], n=20)
    c = readout_noise_ceiling(_replicates(noise=3.0)[1], n=20)
    assert a["ceiling"] > b["ceiling"] and a["lower"] > b["lower"] > c["lower"]
    assert c["reliability"] < 0 and c["ceiling"] == 0  # no reliable signal: nothing to reach


def test_excluded_and_constant_targets_leave_the_mean():
    _, reps = _replicates()
    full = per_target_ceiling(reps)
    reps[1][:, 2] = 0.7  # constant in one replicate: undefined
    out = readout_noise_ceiling(reps, exclude=[5], n=20)
    keep = [j for j in range(8) if j not in (2, 5)]
    assert out["n_targets"] == 6 and out["per_task_upper"][2] is None and out["per_task_upper"][5] is None
    assert out["upper"] == pytest.approx(np.mean(full["upper"][keep]))
    with pytest.raises(ValueError, match="R >= 2"):
        readout_noise_ceiling(reps[:1])
    with pytest.raises(ValueError, match="NaN"):
        readout_noise_ceiling(np.full((2, 4, 4), np.nan))
