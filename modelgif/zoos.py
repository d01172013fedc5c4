"""Model zoos the pipeline can measure: what ``zoo`` in ``params.yaml`` selects.

* ``taskonomy``: the 17 pretrained Taskonomy encoders (downloaded, ``data/manifests/
  taskonomy_encoders.json``), the Taskonomy sample building as reference images, the
  published Taskonomy tables (``data/taskonomy``) as ground truth.
* ``mini``: the mini-Taskonomy (:mod:`modelgif.mini`): 17 small encoders the project trained
  on rendered rooms (committed in ``data/mini/encoders``, ``data/manifests/mini_encoders.json``),
  rendered scenes as reference images, and the transfer tables the project measured
  (``data/mini/tables``). Offline, minutes on a CPU.
* ``mini_random``: the control for ``mini``: the same architecture with the initial (random)
  weights of the ``mini`` build's encoders, i.e. before any training; same references and
  ground truth. A functional distance should find nothing here.

Both zoos have Taskonomy's 17 task names, so the pipeline's per-task stages are the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where an encoder is built: the correlate stage does not need it
    import torch

from ._resources import mini_tables_dir

ZOOS = ("taskonomy", "mini", "mini_random")
_ROOT = Path(__file__).resolve().parent.parent
#: Where the mini-Taskonomy's ground-truth tables are (``losses``, ``wins_vs_pixels``).
MINI_TABLES_DIR = mini_tables_dir()  # data/mini/tables (a wheel: its copy in the package)


def check_zoo(zoo: str) -> str:
    """Return ``zoo`` if it is one of :data:`ZOOS`, else raise ``ValueError`` listing them."""
    if zoo not in ZOOS:
        raise ValueError(f"unknown zoo {zoo!r}; valid zoos: {', '.join(ZOOS)}")
    return zoo


def is_mini(zoo: str) -> bool:
    """True for the zoos built on the mini-Taskonomy (``mini``, ``mini_random``)."""
    return check_zoo(zoo) != "taskonomy"


def zoo_params(params: dict, zoo: str, key: str):
    """``zoo``'s setting ``key`` (``reference``, ``checkpoints`` or ``ground_truth``) from a
    ``params.yaml`` mapping: at the top level for ``taskonomy``, under ``mini:`` for the mini
    zoos. ``ValueError`` naming the missing entry if there is none."""
    section = params if check_zoo(zoo) == "taskonomy" else params.get("mini")
    where = key if zoo == "taskonomy" else f"mini.{key}"
    if not isinstance(section, dict) or key not in section:
        raise ValueError(f"params have no '{where}' (needed by zoo {zoo!r})")
    return section[key]


def load_zoo_encoder(zoo: str, task: str, path: str | os.PathLike, *, sha256: str | None = None,
                     map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load ``task``'s encoder of ``zoo`` from a checkpoint, checked (eval mode, frozen)."""
    if is_mini(zoo):
        from .mini.scenes import TASK_LABELS
        from .mini.zoo import load_mini_encoder

        if task not in TASK_LABELS:
            raise ValueError(f"unknown mini-Taskonomy task {task!r}; valid tasks: {', '.join(TASK_LABELS)}")
        return load_mini_encoder(path, sha256=sha256, map_location=map_location)
    from .taskonomy import load_encoder

    return load_encoder(task, path, sha256=sha256, map_location=map_location)


def target_is_void(zoo: str, task: str, target: int) -> bool:
    """True where ``target`` makes the field identically zero for ``task``'s encoder of ``zoo``
    (only Taskonomy's output-GroupNorm encoders have such a target)."""
    if is_mini(zoo):
        return False
    from .taskonomy import target_is_void as taskonomy_void

    return taskonomy_void(task, target)


def ground_truth_dir(zoo: str) -> Path:
    """Folder of ``zoo``'s ground-truth tables."""
    from .taskonomy import TABLES_DIR

    return MINI_TABLES_DIR if is_mini(zoo) else Path(TABLES_DIR)


def random_encoder(task: str, seed: int = 0) -> torch.nn.Module:
    """``mini_random``'s encoder for ``task``: a :class:`~modelgif.mini.zoo.MiniEncoder` with
    exactly the initial weights that encoder of a ``mini`` build with ``seed`` started from
    (:func:`modelgif.mini.build.encoder_seed`); eval mode, frozen."""
    import torch

    from .mini.build import encoder_seed
    from .mini.scenes import TASK_LABELS
    from .mini.zoo import build_mini_encoder

    if task not in TASK_LABELS:
        raise ValueError(f"unknown mini-Taskonomy task {task!r}; valid tasks: {', '.join(TASK_LABELS)}")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(encoder_seed(task, seed))
        return build_mini_encoder()


__all__ = ["MINI_TABLES_DIR", "ZOOS", "check_zoo", "ground_truth_dir", "is_mini", "load_zoo_encoder",
           "random_encoder", "target_is_void", "zoo_params"]
