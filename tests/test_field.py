"""Gradient fields, checked against captum's Integrated Gradients and by their properties."""

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

import modelgif
from modelgif.zoo.taskonomy import build_encoder


def _random_encoder(task="normal", seed=0):
    """A random-init TaskonomyEncoder in float64 with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    m = build_encoder(task).double()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m


@pytest.fixture(scope="module")
def encoder():
    return _random_encoder()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 64, 64, generator=g, dtype=torch.float64) * 2 - 1
    return x, modelgif.make_baselines(x, "shuffled", seed=0)


def _captum_ig(model, x, xb, target, n_steps, method):
    """captum's IG of t(z) = Σ f(z)[indices chosen at x], written independently of modelgif.field.targets."""
    with torch.no_grad():
        fx = model(x)
    c, h, w = fx.shape[1:]
    flat = fx.flatten(2)
    if target == 1:  # per channel: its spatial argmax
        idx = [[(ch, int(flat[i, ch].argmax())) for ch in range(c)] for i in range(x.shape[0])]
    elif target == 5:  # per position: its channel argmax
        idx = [[(int(flat[i, :, p].argmax()), p) for p in range(h * w)] for i in range(x.shape[0])]
    attributions = []
    for i in range(x.shape[0]):
        if target == 6:
            def forward(z):
                return model(z).flatten(1).sum(1)
        else:
            chans = torch.tensor([a for a, _ in idx[i]])
            pos = torch.tensor([p for _, p in idx[i]])

            def forward(z, chans=chans, pos=pos):
                return model(z).flatten(2)[:, chans, pos].sum(1)
        ig = IntegratedGradients(forward)
        a = ig.attribute(x[i : i + 1], xb[i : i + 1], n_steps=n_steps, method=method)
        attributions.append(a.mean(1).flatten())
    return torch.stack(attributions)


@pytest.mark.slow  # captum, one image at a time, in float64: 3 s (idle) to 20 s (busy 2-core machine) per case
@pytest.mark.parametrize("target", [1, 5, 6])
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_middle"])
def test_last_step_equals_captum_integrated_gradients(encoder, images, target, method):
    x, xb = images
    n_steps = 6
    field = modelgif.gradient_field(encoder, x, xb, target=target, n_steps=n_steps, method=method, batch_size=9)
    reference = _captum_ig(encoder, x, xb, target, n_steps, method)
    assert field.shape == (3, n_steps, 64 * 64)
    rel = (field[:, -1] - reference).norm() / reference.norm()
    # captum rounds its step sizes to float32, hence ~1e-8 and not 1e-15
    assert rel < 1e-6, rel


@pytest.mark.slow  # another captum run (~3 s)
def test_riemann_right_also_matches_captum(encoder, images):
    x, xb = images
    field = modelgif.gradient_field(encoder, x[:1], xb[:1], target=1, n_steps=4, method="riemann_right")
    reference = _captum_ig(encoder, x[:1], xb[:1], 1, 4, "riemann_right")
    assert (field[:, -1] - reference).norm() / reference.norm() < 1e-6


