"""Statistical inference on a distance-vs-ground-truth comparison (issue 22).

A method's score is the mean over target tasks j of ρ_j = Spearman(T[:, j], D[:, j]) over the
source tasks (:func:`modelgif.score.correlation.per_task_spearman`). This module says how sure that
number is and what it should be compared with:

- Two-factor bootstraps over **both** units of the score: reference images (the distance
  stages' ``bootstrap.npy``: B distance matrices on B image resamples) and tasks
  (:func:`target_draws`: B draws of the K tasks with replacement, image resample b paired with
  task draw b, the same draws for every method so that differences pair).
  :func:`task_resampled_rho` draws the tasks as sources and targets together (the primary
  interval of a mean ρ); :func:`two_factor_interval` draws the targets only, the sources fixed
  (per-target metrics, and the ``*_ci95_targets`` comparison). Percentile intervals are
  primary; :func:`bca_interval` (Efron & Tibshirani 1993, 14.3; the formulas of
  ``scipy.stats.bootstrap(method="BCa")``) is reported beside them (docs/methods.md and the
  calibration benchmark say why).
- :func:`mantel_null` / :func:`permutation_p`: the permutation null of the score, the task
  labels of D permuted (rows and columns by one permutation, the Mantel scheme, so the
  diagonal stays on the diagonal), one-sided in the direction that is "better".
- Baselines that know nothing about the models' functions: :func:`static_distance` (each source
  ranked by its mean ground-truth transfer to the *other* targets) and :func:`hub_distance`
  (a method's distance replaced by each source's mean distance to the zoo).
- :func:`target_specific_rho`: ρ_j after removing the source main effect from both matrices
  (double-centred column ranks), which a target-agnostic ranker cannot score on.
- Decision metrics: :func:`top1_regret`, :func:`ndcg_at`.
- The primary comparison: :func:`paired_wilcoxon` over target tasks and :func:`holm`.

Orientation: ``higher_is_closer`` is True for affinities and win rates (a good distance has
ρ < 0, ``better="lower"``), False for losses (ρ > 0 is good, ``better="higher"``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata, wilcoxon

from .bootstrap import BETTER, per_task_rho, percentile_interval


def _check_better(better: str) -> None:
    if better not in BETTER:
        raise ValueError(f"better must be one of {', '.join(BETTER)}, got {better!r}")


def _square(m, name: str) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name} must be square (..., K, K); got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return a


# ----------------------------------------------------------------------------- resamples
def target_draws(n_tasks: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` bootstrap draws of ``n_tasks`` target tasks with replacement: indices (n, K) from
    ``numpy.random.default_rng(seed).integers(0, K, (n, K))`` (the draws of
    ``scipy.stats.bootstrap`` with the same generator). The stage seeds it with
    ``(bootstrap.seed, 1)``, a stream apart from the image resamples'."""
    if not isinstance(n_tasks, (int, np.integer)) or n_tasks < 2:
        raise ValueError(f"n_tasks must be an integer >= 2, got {n_tasks!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of target draws must be a positive integer, got {n!r}")
    return np.random.default_rng(seed).integers(0, int(n_tasks), (int(n), int(n_tasks)))


