"""The transferability estimators as pipeline methods: the reference images' labels
(modelgif.reference.labels), the asymmetric K×K matrix (modelgif.compare.estimator_distances),
their registration, and how an asymmetric D is scored."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from modelgif.compare.estimator_distances import estimator_matrix, logme_distances
from modelgif.compare.estimators import knn, linear_mse, logme
from modelgif.compare.methods import check_method, method_distances
from modelgif.compare.registry import ESTIMATOR_METHODS, METHODS, REGISTRY, Method
from modelgif.errors import InputError
from modelgif.mini.scenes import KMEANS_K, SEMANTIC_CLASSES, TASK_LABELS, render_scene
from modelgif.reference.build import rendered_reference_set
from modelgif.reference.labels import label_kind, reference_labels
from modelgif.compare.resample import resample_indices
from modelgif.score.bootstrap import per_task_rho
from modelgif.score.correlation import per_task_spearman
from modelgif.settings import method_input_paths

N, S, FIRST = 10, 32, 1_000_000


@pytest.fixture(scope="module")
def ref():
    r = rendered_reference_set(N, S, first_seed=FIRST, batch=4, seed=5)
    boxes = [b["box"] for b in r.manifest["cutmix"]["batches"]]
    assert any((y1 - y0) * (x1 - x0) > 0 for y0, y1, x0, x1 in boxes)  # some image is mixed
    return r


def _partner_map(manifest):
    """Per image, (partner index, box) from the manifest's CutMix record."""
    out = {}
    for b in manifest["cutmix"]["batches"]:
        for i, p in enumerate(b["perm"]):
            out[b["start"] + i] = (b["start"] + p, tuple(b["box"]))
    return out


