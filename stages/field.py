"""Stage field: one task's ModelGiF gradient field over the reference set.

    python stages/field.py normal --checkpoint data/checkpoints/normal.pth \
        --reference data/reference/images.npy --target 1 --n-steps 50 --method gausslegendre \
        --baseline shuffled --seed 0 --cumulative true --dtype float16 --out data/fields/normal.npy

Settings that do not change the result come from the environment, so changing them
reruns nothing: ``MODELGIF_DEVICE`` (``auto`` = CUDA when present, else CPU; or ``cpu``,
``cuda``, ``cuda:1``) and ``MODELGIF_BATCH_SIZE`` (path points per pass; default 1024 on
CUDA, 128 on the CPU).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import typer
from _cli import clean_errors, parse_bool
from tqdm.auto import tqdm

from modelgif.baselines import make_baselines
from modelgif.field import iter_gradient_field
from modelgif.reference import load_reference_images
from modelgif.storage import FieldWriter
from modelgif.quadrature import check_method
from modelgif.targets import check_target
from modelgif.taskonomy import load_encoder, target_is_void


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA if available else CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise typer.BadParameter(f"unknown device {device!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter(f"device {device!r} asked for, but CUDA is not available")
    return dev


@clean_errors
def main(
    task: str = typer.Argument(..., help="Taskonomy task whose encoder to use"),
    checkpoint: Path = typer.Option(..., help="encoder checkpoint (from fetch_checkpoint)"),
    reference: Path = typer.Option(Path("data/reference/images.npy"), help="reference images (from fetch_reference)"),
    target: str = typer.Option("1", help="target: 1, 5 or 6"),
    n_steps: int = typer.Option(50, help="path steps S"),
    method: str = typer.Option("gausslegendre", help="quadrature rule"),
    baseline: str = typer.Option("shuffled", help="shuffled or zero"),
    seed: int = typer.Option(0, help="seed of the shuffled baseline"),
    cumulative: str = typer.Option("true", help="true: cumulative field; false: per-step"),
    dtype: str = typer.Option("float16", help="storage dtype: float16 or float32"),
    out: Path = typer.Option(..., help="output .npy"),
    device: str = typer.Option("auto", envvar="MODELGIF_DEVICE", help="auto, cpu, cuda, cuda:N"),
    batch_size: int = typer.Option(0, envvar="MODELGIF_BATCH_SIZE", help="path points per pass (0: by device)"),
) -> None:
    dev = resolve_device(device)
    batch = batch_size or (1024 if dev.type == "cuda" else 128)
    model = load_encoder(task, checkpoint, map_location=dev)
    images = load_reference_images(reference).to(dev)
    baselines = make_baselines(images, baseline, seed)
    n, _, h, w = images.shape
    check_method(method)
    if target_is_void(task, check_target(target)):
        # Exactly zero in exact arithmetic; store that rather than float rounding noise.
        typer.echo(f"warning: target {target} is void for {task} (output GroupNorm: Σ f is constant); "
                   "its field is identically zero and its rho will be undefined", err=True)
        chunks = iter([(0, torch.zeros(n, n_steps, h * w))])
    else:
        chunks = iter_gradient_field(model, images, baselines, target=target, n_steps=n_steps, method=method,
                                     cumulative=parse_bool(cumulative, "--cumulative"), batch_size=batch)
    t0 = time.perf_counter()
    with FieldWriter(out, n, n_steps, h * w, dtype=dtype) as writer, \
            tqdm(total=n, unit="img", desc=f"field {task} ({dev})") as bar:
        for start, chunk in chunks:
            writer.write(start, chunk)
            bar.update(chunk.shape[0])
            bar.set_postfix(points_per_s=f"{bar.n * n_steps / (time.perf_counter() - t0):.1f}")
    typer.echo(f"{task}: field {n}×{n_steps}×{h * w} ({dtype}) -> {out}")


if __name__ == "__main__":
    typer.run(main)
