"""Inference on a distance-vs-ground-truth comparison (modelgif/score/inference.py), each number
against an independent computation: scipy's bootstrap and permutation_test, statsmodels' Holm,
direct loops."""

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.stats import spearmanr

from modelgif.score.correlation import per_task_spearman
from modelgif.score.inference import (
    bca_interval,
    constant_columns,
    holm,
    hub_distance,
    mantel_null,
    ndcg_at,
    paired_difference,
    paired_wilcoxon,
    permutation_p,
    primary_comparisons,
    score_method,
    source_effect_removed,
    static_distance,
    target_draws,
    target_specific_rho,
    task_jackknife_rho,
    task_permutations,
    task_resampled_rho,
    top1_regret,
    two_factor_interval,
)


def _problem(seed=0, k=7, b=50, signal=1.0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((k, 3))
    t = -np.linalg.norm(latent[:, None] - latent[None], axis=-1) + 0.3 * rng.standard_normal((k, k))  # affinity
    d = np.linalg.norm(latent[:, None] - latent[None], axis=-1) * signal + rng.uniform(0, 1, (k, k))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0)
    noise = rng.standard_normal((b, k, k)) * 0.3
    s = np.abs(d[None] + (noise + noise.transpose(0, 2, 1)) / 2)
    for m in s:
        np.fill_diagonal(m, 0)
    return d, s, t


def test_bca_matches_scipy_with_the_same_draws():
    """Targets only (every image resample equal to the full data): the two-factor bootstrap is
    scipy's BCa bootstrap of the mean of ρ_j over targets, with the same index draws."""
    d, _, t = _problem(k=9)
    rho = per_task_spearman(d, t)
    b = 999
    draws = target_draws(9, b, seed=5)
    got = two_factor_interval(rho, np.repeat(rho[None], b, axis=0), draws)
    ref = stats.bootstrap((rho,), np.mean, n_resamples=b, method="BCa", rng=np.random.default_rng(5),
                          vectorized=True)
    assert got["ci"] == pytest.approx([ref.confidence_interval.low, ref.confidence_interval.high], rel=1e-10)
    pct = stats.bootstrap((rho,), np.mean, n_resamples=b, method="percentile", rng=np.random.default_rng(5),
                          vectorized=True)
    assert got["ci_percentile"] == pytest.approx([pct.confidence_interval.low, pct.confidence_interval.high],
                                                 rel=1e-10)
    assert got["estimate"] == pytest.approx(rho.mean(), abs=1e-15)


def test_two_factor_replicates_by_a_direct_loop():
    d, s, t = _problem(k=6, b=30)
    draws = target_draws(6, 30, seed=1)
    per = np.array([per_task_spearman(m, t) for m in s])
    got = two_factor_interval(per_task_spearman(d, t), per, draws)["replicates"]
    for bi in range(30):
        rho = per_task_spearman(s[bi], t)  # image resample bi …
        assert got[bi] == pytest.approx(np.mean([rho[j] for j in draws[bi]]), abs=1e-12)  # … its drawn targets


def test_bca_of_a_skewed_statistic_moves_against_the_percentile_interval():
    rng = np.random.default_rng(0)
    boot = rng.exponential(size=4000)
    lo, hi = bca_interval(boot, 0.5, rng.standard_normal(10))
    plo, phi = np.percentile(boot, [2.5, 97.5])
    assert lo < plo and hi < phi  # the estimate sits low in its replicates: z0 < 0 shifts both ends down


def test_two_factor_is_wider_than_images_only_when_targets_vary():
    d, s, t = _problem(k=10, b=400)
    per = np.array([per_task_spearman(m, t) for m in s])
    est = two_factor_interval(per_task_spearman(d, t), per, target_draws(10, 400, seed=0))
    images = np.percentile(per.mean(axis=1), [2.5, 97.5])
    assert est["ci"][1] - est["ci"][0] > images[1] - images[0]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="draws must be"):
        two_factor_interval(np.zeros(4), np.zeros((3, 4)), np.full((3, 4), 7))
    with pytest.raises(ValueError, match="undefined"):
        two_factor_interval(np.full(4, np.nan), np.zeros((3, 4)), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="permutation of 0..K-1"):
        mantel_null(np.eye(4), np.eye(4), np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="better must be"):
        permutation_p(0.1, np.zeros(3), "smaller")
    with pytest.raises(ValueError, match="NaN or infinite"):
        static_distance(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="lie in"):
        holm([0.5, 1.5])


