"""Building the mini-Taskonomy: stored scenes, seeds, transfer rows and the ground-truth tables.

The build (``mini/dvc.yaml``) renders train and test scenes (:func:`save_scenes`), trains one
encoder per task (:func:`modelgif.mini.zoo.train_encoder`, seed :func:`encoder_seed`), measures
transfer from every source (each encoder, and raw pixels) to every target
(:func:`transfer_row`: a fresh readout per target on a fixed budget, its loss on every test
image) and assembles the tables (:func:`loss_matrix`, :func:`wins_vs_pixels`,
:func:`table_json`) in the form of Taskonomy's published ones, so
:func:`modelgif.zoo.taskonomy.load_ground_truth` reads them unchanged.

Seeds: encoder ``i`` of :data:`TASK_LABELS` is initialised and trained with
``encoder_seed(task, seed) = 1000 · seed + i``, so no two encoders share initial weights;
every readout for target ``j`` uses ``readout_seed(target, seed) = 1000 · seed + 500 + j``
whatever its source, so the sources of one target are compared from the same initial decoder
and batch order (a paired comparison). Readout replicate ``r`` (another readout seed, the
encoders fixed: what the noise ceiling is measured from) adds ``20 · r``:
``readout_seed(target, seed, r) = 1000 · seed + 500 + 20 · r + j`` (``r`` < 25, so no replicate
meets another build's seeds); replicate 0 is the build's first readout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path, write_text
from ..io.download import sha256_file
from .encoder import encoder_seed  # noqa: F401 - the build's seeds (the encoder's own module defines it)
from .scenes import TASK_LABELS, render_scenes

#: Labels :func:`save_scenes` does not store: exact copies of ``rgb``.
_COPIES = ("autoencoding", "denoising")
_INT_LABELS = ("segment_unsup2d", "segment_unsup25d", "segment_semantic")
#: The pixel baseline's name as a transfer source.
PIXELS = "pixels"


#: Readout replicates per build at most (their seeds stay below the next build's).
MAX_REPLICATES = 25


def readout_seed(target: str, seed: int, replicate: int = 0) -> int:
    """Seed of every readout for ``target`` in a build with ``seed``, readout replicate
    ``replicate`` (0 ≤ replicate < :data:`MAX_REPLICATES`; the same for all sources)."""
    if not 0 <= int(replicate) < MAX_REPLICATES:
        raise ValueError(f"readout replicate {replicate} is not in 0 … {MAX_REPLICATES - 1}")
    return 1000 * int(seed) + 500 + 20 * int(replicate) + TASK_LABELS.index(target)


def save_scenes(path: str | os.PathLike, data: Mapping[str, np.ndarray]) -> Path:
    """Write :func:`render_scenes` output to one ``.npz`` atomically: the two copies of ``rgb``
    are left out and the segmentations stored as uint8 (ids < 256), everything else as is."""
    arrays = {}
    for k, v in data.items():
        if k in _COPIES:
            if not np.array_equal(v, data["rgb"]):
                raise ValueError(f"{k} is not a copy of rgb")
            continue
        if k in _INT_LABELS:
            if v.min() < 0 or v.max() > 255:
                raise ValueError(f"{k} has ids outside 0-255")
            v = v.astype(np.uint8)
        arrays[k] = v
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return Path(path)


def load_scenes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read what :func:`save_scenes` wrote, back in :func:`render_scenes`'s form (int64 ids,
    ``autoencoding``/``denoising`` restored as ``rgb``)."""
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    missing = ({"rgb", "rgb_noisy"} | set(TASK_LABELS)) - set(_COPIES) - set(data)
    if missing:
        raise ValueError(f"{path} is not a scenes file: it lacks {', '.join(sorted(missing))}")
    for k in _INT_LABELS:
        data[k] = data[k].astype(np.int64)
    for k in _COPIES:
        data[k] = data["rgb"]
    return data


def render_split(first_seed: int, n: int, size: int, desc: str = "render", progress: bool = True) -> dict:
    """:func:`render_scenes` of seeds ``first_seed … first_seed + n − 1``, with a progress bar."""
    seeds = range(int(first_seed), int(first_seed) + int(n))
    if progress:
        from tqdm.auto import tqdm

        seeds = tqdm(seeds, desc=desc, unit="scene")
    return render_scenes(seeds, size)


