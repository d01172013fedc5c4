"""Stage method_inputs: for each listed method, the fingerprint of exactly the files its
``distance@<method>`` stage reads (:func:`modelgif.settings.method_input_paths`).

    python stages/method_inputs.py --params params.yaml --out data/method_inputs

``distance@<method>`` depends on ``<out>/<method>.json``, not on the three input folders, so a
change of the fields (``field.n_steps``, a new checkpoint) reruns the field methods alone and a
change of the encoder features the set-level methods alone. Each file is hashed (sha256) on
every run of this stage: at Taskonomy's size about 30 GB of fields, read once.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from _cli import clean_errors, read_models
from tqdm.auto import tqdm

from modelgif.io.atomic import write_text
from modelgif.settings import inputs_fingerprint, method_input_paths


@clean_errors(outputs=("out",))
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file holding models and methods"),
    fields: Path = typer.Option(Path("data/fields"), help="folder of <task>.npy fields"),
    features: Path = typer.Option(Path("data/features"), help="folder of <task>.npy encoder features"),
    attributions: Path = typer.Option(Path("data/attributions"), help="folder of <kind>/<task>.npy maps"),
    reference: Path = typer.Option(Path("data/reference"), help="the reference set (images.npy, manifest.json)"),
    out: Path = typer.Option(Path("data/method_inputs"), help="output folder"),
) -> None:
    tasks = read_models(params)
    methods = (yaml.safe_load(params.read_text()) or {}).get("methods") or []
    out.mkdir(parents=True, exist_ok=True)
    hashed: dict = {}
    for method in tqdm(methods, desc="hashing each method's inputs", unit="method"):
        paths = method_input_paths(str(method), tasks, fields=fields, features=features, attributions=attributions,
                                   reference=reference)
        write_text(out / f"{method}.json", json.dumps(inputs_fingerprint(paths, hashed), indent=1) + "\n")
    typer.echo(f"inputs of {', '.join(map(str, methods))} -> {out}")


if __name__ == "__main__":
    typer.run(main)
