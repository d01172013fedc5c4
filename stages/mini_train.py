"""Stage mini_train: train one mini-Taskonomy encoder (with its task decoder) on the train scenes.

    python stages/mini_train.py normal --scenes data/mini/build/scenes.json --steps 3000 --batch-size 32 \
        --lr 0.001 --seed 0 --threads 1 --out data/mini/encoders/normal.pth --log data/mini/build/train/normal.json

Keeps the encoder only (:func:`modelgif.mini.zoo.save_encoder`); the log records the
training loss (every 100th step) and the test loss of encoder + decoder on the test scenes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import typer
from _cli import clean_errors

from modelgif.io.atomic import write_text
from modelgif.mini import zoo
from modelgif.mini.build import encoder_seed, ensure_scenes


@clean_errors
def main(
    task: str = typer.Argument(..., help="mini-Taskonomy task"),
    scenes: Path = typer.Option(Path("data/mini/build/scenes.json"), help="scenes summary from the render stage"),
    steps: int = typer.Option(..., min=1),
    batch_size: int = typer.Option(..., min=1),
    lr: float = typer.Option(..., min=0.0),
    seed: int = typer.Option(0, help="build seed (the encoder's own seed is derived from it and the task)"),
    threads: int = typer.Option(1, min=1, help="torch CPU threads (results are bit-identical for a fixed count)"),
    out: Path = typer.Option(..., help="encoder checkpoint to write"),
    log: Path = typer.Option(..., help="training log (JSON) to write"),
) -> None:
    zoo.task_spec(task)  # unknown task: clear error before any work
    torch.set_num_threads(threads)
    train, test = ensure_scenes(scenes)
    s = encoder_seed(task, seed)
    encoder, decoder, history = zoo.train_encoder(task, train, steps=steps, batch_size=batch_size, lr=lr, seed=s)
    test_loss = zoo.evaluate(encoder, decoder, task, test)
    typer.echo(f"{task}: train loss {history[0]:.4f} → {history[-1]:.4f}, test loss {test_loss:.4f}")
    record = {"task": task, "seed": s, "steps": steps, "test_loss": test_loss,
              "train_loss": {str(i): history[i] for i in range(0, len(history), 100)} | {str(len(history) - 1): history[-1]}}
    zoo.save_encoder(out, encoder)
    write_text(log, json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    typer.run(main)
