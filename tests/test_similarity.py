"""CKA, RSA and DDS against formulas written out independently here."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from modelgif.compare.similarity import (
    FEATURE_NORMS,
    center_gram,
    cka_distance,
    dds_distance,
    normalize_features,
    rsa_distance,
)


def _related_features(rng, k=4, n=12, dims=(5, 7, 9, 30)):
    """K models' features of N images sharing a latent factor (so similarities differ)."""
    latent = rng.standard_normal((n, 6))
    out = []
    for j in range(k):
        w = rng.standard_normal((6, dims[j % len(dims)]))
        noise = rng.uniform(0.1, 2.0) * rng.standard_normal((n, dims[j % len(dims)]))
        out.append(latent @ w + noise + rng.standard_normal(dims[j % len(dims)]))
    return out


# ----------------------------------------------------------------------------- oracles
def _centring_matrix(n):
    h = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            h[i, j] = (1.0 if i == j else 0.0) - 1.0 / n
    return h


def _hsic_biased(k, l):
    n = k.shape[0]
    h = _centring_matrix(n)
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def _hsic_unbiased(k, l):
    """Song et al. (JMLR 2012), eq. (5): kernel matrices with zeroed diagonals."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    for i in range(n):
        kt[i, i] = lt[i, i] = 0.0
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def _cka_oracle(xs, hsic):
    grams = [x @ x.T for x in xs]
    k = len(xs)
    d = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            d[a, b] = 1 - hsic(grams[a], grams[b]) / np.sqrt(hsic(grams[a], grams[a]) * hsic(grams[b], grams[b]))
    return d


@pytest.mark.parametrize("debiased,hsic", [(False, _hsic_biased), (True, _hsic_unbiased)])
def test_cka_matches_hsic_definitions(debiased, hsic):
    xs = _related_features(np.random.default_rng(0))
    d = cka_distance(xs, debiased=debiased)
    expected = _cka_oracle(xs, hsic)
    assert np.allclose(d, expected, rtol=1e-10, atol=1e-12)
    assert np.allclose(np.diag(d), 0, atol=1e-12)
    off = ~np.eye(4, dtype=bool)
    assert (d[off] > 0.01).all()  # the models differ


def test_debiased_cka_differs_from_biased_and_corrects_upwards_bias():
    """Independent features: biased CKA is far from 0 with few images and many dimensions; the
    debiased one is close to 0 (Nguyen et al. 2021, Kornblith et al. 2019)."""
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((30, 200)) for _ in range(3)]
    biased = 1 - cka_distance(xs)
    unbiased = 1 - cka_distance(xs, debiased=True)
    off = ~np.eye(3, dtype=bool)
    assert biased[off].min() > 0.5
    assert np.abs(unbiased[off]).max() < 0.1


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(debiased):
    rng = np.random.default_rng(2)
    xs = _related_features(rng)
    ref = cka_distance(xs, debiased=debiased)
    moved = []
    for x in xs:
        q, _ = np.linalg.qr(rng.standard_normal((x.shape[1], x.shape[1])))
        moved.append(rng.uniform(0.01, 100.0) * x @ q)
    assert np.allclose(cka_distance(moved, debiased=debiased), ref, rtol=1e-9, atol=1e-10)
    # ... but not to an anisotropic scaling of the features
    stretched = [x * np.linspace(0.1, 10, x.shape[1]) for x in xs]
    assert not np.allclose(cka_distance(stretched, debiased=debiased), ref, atol=1e-3)


def test_cka_accepts_tensors_and_multi_dim_features():
    xs = _related_features(np.random.default_rng(3), dims=(8,))
    as_maps = [torch.from_numpy(x.reshape(12, 2, 2, 2)) for x in xs]
    assert np.allclose(cka_distance(as_maps), cka_distance(xs), rtol=1e-12)


def test_centring_matrix_oracle_matches_center_gram():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 3))
    g = x @ x.T
    h = _centring_matrix(7)
    assert np.allclose(center_gram(g), h @ g @ h, atol=1e-12)


def test_rsa_matches_scipy():
    xs = _related_features(np.random.default_rng(5), n=15)
    d = rsa_distance(xs)
    rdms = [pdist(x, "correlation") for x in xs]  # 1 − Pearson between rows, upper triangle
    for a in range(4):
        for b in range(4):
            assert d[a, b] == pytest.approx(1 - spearmanr(rdms[a], rdms[b]).statistic, abs=1e-12)
    assert d[0, 1] > 0.05


def test_rsa_is_invariant_to_monotone_transforms_of_the_rdm_only():
    """Per-image affine maps of the features leave the Pearson RDM, hence RSA, unchanged."""
    rng = np.random.default_rng(6)
    xs = _related_features(rng, n=10)
    ref = rsa_distance(xs)
    shifted = [x * rng.uniform(0.5, 2, (10, 1)) + rng.standard_normal((10, 1)) for x in xs]
    assert np.allclose(rsa_distance(shifted), ref, atol=1e-12)


def test_bad_features_are_named():
    xs = _related_features(np.random.default_rng(7))
    with pytest.raises(ValueError, match="same N images"):
        cka_distance([xs[0], xs[1][:5]])
    with pytest.raises(ValueError, match="NaN"):
        cka_distance([xs[0], np.full_like(xs[1], np.nan)])
    with pytest.raises(ValueError, match="constant features"):
        rsa_distance([xs[0], np.ones_like(xs[1])])
    with pytest.raises(ValueError, match="at least 4 images"):
        cka_distance([x[:3] for x in xs], debiased=True)
    with pytest.raises(ValueError, match="unknown DDS kernel"):
        dds_distance(xs, kernel="poly")
    with pytest.raises(ValueError, match="feature_shape"):
        dds_distance(xs, feature_norm="group_norm")


# ----------------------------------------------------------------------------- DDS oracle
# The definitions of the DDS authors' code (github.com/cvai-roig-lab/duality-diagram-similarity,
# utils.py: get_similarity / get_similarity_from_rdms, called pair by pair by computeDDS_taskonomy.py
# with debiased=True, centered=True), written out here element by element, with scikit-learn's
# StandardScaler / laplacian_kernel / euclidean_distances / cosine_similarity by their definitions.
# Their group norms read features channels-last (N, h, w, C); we feed them that layout.
def _oracle_norm(x, norm, hwc=None):
    n = x.shape[0]
    if norm == "none":
        return x
    if norm == "centering":
        return x - x.mean(axis=0)
    if norm == "znorm":
        out = np.empty_like(x)
        for f in range(x.shape[1]):
            col = x[:, f]
            sd = np.sqrt(np.mean((col - col.mean()) ** 2))
            out[:, f] = (col - col.mean()) / (sd if sd > 0 else 1.0)
        return out
    h, w, c = hwc
    t = x.reshape(n, h, w, c)
    if norm == "batch_norm":
        mean = t.mean(axis=(0, 1, 2), keepdims=True)
        var = t.var(axis=(0, 1, 2), keepdims=True)
        return ((t - mean) / np.sqrt(var + 1e-9)).reshape(n, -1)
    g = {"group_norm": 2, "instance_norm": c, "layer_norm": 1}[norm]
    t = t.reshape(n, h, w, g, c // g)
    mean = t.mean(axis=(1, 2, 4), keepdims=True)
    var = t.var(axis=(1, 2, 4), keepdims=True)
    return ((t - mean) / np.sqrt(var + 1e-9)).reshape(n, -1)


def _oracle_matrix(x, kernel):
    n, p = x.shape
    m = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if kernel == "laplacian":
                m[i, j] = np.exp(-(1.0 / p) * np.abs(x[i] - x[j]).sum())
            elif kernel == "linear":
                m[i, j] = x[i] @ x[j]
            elif kernel == "euclidean":
                m[i, j] = np.sqrt(((x[i] - x[j]) ** 2).sum())
            elif kernel == "cosine":
                m[i, j] = 1 - x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
            elif kernel == "pearson":
                m[i, j] = 1 - np.corrcoef(x[i], x[j])[0, 1]
    if kernel == "rbf":
        sq = np.array([[((x[i] - x[j]) ** 2).sum() for j in range(n)] for i in range(n)])
        m = np.exp(-sq / (2 * 0.5**2 * np.median(sq)))
    return m


def _u_centre(k):
    """Székely & Rizzo (2014) U-centring, element by element."""
    n = k.shape[0]
    k = k.copy()
    np.fill_diagonal(k, 0.0)
    out = np.zeros_like(k)
    for i in range(n):
        for j in range(n):
            if i != j:
                out[i, j] = k[i, j] - k[i].sum() / (n - 2) - k[:, j].sum() / (n - 2) + k.sum() / ((n - 1) * (n - 2))
    return out


def _oracle_dds(x, y, kernel, norm, hwc=None):
    a = _u_centre(_oracle_matrix(_oracle_norm(x, norm, hwc), kernel))
    b = _u_centre(_oracle_matrix(_oracle_norm(y, norm, hwc), kernel))
    return (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))


@pytest.mark.parametrize("kernel", ["laplacian", "rbf", "linear", "pearson", "euclidean", "cosine"])
@pytest.mark.parametrize("norm", FEATURE_NORMS)
def test_dds_matches_the_authors_definitions(kernel, norm):
    rng = np.random.default_rng(8)
    c, h, w, n = 4, 2, 3, 9
    maps = [rng.standard_normal((n, c, h, w)) + rng.standard_normal((1, c, 1, 1)) for _ in range(3)]
    maps[1] = maps[1] + 2 * maps[0]
    maps[2] = np.maximum(maps[2], 0)  # a ReLU-like model, some features often 0
    channel_first = [m.reshape(n, -1) for m in maps]
    channels_last = [m.transpose(0, 2, 3, 1).reshape(n, -1) for m in maps]
    d = dds_distance(channel_first, kernel=kernel, feature_norm=norm, feature_shapes=[(c, h, w)] * 3)
    for a in range(3):
        for b in range(3):
            sim = _oracle_dds(channels_last[a], channels_last[b], kernel, norm, (h, w, c))
            assert d[a, b] == pytest.approx(1 - sim, abs=1e-9)
    assert d[0, 1] > 1e-3


def test_dds_default_is_znorm_laplacian_debiased():
    rng = np.random.default_rng(9)
    xs = _related_features(rng, k=3, n=10)
    default = dds_distance(xs)
    for a in range(3):
        for b in range(3):
            assert default[a, b] == pytest.approx(1 - _oracle_dds(xs[a], xs[b], "laplacian", "znorm"), abs=1e-10)


def test_znorm_keeps_constant_features_finite():
    x = np.array([[1.0, 3.0], [1.0, 5.0], [1.0, 4.0]])
    z = normalize_features(x, "znorm")
    assert np.array_equal(z[:, 0], np.zeros(3))
    assert z[:, 1].std() == pytest.approx(1.0)
