"""Stage fetch_checkpoint: put one task's Taskonomy encoder checkpoint at ``--out``.

    python stages/fetch_checkpoint.py normal --base-url URL --manifest data/manifests/taskonomy_encoders.json \
        --out data/checkpoints/normal.pth

The manifest (a path or a URL) is JSON ``{"source": ..., "encoders": {task: {"file": name,
"sha256": hex}}}``. The checkpoint is taken from, in order:

1. torch hub's checkpoint folder (``torch.hub.get_dir()/checkpoints``, i.e.
   ``$TORCH_HOME/hub/checkpoints``), if it holds the file with the expected sha256;
2. ``<base-url>/<file>``, downloaded with retries and a sha256 check (or, where the base URL
   is a folder, copied from it with a sha256 check).

The result must then load as a Taskonomy encoder for the task. Nothing is left at
``--out`` (nor any temporary file beside it) unless every check passed.

With ``--zoo mini`` (``zoo`` in params.yaml) ``--mini-manifest`` (the committed
``data/manifests/mini_encoders.json``) and ``--mini-base-url`` (the committed folder
``data/mini/encoders``) are used instead of ``--manifest`` and ``--base-url``; torch hub's
folder is not looked at, and the file must load as a mini-Taskonomy encoder. With ``--zoo
mini_random`` the checkpoint is the untrained encoder (:func:`modelgif.zoos.random_encoder`,
seed ``--random-seed``). The pipeline passes every zoo's values (``checkpoints``,
``mini.checkpoints``); the line printed at the end names the ones used.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import typer

from modelgif._atomic import atomic_path
from modelgif.download import ChecksumError, DownloadError, copy_verified, download_file, fetch_bytes, is_url
from modelgif.mini.zoo import save_encoder
from modelgif.zoos import check_zoo, is_mini, load_zoo_encoder, random_encoder

DEFAULT_BASE_URL = "https://github.com/alexsax/visual-prior/raw/networks/assets/pytorch"
DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "data" / "manifests" / "taskonomy_encoders.json"


def read_manifest(manifest: str) -> dict[str, dict[str, str]]:
    """The ``encoders`` table of a manifest file or URL, checked for shape."""
    try:
        text = fetch_bytes(manifest).decode() if is_url(manifest) else Path(manifest).read_text()
        encoders = json.loads(text)["encoders"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the checkpoint manifest {manifest}: {e!r}") from e
    for task, entry in encoders.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
                and re.fullmatch(r"[0-9a-fA-F]{64}", str(entry.get("sha256")))):
            raise ValueError(f"manifest {manifest}: entry {task!r} needs a 'file' name and a 64-hex 'sha256', got {entry!r}")
    return encoders


def fetch_checkpoint(task: str, out: Path, base_url: str, manifest: str, retries: int = 3,
                     zoo: str = "taskonomy") -> str:
    """Place ``task``'s verified encoder of ``zoo`` at ``out``; return where it came from."""
    encoders = read_manifest(manifest)
    if task not in encoders:
        raise ValueError(f"task {task!r} is not in the manifest {manifest}; known tasks: {', '.join(encoders)}")
    name, sha256 = encoders[task]["file"], encoders[task]["sha256"].lower()
    # torch hub's folder is where Taskonomy's files are kept; the mini zoo is never there
    cached = None if is_mini(zoo) else Path(torch.hub.get_dir()) / "checkpoints" / name
    what = "a mini-Taskonomy encoder" if is_mini(zoo) else f"a Taskonomy encoder for {task}"
    with atomic_path(out) as tmp:
        origin = None
        if cached is not None and cached.is_file():
            try:
                copy_verified(cached, tmp, sha256=sha256)
                origin = str(cached)
            except ChecksumError as e:
                typer.echo(f"warning: ignoring the torch hub copy: {e}", err=True)
        if origin is None:
            origin = f"{base_url.rstrip('/')}/{name}"
            if is_url(base_url):
                download_file(origin, tmp, sha256=sha256, retries=retries)
            elif Path(origin).is_file():
                copy_verified(origin, tmp, sha256=sha256)
            else:
                raise ValueError(f"no checkpoint {origin}: {base_url} is neither a URL nor a folder holding {name}")
        try:
            load_zoo_encoder(zoo, task, tmp)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{name} from {origin} has the expected sha256 but is not {what}: {e}") from e
    return origin


def main(
    task: str = typer.Argument(..., help="task name, a key of the manifest's 'encoders'"),
    base_url: str = typer.Option(DEFAULT_BASE_URL, help="URL prefix the checkpoint files are served under"),
    manifest: str = typer.Option(str(DEFAULT_MANIFEST), help="manifest JSON, a path or a URL"),
    out: Path = typer.Option(None, help="output file", show_default="data/checkpoints/<TASK>.pth"),
    retries: int = typer.Option(3, help="tries per download"),
    zoo: str = typer.Option("taskonomy", help="taskonomy, mini or mini_random"),
    mini_base_url: str = typer.Option("data/mini/encoders", help="zoo mini: folder or URL prefix of the encoders (mini.checkpoints.base_url)"),
    mini_manifest: str = typer.Option("data/manifests/mini_encoders.json", help="zoo mini: manifest (mini.checkpoints.manifest)"),
    random_seed: int = typer.Option(0, help="zoo mini_random: build seed of the initial weights (mini.checkpoints.random_seed)"),
) -> None:
    out = out or Path("data/checkpoints") / f"{task}.pth"
    try:
        if is_mini(check_zoo(zoo)):
            if zoo == "mini_random":
                save_encoder(out, random_encoder(task, random_seed))
                typer.echo(f"{task}: untrained mini encoder (random_seed {random_seed}) -> {out}")
                return
            base_url, manifest = mini_base_url, mini_manifest
        origin = fetch_checkpoint(task, out, base_url, manifest, retries, zoo=zoo)
    except (ChecksumError, ValueError, OSError) as e:
        typer.echo(f"error: {e}; nothing was written to {out}", err=True)
        raise typer.Exit(1)
    except DownloadError as e:
        typer.echo(
            f"error: {e}\nPoint checkpoints.base_url in params.yaml (--base-url) at a mirror that serves the manifest's file names, or put the file into "
            f"torch hub's checkpoint folder {Path(torch.hub.get_dir()) / 'checkpoints'} (set TORCH_HOME to move it).",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{task}: {origin} -> {out}")


if __name__ == "__main__":
    typer.run(main)
