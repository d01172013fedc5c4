"""A zoo's ground-truth tables, as the correlate stage scores a distance against them.

:func:`ground_truth_tables` reads the tables a zoo's declaration lists (``ground_truth.tables``
of ``zoos/<zoo>.yaml``, :mod:`modelgif.zoo.spec`), those a params key selects where the
declaration names one (``ground_truth`` for taskonomy, ``mini.ground_truth`` for the mini
zoos), as (K, K) matrices in the distance matrix's order, with their orientation and, where the
declaration gives one, an independent replicate measurement of the same table (for the noise
ceiling). A zoo without ground truth gives no table.

:func:`degenerate_targets` finds the target columns that cannot rank their sources: constant,
or with more than ``max_tied_fraction`` of the sources tied at one value (params
``degenerate.max_tied_fraction``). Their Spearman ρ is noise or undefined, so they leave every
per-target mean, and the reason is written beside the scores; :attr:`GroundTruth.scored` is the
table the scores are computed on (those columns made constant, so every per-target statistic
is undefined there and left out, in the resamples as in the full data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..zoo.mini_builds import selected_build
from ..zoo.tasks import OLD_NAMES
from ..zoo.spec import TableSpec, ZooError, ZooSpec, load_zoo_spec, params_section, read_table, table_matrix


@dataclass(frozen=True)
class GroundTruth:
    """One ground-truth table of a zoo, as the correlate stage scores a distance against it.

    Attributes:
        name: the table's name (a metrics key).
        matrix: T, float64 (K, K), row = source model, column = target model, in the order asked.
        higher_is_closer: orientation: True for affinities and win rates (ρ < 0 against a
            distance is agreement), False for losses.
        replicate: an independent measurement of the same table (K, K) or None: the mini zoo's
            seed-1 build, Taskonomy's 1k-image transfers for a 16k table; for the noise ceiling.
        replicate_name: which table ``replicate`` is (its file's stem).
        excluded: target → why its column leaves the scores (:func:`degenerate_targets`), in
            the task order; empty where every column ranks its sources.
        tasks: the task order of the matrices.
        readouts: the table's readout replicates (R, K, K) (the same encoders, other readout
            seeds; ``matrix`` is their mean) or None: the noise ceiling's input.
    """

    name: str
    matrix: np.ndarray
    higher_is_closer: bool
    replicate: np.ndarray | None = None
    replicate_name: str | None = None
    excluded: dict = field(default_factory=dict)
    tasks: tuple = ()
    readouts: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        """T as the scores see it (K, K): the excluded targets' columns made constant (0), so
        their ρ, regret and NDCG are undefined and every per-target mean leaves them out."""
        return excluded_columns_constant(self.matrix, [self.tasks.index(t) for t in self.excluded])


#: Default of params ``degenerate.max_tied_fraction``.
MAX_TIED_FRACTION = 0.5


def degenerate_targets(matrix: np.ndarray, tasks, max_tied_fraction: float = MAX_TIED_FRACTION) -> dict:
    """The target columns of T (K, K) that cannot rank their sources, ``{task: {"reason",
    "largest_tie", "sources"}}`` in the task order.

    A column's sources are the K − 1 other tasks (its own entry is the self-transfer, not a
    candidate). It is degenerate where it is constant, or where its largest group of exactly
    equal values holds more than ``max_tied_fraction`` of the sources (a win rate of 0 or 1 for
    most sources: Spearman's ρ then ranks a handful of sources and is mostly noise). 1.0 keeps
    every column that is not constant."""
    t = np.asarray(matrix, dtype=np.float64)
    k = t.shape[0]
    if not 0.0 < float(max_tied_fraction) <= 1.0:
        raise ValueError(f"degenerate.max_tied_fraction must be in (0, 1], got {max_tied_fraction!r}")
    out = {}
    for j, task in enumerate(tasks):
        col = np.delete(t[:, j], j)
        values, counts = np.unique(col, return_counts=True)
        largest = int(counts.max())
        value = float(values[counts.argmax()])
        if largest == col.size:
            reason = f"constant: all {col.size} sources have {value:g}"
        elif largest >= 2 and largest > max_tied_fraction * col.size:  # a tie is two or more equal values
            reason = (f"{largest} of {col.size} sources tie at {value:g} (more than {max_tied_fraction:g} "
                      "of them: degenerate.max_tied_fraction)")
        else:
            continue
        out[task] = {"reason": reason, "largest_tie": largest, "sources": int(col.size)}
    return out


def excluded_columns_constant(matrix: np.ndarray, columns) -> np.ndarray:
    """A copy of T (K, K) with ``columns`` set to 0: constant, so undefined for every per-target score."""
    t = np.array(matrix, dtype=np.float64)
    t[:, list(columns)] = 0.0
    return t


def _matrix(spec: ZooSpec, file: Path, tasks) -> np.ndarray:
    keys = None
    if spec.taskonomy_names:
        unknown = [t for t in tasks if t not in OLD_NAMES]
        if unknown:
            raise ZooError(f"{spec.path}: {unknown[0]!r} has no Taskonomy name for the tables (ground_truth.names: taskonomy)")
        keys = [OLD_NAMES[t] for t in tasks]
    return table_matrix(read_table(file), tasks, keys, what=f"table {file}")


def _selected(params: dict, spec: ZooSpec) -> list[TableSpec]:
    if spec.select is None:
        return list(spec.tables.values())
    names = params_section(params, spec.select, spec)
    names = [names] if isinstance(names, str) else list(names or [])
    if not names:
        raise ValueError(f"params: '{spec.select}' must name at least one table (zoo {spec.name}: "
                         f"{', '.join(spec.tables)})")
    unknown = [n for n in map(str, names) if n not in spec.tables]
    if unknown:
        raise ValueError(f"unknown ground-truth table {unknown[0]!r}; valid tables: {', '.join(spec.tables)} "
                         f"(params '{spec.select}'; zoo {spec.name}, {spec.path})")
    return [spec.tables[str(n)] for n in names]


def max_tied_fraction(params: dict) -> float:
    """params ``degenerate.max_tied_fraction`` (default :data:`MAX_TIED_FRACTION`), checked."""
    section = params.get("degenerate") or {}
    if not isinstance(section, dict):
        raise ValueError(f"params: 'degenerate' must be a mapping (max_tied_fraction: 0.5), got {section!r}")
    value = section.get("max_tied_fraction", MAX_TIED_FRACTION)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"params: degenerate.max_tied_fraction must be a number in (0, 1], got {value!r}")
    return float(value)


def ground_truth_tables(params: dict, zoo: str, tasks) -> list[GroundTruth]:
    """``zoo``'s ground-truth tables (all it declares, or those its ``select`` key of
    ``params`` names), each as a (K, K) matrix over ``tasks``, with its degenerate target
    columns (:func:`degenerate_targets`, params ``degenerate.max_tied_fraction``);
    ``[]`` for a zoo without any.

    Raises:
        ValueError: the params name no table or an unknown one; a task is not a model of the
            zoo; a table lacks an entry (:class:`~modelgif.errors.MissingEntry`).
    """
    spec = load_zoo_spec(zoo, mini_build=selected_build(params))  # {mini_tables}: the build params mini.build chooses
    tasks = spec.check_models(tasks)
    limit = max_tied_fraction(params)
    tables = []
    for table in _selected(params, spec):
        if not table.file.is_file():
            raise ValueError(f"unknown ground-truth table {table.name!r}: no file {table.file} (zoo {spec.name}, {spec.path})")
        replicate = table.replicate if table.replicate is not None and table.replicate.is_file() else None
        rep = None if replicate is None else _matrix(spec, replicate, tasks)
        matrix = _matrix(spec, table.file, tasks)
        files = table.readout_files()
        readouts = np.stack([_matrix(spec, f, tasks) for f in files]) if files else None
        if readouts is not None and not np.allclose(readouts.mean(axis=0), matrix, rtol=1e-9, atol=1e-12):
            raise ValueError(f"{table.file} is not the mean of its readout replicates ({table.readouts}): "
                             "a table and its replicates from different builds (rerun the build's tables stage)")
        tables.append(GroundTruth(table.name, matrix, table.higher_is_closer, rep,
                                  None if replicate is None else replicate.stem,
                                  degenerate_targets(matrix, tasks, limit), tuple(tasks), readouts))
    return tables


__all__ = ["MAX_TIED_FRACTION", "GroundTruth", "degenerate_targets", "excluded_columns_constant", "ground_truth_tables",
           "max_tied_fraction"]
