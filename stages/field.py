"""Stage field: one task's ModelGiF gradient field over the reference set.

    python stages/field.py normal --checkpoint data/checkpoints/normal.pth \
        --reference data/reference/images.npy --target 1 --n-steps 50 --method gausslegendre \
        --baseline shuffled --seed 0 --cumulative true --dtype float16 --precision float32 \
        --sketch-dim 0 --sketch-seed 0 --out data/fields/normal.npy

``--precision`` (float32 | tf32 | bf16) and ``--sketch-dim`` (0 = exact; d > 0 stores every
row projected to d values) change the result, so they come from params (``field:``). While
one chunk of images is computed, the previous one is copied to the host and written by a
background thread (:func:`modelgif.field.gradients.write_chunks`). On the CPU the process keeps freed
memory for reuse (:func:`modelgif.field.gradients.keep_freed_cpu_memory`).

Settings that do not change the result come from the environment, so changing them
reruns nothing: ``MODELGIF_DEVICE`` (``auto`` = CUDA when present, else CPU; or ``cpu``,
``cuda``, ``cuda:1``), ``MODELGIF_BATCH_SIZE`` (path points per pass; default: on CUDA fitted
to the free memory, at most 1024, halved if a pass runs out of memory; 128 on the CPU:
:func:`modelgif.field.execution.auto_batch_size`) and ``MODELGIF_NPROC`` (G: relaunch through
``torch.distributed.run`` with G processes). Under ``torchrun`` each process computes a
contiguous slice of the images into the one output file (:mod:`modelgif.field.distributed`).
"""

from __future__ import annotations

import errno
import sys
import time
from pathlib import Path

import torch
import typer
from _cli import READ_BYTES_PER_VALUE, check_reference_memory, clean_errors, fail, parse_bool, resolve_device
from tqdm.auto import tqdm

from modelgif.field.baselines import make_baselines
from modelgif.field.distributed import (RankFailed, launch, nproc_from_env, process_group, rank_device, record_failure,
                                  shard, world, write_sharded)
from modelgif.errors import check_output_file, check_seed
from modelgif.field.execution import auto_batch_size, check_precision, default_batch_size, keep_freed_cpu_memory
from modelgif.field.gradients import iter_gradient_field, zero_field_chunks
from modelgif.io.provenance import field_record, file_sha256, record_path, write_record
from modelgif.field.quadrature import check_n_steps
from modelgif.reference import load_reference_images
from modelgif.io.storage import field_nbytes, reference_shape, storage_dtype
from modelgif.io.settings_file import read_settings
from modelgif.field.sketch import check_sketch_dim
from modelgif.field.targets import check_target
from modelgif.zoo.models import check_zoo, load_zoo_encoder, target_is_void


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
    zoo: str = typer.Option("taskonomy", help="the zoo (zoos/<ZOO>.yaml or a path): how the encoder is built and cut"),
    device: str = typer.Option("auto", envvar="MODELGIF_DEVICE", help="auto, cpu, cuda, cuda:N"),
    batch_size: int = typer.Option(0, envvar="MODELGIF_BATCH_SIZE", help="path points per pass (0: by device)"),
    settings: Path = typer.Option(None, help="the settings stage's field.json: target, zoo and field.* from it"),
) -> None:
    if settings is not None:  # what the pipeline passes (modelgif.settings.field_settings)
        s = read_settings(settings)
        target, zoo, n_steps, method, baseline = str(s["target"]), s["zoo"], s["n_steps"], s["method"], s["baseline"]
        seed, cumulative, dtype, precision = s["seed"] or 0, str(s["cumulative"]), s["dtype"], s["precision"]
        sketch_dim, sketch_seed = s["sketch_dim"], s["sketch_seed"] or 0
    check_zoo(zoo)
    check_precision(precision)
    check_sketch_dim(sketch_dim)
    check_n_steps(n_steps, method)
    check_target(target)
    check_seed(seed, "field.seed (--seed)")
    check_seed(sketch_seed, "field.sketch_seed (--sketch-seed)")
    storage_dtype(1, dtype)  # a valid storage dtype
    check_output_file(out)
    _preflight(reference, n_steps, dtype, sketch_dim, out)
    nproc = nproc_from_env()
    if nproc:  # MODELGIF_NPROC=G: the same command in G processes, through torch.distributed.run
        failure = launch(nproc, __file__, sys.argv[1:])
        if failure:
            fail(f"{failure}; no field written")
        typer.echo(f"{task}: field written by {nproc} processes -> {out}")
        return
    rank, world_size, local_rank = world()
    if rank == 0:
        record_path(out).unlink(missing_ok=True)  # no stale record beside a field this run may not finish
    dev = rank_device(resolve_device(device), local_rank, world_size)
    if dev.type == "cpu":
        keep_freed_cpu_memory()  # no page faults for every pass's activations (a one-shot process)
    try:
        with process_group(dev):
            _field(task, checkpoint, reference, target, n_steps, method, baseline, seed, cumulative, dtype, precision,
                   sketch_dim, sketch_seed, out, zoo, dev, batch_size, rank, world_size)
    except RankFailed:
        raise typer.Exit(1)  # the failing rank reports
    except Exception as e:
        record_failure(str(e))  # for the launcher of MODELGIF_NPROC (nothing outside torchrun)
        raise


