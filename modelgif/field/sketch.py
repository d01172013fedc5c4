"""Sketched fields: every (image, step) row projected to far fewer values before storage.

A field row ``F_i[k]`` has P = H·W values (16384 at 128 px). A *sketch* multiplies every
row by one shared random matrix ``R`` (P × d, entries i.i.d. N(0, 1/d)):

    y = F_i[k] R        (d values, e.g. 1024: 16× less to store, read and compare)

For any two rows u, v, ``E[⟨uR, vR⟩] = ⟨u, v⟩`` and ``E[‖uR‖²] = ‖u‖²`` (Johnson–Lindenstrauss):
inner products and norms are unbiased, with a standard deviation of about
``‖u‖‖v‖ · sqrt((1 + cos²(u, v)) / d)``. Cosine and Euclidean distances computed on sketched
rows therefore estimate the exact ones; their error per row shrinks as ``1/sqrt(d)``, and
distances averaged over N·S rows much further. ``benchmarks/README.md`` states the error
measured on random-init Taskonomy encoders.

Every model compared must be sketched with the *same* ``R``: it is drawn from numpy's
PCG64 generator seeded with ``seed`` (float64, then cast), so it depends only on (P, d, seed),
not on the device, the torch version or the model.

A dense Gaussian ``R`` is chosen over a subsampled randomised Hadamard transform: on a
GPU one (m·S × P) @ (P × d) matrix product per chunk costs a fraction of a percent of the
chunk's forward and backward passes, it needs no power-of-two P, and its estimate is exactly
unbiased. ``R`` takes P·d·4 bytes (64 MiB for 16384 × 1024 in float32).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def check_sketch_dim(sketch_dim, n_pixels: int | None = None) -> int:
    """``sketch_dim`` as an int: 0 (exact field) or 1 ≤ d < n_pixels; else ``ValueError``."""
    if isinstance(sketch_dim, bool) or not isinstance(sketch_dim, (int, np.integer)) or sketch_dim < 0:
        raise ValueError(f"sketch_dim must be 0 (exact field) or a positive integer, got {sketch_dim!r}")
    d = int(sketch_dim)
    if d and n_pixels is not None and d >= n_pixels:
        raise ValueError(f"sketch_dim {d} must be smaller than the H·W = {n_pixels} values it sketches "
                         "(use 0 for an exact field)")
    return d


def projection_matrix(n_pixels: int, sketch_dim: int, seed: int = 0) -> np.ndarray:
    """R, float64 (n_pixels, sketch_dim), entries N(0, 1/sketch_dim) from PCG64(seed)."""
    d = check_sketch_dim(sketch_dim, n_pixels)
    if d == 0:
        raise ValueError("sketch_dim 0 means no sketch; there is no projection matrix")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    r = rng.standard_normal((int(n_pixels), d))
    r *= 1.0 / math.sqrt(d)
    return r


class GaussianSketch:
    """The seeded projection ``x ↦ x R`` of rows of P values to d values (see module doc).

    Args:
        n_pixels: P, values per input row (H·W of the field).
        sketch_dim: d, values per sketched row; 1 ≤ d < P.
        seed: seed of ``R``; every field to be compared must use the same one.

    Calling it on a tensor (…, P) returns a tensor (…, d) of the same dtype and device; on a
    numpy array, a float64 array. ``R`` is built once per dtype and device and kept.
    """

    def __init__(self, n_pixels: int, sketch_dim: int, seed: int = 0):
        self.n_pixels = int(n_pixels)
        self.sketch_dim = check_sketch_dim(sketch_dim, self.n_pixels)
        if self.sketch_dim == 0:
            raise ValueError("GaussianSketch needs sketch_dim ≥ 1 (0 means an exact field)")
        self.seed = int(seed)
        self._cache: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"GaussianSketch(n_pixels={self.n_pixels}, sketch_dim={self.sketch_dim}, seed={self.seed})"

    def matrix(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        """R as a tensor (P, d) of ``dtype`` on ``device`` (cached)."""
        device = torch.device(device)
        key = (dtype, device)
        if key not in self._cache:
            r64 = self._cache.get((torch.float64, torch.device("cpu")))
            if r64 is None:
                r64 = torch.from_numpy(projection_matrix(self.n_pixels, self.sketch_dim, self.seed))
            self._cache[key] = r64.to(device=device, dtype=dtype)
        return self._cache[key]

    def __call__(self, rows):
        if isinstance(rows, torch.Tensor):
            if rows.shape[-1] != self.n_pixels:
                raise ValueError(f"rows have {rows.shape[-1]} values, this sketch takes {self.n_pixels}")
            r = self.matrix(rows.dtype, rows.device)
            return (rows.reshape(-1, self.n_pixels) @ r).reshape(*rows.shape[:-1], self.sketch_dim)
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[-1] != self.n_pixels:
            raise ValueError(f"rows have {rows.shape[-1]} values, this sketch takes {self.n_pixels}")
        return rows @ self.matrix(torch.float64, "cpu").numpy()
