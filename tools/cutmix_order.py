"""Does it matter whether CutMix comes before or after the resize? Measured on the mini zoo.

    python tools/cutmix_order.py [--source-size 256] [--n-steps 50] [--json OUT] [--variants before,after,shipped]

The shipped mini reference set is rendered at its final size (64 px), so it has no resize and
the order cannot matter there. This renders the same 100 scenes (seeds 1 000 000 …) at
``--source-size`` instead and brings them to 64 px in two ways:

- ``after``:  resize to 64 px, then CutMix at 64 px (the project's order before issue 10);
- ``before``: CutMix at the source size, then resize (the authors' cut_mix.py order, now the
  project's);
- ``shipped``: the shipped set (rendered at 64 px, CutMix at 64 px), as a check of the script.

For each, the 17 mini encoders' fields (target 1, ``--n-steps`` Gauss–Legendre steps, shuffled baseline
seed 0, float32, kept in memory rather than stored as float16) give cosine distances, and
ρ against ``wins_vs_pixels`` (mean over the tasks with a defined ρ; and off-diagonal).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer

import modelgif
from modelgif.mini.scenes import render_scene
from modelgif.reference import cutmix, rendered_reference_set, resize_crop
from modelgif.zoo.tasks import TASKS
from modelgif.zoo.models import ground_truth_dir, load_zoo_encoder

ROOT = Path(__file__).resolve().parent.parent


def reference(variant: str, n: int, size: int, source_size: int, first_seed: int = 1_000_000,
              cutmix_seed: int = 3) -> np.ndarray:
    """uint8 (n, 3, size, size) for one variant (module docstring)."""
    if variant == "shipped":
        return rendered_reference_set(n, size, first_seed=first_seed, use_cutmix=True, seed=cutmix_seed).images
    big = np.stack([np.rint(render_scene(s, source_size)["rgb"] * 255.0).astype(np.uint8)
                    for s in range(first_seed, first_seed + n)])
    if variant == "after":
        return cutmix(np.stack([resize_crop(im, size) for im in big]), batch=8, seed=cutmix_seed)[0]
    if variant == "before":
        return np.stack([resize_crop(im, size) for im in cutmix(big, batch=8, seed=cutmix_seed)[0]])
    raise ValueError(f"unknown variant {variant!r}")


def mean_rho(images_u8: np.ndarray, n_steps: int = 50) -> dict:
    x = torch.from_numpy(images_u8).float().div(255).mul(2).sub(1)
    xb = modelgif.make_baselines(x, "shuffled", 0)
    fields = []
    for task in TASKS:
        model = load_zoo_encoder("mini", task, ROOT / "data" / "mini" / "encoders" / f"{task}.pth")
        fields.append(modelgif.gradient_field(model, x, xb, target=1, n_steps=n_steps).numpy())
    d = modelgif.distance_matrix(fields, metric="cosine")
    t = modelgif.load_ground_truth("wins_vs_pixels", TASKS, ground_truth_dir("mini"))
    rho = modelgif.per_task_spearman(d, t)
    off = modelgif.per_task_spearman(d, t, diagonal=False)
    return {"mean_rho": float(np.nanmean(rho)), "n_tasks": int(np.isfinite(rho).sum()),
            "mean_rho_off_diagonal": float(np.nanmean(off)),
            "per_task": {k: (None if not np.isfinite(v) else round(float(v), 4)) for k, v in zip(TASKS, rho)}}


def main(source_size: int = 256, n_images: int = 100, n_steps: int = 50, cutmix_seed: int = 3, variants: str = "before,after,shipped",
         json_out: Path = typer.Option(None, "--json")) -> None:
    results = {}
    for variant in variants.split(","):
        t0 = time.perf_counter()
        images = reference(variant, n_images, 64, source_size, cutmix_seed=cutmix_seed)
        results[variant] = mean_rho(images, n_steps)
        results[variant]["seconds"] = round(time.perf_counter() - t0)
        r = results[variant]
        typer.echo(f"{variant}: mean rho {r['mean_rho']:+.4f} ({r['n_tasks']} tasks), "
                   f"off-diagonal {r['mean_rho_off_diagonal']:+.4f}  [{r['seconds']} s]")
        if json_out:
            json_out.write_text(json.dumps({"source_size": source_size, "n_images": n_images, "n_steps": n_steps, "cutmix_seed": cutmix_seed, **results}, indent=1))


if __name__ == "__main__":
    typer.run(main)
