"""The mini-Taskonomy's encoder: its architecture and checkpoints, apart from its training.

This is the mini zoo's architecture module (``architecture: mini`` of ``zoos/mini.yaml`` and
``zoos/mini_random.yaml``, loaded by name through :data:`modelgif.zoo.models.ARCHITECTURES`): what a
field or feature of a mini encoder is computed with. The trainer (:mod:`modelgif.mini.zoo`:
decoders, losses, training, transfer) and the zoo's build (:mod:`modelgif.mini.build`) import
it, never the other way round, so editing them reruns no field.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..io.atomic import atomic_path
from ..zoo.checkpoint import load_state_dict_checked

#: Channels of the encoder's four stride-2 blocks.
ENCODER_WIDTHS = (16, 32, 64, 64)
#: Channels of the encoder's output map (Taskonomy's).
OUT_CHANNELS = 8
#: Total down-sampling of the encoder.
STRIDE = 16


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, c // 8), c)


class MiniEncoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] → (B, 8, H/16, W/16), non-negative; H and W multiples of 16.

    Four blocks ``conv 3×3 stride 2 → GroupNorm → ReLU`` (widths :data:`ENCODER_WIDTHS`),
    then ``conv 3×3 → ReLU`` to :data:`OUT_CHANNELS` channels; about 65 k parameters
    (260 kB in float32).
    """

    def __init__(self):
        super().__init__()
        layers, c_in = [], 3
        for c in ENCODER_WIDTHS:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), _gn(c), nn.ReLU(inplace=True)]
            c_in = c
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, OUT_CHANNELS, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % STRIDE or x.shape[3] % STRIDE:
            raise ValueError(f"MiniEncoder needs (B, 3, H, W) with H, W multiples of {STRIDE}; "
                             f"got {tuple(x.shape)}")
        return F.relu(self.head(self.blocks(x)))


def save_encoder(path: str | os.PathLike, encoder: MiniEncoder) -> Path:
    """Write ``{"state_dict": encoder.state_dict()}`` (on the CPU) to ``path`` atomically."""
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state}, tmp)
    return Path(path)


def build_mini_encoder() -> MiniEncoder:
    """An untrained :class:`MiniEncoder` in eval mode with frozen parameters."""
    model = MiniEncoder()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def load_mini_encoder(path: str | os.PathLike, sha256: str | None = None,
                      map_location: str | torch.device = "cpu") -> MiniEncoder:
    """Load a checkpoint written by :func:`save_encoder`.

    Mirrors :func:`modelgif.zoo.taskonomy.load_encoder`: ``FileNotFoundError`` if there is no
    file; ``ValueError`` on a sha256 mismatch (checked before loading), a file that is not a
    weights-only torch file, a missing ``"state_dict"``, or keys/shapes that do not match a
    :class:`MiniEncoder`. Returns the encoder in eval mode with frozen parameters.
    """
    return load_state_dict_checked(build_mini_encoder(), path, sha256=sha256, map_location=map_location,
                                   what="mini encoder checkpoint")


def encoder_seed(task: str, seed: int) -> int:
    """Seed of ``task``'s encoder (initial weights and batch order) in a build with ``seed``."""
    from .scenes import TASK_LABELS

    return 1000 * int(seed) + TASK_LABELS.index(task)


def random_encoder(task: str, seed: int = 0) -> MiniEncoder:
    """``mini_random``'s encoder for ``task``: a :class:`MiniEncoder` with exactly the initial
    weights that encoder of a ``mini`` build with ``seed`` started from (:func:`encoder_seed`);
    eval mode, frozen."""
    from .scenes import TASK_LABELS

    if task not in TASK_LABELS:
        raise ValueError(f"unknown mini-Taskonomy task {task!r}; valid tasks: {', '.join(TASK_LABELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(encoder_seed(task, seed))
        return build_mini_encoder()


# ----------------------------------------------------------------------------- the zoo protocol
# (modelgif.zoo.models.ARCHITECTURES): a model by its name, fresh, from a checkpoint, or random.
def build_zoo_model(name: str) -> MiniEncoder:
    """The architecture of every model of the mini zoos, untrained (``name`` is not needed)."""
    return build_mini_encoder()


def load_zoo_model(name: str, path: str | os.PathLike, *, sha256: str | None = None,
                   map_location: str | torch.device = "cpu") -> MiniEncoder:
    """Model ``name`` from its checkpoint (:func:`load_mini_encoder`)."""
    return load_mini_encoder(path, sha256=sha256, map_location=map_location)


def write_random_checkpoint(name: str, seed: int, out: str | os.PathLike) -> Path:
    """``mini_random``'s checkpoint of model ``name``: :func:`random_encoder` saved atomically."""
    return save_encoder(out, random_encoder(name, int(seed)))


__all__ = ["ENCODER_WIDTHS", "MiniEncoder", "OUT_CHANNELS", "STRIDE", "build_mini_encoder", "build_zoo_model",
           "encoder_seed", "load_mini_encoder", "load_zoo_model", "random_encoder", "save_encoder",
           "write_random_checkpoint"]
