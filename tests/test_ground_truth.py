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
