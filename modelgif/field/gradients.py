"""ModelGiF gradient fields (Song et al., ICCV 2023; docs/METHOD.md, step 5).

For a model f, a reference image x with baseline x' and a target t (:mod:`modelgif.field.targets`),
the field at path step k is

    F[k] = mean over colour channels of ( (x − x') ⊙ Σ_{j ≤ k} w_j ∇_z t(z_j) ),
    z_j = x' + α_j (x − x'),

with nodes α and weights w of a quadrature rule (:mod:`modelgif.field.quadrature`), flattened
to H·W values. Its last step is the Integrated Gradients attribution of t (channel mean).
With ``cumulative=False`` the sum is replaced by its single term j = k.

Speed (``benchmarks/README.md`` has the numbers): path points of several images share one
forward/backward pass (``batch_size``); everything is computed on the images' device. How
the passes run — their precision, their size (fitted to a GPU's free memory, halved on an
out-of-memory error), host memory, writing a chunk while the next is computed — is
:mod:`modelgif.field.execution`. ``precision`` trades float32 arithmetic for speed only when asked:

- ``"float32"`` (default): IEEE float32 (or float64) throughout. On CUDA, TF32 is switched
  *off* for the call (PyTorch's default lets cuDNN convolutions use it), so a field does not
  depend on the GPU's defaults.
- ``"tf32"``: on CUDA, TF32 tensor cores for convolutions and matrix products; inputs in
  channels_last memory format. TF32 exists only on CUDA: on the CPU this is float32
  arithmetic in channels_last.
- ``"bf16"``: the model's forward and backward passes under ``torch.autocast`` with
  bfloat16 (CUDA or CPU), inputs in channels_last. Targets are still chosen in float32, and
  the weighting, cumulative sum and channel mean are done in float32.

The global TF32 switches are changed only around each pass and restored right after, even
on an error. On the CPU the default mode computes, bit for bit, what it computed before these
options existed; on CUDA it now computes true float32 where cuDNN's TF32 default applied before.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .execution import (DEFAULT_BATCH_SIZE, DEFAULT_CUDA_BATCH_SIZE, PRECISIONS, PassSize,  # noqa: F401
                        check_precision, default_batch_size, keep_freed_cpu_memory, precision_mode,
                        write_chunks)
from .quadrature import check_method, nodes_and_weights
from .sketch import GaussianSketch, check_sketch_dim
from .targets import check_target, target_selector

#: Images per forward pass when choosing targets; fixed, so targets never depend on batch_size.
_SELECTOR_BATCH = 32

def _check_inputs(model: torch.nn.Module, images: torch.Tensor, baselines: torch.Tensor) -> None:
    for name, t in (("images", images), ("baselines", baselines)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor (N, C, H, W); got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if images.shape != baselines.shape:
        raise ValueError(
            f"images and baselines must have the same shape; got {tuple(images.shape)} and {tuple(baselines.shape)}"
        )
    if images.dtype != baselines.dtype or images.device != baselines.device:
        raise ValueError(
            f"images and baselines must share dtype and device; got {images.dtype} on {images.device} "
            f"and {baselines.dtype} on {baselines.device}"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty (N = 0)")
    for name, t in (("images", images), ("baselines", baselines)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contain NaN or infinite values")
    if model.training:
        raise ValueError(
            "model is in training mode; call model.eval() first (batch statistics would make the field "
            "depend on the batch)"
        )


def _selectors(model: torch.nn.Module, images: torch.Tensor, target: int) -> torch.Tensor:
    """Target selectors M (N, C, h, w) at the path end points, in fixed groups of images."""
    with torch.no_grad(), precision_mode("float32", images.device):
        parts = [target_selector(model(images[i : i + _SELECTOR_BATCH]), target)
                 for i in range(0, images.shape[0], _SELECTOR_BATCH)]
    return torch.cat(parts)


def iter_gradient_field(
    model: torch.nn.Module,
    images: torch.Tensor,
    baselines: torch.Tensor,
    *,
    target: int = 1,
    n_steps: int = 50,
    method: str = "gausslegendre",
    cumulative: bool = True,
    batch_size: int | None = None,
    precision: str = "float32",
    sketch_dim: int = 0,
    sketch_seed: int = 0,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Compute a gradient field a few images at a time.

    Same arguments as :func:`gradient_field`. Yields ``(start, chunk)``: ``chunk`` has shape
    (m, n_steps, H·W) — (m, n_steps, sketch_dim) when sketched — and holds the field of
    images ``start … start + m − 1``, on the images' device; chunks come in order and cover
    every image once. Each chunk holds m = max(1, batch_size // n_steps) images, so peak
    memory is bounded by the batch, not by N. A pass that runs out of memory is retried with
    half as many path points, and later passes keep the smaller size
    (:class:`modelgif.field.execution.PassSize`, logged once).
    """
    _check_inputs(model, images, baselines)
    target = check_target(target)
    check_method(method)
    precision = check_precision(precision)
    if precision != "float32" and images.dtype != torch.float32:
        raise ValueError(f"precision {precision!r} needs float32 images, got {images.dtype}; "
                         "use precision='float32' for float64")
    alphas, weights = nodes_and_weights(method, n_steps)
    if batch_size is None:
        batch_size = default_batch_size(images.device)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (path points per pass), got {batch_size!r}")

    n, c, h, w = images.shape
    sketch = GaussianSketch(h * w, sketch_dim, sketch_seed) if check_sketch_dim(sketch_dim, h * w) else None
    s = int(n_steps)
    alpha = torch.as_tensor(alphas, dtype=images.dtype, device=images.device)
    weight = torch.as_tensor(weights, dtype=images.dtype, device=images.device)
    selectors = _selectors(model, images, target)
    per_chunk = max(1, batch_size // s)
    pass_size = PassSize(batch_size)  # halved if a pass runs out of memory (execution.PassSize)
    channels_last = precision != "float32"

    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        m = stop - start
        x, xb = images[start:stop], baselines[start:stop]
        delta = x - xb  # (m, c, h, w)
        # Every path point of the chunk, image-major: point p = i * S + k.
        z_all = (xb[:, None] + alpha.view(1, s, 1, 1, 1) * delta[:, None]).reshape(m * s, c, h, w)
        sel_all = selectors[start:stop].repeat_interleave(s, dim=0)
        grads = torch.empty_like(z_all)
        b = 0
        while b < m * s:
            e = b + pass_size.value
            try:
                z = z_all[b:e]
                if channels_last:
                    z = z.contiguous(memory_format=torch.channels_last)
                z = z.detach().requires_grad_(True)
                with torch.enable_grad(), precision_mode(precision, images.device):
                    t = (model(z).float() if precision == "bf16" else model(z)) * sel_all[b:e]
                    (grads[b:e],) = torch.autograd.grad(t.sum(), z)
            except Exception as error:  # noqa: BLE001 - an out-of-memory pass is retried smaller
                z = t = None
                pass_size.shrink(error)  # re-raises anything else
                continue
            b = e
        with precision_mode("float32", images.device):
            grads = grads.view(m, s, c, h, w) * weight.view(1, s, 1, 1, 1)
            if cumulative:
                grads = grads.cumsum(dim=1)
            chunk = (delta[:, None] * grads).mean(dim=2).reshape(m, s, h * w)
            if sketch is not None:
                chunk = sketch(chunk)
        yield start, chunk


def gradient_field(
    model: torch.nn.Module,
    images: torch.Tensor,
    baselines: torch.Tensor,
    *,
    target: int = 1,
    n_steps: int = 50,
    method: str = "gausslegendre",
    cumulative: bool = True,
    batch_size: int | None = None,
    progress: bool = False,
    precision: str = "float32",
    sketch_dim: int = 0,
    sketch_seed: int = 0,
) -> torch.Tensor:
    """The ModelGiF gradient field of ``model`` over a reference set.

    Args:
        model: maps (B, 3, H, W) images to (B, C, h, w) outputs; in eval mode. Its parameters'
            gradients are never computed.
        images: reference images x, (N, 3, H, W), values in [-1, 1], float32 or float64.
        baselines: x', same shape, dtype and device (:func:`modelgif.field.baselines.make_baselines`).
        target: 1, 5 or 6 (:mod:`modelgif.field.targets`), chosen at x and fixed along the path.
        n_steps: S, quadrature nodes on the path.
        method: quadrature rule (:data:`modelgif.field.quadrature.RULES`).
        cumulative: field step k sums the weighted gradients of steps 1..k (True) or is step k's
            alone (False).
        batch_size: path points per forward/backward pass (default :func:`default_batch_size`:
            128 on the CPU, 1024 on CUDA); path points of several images share a pass. Does not
            change the result beyond floating-point rounding.
        progress: show a progress bar.
        precision: arithmetic of the passes, one of :data:`PRECISIONS` (module doc):
            ``"float32"`` (default, exact float32/float64), or the opt-in ``"tf32"`` (CUDA) and
            ``"bf16"`` (CUDA or CPU), which need float32 images and change the field slightly.
        sketch_dim: 0 (default) for the exact field; d > 0 stores every (image, step) row
            projected by the seeded Gaussian sketch of :mod:`modelgif.field.sketch` to d < H·W values.
        sketch_seed: seed of the sketch's projection; fields to be compared must share it.

    Returns:
        F, shape (N, S, H·W) — (N, S, sketch_dim) when sketched — same dtype and device as
        ``images``; units of t (output units), per pixel. ``F[:, -1].sum(-1) * 3``
        approximates ``t(x) − t(x')`` (completeness; exact fields only).
    """
    _check_inputs(model, images, baselines)
    n = images.shape[0]
    out = None
    chunks = iter_gradient_field(model, images, baselines, target=target, n_steps=n_steps, method=method,
                                 cumulative=cumulative, batch_size=batch_size, precision=precision,
                                 sketch_dim=sketch_dim, sketch_seed=sketch_seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="img", desc="gradient field")
    for start, chunk in chunks:
        if out is None:
            out = torch.empty((n, *chunk.shape[1:]), dtype=images.dtype, device=images.device)
        out[start : start + chunk.shape[0]] = chunk
        if bar is not None:
            bar.update(chunk.shape[0])
    if bar is not None:
        bar.close()
    return out


def zero_field_chunks(n_images: int, n_steps: int, n_values: int, *, batch_size: int = 128,
                      dtype: torch.dtype = torch.float32) -> Iterator[tuple[int, torch.Tensor]]:
    """The field of a void target (identically zero), in chunks as :func:`iter_gradient_field`
    yields them: ``(start, zeros (m, n_steps, n_values))`` with m = max(1, batch_size // n_steps),
    so memory stays bounded by one chunk whatever ``n_images``."""
    if n_steps < 1 or n_values < 1:
        raise ValueError(f"a field needs n_steps >= 1 and values >= 1, got {n_steps} and {n_values}")
    per_chunk = max(1, int(batch_size) // int(n_steps))
    for start in range(0, int(n_images), per_chunk):
        yield start, torch.zeros(min(per_chunk, n_images - start), n_steps, n_values, dtype=dtype)
