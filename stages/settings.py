"""Stage settings: each step's effective settings as JSON under ``--out`` (:mod:`modelgif.settings`).

    python stages/settings.py --params params.yaml --out data/settings

Runs on every ``dvc repro`` (``always_changed``), in well under a second for the built-in
sources (a folder source costs one read of its images). A stage depends on its own file, so
only the stages whose file's content changed rerun. Warnings (a reference size
other than the zoo's declared ``input_size``) are printed and kept in ``reference.json``. It also
sweeps what killed runs left behind (:func:`modelgif.io.atomic.sweep_stale_tree` under ``data/`` and
``metrics/``, :func:`modelgif.reference.archives.sweep_stale_scratch`): every repro runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from _cli import clean_errors

from modelgif.io.atomic import sweep_stale_tree, write_text
from modelgif.reference.archives import sweep_stale_scratch
from modelgif.settings import resolve_settings


@clean_errors(outputs=("out",))
def main(
    params: Path = typer.Option(Path("params.yaml"), help="the params file"),
    out: Path = typer.Option(Path("data/settings"), help="output folder"),
) -> None:
    # the one stage every repro runs: it sweeps what killed runs left (temporary outputs under
    # data/ and metrics/, archive scratch folders) even when every other stage is restored
    swept = [*sweep_stale_tree("data"), *sweep_stale_tree("metrics"), *sweep_stale_scratch()]
    if swept:
        typer.echo(f"swept {len(swept)} temporary file(s) or folder(s) ({sum(n for _, n in swept) / 2**20:.1f} MiB) "
                   "left by killed runs")
    settings = resolve_settings(yaml.safe_load(params.read_text()) or {})
    out.mkdir(parents=True, exist_ok=True)
    for name, content in settings.items():
        write_text(out / name, json.dumps(content, indent=1, sort_keys=True) + "\n")
    for stale in sorted({p.name for p in out.glob("*.json")} - set(settings)):
        (out / stale).unlink()  # a method no longer listed (outside DVC, which empties the folder first)
    for warning in settings["reference.json"]["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"settings: {len(settings)} files -> {out}")


if __name__ == "__main__":
    typer.run(main)
