"""End to end: real `dvc repro` on a temporary copy of the project, offline.

A local HTTP server stands in for GitHub: it serves random-init Taskonomy encoders in the
official checkpoint format (with their own manifest) and PNGs in the sample building's
layout. The params point at it with a tiny size.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import modelgif
from modelgif.compare.methods import FIELD_METHODS, SET_METHODS
from modelgif.score.plots import read_matrix_csv
from modelgif.reference import load_reference_images
from modelgif.io.storage import save_field
from modelgif.zoo.taskonomy import load_encoder
from helpers import (closed_port, copy_project, pipeline_env, serve_directory, write_encoder_checkpoint,
                     write_sample_building)

#: the methods params.yaml lists (the estimators need a reference set rendered from mini-scenes)
METHODS = FIELD_METHODS + SET_METHODS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["normal", "reshading", "room_layout"]
EXTRA = "curvature"
N_IMAGES, SIZE, N_STEPS = 6, 64, 3


def _run(args, cwd, env, check=True, timeout=900):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _set_params(project: Path, **changes):
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC copy of the project whose params point at a local mirror."""
    tmp = tmp_path_factory.mktemp("e2e")
    project = copy_project(ROOT, tmp / "project")

    mirror = tmp / "mirror"
    encoders = {}
    for seed, task in enumerate(TASKS + [EXTRA]):
        name = f"{task}_encoder-random{seed}.pth"
        encoders[task] = {"file": name, "sha256": write_encoder_checkpoint(mirror / "checkpoints" / name, seed)}
    (project / "mirror_manifest.json").write_text(json.dumps({"source": "test mirror", "encoders": encoders}))
    write_sample_building(mirror / "sample", N_IMAGES + 2, size=(80, 72), missing=(2,))
    base, stop = serve_directory(mirror)

    _set_params(project, models=TASKS, **{
        "reference.base_url": f"{base}/sample", "reference.n_images": N_IMAGES, "reference.image_size": SIZE,
        "checkpoints.base_url": f"{base}/checkpoints/", "checkpoints.manifest": "mirror_manifest.json",
        "field.n_steps": N_STEPS,
    })
    # the copy's own code runs its stages (the venv's editable install points at the checkout)
    env = {**pipeline_env(tmp), "PYTHONPATH": str(project)}
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "copy"], project, env)
    yield project, env, mirror
    stop()


