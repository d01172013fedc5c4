"""The zoos' ground-truth tables as the correlate stage reads them (modelgif.score.ground_truth.ground_truth_tables)."""

import numpy as np
import pytest

from modelgif.zoo.taskonomy import TASKS, load_ground_truth
from modelgif.score.ground_truth import ground_truth_tables
from modelgif.zoo.models import ground_truth_dir

PARAMS = {"ground_truth": ["all_affinities", "wins_vs_pixels_16k"], "mini": {"ground_truth": ["wins_vs_pixels", "losses"]}}


def test_taskonomy_tables_with_their_1k_replicates():
    tasks = TASKS[:5]
    a, w = ground_truth_tables(PARAMS, "taskonomy", tasks)
    np.testing.assert_array_equal(a.matrix, load_ground_truth("all_affinities", tasks))
    assert (a.replicate_name, w.replicate_name) == ("all_affinities_1k", "wins_vs_pixels_1k")
    np.testing.assert_array_equal(w.replicate, load_ground_truth("wins_vs_pixels_1k", tasks))
    assert a.higher_is_closer and w.higher_is_closer


def test_mini_tables_with_the_seed1_build_as_replicate():
    tasks = TASKS[:4]
    wins, losses = ground_truth_tables(PARAMS, "mini_random", tasks)
    root = ground_truth_dir("mini")
    np.testing.assert_array_equal(losses.matrix, load_ground_truth("losses", tasks, root))
    np.testing.assert_array_equal(losses.replicate, load_ground_truth("losses", tasks, root.parent / "tables_seed1"))
    assert wins.higher_is_closer and not losses.higher_is_closer
    assert not np.array_equal(losses.matrix, losses.replicate)  # an independent build, not a copy


def test_no_table_named_is_an_error():
    with pytest.raises(ValueError, match="mini.ground_truth"):
        ground_truth_tables({"mini": {"ground_truth": []}}, "mini", TASKS)
    with pytest.raises(ValueError, match="unknown ground-truth table 'nope'"):
        ground_truth_tables({"ground_truth": ["nope"]}, "taskonomy", TASKS)


def _ties_by_hand(col, j):
    """The largest group of exactly equal values among column j's sources (its own entry out)."""
    rest = [v for i, v in enumerate(col) if i != j]
    return max(rest.count(v) for v in rest), len(rest)


@pytest.mark.parametrize("limit", [0.5, 0.75, 1.0])
def test_degenerate_targets_by_counting_ties(limit):
    from modelgif.score.ground_truth import degenerate_targets

    rng = np.random.default_rng(0)
    k = 9
    t = rng.random((k, k))
    t[:, 1] = 1.0  # constant: excluded at every limit
    t[:, 2] = np.where(np.arange(k) < 6, 0.0, rng.random(k))  # 5 or 6 of 8 sources tie at 0, its own entry aside
    t[2, 2] = 0.3
    t[:, 3] = np.where(np.arange(k) < 4, 0.5, rng.random(k))  # 4 of 8: exactly half, kept at 0.5
    tasks = [f"t{j}" for j in range(k)]
    got = degenerate_targets(t, tasks, limit)
    want = {}
    for j in range(k):
        largest, n = _ties_by_hand(list(t[:, j]), j)
        if largest == n or largest > limit * n:
            want[tasks[j]] = largest
    assert {task: e["largest_tie"] for task, e in got.items()} == want
    assert "t1" in got and got["t1"]["reason"].startswith("constant")
    assert ("t2" in got) == (limit < 5 / 8 + 1e-12) and "t3" not in got
    with pytest.raises(ValueError, match="max_tied_fraction"):
        degenerate_targets(t, tasks, 0.0)


def test_the_scored_table_leaves_the_excluded_targets_out_of_every_mean():
    """An excluded target's ρ is undefined in the scored table, so a mean over targets is the
    mean over the kept ones, computed directly."""
    from scipy.stats import spearmanr

    from modelgif.score.correlation import per_task_spearman

    tasks = TASKS[:8]
    params = {"mini": {"ground_truth": ["wins_vs_pixels"]}, "degenerate": {"max_tied_fraction": 0.5}}
    (wins,) = ground_truth_tables(params, "mini", tasks)
    assert set(wins.excluded) >= {"autoencoding", "denoising"}  # the mini zoo's tied columns (12, 13 of 16 at 0)
    d = np.random.default_rng(1).random((8, 8))
    with pytest.warns(RuntimeWarning, match="constant"):
        rho = per_task_spearman(d, wins.scored)
    kept = [j for j, t in enumerate(tasks) if t not in wins.excluded]
    direct = [spearmanr(wins.matrix[:, j], d[:, j]).statistic for j in kept]
    np.testing.assert_allclose(rho[kept], direct)
    assert np.isnan(rho[[tasks.index(t) for t in wins.excluded]]).all()
    # 1.0 keeps every column that is not constant
    (wins1,) = ground_truth_tables({**params, "degenerate": {"max_tied_fraction": 1.0}}, "mini", tasks)
    constant = [t for j, t in enumerate(tasks) if np.ptp(np.delete(wins.matrix[:, j], j)) == 0]
    assert list(wins1.excluded) == constant
    with pytest.raises(ValueError, match="degenerate.max_tied_fraction"):
        ground_truth_tables({**params, "degenerate": {"max_tied_fraction": "half"}}, "mini", tasks)


def test_taskonomy_all_affinities_keeps_every_target():
    """The published reproduction's table has no degenerate column: its score is untouched."""
    (a,) = ground_truth_tables({"ground_truth": ["all_affinities"]}, "taskonomy", TASKS)
    assert a.excluded == {} and np.array_equal(a.scored, a.matrix)
