"""Correlation of a ModelGiF distance matrix with a ground-truth affinity (DESIGN §1.7)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import spearmanr


def per_task_spearman(distance: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """ρ_j = Spearman(T[:, j], D[:, j]) for every task j, diagonal included.

    Args:
        distance: D (K, K), ModelGiF distances (e.g. :func:`modelgif.affinity_matrix`).
        ground_truth: T (K, K), in the same task order (e.g. :func:`modelgif.load_ground_truth`).

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
    if d.shape[0] < 3:
        raise ValueError(f"a per-task Spearman correlation needs at least 3 tasks, got {d.shape[0]}")
    for name, m in (("distance", d), ("ground truth", t)):
        if not np.isfinite(m).all():
            raise ValueError(f"{name} matrix has NaN or infinite values")
    constant = [j for j in range(d.shape[1]) if np.ptp(d[:, j]) == 0 or np.ptp(t[:, j]) == 0]
    if constant:
        warnings.warn(f"constant column(s) {constant}: Spearman's rho is undefined there (NaN)",
                      RuntimeWarning, stacklevel=2)
    return np.array([np.nan if j in constant else spearmanr(t[:, j], d[:, j]).statistic
                     for j in range(d.shape[1])], dtype=np.float64)