@pytest.mark.parametrize("diagonal", [True, False])
def test_mantel_p_matches_scipy_exact_permutation_test(diagonal):
    """Every permutation of 5 tasks but the identity, against scipy's exact test (identity included)."""
    d, _, t = _problem(seed=3, k=5)

    def score(perm, axis=-1):
        perm = np.asarray(perm)
        if perm.ndim == 1:
            return np.mean(per_task_spearman(d[np.ix_(perm, perm)], t, diagonal=diagonal))
        return np.array([score(p) for p in perm])

    ref = stats.permutation_test((np.arange(5),), score, permutation_type="pairings", alternative="less",
                                 n_resamples=np.inf)
    perms = np.array([p for p in itertools.permutations(range(5)) if p != tuple(range(5))])
    null = mantel_null(d, t, perms, diagonal=diagonal)
    assert null == pytest.approx([score(p) for p in perms], abs=1e-12)  # a direct loop
    assert permutation_p(score(np.arange(5)), null, "lower") == pytest.approx(ref.pvalue, rel=1e-12)
    ref_hi = stats.permutation_test((np.arange(5),), score, permutation_type="pairings", alternative="greater",
                                    n_resamples=np.inf)
    assert permutation_p(score(np.arange(5)), null, "higher") == pytest.approx(ref_hi.pvalue, rel=1e-12)


def test_permutations_keep_the_diagonal_and_give_its_chance_level():
    d, _, t = _problem(seed=1, k=8, signal=0.0)  # no association off the diagonal
    perms = task_permutations(8, 2000, seed=0)
    assert (np.sort(perms, axis=1) == np.arange(8)).all() and len({tuple(p) for p in perms}) > 1900
    null = mantel_null(d, t, perms)
    assert null.mean() < -0.1  # the self-pair (distance 0, the best source) is right in every permutation
    assert abs(mantel_null(d, t, perms, diagonal=False).mean()) < 0.05


def test_static_distance_by_a_direct_loop():
    rng = np.random.default_rng(2)
    t = rng.uniform(size=(6, 6))
    got = static_distance(t, higher_is_closer=True)
    for i in range(6):
        for j in range(6):
            others = [k for k in range(6) if k not in (i, j)]
            assert got[i, j] == pytest.approx(-np.mean(t[i, others]), abs=1e-12)
    assert static_distance(t, higher_is_closer=False) == pytest.approx(-got)


def test_hub_distance_by_a_direct_loop():
    d, s, _ = _problem(k=5, b=3)
    got = hub_distance(d)
    for i in range(5):
        assert got[i] == pytest.approx(np.full(5, np.mean([d[i, k] for k in range(5) if k != i])))
    assert hub_distance(s)[2] == pytest.approx(hub_distance(s[2]))


def test_target_specific_score_removes_the_source_effect():
    k = 12
    plain, specific = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        quality = 3 * rng.standard_normal(k)
        t = quality[:, None] + rng.standard_normal((k, k))  # a target-agnostic ground truth, noisy
        d = -quality[:, None] + rng.standard_normal((k, k))  # a ranker that knows quality only
        plain.append(np.mean(per_task_spearman(d, t, diagonal=False)))
        specific.append(np.nanmean(target_specific_rho(d, t)))
    assert np.mean(plain) < -0.8  # the plain score is near perfect
    assert abs(np.mean(specific)) < 0.1  # nothing is left once the source effect is removed
    assert target_specific_rho(-t, t) == pytest.approx(-1.0)  # a distance that knows each target's noise too
    with np.errstate(invalid="ignore"):
        assert np.isnan(target_specific_rho(-quality[:, None] + 0 * t, quality[:, None] + 0 * t)).all()  # no residual
    # by hand: ranks of each column over all sources, minus each row's mean rank
    r = source_effect_removed(t)
    ranks = np.column_stack([stats.rankdata(t[:, j]) for j in range(k)])
    assert r / (2 * k) == pytest.approx(ranks - ranks.mean(axis=1, keepdims=True))
    rd, rt = source_effect_removed(d), source_effect_removed(t)
    got = target_specific_rho(d, t)
    for j in range(k):
        rows = [i for i in range(k) if i != j]
        assert got[j] == pytest.approx(spearmanr(rt[rows, j], rd[rows, j]).statistic, abs=1e-12)