class _Smooth(torch.nn.Module):
    """A small smooth convolutional model (tanh, softplus) with an 8×h×w output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.a = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.b = torch.nn.Conv2d(6, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return torch.nn.functional.softplus(self.b(torch.tanh(self.a(x))))


@pytest.mark.parametrize("target", [1, 5, 6])
def test_completeness(target):
    model = _Smooth().double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    xb = modelgif.make_baselines(x, "shuffled", 0)
    field = modelgif.gradient_field(model, x, xb, target=target, n_steps=32)
    sel = modelgif.target_selector(model(x), target)
    gap = (model(x) * sel).flatten(1).sum(1) - (model(xb) * sel).flatten(1).sum(1)
    total = field[:, -1].sum(1) * 3  # channel mean × 3 channels = channel sum
    assert torch.allclose(total, gap, rtol=1e-10, atol=1e-12), (total, gap)
    assert gap.abs().min() > 1e-3  # a real gap, not 0 = 0


@pytest.mark.slow  # the field one image at a time, in float64 (~10 s)
def test_batch_size_and_one_image_at_a_time_do_not_change_the_field(encoder, images):
    x, xb = images
    kw = dict(target=1, n_steps=5)
    ref = modelgif.gradient_field(encoder, x, xb, batch_size=15, **kw)
    for bs in (1, 4, 7, 1000):
        f = modelgif.gradient_field(encoder, x, xb, batch_size=bs, **kw)
        assert torch.allclose(f, ref, rtol=1e-12, atol=1e-18), bs
    one_by_one = torch.cat([modelgif.gradient_field(encoder, x[i : i + 1], xb[i : i + 1], **kw) for i in range(3)])
    assert torch.allclose(one_by_one, ref, rtol=1e-12, atol=1e-18)


def test_cumulative_field_is_running_sum_of_stepwise_field(encoder, images):
    x, xb = images
    cum = modelgif.gradient_field(encoder, x[:2], xb[:2], n_steps=4, cumulative=True)
    step = modelgif.gradient_field(encoder, x[:2], xb[:2], n_steps=4, cumulative=False)
    assert torch.allclose(step.cumsum(1), cum, rtol=1e-12, atol=1e-18)
    assert not torch.allclose(step, cum)


def test_iter_chunks_cover_images_in_order(encoder, images):
    x, xb = images
    starts = [(s, c.shape) for s, c in modelgif.iter_gradient_field(encoder, x, xb, n_steps=2, batch_size=4)]
    assert starts == [(0, (2, 2, 4096)), (2, (1, 2, 4096))]


def test_float32_stays_float32_and_parameters_get_no_gradients():
    model = build_encoder("room_layout")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    f = modelgif.gradient_field(model, x, x.flip(0), n_steps=2)
    assert f.dtype == torch.float32 and torch.isfinite(f).all()
    assert all(p.grad is None for p in model.parameters())


def test_target_6_with_output_groupnorm_is_identically_zero():
    # Documented void case: GroupNorm makes Σ f(z) constant, so its gradient vanishes.
    model = build_encoder("room_layout").double()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    f = modelgif.gradient_field(model, x, x.flip(0), target=6, n_steps=2)
    assert f.abs().max() < 1e-10


def test_bad_inputs_name_the_problem(encoder, images):
    x, xb = images
    with pytest.raises(ValueError, match="same shape"):
        modelgif.gradient_field(encoder, x, xb[:2])
    with pytest.raises(ValueError, match="4-D"):
        modelgif.gradient_field(encoder, x[0], xb[0])
    with pytest.raises(ValueError, match="valid targets"):
        modelgif.gradient_field(encoder, x, xb, target=3)
    with pytest.raises(ValueError, match="valid methods"):
        modelgif.gradient_field(encoder, x, xb, method="simpson")
    with pytest.raises(ValueError, match="dtype"):
        modelgif.gradient_field(encoder, x, xb.float())
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        modelgif.gradient_field(encoder, bad, xb)
    with pytest.raises(ValueError, match="batch_size"):
        modelgif.gradient_field(encoder, x, xb, batch_size=0)
    train_model = torch.nn.Conv2d(3, 2, 3).double().train()
    with pytest.raises(ValueError, match="training mode"):
        modelgif.gradient_field(train_model, x, xb)


@pytest.mark.slow  # fields at several batch sizes (~5 s)
def test_float32_fields_do_not_depend_on_batch_size_beyond_rounding():
    torch.manual_seed(0)
    model = build_encoder("normal")
    g = torch.Generator().manual_seed(5)
    x = torch.rand(6, 3, 64, 64, generator=g) * 2 - 1
    xb = modelgif.make_baselines(x, "shuffled", 0)
    kw = dict(target=1, n_steps=5)
    ref = modelgif.gradient_field(model, x, xb, batch_size=128, **kw)
    # Passes of a single path point (batch_size=1) may take another oneDNN kernel on the CPU;
    # a path point within rounding of a ReLU/max-pool kink can then flip, so they are left
    # to the smooth model below.
    for bs in (2, 3, 7, 15, 1000):
        f = modelgif.gradient_field(model, x, xb, batch_size=bs, **kw)
        assert (f - ref).norm() / ref.norm() < 1e-5, bs
    one_by_one = torch.cat([modelgif.gradient_field(model, x[i : i + 1], xb[i : i + 1], **kw) for i in range(6)])
    assert (one_by_one - ref).norm() / ref.norm() < 1e-5

    smooth = _Smooth().eval()
    xs = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    xsb = modelgif.make_baselines(xs, "shuffled", 0)
    ref = modelgif.gradient_field(smooth, xs, xsb, n_steps=8, batch_size=32)
    for bs in (1, 3, 8, 1000):
        f = modelgif.gradient_field(smooth, xs, xsb, n_steps=8, batch_size=bs)
        assert (f - ref).norm() / ref.norm() < 1e-5, bs


def test_default_batch_size_by_device():
    from modelgif.field.gradients import DEFAULT_BATCH_SIZE, default_batch_size

    assert default_batch_size("cpu") == DEFAULT_BATCH_SIZE == 128
    assert default_batch_size(torch.device("cuda", 0)) == 1024


def _chunks(n=7, m=2, s=3, p=5, fail_at=None):
    rng = torch.Generator().manual_seed(0)
    for start in range(0, n, m):
        if fail_at is not None and start >= fail_at:
            raise RuntimeError("compute failed")
        yield start, torch.randn(min(m, n - start), s, p, generator=rng)


def test_write_chunks_writes_every_chunk_in_order_in_the_background(tmp_path):
    import threading

    from modelgif.field.gradients import write_chunks
    from modelgif.io.storage import FieldWriter, load_field

    expected = torch.cat([c for _, c in _chunks()]).numpy()
    for depth in (1, 2, 5):
        seen = []
        with FieldWriter(tmp_path / f"f{depth}.npy", 7, 3, 5, dtype="float32") as w:
            write_chunks(_chunks(), w.write, depth=depth,
                         on_written=lambda start, m: seen.append((start, m, threading.current_thread().name)))
        assert [(s, m) for s, m, _ in seen] == [(0, 2), (2, 2), (4, 2), (6, 1)]
        assert {name for *_, name in seen} == {"modelgif-field-writer"}
        assert np.array_equal(load_field(tmp_path / f"f{depth}.npy"), expected)
    with pytest.raises(ValueError, match="depth"):
        write_chunks(_chunks(), lambda *a: None, depth=0)


def test_write_chunks_raises_the_first_error_of_either_side(tmp_path):
    from modelgif.field.gradients import write_chunks
    from modelgif.io.storage import FieldWriter

    computed = []

    def counted(chunks):
        for start, chunk in chunks:
            computed.append(start)
            yield start, chunk

    def bad_write(start, array):
        if start == 2:
            raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        write_chunks(counted(_chunks(n=40)), bad_write, depth=1)
    assert len(computed) < 20  # the computation stopped soon after the writer failed

    with pytest.raises(RuntimeError, match="compute failed"):
        with FieldWriter(tmp_path / "f.npy", 7, 3, 5) as w:
            write_chunks(_chunks(fail_at=4), w.write)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


@pytest.mark.slow  # runs a Python process
def test_keep_freed_cpu_memory_runs_in_its_own_process():
    import subprocess
    import sys

    code = ("import torch, modelgif.field as f; ok = f.keep_freed_cpu_memory(); "
            "x = torch.ones(64, 2**20); print(ok, float((x * 2).sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == str(float(2 * 64 * 2**20))
    assert out[0] in ("True", "False")  # False only off glibc


class _RunsOutOfMemory(_Smooth):
    """_Smooth whose passes above ``limit`` inputs raise CUDA's out-of-memory error, as a GPU would."""

    def __init__(self, limit):
        super().__init__()
        self.limit, self.sizes = limit, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} points")
        return super().forward(x)


