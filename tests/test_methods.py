"""The methods of issue 12 by name (modelgif.compare.methods) and the features stage that feeds them.

Each method's distance on all images and on every resample is checked against the library's
definitions applied directly to the resampled images' rows (the oracle recomputes; the method
code indexes contributions or Gram matrices)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_stages import run_stage

from modelgif.field.attribution import attribution_map, encoder_features
from modelgif.compare.resample import resample_indices
from modelgif.compare.distance import distance_matrix
from modelgif.compare.methods import DEFAULT_OPTIONS, METHODS, check_method, method_distances
from modelgif.mini import zoo
from modelgif.reference import load_reference_images
from modelgif.compare.similarity import cka_distance, dds_distance, rsa_distance
from modelgif.io.storage import load_field, save_field


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((7, 4, 30))
    paths = []
    for k in range(4):
        paths.append(save_field(root / f"f{k}.npy", (base + rng.uniform(0.5, 2) * rng.standard_normal(base.shape))
                                .astype(np.float32), dtype="float32"))
    shared = rng.standard_normal((7, 12))
    feats = [shared @ rng.standard_normal((12, 12)) + 0.5 * rng.standard_normal((7, 12)) for _ in range(4)]
    return paths, feats, resample_indices(7, 5, seed=3)


def test_field_methods_on_every_resample_equal_the_distance_of_the_resampled_images(inputs):
    paths, _, idx = inputs
    fields = [load_field(p) for p in paths]
    for method, view in (("modelgif", lambda f: f), ("ig", lambda f: f[:, -1:])):
        got = method_distances(method, paths, idx)
        np.testing.assert_allclose(got.distance, distance_matrix([view(f) for f in fields]), atol=1e-12)
        np.testing.assert_allclose(got.contributions.mean(axis=0), got.distance, atol=1e-12)
        for b, rows in enumerate(idx):
            np.testing.assert_allclose(got.samples[b], distance_matrix([view(f)[rows] for f in fields]), atol=1e-12)
    # euclidean, and a method whose inputs are one-step maps (saliency / gradxinput)
    maps = [f[:, :1] for f in fields]
    got = method_distances("saliency", maps, idx, metric="euclidean")
    np.testing.assert_allclose(got.distance, distance_matrix(maps, "euclidean"), atol=1e-12)
    assert not np.allclose(method_distances("modelgif", paths, idx).distance,
                           method_distances("ig", paths, idx).distance)


def test_set_methods_with_their_options_on_every_resample(inputs):
    _, feats, idx = inputs
    for method, options, direct in (
        ("cka", {}, lambda f: cka_distance(f)),
        ("cka", {"debiased": True}, lambda f: cka_distance(f, debiased=True)),
        ("dds", {"bootstrap_refit": True}, lambda f: dds_distance(f)),
        ("dds", {"kernel": "rbf", "feature_norm": "centering", "debiased": False, "bootstrap_refit": True},
         lambda f: dds_distance(f, kernel="rbf", feature_norm="centering", debiased=False)),
    ):
        got = method_distances(method, feats, idx, options=options)
        np.testing.assert_allclose(got.distance, direct(feats), atol=1e-10)
        assert got.contributions is None
        for b, rows in enumerate(idx):
            np.testing.assert_allclose(got.samples[b], direct([x[rows] for x in feats]), atol=1e-8,
                                       err_msg=f"{method} {options} resample {b}")
    got = method_distances("rsa", feats, idx)
    np.testing.assert_allclose(got.distance, rsa_distance(feats), atol=1e-12)
    # dds's default bootstrap indexes the kernel matrices of all N images: it agrees with the exact
    # resample where a resample holds every image once (a permutation), and differs otherwise
    perm = np.stack([np.random.default_rng(1).permutation(7)])
    fast = method_distances("dds", feats, perm)
    np.testing.assert_allclose(fast.samples[0], dds_distance(feats), atol=1e-10)
    assert DEFAULT_OPTIONS["dds"]["bootstrap_refit"] is False


def test_check_method_names_what_is_wrong():
    assert set(METHODS) == {"modelgif", "ig", "saliency", "gradxinput", "rsa", "cka", "dds", "logme", "linear_mse", "knn"}
    assert check_method("cka", {"debiased": True}) == {"debiased": True}
    assert check_method("dds")["kernel"] == "laplacian"
    with pytest.raises(ValueError, match="unknown method 'lrp'"):
        check_method("lrp")
    with pytest.raises(ValueError, match="method 'rsa' has no option.s. debiased; its options: none"):
        check_method("rsa", {"debiased": True})
    with pytest.raises(ValueError, match="feature_norm 'zscore'"):
        check_method("dds", {"feature_norm": "zscore"})


@pytest.mark.slow  # runs the features stage as a process
def test_features_stage_writes_what_the_library_computes(tmp_path):
    from modelgif.mini import render_scenes

    data = render_scenes(range(4), 32)
    enc, _, _ = zoo.train_encoder("normal", data, steps=1, batch_size=4, seed=0, progress=False)
    zoo.save_encoder(tmp_path / "normal.pth", enc)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8))
    r = run_stage("features.py", "normal", "--checkpoint", "normal.pth", "--reference", "images.npy", "--target", "5",
                  "--zoo", "mini", "--features", "features", "--attributions", "attr", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    model = zoo.load_mini_encoder(tmp_path / "normal.pth")
    images = load_reference_images(tmp_path / "images.npy")
    feats = np.load(tmp_path / "features" / "normal.npy")
    np.testing.assert_allclose(feats, encoder_features(model, images), rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "features" / "normal.json").read_text())
    assert record["shape"] == [8, 2, 2] and feats.shape == (5, 8 * 2 * 2)
    for kind in ("saliency", "gradxinput"):
        got = load_field(tmp_path / "attr" / kind / "normal.npy")
        expected = attribution_map(model, images, kind, target=5).numpy()
        assert got.shape == (5, 1, 32 * 32) and np.abs(got).max() > 0
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())
    sal = load_field(tmp_path / "attr" / "saliency" / "normal.npy")
    assert not np.allclose(sal, load_field(tmp_path / "attr" / "gradxinput" / "normal.npy"))
    r = run_stage("features.py", "normal", "--checkpoint", "normal.pth", "--reference", "images.npy", "--target", "4",
                  "--zoo", "mini", "--features", "f2", "--attributions", "a2", cwd=tmp_path)
    assert r.returncode == 1 and "unknown target '4'" in r.stderr and not (tmp_path / "f2").exists()
