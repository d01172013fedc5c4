"""CutMix (Yun et al., ICCV 2019) over consecutive batches of a sorted image set.

The authors' reference set ``reference_data_cutmix_1000`` was made by their ``cut_mix.py``
from Taskonomy images at their source resolution (512×512), before the reference loader
resized them; :func:`modelgif.reference.build_reference_set` does the same, one batch at a
time, so the box is drawn in source pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CutMixBatch:
    """One CutMix batch: images ``start .. start + len(perm) - 1``.

    Every image i of the batch gets, inside ``box = (y0, y1, x0, x1)`` (pixel rows
    ``y0:y1``, columns ``x0:x1`` of the images the batch was mixed at), the pixels of the
    unmodified batch image ``perm[i]``. ``lam`` is the Beta(1, 1) draw that set the box size.
    """

    start: int
    lam: float
    box: tuple[int, int, int, int]
    perm: tuple[int, ...]


def cutmix_batch(images: np.ndarray, rng: np.random.Generator, start: int = 0) -> tuple[np.ndarray, CutMixBatch]:
    """Mix one batch, drawing from ``rng`` in this order: λ ~ Beta(1, 1), a permutation of
    the batch, the box centre (x, then y) uniform over the pixels. The box has sides
    ``int(W·sqrt(1-λ))`` × ``int(H·sqrt(1-λ))`` around the centre, clipped to the image.

    Args:
        images: (B, C, H, W), any dtype; not modified.
        rng: the generator the draws come from (advanced by this call).
        start: index of the batch's first image in the whole set (for the record).

    Returns:
        A new (B, C, H, W) array and its :class:`CutMixBatch`.
    """
    if images.ndim != 4:
        raise ValueError(f"cutmix expects (N, 3, H, W) images, got shape {images.shape}")
    _, _, H, W = images.shape
    lam = float(rng.beta(1.0, 1.0))
    perm = rng.permutation(len(images))
    cx, cy = int(rng.integers(W)), int(rng.integers(H))
    ratio = math.sqrt(1.0 - lam)
    cut_w, cut_h = int(W * ratio), int(H * ratio)
    x0, x1 = int(np.clip(cx - cut_w // 2, 0, W)), int(np.clip(cx + cut_w // 2, 0, W))
    y0, y1 = int(np.clip(cy - cut_h // 2, 0, H)), int(np.clip(cy + cut_h // 2, 0, H))
    out = images.copy()
    out[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
    return out, CutMixBatch(int(start), lam, (y0, y1, x0, x1), tuple(int(i) for i in perm))


def cutmix(images: np.ndarray, batch: int = 8, seed: int = 3) -> tuple[np.ndarray, list[CutMixBatch]]:
    """:func:`cutmix_batch` over each batch of ``batch`` consecutive images (the last may be
    smaller), all drawn from one ``numpy.random.default_rng(seed)``.

    Args:
        images: uint8 (N, 3, H, W).

    Returns:
        A new uint8 (N, 3, H, W) array and one :class:`CutMixBatch` per batch.
    """
    if images.ndim != 4:
        raise ValueError(f"cutmix expects (N, 3, H, W) images, got shape {images.shape}")
    if batch < 1:
        raise ValueError(f"the CutMix batch must hold at least 1 image, got {batch}")
    rng = np.random.default_rng(seed)
    out = images.copy()
    records = []
    for start in range(0, len(images), batch):
        out[start : start + batch], record = cutmix_batch(images[start : start + batch], rng, start)
        records.append(record)
    return out, records
