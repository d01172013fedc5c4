"""Stage mini_render: render the mini-Taskonomy's train and test scenes.

    python stages/mini_render.py --n-train 2000 --n-test 500 --size 64 --out data/mini/build/scenes

Train scenes are seeds ``0 … n_train − 1``, test scenes the next ``n_test`` seeds; the
reference scenes of the ModelGiF pipeline (``zoo: mini``) are drawn from seeds 1 000 000 and
up, so none of them was seen in training or transfer. Writes ``train.npz`` and ``test.npz``
(:func:`modelgif.mini.build.save_scenes`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from _cli import clean_errors
from tqdm.auto import tqdm

from modelgif.mini.build import save_scenes
from modelgif.mini.scenes import render_scene


def render(seeds, size: int, desc: str) -> dict:
    import numpy as np

    rendered = [render_scene(s, size) for s in tqdm(seeds, desc=desc, unit="scene")]
    return {k: np.stack([r[k] for r in rendered]) for k in rendered[0]}


@clean_errors
def main(
    n_train: int = typer.Option(..., min=1, help="training scenes (seeds 0 … n_train − 1)"),
    n_test: int = typer.Option(..., min=1, help="test scenes (the next n_test seeds)"),
    size: int = typer.Option(64, min=16, help="image size in pixels (a multiple of 16)"),
    out: Path = typer.Option(Path("data/mini/build/scenes"), help="output folder"),
) -> None:
    if size % 16:
        raise ValueError(f"size must be a multiple of 16, got {size}")
    save_scenes(out / "train.npz", render(range(n_train), size, "render train"))
    save_scenes(out / "test.npz", render(range(n_train, n_train + n_test), size, "render test"))


if __name__ == "__main__":
    typer.run(main)
