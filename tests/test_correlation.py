import numpy as np
import pytest
from scipy.stats import spearmanr

from modelgif.score.correlation import per_task_spearman


def _spearman_no_ties(x, y):
    """1 − 6 Σ d² / (n (n² − 1)), the closed form for data without ties."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    n = len(x)
    return 1 - 6 * np.sum((rx - ry) ** 2) / (n * (n**2 - 1))


def test_hand_made_columns():
    t = np.array([[1.0, 0.1, 5.0, 0.0], [2.0, 0.3, 4.0, 1.0], [3.0, 0.2, 6.0, 2.0], [4.0, 0.4, 1.0, 3.0]])
    d = np.array([[9.0, 1.0, 0.5, 0.0], [8.0, 2.0, 0.7, 1.0], [7.0, 3.0, 0.6, 2.0], [6.0, 4.0, 0.8, 3.0]])
    rho = per_task_spearman(d, t)
    # column 0 fully reversed, column 3 identical order; columns 1, 2 by hand:
    # ranks t[:,1] = 0,2,1,3 vs d = 0,1,2,3 -> Σd² = 2 -> 1 - 12/60 = 0.8
    # ranks t[:,2] = 2,1,3,0 vs d = 0,2,1,3 -> Σd² = 4+1+4+9 = 18 -> 1 - 108/60 = -0.8
    assert rho == pytest.approx([-1.0, 0.8, -0.8, 1.0])
    for j in range(4):
        assert rho[j] == pytest.approx(_spearman_no_ties(t[:, j], d[:, j]))
        assert rho[j] == pytest.approx(spearmanr(t[:, j], d[:, j]).statistic)


def test_ties_agree_with_scipy():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, size=(6, 6)).astype(float)
    t[0] = [0, 1, 2, 0, 1, 2]
    t[1] = [2, 2, 0, 1, 0, 1]  # no constant column
    d = rng.random((6, 6))
    rho = per_task_spearman(d, t)
    assert np.allclose(rho, [spearmanr(t[:, j], d[:, j]).statistic for j in range(6)])


def test_distance_against_affinity_is_negative_when_they_agree():
    rng = np.random.default_rng(1)
    t = rng.random((5, 5))
    rho = per_task_spearman(-3 * t + 1, t)
    assert np.allclose(rho, -1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="square"):
        per_task_spearman(np.zeros((3, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        per_task_spearman(np.full((3, 3), np.nan), np.eye(3))


def test_constant_column_is_nan_with_a_warning_naming_it():
    d = np.array([[1.0, 2, 3], [2, 2, 1], [3, 2, 2]])
    t = np.array([[1.0, 5, 2], [2, 3, 3], [3, 4, 1]])
    with pytest.warns(RuntimeWarning, match=r"constant column\(s\) \[1\]"):
        rho = per_task_spearman(d, t)
    assert np.isnan(rho[1])
    assert rho[0] == pytest.approx(1.0) and rho[2] == pytest.approx(-0.5)


def test_off_diagonal_leaves_each_tasks_own_entry_out():
    rng = np.random.default_rng(4)
    d, t = rng.uniform(size=(6, 6)), rng.uniform(size=(6, 6))
    rho = per_task_spearman(d, t, diagonal=False)
    for j in range(6):
        keep = [i for i in range(6) if i != j]
        assert rho[j] == pytest.approx(spearmanr(t[keep, j], d[keep, j]).statistic)
    # the self-pair alone: distance 0 to itself and the top affinity, random elsewhere
    np.fill_diagonal(d, 0.0)
    np.fill_diagonal(t, 2.0)
    assert per_task_spearman(d, t).mean() < per_task_spearman(d, t, diagonal=False).mean() - 0.1
    with pytest.raises(ValueError, match="at least 4 tasks without the diagonal"):
        per_task_spearman(d[:3, :3], t[:3, :3], diagonal=False)
