"""docs/own-zoo.md ("Your own models"), end to end (issue 13.4): the page's two code blocks, read from the
page itself, run on a temporary git copy of the project through real DVC (`dvc exp run`, i.e.
`dvc repro` of every stage); the distances and ρ are checked against a direct library
computation; a tasks list naming a model the zoo lacks stops with one line naming the zoo file."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import yaml
from helpers import copy_project, pipeline_env
from test_pipeline import ROOT, _ran, _run
from test_zoo_spec import needs_torchvision

import modelgif
from modelgif.score.plots import read_matrix_csv
from modelgif.reference import load_reference_images
from modelgif.io.storage import save_field
from modelgif.zoo.models import load_zoo_encoder

pytestmark = [pytest.mark.slow, needs_torchvision]
MODELS = ["resnet_a", "resnet_b", "resnet_c"]


def readme_example() -> tuple[str, str]:
    """The Python and the bash block of docs/own-zoo.md ("Your own models")."""
    section = (ROOT / "docs" / "own-zoo.md").read_text()
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return python, bash


def test_readme_own_models_example_end_to_end(tmp_path, monkeypatch):
    python, bash = readme_example()
    assert "python make_my_zoo.py" in bash and "torchvision.models.resnet18()" in python
    project = copy_project(ROOT, tmp_path / "project")
    env = pipeline_env(tmp_path)
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "copy"], project, env)
    # The page's script imports torchvision itself; on a machine whose torchvision is PyPI's CUDA
    # build beside a CPU torch (this one), it needs the library's import first (modelgif.zoo.models._torchvision).
    prelude = "import modelgif.zoo.models\nmodelgif.zoo.models._torchvision()\n"
    (project / "make_my_zoo.py").write_text(prelude + python)
    proc = subprocess.run(["bash", "-e", "-c", bash], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    methods = yaml.safe_load((project / "params.yaml").read_text())["methods"]
    assert _ran(proc.stdout) == {"settings", "fetch_reference", "affinity", "method_inputs", "correlate"} | {
        f"{s}@{m}" for s in ("fetch_checkpoint", "field", "features") for m in MODELS} | {
        f"distance@{m}" for m in methods}
    assert not _run(["git", "status", "--porcelain", "models"], project, env).stdout  # weights stay out of git

    # the distances and rho equal a direct computation from the declared checkpoints
    monkeypatch.chdir(project)  # the declaration's paths are relative to the project root
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["zoo"] == "mine" and params["models"] == MODELS
    fp = params["field"]
    spec = yaml.safe_load((project / "zoos/mine.yaml").read_text())
    images = load_reference_images(project / "data/reference/images.npy")
    assert images.shape == (8, 3, 64, 64)
    baselines = modelgif.make_baselines(images, fp["baseline"], fp["seed"])
    paths = []
    for name in MODELS:
        entry = spec["models"][name]
        model = load_zoo_encoder("mine", name, entry["checkpoint"], sha256=entry["sha256"])
        field = modelgif.gradient_field(model, images, baselines, target=1, n_steps=fp["n_steps"])
        paths.append(save_field(tmp_path / f"direct_{name}.npy", field))
    direct = modelgif.distance_matrix(paths, "cosine")
    d, labels = read_matrix_csv(project / "data/affinity/distance.csv")
    assert labels == MODELS
    np.testing.assert_allclose(d, direct, rtol=1e-4, atol=1e-6)
    assert np.all(d[~np.eye(3, dtype=bool)] > 1e-3)  # three different models, not one

    rows = [line.split(",") for line in (project / "zoos/mine/transfer.csv").read_text().split()[1:]]
    t = np.empty((3, 3))
    for source, target, value in rows:
        t[MODELS.index(source), MODELS.index(target)] = float(value)
    rho = modelgif.per_task_spearman(d, t)
    metrics = json.loads((project / "metrics/correlation.json").read_text())
    assert list(metrics) == ["transfer"] and set(metrics["transfer"]) == set(methods)  # no replicate: no ceiling
    score = metrics["transfer"]["modelgif"]
    details = json.loads((project / "metrics/correlation_details.json").read_text())
    assert details["transfer"]["modelgif"]["n_tasks"] == 3 and score["mean_rho"] == pytest.approx(float(np.mean(rho)), abs=1e-12)
    assert f"modelgif: mean rho {score['mean_rho']:+.4f}" in proc.stdout

    # a model the zoo lacks: one line naming the zoo file, from the first stage that reads it
    bad = _run(["dvc", "exp", "run", "-S", "models=[resnet_a,resnet_z]"], project, env, check=False)
    assert bad.returncode != 0
    assert "error: zoos/mine.yaml: unknown task 'resnet_z': not a model of zoo mine" in bad.stdout + bad.stderr

