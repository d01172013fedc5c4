"""Attribution maps, encoder features and the IG end point: the inputs of issue 12's other methods.

- :func:`attribution_map` / :func:`attribution_maps`: attribution-map similarity (Song et al., NeurIPS 2019, "Deep model
  transferability from attribution maps"): ``saliency`` is the input gradient ``∇_x t(x)`` of
  the field's target at the image itself (one pass per image), ``gradxinput`` that gradient
  times x. Reduced like a field (mean over colour channels, flattened to H·W) and returned as
  a one-step field (N, 1, H·W), so :func:`modelgif.compare.distance.distance_matrix` and the
  bootstrap take it unchanged.
- :func:`encoder_features`: a model's output f(x) flattened to (N, C·h·w), one forward pass,
  the input of the set-level methods (:mod:`modelgif.compare.similarity`).
- :func:`field_end_point`: the last step of a stored cumulative field, (N, 1, H·W) — plain
  Integrated Gradients, the paper's "end point only" ablation — as a view, without new passes.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .gradients import _selectors
from ..io.storage import field_shape, open_field
from .targets import check_target

#: Attribution maps of :func:`attribution_map`.
ATTRIBUTIONS = ("saliency", "gradxinput")
#: Images per pass when ``batch_size`` is not given.
DEFAULT_ATTRIBUTION_BATCH = 64


def _check_model_images(model: torch.nn.Module, images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a floating-point (N, C, H, W) tensor; got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("images is empty (N = 0)")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    if model.training:
        raise ValueError("model is in training mode; call model.eval() first")


def _check_batch(batch_size) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (images per pass), got {batch_size!r}")
    return batch_size


def attribution_maps(
    model: torch.nn.Module,
    images: torch.Tensor,
    kinds=ATTRIBUTIONS,
    *,
    target: int = 1,
    batch_size: int = DEFAULT_ATTRIBUTION_BATCH,
) -> dict[str, torch.Tensor]:
    """Several attribution maps of a model's target from one backward pass per image.

    With ``M`` the target selector chosen at x (:func:`modelgif.field.targets.target_selector`,
    exactly as for the field) and ``t(z) = Σ M ⊙ f(z)``:

    - ``saliency``: ``A = mean over colour channels of ∇_x t(x)`` (signed, not its absolute
      value: captum's ``Saliency(abs=False)``);
    - ``gradxinput``: ``A = mean over colour channels of x ⊙ ∇_x t(x)`` (captum's
      ``InputXGradient``).

    Args:
        model: maps (B, 3, H, W) images to (B, C, h, w) outputs; in eval mode.
        images: reference images x, (N, 3, H, W) float, values in [-1, 1].
        kinds: names from :data:`ATTRIBUTIONS`; every one comes from the same gradient.
        target: 1, 5 or 6 (:mod:`modelgif.field.targets`).
        batch_size: images per forward/backward pass; does not change the result.

    Returns:
        ``{kind: A}``, each A of shape (N, 1, H·W), dtype and device of ``images``; units of t
        per pixel (``gradxinput``) or of t per unit input (``saliency``).
    """
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in kinds if k not in ATTRIBUTIONS]
    if unknown or not kinds:
        raise ValueError(f"unknown attribution {(unknown or kinds)!r}; valid: {', '.join(ATTRIBUTIONS)}")
    _check_model_images(model, images)
    target = check_target(target)
    batch_size = _check_batch(batch_size)
    n, _, h, w = images.shape
    selectors = _selectors(model, images, target)
    out = {k: torch.empty((n, 1, h * w), dtype=images.dtype, device=images.device) for k in kinds}
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size].detach().requires_grad_(True)
        with torch.enable_grad():
            t = (model(x) * selectors[start : start + batch_size]).sum()
            (grad,) = torch.autograd.grad(t, x)
        for kind, a in out.items():
            g = grad * x.detach() if kind == "gradxinput" else grad
            a[start : start + x.shape[0], 0] = g.mean(dim=1).reshape(x.shape[0], h * w)
    return out


def attribution_map(
    model: torch.nn.Module,
    images: torch.Tensor,
    kind: str = "saliency",
    *,
    target: int = 1,
    batch_size: int = DEFAULT_ATTRIBUTION_BATCH,
) -> torch.Tensor:
    """One attribution map of a model's target at the reference images, as a one-step field
    (N, 1, H·W): ``attribution_maps(model, images, [kind], ...)[kind]``."""
    if kind not in ATTRIBUTIONS:
        raise ValueError(f"unknown attribution {kind!r}; valid: {', '.join(ATTRIBUTIONS)}")
    return attribution_maps(model, images, [kind], target=target, batch_size=batch_size)[kind]


def saliency(model: torch.nn.Module, images: torch.Tensor, *, target: int = 1,
             batch_size: int = DEFAULT_ATTRIBUTION_BATCH) -> torch.Tensor:
    """``attribution_map(model, images, "saliency", ...)``: (N, 1, H·W)."""
    return attribution_map(model, images, "saliency", target=target, batch_size=batch_size)


def gradxinput(model: torch.nn.Module, images: torch.Tensor, *, target: int = 1,
               batch_size: int = DEFAULT_ATTRIBUTION_BATCH) -> torch.Tensor:
    """``attribution_map(model, images, "gradxinput", ...)``: (N, 1, H·W)."""
    return attribution_map(model, images, "gradxinput", target=target, batch_size=batch_size)


def encoder_features(model: torch.nn.Module, images: torch.Tensor, batch_size: int = DEFAULT_ATTRIBUTION_BATCH) -> np.ndarray:
    """A model's outputs f(x) over the reference images, flattened: (N, C·h·w) float32.

    One forward pass per batch, no gradients; each row is f(x_i) flattened channel-first
    (C, h, w), so ``feature_shapes=(C, h, w)`` of :func:`modelgif.compare.similarity.dds_distance`
    reads it back.
    """
    _check_model_images(model, images)
    batch_size = _check_batch(batch_size)
    parts = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            y = model(images[start : start + batch_size])
            parts.append(y.reshape(y.shape[0], -1).float().cpu().numpy())
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def field_end_point(field) -> np.ndarray:
    """The last step of a field, (N, 1, H·W): for a cumulative field, its Integrated Gradients.

    ``field`` is a path to a stored field (opened as a memory map; the result is a view of it,
    read on use: no copy, no new passes), or an array (N, S, H·W) in either storage form of
    :mod:`modelgif.io.storage`. The result feeds :func:`modelgif.compare.distance.distance_matrix` and
    :func:`modelgif.compare.resample.image_contributions` like any field. Only a *cumulative* field's
    last step is IG; that of a ``cumulative: false`` field is the last path point's term alone.
    """
    if isinstance(field, (str, os.PathLike)):
        field = open_field(field)
    elif hasattr(field, "detach"):
        field = field.detach().cpu().numpy()
    field_shape(field)
    return field[:, -1:]


__all__ = ["ATTRIBUTIONS", "attribution_map", "attribution_maps", "encoder_features", "field_end_point", "gradxinput", "saliency"]
