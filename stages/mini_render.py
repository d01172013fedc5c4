"""Stage mini_render: render the mini-Taskonomy's train and test scenes.

    python stages/mini_render.py --n-train 2000 --n-test 500 --size 64 --out data/mini/build/scenes.json

Train scenes are seeds ``0 … n_train − 1``, test scenes the next ``n_test`` seeds; the
reference scenes of the ModelGiF pipeline (``zoo: mini``) are drawn from seeds 1 000 000 and
up, so none of them was seen in training or transfer. Writes ``scenes/train.npz`` and
``scenes/test.npz`` beside ``--out`` (0.7 GB, not tracked: a re-creatable cache) and the
summary ``--out`` (counts, size, the files' sha256; committed). The later stages depend on the
summary and re-render the scenes if they are missing (:func:`modelgif.mini.build.ensure_scenes`),
so a fresh clone's build is up to date without them.
"""

from __future__ import annotations

from pathlib import Path

import json

import typer
from _cli import clean_errors

from modelgif.io.atomic import write_text
from modelgif.mini.build import write_scenes


@clean_errors
def main(
    n_train: int = typer.Option(..., min=1, help="training scenes (seeds 0 … n_train − 1)"),
    n_test: int = typer.Option(..., min=1, help="test scenes (the next n_test seeds)"),
    size: int = typer.Option(64, min=16, help="image size in pixels (a multiple of 16)"),
    out: Path = typer.Option(Path("data/mini/build/scenes.json"), help="summary to write; the scenes go beside it"),
) -> None:
    if size % 16:
        raise ValueError(f"size must be a multiple of 16, got {size}")
    if out.suffix != ".json":
        raise ValueError(f"--out must be a .json summary, got {out}")
    summary = write_scenes(out.with_suffix(""), n_train, n_test, size)
    write_text(out, json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(main)
