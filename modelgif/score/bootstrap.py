"""Uncertainty of a method's score from its image resamples, and the noise ceiling.

A score is the mean over tasks of ρ_j = Spearman(T[:, j], D[:, j])
(:func:`modelgif.score.correlation.per_task_spearman`). Its uncertainty from the finite reference
set is estimated from D on resamples of the N reference images
(:mod:`modelgif.compare.resample`): the 2.5 and 97.5 percentiles of the resamples' mean ρ.
Two methods evaluated on the *same* resamples give a paired difference (:func:`summarize`).
The intervals over target tasks as well as images are :mod:`modelgif.score.inference`'s.

:func:`noise_ceiling` is the per-column agreement between two ground-truth tables measured
independently (two seeds of the mini zoo, Taskonomy's 1k and 16k tables): how well any
distance can be expected to agree with a ground truth that is itself noisy.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
from scipy.stats import rankdata

from .correlation import per_task_spearman

#: Which ρ is better, per kind of ground truth: an affinity wants negative ρ against a distance.
BETTER = ("lower", "higher")

#: Names that were here until 0.1 and are :mod:`modelgif.compare.resample`'s now (0.2 removes them).
_MOVED_TO_RESAMPLE = ('image_contributions', 'resample_indices', 'resample_counts', 'bootstrap_field_distances', 'resampled_cka', 'resampled_rsa', 'set_distances', 'bootstrap_set_distances', 'DEFAULT_BLOCK_BYTES')


def __getattr__(name: str):
    if name in _MOVED_TO_RESAMPLE:  # by its name, so that no stage depends on it for this (modelgif._imports)
        from .._deprecated import warn

        warn(f"modelgif.score.bootstrap.{name}", f"modelgif.compare.resample.{name}")
        return getattr(importlib.import_module("modelgif.compare.resample"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def per_task_rho(distances: np.ndarray, ground_truth: np.ndarray, diagonal: bool = True) -> np.ndarray:
    """:func:`modelgif.score.correlation.per_task_spearman` of many distance matrices at once.

    Args:
        distances: D (B, K, K), e.g. one per bootstrap resample.
        ground_truth: T (K, K).
        diagonal: as for ``per_task_spearman`` (False: each task's own entry left out).

    Returns:
        ρ (B, K); NaN where a column of D or T is constant (no warning: the caller counts them).
    """
    d = np.asarray(distances, dtype=np.float64)
    t = np.asarray(ground_truth, dtype=np.float64)
    if d.ndim != 3 or d.shape[1:] != t.shape or t.shape[0] != t.shape[1]:
        raise ValueError(f"distances must be (B, K, K) and ground truth (K, K); got {d.shape} and {t.shape}")
    if not (np.isfinite(d).all() and np.isfinite(t).all()):
        raise ValueError("distances or ground truth have NaN or infinite values")
    k = t.shape[0]
    out = np.empty((d.shape[0], k))
    for j in range(k):
        rows = np.arange(k) if diagonal else np.delete(np.arange(k), j)
        rt = rankdata(t[rows, j])
        rt -= rt.mean()
        rd = rankdata(d[:, rows, j], axis=1)
        rd -= rd.mean(axis=1, keepdims=True)
        denom = np.sqrt((rd**2).sum(axis=1) * (rt**2).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = np.where(denom > 0, rd @ rt / np.where(denom > 0, denom, 1.0), np.nan)
    return out


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> list[float]:
    """The percentile interval [low, high] of ``level`` (0.95: the 2.5 and 97.5 percentiles),
    NaN samples left out."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return [float("nan"), float("nan")]
    tail = round((1 - level) * 50, 10)  # 2.5 exactly for 0.95
    return [float(np.percentile(s, tail)), float(np.percentile(s, 100 - tail))]


def summarize(
    distance: np.ndarray,
    samples: np.ndarray,
    ground_truth: np.ndarray,
    *,
    reference: np.ndarray | None = None,
    reference_name: str = "modelgif",
    better: str = "lower",
    level: float = 0.95,
) -> dict:
    """One method's scores against one ground truth, with bootstrap intervals.

    Args:
        distance: D (K, K) on all reference images.
        samples: D (B, K, K) on the bootstrap resamples.
        ground_truth: T (K, K).
        reference: the reference method's D (B, K, K) on the *same* resamples (paired).
        reference_name: names the paired-difference keys.
        better: ``"lower"`` when T is an affinity (ρ < 0 is good), ``"higher"`` when it is a
            loss; decides the fraction of resamples where the method is better.
        level: coverage of the intervals (keys keep the name ``ci95``).

    Returns:
        ``{"mean_rho", "mean_rho_ci95": [lo, hi], "per_task": [ρ_j], "mean_rho_off_diagonal",
        "mean_rho_off_diagonal_ci95", "mean_rho_bootstrap_bias", "n_resamples"}`` and, with
        ``reference``,
        ``delta_vs_<name>`` (mean ρ minus the reference's, on all images),
        ``delta_vs_<name>_ci95`` (percentile interval of the per-resample differences),
        ``delta_vs_<name>_off_diagonal`` (+ ``_ci95``) and ``share_of_resamples_better_than_<name>``
        (share of image resamples where the difference has the better sign: descriptive, not a
        p-value; :func:`modelgif.score.inference.primary_comparisons` is the test). Means over tasks leave
        out undefined (NaN) ρ; with K < 4 tasks the off-diagonal keys are left out (a column
        without its own entry needs 3 sources). ``mean_rho_bootstrap_bias`` is the resamples' mean of mean ρ
        minus the full-data mean ρ: a resample holds about 63 % distinct images (duplicates
        add no information), so its ρ is typically nearer 0, and the percentile interval can
        sit beside the full-data value rather than around it; a large bias says so.
    """
    if better not in BETTER:
        raise ValueError(f"better must be one of {', '.join(BETTER)}, got {better!r}")
    samples = np.asarray(samples, dtype=np.float64)
    off = np.shape(ground_truth)[0] >= 4  # without the diagonal a column needs 3 sources
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: NaN, left out of means
        full = per_task_spearman(distance, ground_truth)
        boot = np.nanmean(per_task_rho(samples, ground_truth), axis=1)
        if off:
            full_off = per_task_spearman(distance, ground_truth, diagonal=False)
            boot_off = np.nanmean(per_task_rho(samples, ground_truth, diagonal=False), axis=1)
    result = {
        "mean_rho": float(np.nanmean(full)),
        "mean_rho_ci95": percentile_interval(boot, level),
    }
    if off:
        result["mean_rho_off_diagonal"] = float(np.nanmean(full_off))
        result["mean_rho_off_diagonal_ci95"] = percentile_interval(boot_off, level)
    result.update({
        "mean_rho_bootstrap_bias": float(np.nanmean(boot) - np.nanmean(full)),
        "per_task": [None if np.isnan(r) else float(r) for r in full],
        "n_resamples": int(samples.shape[0]),
    })
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != samples.shape:
            raise ValueError(f"reference resamples {reference.shape} do not pair with the method's {samples.shape}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmean(per_task_rho(reference, ground_truth), axis=1)
            if off:
                ref_off = np.nanmean(per_task_rho(reference, ground_truth, diagonal=False), axis=1)
        delta = boot - ref
        name = reference_name
        result[f"delta_vs_{name}_ci95"] = percentile_interval(delta, level)
        if off:
            result[f"delta_vs_{name}_off_diagonal_ci95"] = percentile_interval(boot_off - ref_off, level)
        sign = -1.0 if better == "lower" else 1.0
        finite = np.isfinite(delta)
        result[f"share_of_resamples_better_than_{name}"] = float(np.mean(sign * delta[finite] > 0)) if finite.any() else None
    return result


def add_full_delta(result: dict, reference_result: dict, reference_name: str = "modelgif") -> dict:
    """Add ``delta_vs_<name>`` and ``delta_vs_<name>_off_diagonal`` (differences of the full-data
    mean ρ) to a :func:`summarize` result, from the reference's own result."""
    result[f"delta_vs_{reference_name}"] = result["mean_rho"] - reference_result["mean_rho"]
    if "mean_rho_off_diagonal" in result and "mean_rho_off_diagonal" in reference_result:
        result[f"delta_vs_{reference_name}_off_diagonal"] = (result["mean_rho_off_diagonal"]
                                                             - reference_result["mean_rho_off_diagonal"])
    return result


# ----------------------------------------------------------------------------- noise ceiling
def noise_ceiling(table_a: np.ndarray, table_b: np.ndarray, *, diagonal: bool = True) -> dict:
    """Agreement between two measurements of a ground truth, per target column.

    ``ρ_j = Spearman(A[:, j], B[:, j])`` (:func:`modelgif.score.correlation.per_task_spearman` with
    B in place of the distance), e.g. the mini zoo's seed-0 and seed-1 tables, or Taskonomy's
    1k and 16k tables. A distance D is scored as Spearman(T[:, j], D[:, j]); if T is a noisy
    copy of the truth, |ρ| near the ceiling is as good as the table allows. Positive: the two
    tables are of the same kind.

    Returns:
        ``{"per_task": [ρ_j], "mean_rho": mean over defined ρ_j}`` (``diagonal=False``: each
        task's own entry left out).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rho = per_task_spearman(table_b, table_a, diagonal=diagonal)
    return {"per_task": [None if np.isnan(r) else float(r) for r in rho], "mean_rho": float(np.nanmean(rho))}


__all__ = [
    "BETTER", "add_full_delta", "bootstrap_field_distances", "bootstrap_set_distances", "image_contributions",
    "noise_ceiling", "per_task_rho", "percentile_interval", "resample_counts", "resample_indices", "resampled_cka",
    "resampled_rsa", "set_distances", "summarize",
]