def write_scenes(folder: str | os.PathLike, n_train: int, n_test: int, size: int, progress: bool = True) -> dict:
    """Render the train scenes (seeds ``0 … n_train − 1``) and the test scenes (the next
    ``n_test``) into ``<folder>/train.npz`` and ``test.npz``; return their summary
    ``{"n_train", "n_test", "size", "sha256": {"train", "test"}}`` (what the build records,
    :func:`ensure_scenes`)."""
    folder = Path(folder)
    summary = {"n_train": int(n_train), "n_test": int(n_test), "size": int(size), "sha256": {}}
    for split, first, n in (("train", 0, n_train), ("test", n_train, n_test)):
        path = save_scenes(folder / f"{split}.npz", render_split(first, n, size, f"render {split}", progress))
        summary["sha256"][split] = sha256_file(path)
    return summary


def ensure_scenes(summary_path: str | os.PathLike, progress: bool = True) -> tuple[dict, dict]:
    """The (train, test) scenes a build's summary JSON describes (written beside it by the
    render stage, in ``<summary stem>/``): read if their sha256 matches the summary, else
    rendered again (the renderer is deterministic) and checked. ``ValueError`` if a fresh
    rendering does not match the recorded sha256 (another renderer or numpy)."""
    summary_path = Path(summary_path)
    summary = json.loads(summary_path.read_text())
    folder = summary_path.with_suffix("")
    want = summary["sha256"]
    if not all((folder / f"{k}.npz").is_file() and sha256_file(folder / f"{k}.npz") == want[k] for k in want):
        got = write_scenes(folder, summary["n_train"], summary["n_test"], summary["size"], progress)["sha256"]
        if got != want:
            raise ValueError(f"the scenes rendered here differ from those recorded in {summary_path} "
                             f"(sha256 {got} vs {want}): another renderer or numpy version")
    return load_scenes(folder / "train.npz"), load_scenes(folder / "test.npz")


def transfer_row(encoder, train: Mapping, test: Mapping, targets: Sequence[str] = TASK_LABELS, *, steps: int,
                 batch_size: int, lr: float, seed: int, replicate: int = 0,
                 progress: bool = True) -> dict[str, np.ndarray]:
    """Transfer from one frozen source (an encoder, or ``None`` for pixels) to each target.

    Returns target → the test loss of each test image, float64 (N_test,), of a readout
    trained by :func:`modelgif.mini.zoo.train_readout` with ``readout_seed(target, seed, replicate)``.
    """
    from .zoo import train_readout

    out = {}
    it = targets
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(targets, desc="transfer", unit="target")
    for target in it:
        out[target] = train_readout(encoder, target, train, test, steps=steps, batch_size=batch_size, lr=lr,
                                    seed=readout_seed(target, seed, replicate), per_image=True)
    return out


def read_transfer_rows(folder: str | os.PathLike, sources: Sequence[str] = (*TASK_LABELS, PIXELS)) -> dict:
    """Read ``<folder>/<source>.npz`` (what the transfer stage writes) for every source:
    source → target → per-image test losses, float64."""
    rows = {}
    for source in sources:
        path = Path(folder) / f"{source}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"no transfer measurements {path}")
        with np.load(path) as f:
            rows[source] = {k: f[k].astype(np.float64) for k in f.files}
    return rows


def _check_rows(rows: Mapping[str, Mapping[str, np.ndarray]], sources: Sequence[str], targets: Sequence[str]):
    for s in sources:
        if s not in rows:
            raise KeyError(f"no transfer measurements from source {s!r}")
        for t in targets:
            if t not in rows[s]:
                raise KeyError(f"no transfer measurement {s} → {t}")
            if not np.isfinite(rows[s][t]).all():
                raise ValueError(f"transfer {s} → {t} has non-finite test losses")


def loss_matrix(rows: Mapping[str, Mapping[str, np.ndarray]], tasks: Sequence[str] = TASK_LABELS) -> np.ndarray:
    """L[i, j] = mean test loss of the readout from source ``tasks[i]`` to target ``tasks[j]``
    (float64, K × K; lower is better; comparable only within a column)."""
    _check_rows(rows, tasks, tasks)
    return np.array([[float(np.mean(rows[s][t])) for t in tasks] for s in tasks])


