"""The field, affinity and correlate stage commands, run as the pipeline runs them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fs_faults import full_dir, leftovers, readonly_dir  # noqa: F401 - fixtures
from helpers import write_encoder_checkpoint

import modelgif
from modelgif.score.plots import matrix_csv, read_matrix_csv
from modelgif.io.provenance import field_record, read_record, write_record
from modelgif.io.storage import load_field, save_field

STAGES = Path(__file__).resolve().parent.parent / "stages"
TASKS = ["normal", "reshading", "depth_zbuffer", "curvature"]


def assert_one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed with status 1 and one ``error:`` line (its last) holding every fragment."""
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), r.stderr
    for fragment in fragments:
        assert fragment in last, r.stderr
    return last


def run_stage(script: str, *args, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGES / script), *map(str, args)], cwd=cwd,
                          env={**os.environ, "MODELGIF_DEVICE": "cpu", **env},
                          capture_output=True, text=True, timeout=300)


def write_field(path: Path, field: np.ndarray, **changes) -> Path:
    """Store ``field`` (float16 storage) with a provenance record as the field stage writes it;
    ``changes`` override the record's settings."""
    save_field(path, field)
    settings = dict(reference_sha256="0" * 64, checkpoint_sha256=None, zoo="taskonomy", target=1, n_steps=3,
                    method="gausslegendre", baseline="shuffled", seed=0, cumulative=True, dtype="float16",
                    precision="float32", sketch_dim=0, sketch_seed=0, shape=field.shape)
    write_record(path, field_record(path.stem, **{**settings, **changes}))
    return path


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Four correlated random fields on disk (float16 storage) and a params file listing them."""
    root = tmp_path_factory.mktemp("stages")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 3, 40))
    for task in TASKS:
        f = base + rng.uniform(0.3, 3.0) * rng.standard_normal(base.shape)
        write_field(root / "fields" / f"{task}.npy", f.astype(np.float32))
    (root / "params.yaml").write_text(yaml.safe_dump({"models": TASKS, "ground_truth": ["all_affinities", "wins_vs_pixels"]}))
    return root


@pytest.mark.slow  # runs stage scripts as processes
def test_affinity_and_correlate_write_what_the_library_computes(fields):
    # a stale field of a task not in the list is never read, even if broken
    (fields / "fields" / "stale.npy").write_bytes(b"garbage")
    r = run_stage("affinity.py", "--params", "params.yaml", "--metric", "euclidean", "--fields", "fields",
                  "--out", "affinity", cwd=fields)
    assert r.returncode == 0, r.stderr
    d, labels = read_matrix_csv(fields / "affinity" / "distance.csv")
    expected = modelgif.distance_matrix([fields / "fields" / f"{t}.npy" for t in TASKS], "euclidean")
    assert labels == TASKS and np.allclose(d, expected, rtol=1e-12)
    long = (fields / "affinity" / "distance_long.csv").read_text().splitlines()
    assert long[0] == "source,target,value,rank,panel,order_source,order_target" and len(long) == 1 + 16
    assert (fields / "affinity" / "similarity_tree.png").read_bytes()[:4] == b"\x89PNG"

    # the modelgif method's distance stage (euclidean, as above) and correlate on it alone
    (fields / "params.yaml").write_text(yaml.safe_dump({**yaml.safe_load((fields / "params.yaml").read_text()),
                                                        "methods": ["modelgif"]}))
    r = run_stage("method_distance.py", "modelgif", "--params", "params.yaml", "--metric", "euclidean",
                  "--n-boot", "20", "--fields", "fields", "--out", "methods/modelgif", cwd=fields)
    assert r.returncode == 0, r.stderr
    assert np.allclose(read_matrix_csv(fields / "methods" / "modelgif" / "distance.csv")[0], d, rtol=1e-12)
    r = run_stage("correlate.py", "--params", "params.yaml", "--methods", "methods",
                  "--metrics", "metrics/correlation.json", "--plots", "plots", cwd=fields)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((fields / "metrics" / "correlation.json").read_text())
    details = json.loads((fields / "metrics" / "correlation_details.json").read_text())
    from modelgif.score.inference import (mantel_null, permutation_p, static_distance, target_draws, task_permutations,
                                    task_resampled_rho)

    for table in ("all_affinities", "wins_vs_pixels"):
        truth = modelgif.load_ground_truth(table, TASKS)
        rho = modelgif.per_task_spearman(d, truth)
        got = metrics[table]["modelgif"]
        assert set(got) == {"mean_rho", "mean_rho_off_diagonal", "mean_rho_ci95", "mean_rho_off_diagonal_ci95",
                            "per_task"}
        assert got["mean_rho"] == pytest.approx(rho.mean()) and details[table]["modelgif"]["n_tasks"] == 4
        assert got["per_task"] == pytest.approx(rho.tolist())
        # the details: the Mantel null with the params' seed, the static baseline from the table alone
        full = details[table]["modelgif"]
        null = mantel_null(d, truth, task_permutations(4, 1000, seed=(0, 2)))
        assert full["p_perm"] == pytest.approx(permutation_p(rho.mean(), null, "lower"))
        assert full["chance_level"] == pytest.approx(null.mean())
        assert full["mean_rho_ci95_images"] != full["mean_rho_ci95"]
        static = modelgif.per_task_spearman(static_distance(truth, True), truth)
        assert details[table]["static"]["mean_rho"] == pytest.approx(static.mean())
        assert details[table]["static"]["role"] == details[table]["hub:modelgif"]["role"] == "baseline"
        # the method's own hub baseline (each source's mean distance to the other tasks, per resample)
        # and how much the method beats it, paired over the same image resamples and task draws
        boot = np.load(fields / "methods" / "modelgif" / "bootstrap.npy")
        hub = lambda m: np.array([[np.mean([m[i, q] for q in range(4) if q != i])] * 4 for i in range(4)])  # noqa: E731
        hub_rho = modelgif.per_task_spearman(hub(d), truth)
        assert details[table]["hub:modelgif"]["mean_rho"] == pytest.approx(hub_rho.mean(), abs=1e-12)
        assert full["minus_hub"] == pytest.approx(rho.mean() - hub_rho.mean(), abs=1e-12)
        draws = target_draws(4, 20, seed=(0, 1))
        reps = (task_resampled_rho(boot, truth, draws)
                - task_resampled_rho(np.stack([hub(m) for m in boot]), truth, draws))
        assert full["minus_hub_ci95"] == pytest.approx(np.nanpercentile(reps, [2.5, 97.5]), abs=1e-12)
        assert "minus_hub_off_diagonal_ci95" in full and "minus_hub" not in details[table]["hub:modelgif"]
        per_task = [r.split(",") for r in (fields / "metrics" / "per_task_rho.csv").read_text().splitlines()[1:]]
        assert ({t: float(v) for t, name, m, v in per_task if name == table and m == "modelgif"}
                == dict(zip(TASKS, rho.tolist())))
        assert f"ground truth: {table} (" in (fields / "plots" / "ground_truth_long.csv").read_text()
    assert "primary" not in details  # one method: no family
    # the DVC metric: the primary table's (the first: all_affinities) mean rho of the method and
    # the static baseline, rounded to 3 decimals, flat (its noise ceiling only in the metrics JSON)
    truth = modelgif.load_ground_truth("all_affinities", TASKS)
    static = modelgif.per_task_spearman(static_distance(truth, True), truth)
    assert json.loads((fields / "metrics" / "headline.json").read_text()) == {
        "modelgif": round(float(modelgif.per_task_spearman(d, truth).mean()), 3), "static": round(float(static.mean()), 3)}
    assert "noise_ceiling" in metrics["all_affinities"]
    rows = (fields / "metrics" / "per_task_rho.csv").read_text().splitlines()
    assert rows[0] == "task,table,method,rho" and len(rows) == 1 + 4 * 2 * 3  # modelgif, static, hub:modelgif
    assert (f"modelgif: mean rho {metrics['all_affinities']['modelgif']['mean_rho']:+.4f} "
            f"[{metrics['all_affinities']['modelgif']['mean_rho_ci95'][0]:+.4f}, ") in r.stdout


@pytest.mark.slow  # runs stage scripts as processes
def test_affinity_errors(fields, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"models": TASKS + ["room_layout"]}))
    r = run_stage("affinity.py", "--params", params, "--fields", fields / "fields", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 1 and "error: no field for task(s) room_layout" in r.stderr
    assert not (tmp_path / "out").exists()
    params.write_text(yaml.safe_dump({"models": "normal"}))
    r = run_stage("affinity.py", "--params", params, "--fields", fields / "fields", cwd=tmp_path)
    assert r.returncode == 1 and "'models' must be a non-empty list" in r.stderr
    params.write_text(yaml.safe_dump({"tasks": TASKS}))  # the key's old name
    r = run_stage("affinity.py", "--params", params, "--fields", fields / "fields", cwd=tmp_path)
    assert r.returncode == 1 and f"error: {params}: 'tasks' is now called 'models'" in r.stderr
    r = run_stage("affinity.py", "--params", fields / "params.yaml", "--metric", "manhattan",
                  "--fields", fields / "fields", cwd=tmp_path)
    assert r.returncode == 1 and "valid metrics: cosine, euclidean" in r.stderr


def _method_folder(folder: Path, text: str, n_boot: int = 2, **meta) -> Path:
    """A distance stage's output folder holding the matrix ``text`` (CSV) and its resamples."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "distance.csv").write_text(text)
    d, tasks = read_matrix_csv(folder / "distance.csv")
    np.save(folder / "bootstrap.npy", np.stack([d] * n_boot))
    (folder / "meta.json").write_text(json.dumps({"tasks": tasks, "n_images": 5, "bootstrap": {"n": n_boot, "seed": 0},
                                                  "resamples_sha256": "0" * 64, **meta}))
    return folder