def test_decision_metrics_by_a_direct_loop():
    d, s, t = _problem(seed=5, k=6, b=4)
    regret, ndcg = top1_regret(d, t), ndcg_at(d, t, k=3)
    for j in range(6):
        others = [i for i in range(6) if i != j]
        pick = min(others, key=lambda i: d[i, j])
        assert regret[j] == pytest.approx(max(t[i, j] for i in others) - t[pick, j])
        beats = {i: sum((t[i, j] > t[o, j]) + 0.5 * (t[i, j] == t[o, j]) for o in others if o != i) for i in others}
        order = sorted(others, key=lambda i: d[i, j])[:3]
        ideal = sorted(beats.values(), reverse=True)[:3]
        dcg = sum(beats[i] / np.log2(r + 2) for r, i in enumerate(order))
        assert ndcg[j] == pytest.approx(dcg / sum(v / np.log2(r + 2) for r, v in enumerate(ideal)))
    assert (regret >= 0).all() and ((ndcg > 0) & (ndcg <= 1 + 1e-12)).all()
    loss = -t  # the same table as a loss: the same regret
    assert top1_regret(d, loss, higher_is_closer=False) == pytest.approx(regret)
    assert top1_regret(s, t)[1] == pytest.approx(top1_regret(s[1], t))
    perfect = -t.copy()
    assert top1_regret(perfect, t) == pytest.approx(0) and ndcg_at(perfect, t) == pytest.approx(1)


def test_holm_matches_statsmodels():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=6) ** 2
        p[rng.integers(6)] = p[rng.integers(6)]  # a tie
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-15)
    assert np.isnan(holm([0.01, np.nan, 0.04])[1]) and holm([0.01, np.nan, 0.04])[2] == pytest.approx(0.04)


def test_paired_wilcoxon_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(12), rng.standard_normal(12) + 0.5
    got = paired_wilcoxon(list(a) + [None], list(b) + [0.3])
    assert got["p"] == pytest.approx(stats.wilcoxon(a, b).pvalue) and got["n_tasks"] == 12
    assert paired_wilcoxon(a, a)["p"] == 1.0


