import numpy as np
import pytest
import torch

from modelgif.field.baselines import derangement, make_baselines


@pytest.mark.parametrize("n", [2, 3, 10, 1000])
def test_derangement_is_a_permutation_without_fixed_points(n):
    p = derangement(n, seed=0)
    assert sorted(p.tolist()) == list(range(n))
    assert not np.any(p == np.arange(n))


def test_derangement_is_seeded():
    assert np.array_equal(derangement(50, 0), derangement(50, 0))
    assert not np.array_equal(derangement(50, 0), derangement(50, 1))


def test_shuffled_baseline_is_image_pi_i():
    x = torch.randn(5, 3, 4, 4)
    b = make_baselines(x, "shuffled", seed=0)
    p = derangement(5, 0)
    for i in range(5):
        assert torch.equal(b[i], x[p[i]])


def test_zero_baseline_and_errors():
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    z = make_baselines(x, "zero")
    assert z.dtype == torch.float64 and not z.any()
    with pytest.raises(ValueError, match="valid baselines: shuffled, zero"):
        make_baselines(x, "blur")
    with pytest.raises(ValueError, match="at least 2"):
        make_baselines(x[:1], "shuffled")
