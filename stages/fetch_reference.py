"""Stage fetch_reference: build the reference set (DESIGN §1.1).

    python stages/fetch_reference.py --source taskonomy-sample --n-images 1000 --size 128 \
        --cutmix true --seed 3 --out data/reference

With ``--zoo mini`` or ``--zoo mini_random`` (``zoo`` in params.yaml) the taskonomy options
are ignored: the reference set is rendered mini-Taskonomy scenes, as ``mini.reference`` in the
``--params`` file says (``n_images``, ``size``, ``first_seed``, ``cutmix``, ``seed``).

Writes ``<out>/images.npy`` (uint8 (N, 3, S, S)), ``<out>/manifest.json`` and
``<out>/contact_sheet.png``, each atomically.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from _cli import parse_bool

from modelgif.download import DownloadError
from modelgif.reference import (SAMPLE, SAMPLE_BASE_URL, SAMPLE_COMMIT, build_reference_set, rendered_reference_set,
                                write_reference_set)
from modelgif.zoos import is_mini, zoo_params

HINT = (
    "To use a mirror of the sample building, set reference.base_url in params.yaml (it must serve "
    "<base_url>/<commit>/rgb/point_<p>_view_0_domain_rgb.png); to use local images, set "
    "reference.source: /path/to/folder-or-archive (a folder of images or a .zip/.tar/.tar.gz of them)."
)


def mini_reference(params: Path, zoo: str):
    """The rendered reference set ``mini.reference`` of the params file describes."""
    cfg = zoo_params(yaml.safe_load(params.read_text()) or {}, zoo, "reference")
    try:
        return rendered_reference_set(int(cfg["n_images"]), int(cfg["size"]), first_seed=int(cfg["first_seed"]),
                                      use_cutmix=parse_bool(str(cfg["cutmix"]), "mini.reference.cutmix"),
                                      seed=int(cfg["seed"]))
    except KeyError as e:
        raise ValueError(f"{params}: mini.reference lacks {e}") from e


def main(
    source: str = typer.Option(SAMPLE, help=f"{SAMPLE!r}, a folder of images, a .zip/.tar/.tar.gz archive, or an http(s) URL of one"),
    base_url: str = typer.Option(SAMPLE_BASE_URL, help="where the sample building's repository is served"),
    commit: str = typer.Option(SAMPLE_COMMIT, help="commit of the sample building's repository"),
    n_images: int = typer.Option(1000, help="N, the number of reference images"),
    size: int = typer.Option(128, help="S, the side of each (square) image in pixels"),
    cutmix: str = typer.Option("true", metavar="true|false", help="CutMix each batch of 8 images (as params.yaml passes it)"),
    no_cutmix: bool = typer.Option(False, "--no-cutmix", help="same as --cutmix false"),
    seed: int = typer.Option(3, help="seed of the CutMix draws"),
    workers: int = typer.Option(8, help="parallel downloads"),
    retries: int = typer.Option(3, help="tries per download"),
    out: Path = typer.Option(Path("data/reference"), help="output folder"),
    zoo: str = typer.Option("taskonomy", help="taskonomy, mini or mini_random"),
    params: Path = typer.Option(Path("params.yaml"), help="params file (its 'mini.reference' for the mini zoos)"),
) -> None:
    use_cutmix = parse_bool(cutmix, "--cutmix") and not no_cutmix
    try:
        if is_mini(zoo):
            ref = mini_reference(params, zoo)
            paths = write_reference_set(ref, out)
            typer.echo(f"{len(ref.images)} rendered scenes {tuple(ref.images.shape[1:])} -> {paths['images.npy']}")
            return
    except (OSError, ValueError, TypeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    try:
        ref = build_reference_set(
            source, n_images, size, use_cutmix=use_cutmix, seed=seed,
            base_url=base_url, commit=commit, workers=workers, retries=retries,
        )
    except DownloadError as e:
        typer.echo(f"error: {e}\n{HINT}", err=True)
        raise typer.Exit(1)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}" + (f"\n{HINT}" if source == SAMPLE else ""), err=True)
        raise typer.Exit(1)
    paths = write_reference_set(ref, out)
    typer.echo(f"{len(ref.images)} images {tuple(ref.images.shape[1:])} from {source} -> {paths['images.npy']}")


if __name__ == "__main__":
    typer.run(main)
