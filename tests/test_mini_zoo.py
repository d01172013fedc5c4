"""Tests of the mini-Taskonomy zoo (modelgif.mini.zoo): tiny budgets (32 px, ≤ 40 steps), CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import modelgif
from modelgif.io.download import sha256_file
from modelgif.mini import TASK_LABELS, VECTOR_LABELS, render_scenes
from modelgif.mini import zoo

SIZE = 32
STEPS = 40
TRAIN = dict(steps=STEPS, batch_size=16, lr=3e-3, seed=0, progress=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: tiny convolutions gain nothing from more, and the suite may run
    beside other processes on a small machine, where oversubscription is slow."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def train_data():
    return render_scenes(range(32), SIZE)


@pytest.fixture(scope="module")
def test_data():
    return render_scenes(range(1000, 1016), SIZE)


@pytest.fixture(scope="module")
def depth_model(train_data):
    """depth_euclidean encoder, decoder and history after STEPS steps, seed 0."""
    return zoo.train_encoder("depth_euclidean", train_data, **TRAIN)


def _state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_encoder_output_shape_and_sign():
    torch.manual_seed(0)
    enc = zoo.MiniEncoder().eval()
    for size in (32, 64):
        x = torch.rand(2, 3, size, size) * 2 - 1
        with torch.no_grad():
            out = enc(x)
        assert out.shape == (2, 8, size // 16, size // 16)
        assert (out >= 0).all()
    with pytest.raises(ValueError, match="multiples of 16"):
        enc(torch.zeros(1, 3, 40, 40))


def test_model_sizes():
    enc = zoo.MiniEncoder()
    n_enc = sum(p.numel() for p in enc.parameters())
    assert n_enc < 100_000  # < 400 kB of float32 weights
    for task in TASK_LABELS:
        assert sum(p.numel() for p in zoo.make_decoder(task).parameters()) < 100_000


def test_task_specs_and_shapes_for_every_task():
    data = render_scenes(range(2), SIZE)
    torch.manual_seed(0)
    enc = zoo.MiniEncoder().eval()
    for task in TASK_LABELS:
        c, loss = zoo.task_spec(task)
        assert loss in zoo.LOSSES
        dec = zoo.make_decoder(task).eval()
        with torch.no_grad():
            pred = dec(enc(zoo.model_input(task, data)))
        y = zoo.task_target(task, data)
        if task in VECTOR_LABELS:
            assert isinstance(dec, zoo.MiniHead) and pred.shape == y.shape == (2, c)
            assert y.dtype == torch.float32
        elif loss == "l1":
            assert pred.shape == y.shape
        else:
            assert y.dtype == torch.int64 and pred.shape == (2, c, SIZE, SIZE)
            assert int(y.max()) < c
        assert np.isfinite(zoo.evaluate(enc, dec, task, data))
    assert zoo.task_spec("segment_semantic") == (5, "ce")
    assert zoo.task_spec("segment_unsup2d") == (8, "pairwise")
    assert zoo.task_spec("depth_zbuffer") == (1, "l1")
    assert zoo.task_spec("class_object") == (5, "soft_ce")
    x = zoo.model_input("denoising", data)
    assert torch.equal(x, torch.from_numpy(data["rgb_noisy"]) * 2 - 1)
    with pytest.raises(ValueError, match="unknown mini-Taskonomy task"):
        zoo.task_spec("class_1000")


def test_pairwise_loss_is_permutation_invariant():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 8, SIZE, SIZE, generator=g)
    y = torch.randint(0, 8, (2, SIZE, SIZE), generator=g)
    perm = torch.randperm(8, generator=g)
    a = zoo._pairwise_loss(logits, y)
    b = zoo._pairwise_loss(logits, perm[y])
    assert torch.allclose(a, b)
    # A prediction that matches the clustering scores far better than one that ignores it.
    perfect = torch.nn.functional.one_hot(perm[y], 8).permute(0, 3, 1, 2).float() * 20
    assert float(zoo._pairwise_loss(perfect, y).mean()) < 0.1 * float(a.mean())


def test_per_image_losses_match_torch_reductions():
    g = torch.Generator().manual_seed(1)
    pred, y = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    per = zoo.per_image_loss("l1", pred, y)
    assert per.shape == (4,)
    assert torch.allclose(per.mean(), F.l1_loss(pred, y))
    assert torch.allclose(per[2], F.l1_loss(pred[2], y[2]))
    logits, lab = torch.randn(4, 5, 8, 8, generator=g), torch.randint(0, 5, (4, 8, 8), generator=g)
    assert torch.allclose(zoo.per_image_loss("ce", logits, lab).mean(), F.cross_entropy(logits, lab))
    vec, dist = torch.randn(4, 5, generator=g), torch.rand(4, 5, generator=g)
    dist = dist / dist.sum(1, keepdim=True)
    assert torch.allclose(zoo.per_image_loss("soft_ce", vec, dist), F.cross_entropy(vec, dist, reduction="none"))
    with pytest.raises(ValueError, match="unknown loss"):
        zoo.per_image_loss("l2", pred, y)


def test_training_reduces_loss(depth_model, train_data, test_data):
    enc, dec, history = depth_model
    assert len(history) == STEPS and all(np.isfinite(history))
    assert np.mean(history[-5:]) < 0.7 * history[0]
    assert not enc.training and not dec.training
    torch.manual_seed(0)
    untrained = zoo.evaluate(zoo.MiniEncoder(), zoo.MiniDecoder(1), "depth_euclidean", test_data)
    assert zoo.evaluate(enc, dec, "depth_euclidean", test_data) < 0.7 * untrained


def test_training_is_deterministic(train_data):
    kw = dict(TRAIN, steps=8)
    before = torch.random.get_rng_state()
    a = zoo.train_encoder("segment_unsup2d", train_data, **kw)
    assert torch.equal(torch.random.get_rng_state(), before)  # caller's RNG untouched
    b = zoo.train_encoder("segment_unsup2d", train_data, **kw)
    c = zoo.train_encoder("segment_unsup2d", train_data, **dict(kw, seed=1))
    assert _same(_state(a[0]), _state(b[0])) and _same(_state(a[1]), _state(b[1]))
    assert a[2] == b[2]
    assert not _same(_state(a[0]), _state(c[0]))


def test_save_load_round_trip(tmp_path, depth_model, test_data):
    enc = depth_model[0]
    path = zoo.save_encoder(tmp_path / "depth_euclidean.pth", enc)
    assert [p.name for p in tmp_path.iterdir()] == ["depth_euclidean.pth"]  # no temporary left
    loaded = zoo.load_mini_encoder(path, sha256=sha256_file(path).upper())
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = zoo.model_input("depth_euclidean", test_data)
    with torch.no_grad():
        assert torch.equal(loaded(x), enc(x))


def test_load_refuses_bad_checkpoints(tmp_path, depth_model):
    enc = depth_model[0]
    path = zoo.save_encoder(tmp_path / "enc.pth", enc)
    with pytest.raises(ValueError, match="expected sha256 0{64}"):
        zoo.load_mini_encoder(path, sha256="0" * 64)
    with pytest.raises(FileNotFoundError):
        zoo.load_mini_encoder(tmp_path / "missing.pth")

    state = _state(enc)
    dropped = dict(state)
    del dropped["head.bias"]
    torch.save({"state_dict": dropped}, tmp_path / "dropped.pth")
    with pytest.raises(ValueError, match=r"does not match MiniEncoder: 1 missing keys \['head.bias'\]"):
        zoo.load_mini_encoder(tmp_path / "dropped.pth")

    reshaped = dict(state, **{"head.bias": torch.zeros(9)})
    torch.save({"state_dict": reshaped}, tmp_path / "reshaped.pth")
    with pytest.raises(ValueError, match=r"head.bias has shape \(9,\), expected \(8,\)"):
        zoo.load_mini_encoder(tmp_path / "reshaped.pth")

    torch.save(state, tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="no 'state_dict' entry"):
        zoo.load_mini_encoder(tmp_path / "bare.pth")

    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable weights-only torch file"):
        zoo.load_mini_encoder(tmp_path / "junk.pth")


def test_readout_keeps_the_source_frozen(depth_model, train_data, test_data):
    enc = depth_model[0]
    enc.train()  # mode and requires_grad must come back as they were
    before = _state(enc)
    kw = dict(steps=20, batch_size=16, lr=3e-3, seed=0)
    loss = zoo.train_readout(enc, "depth_zbuffer", train_data, test_data, **kw)
    assert np.isfinite(loss) and loss > 0
    assert _same(before, _state(enc))
    assert enc.training and all(p.requires_grad for p in enc.parameters())
    enc.eval()
    assert zoo.train_readout(enc, "depth_zbuffer", train_data, test_data, **kw) == loss  # seeded
    pixels = zoo.train_readout(None, "depth_zbuffer", train_data, test_data, **kw)
    assert np.isfinite(pixels) and pixels > 0
    seg = zoo.train_readout(enc, "segment_unsup25d", train_data, test_data, **dict(kw, steps=5))
    assert np.isfinite(seg)


def test_gradient_field_runs_on_a_mini_encoder(depth_model, test_data):
    enc = depth_model[0].eval()
    x = zoo.model_input("depth_euclidean", test_data)[:2].double()
    model = zoo.MiniEncoder().double().eval()
    model.load_state_dict(enc.state_dict())
    xb = modelgif.make_baselines(x, "shuffled", seed=0)
    for target in (1, 5, 6):
        f = modelgif.gradient_field(model, x, xb, target=target, n_steps=8)
        assert f.shape == (2, 8, SIZE * SIZE)
        assert torch.isfinite(f).all() and f.abs().sum() > 0
