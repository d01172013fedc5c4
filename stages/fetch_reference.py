"""Stage fetch_reference: build the reference set (docs/METHOD.md, step 1).

    python stages/fetch_reference.py --source zoo --zoo taskonomy --n-images 1000 --image-size 128 \
        --cutmix true --seed 3 --out data/reference

``--source zoo`` (the default of ``reference.source``) takes the zoo's own set, the
``reference`` of its declaration (``zoos/<zoo>.yaml``): Taskonomy's sample building
(``taskonomy-sample``, from ``--base-url`` at ``--commit``) for ``taskonomy``, rendered
mini-Taskonomy scenes (``mini-scenes``, seeds ``--first-scene`` and up) for ``mini`` and
``mini_random``. ``--n-images``, ``--image-size``, ``--cutmix`` and ``--seed`` apply to
every source.

``--sha256 HEX`` (``reference.sha256`` in params.yaml; empty: no check) is the expected
sha256 of the written ``images.npy``'s array data (the uint8 (N, 3, S, S) images in C order,
without the .npy header: ``hashlib.sha256(np.load("images.npy").tobytes())``), for any source;
on a mismatch nothing is written.

``--settings data/settings/reference.json`` (what the pipeline passes: the ``settings``
stage's file, :func:`modelgif.settings.reference_settings`) takes every value above from that
file instead, the source already resolved and fingerprinted; its warnings (a size other than the
zoo's declared ``input_size``) are printed and recorded in ``manifest.json`` as ``warnings``.

Writes ``<out>/images.npy`` (uint8 (N, 3, S, S)), ``<out>/manifest.json`` and
``<out>/contact_sheet.png``, each atomically.
"""

from __future__ import annotations

from pathlib import Path

import typer
from _cli import parse_bool

from modelgif.io.download import DownloadError
from modelgif.io.settings_file import read_settings
from modelgif.reference import (MAX_MEMBER_BYTES, SAMPLE, SAMPLE_BASE_URL, SAMPLE_COMMIT, build_reference_set,
                                rendered_reference_set, write_reference_set)
from modelgif.zoo.spec import load_zoo_spec
from modelgif.zoo.models import check_zoo_models

#: ``--source`` value of the rendered mini-Taskonomy scenes.
SCENES = "mini-scenes"

HINT = (
    "To use a mirror of the sample building, set reference.base_url in params.yaml (it must serve "
    "<base_url>/<commit>/rgb/point_<p>_view_0_domain_rgb.png); to use local images, set "
    "reference.source: /path/to/folder-or-archive (a folder of images or a .zip/.tar/.tar.gz of them)."
)


def resolve_source(source: str, zoo: str) -> str:
    """``source``, with ``zoo`` replaced by the zoo's own set: its declaration's ``reference``
    (``taskonomy-sample``, ``mini-scenes``, a folder, an archive or a URL). The declaration is
    checked in full first (:func:`modelgif.zoo.models.check_zoo_models`), before any image is read."""
    spec = check_zoo_models(load_zoo_spec(zoo))
    return spec.reference if source == "zoo" else source


def main(
    source: str = typer.Option("zoo", help=f"zoo (the zoo's own set), {SAMPLE!r}, {SCENES!r}, a folder of images, a .zip/.tar/.tar.gz archive, or an http(s) URL of one"),
    base_url: str = typer.Option(SAMPLE_BASE_URL, help="where the sample building's repository is served"),
    commit: str = typer.Option(SAMPLE_COMMIT, help="commit of the sample building's repository"),
    n_images: int = typer.Option(1000, help="N, the number of reference images"),
    image_size: int = typer.Option(128, "--image-size", "--size", help="S, the side of each (square) image in pixels (reference.image_size)"),
    cutmix: str = typer.Option("true", metavar="true|false", help="CutMix each batch of 8 images (as params.yaml passes it)"),
    no_cutmix: bool = typer.Option(False, "--no-cutmix", help="same as --cutmix false"),
    seed: int = typer.Option(3, help="seed of the CutMix draws"),
    workers: int = typer.Option(8, help="parallel downloads"),
    retries: int = typer.Option(3, help="tries per download"),
    timeout: float = typer.Option(30.0, help="seconds one socket read may wait before the try fails"),
    max_member_mb: float = typer.Option(MAX_MEMBER_BYTES / 2**20, help="largest archive member read as an image, MiB"),
    sha256: str = typer.Option("", help="expected sha256 of images.npy's uint8 array bytes (empty: no check)"),
    out: Path = typer.Option(Path("data/reference"), help="output folder"),
    zoo: str = typer.Option("taskonomy", help="the zoo (zoos/<ZOO>.yaml or a path): whose set --source zoo means"),
    first_scene: int = typer.Option(1_000_000, help=f"{SCENES}: seed of the first rendered scene"),
    settings: Path = typer.Option(None, help="the settings stage's reference.json: every value above from it"),
) -> None:
    warnings: list[str] = []
    hint = ""
    try:
        if settings is not None:
            s = read_settings(settings)
            source, zoo, n_images, image_size, sha256 = s["source"], s["zoo"], s["n_images"], s["image_size"], s["sha256"]
            cutmix, seed = str(s["cutmix"]), s["seed"]
            base_url, commit = s.get("base_url", base_url), s.get("commit", commit)
            first_scene = s.get("first_scene", first_scene)
            warnings = list(s["warnings"])
        use_cutmix = parse_bool(cutmix, "--cutmix") and not no_cutmix
        size = image_size
        source = resolve_source(source, zoo)
        if source == SCENES:
            ref = rendered_reference_set(n_images, size, first_seed=first_scene, use_cutmix=use_cutmix, seed=seed,
                                         sha256=sha256 or None)
            what = "rendered scenes"
        else:
            hint = f"\n{HINT}" if source == SAMPLE else ""
            ref = build_reference_set(
                source, n_images, size, use_cutmix=use_cutmix, seed=seed,
                base_url=base_url, commit=commit, workers=workers, retries=retries, timeout=timeout,
                max_member_bytes=int(max_member_mb * 2**20), sha256=sha256 or None,
            )
            what = f"images from {source}"
        if warnings:
            ref.manifest["warnings"] = warnings
        paths = write_reference_set(ref, out)
    except DownloadError as e:
        typer.echo(f"error: {e}\n{HINT}", err=True)
        raise typer.Exit(1)
    except (OSError, ValueError) as e:
        message = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror and e.filename else str(e)
        typer.echo(f"error: {message}{hint if not isinstance(e, PermissionError) else ''}", err=True)
        raise typer.Exit(1)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{len(ref.images)} {what} {tuple(ref.images.shape[1:])} -> {paths['images.npy']}")

if __name__ == "__main__":
    typer.run(main)