def test_score_method_keys_and_consistency():
    d, s, t = _problem(seed=6, k=7, b=60)
    draws, perms = target_draws(7, 60, seed=0), task_permutations(7, 200, seed=0)
    ref = _problem(seed=7, k=7, b=60)[:2]
    out = score_method(d, s, t, draws, perms, higher_is_closer=True, reference=ref)
    assert out["mean_rho"] == pytest.approx(np.mean(per_task_spearman(d, t)), abs=1e-12)
    assert out["mean_rho_off_diagonal"] == pytest.approx(np.mean(per_task_spearman(d, t, diagonal=False)), abs=1e-12)
    null = mantel_null(d, t, perms)
    assert out["p_perm"] == pytest.approx((1 + np.sum(null <= out["mean_rho"] + 1e-12)) / 201)
    assert out["chance_level"] == pytest.approx(null.mean())
    # the paired difference pairs image resample and task draw b of both methods (a direct loop:
    # tasks drawn as sources and targets, as in test_task_resampling_by_a_direct_loop)
    def task_loop(stack, diagonal=True):
        out = []
        for bi, r in enumerate(draws):
            src = lambda j: [i for i in r if i != j] + ([j] if diagonal else [])  # noqa: E731
            rhos = [spearmanr(t[src(j), j], stack[bi][src(j), j]).statistic for j in r]
            out.append(np.nanmean(rhos))
        return np.array(out)

    mine, theirs = task_loop(s), task_loop(ref[1])
    assert out["mean_rho_ci95"] == pytest.approx(np.percentile(mine, [2.5, 97.5]), abs=1e-12)
    assert out["delta_vs_modelgif_ci95"] == pytest.approx(np.percentile(mine - theirs, [2.5, 97.5]), abs=1e-12)
    full = per_task_spearman(d, t) - per_task_spearman(ref[0], t)
    jk = np.array([np.mean(per_task_spearman(d[np.ix_(rest, rest)], t[np.ix_(rest, rest)]))
                   - np.mean(per_task_spearman(ref[0][np.ix_(rest, rest)], t[np.ix_(rest, rest)]))
                   for rest in ([x for x in range(7) if x != i] for i in range(7))])
    assert out["delta_vs_modelgif_ci95_bca"] == pytest.approx(bca_interval(mine - theirs, full.mean(), jk), abs=1e-12)
    # the targets-only interval: image resample b with target draw b, sources fixed
    a = np.array([per_task_spearman(m, t) for m in s])
    own = np.take_along_axis(a, draws, axis=1).mean(axis=1)
    assert out["mean_rho_ci95_targets"] == pytest.approx(np.percentile(own, [2.5, 97.5]), abs=1e-12)
    # passing the reference's replicates gives the same numbers
    ref_out = score_method(ref[0], ref[1], t, draws, perms, higher_is_closer=True)
    again = score_method(d, s, t, draws, perms, higher_is_closer=True, reference=(*ref, ref_out["_replicates"]))
    assert again["delta_vs_modelgif_ci95"] == out["delta_vs_modelgif_ci95"]
    for key in ("mean_rho_target_specific_ci95", "top1_regret_ci95", "ndcg_at_3_ci95", "mean_rho_off_diagonal_ci95"):
        lo, hi = out[key]
        assert lo <= hi
    assert 0 < out["p_perm"] < 0.05  # a real association is found


# spearmanr of a constant column (a hub's drawn sources all one task): NaN, as the library's
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::scipy.stats.ConstantInputWarning")
def test_minus_hub_by_a_direct_loop():
    """A method minus its own hub baseline (each source's mean distance to the others, per image
    resample): the full-data difference and its paired two-factor interval, by direct loops."""
    d, s, t = _problem(seed=8, k=6, b=40)
    draws = target_draws(6, 40, seed=3)
    hub = lambda m: np.repeat([[np.mean([m[i, q] for q in range(6) if q != i]) for i in range(6)]], 6, axis=0).T  # noqa: E731
    hd, hs = hub(d), np.stack([hub(m) for m in s])
    out = paired_difference(d, s, t, draws, (hd, hs), name="minus_hub")

    def per_task(m, diagonal):
        rows = lambda j: [i for i in range(6) if diagonal or i != j]  # noqa: E731
        return np.array([spearmanr(t[rows(j), j], m[rows(j), j]).statistic for j in range(6)])

    def task_loop(stack, diagonal):
        res = []
        for bi, r in enumerate(draws):
            src = lambda j: [i for i in r if i != j] + ([j] if diagonal else [])  # noqa: E731
            res.append(np.nanmean([spearmanr(t[src(j), j], stack[bi][src(j), j]).statistic for j in r]))
        return np.array(res)

    for suffix, diagonal in (("", True), ("_off_diagonal", False)):
        full = per_task(d, diagonal) - per_task(hd, diagonal)
        assert out["minus_hub" + suffix] == pytest.approx(full.mean(), abs=1e-12)
        reps = task_loop(s, diagonal) - task_loop(hs, diagonal)
        # (a draw of few distinct tasks can leave every column undefined: NaN, left out as the library does)
        assert out["minus_hub" + suffix + "_ci95"] == pytest.approx(np.nanpercentile(reps, [2.5, 97.5]), abs=1e-12)
        own = np.array([np.nanmean((per_task(s[bi], diagonal) - per_task(hs[bi], diagonal))[r]) for bi, r in enumerate(draws)])
        assert out["minus_hub" + suffix + "_ci95_targets"] == pytest.approx(np.nanpercentile(own, [2.5, 97.5]), abs=1e-12)
    # the same numbers from score_method's own replicates, and as score_method's reference difference
    mine, theirs = (score_method(m, ms, t, draws, task_permutations(6, 20))["_replicates"] for m, ms in ((d, s), (hd, hs)))
    again = paired_difference(d, s, t, draws, (hd, hs, theirs), name="minus_hub", known=mine)
    assert again.keys() == out.keys() and all(np.allclose(again[k], out[k], atol=1e-12) for k in out)
    ref = score_method(d, s, t, draws, task_permutations(6, 20), reference=(hd, hs))
    assert ref["delta_vs_modelgif_ci95"] == pytest.approx(out["minus_hub_ci95"])
    with pytest.raises(ValueError, match="does not pair"):
        paired_difference(d, s, t, draws, (hd, hs[:3]))


