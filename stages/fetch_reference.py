"""Stage fetch_reference: build the reference set (DESIGN §1.1).

    python stages/fetch_reference.py --source taskonomy-sample --n-images 1000 --size 128 \
        --cutmix true --seed 3 --out data/reference

With ``--zoo mini`` or ``--zoo mini_random`` (``zoo`` in params.yaml) the taskonomy options
are ignored: the reference set is rendered mini-Taskonomy scenes, as ``mini.reference`` in the
``--params`` file says (``n_images``, ``size``, ``first_seed``, ``cutmix``, ``seed``, and an
optional ``sha256``).

``--sha256 HEX`` (``reference.sha256`` in params.yaml; empty: no check) is the expected
sha256 of the written ``images.npy``'s array data (the uint8 (N, 3, S, S) images in C order,
without the .npy header: ``hashlib.sha256(np.load("images.npy").tobytes())``); on a
mismatch nothing is written.

Writes ``<out>/images.npy`` (uint8 (N, 3, S, S)), ``<out>/manifest.json`` and
``<out>/contact_sheet.png``, each atomically.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from _cli import parse_bool

from modelgif.download import DownloadError
from modelgif.reference import (MAX_MEMBER_BYTES, SAMPLE, SAMPLE_BASE_URL, SAMPLE_COMMIT, build_reference_set,
                                rendered_reference_set, write_reference_set)
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
                                      seed=int(cfg["seed"]), sha256=str(cfg.get("sha256") or "") or None)
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
    timeout: float = typer.Option(30.0, help="seconds one socket read may wait before the try fails"),
    max_member_mb: float = typer.Option(MAX_MEMBER_BYTES / 2**20, help="largest archive member read as an image, MiB"),
    sha256: str = typer.Option("", help="expected sha256 of images.npy's uint8 array bytes (empty: no check)"),
    out: Path = typer.Option(Path("data/reference"), help="output folder"),
    zoo: str = typer.Option("taskonomy", help="taskonomy, mini or mini_random"),
    params: Path = typer.Option(Path("params.yaml"), help="params file (its 'mini.reference' for the mini zoos)"),
) -> None:
    use_cutmix = parse_bool(cutmix, "--cutmix") and not no_cutmix
    hint = ""
    try:
        if is_mini(zoo):
            ref = mini_reference(params, zoo)
            what = "rendered scenes"
        else:
            hint = f"\n{HINT}" if source == SAMPLE else ""
            ref = build_reference_set(
                source, n_images, size, use_cutmix=use_cutmix, seed=seed,
                base_url=base_url, commit=commit, workers=workers, retries=retries, timeout=timeout,
                max_member_bytes=int(max_member_mb * 2**20), sha256=sha256 or None,
            )
            what = f"images from {source}"
        paths = write_reference_set(ref, out)
    except DownloadError as e:
        typer.echo(f"error: {e}\n{HINT}", err=True)
        raise typer.Exit(1)
    except (OSError, ValueError) as e:
        message = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror and e.filename else str(e)
        typer.echo(f"error: {message}{hint if not isinstance(e, PermissionError) else ''}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{len(ref.images)} {what} {tuple(ref.images.shape[1:])} -> {paths['images.npy']}")

if __name__ == "__main__":
    typer.run(main)
