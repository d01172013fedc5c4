"""Loading a ``{"state_dict": ...}`` checkpoint into a model, with every check before it is used.

Every checkpoint of the project is read by :func:`load_weights_only`: ``torch.load(...,
weights_only=True)``, so no code in the file runs; a file that holds anything but tensors and
plain containers is refused in one line naming what was refused and why (never torch's advice to
lower ``weights_only``).
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from ..io.download import sha256_file


# What torch's weights-only unpickler names when it refuses a global (torch 2.4 .. 2.13 wordings).
_REFUSED = (re.compile(r"GLOBAL ([\w.]+)"),
            re.compile(r"unrecognized function `([\w.]+)` which belongs to `([\w.]+)`"),
            re.compile(r"Unsupported class ([\w.]+)"))


def _refused_global(message: str) -> str | None:
    for pattern in _REFUSED:
        m = pattern.search(message)
        if m:
            return ".".join(reversed(m.groups())) if len(m.groups()) == 2 else m[1]
    return None


def _unpickler_problem(message: str) -> str:
    """The weights-only unpickler's own words in torch's message, without its advice."""
    m = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", message, re.S)
    return " ".join((m[1] if m else message).split()) or "unreadable"


def load_weights_only(path: str | os.PathLike, what: str = "checkpoint", map_location="cpu"):
    """``torch.load(path, weights_only=True)``, its refusals worded for the user.

    Raises:
        ValueError: one line. A file holding code or other objects than tensors and plain
            containers reads ``refused to unpickle <global> from <path>: checkpoints load with
            weights_only=True (a checkpoint may hold tensors and plain containers only, never
            code)``; an unreadable file reads ``<what> <path> is not a readable weights-only torch
            file: <problem>``.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        if "Weights only load failed" not in message:
            raise ValueError(f"{what} {path} is not a readable weights-only torch file: "
                             f"{' '.join(message.split())}") from None
        name = _refused_global(message)
        if name is not None:
            raise ValueError(f"refused to unpickle {name} from {path}: checkpoints load with weights_only=True "
                             f"(a {what} may hold tensors and plain containers only, never code)") from None
        raise ValueError(f"{what} {path} is not a readable weights-only torch file: {_unpickler_problem(message)}") \
            from None
    except OSError:
        raise  # the file system's refusal, with its path
    except Exception as e:  # noqa: BLE001 - any other unpickling failure means a bad file
        raise ValueError(f"{what} {path} is not a readable weights-only torch file: "
                         f"{' '.join(str(e).split()) or type(e).__name__}") from None


def load_state_dict_checked(model: torch.nn.Module, path: str | os.PathLike, *, sha256: str | None = None,
                            map_location: str | torch.device = "cpu", what: str = "checkpoint") -> torch.nn.Module:
    """Load the checkpoint at ``path`` into ``model`` and return it in eval mode on ``map_location``.

    The file is read with :func:`load_weights_only` (no code in it runs), after
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
    ckpt = load_weights_only(path, what, map_location)
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