#: Bytes per reference pixel value the field stage holds on its device: the images and their
#: baselines, float32.
DEVICE_BYTES_PER_VALUE = 4 + 4


def _preflight(reference: Path, n_steps: int, dtype: str, sketch_dim: int, out: Path, device=None) -> None:
    """Refuse, before anything is loaded or computed, a reference set whose field does not fit on
    the output's disk, or whose images (with their baselines, and a sketch's projection matrix)
    do not fit in memory; each message gives the estimate. ``device``: also check a CUDA
    device's memory."""
    n, _, h, w = shape = reference_shape(reference)
    values = n * 3 * h * w
    n_values = check_sketch_dim(sketch_dim, h * w) or h * w
    projection = h * w * sketch_dim * 8 if sketch_dim else 0  # float64 (H·W, d), modelgif.field.sketch
    if device is None:
        check_reference_memory(shape, values * (READ_BYTES_PER_VALUE + 4) + projection,
                               "and their baselines as float32 (the field stage)")
    elif device.type == "cuda":
        check_reference_memory(shape, values * DEVICE_BYTES_PER_VALUE + projection,
                               "and their baselines as float32 (the field stage)", device=device)
    try:
        check_output_file(out, nbytes=field_nbytes(n, n_steps, n_values, dtype))
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise OSError(errno.ENOSPC, f"{e.strerror}: a field of {n} images × {n_steps} steps × {n_values} values "
                      f"({dtype}); lower reference.n_images, reference.image_size or field.n_steps, or set "
                      "field.sketch_dim") from None


def _field(task, checkpoint, reference, target, n_steps, method, baseline, seed, cumulative, dtype, precision,
           sketch_dim, sketch_seed, out, zoo, dev, batch_size, rank, world_size) -> None:
    _preflight(reference, n_steps, dtype, sketch_dim, out, device=dev)  # this rank's device
    model = load_zoo_encoder(zoo, task, checkpoint, map_location=dev)
    images = load_reference_images(reference).to(dev)
    baselines = make_baselines(images, baseline, seed)
    n, _, h, w = images.shape
    n_values = check_sketch_dim(sketch_dim, h * w) or h * w
    record = field_record(task, reference_sha256=file_sha256(reference), checkpoint_sha256=file_sha256(checkpoint),
                          zoo=zoo, target=check_target(target), n_steps=n_steps, method=method, baseline=baseline,
                          seed=seed, cumulative=parse_bool(cumulative, "--cumulative"), dtype=dtype,
                          precision=precision, sketch_dim=sketch_dim, sketch_seed=sketch_seed,
                          shape=(n, n_steps, n_values))
    lo, hi = shard(n, rank, world_size)
    images, baselines = images[lo:hi], baselines[lo:hi]
    if target_is_void(zoo, task, check_target(target)):
        # Exactly zero in exact arithmetic; store that rather than float rounding noise.
        if rank == 0:
            typer.echo(f"warning: target {target} is void for {task} (output GroupNorm: Σ f is constant); "
                       "its field is identically zero and its rho will be undefined", err=True)
        chunks = zero_field_chunks(hi - lo, n_steps, n_values, batch_size=batch_size or default_batch_size(dev))
    else:
        batch = batch_size or (auto_batch_size(model, images, n_steps, precision) if hi > lo else 1)
        chunks = iter_gradient_field(model, images, baselines, target=target, n_steps=n_steps, method=method,
                                     cumulative=parse_bool(cumulative, "--cumulative"), batch_size=batch,
                                     precision=precision, sketch_dim=sketch_dim, sketch_seed=sketch_seed)
        if hi == lo:
            chunks = iter(())
    t0 = time.perf_counter()
    shape = f"{n}×{n_steps}×{h * w}" + (f" sketched to {n_values}" if n_values != h * w else "")
    who = f", rank {rank}/{world_size}" if world_size > 1 else ""
    with tqdm(total=hi - lo, unit="img", desc=f"field {task} ({dev}, {precision}{who})") as bar:

        def written(start: int, m: int) -> None:
            bar.update(m)
            bar.set_postfix(points_per_s=f"{bar.n * n_steps / (time.perf_counter() - t0):.1f}")

        write_sharded(out, (n, n_steps, n_values), dtype, (lo, hi), chunks, on_written=written)
        done = bar.n
    if world_size > 1:
        typer.echo(f"rank {rank}/{world_size}: computed images {lo}..{hi - 1} ({done} of {n})")
    if dev.type == "cuda":
        typer.echo(f"peak GPU memory: {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB")
    if rank == 0:
        write_record(out, record)
        typer.echo(f"{task}: field {shape} ({dtype}, {precision}) -> {out}")


if __name__ == "__main__":
    typer.run(main)
