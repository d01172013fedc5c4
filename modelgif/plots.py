"""Figures and plot data: long-form tables for ``dvc plots`` and the similarity tree."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from ._atomic import atomic_path, write_text


def matrix_csv(path: str | os.PathLike, matrix: np.ndarray, labels: Sequence[str]) -> None:
    """Write a labelled K×K matrix as CSV (first column and header: the labels), atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", *labels])
    for label, row in zip(labels, matrix):
        w.writerow([label, *(repr(float(v)) for v in row)])
    write_text(path, buf.getvalue())


def read_matrix_csv(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a matrix written by :func:`matrix_csv`: ``(matrix (K, K), labels)``.

    Raises:
        ValueError: naming ``path`` and what is wrong (empty, not text, ragged, not numbers).
    """
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a CSV text file: {e}") from e
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{path} holds no matrix: expected a header row 'task,<label>,…' and one row per label")
    labels = rows[0][1:]
    if [r[0] for r in rows[1:]] != labels:
        raise ValueError(f"{path}: row labels do not match the header")
    for r in rows[1:]:
        if len(r) != len(labels) + 1:
            raise ValueError(f"{path}: row {r[0]} has {len(r) - 1} values, expected {len(labels)}")
    try:
        matrix = np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    if not np.isfinite(matrix).all():
        raise ValueError(f"{path} has NaN or infinite values")
    return matrix, labels


def long_csv(path: str | os.PathLike, matrix: np.ndarray, labels: Sequence[str], value: str) -> None:
    """Write a K×K matrix as long-form CSV ``source,target,<value>`` (one row per cell), atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source", "target", value])
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            w.writerow([a, b, repr(float(matrix[i, j]))])
    write_text(path, buf.getvalue())


def similarity_tree(path: str | os.PathLike, distance: np.ndarray, labels: Sequence[str],
                    title: str = "ModelGiF similarity tree") -> None:
    """Dendrogram PNG of average-linkage clustering of a distance matrix (as the paper's figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    d = (np.asarray(distance, dtype=np.float64) + np.asarray(distance).T) / 2
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(np.clip(d, 0, None), checks=False), method="average")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
    dendrogram(z, labels=list(labels), orientation="left", ax=ax, color_threshold=0)
    ax.set_xlabel("distance (average linkage)")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