def test_autoencoding_labels_are_the_images(ref):
    """autoencoding's label is the rgb image: processed as the images were, it is the stored
    images (uint8, so to within half a level), at full resolution and block-averaged."""
    full = reference_labels(ref.manifest, ["autoencoding"], (S, S))["autoencoding"].values
    images = ref.images.astype(np.float64) / 255
    assert full.shape == (N, 3, S, S)
    assert np.abs(full - images).max() <= 0.5 / 255 + 1e-6
    grid = reference_labels(ref.manifest, ["autoencoding"], (2, 4))["autoencoding"].values
    blocks = images.reshape(N, 3, 2, S // 2, 4, S // 4).mean(axis=(3, 5))
    assert grid.shape == (N, 3, 2, 4)
    assert np.abs(grid - blocks).max() <= 0.5 / 255 + 1e-6


def test_class_labels_follow_the_cutmix_partner(ref):
    """Inside its CutMix box an image carries its partner scene's classes, outside its own;
    the k-means clusters are one scene's own (KMEANS_K · scene index + id); class labels are
    taken at the pixel nearest each block's centre; class_object is the mixed map's class shares."""
    labels = reference_labels(ref.manifest, ["segment_semantic", "segment_unsup2d", "class_object"], (S, S))
    grid = reference_labels(ref.manifest, ["segment_semantic"], (4, 4))["segment_semantic"].values
    for i, (p, (y0, y1, x0, x1)) in _partner_map(ref.manifest).items():
        own, other = render_scene(FIRST + i, S), render_scene(FIRST + p, S)
        inside = np.zeros((S, S), bool)
        inside[y0:y1, x0:x1] = True
        for task, offset in (("segment_semantic", 0), ("segment_unsup2d", KMEANS_K)):
            got = labels[task].values[i]
            np.testing.assert_array_equal(got[~inside], own[task][~inside] + offset * i)
            np.testing.assert_array_equal(got[inside], other[task][inside] + offset * p)
        sem = labels["segment_semantic"].values[i]
        np.testing.assert_array_equal(grid[i], sem[4::8, 4::8])
        shares = np.bincount(sem.ravel(), minlength=len(SEMANTIC_CLASSES)) / S ** 2
        np.testing.assert_allclose(labels["class_object"].values[i], shares)
    assert labels["segment_semantic"].values.dtype == np.int64


def test_label_kinds_are_the_mini_zoos_readouts():
    """classification exactly where the mini zoo's readout is a class loss (ce, pairwise)."""
    from modelgif.mini.zoo import task_spec

    for task in TASK_LABELS:
        assert (label_kind(task) == "classification") == (task_spec(task)[1] in ("ce", "pairwise")), task


def test_a_set_without_labels_is_refused(ref):
    manifest = {**ref.manifest, "source": "taskonomy-sample", "kind": "taskonomy-sample"}
    with pytest.raises(InputError, match=r"source 'taskonomy-sample', whose images have no task labels.*mini-scenes"):
        reference_labels(manifest, ["normal"], (2, 2))
    with pytest.raises(InputError, match="no mini-scenes labels for task"):
        reference_labels(ref.manifest, ["colorization"], (2, 2))
    with pytest.raises(InputError, match="does not give its images"):
        reference_labels({**ref.manifest, "first_seed": FIRST + 1}, ["normal"], (2, 2))


def test_registration():
    assert ESTIMATOR_METHODS == ("logme", "linear_mse", "knn") and METHODS[-3:] == ESTIMATOR_METHODS
    for name in ESTIMATOR_METHODS:
        spec = REGISTRY[name]
        assert (spec.kind, spec.reads) == ("estimator", "features_labels")
        paths = [p.as_posix() for p in method_input_paths(name, ["normal"])]
        assert paths == ["data/features/normal.npy", "data/features/normal.json", "data/reference/images.npy",
                         "data/reference/manifest.json"]
    assert check_method("knn") == {"k": 5, "max_samples": 256, "sample_seed": 0}
    assert check_method("linear_mse", {"alpha": 0.5})["alpha"] == 0.5
    with pytest.raises(ValueError, match="has no option"):
        check_method("logme", {"k": 3})
    with pytest.raises(ValueError, match="needs its compute"):
        Method("x", "estimator", "features_labels")
    with pytest.raises(ValueError, match="an estimator features_labels"):
        Method("x", "estimator", "features", compute="m:f")


def _features(k, rng):
    return [rng.standard_normal((N, 3, 2, 2)) for _ in range(k)]


def _direct(estimator, features, labels, images, options):
    """D from direct estimator calls on every row of ``images``: pixels for dense labels, images for vectors."""
    d = np.zeros((len(features), len(labels)))
    for j, lab in enumerate(labels):
        v = lab.values[images]
        for i, f in enumerate(features):
            x = f[images].transpose(0, 2, 3, 1).reshape(-1, f.shape[1]) if v.ndim != 2 else f[images].reshape(len(images), -1)
            y = v.reshape(-1) if v.ndim == 3 else (v.transpose(0, 2, 3, 1).reshape(x.shape[0], -1) if v.ndim == 4 else v)
            if estimator == "logme":
                d[i, j] = -logme(x, y, kind=lab.kind)
            elif estimator == "knn":
                d[i, j] = -knn(x, y, min(options["k"], x.shape[0] - 1), kind=lab.kind)
            else:
                y = (y[:, None] == np.unique(y)).astype(float) if lab.kind == "classification" else y
                d[i, j] = -linear_mse(x, y, options["alpha"])
    return d


TASKS = ["normal", "segment_semantic", "room_layout", "segment_unsup25d"]


@pytest.mark.parametrize("estimator", ESTIMATOR_METHODS)
def test_matrix_is_the_direct_estimator_loop(ref, estimator):
    """D[i, j] = −score(source i's features, target j's labels), all rows (fewer than
    max_samples); not symmetric; and the method's resamples fit each resample's distinct images."""
    labs = reference_labels(ref.manifest, TASKS, (2, 2))
    labels = [labs[t] for t in TASKS]
    feats = _features(len(TASKS), np.random.default_rng(1))
    options = check_method(estimator)
    got = estimator_matrix(estimator, feats, labels, np.arange(N), options, np.random.default_rng(0))
    expected = _direct(estimator, feats, labels, np.arange(N), options)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, got.T)
    indices = resample_indices(N, 3, 0)
    out = method_distances(estimator, [(f.reshape(N, -1), lab) for f, lab in zip(feats, labels)], indices,
                           options=options, feature_shapes=[(3, 2, 2)] * len(TASKS))
    np.testing.assert_allclose(out.distance, expected, rtol=1e-12, atol=1e-12)
    assert out.samples.shape == (3, len(TASKS), len(TASKS))
    for b in range(3):
        np.testing.assert_allclose(out.samples[b], _direct(estimator, feats, labels, np.unique(indices[b]), options),
                                   rtol=1e-12, atol=1e-12)


