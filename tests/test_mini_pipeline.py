"""End to end on the shipped mini zoo: real `dvc exp run -S zoo=mini` on a temporary copy of
the project (offline, CPU), checked against a direct library computation; and the build
pipeline mini/dvc.yaml on a tiny budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers import copy_project, pipeline_env
from test_pipeline import ROOT, _ran, _run, assert_up_to_date

import modelgif
import modelgif.score.bootstrap
import modelgif.score.inference
from modelgif.io.download import sha256_file
from modelgif.compare.methods import FIELD_METHODS, SET_METHODS
from modelgif.mini import TASK_LABELS
from modelgif.mini.build import loss_matrix, read_transfer_rows, wins_vs_pixels
from modelgif.mini.zoo import load_mini_encoder
from modelgif.score.ceiling import readout_noise_ceiling
from modelgif.score.plots import read_matrix_csv
from modelgif.reference import load_reference_images, rendered_reference_set
from modelgif.io.storage import save_field
from modelgif.zoo.taskonomy import load_table

#: the methods params.yaml lists (the estimators need a reference set rendered from mini-scenes)
METHODS = FIELD_METHODS + SET_METHODS

pytestmark = pytest.mark.slow


def _git_copy(tmp):
    project = copy_project(ROOT, tmp / "project")
    env = pipeline_env(tmp)
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "copy"], project, env)
    return project, env


def _table(path):
    """A Taskonomy-format table file as (K, K) over the mini tasks, read directly."""
    from modelgif.zoo.taskonomy import OLD_NAMES

    table = json.loads(path.read_text())["table"]
    return np.array([[table[f"{OLD_NAMES[a]}__{OLD_NAMES[b]}"] for b in TASK_LABELS] for a in TASK_LABELS])


def test_shipped_build_products_are_consistent():
    """The committed encoders match the manifest, and the committed tables are what the
    committed per-image transfer losses give."""
    manifest = json.loads((ROOT / "data/manifests/mini_encoders.json").read_text())
    assert list(manifest["encoders"]) == list(TASK_LABELS)
    for task, entry in manifest["encoders"].items():
        path = ROOT / "data/mini/encoders" / entry["file"]
        assert sha256_file(path) == entry["sha256"], task
        load_mini_encoder(path, sha256=entry["sha256"])
    replicates = yaml.safe_load((ROOT / "mini/params.yaml").read_text())["readout_replicates"]
    reps = [read_transfer_rows(ROOT / f"data/mini/transfer/r{r}") for r in replicates]
    tables = ROOT / "data/mini/tables"
    assert len(replicates) >= 3  # issue 23: the tables are a mean over at least 3 readout seeds
    for name, fn in (("losses", loss_matrix), ("wins_vs_pixels", wins_vs_pixels)):
        stack = np.stack([fn(rows) for rows in reps])
        t = modelgif.load_ground_truth(name, TASK_LABELS, tables)
        np.testing.assert_allclose(t, stack.mean(axis=0), rtol=1e-12)
        for r, one in zip(replicates, stack):  # each replicate's own table, the noise ceiling's input
            np.testing.assert_allclose(_table(tables / "readouts" / f"{name}_r{r}.json"), one, rtol=1e-12)
        se = json.loads((tables / f"{name}.json").read_text())["standard_error"]
        i, j = TASK_LABELS.index("normal"), TASK_LABELS.index("depth_zbuffer")
        from modelgif.zoo.taskonomy import OLD_NAMES

        key = f"{OLD_NAMES['normal']}__{OLD_NAMES['depth_zbuffer']}"
        assert se[key] == pytest.approx(stack[:, i, j].std(ddof=1) / np.sqrt(len(reps)))
    assert set(load_table("losses", tables)) == set(load_table("wins_vs_pixels", tables))
    # the stability criterion, on the committed seed-0 and seed-1 loss matrices (the
    # README also gives the stricter per-target figure, which is lower)
    from scipy.stats import spearmanr

    first = modelgif.load_ground_truth("losses", TASK_LABELS, tables)
    second = modelgif.load_ground_truth("losses", TASK_LABELS, ROOT / "data/mini/tables_seed1")
    assert not np.array_equal(first, second)
    assert spearmanr(first.ravel(), second.ravel()).statistic >= 0.9


def test_mini_zoo_end_to_end(tmp_path):
    project, env = _git_copy(tmp_path)
    # 17 fields of 100 images x 50 steps, then every method (make demo: 9.5 min on a shared 2-core machine)
    out = _run(["dvc", "exp", "run", "-S", "zoo=mini", "-S", "reference.n_images=100", "-S", "reference.image_size=64"],
               project, env, timeout=2400).stdout
    assert _ran(out) == {"settings", "fetch_reference", "affinity", "method_inputs", "correlate"} | {
        f"{s}@{t}" for s in ("fetch_checkpoint", "field", "features") for t in TASK_LABELS} | {
        f"distance@{m}" for m in METHODS}
    params = yaml.safe_load((project / "params.yaml").read_text())
    ref, fp = params["reference"], params["field"]
    assert params["zoo"] == "mini" and fp["n_steps"] == 50 and params["target"] == 1

    # the reference set is the rendered scenes; fields, distances and rho equal a direct computation
    expected = rendered_reference_set(ref["n_images"], ref["image_size"], first_seed=ref["first_scene"],
                                      use_cutmix=ref["cutmix"], seed=ref["seed"])
    assert np.array_equal(np.load(project / "data/reference/images.npy"), expected.images)
    images = load_reference_images(project / "data/reference/images.npy")
    baselines = modelgif.make_baselines(images, fp["baseline"], fp["seed"])
    paths, maps, feats = [], {"saliency": [], "gradxinput": []}, []
    for task in TASK_LABELS:
        model = load_mini_encoder(ROOT / "data/mini/encoders" / f"{task}.pth")
        field = modelgif.gradient_field(model, images, baselines, target=1, n_steps=fp["n_steps"])
        paths.append(save_field(tmp_path / f"direct_{task}.npy", field))
        for kind in maps:
            maps[kind].append(modelgif.attribution_map(model, images, kind, target=1).numpy())
        feats.append(modelgif.encoder_features(model, images))
    direct = modelgif.affinity_matrix(paths, "cosine")
    d, labels = read_matrix_csv(project / "data/affinity/distance.csv")
    assert labels == list(TASK_LABELS)
    np.testing.assert_allclose(d, direct, rtol=1e-4, atol=1e-6)
    # every method's distance equals the library applied directly to the same encoders and images
    expected = {"modelgif": direct, "ig": modelgif.affinity_matrix([modelgif.field_end_point(p) for p in paths]),
                "saliency": modelgif.affinity_matrix(maps["saliency"]),
                "gradxinput": modelgif.affinity_matrix(maps["gradxinput"]),
                "rsa": modelgif.rsa_distance(feats), "cka": modelgif.cka_distance(feats),
                "dds": modelgif.dds_distance(feats)}
    assert list(expected) == list(METHODS) == params["methods"]
    got = {}
    for method, e in expected.items():
        got[method], labels = read_matrix_csv(project / f"data/methods/{method}/distance.csv")
        assert labels == list(TASK_LABELS)
        np.testing.assert_allclose(got[method], e, rtol=1e-4, atol=1e-5, err_msg=method)
    assert not np.allclose(got["modelgif"], got["ig"])
    # the resamples: one of them recomputed from the resampled images' fields and features
    b = params["bootstrap"]
    rows = modelgif.resample_indices(ref["n_images"], b["n"], b["seed"])[7]
    boot = {m: np.load(project / f"data/methods/{m}/bootstrap.npy") for m in METHODS}
    assert all(v.shape == (b["n"], 17, 17) for v in boot.values())
    np.testing.assert_allclose(boot["modelgif"][7], modelgif.affinity_matrix([modelgif.open_field(p)[rows] for p in paths]),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(boot["cka"][7], modelgif.cka_distance([x[rows] for x in feats]), rtol=1e-4, atol=1e-5)
    metrics = json.loads((project / "metrics/correlation.json").read_text())
    details = json.loads((project / "metrics/correlation_details.json").read_text())
    assert list(metrics) == params["mini"]["ground_truth"]
    draws = modelgif.score.inference.target_draws(17, b["n"], seed=(b["seed"], 1))
    limit = params["degenerate"]["max_tied_fraction"]
    for table in metrics:
        raw = modelgif.load_ground_truth(table, TASK_LABELS, ROOT / "data/mini/tables")
        # the degenerate targets, by counting ties among each column's 16 sources; scored as constant columns
        tied = [t for j, t in enumerate(TASK_LABELS)
                if max(list(col).count(v) for col in [np.delete(raw[:, j], j)] for v in col) > limit * 16]
        assert list(metrics[table].get("excluded_targets", {})) == tied
        truth = raw.copy()
        truth[:, [TASK_LABELS.index(t) for t in tied]] = 0.0
        higher = table != "losses"
        for method in METHODS:
            m, full = metrics[table][method], details[table][method]
            rho = modelgif.per_task_spearman(got[method], truth)
            assert full["n_tasks"] == int(np.isfinite(rho).sum())
            assert m["mean_rho"] == pytest.approx(float(np.nanmean(rho)), abs=1e-12)
            off = modelgif.per_task_spearman(got[method], truth, diagonal=False)
            assert m["mean_rho_off_diagonal"] == pytest.approx(float(np.nanmean(off)), abs=1e-12)
            assert len(m["per_task"]) == 17
            # the primary interval: image resample b with task draw b (tasks as sources and targets), percentile
            per = modelgif.score.bootstrap.per_task_rho(boot[method], truth)
            assert m["mean_rho_ci95"] == pytest.approx(modelgif.score.bootstrap.percentile_interval(
                modelgif.score.inference.task_resampled_rho(boot[method], truth, draws)), abs=1e-12)
            replicates = np.nanmean(np.take_along_axis(per, draws, axis=1), axis=1)  # sources fixed
            assert full["mean_rho_ci95_targets"] == pytest.approx(
                modelgif.score.bootstrap.percentile_interval(replicates), abs=1e-12)
            assert full["mean_rho_ci95_images"] == pytest.approx(
                modelgif.score.bootstrap.percentile_interval(np.nanmean(per, axis=1)), abs=1e-12)
            assert 0 < full["p_perm"] <= 1 and 0 < full["p_perm_off_diagonal"] <= 1
            if method != "modelgif":
                assert full["delta_vs_modelgif"] == pytest.approx(m["mean_rho"] - metrics[table]["modelgif"]["mean_rho"])
                assert len(full["delta_vs_modelgif_ci95"]) == 2
        static = modelgif.score.inference.static_distance(raw, higher)  # every column informs about the sources
        assert details[table]["static"]["mean_rho"] == pytest.approx(
            float(np.nanmean(modelgif.per_task_spearman(static, truth))), abs=1e-12)
        for method in METHODS:  # every method's own hub baseline, and how much the method beats it
            hub = modelgif.score.inference.hub_distance(got[method])
            hub_rho = float(np.nanmean(modelgif.per_task_spearman(hub, truth)))
            assert details[table][f"hub:{method}"]["mean_rho"] == pytest.approx(hub_rho, abs=1e-6)
            assert details[table][f"hub:{method}"]["role"] == "baseline"
            full = details[table][method]
            assert full["minus_hub"] == pytest.approx(full["mean_rho"] - hub_rho, abs=1e-6)
            reps = (modelgif.score.inference.task_resampled_rho(boot[method], truth, draws)
                    - modelgif.score.inference.task_resampled_rho(modelgif.score.inference.hub_distance(boot[method]), truth, draws))
            assert full["minus_hub_ci95"] == pytest.approx(modelgif.score.bootstrap.percentile_interval(reps), abs=1e-9)
        seed1 = modelgif.load_ground_truth(table, TASK_LABELS, ROOT / "data/mini/tables_seed1")
        assert metrics[table]["build_agreement"]["mean_rho"] == pytest.approx(
            float(np.nanmean(modelgif.per_task_spearman(seed1, truth))), abs=1e-12)
        readouts = np.stack([_table(f) for f in sorted((ROOT / "data/mini/tables/readouts").glob(f"{table}_r*.json"))])
        np.testing.assert_allclose(readouts.mean(axis=0), raw, rtol=1e-12)
        ceiling = readout_noise_ceiling(readouts, exclude=[TASK_LABELS.index(t) for t in tied], seed=b["seed"])
        assert metrics[table]["noise_ceiling"]["mean_rho"] == pytest.approx(ceiling["ceiling"], abs=1e-12)
        assert metrics[table]["noise_ceiling"]["lower_ci95"] == pytest.approx(ceiling["lower_ci95"], abs=1e-12)
    # the DVC metric: flat, the primary (first) table's mean rho per method and static, rounded
    first = params["mini"]["ground_truth"][0]
    assert json.loads((project / "metrics/headline.json").read_text()) == {
        m: round(details[first][m]["mean_rho"], 3) for m in [*METHODS, "static"]}
    primary = details["primary"]
    assert (primary["table"], primary["method"], primary["score"]) == (params["mini"]["ground_truth"][0], "modelgif",
                                                                      "mean_rho")
    first = primary["table"]
    family = modelgif.score.inference.primary_comparisons({m: details[first][m]["per_task"] for m in [*METHODS, "static"]},
                                                          "modelgif")
    assert "static" in family  # the target-agnostic baseline is in the primary family
    assert list(primary["comparisons"]) == list(family)
    for m, c in family.items():
        assert primary["comparisons"][m] == pytest.approx(c)
    shown = _run(["dvc", "metrics", "show"], project, env).stdout
    # the DVC metric is the flat headline, one line at 120 columns; the details are not a DVC metric
    assert shown.split("\n")[0].split() == ["Path", *sorted([*METHODS, "static"])]
    assert "ci95" not in shown and "p_perm" not in shown and "hub:" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 120
    assert_up_to_date(project, env)


def test_build_pipeline_on_a_tiny_budget(tmp_path):
    """mini/dvc.yaml end to end with a few steps: its tables are what its transfers give,
    changing the readout budget reruns only the transfers and the tables, and the build never
    touches the published tables the main pipeline reads (only `make mini-zoo` copies them)."""
    project, env = _git_copy(tmp_path)
    p = project / "mini/params.yaml"
    params = yaml.safe_load(p.read_text())
    params["scenes"].update(n_train=12, n_test=6, image_size=32)
    params["encoder"]["steps"], params["readout"]["steps"] = 2, 1
    params["encoder"]["batch_size"] = params["readout"]["batch_size"] = 4
    params["readout_replicates"] = [0, 1]  # two keep the test short; a third is added below
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    published = {f: (project / f).read_bytes() for f in ("data/mini/tables/losses.json",
                                                         "data/manifests/mini_encoders.json")}
    assert "frozen" not in (project / "mini/dvc.yaml").read_text()
    out = _run(["dvc", "repro", "mini/dvc.yaml"], project, env).stdout
    sources, reps = params["sources"], params["readout_replicates"]
    transfers = {f"mini/dvc.yaml:transfer@{s}-{r}" for s in sources for r in reps}
    assert _ran(out) == {"mini/dvc.yaml:render", "mini/dvc.yaml:tables"} | {
        f"mini/dvc.yaml:train@{t}" for t in TASK_LABELS} | transfers
    rows = [read_transfer_rows(project / f"data/mini/transfer/r{r}", sources) for r in reps]
    assert all(v.shape == (6,) for rep in rows for row in rep.values() for v in row.values())
    assert not np.array_equal(rows[0]["normal"]["curvature"], rows[1]["normal"]["curvature"])  # other readout seeds
    tables = project / "data/mini/build/tables"
    np.testing.assert_allclose(modelgif.load_ground_truth("wins_vs_pixels", TASK_LABELS, tables),
                               np.mean([wins_vs_pixels(r) for r in rows], axis=0))
    assert len(list((tables / "readouts").glob("*.json"))) == 2 * len(reps)
    manifest = json.loads((project / "data/mini/build/mini_encoders.json").read_text())
    for task, entry in manifest["encoders"].items():
        assert sha256_file(project / "data/mini/encoders" / entry["file"]) == entry["sha256"]
    # the tiny build differs from the shipped one: its encoders are other files
    shipped = json.loads((ROOT / "data/manifests/mini_encoders.json").read_text())
    assert manifest["encoders"]["normal"]["sha256"] != shipped["encoders"]["normal"]["sha256"]
    assert {f: (project / f).read_bytes() for f in published} == published  # nothing published

    params["readout"]["steps"] = 2
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro", "mini/dvc.yaml"], project, env).stdout
    assert _ran(out) == {"mini/dvc.yaml:tables"} | transfers
    assert "up to date" in _run(["dvc", "status", "mini/dvc.yaml"], project, env).stdout
    # another readout replicate runs its own transfers and the tables, nothing else
    params["readout_replicates"] = [*reps, 7]
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro", "mini/dvc.yaml"], project, env).stdout
    assert _ran(out) == {"mini/dvc.yaml:tables"} | {f"mini/dvc.yaml:transfer@{s}-7" for s in sources}
    # the main pipeline does not depend on any stage of the build
    upstream = json.loads(_run(["dvc", "status", "--with-deps", "--json", "correlate"], project, env).stdout)
    assert "fetch_reference" in upstream and not [s for s in upstream if s.startswith("mini/")], sorted(upstream)
