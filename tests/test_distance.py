import numpy as np
import pytest
import torch

from modelgif.compare.distance import distance_matrix
from modelgif.io.storage import save_field


def _direct(fields, metric):
    """D[a, b] by a plain loop over every (image, step) row."""
    k = len(fields)
    n, s, _ = fields[0].shape
    d = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            total = 0.0
            for i in range(n):
                for j in range(s):
                    u, v = fields[a][i, j].astype(np.float64), fields[b][i, j].astype(np.float64)
                    if metric == "cosine":
                        total += 1 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
                    else:
                        total += np.linalg.norm(u - v)
            d[a, b] = total / (n * s)
    return d


def _correlated_fields(rng, k=4, shape=(6, 3, 50), scale=1.0):
    base = rng.standard_normal(shape)
    return [((base + rng.uniform(0.2, 2.0) * rng.standard_normal(shape)) * scale).astype(np.float32) for _ in range(k)]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_direct_computation(metric):
    fields = _correlated_fields(np.random.default_rng(0))
    d = distance_matrix(fields, metric)
    assert d.shape == (4, 4)
    assert np.allclose(d, _direct(fields, metric), rtol=1e-10, atol=1e-12)
    assert np.array_equal(d, d.T)
    assert np.allclose(np.diag(d), 0, atol=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_chunk_size_does_not_change_the_result(metric):
    fields = _correlated_fields(np.random.default_rng(1), shape=(7, 2, 30))
    ref = distance_matrix(fields, metric, chunk_size=7)
    for c in (1, 2, 3, 100):
        assert np.allclose(distance_matrix(fields, metric, chunk_size=c), ref, rtol=1e-12, atol=1e-15)
    assert np.allclose(distance_matrix(fields, metric, max_chunk_bytes=1), ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("scale", [1.0, 1e-7])
def test_float16_storage_moves_distances_by_less_than_1e_3(tmp_path, metric, scale):
    fields = _correlated_fields(np.random.default_rng(2), shape=(5, 4, 256), scale=scale)
    paths = []
    for i, f in enumerate(fields):
        paths.append(save_field(tmp_path / f"{i}.npy", f, dtype="float16"))
    exact = distance_matrix(fields, metric)
    stored = distance_matrix(paths, metric)
    off = ~np.eye(4, dtype=bool)
    assert np.max(np.abs(stored[off] - exact[off]) / exact[off]) < 1e-3


def test_tensors_and_float32_files_are_accepted(tmp_path):
    fields = _correlated_fields(np.random.default_rng(3), k=3)
    save_field(tmp_path / "a.npy", fields[0], dtype="float32")
    mixed = [tmp_path / "a.npy", torch.from_numpy(fields[1]), fields[2]]
    assert np.allclose(distance_matrix(mixed), distance_matrix(fields), rtol=1e-12)


def test_zero_rows_have_cosine_zero():
    a = np.zeros((1, 1, 4), np.float32)
    b = np.ones((1, 1, 4), np.float32)
    d = distance_matrix([a, b])
    assert d[0, 1] == 1.0 and np.isfinite(d).all()


def test_bad_fields_are_named(tmp_path):
    f = _correlated_fields(np.random.default_rng(4), k=2)
    with pytest.raises(ValueError, match=r"same shape.*fields\[1\]: \(6, 3, 49\)"):
        distance_matrix([f[0], f[1][:, :, :49]])
    bad = f[1].copy()
    bad[4, 1, 7] = np.nan
    with pytest.raises(ValueError, match=r"fields\[1\] has NaN or infinite values in images 4..4"):
        distance_matrix([f[0], bad], chunk_size=1)
    np.save(tmp_path / "inf.npy", np.full((6, 3, 50), np.inf, np.float32))
    with pytest.raises(ValueError, match="inf.npy has NaN or infinite"):
        distance_matrix([f[0], tmp_path / "inf.npy"])
    with pytest.raises(ValueError, match="valid metrics: cosine, euclidean"):
        distance_matrix(f, "manhattan")
    with pytest.raises(ValueError, match="at least one field"):
        distance_matrix([])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_torch_and_numpy_backends_agree(tmp_path, metric):
    rng = np.random.default_rng(9)
    fields = _correlated_fields(rng, k=5, shape=(7, 4, 64))
    reference = _direct(fields, metric)
    fields = [f.copy() for f in fields]
    fields[2][3, 1] = 0.0  # a zero row: cosine 0 on both backends
    paths = [save_field(tmp_path / f"{k}.npy", f) for k, f in enumerate(fields)]
    for source in (fields, paths):
        on_numpy = distance_matrix(source, metric, device="numpy", chunk_size=3)
        on_torch = distance_matrix(source, metric, device="cpu", chunk_size=3)  # the CUDA code, on the CPU
        assert np.abs(on_torch - on_numpy).max() <= 1e-12
    fields[2][3, 1] = _correlated_fields(np.random.default_rng(9), k=5, shape=(7, 4, 64))[2][3, 1]
    assert np.allclose(distance_matrix(fields, metric, device="cpu"), reference, rtol=1e-10, atol=1e-12)
    # the default picks CUDA only when torch sees a GPU
    assert np.abs(distance_matrix(fields, metric) - reference).max() <= 1e-10
    if torch.cuda.is_available():
        assert np.abs(distance_matrix(fields, metric, device="cuda") - on_numpy).max() <= 1e-12