@pytest.mark.slow  # runs stage scripts as processes
def test_correlate_errors(fields, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ground_truth": ["all_affinity"], "methods": ["modelgif"]}))
    three = "task,normal,reshading,curvature\nnormal,0,1,2\nreshading,1,0,3\ncurvature,2,3,0\n"
    _method_folder(tmp_path / "methods" / "modelgif", three)
    args = ["--params", params, "--methods", tmp_path / "methods", "--metrics", tmp_path / "m.json"]
    r = run_stage("correlate.py", *args, cwd=tmp_path)
    assert r.returncode == 1 and "error: unknown ground-truth table 'all_affinity'; valid tables" in r.stderr
    params.write_text(yaml.safe_dump({"ground_truth": ["all_affinities"], "methods": ["modelgif"]}))
    _method_folder(tmp_path / "methods" / "modelgif", "task,normal,pixels\nnormal,0,1\npixels,1,0\n")
    r = run_stage("correlate.py", *args, cwd=tmp_path)
    assert r.returncode == 1 and "unknown task 'pixels'" in r.stderr
    # methods whose resamples do not pair; a method whose stage has not run; no methods list
    _method_folder(tmp_path / "methods" / "modelgif", three)
    _method_folder(tmp_path / "methods" / "cka", three, n_images=6)
    params.write_text(yaml.safe_dump({"ground_truth": ["all_affinities"], "methods": ["modelgif", "cka"]}))
    r = run_stage("correlate.py", *args, cwd=tmp_path)
    assert_one_line_error(r, "cka and ", "differ in n_images: their bootstrap resamples do not pair")
    params.write_text(yaml.safe_dump({"ground_truth": ["all_affinities"], "methods": ["modelgif", "rsa"]}))
    r = run_stage("correlate.py", *args, cwd=tmp_path)
    assert_one_line_error(r, "rsa/distance.csv is missing (run its distance stage)")
    params.write_text(yaml.safe_dump({"ground_truth": ["all_affinities"], "methods": "modelgif"}))
    r = run_stage("correlate.py", *args, cwd=tmp_path)
    assert_one_line_error(r, "'methods' must be a non-empty list of distinct method names")
    assert not (tmp_path / "m.json").exists()
    # the primary endpoint and the permutations, named when wrong
    for extra, message in (({"primary": {"table": "losses"}}, "primary.table 'losses' is not one of the zoo's tables"),
                           ({"primary": {"score": "mean_rho_target_specific"}}, "primary.score must be one of"),
                           ({"primary": {"method": "modelgif", "endpoint": 1}}, "'primary' must be a mapping"),
                           ({"permutation": {"n": 0}}, "permutation.n must be a positive integer")):
        params.write_text(yaml.safe_dump({"ground_truth": ["all_affinities"], "methods": ["modelgif"], **extra}))
        r = run_stage("correlate.py", *args, cwd=tmp_path)
        assert_one_line_error(r, message)
        assert not (tmp_path / "m.json").exists() and not (tmp_path / "m_details.json").exists()


@pytest.mark.slow  # runs stage scripts as processes
def test_method_distance_errors(fields, tmp_path):
    params = tmp_path / "params.yaml"
    args = ["--params", params, "--fields", fields / "fields", "--out", tmp_path / "out"]
    for options, fragment in (({"cka": {"unbiased": True}}, "method 'cka' has no option(s) unbiased; its options: debiased"),
                              ({"dds": {"kernel": "poly"}}, "dds: unknown kernel 'poly'"),
                              ({"cka": {"debiased": "yes"}}, "option debiased must be true or false")):
        params.write_text(yaml.safe_dump({"models": TASKS, "method_options": options}))
        r = run_stage("method_distance.py", next(iter(options)), *args, cwd=tmp_path)
        assert_one_line_error(r, fragment)
    r = run_stage("method_distance.py", "lrp", *args, cwd=tmp_path)
    assert_one_line_error(r, "unknown method 'lrp'; valid methods: modelgif, ig, saliency, gradxinput, rsa, cka, dds")
    params.write_text(yaml.safe_dump({"models": TASKS}))
    r = run_stage("method_distance.py", "cka", *args, "--features", tmp_path / "none", cwd=tmp_path)
    assert_one_line_error(r, "cka: no input", "none/normal.npy")
    assert not (tmp_path / "out").exists()
    # a device that is not there is a usage error (status 2) before anything is read
    for device, fragment in (("gpu", "unknown device 'gpu'"), ("cuda:0", "asked for, but CUDA is not available")):
        if device.startswith("cuda") and torch.cuda.is_available():
            continue
        r = run_stage("method_distance.py", "cka", *args, "--features", tmp_path / "none", cwd=tmp_path,
                      MODELGIF_DEVICE=device)
        assert r.returncode == 2 and fragment in r.stderr and "no input" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # runs stage scripts as processes
def test_affinity_output_errors_come_before_any_work(fields, tmp_path, readonly_dir):
    (tmp_path / "file").write_text("x")
    args = ["--params", fields / "params.yaml", "--fields", fields / "fields", "--out"]
    for out in (tmp_path / "file", tmp_path / "file" / "affinity"):
        r = run_stage("affinity.py", *args, out, cwd=tmp_path)
        assert_one_line_error(r, f"cannot write into {out}: {tmp_path / 'file'} is a file, not a folder")
        assert "distances" not in r.stderr  # refused before the progress bar started
    r = run_stage("affinity.py", *args, readonly_dir / "affinity", cwd=tmp_path)
    assert_one_line_error(r, f"cannot write into {readonly_dir / 'affinity'}: {readonly_dir} is ")
    assert "read-only file system" in r.stderr or "permission denied" in r.stderr
    assert leftovers(readonly_dir) == []


@pytest.mark.slow  # runs stage scripts as processes
def test_affinity_on_a_full_disk(fields, full_dir):
    out = full_dir / "affinity"
    r = run_stage("affinity.py", "--params", fields / "params.yaml", "--fields", fields / "fields", "--out", out,
                  cwd=fields)
    assert_one_line_error(r, "no space left on device", str(out))
    assert leftovers(out) == [] and leftovers(full_dir) in ([], ["affinity"])  # no half-written or temporary file


@pytest.mark.slow  # runs stage scripts as processes
def test_affinity_refuses_fields_that_cannot_be_compared(fields, tmp_path):
    shutil.copytree(fields / "fields", tmp_path / "fields")
    args = ["--params", fields / "params.yaml", "--fields", tmp_path / "fields", "--out", tmp_path / "out"]
    rng = np.random.default_rng(1)
    write_field(tmp_path / "fields" / "curvature.npy", rng.standard_normal((5, 3, 40)).astype(np.float32),
                reference_sha256="f" * 64)
    write_field(tmp_path / "fields" / "reshading.npy", rng.standard_normal((5, 3, 40)).astype(np.float32),
                target=5)
    r = run_stage("affinity.py", *args, cwd=tmp_path)
    assert_one_line_error(r, f"reference_sha256 ({'0' * 12}…: normal, reshading, depth_zbuffer; {'f' * 12}…: curvature)",
                          'target (1: normal, depth_zbuffer, curvature; 5: reshading)')
    assert not (tmp_path / "out").exists()
    (tmp_path / "fields" / "normal.json").unlink()
    r = run_stage("affinity.py", *args, cwd=tmp_path)
    assert_one_line_error(r, f"field {tmp_path / 'fields' / 'normal.npy'} has no provenance record")
    with open(tmp_path / "fields" / "normal.npy", "wb") as f:  # an .npz where a field should be
        np.savez(f, field=np.zeros((5, 3, 40), np.float32))
    shutil.copy(fields / "fields" / "normal.json", tmp_path / "fields" / "normal.json")
    r = run_stage("affinity.py", *args, cwd=tmp_path)
    assert_one_line_error(r, "normal.npy is an .npz archive, not a .npy field")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def distance_csv(tmp_path):
    """A valid distance.csv over :data:`TASKS` (a symmetric matrix with a zero diagonal)."""
    d = np.abs(np.subtract.outer(np.arange(4.0), np.arange(4.0) ** 1.5))
    matrix_csv(tmp_path / "distance.csv", d + d.T, TASKS)
    return tmp_path / "distance.csv"


def _correlate(distance: Path, metrics: Path, plots: Path, cwd: Path):
    """The correlate stage on one method, modelgif, whose distance.csv is a copy of ``distance``."""
    folder = cwd / "methods" / distance.stem / "modelgif"
    folder.mkdir(parents=True, exist_ok=True)
    if distance.is_file():
        shutil.copy(distance, folder / "distance.csv")
        np.save(folder / "bootstrap.npy", np.zeros((2, 4, 4)))
        (folder / "meta.json").write_text("{}")
    (cwd / "params_m.yaml").write_text(yaml.safe_dump({"ground_truth": ["all_affinities", "wins_vs_pixels"],
                                                       "methods": ["modelgif"]}))
    return run_stage("correlate.py", "--params", cwd / "params_m.yaml", "--methods", folder.parent,
                     "--metrics", metrics, "--plots", plots, cwd=cwd)


@pytest.mark.slow  # runs stage scripts as processes
def test_correlate_input_and_output_errors(fields, tmp_path, distance_csv, readonly_dir):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("task,normal,reshading\nnormal,0,1\nreshading,1\n")

    def correlate(distance, metrics, plots):
        return _correlate(distance, metrics, plots, tmp_path)

    r = correlate(tmp_path / "empty.csv", tmp_path / "m" / "c.json", tmp_path / "plots")
    assert_one_line_error(r, f"{tmp_path / 'methods/empty/modelgif/distance.csv'} holds no matrix")
    r = correlate(tmp_path / "ragged.csv", tmp_path / "m" / "c.json", tmp_path / "plots")
    assert_one_line_error(r, "ragged/modelgif/distance.csv: row reshading has 1 values, expected 2")
    r = correlate(tmp_path / "missing.csv", tmp_path / "m" / "c.json", tmp_path / "plots")
    assert_one_line_error(r, f"{tmp_path / 'methods/missing/modelgif/distance.csv'} is missing (run its distance stage)")
    r = correlate(distance_csv, tmp_path / "folder", tmp_path / "plots")
    assert_one_line_error(r, f"output {tmp_path / 'folder'} is a folder; it must name a file")
    r = correlate(distance_csv, tmp_path / "file" / "c.json", tmp_path / "plots")
    assert_one_line_error(r, f"cannot write {tmp_path / 'file' / 'c.json'}: {tmp_path / 'file'} is a file, not a folder")
    r = correlate(distance_csv, tmp_path / "m" / "c.json", tmp_path / "file" / "plots")
    assert_one_line_error(r, f"cannot write into {tmp_path / 'file' / 'plots'}: {tmp_path / 'file'} is a file")
    r = correlate(distance_csv, readonly_dir / "c.json", tmp_path / "plots")
    assert_one_line_error(r, f"cannot write {readonly_dir / 'c.json'}: {readonly_dir} is ")
    assert not (tmp_path / "plots").exists() and not (tmp_path / "m").exists() and leftovers(readonly_dir) == []
    r = correlate(distance_csv, tmp_path / "m" / "c.json", tmp_path / "plots")  # the same inputs, all well
    assert r.returncode == 0, r.stderr


@pytest.mark.slow  # runs stage scripts as processes
def test_correlate_on_a_full_disk(fields, distance_csv, full_dir):
    r = _correlate(distance_csv, full_dir / "metrics" / "c.json", full_dir / "plots", distance_csv.parent)
    assert_one_line_error(r, "no space left on device", str(full_dir / "plots"))
    assert all(leftovers(full_dir / d) == [] for d in ("metrics", "plots"))


@pytest.fixture(scope="module")
def encoder_and_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("field")
    write_encoder_checkpoint(root / "normal.pth", seed=0)
    rng = np.random.default_rng(0)
    np.save(root / "images.npy", rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    np.savez(root / "images.npz", images=rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    (root / "a_file").write_text("x")
    (root / "a_folder").mkdir()
    return root


@pytest.mark.slow  # runs stage scripts as processes
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
    record = read_record(root / "fields" / "normal.npy")  # fields/normal.json: what it was computed from
    assert record == {
        "format": 1, "task": "normal", "zoo": "taskonomy",
        "reference_sha256": hashlib.sha256((root / "images.npy").read_bytes()).hexdigest(),
        "checkpoint_sha256": hashlib.sha256((root / "normal.pth").read_bytes()).hexdigest(),
        "target": 5, "n_steps": 3, "method": "riemann_middle", "baseline": "shuffled", "seed": 0, "cumulative": False,
        "dtype": "float32", "precision": "float32", "sketch_dim": 0, "sketch_seed": None, "shape": [3, 3, 1024]}


@pytest.mark.slow  # runs stage scripts as processes
@pytest.mark.parametrize("args, code, message", [
    (["colour"], 1, "unknown task 'colour'"),
    (["normal", "--target", "3"], 1, "valid targets: 1, 5, 6"),
    (["normal", "--method", "simpson"], 1, "valid methods"),
    (["normal", "--cumulative", "maybe"], 2, "expected true or false"),
    (["normal", "--checkpoint", "missing.pth"], 1, "no checkpoint for normal at missing.pth"),
    (["normal", "--reference", "missing.npy"], 1, "missing.npy"),
    (["normal", "--reference", "images.npz"], 1, "images.npz is an .npz archive, not a .npy array of images"),
    (["normal", "--n-steps", "0"], 1, "n_steps must be a positive integer, got 0"),
    (["normal", "--n-steps", "-1"], 1, "n_steps must be a positive integer, got -1"),
    # room_layout's target 6 is void (its field is zero without computing): n_steps is checked all the same
    (["room_layout", "--target", "6", "--n-steps", "0"], 1, "n_steps must be a positive integer, got 0"),
    (["room_layout", "--target", "6", "--n-steps", "-1"], 1, "n_steps must be a positive integer, got -1"),
    (["normal", "--method", "riemann_trapezoid", "--n-steps", "1"], 1, "riemann_trapezoid needs n_steps >= 2"),
    (["normal", "--dtype", "float64"], 1, "unknown field storage dtype 'float64'"),
    (["normal", "--out", "a_folder"], 1, "output a_folder is a folder; it must name a file"),
    (["normal", "--out", "a_file/field.npy"], 1, "cannot write a_file/field.npy: "),
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
    if code == 1:
        assert_one_line_error(r, message)
    assert not (root / "bad").exists() or list((root / "bad").iterdir()) == []
    assert (root / "a_file").read_text() == "x" and list((root / "a_folder").iterdir()) == []


@pytest.mark.slow  # runs stage scripts as processes
def test_field_stage_output_faults(encoder_and_images, readonly_dir, full_dir):
    root = encoder_and_images
    argv = ["normal", "--checkpoint", "normal.pth", "--reference", "images.npy", "--n-steps", "2"]
    r = run_stage("field.py", *argv, "--out", readonly_dir / "normal.npy", cwd=root)
    assert_one_line_error(r, f"cannot write {readonly_dir / 'normal.npy'}: {readonly_dir} is ")
    r = run_stage("field.py", *argv, "--out", full_dir / "normal.npy", cwd=root)
    assert_one_line_error(r, f"cannot write {full_dir / 'normal.npy'}: it needs 12.2 KiB and {full_dir} has 0 B free "
                             "(no space left on device)")  # 3 images × 2 steps × (4 + 2·1024) bytes + the .npy header
    assert leftovers(readonly_dir) == [] and leftovers(full_dir) == []


@pytest.mark.slow  # runs stage scripts as processes
def test_field_stage_removes_a_stale_record_first(encoder_and_images):
    root = encoder_and_images
    (root / "stale").mkdir(exist_ok=True)
    (root / "stale" / "normal.json").write_text('{"format": 1}')
    r = run_stage("field.py", "normal", "--checkpoint", "missing.pth", "--reference", "images.npy",
                  "--out", "stale/normal.npy", cwd=root)
    assert_one_line_error(r, "no checkpoint for normal at missing.pth")
    assert list((root / "stale").iterdir()) == []


@pytest.mark.slow  # runs stage scripts as processes
def test_void_target_streams_a_zero_field_in_chunks(encoder_and_images):
    root = encoder_and_images
    r = run_stage("field.py", "room_layout", "--checkpoint", "normal.pth", "--reference", "images.npy",
                  "--target", "6", "--n-steps", "4", "--out", "fields/room_layout.npy", cwd=root,
                  MODELGIF_BATCH_SIZE="8")  # two images per chunk: 3 images in 2 chunks
    assert r.returncode == 0, r.stderr
    assert "target 6 is void for room_layout" in r.stderr
    f = load_field(root / "fields" / "room_layout.npy")
    assert f.shape == (3, 4, 32 * 32) and not f.any()
    from modelgif.field.gradients import zero_field_chunks

    assert [(s, tuple(c.shape)) for s, c in zero_field_chunks(3, 4, 5, batch_size=8)] == [(0, (2, 4, 5)),
                                                                                          (2, (1, 4, 5))]


@pytest.mark.slow  # two stage processes started and killed: about a minute on a busy 2-core machine
def test_a_killed_field_stage_leaves_no_temporary_field(encoder_and_images):
    """SIGKILL leaves a temporary file that the next run sweeps; SIGTERM removes its own."""
    import signal
    import time

    root = encoder_and_images
    fields = root / "killed"

    def start():
        return subprocess.Popen([sys.executable, str(STAGES / "field.py"), "normal", "--checkpoint", "normal.pth",
                                 "--reference", "images.npy", "--n-steps", "3000", "--method", "riemann_middle",
                                 "--out", "killed/normal.npy"], cwd=root, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "MODELGIF_DEVICE": "cpu",
                                                                "MODELGIF_BATCH_SIZE": "4"})

    def temps():
        return sorted(fields.glob(".*.tmp")) if fields.exists() else []

    def wait_for_own_temp(proc):
        for _ in range(1200):
            if [t for t in temps() if f".{proc.pid}." in t.name] and proc.poll() is None:
                return
            time.sleep(0.1)
        raise AssertionError(f"no temporary file of {proc.pid}: {temps()}")

    procs = []
    try:
        procs.append(first := start())
        wait_for_own_temp(first)
        first.kill()
        assert first.wait(60) == -signal.SIGKILL and len(temps()) == 1  # SIGKILL cannot clean up
        procs.append(second := start())
        wait_for_own_temp(second)
        assert len(temps()) == 1  # the stale one was swept when the second run created its own
        second.terminate()
        assert second.wait(60) == 128 + signal.SIGTERM
    finally:  # a failed assertion must not leave a stage running
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert temps() == [] and not (fields / "normal.npy").exists()
