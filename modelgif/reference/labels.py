"""The task labels of a reference set rendered from the ``mini-scenes`` source, processed as its images were.

:func:`modelgif.reference.build.rendered_reference_set` renders scenes ``first_seed …`` at the
final size and CutMixes them (no resize). :func:`reference_labels` renders the same scenes'
labels (:func:`modelgif.mini.scenes.render_scenes`) and applies the manifest's CutMix batches
to them (each image gets, inside its batch's box, its partner ``perm[i]``'s labels), checking
on the way that the same mixing of the rendered ``rgb`` gives the manifest's ``images_sha256``;
then brings the dense labels to the encoders' output grid (h, w): the mean over each
``S/h × S/w`` block for real values, the pixel nearest the block's centre for class labels.

What a label is, per task (:data:`LABEL_KIND`, the mini zoo's own readout,
:func:`modelgif.mini.zoo.task_spec`):

- ``regression``: the tasks its readout fits with an L1 loss, and ``class_object`` (a
  distribution, soft cross-entropy): real values, (N, k, h, w), or (N, k) for the
  :data:`modelgif.mini.scenes.VECTOR_LABELS`.
- ``classification``: ``segment_semantic`` (pixel cross-entropy; its ids mean the same in
  every scene), and the k-means segmentations ``segment_unsup2d`` / ``segment_unsup25d``,
  whose cluster ids are arbitrary per scene (the readout's loss is invariant to relabelling
  them): their class is ``KMEANS_K · seed index + cluster id``, one class per cluster of one
  scene, so a label says "same cluster of the same scene", which relabelling does not change.
  (N, h, w) int64.

A CutMixed image's vector label: ``class_object`` is recomputed from the mixed
``segment_semantic`` map (its definition: the fraction of pixels per class); ``room_layout``
and ``vanishing_point`` (one camera each, and a mixed image has two) are the box-area weighted
mean of the two scenes' labels, CutMix's own label rule (Yun et al., ICCV 2019).

A reference set from any other source (Taskonomy sample, folder, archive) has no labels:
:class:`modelgif.errors.InputError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..zoo.spec import SOURCE_MODULES
from .build import images_sha256

#: The source whose reference sets have labels.
LABELLED_SOURCE = "mini-scenes"

#: The class-label tasks (the mini zoo's ``ce`` and ``pairwise`` readouts); every other task is regression.
CLASS_TASKS = ("segment_semantic", "segment_unsup2d", "segment_unsup25d")
#: Class-label tasks whose ids are arbitrary per scene: made distinct across scenes.
PER_SCENE_CLASSES = ("segment_unsup2d", "segment_unsup25d")


def label_kind(task: str) -> str:
    """``classification`` or ``regression``: what the estimators fit for ``task`` (module doc)."""
    return "classification" if task in CLASS_TASKS else "regression"


@dataclass(frozen=True)
class TaskLabels:
    """One task's labels of the N reference images.

    Attributes:
        task: its name.
        kind: ``classification`` or ``regression`` (:func:`label_kind`).
        values: dense: int64 (N, h, w) classes or float64 (N, k, h, w) values; a vector label
            (:data:`modelgif.mini.scenes.VECTOR_LABELS`): float64 (N, k).
    """

    task: str
    kind: str
    values: np.ndarray

    @property
    def dense(self) -> bool:
        return self.values.ndim != 2


def check_labelled(manifest: Mapping) -> None:
    """``InputError`` unless the reference set (its manifest) was rendered from ``mini-scenes``."""
    source = manifest.get("source") if isinstance(manifest, Mapping) else None
    if source != LABELLED_SOURCE or manifest.get("kind") != "rendered":
        raise InputError(f"the reference set comes from source {source!r}, whose images have no task labels; "
                         f"the estimator methods (logme, linear_mse, knn) fit each target task's labels of the "
                         f"reference images, which only a set rendered from the {LABELLED_SOURCE!r} source has "
                         f"(reference.source: zoo with zoo mini or mini_random, or mini-scenes); "
                         f"or drop them from params.yaml's methods")


def _mix(values: np.ndarray, batches: Sequence[Mapping]) -> np.ndarray:
    """The manifest's CutMix batches applied to per-image arrays (N, ..., S, S), as to the images."""
    out = values.copy()
    for b in batches:
        start, (y0, y1, x0, x1), perm = int(b["start"]), b["box"], np.asarray(b["perm"], dtype=np.int64)
        out[start:start + len(perm), ..., y0:y1, x0:x1] = values[start + perm][..., y0:y1, x0:x1]
    return out


