"""Uncertainty of a method's score: a bootstrap over reference images, and the noise ceiling.

A score is the mean over tasks of ρ_j = Spearman(T[:, j], D[:, j])
(:func:`modelgif.correlation.per_task_spearman`). Its uncertainty from the finite reference
set is estimated by resampling the N reference images with replacement (``n`` resamples from a
seeded generator, :func:`resample_indices`), recomputing D on each resample, and taking the
2.5 and 97.5 percentiles of the resamples' mean ρ. Two methods evaluated on the *same*
resamples give a paired difference (:func:`summarize`).

- Field methods (``modelgif``, ``ig``, ``saliency``, ``gradxinput``) are means over images, so
  their D on a resample is a weighted mean of stored per-image contributions
  (:func:`image_contributions`, (N, K, K)): one matrix product for all resamples
  (:func:`bootstrap_field_distances`), no field is read again.
- Set-level methods (CKA, RSA, DDS) are not means over images and are recomputed on each
  resample's rows (:func:`bootstrap_set_distances`): CKA by indexing the linear Gram matrices
  (exact: the Gram matrix of the resampled rows is the resampled Gram matrix), RSA by
  re-ranking the RDM entries of the resample (pairs of an image with its own copy left out),
  DDS by recomputing from the resampled features (its z-scoring depends on the sample).

:func:`noise_ceiling` is the per-column agreement between two ground-truth tables measured
independently (two seeds of the mini zoo, Taskonomy's 1k and 16k tables): how well any
distance can be expected to agree with a ground truth that is itself noisy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from .correlation import per_task_spearman
from .distance import DEFAULT_CHUNK_BYTES, METRICS, _rows, open_fields
from .similarity import (
    DDS_KERNELS,
    DDS_RDMS,
    SET_METHODS,
    check_features,
    cka_from_grams,
    dds_distance,
    dds_matrices,
    dds_matrix,
    normalize_features,
    pearson_rdm,
)
from .storage import decode

#: Which ρ is better, per kind of ground truth: an affinity wants negative ρ against a distance.
BETTER = ("lower", "higher")


# ----------------------------------------------------------------------------- field methods
def image_contributions(
    fields: Sequence,
    metric: str = "cosine",
    *,
    chunk_size: int | None = None,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
) -> np.ndarray:
    """Per-image distance contributions C (N, K, K) of K models' fields.

    ``C[i, a, b]`` = mean over steps k of ``1 − cos(F^a_i[k], F^b_i[k])`` (``cosine``) or of
    ``‖F^a_i[k] − F^b_i[k]‖₂`` (``euclidean``), so that ``C.mean(axis=0)`` is
    :func:`modelgif.distance.affinity_matrix` (same conventions: a zero row has cosine 0).
    Fields as for :func:`~modelgif.distance.affinity_matrix` (arrays, tensors, stored-field
    paths or views such as :func:`modelgif.attribution.field_end_point`), read once, chunk
    by chunk.

    Returns:
        C, float64 (N, K, K), each C[i] symmetric with a zero diagonal (to rounding).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    opened, from_file, (n, s, p), chunk_size = open_fields(fields, chunk_size, max_chunk_bytes, "image_contributions")
    k_models = len(opened)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="img", desc=f"{metric} contributions")
    out = np.empty((n, k_models, k_models), dtype=np.float64)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        m = stop - start
        x = np.empty((m, s, k_models, p), dtype=np.float64)
        for a, (arr, name) in enumerate(opened):
            values = decode(_rows(arr, start, stop, from_file[a]), np.float64)
            if not np.isfinite(values).all():
                raise ValueError(f"{name} has NaN or infinite values in images {start}..{stop - 1}")
            x[:, :, a] = values
        gram = np.matmul(x, x.transpose(0, 1, 3, 2))  # (m, S, K, K)
        sq = np.einsum("mskk->msk", gram)
        if metric == "cosine":
            denom = np.sqrt(sq[..., :, None] * sq[..., None, :])
            cos = np.divide(gram, denom, out=np.zeros_like(gram), where=denom > 0)
            per = 1.0 - cos
        else:
            per = np.sqrt(np.clip(sq[..., :, None] + sq[..., None, :] - 2.0 * gram, 0.0, None))
        c = per.mean(axis=1)
        out[start:stop] = (c + c.transpose(0, 2, 1)) / 2
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    return out


# ----------------------------------------------------------------------------- resamples
def resample_indices(n_images: int, n: int = 1000, seed: int = 0) -> np.ndarray:
    """``n`` bootstrap resamples of ``n_images`` images: indices (n, n_images), drawn with
    replacement by ``numpy.random.default_rng(seed)``; the same arguments give the same
    resamples, so every method is scored on the same ones."""
    if not isinstance(n_images, (int, np.integer)) or n_images < 2:
        raise ValueError(f"n_images must be an integer >= 2, got {n_images!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of bootstrap resamples must be a positive integer, got {n!r}")
    return np.random.default_rng(seed).integers(0, n_images, size=(int(n), int(n_images)))


