"""Stage field: one task's ModelGiF gradient field over the reference set.

    python stages/field.py normal --checkpoint data/checkpoints/normal.pth \
        --reference data/reference/images.npy --target 1 --n-steps 50 --method gausslegendre \
        --baseline shuffled --seed 0 --cumulative true --dtype float16 --precision float32 \
        --sketch-dim 0 --sketch-seed 0 --out data/fields/normal.npy

``--precision`` (float32 | tf32 | bf16) and ``--sketch-dim`` (0 = exact; d > 0 stores every
row projected to d values) change the result, so they come from params (``field:``). While
one chunk of images is computed, the previous one is copied to the host and written by a
background thread (:func:`modelgif.field.write_chunks`). On the CPU the process keeps freed
memory for reuse (:func:`modelgif.field.keep_freed_cpu_memory`).

Settings that do not change the result come from the environment, so changing them
reruns nothing: ``MODELGIF_DEVICE`` (``auto`` = CUDA when present, else CPU; or ``cpu``,
``cuda``, ``cuda:1``) and ``MODELGIF_BATCH_SIZE`` (path points per pass; default 1024 on
CUDA, 128 on the CPU: :func:`modelgif.field.default_batch_size`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import typer
from _cli import clean_errors, parse_bool
from tqdm.auto import tqdm

from modelgif.baselines import make_baselines
from modelgif.errors import check_output_file
from modelgif.field import (check_precision, default_batch_size, iter_gradient_field, keep_freed_cpu_memory,
                            write_chunks)
from modelgif.reference import load_reference_images
from modelgif.provenance import field_record, file_sha256, record_path, write_record
from modelgif.storage import FieldWriter, storage_dtype
from modelgif.quadrature import check_n_steps
from modelgif.sketch import check_sketch_dim
from modelgif.targets import check_target
from modelgif.zoos import check_zoo, load_zoo_encoder, target_is_void


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


@clean_errors(outputs=("out",))
def main(
    task: str = typer.Argument(..., help="task whose encoder to use"),
    checkpoint: Path = typer.Option(..., help="encoder checkpoint (from fetch_checkpoint)"),
    reference: Path = typer.Option(Path("data/reference/images.npy"), help="reference images (from fetch_reference)"),
    target: str = typer.Option("1", help="target: 1, 5 or 6"),
    n_steps: int = typer.Option(50, help="path steps S"),
    method: str = typer.Option("gausslegendre", help="quadrature rule"),
    baseline: str = typer.Option("shuffled", help="shuffled or zero"),
    seed: int = typer.Option(0, help="seed of the shuffled baseline"),
    cumulative: str = typer.Option("true", help="true: cumulative field; false: per-step"),
    dtype: str = typer.Option("float16", help="storage dtype: float16 or float32"),
    precision: str = typer.Option("float32", help="arithmetic: float32, tf32 (CUDA) or bf16"),
    sketch_dim: int = typer.Option(0, help="0: exact field; d > 0: rows sketched to d values"),
    sketch_seed: int = typer.Option(0, help="seed of the sketch projection (same for every task)"),
    out: Path = typer.Option(..., help="output .npy"),
    zoo: str = typer.Option("taskonomy", help="taskonomy, mini or mini_random: which encoder architecture to load"),
    device: str = typer.Option("auto", envvar="MODELGIF_DEVICE", help="auto, cpu, cuda, cuda:N"),
    batch_size: int = typer.Option(0, envvar="MODELGIF_BATCH_SIZE", help="path points per pass (0: by device)"),
) -> None:
    check_zoo(zoo)
    check_precision(precision)
    check_sketch_dim(sketch_dim)
    check_n_steps(n_steps, method)
    check_target(target)
    storage_dtype(1, dtype)  # a valid storage dtype
    check_output_file(out)
    record_path(out).unlink(missing_ok=True)  # no stale record beside a field this run may not finish
    dev = resolve_device(device)
    batch = batch_size or default_batch_size(dev)
    if dev.type == "cpu":
        keep_freed_cpu_memory()  # no page faults for every pass's activations (a one-shot process)
    model = load_zoo_encoder(zoo, task, checkpoint, map_location=dev)
    images = load_reference_images(reference).to(dev)
    baselines = make_baselines(images, baseline, seed)
    n, _, h, w = images.shape
    n_values = check_sketch_dim(sketch_dim, h * w) or h * w
    check_output_file(out, nbytes=n * n_steps * storage_dtype(n_values, dtype).itemsize
                      * (n_values if dtype == "float32" else 1))
    record = field_record(task, reference_sha256=file_sha256(reference), checkpoint_sha256=file_sha256(checkpoint),
                          zoo=zoo, target=check_target(target), n_steps=n_steps, method=method, baseline=baseline,
                          seed=seed, cumulative=parse_bool(cumulative, "--cumulative"), dtype=dtype,
                          precision=precision, sketch_dim=sketch_dim, sketch_seed=sketch_seed,
                          shape=(n, n_steps, n_values))
    if target_is_void(zoo, task, check_target(target)):
        # Exactly zero in exact arithmetic; store that rather than float rounding noise.
        typer.echo(f"warning: target {target} is void for {task} (output GroupNorm: Σ f is constant); "
                   "its field is identically zero and its rho will be undefined", err=True)
        chunks = iter([(0, torch.zeros(n, n_steps, n_values))])
    else:
        chunks = iter_gradient_field(model, images, baselines, target=target, n_steps=n_steps, method=method,
                                     cumulative=parse_bool(cumulative, "--cumulative"), batch_size=batch,
                                     precision=precision, sketch_dim=sketch_dim, sketch_seed=sketch_seed)
    t0 = time.perf_counter()
    shape = f"{n}×{n_steps}×{h * w}" + (f" sketched to {n_values}" if n_values != h * w else "")
    with FieldWriter(out, n, n_steps, n_values, dtype=dtype) as writer, \
            tqdm(total=n, unit="img", desc=f"field {task} ({dev}, {precision})") as bar:

        def written(start: int, m: int) -> None:
            bar.update(m)
            bar.set_postfix(points_per_s=f"{bar.n * n_steps / (time.perf_counter() - t0):.1f}")

        write_chunks(chunks, writer.write, on_written=written)
    write_record(out, record)
    typer.echo(f"{task}: field {shape} ({dtype}, {precision}) -> {out}")


if __name__ == "__main__":
    typer.run(main)
