"""Opt-in precision modes: the default is unchanged, tf32/bf16 stay close, global switches are restored.

The CUDA cases run wherever CUDA is present and are skipped elsewhere.
"""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import modelgif
from modelgif.field.gradients import PRECISIONS, precision_mode, write_chunks
from modelgif.field.quadrature import nodes_and_weights
from modelgif.field.sketch import GaussianSketch
from modelgif.io.storage import FieldWriter, load_field
from modelgif.field.targets import target_selector
from modelgif.zoo.taskonomy import build_encoder

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _previous_gradient_field(model, images, baselines, target, n_steps, method, batch_size):
    """gradient_field as it was before the precision, sketch and device-batching options
    (commit 42e3c7b), reduced to its arithmetic: the default mode must reproduce it bit for bit."""
    alphas, weights = nodes_and_weights(method, n_steps)
    n, c, h, w = images.shape
    s = n_steps
    alpha = torch.as_tensor(alphas, dtype=images.dtype)
    weight = torch.as_tensor(weights, dtype=images.dtype)
    with torch.no_grad():
        selectors = torch.cat([target_selector(model(images[i : i + 32]), target) for i in range(0, n, 32)])
    per_chunk = max(1, batch_size // s)
    out = []
    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        m = stop - start
        x, xb = images[start:stop], baselines[start:stop]
        delta = x - xb
        z_all = (xb[:, None] + alpha.view(1, s, 1, 1, 1) * delta[:, None]).reshape(m * s, c, h, w)
        sel_all = selectors[start:stop].repeat_interleave(s, dim=0)
        grads = torch.empty_like(z_all)
        for b in range(0, m * s, batch_size):
            z = z_all[b : b + batch_size].detach().requires_grad_(True)
            with torch.enable_grad():
                t = (model(z) * sel_all[b : b + batch_size]).sum()
                (grads[b : b + batch_size],) = torch.autograd.grad(t, z)
        grads = (grads.view(m, s, c, h, w) * weight.view(1, s, 1, 1, 1)).cumsum(dim=1)
        out.append((delta[:, None] * grads).mean(dim=2).reshape(m, s, h * w))
    return torch.cat(out)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_encoder("normal")


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(5, 3, 32, 32, generator=g) * 2 - 1
    return x, modelgif.make_baselines(x, "shuffled", 0)


@pytest.mark.slow  # two implementations' fields, twice each: 5 s (idle) to 30 s (busy 2-core machine) per case
@pytest.mark.parametrize("batch_size", [9, 128])
def test_default_mode_is_bit_identical_to_the_previous_implementation(encoder, images, batch_size):
    x, xb = images
    before = _previous_gradient_field(encoder, x, xb, 1, 6, "gausslegendre", batch_size)
    assert torch.equal(modelgif.gradient_field(encoder, x, xb, n_steps=6, batch_size=batch_size), before)
    assert torch.equal(modelgif.gradient_field(encoder, x, xb, n_steps=6, batch_size=batch_size,
                                               precision="float32", sketch_dim=0), before)


class _Probe(torch.nn.Module):
    """Records the global arithmetic switches seen during each forward pass."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.seen = []

    def forward(self, x):
        self.seen.append({
            "autocast": torch.is_autocast_enabled(x.device.type),
            "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "channels_last": x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous(),
        })
        return self.conv(x)


def _switches():
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.is_autocast_enabled("cpu"))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_modes_switch_on_only_inside_the_passes_on_cpu(precision):
    probe = _Probe().eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    before = _switches()
    f = modelgif.gradient_field(probe, x, x.flip(0), n_steps=3, precision=precision)
    assert f.dtype == torch.float32 and torch.isfinite(f).all()
    assert _switches() == before  # nothing global is left changed
    selector_pass, *passes = probe.seen
    assert not selector_pass["autocast"] and not selector_pass["channels_last"]  # targets chosen in float32
    for seen in passes:
        assert seen["autocast"] == (precision == "bf16")
        assert seen["channels_last"] == (precision != "float32")
        # on the CPU the CUDA switches are left alone
        assert (seen["matmul_tf32"], seen["cudnn_tf32"]) == before[:2]


def test_opt_in_modes_stay_close_to_float32_on_cpu(encoder, images):
    x, xb = images
    exact = modelgif.gradient_field(encoder, x, xb, n_steps=6)
    # tf32 on the CPU is float32 arithmetic in channels_last: only rounding differs. A path
    # point within rounding of a ReLU or max-pool kink may flip and change that point's
    # gradient, so: most rows to float32 rounding, the whole field to 1e-3.
    tf32 = modelgif.gradient_field(encoder, x, xb, n_steps=6, precision="tf32")
    rows = (tf32 - exact).norm(dim=-1) / exact.norm(dim=-1)
    assert rows.median() < 1e-5 and (tf32 - exact).norm() / exact.norm() < 1e-3
    bf16 = modelgif.gradient_field(encoder, x, xb, n_steps=6, precision="bf16")
    assert bf16.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(bf16.flatten(0, 1), exact.flatten(0, 1), dim=-1)
    assert cos.min() > 0.9 and cos.mean() > 0.97, (cos.min(), cos.mean())


@pytest.mark.slow  # 8 encoders' exact and bf16 fields: about 30 s on 2 cores
def test_bf16_distances_stay_within_five_percent_and_keep_the_ranking(family_fields):
    models, x, xb, exact_fields = family_fields  # 8 random-init encoders, 64 px, 16 images × 8 steps
    exact = modelgif.distance_matrix(exact_fields)
    bf16 = modelgif.distance_matrix([modelgif.gradient_field(m, x, xb, n_steps=8, precision="bf16") for m in models])
    iu = np.triu_indices(len(models), 1)
    assert np.max(np.abs(bf16[iu] - exact[iu]) / exact[iu]) < 0.05
    assert spearmanr(exact[iu], bf16[iu])[0] >= 0.99


def test_bad_precisions_are_refused(encoder, images):
    x, xb = images
    with pytest.raises(ValueError, match="valid precisions: float32, tf32, bf16"):
        modelgif.gradient_field(encoder, x, xb, n_steps=2, precision="fp16")
    with pytest.raises(ValueError, match="needs float32 images"):
        modelgif.gradient_field(_Probe().double().eval(), x.double(), xb.double(), n_steps=2, precision="bf16")


@cuda
@pytest.mark.parametrize("precision", PRECISIONS)
def test_cuda_switches_are_set_inside_and_restored_after(precision):
    probe = _Probe().cuda().eval()
    x = torch.rand(2, 3, 8, 8, device="cuda") * 2 - 1
    for start in (True, False):  # whatever the caller had set
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = start
        probe.seen.clear()
        modelgif.gradient_field(probe, x, x.flip(0), n_steps=3, precision=precision)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (start, start)
        selector_pass, *passes = probe.seen
        assert not selector_pass["cudnn_tf32"] and not selector_pass["autocast"]
        for seen in passes:
            assert seen["cudnn_tf32"] == seen["matmul_tf32"] == (precision == "tf32")
            assert seen["autocast"] == (precision == "bf16")
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # PyTorch's defaults


@cuda
def test_cuda_switches_are_restored_after_an_error():
    class Boom(torch.nn.Module):
        def forward(self, x):
            if x.requires_grad:
                raise RuntimeError("boom")
            return x[:, :2]

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    x = torch.rand(2, 3, 8, 8, device="cuda")
    with pytest.raises(RuntimeError, match="boom"):
        modelgif.gradient_field(Boom().eval(), x, x.flip(0), n_steps=2, precision="tf32")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == saved
    with precision_mode("tf32", "cuda"):
        assert torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == saved


@cuda
def test_cuda_float32_matches_cpu_float64_and_opt_in_modes_stay_close(encoder, images):
    x, xb = images
    ref = modelgif.gradient_field(encoder.double(), x.double(), xb.double(), n_steps=6)
    encoder.float()
    gpu = encoder.cuda()
    try:
        f32 = modelgif.gradient_field(gpu, x.cuda(), xb.cuda(), n_steps=6).cpu().double()
        # true float32 on the GPU (TF32 off): float32 rounding only
        assert (f32 - ref).norm() / ref.norm() < 1e-4
        for precision, tol in (("tf32", 0.05), ("bf16", 0.2)):
            f = modelgif.gradient_field(gpu, x.cuda(), xb.cuda(), n_steps=6, precision=precision).cpu().double()
            assert (f - ref).norm() / ref.norm() < tol, precision
        sk = modelgif.gradient_field(gpu, x.cuda(), xb.cuda(), n_steps=6, sketch_dim=64).cpu().double()
        assert torch.allclose(sk, GaussianSketch(1024, 64)(ref), rtol=1e-3,
                              atol=1e-4 * ref.abs().max().item())
    finally:
        encoder.cpu()


@cuda
def test_cuda_chunks_are_copied_and_written_in_order(tmp_path, encoder, images):
    x, xb = images
    gpu = encoder.cuda()
    try:
        chunks = modelgif.iter_gradient_field(gpu, x.cuda(), xb.cuda(), n_steps=4, batch_size=8)
        with FieldWriter(tmp_path / "f.npy", 5, 4, 1024, dtype="float32") as w:
            write_chunks(chunks, w.write, depth=1)
        direct = modelgif.gradient_field(gpu, x.cuda(), xb.cuda(), n_steps=4, batch_size=8).cpu().numpy()
    finally:
        encoder.cpu()
    # cuDNN may pick other algorithms from one call to the next: equal up to float32 rounding
    assert np.allclose(load_field(tmp_path / "f.npy"), direct, rtol=1e-5, atol=1e-6 * np.abs(direct).max())


@cuda
def test_cuda_batch_is_fitted_to_the_free_memory(encoder, images):
    from modelgif.field.execution import DEFAULT_CUDA_BATCH_SIZE, auto_batch_size

    x, _ = images
    n = auto_batch_size(encoder.cuda(), x.cuda(), 50)
    assert 1 <= n <= DEFAULT_CUDA_BATCH_SIZE and (n % 50 == 0 or n < 50)
    encoder.cpu()
