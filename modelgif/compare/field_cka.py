"""``field_cka``: linear CKA between two models' gradient fields, the reference images as the
samples (the pre-registered variant of ModelGiF, docs/preregistration.md).

Model k's field (N, S, H·W) is flattened per image to F_k (N, S·H·W); its Gram matrix
G_k = F_k F_kᵀ (N, N) says how the model's field relates the images to one another, and

    D[i, j] = 1 − CKA(G_i, G_j)

(:func:`modelgif.compare.similarity.cka_from_grams`; ``debiased``: the unbiased HSIC estimator).
With ``per_step`` the Gram matrices are taken per path step, G_k^s = F_k^s F_k^sᵀ, and D is
1 − the mean over steps of their CKA. Image resamples take the Gram matrices' rows and columns
(a drawn copy is a repeated row and column), exactly as for the set-level ``cka``
(:func:`modelgif.compare.resample.resampled_cka`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..io.storage import decode, field_shape, open_field
from .resample import resample_counts, resampled_cka
from .similarity import cka_from_grams

#: Bound on the float64 block of a field held at once while its Gram matrix is formed (bytes).
BLOCK_BYTES = 128 * 2**20


def field_gram(field, per_step: bool = False, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """The linear Gram matrix of a field over its images: (N, N), or (S, N, N) ``per_step``.

    Args:
        field: a stored field's path or an array (N, S, H·W) in either storage
            (:func:`modelgif.io.storage.decode`).
        block_bytes: the images are read in blocks of about this many float64 bytes, so a
            field larger than memory can be used.
    """
    arr = open_field(field) if isinstance(field, (str, os.PathLike)) else field
    n, s, hw = field_shape(arr)
    step = max(1, block_bytes // max(1, s * hw * 8))
    blocks = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
    out = np.zeros((s, n, n) if per_step else (n, n))
    for a, (alo, ahi) in enumerate(blocks):
        fa = decode(arr[alo:ahi], np.float64)
        for blo, bhi in blocks[a:]:
            fb = fa if blo == alo else decode(arr[blo:bhi], np.float64)
            if per_step:
                g = np.einsum("asp,bsp->sab", fa, fb)
                out[:, alo:ahi, blo:bhi] = g
                out[:, blo:bhi, alo:ahi] = np.swapaxes(g, 1, 2)
            else:
                g = fa.reshape(fa.shape[0], -1) @ fb.reshape(fb.shape[0], -1).T
                out[alo:ahi, blo:bhi] = g
                out[blo:bhi, alo:ahi] = g.T
    return out


def field_cka_distances(inputs: Sequence, indices: np.ndarray, *, options, feature_shapes=None, device=None,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(D (K, K), samples (B, K, K))`` of ``field_cka`` between K fields (paths or arrays),
    on all images and on the image resamples ``indices`` (B, n) (the registry's ``compute``)."""
    debiased, per_step = bool(options.get("debiased", False)), bool(options.get("per_step", False))
    it = inputs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(inputs, desc="field_cka Gram matrices", unit="model")
    grams = np.stack([field_gram(f, per_step) for f in it])  # (K, N, N) or (K, S, N, N)
    n = grams.shape[-1]
    counts = resample_counts(np.asarray(indices), n)
    if not per_step:
        return (1.0 - cka_from_grams(grams, debiased=debiased),
                1.0 - resampled_cka(grams, counts, debiased=debiased, device=device))
    steps = grams.shape[1]
    full = np.mean([cka_from_grams(grams[:, s], debiased=debiased) for s in range(steps)], axis=0)
    boot = np.mean([resampled_cka(np.ascontiguousarray(grams[:, s]), counts, debiased=debiased, device=device)
                    for s in range(steps)], axis=0)
    return 1.0 - full, 1.0 - boot


__all__ = ["field_cka_distances", "field_gram"]
