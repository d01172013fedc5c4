"""A zoo's ground-truth tables, as the correlate stage scores a distance against them.

:func:`ground_truth_tables` reads the tables ``params.yaml`` names for a zoo (``ground_truth``
for taskonomy, ``mini.ground_truth`` for the mini zoos) as (K, K) matrices in the distance
matrix's order, with their orientation and, where one exists, an independent replicate
measurement of the same table (for the noise ceiling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .correlation import higher_is_closer
from .taskonomy import load_ground_truth
from .zoos import ground_truth_dir, is_mini, zoo_params


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
        replicate_name: which table ``replicate`` is.
    """

    name: str
    matrix: np.ndarray
    higher_is_closer: bool
    replicate: np.ndarray | None = None
    replicate_name: str | None = None


def _replicate_name(zoo: str, name: str, root: Path) -> tuple[str | None, Path | None]:
    if is_mini(zoo):
        other = root.parent / f"{root.name}_seed1"
        return (name, other) if (other / f"{name}.json").is_file() else (None, None)
    other = f"{name.removesuffix('_16k')}_1k"
    return (other, None) if other != name and (root / f"{other}.json").is_file() else (None, None)


def ground_truth_tables(params: dict, zoo: str, tasks) -> list[GroundTruth]:
    """``zoo``'s ground-truth tables named in ``params`` (``ground_truth`` for taskonomy,
    ``mini.ground_truth`` for the mini zoos), each as a (K, K) matrix over ``tasks``.

    Raises:
        ValueError: the params name no table, or an unknown one.
    """
    names = zoo_params(params, zoo, "ground_truth")
    names = [names] if isinstance(names, str) else list(names or [])
    if not names:
        where = "ground_truth" if zoo == "taskonomy" else "mini.ground_truth"
        raise ValueError(f"params: '{where}' must name at least one table")
    root = ground_truth_dir(zoo)
    tables = []
    for name in map(str, names):
        rep_name, rep_root = _replicate_name(zoo, name, root)
        rep = None if rep_name is None else load_ground_truth(rep_name, tasks, rep_root if is_mini(zoo) else None)
        tables.append(GroundTruth(name, load_ground_truth(name, tasks, root if is_mini(zoo) else None),
                                  higher_is_closer(name), rep, rep_name))
    return tables


__all__ = ["GroundTruth", "ground_truth_tables"]
