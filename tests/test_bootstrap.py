"""Bootstrap over reference images, per-image contributions, scores and the noise ceiling."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from modelgif.compare.resample import bootstrap_field_distances, bootstrap_set_distances, image_contributions, resample_counts, resample_indices, resampled_cka, resampled_rsa

from modelgif.score.bootstrap import noise_ceiling, per_task_rho, percentile_interval, summarize
from modelgif.score.correlation import per_task_spearman
from modelgif.compare.distance import distance_matrix
from modelgif.compare.similarity import cka_distance, dds_distance
from modelgif.io.storage import save_field


def _fields(rng, k=4, shape=(9, 3, 20)):
    base = rng.standard_normal(shape)
    return [(base + rng.uniform(0.2, 2.0) * rng.standard_normal(shape)).astype(np.float32) for _ in range(k)]


def _features(rng, k=4, n=12, d=6):
    latent = rng.standard_normal((n, 3))
    return [latent @ rng.standard_normal((3, d)) + rng.uniform(0.2, 1.5) * rng.standard_normal((n, d))
            for _ in range(k)]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_contributions_average_to_the_distance(metric):
    fields = _fields(np.random.default_rng(0))
    c = image_contributions(fields, metric, chunk_size=4)
    assert c.shape == (9, 4, 4)
    assert np.allclose(c.mean(axis=0), distance_matrix(fields, metric), rtol=1e-12, atol=1e-14)
    # one entry by hand: image 2, models 0 and 3
    u, v = fields[0][2].astype(np.float64), fields[3][2].astype(np.float64)
    if metric == "cosine":
        by_hand = np.mean([1 - u[k] @ v[k] / np.linalg.norm(u[k]) / np.linalg.norm(v[k]) for k in range(3)])
    else:
        by_hand = np.mean([np.linalg.norm(u[k] - v[k]) for k in range(3)])
    assert c[2, 0, 3] == pytest.approx(by_hand, rel=1e-12)
    assert np.allclose(np.diagonal(c, axis1=1, axis2=2), 0, atol=1e-12)


def test_contributions_backends_and_chunks_agree():
    """numpy and torch (the stage's path on a CPU; CUDA the same code) give the same per-image
    contributions, whatever the chunk size."""
    fields = _fields(np.random.default_rng(7), k=5, shape=(11, 4, 24))
    for metric in ("cosine", "euclidean"):
        ref = image_contributions(fields, metric, device="numpy")
        for device, chunk in (("cpu", None), ("cpu", 1), ("numpy", 3)):
            got = image_contributions(fields, metric, device=device, chunk_size=chunk)
            assert np.abs(got - ref).max() <= 1e-13, (metric, device, chunk)
        if torch.cuda.is_available():
            assert np.abs(image_contributions(fields, metric, device="cuda") - ref).max() <= 1e-12


def test_contributions_of_stored_fields(tmp_path):
    fields = _fields(np.random.default_rng(1))
    paths = [save_field(tmp_path / f"{i}.npy", f) for i, f in enumerate(fields)]
    c = image_contributions(paths)
    assert np.allclose(c.mean(axis=0), distance_matrix(paths), rtol=1e-10)
    assert np.abs(c - image_contributions(fields)).max() < 1e-3


def test_resamples_are_seeded_and_counted():
    a, b = resample_indices(10, 50, seed=3), resample_indices(10, 50, seed=3)
    assert np.array_equal(a, b) and a.shape == (50, 10)
    assert not np.array_equal(a, resample_indices(10, 50, seed=4))
    counts = resample_counts(a, 10)
    assert np.array_equal(counts.sum(axis=1), np.full(50, 10))
    assert all(np.array_equal(np.bincount(a[i], minlength=10), counts[i]) for i in range(50))
    with pytest.raises(ValueError, match="resamples"):
        resample_indices(10, 0)


def test_field_bootstrap_equals_distance_of_resampled_fields():
    fields = _fields(np.random.default_rng(2))
    idx = resample_indices(9, 5, seed=0)
    boot = bootstrap_field_distances(image_contributions(fields), idx)
    for b in range(5):
        assert np.allclose(boot[b], distance_matrix([f[idx[b]] for f in fields]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_bootstrap_equals_cka_of_resampled_rows(debiased):
    feats = _features(np.random.default_rng(3))
    idx = resample_indices(12, 6, seed=1)
    boot = bootstrap_set_distances("cka", feats, idx, debiased=debiased)
    for b in range(6):
        assert np.allclose(boot[b], cka_distance([x[idx[b]] for x in feats], debiased=debiased), atol=1e-10)


def test_rsa_bootstrap_leaves_out_pairs_of_an_image_with_its_copy():
    feats = _features(np.random.default_rng(4), n=10)
    idx = resample_indices(10, 6, seed=2)
    boot = bootstrap_set_distances("rsa", feats, idx)
    for b in range(6):
        r = idx[b]
        keep = squareform(r[:, None] != r[None, :], checks=False)  # pairs a < b of distinct images
        vecs = [pdist(x[r], "correlation")[keep] for x in feats]
        for i in range(4):
            for j in range(4):
                assert boot[b, i, j] == pytest.approx(1 - spearmanr(vecs[i], vecs[j]).statistic, abs=1e-10)


def test_rsa_bootstrap_with_ties_and_small_blocks():
    """Quantised features give tied RDM entries; many blocks of one resample give the same."""
    rng = np.random.default_rng(5)
    feats = [np.c_[np.round(x), np.arange(8) % 2] for x in _features(rng, n=8, d=3)]  # never constant
    idx = resample_indices(8, 5, seed=3)
    rdms = np.stack([squareform(pdist(x, "correlation")) for x in feats])
    one_block = 1 - resampled_rsa(rdms, resample_counts(idx, 8), device="cpu")
    tiny = 1 - resampled_rsa(rdms, resample_counts(idx, 8), device="cpu", max_block_bytes=1)
    assert np.allclose(one_block, tiny, atol=1e-12)
    r = idx[0]
    keep = squareform(r[:, None] != r[None, :], checks=False)
    vecs = [pdist(x[r], "correlation")[keep] for x in feats]
    assert one_block[0, 0, 1] == pytest.approx(1 - spearmanr(vecs[0], vecs[1]).statistic, abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_resampled_cka_of_positive_features_with_a_large_common_part(debiased):
    """ReLU-like features far from zero: the Gram matrices are dominated by a common component that
    the weighted sums must not lose to cancellation; block sizes do not change the result."""
    rng = np.random.default_rng(11)
    latent = rng.standard_normal((40, 5))
    feats = [np.maximum(0, 50 + latent @ rng.standard_normal((5, 30)) + rng.standard_normal((40, 30)))
             for _ in range(5)]
    idx = resample_indices(40, 8, seed=5)
    grams = np.stack([x @ x.T for x in feats])
    got = resampled_cka(grams, resample_counts(idx, 40), debiased=debiased, device="cpu")
    tiny = resampled_cka(grams, resample_counts(idx, 40), debiased=debiased, device="cpu", max_block_bytes=1)
    assert np.abs(got - tiny).max() < 1e-12
    for b in range(8):
        direct = cka_distance([x[idx[b]] for x in feats], debiased=debiased)
        assert np.abs(1 - got[b] - direct).max() < 1e-10, b
    assert np.abs(got[:, 0, 1] - got[0, 0, 1]).max() > 1e-4  # resamples differ


def test_resampled_cka_of_a_constant_model_is_zero_as_on_the_rows():
    """A model with constant features has a zero centred Gram matrix on every resample: similarity
    0 with every model, itself included (cka_from_grams's convention), not noise over noise."""
    feats = _features(np.random.default_rng(12), k=3)
    feats.append(np.full((12, 6), 3.0))
    idx = resample_indices(12, 4, seed=6)
    for debiased in (False, True):
        boot = bootstrap_set_distances("cka", feats, idx, debiased=debiased, device="cpu")
        for b in range(4):
            assert np.array_equal(boot[b, 3], np.ones(4)) and np.array_equal(boot[b, :, 3], np.ones(4))
            assert np.allclose(boot[b], cka_distance([x[idx[b]] for x in feats], debiased=debiased), atol=1e-10)


def test_resampled_set_methods_name_bad_counts():
    grams = np.stack([np.eye(5)] * 2)
    with pytest.raises(ValueError, match=r"counts must be \(B, N = 5\)"):
        resampled_cka(grams, np.ones((3, 4)), device="cpu")
    with pytest.raises(ValueError, match="at least 4 per resample"):
        resampled_rsa(grams, np.array([[1, 1, 1, 0, 0]]), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_set_level_bootstrap_on_cuda_equals_the_cpu():
    feats = _features(np.random.default_rng(13), n=30, d=8)
    idx = resample_indices(30, 20, seed=7)
    for method, options in (("cka", {}), ("cka", {"debiased": True}), ("rsa", {}), ("dds", {"refit": False})):
        on_cpu = bootstrap_set_distances(method, feats, idx, device="cpu", **options)
        assert np.abs(bootstrap_set_distances(method, feats, idx, device="cuda", **options) - on_cpu).max() < 1e-10


@pytest.mark.parametrize("kernel,norm", [("laplacian", "znorm"), ("rbf", "centering"), ("pearson", "batch_norm"),
                                         ("linear", "instance_norm")])
def test_dds_bootstrap_equals_dds_of_resampled_rows(kernel, norm):
    feats = _features(np.random.default_rng(6), d=8)
    idx = resample_indices(12, 3, seed=4)
    shapes = [(2, 2, 2)] * 4
    boot = bootstrap_set_distances("dds", feats, idx, kernel=kernel, feature_norm=norm, feature_shapes=shapes)
    for b in range(3):
        expected = dds_distance([x[idx[b]] for x in feats], kernel=kernel, feature_norm=norm, feature_shapes=shapes)
        assert np.allclose(boot[b], expected, atol=1e-10)
    assert not np.allclose(boot[0], boot[1], atol=1e-3)
    # refit=False: normalised once on all images, then indexed; close to, not equal to, the refit
    fixed = bootstrap_set_distances("dds", feats, idx, kernel=kernel, feature_norm=norm, feature_shapes=shapes,
                                    refit=False)
    assert fixed.shape == boot.shape and np.allclose(np.diagonal(fixed, axis1=1, axis2=2), 0, atol=1e-12)
    if norm in ("znorm", "centering", "batch_norm"):  # sample statistics: the refit matters
        assert not np.allclose(fixed, boot, atol=1e-8)
    else:  # instance norm is per image: nothing to refit
        assert np.allclose(fixed, boot, atol=1e-10)
    with pytest.raises(ValueError, match="unknown set-level method"):
        bootstrap_set_distances("cca", feats, idx)


@pytest.mark.parametrize("diagonal", [True, False])
def test_per_task_rho_matches_per_task_spearman(diagonal):
    rng = np.random.default_rng(7)
    t = rng.random((6, 6))
    d = rng.random((4, 6, 6))
    d[2, :, 3] = 0.5  # a constant column: NaN
    rho = per_task_rho(d, t, diagonal=diagonal)
    for b in range(4):
        with pytest.warns(RuntimeWarning) if b == 2 else _nothing():
            ref = per_task_spearman(d[b], t, diagonal=diagonal)
        assert np.allclose(rho[b], ref, equal_nan=True, atol=1e-12)
    assert np.isnan(rho[2, 3]) and np.isfinite(rho[0]).all()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_percentile_interval():
    s = np.arange(1001.0)
    assert percentile_interval(s) == [25.0, 975.0]
    assert percentile_interval(np.r_[s, np.nan]) == [25.0, 975.0]
    with pytest.raises(ValueError, match="level"):
        percentile_interval(s, 95)


def test_summarize_scores_a_method_against_a_reference_on_the_same_resamples():
    rng = np.random.default_rng(8)
    k = 6
    t = rng.random((k, k))
    t = (t + t.T) / 2 + np.eye(k)
    good = 2.0 - t  # a perfect distance: ρ = −1 on every column
    noisy = 2.0 - t + 0.3 * rng.standard_normal((k, k))
    n_boot = 200
    good_s = good + 1e-3 * rng.standard_normal((n_boot, k, k))
    noisy_s = noisy + 0.3 * rng.standard_normal((n_boot, k, k))
    r = summarize(good, good_s, t, reference=noisy_s, reference_name="modelgif")
    assert r["mean_rho"] == pytest.approx(-1.0)
    assert r["per_task"] == pytest.approx([-1.0] * k)
    lo, hi = r["mean_rho_ci95"]
    assert -1.0 <= lo <= hi <= -0.9
    assert r["mean_rho_off_diagonal"] == pytest.approx(np.mean(per_task_spearman(good, t, diagonal=False)))
    assert r["share_of_resamples_better_than_modelgif"] == 1.0
    assert r["mean_rho_bootstrap_bias"] == pytest.approx(np.mean(per_task_rho(good_s, t)) - (-1.0))
    assert r["mean_rho_bootstrap_bias"] == 0.0  # this little noise never changes a rank
    assert r["delta_vs_modelgif_ci95"][1] < 0
    # against itself: zero difference, never better
    same = summarize(noisy, noisy_s, t, reference=noisy_s)
    assert same["delta_vs_modelgif_ci95"] == [0.0, 0.0] and same["share_of_resamples_better_than_modelgif"] == 0.0
    assert same["mean_rho_bootstrap_bias"] > 0.05  # resamples noisier than the full data: ρ nearer 0
    # against a loss table, higher is better: the same comparison flips
    flipped = summarize(good, good_s, t, reference=noisy_s, better="higher")
    assert flipped["share_of_resamples_better_than_modelgif"] == 0.0
    with pytest.raises(ValueError, match="pair"):
        summarize(good, good_s, t, reference=noisy_s[:10])


def test_noise_ceiling():
    rng = np.random.default_rng(9)
    a = rng.random((5, 5))
    assert noise_ceiling(a, a)["mean_rho"] == pytest.approx(1.0)
    assert noise_ceiling(a, np.exp(3 * a))["per_task"] == pytest.approx([1.0] * 5)
    assert noise_ceiling(a, -a)["mean_rho"] == pytest.approx(-1.0)
    b = a + 0.2 * rng.standard_normal((5, 5))
    expected = np.mean([spearmanr(a[:, j], b[:, j]).statistic for j in range(5)])
    assert noise_ceiling(a, b)["mean_rho"] == pytest.approx(expected)
    off = [spearmanr(np.delete(a[:, j], j), np.delete(b[:, j], j)).statistic for j in range(5)]
    assert noise_ceiling(a, b, diagonal=False)["per_task"] == pytest.approx(off)


def test_the_resampling_names_moved_to_compare_resample_still_load_from_here_with_a_warning():
    """0.1's modelgif.bootstrap held the image resampling too; it is modelgif.compare.resample's
    now (the compare step), and the old place still gives the same function until 0.2."""
    import modelgif.compare.resample as resample
    import modelgif.score.bootstrap as bootstrap

    for name in bootstrap._MOVED_TO_RESAMPLE:
        with pytest.warns(DeprecationWarning, match=rf"modelgif.score.bootstrap.{name} is deprecated.*"
                                                     rf"use modelgif.compare.resample.{name}$"):
            assert getattr(bootstrap, name) is getattr(resample, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        bootstrap.nothing_here
