"""Sketched fields: the seeded Gaussian projection, its JL guarantees, and the affinity it keeps."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import modelgif
from modelgif.field.sketch import GaussianSketch, check_sketch_dim, projection_matrix
from modelgif.reference import load_reference_images
from modelgif.io.storage import load_field

ROOT = Path(__file__).resolve().parents[1]


def test_projection_is_seeded_and_device_independent():
    a = projection_matrix(256, 32, seed=7)
    assert a.shape == (256, 32) and a.dtype == np.float64
    assert np.array_equal(a, projection_matrix(256, 32, seed=7))
    assert not np.allclose(a, projection_matrix(256, 32, seed=8))
    sk = GaussianSketch(256, 32, seed=7)
    assert torch.equal(sk.matrix(torch.float64), torch.from_numpy(a))
    assert torch.equal(sk.matrix(torch.float32), torch.from_numpy(a).float())
    # entries N(0, 1/d)
    big = projection_matrix(4096, 256, seed=0)
    assert abs(big.mean()) < 1e-3 and abs(big.var() * 256 - 1) < 0.01


def test_sketch_applies_to_tensors_and_arrays_alike():
    rows = torch.randn(3, 5, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sk = GaussianSketch(100, 16, seed=1)
    y = sk(rows)
    assert y.shape == (3, 5, 16) and y.dtype == torch.float64
    assert np.allclose(sk(rows.numpy()), y.numpy(), rtol=1e-12, atol=1e-12)
    y32 = sk(rows.float())
    assert y32.dtype == torch.float32 and torch.allclose(y32.double(), y, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="takes 100"):
        sk(torch.zeros(2, 99))


def test_johnson_lindenstrauss_norms_and_inner_products():
    rng = np.random.default_rng(0)
    p, d, n = 4096, 1024, 200
    # rows with a spread of mutual cosines: a shared component plus private noise
    shared = rng.standard_normal(p)
    u = shared * rng.uniform(0, 2, (n, 1)) + rng.standard_normal((n, p))
    y = GaussianSketch(p, d, seed=3)(u)
    norm_ratio = np.linalg.norm(y, axis=1) / np.linalg.norm(u, axis=1)
    # ‖uR‖²/‖u‖² ~ χ²_d / d: relative std sqrt(2/d) = 4.4 %, so the norm's is 2.2 %
    assert np.abs(norm_ratio - 1).max() < 5 * np.sqrt(0.5 / d)
    assert abs(np.mean(norm_ratio**2) - 1) < 5 * np.sqrt(2 / d / n)  # unbiased
    i, j = np.triu_indices(n, 1)
    exact = np.einsum("ip,ip->i", u[i], u[j])
    sketched = np.einsum("id,id->i", y[i], y[j])
    scale = np.linalg.norm(u[i], axis=1) * np.linalg.norm(u[j], axis=1)
    cos = exact / scale
    err = (sketched - exact) / (scale * np.sqrt((1 + cos**2) / d))  # standardised error
    assert np.abs(err).max() < 6 and 0.8 < err.std() < 1.2
    cos_sk = sketched / (np.linalg.norm(y[i], axis=1) * np.linalg.norm(y[j], axis=1))
    assert np.abs(cos_sk - cos).max() < 6 / np.sqrt(d)


def test_bad_sketch_dims_are_refused():
    assert check_sketch_dim(0, 64) == 0 and check_sketch_dim(63, 64) == 63
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="sketch_dim"):
            check_sketch_dim(bad)
    with pytest.raises(ValueError, match="smaller than"):
        check_sketch_dim(64, 64)
    with pytest.raises(ValueError, match="sketch_dim"):
        GaussianSketch(64, 0)


@pytest.mark.slow  # 8 encoders' exact fields (the family_fields fixture, ~20 s)
@pytest.mark.parametrize("sketch_dim", [1024, 256])
def test_sketched_affinity_keeps_the_exact_ranking(family_fields, sketch_dim):
    _, _, _, fields = family_fields
    exact = modelgif.distance_matrix(fields)
    sk = GaussianSketch(64 * 64, sketch_dim, seed=0)
    sketched = modelgif.distance_matrix([sk(f) for f in fields])
    iu = np.triu_indices(len(fields), 1)
    assert exact[iu].min() < 0.1 and exact[iu].max() > 0.8  # a real spread to rank
    rho = spearmanr(exact[iu], sketched[iu])[0]
    assert rho >= 0.99, rho
    # error per distance: ~ (1 − cos²)/sqrt(d) per row, averaged over rows
    rel = np.abs(sketched[iu] - exact[iu]) / exact[iu]
    assert rel.max() < 0.15 * np.sqrt(256 / sketch_dim), rel.max()


@pytest.mark.slow  # 8 encoders' exact fields (the family_fields fixture, ~20 s) and their sketches
def test_gradient_field_sketch_dim_equals_sketching_the_exact_field(family_fields):
    models, x, xb, fields = family_fields
    f = modelgif.gradient_field(models[1], x[:3], xb[:3], n_steps=8, sketch_dim=128, sketch_seed=5)
    assert f.shape == (3, 8, 128) and f.dtype == torch.float32
    expected = GaussianSketch(4096, 128, seed=5)(fields[1][:3].double())
    assert torch.allclose(f.double(), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    chunks = list(modelgif.iter_gradient_field(models[1], x[:3], xb[:3], n_steps=8, batch_size=16, sketch_dim=128,
                                               sketch_seed=5))
    assert [(s, c.shape) for s, c in chunks] == [(0, (2, 8, 128)), (2, (1, 8, 128))]
    with pytest.raises(ValueError, match="smaller than"):
        modelgif.gradient_field(models[1], x[:1], xb[:1], n_steps=2, sketch_dim=4096)


@pytest.mark.slow  # runs the field stage as a process
def test_field_stage_writes_a_sketched_field(tmp_path):
    from helpers import write_encoder_checkpoint

    write_encoder_checkpoint(tmp_path / "normal.pth", seed=0)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    env = {**os.environ, "MODELGIF_DEVICE": "cpu", "MODELGIF_BATCH_SIZE": "4"}
    args = [sys.executable, str(ROOT / "stages/field.py"), "normal", "--checkpoint", str(tmp_path / "normal.pth"),
            "--reference", str(tmp_path / "images.npy"), "--n-steps", "2", "--sketch-dim", "64",
            "--sketch-seed", "3", "--out", str(tmp_path / "f.npy")]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    stored = load_field(tmp_path / "f.npy")
    assert stored.shape == (3, 2, 64)
    model = modelgif.load_encoder("normal", tmp_path / "normal.pth")
    images = load_reference_images(tmp_path / "images.npy")
    direct = modelgif.gradient_field(model, images, modelgif.make_baselines(images, "shuffled", 0), n_steps=2,
                                     sketch_dim=64, sketch_seed=3).numpy()
    rel = np.linalg.norm(stored - direct, axis=-1) / np.linalg.norm(direct, axis=-1)
    assert rel.max() < 1e-3  # float16 storage
    bad = subprocess.run(args[:-2] + ["--precision", "fp8", "--out", str(tmp_path / "g.npy")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "valid precisions: float32, tf32, bf16" in bad.stderr
    assert not (tmp_path / "g.npy").exists()
