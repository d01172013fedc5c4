"""The transferability estimators (:mod:`modelgif.compare.estimators`) as pipeline methods: an
asymmetric K×K "distance" from each source model's features to each target task's labels.

``D[i, j] = −score(features of source i, labels of target j)`` on the same rows: the estimator's
score, higher better, negated so that a better source is nearer, like every other method's
distance. D is not symmetric and is not symmetrised: rows are sources, columns targets, the
orientation of the ground truth (:func:`modelgif.score.correlation.per_task_spearman` ranks
each column).

The rows an estimator fits (:func:`sample_rows`): for a dense target, every pixel of the
encoders' h×w output grid of every image, the source's C channels there against the target's
label there (:mod:`modelgif.reference.labels`: processed as the images were); for a vector
target (one label per image), every image, the source's whole output (C·h·w) against it. Per
resample, the images are the resample's distinct images (a repeated image would be its own
leave-one-out neighbour, which k-NN and the leave-one-out MSE would count as a perfect
prediction), and where they have more than ``max_samples`` rows, ``max_samples // (h·w)``
of them (dense targets; ``max_samples`` for vector targets) drawn without replacement from
``numpy.random.default_rng([sample_seed, b + 1])`` (``b = -1``: all images): whole images, so
that a scene's pixels are fitted together (the k-means segmentations' classes are one scene's
clusters); the same rows for every source and target. A target's real-valued columns
(``linear_mse``: also its one-hot class columns) that are constant on the rows are dropped
(they rank no source); a target left with none gets score 0 from every source (its column of
D is constant, so its rho is undefined, as for any constant column).

Per estimator: ``logme`` fits class labels as classes and real labels as they are;
``linear_mse`` is a regression estimator: class labels are regressed as the one-hot columns of
the classes present; ``knn`` votes (classes) or averages (real values) over its ``k`` nearest
rows, ``k`` capped at the rows less one where a sample has fewer (a vector target on a small
resample).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from .estimators import knn_table, linear_mse_table, logme_table


def _check_options(options: Mapping) -> None:
    m = options["max_samples"]
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 2:
        raise InputError(f"max_samples must be an integer >= 2, got {m!r}")
    s = options["sample_seed"]
    if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
        raise InputError(f"sample_seed must be an integer >= 0, got {s!r}")


def sample_rows(images: np.ndarray, per_image: int, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices into (N·per_image) rows, image by image: every row of the ``images`` (distinct
    indices), or of ``max(1, max_samples // per_image)`` of them drawn without replacement by
    ``rng`` where there are more rows than ``max_samples`` (images in increasing order)."""
    images = np.asarray(images, dtype=np.int64)
    keep = max(1, max_samples // per_image)
    if images.size > keep:
        images = np.sort(rng.choice(images, keep, replace=False))
    return (images[:, None] * per_image + np.arange(per_image)).ravel()


def _target(estimator: str, values: np.ndarray, kind: str) -> tuple[np.ndarray, str] | None:
    """The labels an estimator fits and their kind: classes as they are (``linear_mse``: their
    one-hot columns, as real values), real values without their constant columns; ``None``
    where no column is left."""
    if kind == "classification" and estimator == "linear_mse":
        values, kind = (values[:, None] == np.unique(values)[None, :]).astype(np.float64), "regression"
    if kind == "classification":
        return values, kind
    varying = np.ptp(values, axis=0) > 0
    return (values[:, varying], kind) if varying.any() else None


def estimator_matrix(estimator: str, features: Sequence[np.ndarray], labels: Sequence, images: np.ndarray,
                     options: Mapping, rng: np.random.Generator) -> np.ndarray:
    """D (K, K) on the distinct ``images``: ``D[i, j] = −score(source i, target j)`` (module doc).

    Args:
        features: K arrays (N, C, h, w), one h×w grid for all.
        labels: K :class:`modelgif.reference.labels.TaskLabels` at that grid.
        images: the image indices to fit on (distinct).
    """
    n, _, h, w = features[0].shape
    rows = {True: sample_rows(images, h * w, options["max_samples"], rng),
            False: sample_rows(images, 1, options["max_samples"], rng)}
    d = np.zeros((len(features), len(labels)))
    for dense in (True, False):  # the pixel rows' targets, then the image rows' (each: one table)
        columns, targets = [], []
        for j, lab in enumerate(labels):
            if lab.dense != dense:
                continue
            if dense:
                flat = lab.values.reshape(n * h * w) if lab.kind == "classification" else \
                    lab.values.transpose(0, 2, 3, 1).reshape(n * h * w, -1)
            else:
                flat = lab.values
            target = _target(estimator, flat[rows[dense]], lab.kind)
            if target is not None:
                columns.append(j)
                targets.append(target)
        if not columns:
            continue
        x = [(f.transpose(0, 2, 3, 1).reshape(n * h * w, -1) if dense else f.reshape(n, -1))[rows[dense]]
             for f in features]  # (rows, C) at each pixel, or (rows, C·h·w) per image
        if estimator == "logme":
            table = logme_table(x, targets)
        elif estimator == "knn":
            table = knn_table(x, targets, min(options["k"], len(rows[dense]) - 1))
        else:
            table = linear_mse_table(x, [values for values, _ in targets], options["alpha"])
        d[:, columns] = -table
    return d


def _distances(estimator: str, inputs, indices, *, options, feature_shapes, progress):
    _check_options(options)
    if feature_shapes is None or len({tuple(s[1:]) for s in feature_shapes}) != 1:
        raise InputError(f"{estimator}: every model's features need one h×w output grid (the labels' grid); "
                         f"got shapes {feature_shapes}")
    features = [np.asarray(f, dtype=np.float64).reshape(-1, *shape) for (f, _), shape in zip(inputs, feature_shapes)]
    labels = [lab for _, lab in inputs]
    n = features[0].shape[0]
    seed = options["sample_seed"]
    full = estimator_matrix(estimator, features, labels, np.arange(n), options, np.random.default_rng([seed, 0]))
    samples = np.stack([estimator_matrix(estimator, features, labels, np.unique(rows), options,
                                         np.random.default_rng([seed, b + 1]))
                        for b, rows in enumerate(tqdm(indices, desc=estimator, unit="resample", disable=not progress))])
    return full, samples


def logme_distances(inputs, indices, *, options, feature_shapes, device=None, progress=False):
    """``compute`` of method ``logme`` (:class:`modelgif.compare.registry.Method`): K ``(features
    (N, C·h·w), TaskLabels)`` pairs → (D (K, K), samples (B, K, K)); ``device`` is unused (numpy)."""
    return _distances("logme", inputs, indices, options=options, feature_shapes=feature_shapes, progress=progress)


def linear_mse_distances(inputs, indices, *, options, feature_shapes, device=None, progress=False):
    """``compute`` of method ``linear_mse``, as :func:`logme_distances`."""
    return _distances("linear_mse", inputs, indices, options=options, feature_shapes=feature_shapes, progress=progress)


def knn_distances(inputs, indices, *, options, feature_shapes, device=None, progress=False):
    """``compute`` of method ``knn``, as :func:`logme_distances`."""
    return _distances("knn", inputs, indices, options=options, feature_shapes=feature_shapes, progress=progress)


__all__ = ["estimator_matrix", "knn_distances", "linear_mse_distances", "logme_distances", "sample_rows"]
