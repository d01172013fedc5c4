"""Stage settings: each step's effective settings as JSON under ``--out`` (:mod:`modelgif.settings`).

    python stages/settings.py --params params.yaml --out data/settings

Runs on every ``dvc repro`` (``always_changed``), in well under a second for the built-in
sources (a folder source costs one read of its images). A stage depends on its own file, so
only the stages whose file's content changed rerun. Warnings (a reference size
other than the zoo's declared ``input_size``) are printed and kept in ``reference.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from _cli import clean_errors

from modelgif._atomic import write_text
from modelgif.settings import resolve_settings


@clean_errors(outputs=("out",))
def main(
    params: Path = typer.Option(Path("params.yaml"), help="the params file"),
    out: Path = typer.Option(Path("data/settings"), help="output folder"),
) -> None:
    settings = resolve_settings(yaml.safe_load(params.read_text()) or {})
    out.mkdir(parents=True, exist_ok=True)
    for name, content in settings.items():
        write_text(out / name, json.dumps(content, indent=1, sort_keys=True) + "\n")
    for stale in sorted({p.name for p in out.glob("*.json")} - set(settings)):
        (out / stale).unlink()  # a method no longer listed (outside DVC, which empties the folder first)
    for warning in settings["reference.json"]["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"settings: {', '.join(settings)} -> {out}")


if __name__ == "__main__":
    typer.run(main)
