"""The committed builds of the mini zoo: one per build seed, chosen by params ``mini.build``.

A build is ``mini/dvc.yaml`` run with ``mini/params.yaml`` ``seed: <b>``: its 17 encoders (initial
weights, batch orders and readout weights all drawn from the seed), its transfer tables (the mean
over its readout replicates, with each replicate's own table beside it) and its manifest. Build 0
is the zoo's canonical build, at the folders it always had; build ``b > 0`` sits beside it with the
suffix ``_seed<b>``::

    build 0   data/mini/encoders          data/mini/tables          data/manifests/mini_encoders.json
    build b   data/mini/encoders_seed<b>  data/mini/tables_seed<b>  data/manifests/mini_encoders_seed<b>.json

(plus ``data/mini/train_seed<b>`` and ``data/mini/transfer_seed<b>``, its training logs and
per-pair transfers, for provenance). ``tools/publish_mini_build.py`` copies a finished build there.
Paths are relative to the project root, as ``params.yaml`` gives them.

``mini.build`` chooses the encoders, their manifest, the tables (the zoo declarations'
``{mini_tables}``) and mini_random's initial weights together: ``mini.checkpoints.base_url``,
``manifest`` and ``random_seed`` left ``null`` follow it (:func:`resolve_mini_params`); set, they
override it (your own mirror of the encoders, say).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError

#: The builds committed to the repository (their seeds).
BUILDS = (0, 1, 2)


def check_build(value, where: str = "mini.build") -> int:
    """``value`` as a build number, or ``InputError`` naming ``where`` and the builds there are."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in BUILDS:
        raise InputError(f"params.yaml: '{where}' must be one of the committed mini builds "
                         f"{', '.join(map(str, BUILDS))}, got {value!r} (docs/mini-zoo.md: builds)")
    return value


def suffix(build: int) -> str:
    """The folders' suffix of ``build``: ``""`` for build 0, ``"_seed<b>"`` otherwise."""
    return "" if check_build(build) == 0 else f"_seed{build}"


def encoders_dir(build: int) -> str:
    """Folder of ``build``'s 17 encoder checkpoints, relative to the project root."""
    return f"data/mini/encoders{suffix(build)}"


def manifest_path(build: int) -> str:
    """``build``'s encoder manifest (file names and sha256), relative to the project root."""
    return f"data/manifests/mini_encoders{suffix(build)}.json"


def tables_dir(build: int) -> Path:
    """Folder of ``build``'s ground-truth tables (``<table>.json``, ``readouts/<table>_r<r>.json``):
    in an installed wheel the package's copy, else the checkout's ``data/mini/tables[_seed<b>]``."""
    from .._resources import mini_tables_dir

    root = mini_tables_dir()
    return root if build == 0 else root.with_name(f"{root.name}{suffix(build)}")


def other_build(build: int) -> int:
    """The build a table is compared with to see the encoder-retraining variability: the next one
    (build 0 → 1 → 2 → 0), so that every build has one other."""
    return BUILDS[(BUILDS.index(check_build(build)) + 1) % len(BUILDS)]


def selected_build(params: Mapping) -> int:
    """``params``' ``mini.build`` (0 where the params have no ``mini`` section), checked."""
    mini = params.get("mini") if isinstance(params, Mapping) else None
    value = mini.get("build", 0) if isinstance(mini, Mapping) else 0
    return check_build(value)


def resolve_mini_params(params: Mapping) -> dict:
    """A copy of ``params`` whose ``mini.checkpoints`` entries left ``null`` (or absent) are those
    of the build ``mini.build`` chooses: ``base_url`` its encoder folder, ``manifest`` its manifest,
    ``random_seed`` the build's own seed (mini_random: that build's initial weights). A params dict
    without a ``mini`` section is returned as a copy, unchanged."""
    out = copy.deepcopy(dict(params))
    mini = out.get("mini")
    if not isinstance(mini, dict):
        return out
    build = selected_build(out)
    section = mini.get("checkpoints")
    if section is None:
        section = mini["checkpoints"] = {}
    if not isinstance(section, dict):
        raise InputError(f"params.yaml: 'mini.checkpoints' must be a mapping, got {section!r}")
    defaults = {"base_url": encoders_dir(build), "manifest": manifest_path(build), "random_seed": build}
    for key, value in defaults.items():
        if section.get(key) is None:
            section[key] = value
    return out


__all__ = ["BUILDS", "check_build", "encoders_dir", "manifest_path", "other_build", "resolve_mini_params",
           "selected_build", "suffix", "tables_dir"]
