"""Stage fetch_checkpoint: put one model's checkpoint of the zoo ``--zoo`` at ``--out``.

    python stages/fetch_checkpoint.py normal --base-url URL --manifest data/manifests/taskonomy_encoders.json \
        --out data/checkpoints/normal.pth

The zoo's declaration (``zoos/<zoo>.yaml``, :mod:`modelgif.zoo.spec`) is read and checked
first, its models built once on a blank image (:func:`modelgif.zoo.models.check_zoo_models`): a bad
declaration is one line naming the file and the entry, before anything is downloaded. A model
with its own ``checkpoint`` (path or URL, sha256) is taken from there
(:func:`modelgif.zoo.checkpoint_source.fetch_model_checkpoint`). For the built-in zoos the
checkpoint is resolved by :func:`modelgif.zoo.checkpoint_source.fetch_checkpoint`: torch
hub's checkpoint folder if it holds the file with the manifest's sha256, else
``<base-url>/<file>`` (a URL: downloaded with retries, a per-read ``--timeout`` and a sha256
check; a folder: copied with a sha256 check); it must then load as the zoo's encoder.
Nothing is left at ``--out`` unless every check passed.

With ``--zoo mini`` (``zoo`` in params.yaml; its declaration takes ``checkpoints`` from
``mini.checkpoints``) ``--mini-manifest`` (the committed
``data/manifests/mini_encoders.json``) and ``--mini-base-url`` (the committed folder
``data/mini/encoders``) are used instead of ``--manifest`` and ``--base-url``; torch hub's
folder is not looked at, and the file must load as a mini-Taskonomy encoder. With ``--zoo
mini_random`` the checkpoint is the untrained encoder (:func:`modelgif.zoo.models.random_encoder`,
seed ``--random-seed``). The pipeline passes every zoo's values (``checkpoints``,
``mini.checkpoints``); the line printed at the end names the ones used.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from modelgif.zoo.checkpoint_source import fetch_model_checkpoint, hub_checkpoint_dir
from modelgif.io.download import ChecksumError, DownloadError
from modelgif.io.settings_file import read_settings
from modelgif.zoo.spec import load_zoo_spec
from modelgif.zoo.models import check_zoo_models

DEFAULT_BASE_URL = "https://github.com/alexsax/visual-prior/raw/networks/assets/pytorch"
DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "data" / "manifests" / "taskonomy_encoders.json"


def main(
    task: str = typer.Argument(..., help="model name: a model of the zoo's declaration"),
    base_url: str = typer.Option(DEFAULT_BASE_URL, help="URL prefix the checkpoint files are served under"),
    manifest: str = typer.Option(str(DEFAULT_MANIFEST), help="manifest JSON, a path or a URL"),
    out: Path = typer.Option(None, help="output file", show_default="data/checkpoints/<TASK>.pth"),
    retries: int = typer.Option(3, help="tries per download"),
    timeout: float = typer.Option(30.0, help="seconds one socket read may wait before the try fails"),
    zoo: str = typer.Option("taskonomy", help="the zoo: zoos/<ZOO>.yaml (taskonomy, mini, mini_random, yours) or a path"),
    mini_base_url: str = typer.Option("data/mini/encoders", help="zoo mini: folder or URL prefix of the encoders (mini.checkpoints.base_url)"),
    mini_manifest: str = typer.Option("data/manifests/mini_encoders.json", help="zoo mini: manifest (mini.checkpoints.manifest)"),
    random_seed: int = typer.Option(0, help="zoo mini_random: build seed of the initial weights (mini.checkpoints.random_seed)"),
    settings: Path = typer.Option(None, help="the settings stage's checkpoint_<TASK>.json: the zoo and its "
                                             "checkpoint source from it instead of the flags"),
) -> None:
    out = out or Path("data/checkpoints") / f"{task}.pth"
    # the params sections a declaration's `checkpoints:` may name, as the pipeline passes them
    params = {"checkpoints": {"base_url": base_url, "manifest": manifest},
              "mini": {"checkpoints": {"base_url": mini_base_url, "manifest": mini_manifest, "random_seed": random_seed}}}
    try:
        if settings is not None:  # what the pipeline passes (modelgif.settings.checkpoint_settings)
            s = read_settings(settings)
            if s["task"] != task:
                raise ValueError(f"{settings} holds the settings of model {s['task']!r}, not {task!r}")
            zoo, params = s["zoo"], {}
            if "params_key" in s:  # rebuild the one params section the declaration names
                node = params
                *parents, last = s["params_key"].split(".")
                for key in parents:
                    node = node.setdefault(key, {})
                node[last] = s["section"]
        spec = load_zoo_spec(zoo)
        spec.model(task)
        check_zoo_models(spec)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                origin = fetch_model_checkpoint(spec, task, out, params, retries=retries, timeout=timeout)
            finally:
                for w in caught:
                    if issubclass(w.category, UserWarning):
                        typer.echo(f"warning: {w.message}", err=True)
    except (ChecksumError, ValueError, OSError) as e:
        typer.echo(f"error: {e}; nothing was written to {out}", err=True)
        raise typer.Exit(1)
    except DownloadError as e:
        typer.echo(
            f"error: {e}\nPoint checkpoints.base_url in params.yaml (--base-url) at a mirror that serves the manifest's file names, or put the file into "
            f"torch hub's checkpoint folder {hub_checkpoint_dir()} (set TORCH_HOME to move it).",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{task}: {origin} -> {out}")


if __name__ == "__main__":
    typer.run(main)
