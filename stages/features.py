"""Stage features: one task's encoder outputs and attribution maps over the reference set.

    python stages/features.py normal --checkpoint data/checkpoints/normal.pth \
        --reference data/reference/images.npy --settings data/settings/features.json \
        --features data/features --attributions data/attributions

(``--target 1 --zoo taskonomy`` instead of ``--settings`` outside the pipeline.)

The inputs of the methods other than ModelGiF (:mod:`modelgif.compare.methods`), in one stage per task:

- ``<features>/<task>.npy``: f(x) flattened channel-first, (N, C·h·w) float32, one forward pass
  per image (:func:`modelgif.field.attribution.encoder_features`), the set-level methods' input (RSA,
  CKA, DDS); ``<features>/<task>.json``: its shape (C, h, w) and the sha256 of the reference
  set and checkpoint it came from (target-independent, so a new target leaves it unchanged);
- ``<attributions>/saliency/<task>.npy`` and ``<attributions>/gradxinput/<task>.npy``: the
  target's input gradient at x, and that times x, channel mean, stored as one-step fields
  (N, 1, H·W) float32 (:func:`modelgif.field.attribution.attribution_maps`: one backward pass per
  image gives both). Where the target is void for the encoder (the field stage stores a zero
  field), the maps are stored as exact zeros too.

``MODELGIF_DEVICE`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) chooses the device; it does not
change the result beyond rounding, so it is not a param.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from _cli import READ_BYTES_PER_VALUE, check_reference_memory, clean_errors, resolve_device

from modelgif.io.atomic import save_npy, write_text
from modelgif.field.attribution import ATTRIBUTIONS, attribution_maps, encoder_features
from modelgif.errors import check_output_dir, check_output_file
from modelgif.io.provenance import file_sha256
from modelgif.reference import load_reference_images
from modelgif.io.settings_file import read_settings
from modelgif.io.storage import field_nbytes, reference_shape, save_field
from modelgif.field.targets import check_target
from modelgif.zoo.models import check_zoo, load_zoo_encoder, target_is_void


def _preflight(task: str, reference: Path, attributions: Path, dev) -> None:
    """Refuse, before any work, a reference set whose images (float32) and attribution maps do not
    fit in memory, or whose maps do not fit on disk; each message gives the estimate."""
    n, _, h, w = shape = reference_shape(reference)
    maps = len(ATTRIBUTIONS) * n * h * w * 4  # float32 (N, 1, H·W) each
    what = "as float32 and their attribution maps (the features stage)"
    check_reference_memory(shape, n * 3 * h * w * (READ_BYTES_PER_VALUE if dev.type == "cpu" else 1) + maps, what)
    if dev.type == "cuda":
        check_reference_memory(shape, n * 3 * h * w * 4, "as float32 (the features stage)", device=dev)
    for kind in ATTRIBUTIONS:
        check_output_file(attributions / kind / f"{task}.npy", nbytes=field_nbytes(n, 1, h * w, "float32"))


@clean_errors(outputs=("features", "attributions"))
def main(
    task: str = typer.Argument(..., help="task whose encoder to use"),
    checkpoint: Path = typer.Option(..., help="encoder checkpoint (from fetch_checkpoint)"),
    reference: Path = typer.Option(Path("data/reference/images.npy"), help="reference images (from fetch_reference)"),
    target: str = typer.Option("1", help="target of the attribution maps: 1, 5 or 6"),
    zoo: str = typer.Option("taskonomy", help="taskonomy, mini or mini_random: which encoder architecture to load"),
    features: Path = typer.Option(Path("data/features"), help="folder for <task>.npy and <task>.json"),
    attributions: Path = typer.Option(Path("data/attributions"), help="folder for <kind>/<task>.npy"),
    device: str = typer.Option("auto", envvar="MODELGIF_DEVICE", help="auto, cpu, cuda, cuda:N"),
    settings: Path = typer.Option(None, help="the settings stage's features.json: zoo and target from it "
                                             "instead of the flags"),
) -> None:
    if settings is not None:  # what the pipeline passes (modelgif.settings.resolve_settings)
        s = read_settings(settings)
        zoo, target = s["zoo"], str(s["target"])
    target_n = check_target(target)
    check_zoo(zoo)
    for folder in (features, *(attributions / k for k in ATTRIBUTIONS)):
        check_output_dir(folder)
    dev = resolve_device(device)
    _preflight(task, reference, attributions, dev)
    model = load_zoo_encoder(zoo, task, checkpoint, map_location=dev)
    images = load_reference_images(reference).to(dev)
    feats = encoder_features(model, images)
    with torch.no_grad():
        shape = list(model(images[:1]).shape[1:])
    if target_is_void(zoo, task, target_n):
        n, _, h, w = images.shape
        maps = {k: torch.zeros((n, 1, h * w)) for k in ATTRIBUTIONS}
        typer.echo(f"warning: target {target_n} is void for {task}'s encoder: its attribution maps are zero", err=True)
    else:
        maps = attribution_maps(model, images, ATTRIBUTIONS, target=target_n)
    features.mkdir(parents=True, exist_ok=True)
    save_npy(features / f"{task}.npy", feats)
    record = {"task": task, "zoo": zoo, "shape": shape, "reference_sha256": file_sha256(reference),
              "checkpoint_sha256": file_sha256(checkpoint)}
    write_text(features / f"{task}.json", json.dumps(record, indent=1) + "\n")
    for kind, a in maps.items():
        (attributions / kind).mkdir(parents=True, exist_ok=True)
        save_field(attributions / kind / f"{task}.npy", a.float().cpu(), dtype="float32")
    typer.echo(f"{task}: features {tuple(feats.shape)}, attribution maps {', '.join(maps)} -> {features}, {attributions}")


if __name__ == "__main__":
    typer.run(main)
