"""Publish a finished mini build (another build seed) into this checkout's layout for mini.build.

A build of seed ``b > 0`` is made in a clone of the project (so that it never writes over build
0's committed encoders): ``mini/params.yaml`` ``seed: b``, then ``dvc repro mini/dvc.yaml``. This
copies its encoders, manifest, tables (mean and readout replicates), training logs and transfers
to the folders :mod:`modelgif.zoo.mini_builds` names, after checking each encoder against the
build's manifest by sha256 and the seed against ``b``::

    python tools/publish_mini_build.py /path/to/clone --build 1

Each destination folder is replaced as a whole (written beside it, then renamed), so a failed
copy leaves the old build in place.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelgif.io.atomic import write_text  # noqa: E402
from modelgif.io.download import sha256_file  # noqa: E402
from modelgif.zoo.mini_builds import check_build, encoders_dir, manifest_path, suffix  # noqa: E402


def _replace_dir(src: Path, dest: Path, pattern: str, keep=lambda path: True) -> int:
    """Copy ``src``'s files matching ``pattern`` (recursively) and ``keep`` to ``dest``, replacing it whole."""
    files = sorted(p for p in src.rglob(pattern) if p.is_file() and keep(p.relative_to(src)))
    if not files:
        raise SystemExit(f"error: {src} holds no {pattern} file")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for f in files:
        target = tmp / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return len(files)


def main(clone: Path = typer.Argument(..., help="the clone the build ran in (mini/dvc.yaml finished there)"),
         build: int = typer.Option(..., help="the build's number: its seed (mini/params.yaml seed), > 0")) -> None:
    check_build(build, "--build")
    if build == 0:
        raise SystemExit("error: build 0 is published by `make mini-zoo` in this checkout, not from a clone")
    mini_params = yaml.safe_load((clone / "mini" / "params.yaml").read_text())
    if mini_params.get("seed") != build:
        raise SystemExit(f"error: {clone}/mini/params.yaml has seed {mini_params.get('seed')!r}, not {build}")
    manifest = clone / "data" / "mini" / "build" / "mini_encoders.json"
    encoders = json.loads(manifest.read_text())["encoders"]
    for task, entry in encoders.items():  # every encoder is the one the build's manifest pins
        path = clone / "data" / "mini" / "encoders" / entry["file"]
        if sha256_file(path) != entry["sha256"]:
            raise SystemExit(f"error: {path} does not have the sha256 of {task} in {manifest}")
    n = _replace_dir(clone / "data" / "mini" / "encoders", ROOT / encoders_dir(build), "*.pth")
    if n != len(encoders):
        raise SystemExit(f"error: {n} encoder files in {clone}/data/mini/encoders, {len(encoders)} in the manifest")
    tables = _replace_dir(clone / "data" / "mini" / "build" / "tables", ROOT / "data" / "mini" / f"tables{suffix(build)}", "*.json")
    train = _replace_dir(clone / "data" / "mini" / "build" / "train", ROOT / "data" / "mini" / f"train{suffix(build)}", "*.json")
    replicates = {f"r{r}" for r in mini_params.get("readout_replicates", [0])}  # not a stopped run's others
    transfer = _replace_dir(clone / "data" / "mini" / "transfer", ROOT / "data" / "mini" / f"transfer{suffix(build)}", "*.npz",
                            keep=lambda rel: rel.parts[0] in replicates)
    write_text(ROOT / manifest_path(build), manifest.read_text())  # atomically, like every folder above
    typer.echo(f"build {build}: {n} encoders, {tables} tables, {train} training logs, {transfer} transfers, "
               f"manifest {manifest_path(build)}")


if __name__ == "__main__":
    typer.run(main)
