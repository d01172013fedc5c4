"""field_cka (modelgif.compare.field_cka), the pre-registered variant: against a direct
computation of linear CKA on the flattened fields, and its invariances."""

import numpy as np
import pytest

from modelgif.compare.field_cka import field_cka_distances, field_gram
from modelgif.compare.methods import method_distances
from modelgif.compare.registry import FIELD_METHODS, METHODS, REGISTRY
from modelgif.compare.resample import resample_indices
from modelgif.io.storage import save_field


def _cka(x, y):
    """Linear CKA of two (n, p) arrays, directly: ‖YcᵀXc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)."""
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _fields(k=4, n=12, s=3, hw=10, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, s, hw))
    return [base + 0.8 * rng.standard_normal((n, s, hw)) for _ in range(k)]


@pytest.mark.parametrize("per_step", [False, True])
def test_distances_and_resamples_by_a_direct_computation(per_step):
    fields = _fields()
    idx = resample_indices(12, 5, seed=1)
    d, boot = field_cka_distances(fields, idx, options={"per_step": per_step})
    for i in range(4):
        for j in range(4):
            if per_step:
                want = 1 - np.mean([_cka(fields[i][:, s], fields[j][:, s]) for s in range(3)])
            else:
                want = 1 - _cka(fields[i].reshape(12, -1), fields[j].reshape(12, -1))
            assert d[i, j] == pytest.approx(want, abs=1e-10)
            for b in (0, 4):  # a resample is CKA on the drawn images, copies included
                r = idx[b]
                if per_step:
                    want_b = 1 - np.mean([_cka(fields[i][r, s], fields[j][r, s]) for s in range(3)])
                else:
                    want_b = 1 - _cka(fields[i][r].reshape(len(r), -1), fields[j][r].reshape(len(r), -1))
                assert boot[b, i, j] == pytest.approx(want_b, abs=1e-8)
    np.testing.assert_allclose(np.diag(d), 0, atol=1e-12)


def test_invariant_to_scale_and_orthogonal_maps_of_a_field():
    """What the variant is for: a field scaled, or rotated in its values, is at distance 0."""
    f = _fields(k=1)[0]
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((30, 30)))
    rotated = (f.reshape(12, -1) @ q).reshape(f.shape)
    d, _ = field_cka_distances([f, 3.0 * f, rotated], resample_indices(12, 2, seed=0), options={})
    np.testing.assert_allclose(d, 0, atol=1e-10)


def test_stored_fields_in_blocks_give_the_same_gram(tmp_path):
    """A stored field (both encodings) read in blocks of a few images: the same Gram matrix."""
    f = _fields(k=1)[0].astype(np.float32)
    want = f.reshape(12, -1).astype(np.float64) @ f.reshape(12, -1).astype(np.float64).T
    for dtype in ("float32", "float16"):  # float16: the compact norm-and-direction storage
        path = tmp_path / f"f_{dtype}.npy"
        save_field(path, f, dtype=dtype)
        got = field_gram(path, block_bytes=5 * 30 * 8)  # blocks of 5 images
        np.testing.assert_allclose(got, want, rtol=1e-2 if dtype == "float16" else 1e-6, atol=1e-2)
        np.testing.assert_allclose(field_gram(path, per_step=True, block_bytes=5 * 30 * 8).sum(axis=0), got,
                                   rtol=1e-6)


def test_registered_as_a_candidate_outside_the_built_in_lists():
    spec = REGISTRY["field_cka"]
    assert spec.kind == "field" and spec.reads == "fields" and spec.options == {"debiased": False, "per_step": False}
    assert "field_cka" not in FIELD_METHODS and "field_cka" not in METHODS  # not a default until decided
    fields = _fields()
    idx = resample_indices(12, 3, seed=0)
    got = method_distances("field_cka", fields, idx, options={"debiased": True})
    want = field_cka_distances(fields, idx, options={"debiased": True, "per_step": False})
    np.testing.assert_allclose(got.distance, want[0])
    np.testing.assert_allclose(got.samples, want[1])
