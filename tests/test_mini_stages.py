"""The main pipeline's stage commands with ``--zoo mini`` / ``mini_random``, run as DVC runs them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from pathlib import Path

from test_stages import run_stage

import modelgif
from modelgif.io.download import sha256_file

ROOT = Path(__file__).resolve().parents[1]
from modelgif.mini import TASK_LABELS, render_scenes
from modelgif.mini import zoo
from modelgif.mini.build import table_json, write_manifest
from modelgif.reference import load_reference_images, rendered_reference_set
from modelgif.io.storage import load_field
from modelgif.zoo.models import random_encoder

TASKS = ["normal", "reshading", "class_object"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """params.yaml with a mini section, three trained-for-a-few-steps encoders and their manifest."""
    root = tmp_path_factory.mktemp("mini_stages")
    data = render_scenes(range(8), 32)
    for i, task in enumerate(TASKS):
        enc, _, _ = zoo.train_encoder(task, data, steps=2, batch_size=4, seed=i, progress=False)
        zoo.save_encoder(root / "encoders" / f"{task}.pth", enc)
    write_manifest(root / "manifest.json", root / "encoders", TASKS, source="test")
    params = {
        "ground_truth": ["all_affinities"], "reference": {}, "checkpoints": {},
        "mini": {"checkpoints": {"base_url": "encoders", "manifest": "manifest.json", "random_seed": 0},
                 "ground_truth": ["losses"]},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


@pytest.mark.slow  # runs stage scripts as processes
def test_fetch_reference_renders_the_mini_reference_scenes(project):
    r = run_stage("fetch_reference.py", "--zoo", "mini", "--n-images", 4, "--image-size", 32, "--first-scene", 77,
                  "--cutmix", "false", "--out", "ref", cwd=project)
    assert r.returncode == 0, r.stderr
    expected = rendered_reference_set(4, 32, first_seed=77, use_cutmix=False)
    assert np.array_equal(np.load(project / "ref" / "images.npy"), expected.images)
    assert json.loads((project / "ref" / "manifest.json").read_text())["files"][0] == "scene_77"


@pytest.mark.slow  # runs stage scripts as processes
def test_fetch_checkpoint_mini_copies_the_verified_file(project, tmp_path):
    r = run_stage("fetch_checkpoint.py", "normal", "--zoo", "mini", "--mini-base-url", "encoders",
                  "--mini-manifest", "manifest.json", "--out", "ckpt/normal.pth", cwd=project)
    assert r.returncode == 0, r.stderr
    assert sha256_file(project / "ckpt" / "normal.pth") == sha256_file(project / "encoders" / "normal.pth")
    # a tampered copy is refused and nothing is written
    bad = tmp_path / "proj"
    shutil.copytree(project, bad)
    raw = bytearray((bad / "encoders" / "normal.pth").read_bytes())
    raw[-20] ^= 1
    (bad / "encoders" / "normal.pth").write_bytes(bytes(raw))
    r = run_stage("fetch_checkpoint.py", "normal", "--zoo", "mini", "--mini-base-url", "encoders",
                  "--mini-manifest", "manifest.json", "--out", "out/normal.pth", cwd=bad)
    assert r.returncode == 1 and "checksum mismatch" in r.stderr and "nothing was written" in r.stderr
    assert not (bad / "out").exists() or not list((bad / "out").iterdir())
    r = run_stage("fetch_checkpoint.py", "keypoints3d", "--zoo", "mini", "--mini-base-url", "encoders",
                  "--mini-manifest", "manifest.json", "--out", "out/k.pth", cwd=project)
    assert r.returncode == 1 and "task 'keypoints3d' is not in the manifest" in r.stderr
    r = run_stage("fetch_checkpoint.py", "normal", "--zoo", "tiny", "--out", "out/n.pth", cwd=project)
    assert r.returncode == 1 and "unknown zoo 'tiny'" in r.stderr


@pytest.mark.slow  # runs stage scripts as processes
def test_fetch_checkpoint_mini_random_writes_the_untrained_encoder(project):
    r = run_stage("fetch_checkpoint.py", "reshading", "--zoo", "mini_random", "--random-seed", 0,
                  "--out", "random/reshading.pth", cwd=project)
    assert r.returncode == 0, r.stderr
    got = zoo.load_mini_encoder(project / "random" / "reshading.pth").state_dict()
    want = random_encoder("reshading", 0).state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.slow  # runs stage scripts as processes
def test_field_stage_mini_is_the_library_field(project):
    rendered = rendered_reference_set(4, 32, first_seed=5, use_cutmix=False)
    np.save(project / "images.npy", rendered.images)
    r = run_stage("field.py", "class_object", "--zoo", "mini", "--checkpoint", "encoders/class_object.pth",
                  "--reference", "images.npy", "--target", "6", "--n-steps", "4", "--dtype", "float32",
                  "--out", "fields/class_object.npy", cwd=project, MODELGIF_BATCH_SIZE="5")
    assert r.returncode == 0, r.stderr
    images = load_reference_images(project / "images.npy")
    model = zoo.load_mini_encoder(project / "encoders" / "class_object.pth")
    expected = modelgif.gradient_field(model, images, modelgif.make_baselines(images, "shuffled", 0), target=6,
                                       n_steps=4)
    got = load_field(project / "fields" / "class_object.npy")
    assert got.shape == (4, 4, 32 * 32) and np.abs(got).max() > 0  # target 6 is not void for a mini encoder
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-6 * np.abs(got).max())
    r = run_stage("field.py", "class_object", "--zoo", "taskonomy", "--checkpoint", "encoders/class_object.pth",
                  "--reference", "images.npy", "--out", "fields/x.npy", cwd=project)
    assert r.returncode == 1 and not (project / "fields" / "x.npy").exists()


@pytest.mark.slow  # runs stage scripts as processes
def test_correlate_mini_reads_the_mini_tables(project, tmp_path):
    rng = np.random.default_rng(0)
    tables = tmp_path / "tables"
    losses = rng.uniform(size=(17, 17))
    tables.mkdir()
    (tables / "losses.json").write_text(table_json("losses", losses, TASK_LABELS, "test"))
    d = rng.uniform(size=(3, 3))
    d = d + d.T
    np.fill_diagonal(d, 0)
    from modelgif.score.plots import matrix_csv

    methods = project / "methods" / "modelgif"
    methods.mkdir(parents=True, exist_ok=True)
    matrix_csv(methods / "distance.csv", d, TASKS)
    np.save(methods / "bootstrap.npy", np.stack([d, d]))
    (methods / "meta.json").write_text(json.dumps({"tasks": TASKS}))
    (project / "params_methods.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load((project / "params.yaml").read_text()), "methods": ["modelgif"]}))
    # the mini zoo's declaration with its tables elsewhere (no environment variable changes a result)
    decl = yaml.safe_load((ROOT / "zoos" / "mini.yaml").read_text())
    decl["ground_truth"] = {"names": "taskonomy", "tables": {"losses": {"file": str(tables / "losses.json"),
                                                                         "higher_is_closer": False}}}
    (tmp_path / "mini_elsewhere.yaml").write_text(yaml.safe_dump(decl))
    r = run_stage("correlate.py", "--zoo", str(tmp_path / "mini_elsewhere.yaml"), "--params", "params_methods.yaml",
                  "--methods", "methods", "--metrics", "m/correlation.json", "--plots", "plots", cwd=project)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((project / "m" / "correlation.json").read_text())
    idx = [TASK_LABELS.index(t) for t in TASKS]
    rho = modelgif.per_task_spearman(d, losses[np.ix_(idx, idx)])
    assert list(metrics) == ["losses"]
    assert metrics["losses"]["modelgif"]["mean_rho"] == pytest.approx(float(np.mean(rho)))


@pytest.mark.slow  # runs stage scripts as processes
def test_correlate_excludes_degenerate_targets_and_measures_the_ceiling_from_readouts(project, tmp_path):
    """A table with readout replicates and a mostly tied target column: the column leaves the
    mean with its reason in the metrics, and the noise ceiling is the readout replicates'
    (modelgif.score.ceiling), the other build's agreement kept beside it as build_agreement."""
    from modelgif.score.ceiling import readout_noise_ceiling
    from modelgif.score.plots import matrix_csv

    tasks = ["normal", "reshading", "class_object", "curvature", "depth_zbuffer", "keypoints2d"]
    idx = [TASK_LABELS.index(t) for t in tasks]
    rng = np.random.default_rng(4)
    truth = rng.uniform(size=(17, 17))
    reps = truth[None] + 0.3 * rng.standard_normal((3, 17, 17))
    j = TASK_LABELS.index("curvature")
    reps[:, :, j] = 1.0  # curvature: every source the same in every replicate but two (3 of its 5 sources tie)
    reps[:, TASK_LABELS.index("normal"), j] = [0.2, 0.3, 0.25]
    reps[:, TASK_LABELS.index("keypoints2d"), j] = [0.5, 0.4, 0.45]
    tables = tmp_path / "tables"
    for r, t in enumerate(reps):
        (tables / "readouts").mkdir(parents=True, exist_ok=True)
        (tables / "readouts" / f"losses_r{r}.json").write_text(table_json("losses", t, TASK_LABELS, "test"))
    mean = reps.mean(axis=0)
    (tables / "losses.json").write_text(table_json("losses", mean, TASK_LABELS, "test"))
    other = rng.uniform(size=(17, 17))
    (tables / "other_build.json").write_text(table_json("losses", other, TASK_LABELS, "test"))
    d = rng.uniform(size=(6, 6))
    d = d + d.T
    np.fill_diagonal(d, 0)
    methods = tmp_path / "methods" / "modelgif"
    methods.mkdir(parents=True)
    matrix_csv(methods / "distance.csv", d, tasks)
    np.save(methods / "bootstrap.npy", np.stack([d, d]))
    (methods / "meta.json").write_text(json.dumps({"tasks": tasks}))
    params = {**yaml.safe_load((project / "params.yaml").read_text()), "methods": ["modelgif"],
              "degenerate": {"max_tied_fraction": 0.5}, "permutation": {"n": 50}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    decl = yaml.safe_load((ROOT / "zoos" / "mini.yaml").read_text())
    decl["ground_truth"] = {"names": "taskonomy", "tables": {"losses": {
        "file": str(tables / "losses.json"), "higher_is_closer": False,
        "readouts": str(tables / "readouts" / "losses_r*.json"), "replicate": str(tables / "other_build.json")}}}
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(decl))
    r = run_stage("correlate.py", "--zoo", str(tmp_path / "zoo.yaml"), "--params", str(tmp_path / "params.yaml"),
                  "--methods", str(tmp_path / "methods"), "--metrics", str(tmp_path / "m" / "correlation.json"),
                  "--plots", str(tmp_path / "plots"), cwd=project)
    assert r.returncode == 0, r.stderr
    assert "excluded target curvature: 3 of 5 sources tie at 1" in r.stdout
    m = json.loads((tmp_path / "m" / "correlation.json").read_text())["losses"]
    assert list(m["excluded_targets"]) == ["curvature"]
    kept = [i for i, t in enumerate(tasks) if t != "curvature"]
    t6 = mean[np.ix_(idx, idx)]
    from scipy.stats import spearmanr

    direct = [spearmanr(t6[:, c], d[:, c]).statistic for c in kept]
    assert m["modelgif"]["mean_rho"] == pytest.approx(float(np.mean(direct)))
    assert m["modelgif"]["per_task"][tasks.index("curvature")] is None
    want = readout_noise_ceiling(reps[:, idx][:, :, idx], exclude=[tasks.index("curvature")], seed=0)
    nc = m["noise_ceiling"]
    assert nc["kind"].startswith("readout replicates") and nc["replicates"] == 3
    for key in ("lower", "upper", "reliability", "ceiling", "lower_ci95"):
        assert nc[key] == pytest.approx(want[key]), key
    assert nc["mean_rho"] == nc["ceiling"] and "lower_off_diagonal" in nc
    assert m["build_agreement"]["replicate"] == "other_build" and m["build_agreement"]["kind"].startswith("another build")
