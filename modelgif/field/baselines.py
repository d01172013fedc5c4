"""Baselines x' for the path of each reference image (docs/METHOD.md, step 2)."""

from __future__ import annotations

import numpy as np
import torch

BASELINES = ("shuffled", "zero")


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation π of ``range(n)`` with no fixed point, drawn from ``numpy.random.default_rng(seed)``.

    Drawn by rejection: uniform permutations are drawn until one has no fixed point, so
    the result is uniform over derangements. Requires ``n >= 2``.
    """
    if n < 2:
        raise ValueError(f"a shuffled baseline needs at least 2 reference images, got {n}")
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == idx):
            return perm


def make_baselines(images: torch.Tensor, kind: str = "shuffled", seed: int = 0) -> torch.Tensor:
    """Baselines for a reference set.

    Args:
        images: (N, 3, H, W), the reference set in its sorted order, values in [-1, 1].
        kind: ``"shuffled"`` — image i's baseline is image π(i), π = :func:`derangement`
            (N, seed); ``"zero"`` — the all-zero image.
        seed: seed of the derangement.

    Returns:
        (N, 3, H, W) tensor, same dtype and device as ``images``.
    """
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; valid baselines: {', '.join(BASELINES)}")
    if kind == "zero":
        return torch.zeros_like(images)
    perm = torch.from_numpy(derangement(images.shape[0], seed)).to(images.device)
    return images[perm]
