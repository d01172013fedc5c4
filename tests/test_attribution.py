"""Attribution maps against captum; encoder features; the IG end point of stored fields."""

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient, Saliency

from modelgif.field.attribution import attribution_map, encoder_features, field_end_point, gradxinput, saliency
from modelgif.compare.distance import distance_matrix
from modelgif.field.gradients import gradient_field
from modelgif.io.storage import save_field
from modelgif.field.targets import target_selector


def _model(seed=0):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, stride=2, padding=1), torch.nn.Tanh(),
        torch.nn.Conv2d(6, 4, 3, stride=2, padding=1),
    ).double().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _images(n=5, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, size, size), generator=g, dtype=torch.float64) * 2 - 1


def _captum(cls, model, images, target, **kw):
    sel = target_selector(model(images), target)
    forward = lambda z: (model(z) * sel).flatten(1).sum(1)  # noqa: E731 - t(z), one per image
    attr = cls(forward).attribute(images.clone().requires_grad_(True), **kw)
    return attr.mean(dim=1).reshape(images.shape[0], 1, -1).detach()


@pytest.mark.parametrize("target", [1, 5, 6])
def test_saliency_matches_captum_signed(target):
    model, x = _model(), _images()
    ours = saliency(model, x, target=target, batch_size=2)
    ref = _captum(Saliency, model, x, target, abs=False)
    assert ours.shape == (5, 1, 64)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert (ours < 0).any()  # signed: not captum's default abs=True


@pytest.mark.parametrize("target", [1, 5, 6])
def test_gradxinput_matches_captum(target):
    model, x = _model(), _images()
    ours = gradxinput(model, x, target=target, batch_size=3)
    ref = _captum(InputXGradient, model, x, target)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(ours, saliency(model, x, target=target), atol=1e-6)


def test_batch_size_does_not_change_maps_and_maps_feed_distance_matrix():
    x = _images(n=7)
    maps = [attribution_map(_model(s), x, "saliency", batch_size=b) for s, b in ((0, 1), (1, 7), (2, 3))]
    assert torch.allclose(maps[0], attribution_map(_model(0), x, "saliency", batch_size=64), atol=1e-14)
    d = distance_matrix(maps)
    assert d.shape == (3, 3) and np.allclose(np.diag(d), 0, atol=1e-12) and (d[~np.eye(3, dtype=bool)] > 0.01).all()


def test_bad_inputs_are_named():
    model, x = _model(), _images()
    with pytest.raises(ValueError, match="unknown attribution"):
        attribution_map(model, x, "lrp")
    with pytest.raises(ValueError, match="training mode"):
        saliency(_model().train(), x)
    with pytest.raises(ValueError, match="batch_size"):
        saliency(model, x, batch_size=0)
    with pytest.raises(ValueError, match="NaN"):
        encoder_features(model, x * float("nan"))


def test_encoder_features_are_flattened_outputs():
    model, x = _model(), _images(n=6)
    f = encoder_features(model, x, batch_size=4)
    assert f.dtype == np.float32 and f.shape == (6, 4 * 2 * 2)
    expected = model(x).reshape(6, -1).float().numpy()
    assert np.array_equal(f, expected)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_field_end_point_is_integrated_gradients_of_a_stored_field(tmp_path, dtype):
    model, x = _model(), _images(n=4).float()
    model = model.float()
    baselines = torch.roll(x, 1, dims=0)
    field = gradient_field(model, x, baselines, n_steps=6)
    path = save_field(tmp_path / "f.npy", field, dtype=dtype)
    end = field_end_point(path)
    assert isinstance(end, np.memmap) and end.shape[:2] == (4, 1)  # a view of the file: no copy
    others = [field_end_point(save_field(tmp_path / f"{s}.npy", gradient_field(_model(s).float(), x, baselines,
                                                                               n_steps=6), dtype=dtype))
              for s in (1, 2)]
    d = distance_matrix([end, *others])
    exact = distance_matrix([field[:, -1:].numpy()] + [np.asarray(
        gradient_field(_model(s).float(), x, baselines, n_steps=6)[:, -1:]) for s in (1, 2)])
    assert np.allclose(d, exact, atol=2e-3)
    # the end point differs from the whole path's distance
    assert not np.allclose(exact, distance_matrix([field.numpy()] + [gradient_field(_model(s).float(), x, baselines,
                                                                                    n_steps=6).numpy() for s in (1, 2)]),
                           atol=1e-3)


def test_field_end_point_of_an_array_equals_the_last_step():
    f = np.random.default_rng(0).standard_normal((3, 5, 10)).astype(np.float32)
    assert np.array_equal(field_end_point(f), f[:, 4:5])
    with pytest.raises(ValueError, match="shape"):
        field_end_point(f[0])
