"""Stage mini_tables: the mini-Taskonomy's ground-truth tables and encoder manifest.

    python stages/mini_tables.py --transfer data/mini/transfer --encoders data/mini/encoders \
        --params mini/params.yaml --out data/mini/tables --manifest data/manifests/mini_encoders.json

Reads ``<transfer>/r<r>/<source>.npz`` for every task and ``pixels``, for each readout
replicate r the params' ``readout_replicates`` list (another readout seed, the encoders fixed);
writes, in the form of ``data/taskonomy/*.json`` (keys in Taskonomy's original names), the mean
over the replicates with each entry's standard error beside it (``standard_error``,
:func:`modelgif.mini.build.replicate_tables`):

* ``losses.json``: mean test loss of the readout, source × target (lower is better);
* ``wins_vs_pixels.json``: fraction of test images on which the source's readout beats the
  pixel readout of the same replicate (Taskonomy's ``wins_vs_pixels``; higher is better);
* ``readouts/<table>_r<r>.json``: each replicate's own table (the noise ceiling's input,
  :mod:`modelgif.score.ceiling`);

and the sha256 manifest of the encoders (the form of ``taskonomy_encoders.json``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
import yaml
from _cli import clean_errors

from modelgif.io.atomic import write_text
from modelgif.errors import InputError
from modelgif.mini.build import MAX_REPLICATES, read_transfer_rows, replicate_tables, table_json, write_manifest
from modelgif.mini.scenes import TASK_LABELS


@clean_errors
def main(
    transfer: Path = typer.Option(Path("data/mini/transfer"), help="folder of r<replicate>/<source>.npz"),
    encoders: Path = typer.Option(Path("data/mini/encoders"), help="folder of <task>.pth"),
    params: Path = typer.Option(Path("mini/params.yaml"), help="the build's params (its seed goes into the tables' source line)"),
    out: Path = typer.Option(Path("data/mini/tables"), help="folder for the tables"),
    manifest: Path = typer.Option(Path("data/manifests/mini_encoders.json"), help="encoder manifest to write"),
) -> None:
    p = yaml.safe_load(params.read_text()) or {}
    seed = int(p.get("seed", 0))
    reps = p.get("readout_replicates", [0])
    if not isinstance(reps, list) or not reps or len(set(reps)) != len(reps) or not all(
            isinstance(r, int) and not isinstance(r, bool) and 0 <= r < MAX_REPLICATES for r in reps):
        raise InputError(f"{params}: readout_replicates must be a list of distinct integers in 0 … "
                         f"{MAX_REPLICATES - 1}, got {reps!r}")
    tasks = list(TASK_LABELS)
    tables = replicate_tables([read_transfer_rows(transfer / f"r{r}") for r in reps], tasks)
    source = (f"modelgif mini-Taskonomy build (mini/dvc.yaml), seed {seed}, mean of {len(reps)} readout "
              f"replicate(s) {', '.join(map(str, reps))}")
    for name, (mean, se, stack) in tables.items():
        write_text(out / f"{name}.json", table_json(name, mean, tasks, source, se, len(reps)))
        for r, table in zip(reps, stack):
            write_text(out / "readouts" / f"{name}_r{r}.json",
                       table_json(name, table, tasks, f"modelgif mini-Taskonomy build, seed {seed}, readout replicate {r}"))
    write_manifest(manifest, encoders, tasks, source=source)
    wins = tables["wins_vs_pixels"][0]
    diag = np.diag(wins)
    typer.echo(f"own encoder beats pixels on {np.mean(diag > 0.5):.0%} of the targets "
               f"(median win rate {np.median(diag):.2f}); mean win rate of all sources {wins.mean():.2f}")


if __name__ == "__main__":
    typer.run(main)
