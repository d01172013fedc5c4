"""Functional distance between models from their gradient fields (docs/METHOD.md, step 6)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .._deprecated import renamed
from ..devices import resolve_device
from ..io.storage import decode, field_shape, open_field

METRICS = ("cosine", "euclidean")
#: Default bound on the float64 chunk of all K fields held at once.
DEFAULT_CHUNK_BYTES = 256 * 2**20


def check_metric(metric: str) -> str:
    """Return ``metric`` if it is one of :data:`METRICS`, else raise ``ValueError`` listing them."""
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    return metric


def _open(field, i: int):
    if isinstance(field, (str, os.PathLike)):
        return open_field(field), str(field)
    if hasattr(field, "detach"):
        field = field.detach().cpu().numpy()
    return np.asarray(field) if not isinstance(field, np.ndarray) else field, f"fields[{i}]"


def _rows(arr: np.ndarray, start: int, stop: int, from_file: bool) -> np.ndarray:
    """Images ``start … stop − 1`` of a field. A field this module opened from a file (a whole,
    C-ordered memory map) is read with an ordinary file read instead of through its map, so
    pages already used do not stay mapped: resident memory stays bounded by one chunk, not N."""
    if from_file and isinstance(arr, np.memmap) and arr.filename and arr.flags.c_contiguous:
        per_image = int(np.prod(arr.shape[1:], dtype=np.int64))
        with open(arr.filename, "rb") as f:
            f.seek(arr.offset + start * per_image * arr.dtype.itemsize)
            block = np.fromfile(f, dtype=arr.dtype, count=(stop - start) * per_image)
        if block.size == (stop - start) * per_image:
            return block.reshape((stop - start,) + arr.shape[1:])
    return arr[start:stop]


def open_fields(fields, chunk_size: int | None, max_chunk_bytes: int, caller: str):
    """Open K fields (arrays or ``.npy`` paths) of one shape for reading chunk by chunk.

    Returns ``(opened, from_file, (N, S, P), chunk_size)``: ``opened[k]`` is ``(array, name)``,
    ``from_file[k]`` says whether field k is read from a file, and ``chunk_size`` (images per
    chunk) is the one given or the most that keeps a float64 chunk of all K fields within
    ``max_chunk_bytes``.

    Raises:
        ValueError: no fields, fields of different shapes, empty fields, chunk_size < 1.
    """
    fields = list(fields)
    from_file = [isinstance(f, (str, os.PathLike)) for f in fields]
    opened = [_open(f, i) for i, f in enumerate(fields)]
    if not opened:
        raise ValueError(f"{caller} needs at least one field")
    shapes = [field_shape(a) for a, _ in opened]
    if len(set(shapes)) != 1:
        listing = "; ".join(f"{name}: {s}" for (_, name), s in zip(opened, shapes))
        raise ValueError(f"fields must all have the same shape (N, S, H*W); got {listing}")
    n, s, p = shapes[0]
    if n * s == 0:
        raise ValueError(f"fields are empty: shape {shapes[0]}")
    if chunk_size is None:
        chunk_size = max(1, int(max_chunk_bytes // (len(opened) * s * p * 8)))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return opened, from_file, (n, s, p), chunk_size


def _chunk_sums_numpy(xc: np.ndarray, metric: str, steps: int) -> np.ndarray:
    """Per image, Σ over its ``steps`` rows of the per-row distances (K, K), of a chunk ``xc``
    (rows = images · steps, K, P), float64: (images, K, K)."""
    gram = np.matmul(xc, xc.transpose(0, 2, 1))  # (rows, K, K): per-row dot products
    sq = np.einsum("rkk->rk", gram)  # squared norms
    if metric == "cosine":
        denom = np.sqrt(sq[:, :, None] * sq[:, None, :])
        per = 1.0 - np.divide(gram, denom, out=np.zeros_like(gram), where=denom > 0)
    else:
        per = np.sqrt(np.clip(sq[:, :, None] + sq[:, None, :] - 2.0 * gram, 0.0, None))
    k = xc.shape[1]
    return per.reshape(-1, steps, k, k).sum(axis=1)


def _chunk_sums_torch(xc: np.ndarray, metric: str, steps: int, device) -> np.ndarray:
    """:func:`_chunk_sums_numpy` in torch (float64) on ``device``: the per-row Gram products
    are batched matrix products there (a GPU's float64 units)."""
    import torch

    x = torch.from_numpy(xc).to(device=device, dtype=torch.float64, non_blocking=True)
    gram = torch.bmm(x, x.transpose(1, 2))
    sq = torch.diagonal(gram, dim1=1, dim2=2)
    if metric == "cosine":
        denom = torch.sqrt(sq[:, :, None] * sq[:, None, :])
        per = 1.0 - torch.where(denom > 0, gram / torch.where(denom > 0, denom, 1.0), 0.0)
    else:
        per = torch.sqrt(torch.clamp(sq[:, :, None] + sq[:, None, :] - 2.0 * gram, min=0.0))
    k = xc.shape[1]
    return per.reshape(-1, steps, k, k).sum(dim=1).cpu().numpy()


def image_distance_sums(
    fields: Sequence,
    metric: str = "cosine",
    *,
    chunk_size: int | None = None,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
    device=None,
    caller: str = "image_distance_sums",
):
    """Per image, the sum over its S steps of the per-row distances between K fields, chunk by
    chunk: yields ``((N, S), start, stop, sums)`` with ``sums`` float64 (stop − start, K, K), for
    images ``start … stop − 1`` (the metric and conventions of :func:`distance_matrix`, whose
    arguments these are; ``caller`` names the function in error messages).

    Raises:
        ValueError: unknown metric, no fields, fields of different shapes, NaN or infinite values.
    """
    check_metric(metric)
    opened, from_file, (n, s, p), chunk_size = open_fields(fields, chunk_size, max_chunk_bytes, caller)
    k_models = len(opened)
    dev = resolve_device(device, numpy=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="img", desc=f"{metric} distances")
    x = np.empty((chunk_size * s, k_models, p), dtype=np.float64)
    try:
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            rows = (stop - start) * s
            xc = x[:rows]
            for a, (arr, name) in enumerate(opened):
                values = decode(_rows(arr, start, stop, from_file[a]), np.float64).reshape(rows, p)
                if not np.isfinite(values).all():
                    raise ValueError(f"{name} has NaN or infinite values in images {start}..{stop - 1}")
                xc[:, a] = values
            sums = _chunk_sums_numpy(xc, metric, s) if dev is None else _chunk_sums_torch(xc, metric, s, dev)
            yield (n, s), start, stop, sums
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()


def distance_matrix(
    fields: Sequence,
    metric: str = "cosine",
    *,
    chunk_size: int | None = None,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
    device=None,
) -> np.ndarray:
    """Pairwise ModelGiF distances D (K, K) between K models' fields over one reference set.

    - ``cosine``: ``D[a, b] = mean over (i, k) of 1 − cos(F^a_i[k], F^b_i[k])``; a zero row
      has cosine 0 with every row (as ``torch.nn.functional.cosine_similarity``).
    - ``euclidean``: ``D[a, b] = mean over (i, k) of ‖F^a_i[k] − F^b_i[k]‖₂``.

    Fields are read once, ``chunk_size`` images at a time, in float64 through a per-row Gram
    matrix. Peak memory is about ``2 · K · chunk_size · S · H·W · 8`` bytes, whatever N (field
    files are read chunk by chunk, not kept mapped): by default ``chunk_size`` is the largest
    count with ``K · chunk_size · S · H·W · 8 ≤ max_chunk_bytes`` (at least 1).

    Args:
        fields: K ≥ 1 fields of equal shape (N, S, H·W): arrays (float, or the structured
            float16 storage of :mod:`modelgif.io.storage`), tensors, or paths to ``.npy`` files
            (opened as memory maps).
        metric: one of :data:`METRICS`.
        chunk_size: images per chunk; does not change the result beyond float64 rounding.
        max_chunk_bytes: memory bound used to choose ``chunk_size`` when it is None.
        progress: show a progress bar over images.
        device: where the per-row Gram products run: None (default) on CUDA when torch sees
            a GPU, else numpy on the CPU; ``"numpy"``; or a torch device (``"cpu"``,
            ``"cuda:1"``). Always float64; the backends agree to about 1e-15.

    Returns:
        D, float64 (K, K), symmetric, zero (to rounding) on the diagonal.

    Raises:
        ValueError: unknown metric, no fields, fields of different shapes, NaN or infinite values.
    """
    check_metric(metric)
    acc, n, s = None, 0, 0
    for (n, s), _, _, sums in image_distance_sums(fields, metric, chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes,
                                                  progress=progress, device=device, caller="distance_matrix"):
        acc = sums.sum(axis=0) if acc is None else acc + sums.sum(axis=0)
    d = acc / (n * s)
    return (d + d.T) / 2.0


#: Deprecated (0.2): the old name of :func:`distance_matrix` (it gives distances, not affinities).
affinity_matrix = renamed(distance_matrix, "modelgif.affinity_matrix", "modelgif.distance_matrix")