def test_an_out_of_memory_pass_is_halved_and_retried_with_the_same_field(caplog):
    g = torch.Generator().manual_seed(8)
    x = torch.rand(5, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    xb = modelgif.make_baselines(x, "shuffled", 0)
    reference = modelgif.gradient_field(_Smooth().double().eval(), x, xb, n_steps=4, batch_size=1000)
    model = _RunsOutOfMemory(limit=5).double().eval()
    with caplog.at_level("WARNING", logger="modelgif"):
        f = modelgif.gradient_field(model, x, xb, n_steps=4, batch_size=20)
    assert torch.allclose(f, reference, rtol=1e-12, atol=1e-15)
    assert model.sizes[0] == 5  # target selection of the 5 images
    passes = model.sizes[1:]
    assert passes[:3] == [20, 10, 5]  # 20 → OOM, 10 → OOM, then 5 points per pass for the rest
    assert set(passes[2:]) == {5} and sum(passes[2:]) == 5 * 4
    oom = [r for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(oom) == 1 and "halving to 10" in oom[0].getMessage()  # logged once


def test_errors_other_than_out_of_memory_are_not_retried():
    class Broken(_Smooth):
        def forward(self, x):
            if x.requires_grad:
                raise RuntimeError("shape mismatch in layer b")
            return super().forward(x)

    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with pytest.raises(RuntimeError, match="shape mismatch"):
        modelgif.gradient_field(Broken().eval(), x, modelgif.make_baselines(x, "shuffled", 0), n_steps=2)
    model = _RunsOutOfMemory(limit=0).eval()  # even one point does not fit: the error is raised
    with pytest.raises(torch.cuda.OutOfMemoryError):
        modelgif.gradient_field(model, x, modelgif.make_baselines(x, "shuffled", 0), n_steps=2, batch_size=4)


def test_batch_size_fits_the_free_memory():
    from modelgif.field.execution import auto_batch_size, fit_batch_size

    mb = 2**20
    # 24 GB card, 30 MB per path point: 0.8 · 24 GB / 30 MB = 655 points → 650 (13 images of 50)
    assert fit_batch_size(24 * 1024 * mb, 30 * mb, 50) == 650
    assert fit_batch_size(141 * 1024 * mb, 30 * mb, 50) == 1000  # capped at 1024, whole images: 20 × 50
    assert fit_batch_size(1000 * mb, 30 * mb, 50) == 26  # fewer points than one image's path
    assert fit_batch_size(10 * mb, 30 * mb, 50) == 1
    x = torch.zeros(1, 3, 16, 16)
    assert auto_batch_size(_Smooth().eval(), x, 50) == 128  # CPU: the default