def test_primary_comparisons_are_holm_corrected_wilcoxons():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(3)
    ref = rng.standard_normal(15)
    per = {"modelgif": ref, "a": ref + 0.8 + 0.3 * rng.standard_normal(15), "b": ref + rng.standard_normal(15),
           "c": ref - 0.2 + 0.5 * rng.standard_normal(15)}
    got = primary_comparisons(per, "modelgif")
    assert list(got) == ["a", "b", "c"]
    raw = [stats.wilcoxon(per[m], ref).pvalue for m in "abc"]
    assert [got[m]["p"] for m in "abc"] == pytest.approx(raw)
    assert [got[m]["p_holm"] for m in "abc"] == pytest.approx(multipletests(raw, method="holm")[1])
    with pytest.raises(ValueError, match="primary method 'x'"):
        primary_comparisons(per, "x")


@pytest.mark.parametrize("diagonal", [True, False])
def test_task_resampling_by_a_direct_loop(diagonal):
    d, s, t = _problem(seed=8, k=6, b=12)
    draws = target_draws(6, 12, seed=2)
    got = task_resampled_rho(s, t, draws, diagonal)
    for b in range(12):
        r = draws[b]
        rhos = []
        for j in r:  # every drawn task a target, its column over the drawn sources (copies of j out if off-diagonal)
            src = [i for i in r if i != j] + ([j] if diagonal else [])  # the self-pair once at most
            if len(src) >= 3 and np.ptp(t[src, j]) > 0 and np.ptp(s[b][src, j]) > 0:
                rhos.append(spearmanr(t[src, j], s[b][src, j]).statistic)
        assert got[b] == pytest.approx(np.mean(rhos), abs=1e-12)
    jk = task_jackknife_rho(d, t, diagonal)
    for i in range(6):
        rest = [x for x in range(6) if x != i]
        assert jk[i] == pytest.approx(np.mean(per_task_spearman(d[np.ix_(rest, rest)], t[np.ix_(rest, rest)],
                                                                 diagonal=diagonal)), abs=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_per_target_scores_are_undefined_on_a_constant_column():
    """A target whose sources all have one value (an excluded target's scored column) ranks
    nothing: ρ, target-specific ρ, regret and NDCG are NaN there and the rest unchanged."""
    rng = np.random.default_rng(3)
    k = 7
    d, t = rng.random((k, k)), rng.random((k, k))
    np.fill_diagonal(d, 0)
    flat = t.copy()
    flat[:, 2] = 0.0
    flat[2, 2] = 5.0  # its own entry is not a source: still constant over the sources
    assert constant_columns(flat).tolist() == [j == 2 for j in range(k)]
    for fn in (lambda a, b: top1_regret(a, b), lambda a, b: ndcg_at(a, b), target_specific_rho):
        got = fn(d, flat)
        assert np.isnan(got[2]) and np.isfinite(np.delete(got, 2)).all()
    for fn in (top1_regret, ndcg_at):  # the other columns do not depend on column 2
        np.testing.assert_allclose(np.delete(fn(d, flat), 2), np.delete(fn(d, t), 2))
