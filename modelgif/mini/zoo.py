"""The mini-Taskonomy zoo: small encoders trained on rendered scenes, one per task (step 2).

Each task of :data:`modelgif.mini.scenes.TASK_LABELS` (Taskonomy's 17) gets a
:class:`MiniEncoder` (four stride-2 conv blocks, then a 3×3 conv to 8 channels and a ReLU: an
8-channel, non-negative map at 1/16 of the input size, the shape of a Taskonomy encoder's
output, so ModelGiF targets 1, 5 and 6 apply unchanged) trained jointly with a small task
decoder (:func:`make_decoder`: a :class:`MiniDecoder` up-sampling back to the label's full
size, or for the three vector labels a :class:`MiniHead`) on the task's labels; only the
encoder is kept.

Normalisation is GroupNorm, not BatchNorm: an output never depends on the other images of a
batch, and train and eval mode compute the same function, so a field of the trained encoder
(which :func:`modelgif.gradient_field` needs in eval mode) is the function that was trained.

Inputs: ``rgb`` mapped from [0, 1] to [-1, 1] (Taskonomy's input range); for ``denoising``,
``rgb_noisy`` mapped the same way (:func:`model_input`). Losses (:func:`task_spec`):

* ``"l1"``: mean absolute error on the raw label, for every float label but class_object
  (autoencoding, denoising, curvature, edge_texture, edge_occlusion, keypoints2d,
  keypoints3d, reshading, the two depths, normal, room_layout, vanishing_point). Labels are
  not rescaled, so losses of different tasks are in different units (depth in metres,
  curvature in 1/m); transfer is only ever compared within a target.
* ``"soft_ce"``: cross-entropy against a distribution label, for ``class_object``.
* ``"ce"``: pixel-wise cross-entropy, for ``segment_semantic`` (5 classes; the ids mean the
  same in every scene).
* ``"pairwise"``: for the k-means segmentations ``segment_unsup2d`` / ``segment_unsup25d``.
  Their cluster ids are permutation-arbitrary per scene (renumbered in raster order of first
  appearance), so a per-pixel cross-entropy on them would mostly learn "which cluster
  appears first", not the clustering. The decoder instead outputs K = 8 logits per pixel;
  with p the softmax, the probability that pixels i and j are in the same cluster is
  ``p_i · p_j``, and the loss is the binary cross-entropy of it against ``[y_i == y_j]``,
  averaged over all pairs of a grid of pixels (stride ``size // 16``, so 16×16 = 256 pixels
  and 65 536 pairs per image; the grid's offset is random in training, drawn from the
  training generator, and 0 in :func:`evaluate`). This loss is invariant to relabelling
  the clusters, which is what the issue's "clusters" task amounts to.

Determinism: :func:`train_encoder` and :func:`train_readout` draw the initial weights after
``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` (the caller's global RNG state
is left as it was) and the batch order and grid offsets from a ``torch.Generator`` seeded
with ``seed``; on the CPU the same seed (and thread count) gives the same weights.

Transfer (:func:`train_readout`): freeze a source encoder, train a fresh decoder for a target
task on a fixed budget, return its test loss; with ``encoder=None`` the source is raw pixels
(see :class:`PixelSource`), Taskonomy's "pixels" baseline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .encoder import (ENCODER_WIDTHS, OUT_CHANNELS, STRIDE, MiniEncoder, _gn, build_mini_encoder,  # noqa: F401
                      load_mini_encoder, save_encoder)
from .scenes import KMEANS_K, SEMANTIC_CLASSES, TASK_LABELS, VECTOR_LABELS

#: Channels of the dense decoder's stem and its two ×2 up-sampling blocks.
DECODER_WIDTHS = (64, 32, 32)
#: Channels of the vector head's conv before its global average pool.
HEAD_WIDTH = 64
#: Pixels per side of the grid the pairwise loss compares (16×16 pixels per image).
PAIR_GRID = 16

_L1_TASKS = frozenset({
    "autoencoding", "denoising", "curvature", "edge_texture", "edge_occlusion", "keypoints2d",
    "reshading", "depth_zbuffer", "depth_euclidean", "normal", "keypoints3d", "room_layout",
    "vanishing_point",
})
_CHANNELS = {
    "autoencoding": 3, "denoising": 3, "curvature": 2, "edge_texture": 1, "edge_occlusion": 1,
    "keypoints2d": 1, "reshading": 1, "depth_zbuffer": 1, "depth_euclidean": 1, "normal": 3,
    "segment_semantic": len(SEMANTIC_CLASSES), "segment_unsup2d": KMEANS_K,
    "segment_unsup25d": KMEANS_K, "keypoints3d": 1, "room_layout": 8, "vanishing_point": 9,
    "class_object": len(SEMANTIC_CLASSES),
}
LOSSES = ("l1", "ce", "pairwise", "soft_ce")


def task_spec(task: str) -> tuple[int, str]:
    """``(out_channels, loss_name)`` of a task's decoder; loss_name in :data:`LOSSES`."""
    if task not in TASK_LABELS:
        raise ValueError(f"unknown mini-Taskonomy task {task!r}; valid tasks: {', '.join(TASK_LABELS)}")
    if task in _L1_TASKS:
        return _CHANNELS[task], "l1"
    if task == "segment_semantic":
        return _CHANNELS[task], "ce"
    if task == "class_object":
        return _CHANNELS[task], "soft_ce"
    return _CHANNELS[task], "pairwise"


