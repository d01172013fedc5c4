"""Stage mini_transfer: transfer from one source to every mini-Taskonomy target.

    python stages/mini_transfer.py normal --encoders data/mini/encoders --scenes data/mini/build/scenes.json \
        --steps 500 --batch-size 32 --lr 0.001 --seed 0 --threads 1 --out data/mini/transfer/normal.npz

The source is the frozen encoder ``<encoders>/<source>.pth``, or raw pixels for the source
``pixels``. For each target a fresh readout is trained on the train scenes
(:func:`modelgif.mini.build.transfer_row`); the output holds, per target, the loss of every
test image (float32; the tables stage turns them into mean losses and win rates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import typer
from _cli import clean_errors

from modelgif.io.atomic import atomic_path
from modelgif.mini.build import PIXELS, ensure_scenes, transfer_row
from modelgif.mini.scenes import TASK_LABELS
from modelgif.mini.zoo import load_mini_encoder, task_spec


@clean_errors
def main(
    source: str = typer.Argument(..., help=f"source task, or {PIXELS!r}"),
    encoders: Path = typer.Option(Path("data/mini/encoders"), help="folder of <task>.pth encoders"),
    scenes: Path = typer.Option(Path("data/mini/build/scenes.json"), help="scenes summary from the render stage"),
    steps: int = typer.Option(..., min=1),
    batch_size: int = typer.Option(..., min=1),
    lr: float = typer.Option(..., min=0.0),
    seed: int = typer.Option(0, help="build seed (each target's readout seed is derived from it)"),
    replicate: int = typer.Option(0, min=0, help="readout replicate: another readout seed, the encoders fixed"),
    threads: int = typer.Option(1, min=1, help="torch CPU threads"),
    out: Path = typer.Option(..., help="per-image test losses (.npz) to write"),
) -> None:
    encoder = None
    if source != PIXELS:
        task_spec(source)
        encoder = load_mini_encoder(encoders / f"{source}.pth")
    torch.set_num_threads(threads)
    train, test = ensure_scenes(scenes)
    row = transfer_row(encoder, train, test, TASK_LABELS, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                       replicate=replicate)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{t: v.astype(np.float32) for t, v in row.items()})
    typer.echo(f"{source}: " + ", ".join(f"{t} {v.mean():.4g}" for t, v in row.items()))


if __name__ == "__main__":
    typer.run(main)
