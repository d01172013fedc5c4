"""The Taskonomy zoo: task names, encoder checkpoints, and the published transfer tables.

Encoders are ``visualpriors.taskonomy_network.TaskonomyEncoder`` (a ResNet-50 trunk whose
output is an 8-channel map at 1/16 of the input size), with weights from
``TASKONOMY_PRETRAINED_URLS[task + "_encoder"]``. Ground-truth tables are the Taskonomy
authors' (Zamir et al., CVPR 2018), converted once to JSON: package data under
``modelgif/data/taskonomy/``. The task list itself is :mod:`modelgif.zoo.tasks`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from .._resources import taskonomy_tables_dir
from ..errors import MissingEntry
from .tasks import OLD_NAMES, TASKS

if TYPE_CHECKING:  # torch is imported where an encoder is built, so reading the tables does not need it
    import torch

#: Tasks without a published decoder, whose encoder the original code ran with the output
#: GroupNorm on (``normalize_outputs=True``); every other task runs with it off.
NORMALIZED_OUTPUT_TASKS = frozenset({"room_layout", "vanishing_point"})

#: The published tables (``results/affinities`` and ``results/winrates`` of StanfordVL/taskonomy).
GROUND_TRUTH_TABLES = (
    "all_affinities", "all_affinities_16k", "all_affinities_1k",
    "wins_vs_pixels", "wins_vs_pixels_16k", "wins_vs_pixels_1k",
    "wins_vs_task", "wins_vs_task_16k", "wins_vs_task_1k",
)

#: Where the converted tables live: the package data ``modelgif/data/taskonomy`` (override with
#: the ``root`` argument of :func:`load_ground_truth`).
TABLES_DIR = taskonomy_tables_dir()


def target_is_void(task: str, target: int) -> bool:
    """Deprecated (0.2): :func:`modelgif.zoo.models.target_is_void` (``void_targets`` of the zoo
    declaration) says it for every zoo. True where the field is identically zero whatever the
    weights: target 6 (Σ f) on an encoder with the output GroupNorm on."""
    from .._deprecated import warn

    warn("modelgif.zoo.taskonomy.target_is_void", "modelgif.zoo.models.target_is_void('taskonomy', task, target)")
    return int(target) == 6 and check_task(task) in NORMALIZED_OUTPUT_TASKS


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise ``ValueError`` listing them."""
    if task not in OLD_NAMES:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def encoder_filename(task: str) -> str:
    """The official checkpoint file name, ``<task>_encoder-<sha256>.pth``."""
    from visualpriors.taskonomy_network import TASKONOMY_PRETRAINED_URLS

    check_task(task)
    return TASKONOMY_PRETRAINED_URLS[f"{task}_encoder"].rsplit("/", 1)[1]


def encoder_sha256(task: str) -> str:
    """The sha256 of the official checkpoint, which its file name carries."""
    m = re.fullmatch(r".+_encoder-([0-9a-f]{64})\.pth", encoder_filename(task))
    return m.group(1)


def official_manifest() -> dict[str, dict[str, str]]:
    """``{task: {"file": name, "sha256": hex}}`` for the 17 official encoders."""
    return {t: {"file": encoder_filename(t), "sha256": encoder_sha256(t)} for t in TASKS}


def build_encoder(task: str) -> torch.nn.Module:
    """An untrained ``TaskonomyEncoder`` configured for ``task`` (eval mode, frozen)."""
    from visualpriors.taskonomy_network import TaskonomyEncoder

    check_task(task)
    model = TaskonomyEncoder(normalize_outputs=task in NORMALIZED_OUTPUT_TASKS, eval_only=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def load_encoder(task: str, path: str | os.PathLike, *, sha256: str | None = None,
                 map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a Taskonomy encoder checkpoint for ``task``.

    Args:
        task: one of :data:`TASKS` (decides ``normalize_outputs``).
        path: a checkpoint holding the encoder's state dict under ``"state_dict"``.
        sha256: if given, the file's expected sha256; a mismatch raises before loading.
        map_location: device for the weights.

    Returns:
        The encoder in eval mode, parameters frozen, on ``map_location``.

    Raises:
        ValueError: hash mismatch, unreadable file, or state-dict keys/shapes that do not match.
    """
    from .checkpoint import load_state_dict_checked

    return load_state_dict_checked(build_encoder(task), path, sha256=sha256, map_location=map_location,
                                   what=f"checkpoint for {task}")


# The zoo protocol (modelgif.zoo.models.ARCHITECTURES: ``architecture: taskonomy``, loaded by name).
build_zoo_model = build_encoder


def load_zoo_model(name: str, path: str | os.PathLike, *, sha256: str | None = None,
                   map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Model ``name`` (a task) of the Taskonomy zoo from its checkpoint (:func:`load_encoder`)."""
    return load_encoder(name, path, sha256=sha256, map_location=map_location)


def load_table(name: str, root: str | os.PathLike | None = None) -> dict[str, float]:
    """A table as ``{"<source>__<target>": value}`` in Taskonomy's original names: one of
    :data:`GROUND_TRUTH_TABLES` from :data:`TABLES_DIR`, or ``<root>/<name>.json`` of another
    folder in the same form (e.g. the mini-Taskonomy's, :data:`modelgif.zoo.models.MINI_TABLES_DIR`)."""
    if root is None:
        if name not in GROUND_TRUTH_TABLES:
            raise ValueError(f"unknown ground-truth table {name!r}; valid tables: {', '.join(GROUND_TRUTH_TABLES)}")
    else:
        valid = sorted(p.stem for p in Path(root).glob("*.json"))
        if name not in valid:
            raise ValueError(f"unknown ground-truth table {name!r} in {root}; valid tables: {', '.join(valid) or 'none'}")
    path = Path(root or TABLES_DIR) / f"{name}.json"
    with open(path) as f:
        return json.load(f)["table"]


def load_ground_truth(name: str, tasks=TASKS, root: str | os.PathLike | None = None) -> np.ndarray:
    """Ground truth ``T[i, j] = table[old(tasks[i]) + "__" + old(tasks[j])]`` (docs/METHOD.md, step 7).

    Args:
        name: one of :data:`GROUND_TRUTH_TABLES`, or a table of ``root``.
        tasks: task names (new names, :data:`TASKS`), in the order of the distance matrix.

    Returns:
        T, float64 (K, K): row = source task, column = target task.
    """
    tasks = [check_task(t) for t in tasks]
    table = load_table(name, root)
    out = np.empty((len(tasks), len(tasks)), dtype=np.float64)
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            key = f"{OLD_NAMES[a]}__{OLD_NAMES[b]}"
            if key not in table:
                raise MissingEntry(f"table {name} has no entry {key!r}")
            out[i, j] = table[key]
    return out
