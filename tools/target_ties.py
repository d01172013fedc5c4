"""How often do a target's maxima tie? (where ``argmax`` and the original's ``topk`` may differ)

    python tools/target_ties.py [--zoo mini]

For the mini zoo's 17 encoders on the shipped mini reference set (100 rendered scenes, CutMix),
counts, at the path end points f(x): target 1 — (image, channel) pairs whose spatial maximum
is attained at more than one position; target 5 — (image, position) pairs whose channel
maximum is attained by more than one channel. Only there can the choice of index differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from modelgif.reference import rendered_reference_set
from modelgif.zoo.tasks import TASKS
from modelgif.zoo.models import load_zoo_encoder

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    images = rendered_reference_set(100, 64, first_seed=1_000_000, use_cutmix=True, seed=3).images
    x = torch.from_numpy(images).float().div(255).mul(2).sub(1)
    tot1 = tie1 = tot5 = tie5 = 0
    for task in TASKS:
        model = load_zoo_encoder("mini", task, ROOT / "data" / "mini" / "encoders" / f"{task}.pth")
        with torch.no_grad():
            f = model(x).flatten(2)  # (N, C, P)
        t1 = (f == f.amax(dim=2, keepdim=True)).sum(dim=2) > 1
        t5 = (f == f.amax(dim=1, keepdim=True)).sum(dim=1) > 1
        tie1, tot1 = tie1 + int(t1.sum()), tot1 + t1.numel()
        tie5, tot5 = tie5 + int(t5.sum()), tot5 + t5.numel()
        typer.echo(f"{task}: target 1 ties {int(t1.sum())}/{t1.numel()}, target 5 ties {int(t5.sum())}/{t5.numel()}")
    typer.echo(f"all: target 1 ties {tie1}/{tot1}, target 5 ties {tie5}/{tot5}")


if __name__ == "__main__":
    typer.run(main)
