"""How well a benchmark's builds agree on the ranking of methods (issue 23): Kendall's W.

Each build of the mini zoo (its own encoders, its own ground truth) scores every method; a
benchmark that can tell methods apart ranks them alike on every build. Kendall's coefficient of
concordance W (Kendall & Babington Smith 1939) of m builds ranking n methods:

    W = 12 S / (m² (n³ − n) − m Σ_b T_b),   S = Σ_i (R_i − m (n + 1) / 2)²,

with R_i the sum over builds of method i's rank and T_b = Σ (t³ − t) over the groups of t tied
methods of build b (the tie correction). W = 1: every build gives the same order; W ≈ 0: no
agreement. Without ties, the mean Spearman correlation between two builds' rankings is
(m W − 1) / (m − 1), the check the tests make.

:func:`kendalls_w_interval` gives two things about W. ``p_perm`` (:func:`concordance_p`):
each build's scores permuted among the methods, independently per build (the Friedman test's
null, no agreement beyond chance), exact under that null. ``w_range95_targets``: the target
tasks resampled (the unit each build's mean ρ is averaged over), the same draw for every build
and method, every build's mean per method and W recomputed, the 2.5 and 97.5 percentiles. The
latter is a sensitivity range, **not a confidence interval**: W of noisy means is biased
towards 0 by the noise and towards 1 by the targets every build shares, so its coverage of the
W of the builds' population means runs from 0 % to 99 % in simulations whose truth is known
(``benchmarks/kendalls_w_coverage.py``, benchmarks/README.md); with 3 builds, the builds,
which would be the unit of such an interval, cannot be resampled.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata


def kendalls_w(scores, better: str = "lower") -> float:
    """Kendall's W of m builds' scores of n methods.

    Args:
        scores: (m, n): row b is build b's score of each method (e.g. mean ρ); ranked within
            the row, rank 1 for the best (``better="lower"``: the most negative ρ, an affinity).

    Returns:
        W in [0, 1] (NaN where every build ties all methods).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be (m >= 2 builds, n >= 2 methods); got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores have NaN or infinite values (a method undefined on a build)")
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    m, n = s.shape
    ranks = rankdata(s if better == "lower" else -s, axis=1)
    total = ranks.sum(axis=0)
    spread = ((total - m * (n + 1) / 2) ** 2).sum()
    ties = sum(((c ** 3) - c).sum() for c in (np.unique(row, return_counts=True)[1] for row in ranks))
    den = m ** 2 * (n ** 3 - n) - m * ties
    return float(12 * spread / den) if den > 0 else float("nan")


def concordance_p(scores, better: str = "lower", n: int = 10000, seed: int = 0) -> float:
    """Permutation p-value of Kendall's W against no agreement: each build's scores shuffled
    among the methods, independently per build (Friedman's null), ``n`` times, seeded;
    p = (1 + #{W_perm ≥ W}) / (1 + n), one-sided. ``scores``: (m builds, n methods)."""
    s = np.asarray(scores, dtype=np.float64)
    w = kendalls_w(s, better)
    rng = np.random.default_rng(seed)
    # (n, m, methods): row b of permutation i shuffles build b's scores
    order = np.argsort(rng.random((int(n), *s.shape)), axis=2)
    perm = np.take_along_axis(np.broadcast_to(s, order.shape), order, axis=2)
    null = np.array([kendalls_w(x, better) for x in perm])
    return float((1 + (null >= w - 1e-12).sum()) / (1 + null.size))


def kendalls_w_interval(per_target, better: str = "lower", n: int = 1000, seed: int = 0,
                        level: float = 0.95, permutations: int = 10000) -> dict:
    """Kendall's W of builds' mean per-target scores, its permutation p-value, and its range
    under target resampling (a sensitivity range, not a confidence interval: see the module).

    Args:
        per_target: (m builds, n methods, K targets) per-target scores (e.g. ρ_j; NaN where
            undefined or excluded, left out of the means).

    Returns:
        ``{"w", "p_perm" (:func:`concordance_p`), "w_range95_targets", "n_builds", "n_methods",
        "n_resamples"}``; resamples whose means are undefined for some method are left out of
        the range.
    """
    p = np.asarray(per_target, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"per_target must be (builds, methods, targets); got shape {p.shape}")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with a method undefined: left out
        means = np.nanmean(p, axis=2)
        w = kendalls_w(means, better)
        rng = np.random.default_rng(seed)
        boot = []
        for _ in range(n):
            draw = rng.integers(0, p.shape[2], p.shape[2])
            resampled = np.nanmean(p[:, :, draw], axis=2)
            if np.isfinite(resampled).all():
                boot.append(kendalls_w(resampled, better))
    boot = np.array([b for b in boot if np.isfinite(b)])
    alpha = (1 - level) / 2
    ci = [float(v) for v in np.quantile(boot, [alpha, 1 - alpha])] if boot.size else [float("nan")] * 2
    return {"w": w, "p_perm": concordance_p(means, better, permutations, seed), "w_range95_targets": ci,
            "n_builds": int(p.shape[0]), "n_methods": int(p.shape[1]), "n_resamples": int(boot.size)}


__all__ = ["concordance_p", "kendalls_w", "kendalls_w_interval"]