class MiniDecoder(nn.Module):
    """Dense task decoder, (B, 8, h, w) → (B, out_channels, 16h, 16w): a 3×3 conv, two blocks
    ``bilinear ×2 → conv 3×3 → GroupNorm → ReLU`` (widths :data:`DECODER_WIDTHS`), a 1×1 conv
    to ``out_channels`` (regression values or logits) at 1/4 of the input size, and a
    bilinear ×4 up-sampling to the full size.

    Predicting at 1/4 size and interpolating keeps the decoder small (about ten times faster
    to train than convolving at full size on a CPU), so that most of what a model knows
    about a task has to be in the encoder's 8-channel map.
    """

    def __init__(self, out_channels: int, in_channels: int = OUT_CHANNELS):
        super().__init__()
        c0 = DECODER_WIDTHS[0]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c0, 3, padding=1), _gn(c0), nn.ReLU(inplace=True))
        layers, c_in = [], c0
        for c in DECODER_WIDTHS[1:]:
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(c_in, c, 3, padding=1), _gn(c), nn.ReLU(inplace=True)]
            c_in = c
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(c_in, out_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.out(self.up(self.stem(z)))
        return F.interpolate(y, scale_factor=STRIDE // 2 ** (len(DECODER_WIDTHS) - 1), mode="bilinear",
                             align_corners=False)


class MiniHead(nn.Module):
    """Vector task decoder, (B, 8, h, w) → (B, out_channels): ``conv 3×3 → GroupNorm → ReLU``
    (:data:`HEAD_WIDTH` channels), global average pool, linear layer."""

    def __init__(self, out_channels: int, in_channels: int = OUT_CHANNELS):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, HEAD_WIDTH, 3, padding=1), _gn(HEAD_WIDTH),
                                  nn.ReLU(inplace=True))
        self.out = nn.Linear(HEAD_WIDTH, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(z).mean((2, 3)))


def make_decoder(task: str) -> nn.Module:
    """A fresh decoder for ``task``: :class:`MiniHead` for the :data:`VECTOR_LABELS`, else
    :class:`MiniDecoder`; its output channels from :func:`task_spec`."""
    out_channels, _ = task_spec(task)
    return MiniHead(out_channels) if task in VECTOR_LABELS else MiniDecoder(out_channels)


class PixelSource(nn.Module):
    """The raw-pixel source of :func:`train_readout`: the image average-pooled to the
    encoder's 1/16 grid (a fixed map), lifted 3 → 8 channels by a 1×1 conv that is trained
    as part of the readout (so the readout has the encoder-fed decoder's input shape)."""

    def __init__(self):
        super().__init__()
        self.lift = nn.Conv2d(3, OUT_CHANNELS, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.lift(pooled)


# ----------------------------------------------------------------------------- data and losses
def model_input(task: str, data: Mapping) -> torch.Tensor:
    """The model input of ``task``: ``rgb`` (``rgb_noisy`` for denoising) mapped to [-1, 1]."""
    key = "rgb_noisy" if task == "denoising" else "rgb"
    x = data[key]
    x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return x.float() * 2 - 1


def task_target(task: str, data: Mapping) -> torch.Tensor:
    """The label of ``task`` as a tensor: float32 (N, C, H, W), float32 (N, C) for the
    :data:`VECTOR_LABELS`, or int64 (N, H, W) for the segmentations."""
    _, loss = task_spec(task)
    y = data[task]
    y = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(y))
    return y.long() if loss in ("ce", "pairwise") else y.float()