def test_pipeline_end_to_end(project):
    project, env, mirror = project

    # 1. the whole pipeline
    out = _run(["dvc", "repro"], project, env).stdout
    assert _ran(out) == {"settings", "fetch_reference", "affinity", "method_inputs", "correlate"} | {
        f"{s}@{t}" for s in ("fetch_checkpoint", "field", "features") for t in TASKS} | {f"distance@{m}" for m in METHODS}

    # metrics equal a direct library computation on the same files
    metrics = json.loads((project / "metrics/correlation.json").read_text())
    images = load_reference_images(project / "data/reference/images.npy")
    assert images.shape == (N_IMAGES, 3, SIZE, SIZE)
    baselines = modelgif.make_baselines(images, "shuffled", 0)
    paths = []
    for task in TASKS:
        model = load_encoder(task, project / f"data/checkpoints/{task}.pth")
        field = modelgif.gradient_field(model, images, baselines, target=1, n_steps=N_STEPS, batch_size=128)
        paths.append(save_field(project.parent / f"direct_{task}.npy", field))
    direct = modelgif.distance_matrix(paths, "cosine")
    d, labels = read_matrix_csv(project / "data/affinity/distance.csv")
    assert labels == TASKS
    assert np.allclose(d, direct, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(read_matrix_csv(project / "data/methods/modelgif/distance.csv")[0], d, rtol=1e-12)
    for table in ("all_affinities", "wins_vs_pixels_16k"):
        rho = modelgif.per_task_spearman(direct, modelgif.load_ground_truth(table, TASKS))
        got = metrics[table]["modelgif"]
        assert len(got["per_task"]) == 3 and None not in got["per_task"] and np.isfinite(got["mean_rho"])
        assert got["mean_rho"] == pytest.approx(rho.mean())
        assert "mean_rho_off_diagonal" not in got  # 3 tasks: a column without its own entry has 2 sources
        assert set(metrics[table]) == set(METHODS) | {"noise_ceiling"}  # Taskonomy's 1k replicate of the 16k table
        rows = [r.split(",") for r in (project / "metrics/per_task_rho.csv").read_text().splitlines()[1:]]
        assert np.allclose([float(v) for t, name, m, v in rows if name == table and m == "modelgif"], rho)
    panels = {r.split(",")[4] for r in (project / "data/correlate/ground_truth_long.csv").read_text().splitlines()[1:]}
    assert panels == {f"ground truth: {t} (higher: closer)" for t in ("all_affinities", "wins_vs_pixels_16k")}
    for plot in ("data/affinity/distance_long.csv", "data/correlate/ground_truth_long.csv",
                 "metrics/per_task_rho.csv", "data/affinity/similarity_tree.png",
                 "data/reference/contact_sheet.png"):
        assert (project / plot).stat().st_size > 0, plot
    assert_up_to_date(project, env)
    # the DVC metric: flat, the primary (first) table's mean rho per method and static, rounded
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], project, env).stdout)
    headline = json.loads((project / "metrics/headline.json").read_text())
    assert shown[""]["data"] == {"metrics/headline.json": {"data": headline}}
    details = json.loads((project / "metrics/correlation_details.json").read_text())
    assert headline == {m: round(details["all_affinities"][m]["mean_rho"], 3)
                        for m in [*METHODS, "static"]}
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "baseline"], project, env)

    # 2. adding a task runs only its stages, then affinity and correlate
    _set_params(project, models=TASKS + [EXTRA])
    out = _run(["dvc", "repro"], project, env).stdout
    assert _ran(out) == {"settings", f"fetch_checkpoint@{EXTRA}", f"field@{EXTRA}", f"features@{EXTRA}", "affinity",
                         "method_inputs", "correlate"} | {f"distance@{m}" for m in METHODS}
    assert read_matrix_csv(project / "data/affinity/distance.csv")[1] == TASKS + [EXTRA]
    _set_params(project, models=TASKS)
    out = _run(["dvc", "repro"], project, env).stdout
    assert "field@" not in "".join(_ran(out)) and "features@" not in "".join(_ran(out))  # the stale field is not read
    assert np.allclose(read_matrix_csv(project / "data/affinity/distance.csv")[0], d)

    # 3. changing target reruns every field and fetches nothing
    _set_params(project, target=5)
    out = _run(["dvc", "repro"], project, env).stdout
    # the set methods read the encoder outputs, which the target does not change: they do not rerun
    assert _ran(out) == {f"{s}@{t}" for s in ("field", "features") for t in TASKS} | {
        "settings", "affinity", "method_inputs", "correlate"} | {f"distance@{m}" for m in FIELD_METHODS}
    assert not np.allclose(read_matrix_csv(project / "data/affinity/distance.csv")[0], d)
    # ... and switching back restores it from the run cache
    _set_params(project, target=1)
    out = _run(["dvc", "repro"], project, env).stdout
    assert "Stage 'field@normal' is cached - skipping run, checking out outputs" in out
    assert np.allclose(read_matrix_csv(project / "data/affinity/distance.csv")[0], d)
    assert_up_to_date(project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "back to target 1"], project, env)

    # 3b. a zoo's code is a dependency of its own stages only (issue 21.2): editing the mini zoo's
    # trainer, encoder, build and renderer leaves every Taskonomy stage up to date ...
    for rel in ("modelgif/mini/zoo.py", "modelgif/mini/encoder.py", "modelgif/mini/build.py", "modelgif/mini/scenes.py"):
        with open(project / rel, "a") as f:
            f.write("\n# edited\n")
    assert _ran(_run(["dvc", "repro"], project, env).stdout) == {"settings"}
    status = json.loads(_run(["dvc", "status", "--json"], project, env).stdout)
    # only the mini zoo's own build (mini/dvc.yaml, `make mini-zoo`) is out of date: its trainer changed
    assert {k for k in status if not k.startswith("mini/dvc.yaml:")} == {"settings"}
    assert "mini/dvc.yaml:train@normal" in status
    _run(["git", "checkout", "--", "modelgif/mini"], project, env)
    assert_up_to_date(project, env)
    # ... while editing the Taskonomy encoder's module reruns the stages that build its models,
    # whose outputs are the same bytes: nothing after them reruns
    with open(project / "modelgif/zoo/taskonomy.py", "a") as f:
        f.write("\n# edited\n")
    assert _ran(_run(["dvc", "repro"], project, env).stdout) == {"settings", "fetch_reference"} | {
        f"{s}@{t}" for s in ("fetch_checkpoint", "field", "features") for t in TASKS}
    assert np.allclose(read_matrix_csv(project / "data/affinity/distance.csv")[0], d)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "code edited"], project, env)

    # 4. an experiment with another target
    out = _run(["dvc", "exp", "run", "-S", "target=6"], project, env).stdout
    exps = json.loads(_run(["dvc", "exp", "show", "--json"], project, env).stdout)
    flat = json.dumps(exps)
    assert '"target": 6' in flat
    exp_metrics = [e for e in _walk(exps) if e.get("params", {}).get("params.yaml", {}).get("data", {}).get("target") == 6]
    assert exp_metrics, "dvc exp show does not list the target=6 experiment"
    m6 = exp_metrics[0]["metrics"]["metrics/headline.json"]["data"]["modelgif"]
    # the DVC metric is the rounded headline: the per-task rho are in the file the experiment left in the workspace
    full6 = json.loads((project / "metrics/correlation.json").read_text())["all_affinities"]["modelgif"]
    assert round(full6["mean_rho"], 3) == m6
    m6 = full6
    # target 6 on room_layout (output GroupNorm) is the documented void case: rho undefined there
    assert sum(r is not None for r in m6["per_task"]) == 2  # room_layout's rho is undefined (n_tasks: the details)
    # the experiment's own metrics, not the workspace's (with 3 tasks both means can be exactly -1)
    assert m6 != metrics["all_affinities"]["modelgif"] and None not in metrics["all_affinities"]["modelgif"]["per_task"]

    # 5. a corrupted checkpoint is refused by hash, leaving nothing behind
    ckpt = mirror / "checkpoints" / "reshading_encoder-random1.pth"
    original = ckpt.read_bytes()
    ckpt.write_bytes(original[:-10] + b"corrupted!")
    try:
        proc = _run(["dvc", "repro", "--force", "--single-item", "fetch_checkpoint@reshading"], project, env, check=False)
    finally:
        ckpt.write_bytes(original)
    assert proc.returncode != 0
    assert re.search(r"checksum mismatch for \S*reshading_encoder-random1\.pth: expected sha256 [0-9a-f]{64}, got", proc.stderr)
    assert [p.name for p in (project / "data/checkpoints").iterdir() if p.name.startswith(("reshading", ".reshading"))] == []

    # 6. an unreachable server gives a clear error
    _set_params(project, **{"checkpoints.base_url": f"http://127.0.0.1:{closed_port()}/"})
    proc = _run(["dvc", "repro", "fetch_checkpoint@reshading"], project, env, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "could not download" in text and "checkpoints.base_url" in text


def assert_up_to_date(project: Path, env: dict) -> None:
    """`dvc status` lists nothing but the settings stage, which looks on every repro (and the
    mini build is up to date)."""
    status = json.loads(_run(["dvc", "status", "--json"], project, env).stdout)
    assert status == {"settings": ["always changed"]}, status


def _walk(node):
    """Every dict in the nested `dvc exp show --json` output that has a 'data' with params."""
    if isinstance(node, dict):
        if "params" in node and "metrics" in node:
            yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