def wins_vs_pixels(rows: Mapping[str, Mapping[str, np.ndarray]], tasks: Sequence[str] = TASK_LABELS) -> np.ndarray:
    """W[i, j] = fraction of test images on which the readout from ``tasks[i]`` has a lower
    loss for target ``tasks[j]`` than the readout from raw pixels (ties count one half):
    Taskonomy's ``wins_vs_pixels``. Needs ``rows[PIXELS]``."""
    _check_rows(rows, list(tasks) + [PIXELS], tasks)
    out = np.empty((len(tasks), len(tasks)))
    for i, s in enumerate(tasks):
        for j, t in enumerate(tasks):
            a, b = np.asarray(rows[s][t]), np.asarray(rows[PIXELS][t])
            if a.shape != b.shape:
                raise ValueError(f"{s} → {t} has {a.shape[0]} test losses, pixels → {t} has {b.shape[0]}")
            out[i, j] = float(np.mean((a < b) + 0.5 * (a == b)))
    return out


#: The build's tables: name → how one readout replicate's per-image losses give it.
TABLES = {"losses": loss_matrix, "wins_vs_pixels": wins_vs_pixels}


def replicate_tables(replicates: Sequence[Mapping], tasks: Sequence[str] = TASK_LABELS) -> dict:
    """The tables of R readout replicates (each :func:`read_transfer_rows` of one readout seed,
    the encoders fixed): ``{name: (mean (K, K), standard_error (K, K), replicates (R, K, K))}``
    for every table of :data:`TABLES`. The published table is the mean over replicates; the
    standard error of each entry is their standard deviation (ddof 1) / √R (NaN for R = 1)."""
    if not replicates:
        raise ValueError("no readout replicate to make tables of")
    out = {}
    for name, fn in TABLES.items():
        stack = np.stack([fn(rows, tasks) for rows in replicates])
        r = stack.shape[0]
        se = stack.std(axis=0, ddof=1) / np.sqrt(r) if r > 1 else np.full(stack.shape[1:], np.nan)
        out[name] = (stack.mean(axis=0), se, stack)
    return out


def table_json(name: str, matrix: np.ndarray, tasks: Sequence[str], source: str,
               standard_error: np.ndarray | None = None, replicates: int | None = None) -> str:
    """A K × K matrix as Taskonomy-format JSON (``{"name", "source", "table": {"<old>__<old>":
    value}}``, keys in Taskonomy's original names, as in ``data/taskonomy``), with, for a mean
    over readout replicates, ``"replicates"`` (R) and ``"standard_error"`` keyed like ``table``."""
    from ..zoo.taskonomy import OLD_NAMES

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(tasks), len(tasks)):
        raise ValueError(f"matrix {matrix.shape} does not match {len(tasks)} tasks")
    keys = [(i, j, f"{OLD_NAMES[a]}__{OLD_NAMES[b]}") for i, a in enumerate(tasks) for j, b in enumerate(tasks)]
    record = {"name": name, "source": source, "table": {key: float(matrix[i, j]) for i, j, key in keys}}
    if replicates is not None:
        record["replicates"] = int(replicates)
    if standard_error is not None:
        se = np.asarray(standard_error, dtype=np.float64)
        record["standard_error"] = {key: (float(se[i, j]) if np.isfinite(se[i, j]) else None) for i, j, key in keys}
    return json.dumps(record, indent=1) + "\n"


def write_manifest(path: str | os.PathLike, encoders: str | os.PathLike, tasks: Sequence[str] = TASK_LABELS,
                   source: str = "") -> dict:
    """Write ``{"source", "encoders": {task: {"file", "sha256"}}}`` for ``<encoders>/<task>.pth``
    (the form of ``data/manifests/taskonomy_encoders.json``) atomically; return it."""
    entries = {}
    for task in tasks:
        f = Path(encoders) / f"{task}.pth"
        if not f.is_file():
            raise FileNotFoundError(f"no encoder checkpoint {f}")
        entries[task] = {"file": f.name, "sha256": sha256_file(f)}
    manifest = {"source": source, "encoders": entries}
    write_text(path, json.dumps(manifest, indent=1) + "\n")
    return manifest


__all__ = ["MAX_REPLICATES", "PIXELS", "encoder_seed", "ensure_scenes", "load_scenes", "read_transfer_rows", "render_split", "replicate_tables", "TABLES", "write_scenes", "loss_matrix", "readout_seed", "save_scenes", "table_json",
           "transfer_row", "wins_vs_pixels", "write_manifest"]
