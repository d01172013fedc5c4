"""Loading a ``{"state_dict": ...}`` checkpoint into a model, with every check before it is used."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .download import sha256_file


def load_state_dict_checked(model: torch.nn.Module, path: str | os.PathLike, *, sha256: str | None = None,
                            map_location: str | torch.device = "cpu", what: str = "checkpoint") -> torch.nn.Module:
    """Load the checkpoint at ``path`` into ``model`` and return it in eval mode on ``map_location``.

    The file is read with ``torch.load(..., weights_only=True)`` (no code in it runs), after
    its sha256 is checked when ``sha256`` is given. ``what`` names the checkpoint in messages.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: sha256 mismatch, unreadable file, no ``"state_dict"`` entry, or keys or
            shapes that differ from ``model``'s.
    """
    path = Path(path)
    name = type(model).__name__
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise ValueError(f"{what} {path}: expected sha256 {sha256.lower()}, got {actual}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{what} {path} is not a readable weights-only torch file: {e}") from e
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{what} {path} has no 'state_dict' entry")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{what} {path} does not match {name}: "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(f"{what} {path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict(state)
    return model.to(map_location).eval()
