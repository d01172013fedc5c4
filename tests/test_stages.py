"""The field, affinity and correlate stage commands, run as the pipeline runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import write_encoder_checkpoint

import modelgif
from modelgif.plots import read_matrix_csv
from modelgif.storage import load_field, save_field

STAGES = Path(__file__).resolve().parent.parent / "stages"
TASKS = ["normal", "reshading", "depth_zbuffer", "curvature"]


def run_stage(script: str, *args, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGES / script), *map(str, args)], cwd=cwd,
                          env={**os.environ, "MODELGIF_DEVICE": "cpu", **env},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Four correlated random fields on disk (float16 storage) and a params file listing them."""
    root = tmp_path_factory.mktemp("stages")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 3, 40))
    for task in TASKS:
        f = base + rng.uniform(0.3, 3.0) * rng.standard_normal(base.shape)
        save_field(root / "fields" / f"{task}.npy", f.astype(np.float32))
    (root / "params.yaml").write_text(yaml.safe_dump({"tasks": TASKS, "ground_truth": ["all_affinities", "wins_vs_pixels"]}))
    return root


def test_affinity_and_correlate_write_what_the_library_computes(fields):
    # a stale field of a task not in the list is never read, even if broken
    (fields / "fields" / "stale.npy").write_bytes(b"garbage")
    r = run_stage("affinity.py", "--params", "params.yaml", "--metric", "euclidean", "--fields", "fields",
                  "--out", "affinity", cwd=fields)
    assert r.returncode == 0, r.stderr
    d, labels = read_matrix_csv(fields / "affinity" / "distance.csv")
    expected = modelgif.affinity_matrix([fields / "fields" / f"{t}.npy" for t in TASKS], "euclidean")
    assert labels == TASKS and np.allclose(d, expected, rtol=1e-12)
    long = (fields / "affinity" / "distance_long.csv").read_text().splitlines()
    assert long[0] == "source,target,value,rank,panel,order_source,order_target" and len(long) == 1 + 16
    assert (fields / "affinity" / "similarity_tree.png").read_bytes()[:4] == b"\x89PNG"

    r = run_stage("correlate.py", "--params", "params.yaml", "--distance", "affinity/distance.csv",
                  "--metrics", "metrics/correlation.json", "--plots", "plots", cwd=fields)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((fields / "metrics" / "correlation.json").read_text())
    for table in ("all_affinities", "wins_vs_pixels"):
        rho = modelgif.per_task_spearman(d, modelgif.load_ground_truth(table, TASKS))
        assert metrics[table]["mean_rho"] == pytest.approx(rho.mean()) and metrics[table]["n_tasks"] == 4
        per_task = [r.split(",") for r in (fields / "metrics" / "per_task_rho.csv").read_text().splitlines()[1:]]
        assert {t: float(v) for t, name, v in per_task if name == table} == dict(zip(TASKS, rho.tolist()))
        assert (fields / "plots" / f"{table}_long.csv").is_file()
    rows = (fields / "metrics" / "per_task_rho.csv").read_text().splitlines()
    assert rows[0] == "task,table,rho" and len(rows) == 1 + 8
    assert f"all_affinities: mean rho {metrics['all_affinities']['mean_rho']:+.4f} over 4 tasks" in r.stdout


def test_affinity_errors(fields, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"tasks": TASKS + ["room_layout"]}))
    r = run_stage("affinity.py", "--params", params, "--fields", fields / "fields", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 1 and "error: no field for task(s) room_layout" in r.stderr
    assert not (tmp_path / "out").exists()
    params.write_text(yaml.safe_dump({"tasks": "normal"}))
    r = run_stage("affinity.py", "--params", params, "--fields", fields / "fields", cwd=tmp_path)
    assert r.returncode == 1 and "'tasks' must be a non-empty list" in r.stderr
    r = run_stage("affinity.py", "--params", fields / "params.yaml", "--metric", "manhattan",
                  "--fields", fields / "fields", cwd=tmp_path)
    assert r.returncode == 1 and "valid metrics: cosine, euclidean" in r.stderr


def test_correlate_errors(fields, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ground_truth": ["all_affinity"]}))
    d = tmp_path / "distance.csv"
    d.write_text("task,normal,reshading,curvature\nnormal,0,1,2\nreshading,1,0,3\ncurvature,2,3,0\n")
    r = run_stage("correlate.py", "--params", params, "--distance", d, "--metrics", tmp_path / "m.json", cwd=tmp_path)
    assert r.returncode == 1 and "error: unknown ground-truth table 'all_affinity'; valid tables" in r.stderr
    params.write_text(yaml.safe_dump({"ground_truth": ["all_affinities"]}))
    d.write_text("task,normal,pixels\nnormal,0,1\npixels,1,0\n")
    r = run_stage("correlate.py", "--params", params, "--distance", d, "--metrics", tmp_path / "m.json", cwd=tmp_path)
    assert r.returncode == 1 and "unknown task 'pixels'" in r.stderr
    assert not (tmp_path / "m.json").exists()


@pytest.fixture(scope="module")
def encoder_and_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("field")
    write_encoder_checkpoint(root / "normal.pth", seed=0)
    rng = np.random.default_rng(0)
    np.save(root / "images.npy", rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    return root


def test_field_stage_writes_the_library_field(encoder_and_images):
    root = encoder_and_images
    r = run_stage("field.py", "normal", "--checkpoint", "normal.pth", "--reference", "images.npy", "--target", "5",
                  "--n-steps", "3", "--method", "riemann_middle", "--cumulative", "false", "--dtype", "float32",
                  "--out", "fields/normal.npy", cwd=root, MODELGIF_BATCH_SIZE="4")
    assert r.returncode == 0, r.stderr
    images = modelgif.reference.load_reference_images(root / "images.npy")
    model = modelgif.load_encoder("normal", root / "normal.pth")
    expected = modelgif.gradient_field(model, images, modelgif.make_baselines(images, "shuffled", 0), target=5,
                                       n_steps=3, method="riemann_middle", cumulative=False)
    got = load_field(root / "fields" / "normal.npy")
    assert got.shape == (3, 3, 32 * 32)
    assert np.allclose(got, expected.numpy(), rtol=1e-4, atol=1e-6 * np.abs(got).max())


@pytest.mark.parametrize("args, code, message", [
    (["colour"], 1, "unknown task 'colour'"),
    (["normal", "--target", "3"], 1, "valid targets: 1, 5, 6"),
    (["normal", "--method", "simpson"], 1, "valid methods"),
    (["normal", "--cumulative", "maybe"], 2, "expected true or false"),
    (["normal", "--checkpoint", "missing.pth"], 1, "no checkpoint for normal at missing.pth"),
    (["normal", "--reference", "missing.npy"], 1, "missing.npy"),
])
def test_field_stage_errors_leave_no_output(encoder_and_images, args, code, message):
    root = encoder_and_images
    opts = {"--checkpoint": "normal.pth", "--reference": "images.npy", "--out": "bad/field.npy", "--n-steps": "2"}
    for k, v in zip(args[1::2], args[2::2]):
        opts[k] = v
    argv = [args[0]] + [x for kv in opts.items() for x in kv]
    r = run_stage("field.py", *argv, cwd=root)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert not (root / "bad").exists() or list((root / "bad").iterdir()) == []