def _box_fraction(n: int, size: int, batches: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the partner's index and the fraction of the image its box covers (0: not mixed)."""
    partner, frac = np.arange(n), np.zeros(n)
    for b in batches:
        start, (y0, y1, x0, x1), perm = int(b["start"]), b["box"], np.asarray(b["perm"], dtype=np.int64)
        partner[start:start + len(perm)] = start + perm
        frac[start:start + len(perm)] = (y1 - y0) * (x1 - x0) / size ** 2
    return partner, frac


def _to_grid(values: np.ndarray, hw: tuple[int, int], kind: str) -> np.ndarray:
    """(N, [k,] S, S) → (N, [k,] h, w): block mean (regression) or the pixel nearest each block's centre."""
    s_h, s_w = values.shape[-2:]
    h, w = hw
    if s_h % h or s_w % w:
        raise InputError(f"the labels' {s_h}×{s_w} pixels do not divide into the features' {h}×{w} grid")
    fh, fw = s_h // h, s_w // w
    if kind == "classification":
        return values[..., fh // 2::fh, fw // 2::fw]
    return values.reshape(*values.shape[:-2], h, fh, w, fw).mean(axis=(-3, -1))


def reference_labels(manifest: Mapping, tasks: Sequence[str], hw: tuple[int, int]) -> dict[str, TaskLabels]:
    """Each task's labels of a ``mini-scenes`` reference set, processed as its images (module doc).

    Args:
        manifest: the reference set's manifest (``data/reference/manifest.json``).
        tasks: names of :data:`modelgif.mini.scenes.TASK_LABELS`.
        hw: (h, w), the encoders' output grid; it must divide the images' side.

    Returns:
        ``{task: TaskLabels}`` in the order of ``tasks``.

    Raises:
        InputError: a set from another source, a task without labels, a grid that does not
            divide the images, or a manifest whose CutMix does not reproduce its images (the
            renderer changed since it was built).
    """
    check_labelled(manifest)
    scenes = importlib.import_module(SOURCE_MODULES[LABELLED_SOURCE])  # the renderer, by name as build.py does
    unknown = [t for t in tasks if t not in scenes.TASK_LABELS]
    if unknown:
        raise InputError(f"no mini-scenes labels for task(s) {', '.join(unknown)}; tasks with labels: "
                         f"{', '.join(scenes.TASK_LABELS)}")
    n, size, first = int(manifest["n_images"]), int(manifest["size"]), int(manifest["first_seed"])
    rendered = scenes.render_scenes(range(first, first + n), size)
    cut = manifest["cutmix"]
    batches = cut["batches"] if cut["enabled"] else []
    images = _mix(np.rint(rendered["rgb"] * 255.0).astype(np.uint8), batches)
    if images_sha256(images) != manifest["images_sha256"]:
        raise InputError(f"re-rendering the reference set's {n} scenes and mixing them as its manifest says does not "
                         "give its images (images_sha256 differs): the renderer changed since the set was built; "
                         "rebuild it (dvc repro fetch_reference)")
    partner, frac = _box_fraction(n, size, batches)
    out = {}
    for task in tasks:
        kind = label_kind(task)
        raw = rendered[task]
        if task in PER_SCENE_CLASSES:
            raw = raw + scenes.KMEANS_K * np.arange(n)[:, None, None]
        if task == "class_object":
            semantic = _mix(rendered["segment_semantic"], batches)
            counts = np.stack([np.bincount(m.ravel(), minlength=raw.shape[1]) for m in semantic])
            values = counts / counts.sum(axis=1, keepdims=True)
        elif task in scenes.VECTOR_LABELS:
            raw = raw.astype(np.float64)
            values = (1 - frac)[:, None] * raw + frac[:, None] * raw[partner]
        else:
            values = _to_grid(_mix(raw, batches).astype(np.int64 if kind == "classification" else np.float64), hw, kind)
        out[task] = TaskLabels(task, kind, values.astype(np.int64 if kind == "classification" else np.float64))
    return out


__all__ = ["CLASS_TASKS", "LABELLED_SOURCE", "PER_SCENE_CLASSES", "TaskLabels", "check_labelled", "label_kind",
           "reference_labels"]
