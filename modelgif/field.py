"""ModelGiF gradient fields (Song et al., ICCV 2023; DESIGN §1.5).

For a model f, a reference image x with baseline x' and a target t (:mod:`modelgif.targets`),
the field at path step k is

    F[k] = mean over colour channels of ( (x − x') ⊙ Σ_{j ≤ k} w_j ∇_z t(z_j) ),
    z_j = x' + α_j (x − x'),

with nodes α and weights w of a quadrature rule (:mod:`modelgif.quadrature`), flattened
to H·W values. Its last step is the Integrated Gradients attribution of t (channel mean).
With ``cumulative=False`` the sum is replaced by its single term j = k.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .quadrature import check_method, nodes_and_weights
from .targets import check_target, target_selector

#: Path points per forward/backward pass when ``batch_size`` is not given.
DEFAULT_BATCH_SIZE = 128
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
    with torch.no_grad():
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
) -> Iterator[tuple[int, torch.Tensor]]:
    """Compute a gradient field a few images at a time.

    Same arguments as :func:`gradient_field`. Yields ``(start, chunk)``: ``chunk`` has shape
    (m, n_steps, H·W) and holds the field of images ``start … start + m − 1``; chunks come
    in order and cover every image once. Each chunk holds m = max(1, batch_size // n_steps)
    images, so peak memory is bounded by the batch, not by N.
    """
    _check_inputs(model, images, baselines)
    target = check_target(target)
    check_method(method)
    alphas, weights = nodes_and_weights(method, n_steps)
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (path points per pass), got {batch_size!r}")

    n, c, h, w = images.shape
    s = int(n_steps)
    alpha = torch.as_tensor(alphas, dtype=images.dtype, device=images.device)
    weight = torch.as_tensor(weights, dtype=images.dtype, device=images.device)
    selectors = _selectors(model, images, target)
    per_chunk = max(1, batch_size // s)

    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        m = stop - start
        x, xb = images[start:stop], baselines[start:stop]
        delta = x - xb  # (m, c, h, w)
        # Every path point of the chunk, image-major: point p = i * S + k.
        z_all = (xb[:, None] + alpha.view(1, s, 1, 1, 1) * delta[:, None]).reshape(m * s, c, h, w)
        sel_all = selectors[start:stop].repeat_interleave(s, dim=0)
        grads = torch.empty_like(z_all)
        for b in range(0, m * s, batch_size):
            z = z_all[b : b + batch_size].detach().requires_grad_(True)
            with torch.enable_grad():
                t = (model(z) * sel_all[b : b + batch_size]).sum()
                (grads[b : b + batch_size],) = torch.autograd.grad(t, z)
        grads = grads.view(m, s, c, h, w) * weight.view(1, s, 1, 1, 1)
        if cumulative:
            grads = grads.cumsum(dim=1)
        chunk = (delta[:, None] * grads).mean(dim=2).reshape(m, s, h * w)
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
) -> torch.Tensor:
    """The ModelGiF gradient field of ``model`` over a reference set.

    Args:
        model: maps (B, 3, H, W) images to (B, C, h, w) outputs; in eval mode. Its parameters'
            gradients are never computed.
        images: reference images x, (N, 3, H, W), values in [-1, 1], float32 or float64.
        baselines: x', same shape, dtype and device (:func:`modelgif.baselines.make_baselines`).
        target: 1, 5 or 6 (:mod:`modelgif.targets`), chosen at x and fixed along the path.
        n_steps: S, quadrature nodes on the path.
        method: quadrature rule (:data:`modelgif.quadrature.METHODS`).
        cumulative: field step k sums the weighted gradients of steps 1..k (True) or is step k's
            alone (False).
        batch_size: path points per forward/backward pass (default :data:`DEFAULT_BATCH_SIZE`);
            path points of several images share a pass. Does not change the result.
        progress: show a progress bar.

    Returns:
        F, shape (N, S, H·W), same dtype and device as ``images``; units of t (output units),
        per pixel. ``F[:, -1].sum(-1) * 3`` approximates ``t(x) − t(x')`` (completeness).
    """
    n, _, h, w = images.shape if isinstance(images, torch.Tensor) and images.dim() == 4 else (0, 0, 0, 0)
    out = None
    chunks = iter_gradient_field(model, images, baselines, target=target, n_steps=n_steps, method=method,
                                 cumulative=cumulative, batch_size=batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="img", desc="gradient field")
    for start, chunk in chunks:
        if out is None:
            out = torch.empty((n, chunk.shape[1], h * w), dtype=images.dtype, device=images.device)
        out[start : start + chunk.shape[0]] = chunk
        if bar is not None:
            bar.update(chunk.shape[0])
    if bar is not None:
        bar.close()
    return out
