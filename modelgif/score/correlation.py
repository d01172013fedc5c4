"""Correlation of a ModelGiF distance matrix with a ground-truth affinity (docs/METHOD.md, step 7)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import spearmanr


def per_task_spearman(distance: np.ndarray, ground_truth: np.ndarray, diagonal: bool = True) -> np.ndarray:
    """ρ_j = Spearman(T[:, j], D[:, j]) for every task j, diagonal included (the paper's protocol).

    Args:
        distance: D (K, K), ModelGiF distances (e.g. :func:`modelgif.distance_matrix`).
        ground_truth: T (K, K), in the same task order (e.g. :func:`modelgif.load_ground_truth`).
        diagonal: ``False`` leaves out each column's own entry (i = j) and ranks the other
            K − 1 sources only. The self-pair is usually the best source with distance 0, so
            it pulls ρ towards −1 for *any* distance that is 0 between a model and itself,
            random ones included; without it, ρ says how well the distance ranks the others.

    Returns:
        ρ, float64 (K,). Negative is good when T is an affinity and D a distance. Where a
        column of D or T is constant, ρ is undefined: that entry is NaN and a
        ``RuntimeWarning`` names the columns (e.g. target 6 on an encoder whose output
        GroupNorm makes the field vanish, so its distance to every model is 1).

    Raises:
        ValueError: shapes differ or are not square, K < 3, or non-finite values.
    """
    d = np.asarray(distance, dtype=np.float64)
    t = np.asarray(ground_truth, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape != t.shape:
        raise ValueError(f"distance and ground truth must be square matrices of one shape; got {d.shape} and {t.shape}")
    if d.shape[0] < (3 if diagonal else 4):
        raise ValueError(f"a per-task Spearman correlation needs at least {3 if diagonal else 4} tasks"
                         f"{'' if diagonal else ' without the diagonal'}, got {d.shape[0]}")
    for name, m in (("distance", d), ("ground truth", t)):
        if not np.isfinite(m).all():
            raise ValueError(f"{name} matrix has NaN or infinite values")
    k = d.shape[1]
    rows = [np.arange(k) if diagonal else np.delete(np.arange(k), j) for j in range(k)]
    constant = [j for j in range(k) if np.ptp(d[rows[j], j]) == 0 or np.ptp(t[rows[j], j]) == 0]
    if constant:
        warnings.warn(f"constant column(s) {constant}: Spearman's rho is undefined there (NaN)",
                      RuntimeWarning, stacklevel=2)
    return np.array([np.nan if j in constant else spearmanr(t[rows[j], j], d[rows[j], j]).statistic
                     for j in range(k)], dtype=np.float64)


def higher_is_closer(table: str) -> bool:
    """Deprecated (0.2): a table's orientation is its declaration's ``higher_is_closer``
    (:class:`modelgif.zoo.spec.TableSpec`), not a rule on its name."""
    from .._deprecated import warn

    warn("modelgif.score.correlation.higher_is_closer", "the zoo declaration's TableSpec.higher_is_closer")
    return "loss" not in table.lower()
