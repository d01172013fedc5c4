"""Stage mini_tables: the mini-Taskonomy's ground-truth tables and encoder manifest.

    python stages/mini_tables.py --transfer data/mini/transfer --encoders data/mini/encoders \
        --params mini/params.yaml --out data/mini/tables --manifest data/manifests/mini_encoders.json

Reads ``<transfer>/<source>.npz`` for every task and ``pixels``; writes, in the form of
``data/taskonomy/*.json`` (keys in Taskonomy's original names):

* ``losses.json``: mean test loss of the readout, source × target (lower is better);
* ``wins_vs_pixels.json``: fraction of test images on which the source's readout beats the
  pixel readout (Taskonomy's ``wins_vs_pixels``; higher is better);

and the sha256 manifest of the encoders (the form of ``taskonomy_encoders.json``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
import yaml
from _cli import clean_errors

from modelgif.io.atomic import write_text
from modelgif.mini.build import loss_matrix, read_transfer_rows, table_json, wins_vs_pixels, write_manifest
from modelgif.mini.scenes import TASK_LABELS


@clean_errors
def main(
    transfer: Path = typer.Option(Path("data/mini/transfer"), help="folder of <source>.npz"),
    encoders: Path = typer.Option(Path("data/mini/encoders"), help="folder of <task>.pth"),
    params: Path = typer.Option(Path("mini/params.yaml"), help="the build's params (its seed goes into the tables' source line)"),
    out: Path = typer.Option(Path("data/mini/tables"), help="folder for the tables"),
    manifest: Path = typer.Option(Path("data/manifests/mini_encoders.json"), help="encoder manifest to write"),
) -> None:
    seed = int((yaml.safe_load(params.read_text()) or {}).get("seed", 0))
    rows = read_transfer_rows(transfer)
    tasks = list(TASK_LABELS)
    source = f"modelgif mini-Taskonomy build (mini/dvc.yaml), seed {seed}"
    losses, wins = loss_matrix(rows, tasks), wins_vs_pixels(rows, tasks)
    write_text(out / "losses.json", table_json("losses", losses, tasks, source))
    write_text(out / "wins_vs_pixels.json", table_json("wins_vs_pixels", wins, tasks, source))
    write_manifest(manifest, encoders, tasks, source=source)
    diag = np.diag(wins)
    typer.echo(f"own encoder beats pixels on {np.mean(diag > 0.5):.0%} of the targets "
               f"(median win rate {np.median(diag):.2f}); mean win rate of all sources {wins.mean():.2f}")


if __name__ == "__main__":
    typer.run(main)