def resample_counts(indices: np.ndarray, n_images: int) -> np.ndarray:
    """How often each image is drawn in each resample: (B, N) int from indices (B, n)."""
    idx = np.asarray(indices)
    b = idx.shape[0]
    flat = (idx + n_images * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_images).reshape(b, n_images)


def bootstrap_field_distances(contributions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """D (B, K, K) on every resample: the mean of the resampled images' contributions."""
    c = np.asarray(contributions, dtype=np.float64)
    if c.ndim != 3 or c.shape[1] != c.shape[2]:
        raise ValueError(f"contributions must have shape (N, K, K); got {c.shape}")
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.size == 0 or idx.min() < 0 or idx.max() >= c.shape[0]:
        raise ValueError(f"indices must be (B, n) image indices below N = {c.shape[0]}")
    counts = resample_counts(idx, c.shape[0]).astype(np.float64)
    k = c.shape[1]
    return (counts @ c.reshape(c.shape[0], k * k)).reshape(-1, k, k) / idx.shape[1]


# ----------------------------------------------------------------------------- set-level methods
def _weighted_rank_corr(rdm_values: np.ndarray, orders: list, groups: list, weights: np.ndarray) -> np.ndarray:
    """Spearman ρ (B, K, K) between models' pair values, each pair repeated ``weights[b, p]``
    times (ties averaged): midranks from cumulative weights in each model's sorted order."""
    bsz, n_pairs = weights.shape
    k = rdm_values.shape[0]
    ranks = np.empty((bsz, k, n_pairs))
    for m in range(k):
        w = weights[:, orders[m]]  # (B, P) in the model's sorted order
        # total weight of each tie group, and of everything before it
        start, inverse = groups[m]
        cum = np.cumsum(w, axis=1)
        before = np.concatenate([np.zeros((bsz, 1)), cum], axis=1)[:, start]  # (B, G)
        end = np.append(start[1:], n_pairs)
        total = cum[:, end - 1] - before
        mid = before + (total + 1) / 2
        ranks[:, m, orders[m]] = mid[:, inverse]
    wsum = weights.sum(axis=1)  # (B,)
    mean = np.einsum("bkp,bp->bk", ranks, weights) / wsum[:, None]
    ranks -= mean[:, :, None]
    cov = np.einsum("bkp,bp,blp->bkl", ranks, weights, ranks)
    var = np.sqrt(np.einsum("bkk->bk", cov))
    denom = var[:, :, None] * var[:, None, :]
    rho = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
    return (rho + rho.transpose(0, 2, 1)) / 2


def _rsa_bootstrap(features, indices, max_block_bytes: int = 256 * 2**20) -> np.ndarray:
    feats = check_features(features, min_images=3)
    n = feats[0].shape[0]
    iu = np.triu_indices(n, k=1)
    block = max(1, int(max_block_bytes // (3 * 8 * len(feats) * len(iu[0]))))  # ranks and temporaries
    values = np.stack([pearson_rdm(x)[iu] for x in feats])  # (K, P)
    orders, groups = [], []
    for v in values:
        order = np.argsort(v, kind="stable")
        sv = v[order]
        start = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
        inverse = np.cumsum(np.r_[True, sv[1:] != sv[:-1]]) - 1
        orders.append(order)
        groups.append((start, inverse))
    counts = resample_counts(indices, n).astype(np.float64)
    out = np.empty((counts.shape[0], len(feats), len(feats)))
    for b0 in range(0, counts.shape[0], block):
        c = counts[b0 : b0 + block]
        weights = c[:, iu[0]] * c[:, iu[1]]  # a pair {i, j} appears c_i c_j times, i ≠ j
        out[b0 : b0 + block] = 1.0 - _weighted_rank_corr(values, orders, groups, weights)
    return out


def bootstrap_set_distances(method: str, features: Sequence, indices: np.ndarray, *, progress: bool = False,
                            **options) -> np.ndarray:
    """D (B, K, K) of a set-level method recomputed on every resample's rows.

    - ``cka``: :func:`modelgif.similarity.cka_distance` (``debiased`` option) on
      ``features[idx]``, computed by indexing the linear Gram matrices (exact).
    - ``rsa``: :func:`modelgif.similarity.rsa_distance` on ``features[idx]`` with the pairs of
      an image with a copy of itself left out (their RDM entry is 0 by construction, not a
      measurement): each pair {i, j} of distinct images counts c_i·c_j times; exact ranks.
    - ``dds``: :func:`modelgif.similarity.dds_distance` (its options) on ``features[idx]``,
      recomputed, the feature normalisation refitted on the resample (exact; each pairwise
      kernel evaluated once per distinct image). Option ``refit=False`` instead normalises once
      on all N images (and fixes the rbf bandwidth) and indexes the per-model matrices, as for
      CKA: an approximation, hundreds of times faster at Taskonomy's N = 1000, D = 512, where
      the exact path costs seconds per resample.
      Caveat (measured on the trained mini zoo, 200 resamples, ``wins_vs_pixels``): copies of an
      image have Laplacian kernel 1 in *every* model, a shared structure that pulls DDS's
      resampled mean ρ away from the full-data value (full −0.602; resamples −0.626,
      interval [−0.648, −0.600]; on each resample's distinct images only: −0.595). CKA shows
      no such shift (−0.646; −0.646; −0.648). Read DDS's percentile interval with
      ``mean_rho_bootstrap_bias`` from :func:`summarize`.

    Args:
        method: one of :data:`modelgif.similarity.SET_METHODS`.
        features: K arrays (N, D_k).
        indices: (B, n) resampled image indices (:func:`resample_indices`).
    """
    if method not in SET_METHODS:
        raise ValueError(f"unknown set-level method {method!r}; valid: {', '.join(SET_METHODS)}")
    feats = check_features(features)
    n = feats[0].shape[0]
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"indices must be (B, n) image indices below N = {n}")
    if method == "rsa":
        if options:
            raise ValueError(f"rsa takes no options, got {sorted(options)}")
        return _rsa_bootstrap(feats, idx)
    rows = idx
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(idx, unit="resample", desc=f"{method} bootstrap")
    if method == "cka":
        unknown = set(options) - {"debiased"}
        if unknown:
            raise ValueError(f"cka takes only the option 'debiased', got {sorted(unknown)}")
        grams = np.stack([x @ x.T for x in feats])
        return np.stack([1.0 - cka_from_grams(grams[:, r[:, None], r[None, :]], **options) for r in rows])
    refit = options.pop("refit", True)
    if not refit:
        mats = dds_matrices(feats, **{k: v for k, v in options.items() if k != "debiased"})
        debiased = options.get("debiased", True)
        return np.stack([1.0 - cka_from_grams(mats[:, r[:, None], r[None, :]], debiased=debiased) for r in rows])
    return np.stack([_dds_resample(feats, r, **options) for r in rows])


def _dds_resample(feats: list, rows: np.ndarray, *, kernel: str = "laplacian", feature_norm: str = "znorm",
                  debiased: bool = True, feature_shapes=None) -> np.ndarray:
    """:func:`dds_distance` of ``[x[rows] for x in feats]``: the features are normalised on the
    resample, but a pairwise kernel is evaluated once per distinct image and then indexed
    (a copy's entries are the original's); the rbf kernel's median bandwidth needs the whole
    resampled matrix, so it is recomputed plainly."""
    if kernel == "rbf":
        return dds_distance([x[rows] for x in feats], kernel=kernel, feature_norm=feature_norm,
                            debiased=debiased, feature_shapes=feature_shapes)
    if kernel not in DDS_KERNELS + DDS_RDMS:
        raise ValueError(f"unknown DDS kernel {kernel!r}; valid: {', '.join(DDS_KERNELS + DDS_RDMS)}")
    distinct, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    shapes = list(feature_shapes) if feature_shapes is not None else [None] * len(feats)
    mats = []
    for x, shape in zip(feats, shapes):
        z = normalize_features(x[rows], feature_norm, shape)[first]  # one row per distinct image
        mats.append(dds_matrix(z, kernel)[inverse[:, None], inverse[None, :]])
    mats = np.stack(mats)
    if not np.isfinite(mats).all():
        raise ValueError(f"DDS {kernel} matrices have NaN values (an image with constant features?)")
    return 1.0 - cka_from_grams(mats, debiased=debiased)


# ----------------------------------------------------------------------------- scores
def per_task_rho(distances: np.ndarray, ground_truth: np.ndarray, diagonal: bool = True) -> np.ndarray:
    """:func:`modelgif.correlation.per_task_spearman` of many distance matrices at once.

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
        ``delta_vs_<name>_off_diagonal`` (+ ``_ci95``) and ``fraction_better_than_<name>``
        (share of resamples where the difference has the better sign). Means over tasks leave
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
        result[f"fraction_better_than_{name}"] = float(np.mean(sign * delta[finite] > 0)) if finite.any() else None
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

    ``ρ_j = Spearman(A[:, j], B[:, j])`` (:func:`modelgif.correlation.per_task_spearman` with
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
    "noise_ceiling", "per_task_rho", "percentile_interval", "resample_counts", "resample_indices", "summarize",
]
