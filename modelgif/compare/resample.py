"""Distances on image resamples: what a method's D would be on another draw of the reference set.

A method's distance matrix D (K, K) is recomputed on each of ``n`` resamples of the N reference
images with replacement (seeded: :func:`resample_indices`), the same resamples for every
method so that their scores pair (:mod:`modelgif.score.bootstrap`, :mod:`modelgif.score.inference`).

- Field methods (``modelgif``, ``ig``, ``saliency``, ``gradxinput``) are means over images, so
  their D on a resample is a weighted mean of stored per-image contributions
  (:func:`image_contributions`, (N, K, K)): one matrix product for all resamples
  (:func:`bootstrap_field_distances`), no field is read again.
- Set-level methods (CKA, RSA, DDS) are not means over images and are recomputed on each
  resample's rows (:func:`set_distances`), from per-model (N, N) matrices built once on all
  images: a resample is a vector of weights (how often each image was drawn), and CKA of the
  resampled Gram or kernel matrices is a few weighted sums of the full matrices
  (:func:`resampled_cka`, exact, one matrix product per model pair for all resamples at
  once), RSA's ranks of the resampled RDM entries are cumulative weights in each model's
  sorted order (:func:`resampled_rsa`, exact, no sort per resample). Both run in torch on
  the GPU when there is one. DDS with ``refit`` recomputes each resample from its rows (its
  z-scoring depends on the sample).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..devices import resolve_device
from .distance import DEFAULT_CHUNK_BYTES, image_distance_sums
from .similarity import (
    DDS_KERNELS,
    DDS_RDMS,
    SET_METHODS,
    center_gram,
    check_features,
    cka_from_grams,
    dds_distance,
    dds_matrices,
    dds_matrix,
    linear_grams,
    normalize_features,
    pearson_rdm,
    rsa_from_rdms,
)


def image_contributions(
    fields: Sequence,
    metric: str = "cosine",
    *,
    chunk_size: int | None = None,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
    device=None,
) -> np.ndarray:
    """Per-image distance contributions C (N, K, K) of K models' fields.

    ``C[i, a, b]`` = mean over steps k of ``1 − cos(F^a_i[k], F^b_i[k])`` (``cosine``) or of
    ``‖F^a_i[k] − F^b_i[k]‖₂`` (``euclidean``), so that ``C.mean(axis=0)`` is
    :func:`modelgif.compare.distance.affinity_matrix` (same conventions: a zero row has cosine 0).
    Fields as for :func:`~modelgif.compare.distance.affinity_matrix` (arrays, tensors, stored-field
    paths or views such as :func:`modelgif.field.attribution.field_end_point`), read once, chunk
    by chunk, the per-row Gram products on ``device`` (as for ``affinity_matrix``: None, CUDA
    when torch sees a GPU, else numpy; ``"numpy"``; or a torch device), in float64.

    Returns:
        C, float64 (N, K, K), each C[i] symmetric with a zero diagonal (to rounding).
    """
    out = None
    for (n, s), start, stop, sums in image_distance_sums(fields, metric, chunk_size=chunk_size,
                                                          max_chunk_bytes=max_chunk_bytes, progress=progress,
                                                          device=device, caller="image_contributions"):
        if out is None:
            out = np.empty((n, sums.shape[1], sums.shape[1]), dtype=np.float64)
        c = sums / s
        out[start:stop] = (c + c.transpose(0, 2, 1)) / 2
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
#: Bytes of float64 intermediates per block of resamples or model pairs (RSA's ranks, CKA's
#: elementwise products): bounds the memory of the set-level bootstrap whatever N and B.
DEFAULT_BLOCK_BYTES = 256 * 2**20


def _check_counts(counts, n_images: int) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != n_images or c.shape[0] == 0 or (c < 0).any() or (c.sum(axis=1) < 4).any():
        raise ValueError(f"counts must be (B, N = {n_images}) non-negative draws of each image, at least 4 per "
                         f"resample; got shape {c.shape}")
    return c.astype(np.float64)


def resampled_cka(mats: np.ndarray, counts: np.ndarray, *, debiased: bool = False, device=None,
                  max_block_bytes: int = DEFAULT_BLOCK_BYTES, progress: bool = False,
                  label: str = "CKA") -> np.ndarray:
    """CKA similarity (B, K, K) of K models on B resamples of the images, from their (N, N)
    matrices on all images (linear Gram matrices for CKA, DDS's kernel matrices).

    Resample b draws image i ``counts[b, i]`` times; the result equals
    :func:`modelgif.compare.similarity.cka_from_grams` of ``mats[:, r[:, None], r[None, :]]`` for its
    indices r (a copy of an image is a repeated row and column) to rounding, without forming
    those (n, n) matrices. With w = counts[b], n = Σ w, A and C two models' matrices and
    T = Σ_ij w_i w_j A_ij C_ij, the centred inner product ⟨K̃_A, K̃_C⟩ of the resample is

    - biased (``H K H``): ``T − (2/n) Σ_j w_j (Aw)_j (Cw)_j + (wᵀAw)(wᵀCw)/n²``;
    - ``debiased`` (U-centring, zero diagonal; Song et al. 2012):
      ``T − Σ_i w_i A_ii C_ii + s_A s_C / ((n − 1)(n − 2)) − (2/(n − 2)) Σ_j w_j u^A_j u^C_j``
      with ``u^A = Aw − diag A`` and ``s_A = wᵀAw − Σ_i w_i A_ii`` (the pairs of positions
      a ≠ b include an image and its copy, entry A_ii).

    T for all resamples is one matrix product per model pair (B × N × N); the rest is
    per-model matrix-vector work. The matrices are double-centred on all images first: both
    estimators are unchanged by adding a_i + a_j to entry (i, j), and the centring removes the
    large common component that would otherwise cancel. A model whose centred matrix on the
    resample is zero (relative to its size) has similarity 0 with every model, itself included,
    as in ``cka_from_grams``.

    Args:
        mats: (K, N, N) symmetric matrices.
        counts: (B, N) draws of each image per resample (:func:`resample_counts`), n ≥ 4.
        debiased: U-centring (debiased CKA) instead of ordinary centring.
        device: torch device of the computation (float64); None: CUDA when torch sees a GPU.
        max_block_bytes: bound on the float64 intermediates (model pairs and resamples are
            taken in blocks); the result does not depend on it.

    Returns:
        float64 (B, K, K), symmetric, on the CPU.
    """
    import torch

    m = np.asarray(mats, dtype=np.float64)
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"mats must have shape (K, N, N); got {m.shape}")
    k, n_img = m.shape[0], m.shape[1]
    c = _check_counts(counts, n_img)
    dev = resolve_device(device)
    g = torch.from_numpy(center_gram(m)).to(dev)
    diag = torch.diagonal(g, dim1=1, dim2=2)  # (K, N)
    out = np.empty((c.shape[0], k, k))
    rows = max(1, int(max_block_bytes // (8 * n_img * (2 * k + 1))))  # resamples per block: W, Gw, u
    pairs = max(1, int(max_block_bytes // (8 * n_img * n_img)))  # elementwise products per block
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=c.shape[0], unit="resample", desc=f"{label} bootstrap")  # label: the method's name
    for b0 in range(0, c.shape[0], rows):
        w = torch.from_numpy(c[b0:b0 + rows]).to(dev)  # (b, N)
        n = w.sum(dim=1)  # (b,)
        gw = torch.matmul(w, g)  # (K, b, N): (Aw)_j, A symmetric
        quad = torch.empty((w.shape[0], k, k), dtype=torch.float64, device=dev)  # T
        for a in range(k):
            for c0 in range(a, k, pairs):
                e = g[a] * g[c0:c0 + pairs]  # (p, N, N)
                quad[:, a, c0:c0 + e.shape[0]] = (torch.matmul(w, e) * w).sum(dim=-1).T
        quad = torch.triu(quad) + torch.triu(quad, diagonal=1).transpose(1, 2)
        size = torch.diagonal(quad, dim1=1, dim2=2).clone()  # ‖resampled matrix‖², the scale of "zero"
        if debiased:
            quad -= torch.einsum("bi,ki,li->bkl", w, diag, diag)
            u = gw - diag[:, None, :]
            s = ((gw * w).sum(dim=-1) - diag @ w.T).T  # (b, K)
            cross = torch.bmm((u * w).permute(1, 0, 2), u.permute(1, 2, 0))  # (b, K, K)
            inner = (quad + s[:, :, None] * s[:, None, :] / ((n - 1) * (n - 2))[:, None, None]
                     - (2 / (n - 2))[:, None, None] * cross)
        else:
            s = (gw * w).sum(dim=-1).T  # (b, K): wᵀAw
            cross = torch.bmm((gw * w).permute(1, 0, 2), gw.permute(1, 2, 0))
            inner = quad - (2 / n)[:, None, None] * cross + s[:, :, None] * s[:, None, :] / (n**2)[:, None, None]
        sq = torch.diagonal(inner, dim1=1, dim2=2)
        alive = sq > 1e-12 * size
        norms = torch.sqrt(torch.where(alive, sq, 1.0))
        sim = torch.where(alive[:, :, None] & alive[:, None, :], inner / (norms[:, :, None] * norms[:, None, :]),
                          0.0)
        out[b0:b0 + rows] = ((sim + sim.transpose(1, 2)) / 2).cpu().numpy()
        if bar is not None:
            bar.update(w.shape[0])
    if bar is not None:
        bar.close()
    return out


def resampled_rsa(rdms: np.ndarray, counts: np.ndarray, *, device=None,
                  max_block_bytes: int = DEFAULT_BLOCK_BYTES, progress: bool = False) -> np.ndarray:
    """RSA similarity (B, K, K) of K models on B resamples of the images, from their RDMs (K, N, N)
    on all images: Spearman's ρ between the resampled RDMs' entries, a pair {i, j} of distinct
    images counted ``counts[b, i] · counts[b, j]`` times and the pairs of an image with a copy
    of itself left out (their entry is 0 by construction, not a measurement).

    Exact (ties averaged): each model's pair values are sorted once on all images; on a resample
    a pair's midrank is the total weight of the pairs before it in that order plus half its
    own tie group's (a cumulative sum, no sort per resample), and ρ is the weighted Pearson
    correlation of the midranks. Runs in torch float64 on ``device`` (None: CUDA when torch
    sees a GPU), in blocks of resamples bounded by ``max_block_bytes``.

    Returns:
        float64 (B, K, K), symmetric, on the CPU; a model whose ranks are constant on a
        resample has ρ = 0 with every model there.
    """
    import torch

    r = np.asarray(rdms, dtype=np.float64)
    if r.ndim != 3 or r.shape[1] != r.shape[2] or r.shape[1] < 3:
        raise ValueError(f"rdms must have shape (K, N, N) with N >= 3; got {r.shape}")
    k, n_img = r.shape[0], r.shape[1]
    c = _check_counts(counts, n_img)
    dev = resolve_device(device)
    iu = np.triu_indices(n_img, k=1)
    n_pairs = len(iu[0])
    sorted_rank = []  # per model: (order, inverse of order, tie groups or None)
    for v in r[:, iu[0], iu[1]]:
        order = np.argsort(v, kind="stable")
        sv = v[order]
        new = np.r_[True, sv[1:] != sv[:-1]]
        ties = None
        if not new.all():
            start = np.flatnonzero(new)
            ties = (torch.from_numpy(start).to(dev), torch.from_numpy(np.append(start[1:], n_pairs) - 1).to(dev),
                    torch.from_numpy(np.cumsum(new) - 1).to(dev))
        inv = np.empty_like(order)
        inv[order] = np.arange(n_pairs)
        sorted_rank.append((torch.from_numpy(iu[0][order]).to(dev), torch.from_numpy(iu[1][order]).to(dev),
                            torch.from_numpy(inv).to(dev), ties))
    rows = max(1, int(max_block_bytes // (8 * n_pairs * (k + 6))))  # x and one model's temporaries
    out = np.empty((c.shape[0], k, k))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=c.shape[0], unit="resample", desc="RSA bootstrap")
    for b0 in range(0, c.shape[0], rows):
        cnt = torch.from_numpy(c[b0:b0 + rows]).to(dev)
        # a pair {i, j} appears c_i c_j times, i ≠ j: Σ over pairs is ((Σ c)² − Σ c²) / 2
        wsum = ((cnt.sum(dim=1, keepdim=True) ** 2 - (cnt**2).sum(dim=1, keepdim=True)) / 2)
        x = torch.empty((cnt.shape[0], k, n_pairs), dtype=torch.float64, device=dev)  # √w · (rank − mean)
        for m, (first_image, second_image, inv, ties) in enumerate(sorted_rank):
            ws = cnt[:, first_image] * cnt[:, second_image]  # w in the model's sorted order (gathers from N values)
            cum = torch.cumsum(ws, dim=1)
            if ties is None:
                mid = cum - (ws - 1) / 2
            else:
                first, last, group = ties
                before = cum[:, first] - ws[:, first]  # weight of everything before each tie group
                mid = (before + (cum[:, last] - before + 1) / 2)[:, group]
            mid -= (mid * ws).sum(dim=1, keepdim=True) / wsum
            x[:, m] = (mid * ws.sqrt())[:, inv]
        cov = torch.bmm(x, x.transpose(1, 2))
        sd = torch.sqrt(torch.diagonal(cov, dim1=1, dim2=2))
        denom = sd[:, :, None] * sd[:, None, :]
        rho = torch.where(denom > 0, cov / torch.where(denom > 0, denom, 1.0), 0.0)
        out[b0:b0 + rows] = ((rho + rho.transpose(1, 2)) / 2).cpu().numpy()
        if bar is not None:
            bar.update(cnt.shape[0])
    if bar is not None:
        bar.close()
    return out


def set_distances(method: str, features: Sequence, indices: np.ndarray, *, device=None, progress: bool = False,
                  **options) -> tuple[np.ndarray, np.ndarray]:
    """A set-level method's distance D (K, K) on all images and D (B, K, K) recomputed on every
    resample's rows, from per-model (N, N) matrices built once.

    - ``cka``: :func:`modelgif.compare.similarity.cka_distance` (``debiased`` option) on
      ``features[idx]``: :func:`resampled_cka` of the linear Gram matrices (exact: the Gram
      matrix of the resampled rows is the resampled Gram matrix).
    - ``rsa``: :func:`modelgif.compare.similarity.rsa_distance` on ``features[idx]`` with the pairs of
      an image with a copy of itself left out: :func:`resampled_rsa` of the RDMs (exact ranks).
    - ``dds``: :func:`modelgif.compare.similarity.dds_distance` (its options) on ``features[idx]``.
      Option ``refit`` (default True) recomputes each resample exactly, the feature
      normalisation refitted on the resample (in numpy on the CPU; a pairwise kernel is
      evaluated once per distinct image, seconds per resample at Taskonomy's N = 1000,
      D = 512). ``refit=False`` (the pipeline's default, ``bootstrap_refit: false``) instead
      normalises once on all N images (and fixes the rbf bandwidth) and gives the kernel
      matrices to :func:`resampled_cka`, as for CKA: an approximation.
      Caveat (measured on the trained mini zoo, 200 resamples, ``wins_vs_pixels``): copies of an
      image have Laplacian kernel 1 in *every* model, a shared structure that pulls DDS's
      resampled mean ρ away from the full-data value (full −0.602; resamples −0.626,
      interval [−0.648, −0.600]; on each resample's distinct images only: −0.595). CKA shows
      no such shift (−0.646; −0.646; −0.648). Read DDS's percentile interval with
      ``mean_rho_bootstrap_bias`` from :func:`summarize`.

    Args:
        method: one of :data:`modelgif.compare.similarity.SET_METHODS`.
        features: K arrays (N, D_k).
        indices: (B, n) resampled image indices (:func:`resample_indices`).
        device: torch device of the resampled CKA and RSA (None: CUDA when torch sees a GPU,
            else the CPU); the matrices on all images are built in numpy.
    """
    if method not in SET_METHODS:
        raise ValueError(f"unknown set-level method {method!r}; valid: {', '.join(SET_METHODS)}")
    feats = check_features(features, min_images=3 if method == "rsa" else 2)
    n = feats[0].shape[0]
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"indices must be (B, n) image indices below N = {n}")
    counts = resample_counts(idx, n)
    if method == "rsa":
        if options:
            raise ValueError(f"rsa takes no options, got {sorted(options)}")
        rdms = np.stack([pearson_rdm(x) for x in feats])
        return (1.0 - rsa_from_rdms(rdms),
                1.0 - resampled_rsa(rdms, counts, device=device, progress=progress))
    if method == "cka":
        unknown = set(options) - {"debiased"}
        if unknown:
            raise ValueError(f"cka takes only the option 'debiased', got {sorted(unknown)}")
        grams = linear_grams(feats)
        debiased = options.get("debiased", False)
        return (1.0 - cka_from_grams(grams, debiased=debiased),
                1.0 - resampled_cka(grams, counts, debiased=debiased, device=device, progress=progress,
                                    label=f"{'debiased ' if debiased else ''}CKA"))
    options = dict(options)
    refit = options.pop("refit", True)
    debiased = options.pop("debiased", True)
    mats = dds_matrices(feats, **options)
    distance = 1.0 - cka_from_grams(mats, debiased=debiased)
    if not refit:
        return distance, 1.0 - resampled_cka(mats, counts, debiased=debiased, device=device, progress=progress,
                                             label="DDS")
    rows = idx
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(idx, unit="resample", desc="DDS bootstrap (refit)")
    return distance, np.stack([_dds_resample(feats, r, debiased=debiased, **options) for r in rows])


def bootstrap_set_distances(method: str, features: Sequence, indices: np.ndarray, *, device=None,
                            progress: bool = False, **options) -> np.ndarray:
    """D (B, K, K) of a set-level method recomputed on every resample's rows: the resampled
    half of :func:`set_distances` (which see, for the methods, options and ``device``)."""
    return set_distances(method, features, indices, device=device, progress=progress, **options)[1]


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
