"""Plot data: closeness ranks (what the heatmaps show) against scipy's Spearman, and the CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.stats import pearsonr

from modelgif.score.correlation import higher_is_closer, per_task_spearman
from modelgif.score.plots import closeness_ranks, ranked_long_csv, ranked_long_panels_csv, similarity_tree


def test_ranks_are_what_spearman_compares():
    """Per column, off the diagonal, Spearman(T, D) = −Pearson(closeness ranks of T, of D) for an
    affinity T (higher: closer) and a distance D; the ranks are 1 … K−1, closest first."""
    rng = np.random.default_rng(0)
    k = 7
    d = rng.uniform(0.9, 1.0, (k, k))
    t = rng.uniform(size=(k, k))
    rd, rt = closeness_ranks(d), closeness_ranks(t, higher_is_closer=True)
    assert np.isnan(np.diag(rd)).all() and np.isnan(np.diag(rt)).all()
    rho = per_task_spearman(d, t, diagonal=False)
    for j in range(k):
        others = np.delete(np.arange(k), j)
        assert sorted(rd[others, j]) == list(range(1, k))
        assert rd[others, j][np.argmin(d[others, j])] == 1 and rt[others, j][np.argmax(t[others, j])] == 1
        assert -pearsonr(rt[others, j], rd[others, j]).statistic == pytest.approx(rho[j], abs=1e-12)


def test_ties_share_their_mean_rank_and_orientation_of_tables():
    r = closeness_ranks(np.array([[0, 1, 1], [2, 0, 1], [2, 3, 0]], dtype=float))
    np.testing.assert_array_equal(r[[1, 2], 0], [1.5, 1.5])
    with pytest.warns(DeprecationWarning, match="higher_is_closer is deprecated"):  # the declarations say it now
        assert higher_is_closer("wins_vs_pixels") and not higher_is_closer("losses")
    with pytest.raises(ValueError, match="square"):
        closeness_ranks(np.zeros((2, 3)))


def test_ranked_long_csv_and_tree(tmp_path):
    m = np.array([[0.0, 0.3, 0.9], [0.3, 0.0, 0.5], [0.9, 0.5, 0.0]])
    ranked_long_csv(tmp_path / "d.csv", m, ["a", "b", "c"], "distance (lower: closer)")
    rows = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert len(rows) == 9 and {r["panel"] for r in rows} == {"distance (lower: closer)"}
    cell = {(r["source"], r["target"]): r for r in rows}
    assert cell["a", "a"]["rank"] == "" and float(cell["b", "a"]["rank"]) == 1 and float(cell["c", "a"]["rank"]) == 2
    assert float(cell["c", "a"]["value"]) == 0.9 and (cell["c", "a"]["order_source"], cell["c", "a"]["order_target"]) == ("2", "0")
    # several matrices in one file, one panel each (the ground-truth heatmaps of one figure):
    # each panel's rows are exactly its own file's
    t = np.array([[1.0, 0.2, 0.7], [0.4, 1.0, 0.1], [0.6, 0.3, 1.0]])
    ranked_long_panels_csv(tmp_path / "both.csv", [(m, ["a", "b", "c"], "D", False), (t, ["a", "b", "c"], "T", True)])
    ranked_long_csv(tmp_path / "t.csv", t, ["a", "b", "c"], "T", True)
    both = (tmp_path / "both.csv").read_text().splitlines()
    assert both[:10] == (tmp_path / "d.csv").read_text().replace("distance (lower: closer)", "D").splitlines()
    assert both[10:] == (tmp_path / "t.csv").read_text().splitlines()[1:]
    # distances packed near 1 (as for pretrained encoders) still give a tree
    similarity_tree(tmp_path / "t.png", 0.98 + 0.02 * m, ["a", "b", "c"])
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