def test_max_samples_keeps_whole_images(ref):
    """With max_samples below the rows, the fit is on max_samples // (h·w) whole images, drawn by
    the seeded generator: the same as the direct loop on those images."""
    labels = [reference_labels(ref.manifest, ["normal"], (2, 2))["normal"]]
    feats = _features(1, np.random.default_rng(2))
    options = {**check_method("linear_mse"), "max_samples": 9}  # 2 images of 4 pixels
    chosen = np.sort(np.random.default_rng(7).choice(np.arange(N), 2, replace=False))
    got = estimator_matrix("linear_mse", feats, labels, np.arange(N), options, np.random.default_rng(7))
    np.testing.assert_allclose(got, _direct("linear_mse", feats, labels, chosen, options), rtol=1e-12)
    with pytest.raises(InputError, match="max_samples must be an integer >= 2"):
        logme_distances([(feats[0].reshape(N, -1), labels[0])], resample_indices(N, 1, 0),
                        options={**check_method("logme"), "max_samples": 1}, feature_shapes=[(3, 2, 2)])


def test_constant_target_scores_every_source_alike(ref):
    """A target whose real labels (or, for linear_mse, one-hot classes) are constant on the rows
    ranks no source: its column is 0."""
    lab = reference_labels(ref.manifest, ["normal"], (2, 2))["normal"]
    flat = type(lab)("normal", "regression", np.ones_like(lab.values))
    got = estimator_matrix("logme", _features(2, np.random.default_rng(3)), [lab, flat], np.arange(N),
                           check_method("logme"), np.random.default_rng(0))
    assert (got[:, 1] == 0).all() and (got[:, 0] != 0).all()
    sem = reference_labels(ref.manifest, ["segment_semantic"], (2, 2))["segment_semantic"]
    one_class = type(sem)("segment_semantic", "classification", np.zeros_like(sem.values))
    got = estimator_matrix("linear_mse", _features(2, np.random.default_rng(3)), [sem, one_class], np.arange(N),
                           check_method("linear_mse"), np.random.default_rng(0))
    assert (got[:, 1] == 0).all() and (got[:, 0] != 0).all()


def test_asymmetric_distance_is_scored_per_target_column():
    """Rows are sources, columns targets: an asymmetric D's per-task rho is, for each target j,
    Spearman's rho of column j of D against column j of T, as scipy gives it; Dᵀ scores otherwise."""
    rng = np.random.default_rng(4)
    k = 6
    d, t = rng.standard_normal((k, k)), rng.standard_normal((k, k))
    expected = [spearmanr(t[:, j], d[:, j]).statistic for j in range(k)]
    np.testing.assert_allclose(per_task_spearman(d, t), expected, rtol=1e-12)
    np.testing.assert_allclose(per_task_rho(d[None], t)[0], expected, rtol=1e-12)
    off = [spearmanr(np.delete(t[:, j], j), np.delete(d[:, j], j)).statistic for j in range(k)]
    np.testing.assert_allclose(per_task_spearman(d, t, diagonal=False), off, rtol=1e-12)
    assert not np.allclose(per_task_spearman(d.T, t), expected)


