"""Figures and plot data: long-form tables for ``dvc plots`` (values and closeness ranks) and the
similarity tree."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from ..io.atomic import atomic_path, write_text


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


def closeness_ranks(matrix: np.ndarray, higher_is_closer: bool = False) -> np.ndarray:
    """For each target (column) j, the rank of every other source i by closeness: 1 = closest.

    Args:
        matrix: M (K, K), row = source, column = target: a distance (``higher_is_closer=False``)
            or an affinity, win rate (``True``); a loss is a distance here (lower: closer).

    Returns:
        float64 (K, K): ranks 1 … K−1 per column (ties share their mean rank), NaN on the
        diagonal (a model's rank for itself says nothing). Spearman's ρ of two matrices'
        columns is the correlation of these ranks, so two rank heatmaps show what ρ measures.
    """
    from scipy.stats import rankdata

    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"closeness_ranks needs a square matrix, got shape {m.shape}")
    k = m.shape[0]
    out = np.full((k, k), np.nan)
    for j in range(k):
        others = np.delete(np.arange(k), j)
        column = m[others, j]
        out[others, j] = rankdata(-column if higher_is_closer else column)
    return out


def ranked_long_csv(path: str | os.PathLike, matrix: np.ndarray, labels: Sequence[str], panel: str,
                    higher_is_closer: bool = False) -> None:
    """Write ``source,target,value,rank,panel,order_source,order_target`` (one row per cell;
    ``rank`` from :func:`closeness_ranks`, empty on the diagonal; ``panel`` names the matrix and
    its orientation, the heatmap's header; the orders keep the axes in ``labels``' order),
    atomically."""
    ranked_long_panels_csv(path, [(matrix, labels, panel, higher_is_closer)])


def ranked_long_panels_csv(path: str | os.PathLike, panels) -> None:
    """:func:`ranked_long_csv` of several matrices in one file, one ``panel`` each (``panels``:
    ``(matrix, labels, panel, higher_is_closer)`` tuples): the ``ranks`` template draws them as
    the rows of one figure (the ground-truth tables side by side in ``dvc plots show``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source", "target", "value", "rank", "panel", "order_source", "order_target"])
    for matrix, labels, panel, higher_is_closer in panels:
        ranks = closeness_ranks(matrix, higher_is_closer)
        for i, a in enumerate(labels):
            for j, b in enumerate(labels):
                w.writerow([a, b, repr(float(matrix[i, j])), "" if i == j else repr(float(ranks[i, j])), panel, i, j])
    write_text(path, buf.getvalue())


def similarity_tree(path: str | os.PathLike, distance: np.ndarray, labels: Sequence[str],
                    title: str = "ModelGiF similarity tree") -> None:
    """Dendrogram PNG of average-linkage clustering of a distance matrix (as the paper's figure).

    The distance axis spans the merge heights only (not 0 … max): pretrained encoders' distances
    lie close together (e.g. 0.98 … 0.999), and from 0 every merge would sit at one height, a
    flat comb. About 6 × 0.3·K inches at 100 dpi, so two fit side by side in ``dvc plots diff``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    d = (np.asarray(distance, dtype=np.float64) + np.asarray(distance).T) / 2
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(np.clip(d, 0, None), checks=False), method="average")
    heights = z[:, 2]
    lo, hi = float(heights.min()), float(heights.max())
    pad = 0.08 * (hi - lo) if hi > lo else max(0.05 * hi, 1e-12)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(labels) + 1.3))
    dendrogram(z, labels=list(labels), orientation="right", ax=ax, color_threshold=0.7 * hi,
               above_threshold_color="0.4", leaf_font_size=9)
    ax.set_xlim(max(lo - pad, 0.0), hi + pad)
    ax.set_xlabel(f"average-linkage distance (axis from {max(lo - pad, 0.0):.4g}, not 0)")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
