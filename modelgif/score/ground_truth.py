"""A zoo's ground-truth tables, as the correlate stage scores a distance against them.

:func:`ground_truth_tables` reads the tables a zoo's declaration lists (``ground_truth.tables``
of ``zoos/<zoo>.yaml``, :mod:`modelgif.zoo.spec`), those a params key selects where the
declaration names one (``ground_truth`` for taskonomy, ``mini.ground_truth`` for the mini
zoos), as (K, K) matrices in the distance matrix's order, with their orientation and, where the
declaration gives one, an independent replicate measurement of the same table (for the noise
ceiling). A zoo without ground truth gives no table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """

    name: str
    matrix: np.ndarray
    higher_is_closer: bool
    replicate: np.ndarray | None = None
    replicate_name: str | None = None


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


def ground_truth_tables(params: dict, zoo: str, tasks) -> list[GroundTruth]:
    """``zoo``'s ground-truth tables (all it declares, or those its ``select`` key of
    ``params`` names), each as a (K, K) matrix over ``tasks``; ``[]`` for a zoo without any.

    Raises:
        ValueError: the params name no table or an unknown one; a task is not a model of the
            zoo; a table lacks an entry (:class:`~modelgif.errors.MissingEntry`).
    """
    spec = load_zoo_spec(zoo)
    tasks = spec.check_models(tasks)
    tables = []
    for table in _selected(params, spec):
        if not table.file.is_file():
            raise ValueError(f"unknown ground-truth table {table.name!r}: no file {table.file} (zoo {spec.name}, {spec.path})")
        replicate = table.replicate if table.replicate is not None and table.replicate.is_file() else None
        rep = None if replicate is None else _matrix(spec, replicate, tasks)
        tables.append(GroundTruth(table.name, _matrix(spec, table.file, tasks), table.higher_is_closer, rep,
                                  None if replicate is None else replicate.stem))
    return tables


__all__ = ["GroundTruth", "ground_truth_tables"]
