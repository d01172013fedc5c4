"""Where the package's data files are: read through ``importlib.resources``, so they are found
in a source checkout and in an installed wheel alike."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def data_dir(*parts: str) -> Path:
    """``modelgif/data/<parts…>`` of the imported package (a folder on disk: the package is
    installed unzipped, as pip installs wheels)."""
    return Path(str(importlib.resources.files("modelgif").joinpath("data", *parts)))


def taskonomy_tables_dir() -> Path:
    """The Taskonomy tables: the package data ``modelgif/data/taskonomy``. (No environment
    variable moves them: a table elsewhere is a zoo declaration's ``file``, which the pipeline
    fingerprints; see :mod:`modelgif.settings`.)"""
    return data_dir("taskonomy")


def mini_tables_dir() -> Path:
    """The mini-Taskonomy tables: in an installed wheel, the copy the build put at
    ``modelgif/data/mini/tables``; else (a source checkout) the canonical ``data/mini/tables``
    beside the package, which ``mini/dvc.yaml`` writes. No environment variable moves them."""
    packaged = data_dir("mini", "tables")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "data" / "mini" / "tables"