def task_permutations(n_tasks: int, n: int = 1000, seed: int = 0) -> np.ndarray:
    """``n`` random permutations of the K task labels, (n, K) int, from
    ``numpy.random.default_rng(seed)`` (the identity may occur, as in any Monte Carlo test)."""
    if not isinstance(n_tasks, (int, np.integer)) or n_tasks < 3:
        raise ValueError(f"n_tasks must be an integer >= 3, got {n_tasks!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of permutations must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((int(n), int(n_tasks))), axis=1)


# ----------------------------------------------------------------------------- intervals
def _percentile_of_score(samples: np.ndarray, score: float) -> float:
    """Share of samples below score, ties (within 1e-12 relative: a mean of ranks computed in
    another order) counted half."""
    tol = 1e-12 * max(abs(score), 1.0)
    return float(((samples < score - tol).sum() + (samples <= score + tol).sum()) / (2 * samples.size))


def bca_interval(boot: np.ndarray, estimate: float, jackknife: np.ndarray, level: float = 0.95) -> list[float]:
    """BCa interval [low, high] of a statistic from its bootstrap replicates.

    Args:
        boot: (B,) the statistic on each resample (NaN left out).
        estimate: the statistic on the full data, θ̂.
        jackknife: (K,) the statistic with each unit left out in turn, θ̂_(i) (NaN left out),
            for the acceleration a = Σ U³ / (6 (Σ U²)^{3/2}), U_i = (K − 1)(θ̄_(.) − θ̂_(i)).
        level: coverage.

    Returns:
        The percentiles Φ(z₀ + (z₀ + z_α)/(1 − a (z₀ + z_α))) of ``boot`` with
        z₀ = Φ⁻¹(share of ``boot`` below θ̂, ties counted half): the formulas of
        ``scipy.stats.bootstrap(method="BCa")``. [NaN, NaN] without finite replicates, and the
        percentile interval where all replicates lie on one side of θ̂ (z₀ infinite).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    b = np.asarray(boot, dtype=np.float64)
    b = b[np.isfinite(b)]
    jk = np.asarray(jackknife, dtype=np.float64)
    jk = jk[np.isfinite(jk)]
    if b.size == 0 or not np.isfinite(estimate):
        return [float("nan"), float("nan")]
    z0 = ndtri(_percentile_of_score(b, float(estimate)))
    if not np.isfinite(z0) or jk.size < 2:
        return percentile_interval(b, level)
    u = (jk.size - 1) * (jk.mean() - jk)
    den = (u**2).sum() / jk.size**2
    a = 0.0 if den == 0 else float(((u**3).sum() / jk.size**3) / (6 * den**1.5))
    out = []
    for alpha in ((1 - level) / 2, 1 - (1 - level) / 2):
        za = ndtri(alpha)
        q = ndtr(z0 + (z0 + za) / (1 - a * (z0 + za)))
        out.append(float(np.percentile(b, 100 * q)))
    return out


def _mean_over_draws(per_target: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(B,) mean over the drawn targets of each resample's per-target values (NaN left out)."""
    picked = np.take_along_axis(per_target, draws, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw of undefined targets only: NaN
        return np.nanmean(picked, axis=1)


def _jackknife(per_target: np.ndarray) -> np.ndarray:
    """(K,) mean of the per-target values with target i left out (NaN left out)."""
    v = np.asarray(per_target, dtype=np.float64)
    keep = np.isfinite(v)
    total, count = np.where(keep, v, 0).sum(), keep.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep, (total - np.where(keep, v, 0)) / (count - 1), total / count)


def two_factor_interval(per_target: np.ndarray, per_target_samples: np.ndarray, draws: np.ndarray,
                        level: float = 0.95) -> dict:
    """The two-factor bootstrap (images × target tasks) of a mean over targets.

    Args:
        per_target: (K,) the per-target values on all images (ρ_j, a regret, …; NaN: undefined).
        per_target_samples: (B, K) the same on each image resample (row b from
            ``bootstrap.npy``'s resample b).
        draws: (B, K) target indices (:func:`target_draws`): resample b's statistic is the mean
            of ``per_target_samples[b, draws[b]]``.
        level: coverage of the interval.

    Returns:
        ``{"estimate": mean of per_target, "ci": BCa interval [lo, hi] (jackknife over
        targets), "ci_percentile": the percentile interval of the same replicates,
        "replicates": (B,) array}``.
    """
    full = np.asarray(per_target, dtype=np.float64)
    s = np.asarray(per_target_samples, dtype=np.float64)
    d = np.asarray(draws)
    if full.ndim != 1 or s.ndim != 2 or s.shape[1] != full.size:
        raise ValueError(f"per_target must be (K,) and per_target_samples (B, K); got {full.shape} and {s.shape}")
    if d.shape != s.shape or not np.issubdtype(d.dtype, np.integer) or d.min() < 0 or d.max() >= full.size:
        raise ValueError(f"draws must be (B, K) = {s.shape} target indices below K = {full.size}; got {d.shape}")
    if not np.isfinite(full).any():
        raise ValueError("every per-target value is undefined (NaN)")
    boot = _mean_over_draws(s, d)
    est = float(np.nanmean(full))
    return {"estimate": est, "ci": bca_interval(boot, est, _jackknife(full), level),
            "ci_percentile": percentile_interval(boot, level), "replicates": boot}


def task_resampled_rho(samples: np.ndarray, ground_truth: np.ndarray, draws: np.ndarray,
                       diagonal: bool = True) -> np.ndarray:
    """Mean ρ on each two-factor resample with the **tasks** resampled as sources and targets
    together: (B,).

    Resample b keeps image resample ``samples[b]`` and the task multiset r = ``draws[b]``; every
    drawn task is a target (with its multiplicity) and its column is ranked over the drawn
    sources, ``Spearman(T[r, j], D_b[r, j])`` (a task drawn twice is two tied sources). The
    target's own task is a source once with ``diagonal=True`` (as in the full data: copies of
    the self-pair, the nearest source at distance 0, would pull ρ towards −1) and not at all
    with ``diagonal=False``. A column
    with fewer than 3 sources left, or constant, is undefined (NaN) and left out of the mean.

    Why sources too: the per-target ρ_j share their source rows, so a source whose distances are
    all large and whose transfers are all poor moves every ρ_j alike; resampling targets with
    the sources fixed treats those correlated ρ_j as independent and is too narrow (the
    calibration benchmark, ``benchmarks/calibration.py``). Tasks are the unit, as conditions are
    in rsatoolbox's bootstrap of RDMs.
    """
    s = _square(samples, "bootstrap distances")
    t = _square(ground_truth, "ground truth")
    d = np.asarray(draws)
    k = t.shape[0]
    if s.ndim != 3 or s.shape[1:] != t.shape or d.shape != (s.shape[0], k):
        raise ValueError(f"samples (B, K, K), ground truth (K, K) and draws (B, K) must agree; got {s.shape}, "
                         f"{t.shape}, {d.shape}")
    if not np.issubdtype(d.dtype, np.integer) or d.min() < 0 or d.max() >= k:
        raise ValueError(f"draws must be task indices below K = {k}")
    b = np.arange(s.shape[0])[:, None, None]
    sub_d = s[b, d[:, :, None], d[:, None, :]]  # (B, K, K): resample b's sources × targets
    sub_t = t[d[:, :, None], d[:, None, :]]
    same = d[:, :, None] == d[:, None, :]  # (B, source p, target c): the same task
    keep = ~same
    if diagonal:  # the target's own task once among its sources, as in the full data
        earlier = np.tril(np.ones((k, k), bool), -1)  # q < p
        first = ~(same & earlier[None]).any(axis=2)  # (B, p): no earlier copy of the same task
        keep |= same & first[:, :, None]
    x = rankdata(np.where(keep, sub_t, np.nan), axis=1, nan_policy="omit")
    y = rankdata(np.where(keep, sub_d, np.nan), axis=1, nan_policy="omit")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        x = x - np.nanmean(x, axis=1, keepdims=True)
        y = y - np.nanmean(y, axis=1, keepdims=True)
        den = np.sqrt(np.nansum(x * x, axis=1) * np.nansum(y * y, axis=1))
        rho = np.where((keep.sum(axis=1) >= 3) & (den > 0), np.nansum(x * y, axis=1) / np.where(den > 0, den, 1), np.nan)
        return np.nanmean(rho, axis=1)


def task_jackknife_rho(distance: np.ndarray, ground_truth: np.ndarray, diagonal: bool = True) -> np.ndarray:
    """(K,) mean ρ with task i left out as source and as target, for the BCa acceleration of
    :func:`task_resampled_rho`'s bootstrap."""
    d = _square(distance, "distance")
    t = _square(ground_truth, "ground truth")
    k = t.shape[0]
    out = np.empty(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in range(k):
            rest = np.delete(np.arange(k), i)
            if len(rest) < (3 if diagonal else 4):
                out[i] = np.nan
                continue
            out[i] = np.nanmean(per_task_rho(d[np.ix_(rest, rest)][None], t[np.ix_(rest, rest)], diagonal)[0])
    return out


# ----------------------------------------------------------------------------- permutation null
def mantel_null(distance: np.ndarray, ground_truth: np.ndarray, permutations: np.ndarray,
                diagonal: bool = True) -> np.ndarray:
    """Mean ρ of D with its task labels permuted, one value per permutation: (n,).

    Permutation p relabels D's rows and columns together, ``D[p][:, p]``, so the self-pairs stay
    on the diagonal (the Mantel scheme); T is held fixed. Under the null that D's task labels
    carry nothing about T, the observed mean ρ is one draw of this distribution; its mean is the
    chance level (not 0 with the diagonal included: any D that is 0 on its diagonal gets the
    self-pair right by construction).
    """
    d = _square(distance, "distance")
    t = _square(ground_truth, "ground truth")
    p = np.asarray(permutations)
    k = t.shape[0]
    if d.shape != t.shape:
        raise ValueError(f"distance {d.shape} and ground truth {t.shape} differ in shape")
    if p.ndim != 2 or p.shape[1] != k or not (np.sort(p, axis=1) == np.arange(k)).all():
        raise ValueError(f"permutations must be (n, K = {k}) rows, each a permutation of 0..K-1; got shape {p.shape}")
    permuted = d[p[:, :, None], p[:, None, :]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_task_rho(permuted, t, diagonal=diagonal), axis=1)


def permutation_p(observed: float, null: np.ndarray, better: str = "lower") -> float:
    """One-sided Monte Carlo p-value ``(1 + #{null at least as good as observed}) / (1 + n)``.

    "At least as good" is ``≤`` for ``better="lower"`` (an affinity: ρ < 0 is agreement), ``≥``
    for ``"higher"``, with a relative tolerance of 1e-12 for ties (as ``scipy.stats.permutation_test``).
    One-sided: the question is whether D agrees with T, and the direction of agreement is known
    before looking. NaN null values are left out."""
    _check_better(better)
    n = np.asarray(null, dtype=np.float64)
    n = n[np.isfinite(n)]
    if n.size == 0 or not np.isfinite(observed):
        return float("nan")
    tol = 1e-12 * max(abs(float(observed)), 1e-300) + 1e-14
    hits = (n <= observed + tol) if better == "lower" else (n >= observed - tol)
    return float((1 + hits.sum()) / (1 + n.size))


# ----------------------------------------------------------------------------- baselines
def static_distance(ground_truth: np.ndarray, higher_is_closer: bool = True) -> np.ndarray:
    """The target-agnostic source-quality ranker as a distance (K, K).

    For target j, source i is scored by its mean ground-truth transfer to the other targets,
    s_ij = mean of T[i, k] over k ∉ {i, j} (the target and the source's own task left out, so
    neither the answer nor the self-transfer is used). The "distance" is −s_ij where higher T is
    closer and s_ij otherwise, so that a good source is near; the diagonal is scored like any
    other source (s_jj: j's mean transfer to the others). Needs K ≥ 3.
    """
    t = _square(ground_truth, "ground truth")
    if t.ndim != 2 or t.shape[0] < 3:
        raise ValueError(f"ground truth must be (K, K) with K >= 3; got {t.shape}")
    k = t.shape[0]
    off = t.copy()
    np.fill_diagonal(off, 0.0)
    row = off.sum(axis=1)  # Σ_{k≠i} T[i, k]
    s = (row[:, None] - off) / np.where(np.eye(k, dtype=bool), k - 1, k - 2)  # k = j removed too, unless j = i
    return -s if higher_is_closer else s


def hub_distance(distance: np.ndarray) -> np.ndarray:
    """A method's distance made target-agnostic: entry (i, j) is source i's mean distance to the
    other models, h_i = mean over k ≠ i of D[i, k], for every target j (the distance to the zoo's
    centre). (..., K, K) → (..., K, K): a stack of resamples gives a stack."""
    d = _square(distance, "distance")
    k = d.shape[-1]
    diag = np.diagonal(d, axis1=-2, axis2=-1)
    h = (d.sum(axis=-1) - diag) / (k - 1)
    return np.repeat(h[..., :, None], k, axis=-1)


def source_effect_removed(m: np.ndarray) -> np.ndarray:
    """Double-centred column ranks (..., K, K): each column ranked over all K sources (its own
    entry included, so that every source is ranked against the same set in every column;
    ranking the K − 1 others instead shifts a source's rank by one depending on where the
    column's own task falls, a structure both matrices would share), then each row's mean
    over its K entries subtracted (the source main effect; the columns are centred already:
    every column's mean rank is (K + 1)/2). Scaled by 2K, so that the result is exact in
    integers (midranks are halves): equal residuals are equal, which ranking them again needs."""
    a = _square(m, "matrix")
    r = 2 * rankdata(a, axis=-2)
    return r * a.shape[-1] - r.sum(axis=-1, keepdims=True)


def target_specific_rho(distance: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """ρ_j between T and D after the source main effect is removed from both
    (:func:`source_effect_removed`), own entries left out: (K,) for D (K, K), (B, K) for a stack.

    A target-agnostic ranker (:func:`static_distance`, :func:`hub_distance`) ranks the sources
    alike for every target, so its residual ranks carry no target information and its score is
    near 0; a method that knows which source suits which target keeps a score. NaN where a
    residual column is constant, and where T's column is (its sources all equal: nothing to
    rank, though the centring would make its residuals vary). Needs K ≥ 4."""
    d = _square(distance, "distance")
    t = _square(ground_truth, "ground truth")
    if d.shape[-2:] != t.shape or t.ndim != 2 or t.shape[0] < 4:
        raise ValueError(f"distance (..., K, K) and ground truth (K, K) with K >= 4 needed; got {d.shape}, {t.shape}")
    stack = d if d.ndim == 3 else d[None]
    rho = per_task_rho(source_effect_removed(stack), source_effect_removed(t), diagonal=False)
    rho[:, constant_columns(t)] = np.nan
    return rho if d.ndim == 3 else rho[0]


def constant_columns(ground_truth: np.ndarray) -> np.ndarray:
    """(K,) bool: the columns of T whose sources (the K − 1 other tasks) all have one value, where
    no per-target score is defined (an excluded target's column is made constant:
    :attr:`modelgif.score.ground_truth.GroundTruth.scored`)."""
    t = _square(ground_truth, "ground truth")
    off = ~np.eye(t.shape[0], dtype=bool)
    return np.array([np.ptp(t[off[:, j], j]) == 0 for j in range(t.shape[0])])


# ----------------------------------------------------------------------------- decision metrics
def _gain(ground_truth: np.ndarray, higher_is_closer: bool) -> np.ndarray:
    t = _square(ground_truth, "ground truth")
    if t.ndim != 2 or t.shape[0] < 3:
        raise ValueError(f"ground truth must be (K, K) with K >= 3; got {t.shape}")
    return t if higher_is_closer else -t


def _predicted_order(distance: np.ndarray, j: int) -> np.ndarray:
    """Sources i ≠ j of target j, nearest first ((..., K − 1) indices; ties: lower index first)."""
    k = distance.shape[-1]
    rows = np.delete(np.arange(k), j)
    return rows[np.argsort(distance[..., rows, j], axis=-1, kind="stable")]


def top1_regret(distance: np.ndarray, ground_truth: np.ndarray, higher_is_closer: bool = True) -> np.ndarray:
    """Transfer lost per target by taking the nearest source instead of the best one, the
    target's own task excluded from both: (K,) for D (K, K), (B, K) for a stack.

    regret_j = max_{i≠j} g_ij − g_{î j}, î = argmin_{i≠j} D[i, j], g = T (higher is closer) or
    −T (losses), in the table's own units; 0 is a perfect pick. Ties in D: lowest index. NaN
    where T's column is constant over the sources (every pick is the best: nothing measured)."""
    g = _gain(ground_truth, higher_is_closer)
    d = _square(distance, "distance")
    if d.shape[-2:] != g.shape:
        raise ValueError(f"distance {d.shape} does not match the ground truth {g.shape}")
    k = g.shape[0]
    out = np.empty(d.shape[:-2] + (k,))
    for j in range(k):
        best = np.delete(g[:, j], j).max()
        pick = _predicted_order(d, j)[..., 0]
        out[..., j] = best - g[pick, j]
    out[..., constant_columns(g)] = np.nan
    return out


def ndcg_at(distance: np.ndarray, ground_truth: np.ndarray, higher_is_closer: bool = True, k: int = 3) -> np.ndarray:
    """NDCG@k of each target's predicted source ranking (nearest first), own task excluded:
    (K,) for D (K, K), (B, K) for a stack.

    Relevance of source i for target j: the number of other sources (≠ j) it beats in the
    ground truth (ties counted half), 0 … K − 2, so the scale of T does not matter.
    DCG@k = Σ_{r ≤ k} rel(r-th predicted) / log2(r + 1), divided by the ideal DCG@k; 1 is
    perfect. NaN where T's column is constant over the sources."""
    g = _gain(ground_truth, higher_is_closer)
    d = _square(distance, "distance")
    n = g.shape[0]
    if d.shape[-2:] != g.shape:
        raise ValueError(f"distance {d.shape} does not match the ground truth {g.shape}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise ValueError(f"k must be an integer in 1..K-1 = {n - 1}, got {k!r}")
    disc = 1 / np.log2(np.arange(2, k + 2))
    out = np.empty(d.shape[:-2] + (n,))
    for j in range(n):
        rel = np.zeros(n)
        rows = np.delete(np.arange(n), j)
        rel[rows] = rankdata(g[rows, j]) - 1  # sources beaten, ties half
        ideal = np.sort(rel[rows])[::-1][:k] @ disc
        out[..., j] = rel[_predicted_order(d, j)[..., :k]] @ disc / ideal if ideal > 0 else np.nan
    out[..., constant_columns(g)] = np.nan
    return out


# ----------------------------------------------------------------------------- primary comparison
def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (as statsmodels' ``multipletests(method="holm")``):
    sorted ascending, p_(r) · (m − r + 1), running maximum, capped at 1; NaN stays NaN and does
    not count in m."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional; got shape {p.shape}")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adj
    return out


def paired_wilcoxon(per_task_a, per_task_b) -> dict:
    """Wilcoxon signed-rank test (two-sided, ``scipy.stats.wilcoxon``) of a − b over the target
    tasks where both are defined (None/NaN left out).

    Returns:
        ``{"median_difference", "mean_difference", "statistic", "p", "n_tasks"}``; ``p`` is 1.0
        (and ``statistic`` None) when every difference is 0.
    """
    a = np.array([np.nan if v is None else v for v in per_task_a], dtype=np.float64)
    b = np.array([np.nan if v is None else v for v in per_task_b], dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"per-task vectors must be one-dimensional of one length; got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    if diff.size < 2:
        raise ValueError(f"a paired test needs at least 2 tasks where both are defined, got {diff.size}")
    out = {"median_difference": float(np.median(diff)), "mean_difference": float(diff.mean()),
           "n_tasks": int(diff.size)}
    if not diff.any():
        return {**out, "statistic": None, "p": 1.0}
    res = wilcoxon(diff)
    return {**out, "statistic": float(res.statistic), "p": float(res.pvalue)}


def primary_comparisons(per_task: dict, reference: str) -> dict:
    """The primary family: ``reference`` vs each other entry of ``per_task`` ({name: per-target
    values}), :func:`paired_wilcoxon` each (difference: other − reference), Holm-corrected
    across the family (:func:`holm`).

    Returns:
        ``{name: {"median_difference", "mean_difference", "statistic", "p", "p_holm",
        "n_tasks"}}`` in the order of ``per_task``, the reference left out.
    """
    if reference not in per_task:
        raise ValueError(f"the primary method {reference!r} is not among {', '.join(per_task)}")
    out = {m: paired_wilcoxon(v, per_task[reference]) for m, v in per_task.items() if m != reference}
    adjusted = holm([r["p"] for r in out.values()]) if out else []
    for r, p in zip(out.values(), adjusted):
        r["p_holm"] = float(p)
    return out


# ----------------------------------------------------------------------------- one method, one table
def _two_factor_or_nan(full, boot, draws, level) -> dict:
    """:func:`two_factor_interval`, or NaN throughout where every per-target value is undefined
    (a target-agnostic ranker's target-specific score: nothing left once the source effect is out)."""
    if not np.isfinite(full).any():
        return {"estimate": float("nan"), "ci": [float("nan")] * 2, "ci_percentile": [float("nan")] * 2}
    return two_factor_interval(full, boot, draws, level)


def _task_interval_keys(prefix: str, estimate: float, reps: np.ndarray, jackknife: np.ndarray, out: dict,
                        level: float) -> None:
    """``<prefix>_ci95``: the percentile interval of the task-resampled replicates (images ×
    tasks as sources and targets: the primary interval of a mean ρ, calibrated on the control
    zoo, benchmarks/README.md); ``<prefix>_ci95_bca``: their BCa interval (jackknife over tasks)."""
    out[prefix + "_ci95"] = percentile_interval(reps, level)
    out[prefix + "_ci95_bca"] = bca_interval(reps, estimate, jackknife, level)


def _interval_keys(prefix: str, est: dict, out: dict) -> None:
    """``<prefix>_ci95``: the two-factor (images × targets, sources fixed) percentile interval
    of a per-target metric; ``<prefix>_ci95_bca``: the BCa interval of the same replicates."""
    out[prefix + "_ci95"] = est["ci_percentile"]
    out[prefix + "_ci95_bca"] = est["ci"]


def paired_difference(distance: np.ndarray, samples: np.ndarray, ground_truth: np.ndarray, draws: np.ndarray,
                      reference: tuple, *, name: str = "delta", level: float = 0.95, known: dict | None = None) -> dict:
    """The paired two-factor difference mean ρ(D) − mean ρ(D_ref) of two distances on the same
    image resamples and task draws (ModelGiF's ``delta_vs_modelgif``, a method minus its own hub
    baseline's ``minus_hub``).

    Args:
        distance: D (K, K) on all images; samples: D (B, K, K) on the image resamples.
        ground_truth: T (K, K); draws: (B, K) task draws (:func:`target_draws`), paired with
            image resample b.
        reference: ``(D_ref (K, K), samples_ref (B, K, K))``, on the same resamples; a third item,
            the reference's ``score_method(...)["_replicates"]``, saves recomputing them.
        name: prefix of the keys; known: D's own ``score_method(...)["_replicates"]`` (optional).

    Returns:
        ``<name>`` (difference of the full-data mean ρ), ``<name>_ci95`` (percentile interval of the
        paired task-resampled replicates: tasks as sources and targets, :func:`task_resampled_rho`),
        ``<name>_ci95_bca`` (BCa, the jackknife over tasks of the difference) and
        ``<name>_ci95_targets`` (images × targets, sources fixed), and with K ≥ 4 the same with
        ``_off_diagonal`` after ``<name>`` (each task's own entry left out).
    """
    d = _square(distance, "distance")
    s = _square(samples, "bootstrap distances")
    t = _square(ground_truth, "ground truth")
    rd, rs = _square(reference[0], "reference distance"), _square(reference[1], "reference samples")
    if d.shape != t.shape or s.ndim != 3 or s.shape[1:] != t.shape:
        raise ValueError(f"distance (K, K), samples (B, K, K) and ground truth (K, K) must agree; got "
                         f"{d.shape}, {s.shape}, {t.shape}")
    if rd.shape != d.shape or rs.shape != s.shape:
        raise ValueError(f"reference {rd.shape}, {rs.shape} does not pair with the method's {d.shape}, {s.shape}")
    known_ref = reference[2] if len(reference) > 2 else {}
    known = known or {}
    out: dict = {}
    variants = [("mean_rho", True)] + ([("mean_rho_off_diagonal", False)] if t.shape[0] >= 4 else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for key, diagonal in variants:
            parts = []
            for m, ms, have in ((d, s, known), (rd, rs, known_ref)):
                full = per_task_rho(m[None], t, diagonal=diagonal)[0]
                if key in have:
                    boot, reps, jk = have[key]
                else:
                    boot, reps = per_task_rho(ms, t, diagonal=diagonal), task_resampled_rho(ms, t, draws, diagonal)
                    jk = task_jackknife_rho(m, t, diagonal)
                parts.append((full, boot, reps, jk))
            (full, boot, reps, jk), (rfull, rboot, rreps, rjk) = parts
            prefix = name + ("" if diagonal else "_off_diagonal")
            est = float(np.nanmean(full) - np.nanmean(rfull))
            out[prefix] = est
            _task_interval_keys(prefix, est, reps - rreps, jk - rjk, out, level)
            out[prefix + "_ci95_targets"] = _two_factor_or_nan(full - rfull, boot - rboot, draws, level)["ci_percentile"]
    return out


def score_method(distance: np.ndarray, samples: np.ndarray, ground_truth: np.ndarray, draws: np.ndarray,
                 permutations: np.ndarray, *, higher_is_closer: bool = True, level: float = 0.95,
                 reference: tuple | None = None, reference_name: str = "modelgif") -> dict:
    """Inference for one method against one ground truth.

    Args:
        distance: D (K, K) on all images; samples: D (B, K, K) on the image resamples.
        ground_truth: T (K, K); draws: (B, K) target draws (:func:`target_draws`);
        permutations: (n, K) task permutations (:func:`task_permutations`).
        higher_is_closer: the table's orientation (better ρ is lower when True).
        reference: ``(D (K, K), samples (B, K, K))`` of the reference method on the same
            resamples, for the paired two-factor difference; a third item, the reference's own
            ``score_method(...)["_replicates"]``, saves recomputing its per-target ρ.

    Returns (floats and lists; the images-only intervals stay in
    :func:`modelgif.score.bootstrap.summarize`):
        ``mean_rho`` and ``mean_rho_off_diagonal`` (as ``summarize``), their intervals
        ``*_ci95``: percentile, images × tasks resampled as sources and targets together
        (:func:`task_resampled_rho`), with ``*_ci95_bca`` (BCa, jackknife over tasks) and
        ``*_ci95_targets`` (images × targets, sources fixed: :func:`two_factor_interval`), ``p_perm`` /
        ``p_perm_off_diagonal`` and ``chance_level`` / ``chance_level_off_diagonal``
        (:func:`mantel_null`), ``mean_rho_target_specific`` (+ ``_ci95``, ``p_perm``),
        ``top1_regret`` and ``ndcg_at_3`` (mean over targets, + ``_ci95``, and
        ``per_task_*``; their ``_ci95`` resample images × targets, sources fixed), and with ``reference``: ``delta_vs_<name>_ci95`` (+
        ``_off_diagonal_ci95``), the two-factor interval of the paired difference.
        Off-diagonal, target-specific and decision keys need K ≥ 4.
    """
    better = "lower" if higher_is_closer else "higher"
    d = _square(distance, "distance")
    s = _square(samples, "bootstrap distances")
    t = _square(ground_truth, "ground truth")
    if d.shape != t.shape or s.ndim != 3 or s.shape[1:] != t.shape:
        raise ValueError(f"distance (K, K), samples (B, K, K) and ground truth (K, K) must agree; got "
                         f"{d.shape}, {s.shape}, {t.shape}")
    off = t.shape[0] >= 4
    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        variants = [("mean_rho", True)] + ([("mean_rho_off_diagonal", False)] if off else [])
        replicates = {}
        for key, diagonal in variants:
            full = per_task_rho(d[None], t, diagonal=diagonal)[0]
            if not np.isfinite(full).any():
                raise ValueError("Spearman's rho is undefined for every task")
            boot = per_task_rho(s, t, diagonal=diagonal)
            reps, jk = task_resampled_rho(s, t, draws, diagonal), task_jackknife_rho(d, t, diagonal)
            replicates[key] = (boot, reps, jk)
            est = float(np.nanmean(full))
            out[key] = est
            _task_interval_keys(key, est, reps, jk, out, level)
            out[key + "_ci95_targets"] = two_factor_interval(full, boot, draws, level)["ci_percentile"]
            null = mantel_null(d, t, permutations, diagonal=diagonal)
            suffix = "" if diagonal else "_off_diagonal"
            out["p_perm" + suffix] = permutation_p(est, null, better)
            out["chance_level" + suffix] = float(np.nanmean(null))
        if off:
            full, boot = target_specific_rho(d, t), target_specific_rho(s, t)
            est = _two_factor_or_nan(full, boot, draws, level)
            out["mean_rho_target_specific"] = est["estimate"]
            _interval_keys("mean_rho_target_specific", est, out)
            perm = np.asarray(permutations)
            null = np.nanmean(target_specific_rho(d[perm[:, :, None], perm[:, None, :]], t), axis=1)  # NaN: all undefined
            out["p_perm_target_specific"] = permutation_p(est["estimate"], null, better)
            out["per_task_target_specific"] = [None if np.isnan(r) else float(r) for r in full]
            for key, fn in (("top1_regret", top1_regret), ("ndcg_at_3", ndcg_at)):
                full, boot = fn(d, t, higher_is_closer), fn(s, t, higher_is_closer)
                est = _two_factor_or_nan(full, boot, draws, level)
                out[key] = est["estimate"]
                _interval_keys(key, est, out)
                out["per_task_" + key] = [None if np.isnan(r) else float(r) for r in full]
        if reference is not None:
            diff = paired_difference(d, s, t, draws, reference, name=f"delta_vs_{reference_name}", level=level,
                                     known={k: v for k, v in replicates.items()})
            # the full-data differences come from modelgif.score.bootstrap.add_full_delta (the summarize results)
            out.update({k: v for k, v in diff.items() if k not in (f"delta_vs_{reference_name}",
                                                                    f"delta_vs_{reference_name}_off_diagonal")})
    out["_replicates"] = replicates  # per-target ρ on the image resamples, per score: pass as reference[2] to pair cheaply
    return out


__all__ = [
    "bca_interval", "constant_columns", "hub_distance", "holm", "mantel_null", "ndcg_at", "paired_difference", "paired_wilcoxon",
    "permutation_p",
    "primary_comparisons",
    "score_method", "source_effect_removed", "static_distance", "target_draws", "target_specific_rho",
    "task_jackknife_rho", "task_resampled_rho",
    "task_permutations", "top1_regret", "two_factor_interval",
]