@pytest.mark.slow
def test_stage_runs_the_estimators_on_the_mini_encoders(tmp_path):
    """stages/method_distance.py on 8 rendered 64 px images and 4 mini encoders: each estimator's
    distance.csv and resamples are the direct estimator loop on the encoders' outputs and labels."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from modelgif.field.attribution import encoder_features
    from modelgif.io.provenance import file_sha256
    from modelgif.reference import load_reference_images
    from modelgif.reference.store import write_reference_set
    from modelgif.score.plots import read_matrix_csv
    from modelgif.zoo.models import load_zoo_encoder

    root = Path(__file__).resolve().parents[1]
    n, n_boot = 8, 20
    reference = rendered_reference_set(n, 64, first_seed=FIRST)
    write_reference_set(reference, tmp_path / "reference")
    images = load_reference_images(tmp_path / "reference/images.npy")
    (tmp_path / "features").mkdir()
    feats = []
    for task in TASKS:
        model = load_zoo_encoder("mini", task, root / f"data/mini/encoders/{task}.pth")
        f = encoder_features(model, images)
        np.save(tmp_path / f"features/{task}.npy", f)
        (tmp_path / f"features/{task}.json").write_text(json.dumps(
            {"task": task, "shape": [8, 4, 4], "reference_sha256": file_sha256(tmp_path / "reference/images.npy")}))
        feats.append(f.astype(np.float64).reshape(n, 8, 4, 4))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"models": TASKS, "method_options": {"linear_mse": {"alpha": 0.5}}}))
    labs = reference_labels(reference.manifest, TASKS, (4, 4))
    labels = [labs[t] for t in TASKS]
    indices = resample_indices(n, n_boot, 0)
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    for estimator in ESTIMATOR_METHODS:
        out = tmp_path / estimator
        subprocess.run([sys.executable, str(root / "stages/method_distance.py"), estimator, "--params",
                        str(tmp_path / "params.yaml"), "--n-boot", str(n_boot), "--seed", "0", "--features",
                        str(tmp_path / "features"), "--reference", str(tmp_path / "reference"), "--out", str(out)],
                       check=True, cwd=root / "stages", env=env, capture_output=True)
        options = check_method(estimator, {"alpha": 0.5} if estimator == "linear_mse" else None)
        d, names = read_matrix_csv(out / "distance.csv")
        assert names == TASKS
        np.testing.assert_allclose(d, _direct(estimator, feats, labels, np.arange(n), options), rtol=1e-5, atol=1e-6)
        boot = np.load(out / "bootstrap.npy")
        assert boot.shape == (n_boot, len(TASKS), len(TASKS))
        for b in (0, 7):
            np.testing.assert_allclose(boot[b], _direct(estimator, feats, labels, np.unique(indices[b]), options),
                                       rtol=1e-5, atol=1e-6)
        assert json.loads((out / "meta.json").read_text())["options"] == options


@pytest.mark.slow
def test_stage_refuses_a_reference_set_without_labels(tmp_path):
    """distance@logme on features of a folder-sourced reference set: a clean error naming the source."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from modelgif.io.provenance import file_sha256

    root = Path(__file__).resolve().parents[1]
    images = np.zeros((4, 3, 16, 16), np.uint8)
    (tmp_path / "reference").mkdir()
    np.save(tmp_path / "reference/images.npy", images)
    (tmp_path / "reference/manifest.json").write_text(json.dumps({"source": "/data/my_images", "kind": "folder"}))
    (tmp_path / "features").mkdir()
    for task in ("normal", "curvature", "reshading"):
        np.save(tmp_path / f"features/{task}.npy", np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32))
        (tmp_path / f"features/{task}.json").write_text(json.dumps(
            {"shape": [8, 1, 1], "reference_sha256": file_sha256(tmp_path / "reference/images.npy")}))
    (tmp_path / "params.yaml").write_text("models: [normal, curvature, reshading]\n")
    run = subprocess.run([sys.executable, str(root / "stages/method_distance.py"), "logme", "--params",
                          str(tmp_path / "params.yaml"), "--n-boot", "2", "--features", str(tmp_path / "features"),
                          "--reference", str(tmp_path / "reference"), "--out", str(tmp_path / "out")],
                         cwd=root / "stages", env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "source '/data/my_images', whose images have no task labels" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out").exists()