def _tensors(task: str, data: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = model_input(task, data), task_target(task, data)
    if x.shape[0] != y.shape[0] or (task not in VECTOR_LABELS and x.shape[-2:] != y.shape[-2:]):
        raise ValueError(f"inputs {tuple(x.shape)} and {task} labels {tuple(y.shape)} do not match")
    if x.shape[-1] % STRIDE or x.shape[-2] % STRIDE:
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of {STRIDE}")
    return x, y


def _pairwise_loss(logits: torch.Tensor, y: torch.Tensor, offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Permutation-invariant clustering loss (module doc) on a PAIR_GRID × PAIR_GRID grid, per image (B,)."""
    h, w = y.shape[-2:]
    sh, sw = max(1, h // PAIR_GRID), max(1, w // PAIR_GRID)
    oy, ox = offset[0] % sh, offset[1] % sw
    p = logits[:, :, oy::sh, ox::sw].softmax(1).flatten(2)  # (B, K, P)
    lab = y[:, oy::sh, ox::sw].flatten(1)  # (B, P)
    same = (lab[:, :, None] == lab[:, None, :]).float()
    prob = torch.bmm(p.transpose(1, 2), p).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(prob, same, reduction="none").mean((1, 2))


def per_image_loss(loss: str, pred: torch.Tensor, y: torch.Tensor, offset=(0, 0)) -> torch.Tensor:
    """The loss of each image, shape (B,): ``l1`` the mean absolute error over its values,
    ``ce`` the mean pixel cross-entropy, ``pairwise`` the clustering loss (module doc),
    ``soft_ce`` the cross-entropy −Σ y log softmax(pred) of a distribution label."""
    if loss == "l1":
        return (pred - y).abs().flatten(1).mean(1)
    if loss == "ce":
        return F.cross_entropy(pred, y, reduction="none").flatten(1).mean(1)
    if loss == "soft_ce":
        return -(y * pred.log_softmax(1)).sum(1)
    if loss == "pairwise":
        return _pairwise_loss(pred, y, offset)
    raise ValueError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")


def _loss(loss: str, pred: torch.Tensor, y: torch.Tensor, offset=(0, 0)) -> torch.Tensor:
    return per_image_loss(loss, pred, y, offset).mean()


def _offset(loss: str, size: int, gen: torch.Generator) -> tuple[int, int]:
    if loss != "pairwise":
        return (0, 0)
    s = max(1, size // PAIR_GRID)
    o = torch.randint(0, s, (2,), generator=gen)
    return int(o[0]), int(o[1])


def _fit(modules: list[nn.Module], params, forward, x, y, loss, *, steps, batch_size, lr, seed, progress, desc):
    """Adam on ``loss(forward(x[batch]), y[batch])``; batch order from a seeded generator."""
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(params, lr=lr)
    n = x.shape[0]
    bs = min(int(batch_size), n)
    for m in modules:
        m.train()
    history, order, pos = [], torch.randperm(n, generator=gen), 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, unit="step")
    for _ in range(int(steps)):
        if pos + bs > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + bs]
        pos += bs
        off = _offset(loss, y.shape[-1], gen)
        value = _loss(loss, forward(x[idx]), y[idx], off)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        history.append(float(value.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    if bar is not None:
        bar.close()
    for m in modules:
        m.eval()
    return history


@torch.no_grad()
def _eval_losses(forward, x, y, loss, batch_size: int = 64) -> np.ndarray:
    """Per-image test losses, float64 (N,)."""
    out = [per_image_loss(loss, forward(x[i : i + batch_size]), y[i : i + batch_size]).double()
           for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------- training
def train_encoder(task: str, data: Mapping, *, steps: int = 2000, batch_size: int = 32, lr: float = 1e-3,
                  seed: int = 0, progress: bool = True) -> tuple[MiniEncoder, nn.Module, list[float]]:
    """Train a :class:`MiniEncoder` and the task's decoder (:func:`make_decoder`) on ``task`` with Adam.

    Args:
        task: one of :data:`TASK_LABELS`.
        data: the dict of :func:`modelgif.mini.scenes.render_scenes` (numpy or tensors);
            the input and label arrays are converted to tensors once.
        steps: optimiser steps; batch_size: images per step (sampled without replacement,
            an epoch at a time, in a seeded order); lr: Adam's learning rate.
        seed: initial weights and batch order (module doc, "Determinism").

    Returns:
        ``(encoder, decoder, history)``: both modules in eval mode (parameters still
        trainable), history the training loss of every step.
    """
    _, loss = task_spec(task)
    x, y = _tensors(task, data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        encoder, decoder = MiniEncoder(), make_decoder(task)
    params = list(encoder.parameters()) + list(decoder.parameters())
    history = _fit([encoder, decoder], params, lambda xb: decoder(encoder(xb)), x, y, loss, steps=steps,
                   batch_size=batch_size, lr=lr, seed=seed, progress=progress, desc=f"train {task}")
    return encoder, decoder, history


def evaluate(encoder: nn.Module, decoder: nn.Module, task: str, data: Mapping) -> float:
    """Mean test loss (:func:`task_spec`'s loss) of ``decoder(encoder(input))`` on ``data``;
    the pairwise loss on its fixed grid (offset 0). Puts both modules in eval mode."""
    _, loss = task_spec(task)
    x, y = _tensors(task, data)
    encoder.eval()
    decoder.eval()
    return float(_eval_losses(lambda xb: decoder(encoder(xb)), x, y, loss).mean())


@torch.no_grad()
def _features(encoder: nn.Module | None, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    if encoder is None:
        return F.avg_pool2d(x, STRIDE)
    return torch.cat([encoder(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def train_readout(encoder: nn.Module | None, task: str, train_data: Mapping, test_data: Mapping, *,
                  steps: int = 500, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                  progress: bool = False, per_image: bool = False) -> float | np.ndarray:
    """Transfer from a frozen source to ``task``: train a fresh :class:`MiniDecoder` on a fixed
    budget, return its test loss (lower is better; compare only within one target task).

    Args:
        encoder: the source encoder, used frozen (eval mode, no gradients; its features of
            the train and test inputs are computed once), or ``None`` for raw pixels: the
            input average-pooled to the 1/16 grid, through a 1×1 conv 3 → 8 (:class:`PixelSource`)
            trained with the decoder.
        task: the target task; its input (``rgb``, ``rgb_noisy`` for denoising) is what the
            source sees.
        train_data, test_data: dicts of :func:`render_scenes`.
        steps, batch_size, lr, seed: as :func:`train_encoder` (same seed → same readout).
        per_image: return the test loss of every test image, float64 (N_test,), instead of
            their mean (what win rates are counted from).

    The source encoder's parameters and mode are restored on return; it is never updated.
    """
    _, loss = task_spec(task)
    x_train, y_train = _tensors(task, train_data)
    x_test, y_test = _tensors(task, test_data)
    was_training, grads = None, None
    if encoder is not None:
        was_training = encoder.training
        grads = [p.requires_grad for p in encoder.parameters()]
        encoder.eval()
        for p in encoder.parameters():
            p.requires_grad_(False)
    try:
        f_train, f_test = _features(encoder, x_train), _features(encoder, x_test)
    finally:
        if encoder is not None:
            encoder.train(was_training)
            for p, g in zip(encoder.parameters(), grads):
                p.requires_grad_(g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        decoder = make_decoder(task)
        source = PixelSource() if encoder is None else nn.Identity()
    params = list(decoder.parameters()) + list(source.parameters())

    def forward(f):
        return decoder(source(f))

    _fit([decoder, source], params, forward, f_train, y_train, loss, steps=steps, batch_size=batch_size,
         lr=lr, seed=seed, progress=progress, desc=f"readout {task}")
    losses = _eval_losses(forward, f_test, y_test, loss)
    return losses if per_image else float(losses.mean())


__all__ = [
    "DECODER_WIDTHS", "ENCODER_WIDTHS", "HEAD_WIDTH", "LOSSES", "MiniDecoder", "MiniEncoder", "MiniHead",
    "OUT_CHANNELS", "PixelSource", "STRIDE", "build_mini_encoder", "evaluate", "load_mini_encoder",
    "make_decoder", "model_input", "per_image_loss", "save_encoder", "task_spec", "task_target",
    "train_encoder", "train_readout",
]
