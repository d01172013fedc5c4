"""The noise ceiling of a ground-truth table from its readout replicates (the encoders fixed).

A table the zoo measured R times with the encoders fixed and only the readouts retrained (R
readout seeds: the mini zoo's ``data/mini/tables/readouts``) says how much of the table is
measurement noise, the part no method can be blamed for. Per target column j (its sources
the rows; its own entry left out for the off-diagonal score), with T_1 … T_R the replicates:

* **upper** and **lower** bounds as rsatoolbox defines them (Nili et al. 2014; rsatoolbox's
  ``boot_noise_ceiling`` with ``method="spearman"``): the mean over replicates r of
  Spearman(T_r[:, j], pool[:, j]), where pool is the mean of the replicates' column ranks
  (rsatoolbox's ``pool_rdm`` for Spearman), over all R replicates (upper: r included, so it
  overfits to r) or over the R − 1 others (lower: r left out). A perfect model's mean ρ
  against the pooled table lies between them.
* **reliability**: the mean Spearman between two single replicates' columns (over the
  R(R − 1)/2 pairs; for R = 2 the split-half correlation), Spearman–Brown corrected to the
  mean of R: ρ_R = R ρ_1 / (1 + (R − 1) ρ_1); and **ceiling** = √max(ρ_R, 0), the highest |ρ| a method
  can expect against the mean table, which is what the correlate stage scores against.

Each value is the mean over target columns (an undefined column, constant in a replicate or
excluded as degenerate, left out), with a 95 % percentile interval from resampling the
target columns (seeded, ``n`` draws): targets are the unit the mean generalises over.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata


def _columns(tables: np.ndarray, j: int, diagonal: bool) -> np.ndarray:
    """(R, sources) column j of every replicate, its own entry left out unless ``diagonal``."""
    rows = np.arange(tables.shape[1]) if diagonal else np.delete(np.arange(tables.shape[1]), j)
    return tables[:, rows, j]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ of two vectors (NaN where either is constant)."""
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / den) if den > 0 else float("nan")


def per_target_ceiling(replicates, diagonal: bool = True) -> dict:
    """Per target column the rsatoolbox bounds and the single-replicate reliability.

    Args:
        replicates: (R, K, K) the same table measured R ≥ 2 times (row = source, column = target).
        diagonal: False leaves each column's own entry out (the off-diagonal score).

    Returns:
        ``{"upper", "lower", "single"}``, each float64 (K,) (NaN where undefined): the bounds
        and the mean pairwise Spearman between single replicates.
    """
    t = np.asarray(replicates, dtype=np.float64)
    if t.ndim != 3 or t.shape[0] < 2 or t.shape[1] != t.shape[2] or t.shape[1] < (3 if diagonal else 4):
        raise ValueError(f"readout replicates must be (R >= 2, K, K) with K >= {3 if diagonal else 4}; got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("readout replicates have NaN or infinite values")
    r, k = t.shape[0], t.shape[1]
    out = {key: np.full(k, np.nan) for key in ("upper", "lower", "single")}
    for j in range(k):
        cols = _columns(t, j, diagonal)
        if (np.ptp(cols, axis=1) == 0).any():
            continue  # constant in a replicate: nothing to rank
        ranks = rankdata(cols, axis=1)
        pool = ranks.mean(axis=0)
        out["upper"][j] = np.mean([_spearman(cols[i], pool) for i in range(r)])
        out["lower"][j] = np.mean([_spearman(cols[i], np.delete(ranks, i, axis=0).mean(axis=0)) for i in range(r)])
        out["single"][j] = np.mean([_spearman(cols[a], cols[b]) for a in range(r) for b in range(a + 1, r)])
    return out


def spearman_brown(rho: float | np.ndarray, factor: float) -> float | np.ndarray:
    """The reliability of a mean of ``factor`` replicates from that of one: f ρ / (1 + (f − 1) ρ)."""
    rho = np.asarray(rho, dtype=np.float64)
    return factor * rho / (1 + (factor - 1) * rho)


def _summary(per_target: dict, r: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all undefined: NaN
        single = float(np.nanmean(per_target["single"]))
        reliability = float(spearman_brown(single, r))
        return {"upper": float(np.nanmean(per_target["upper"])), "lower": float(np.nanmean(per_target["lower"])),
                "reliability_single": single, "reliability": reliability,
                "ceiling": float(np.sqrt(max(reliability, 0.0))) if np.isfinite(reliability) else float("nan")}


def readout_noise_ceiling(replicates, *, diagonal: bool = True, exclude=(), n: int = 1000, seed: int = 0,
                          level: float = 0.95) -> dict:
    """The noise ceiling of a table from its R readout replicates (module docstring).

    Args:
        replicates: (R, K, K); diagonal: as for :func:`per_target_ceiling`.
        exclude: target indices left out (the table's degenerate targets).
        n, seed: the target resamples of the intervals.

    Returns:
        ``{"upper", "lower", "reliability_single", "reliability", "ceiling"}`` (means over the
        defined targets), each with ``<key>_ci95`` (percentile over target resamples),
        ``"replicates"`` (R) and ``"n_targets"``; ``per_task_upper`` / ``per_task_lower``
        (null where undefined).
    """
    t = np.asarray(replicates, dtype=np.float64)
    per = per_target_ceiling(t, diagonal)
    for key in per:
        per[key][list(exclude)] = np.nan
    defined = np.flatnonzero(np.isfinite(per["upper"]))
    if defined.size == 0:
        raise ValueError("the noise ceiling is undefined for every target (constant or excluded columns)")
    out = _summary(per, t.shape[0])
    rng = np.random.default_rng(seed)
    draws = rng.choice(defined, size=(n, defined.size), replace=True)
    boot = [_summary({key: v[d] for key, v in per.items()}, t.shape[0]) for d in draws]
    alpha = (1 - level) / 2
    for key in list(out):
        values = np.array([b[key] for b in boot])
        values = values[np.isfinite(values)]
        out[key + "_ci95"] = ([float(v) for v in np.quantile(values, [alpha, 1 - alpha])] if values.size
                              else [float("nan")] * 2)
    out.update(replicates=int(t.shape[0]), n_targets=int(defined.size),
               per_task_upper=[None if np.isnan(v) else float(v) for v in per["upper"]],
               per_task_lower=[None if np.isnan(v) else float(v) for v in per["lower"]])
    return out


__all__ = ["per_target_ceiling", "readout_noise_ceiling", "spearman_brown"]
