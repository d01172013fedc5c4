"""tools/mini_builds.py report: the builds' tables side by side, Kendall's W, the ground truths'
agreement between builds, from each build's kept correlation_details.json."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from modelgif.score.agreement import kendalls_w
from modelgif.score.ground_truth import ground_truth_tables
from modelgif.zoo.mini_builds import BUILDS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import mini_builds  # noqa: E402

TASKS = mini_builds._tasks()
METHODS = ["modelgif", "cka", "static"]


def _kept(root: Path, per_task: dict) -> None:
    """A correlation_details.json per build: ``per_task[b][table][method]`` the per-target ρ."""
    for b, tables in per_task.items():
        result = {}
        for t, rows in tables.items():
            result[t] = {m: {"role": "baseline" if m == "static" else "method", "mean_rho": float(np.nanmean(r)),
                             "mean_rho_ci95": [-1.0, 1.0], "mean_rho_off_diagonal": float(np.nanmean(r)) - 0.01,
                             "mean_rho_off_diagonal_ci95": [-1.0, 1.0], "per_task": [None if np.isnan(x) else x for x in r]}
                         for m, r in rows.items()}
            result[t]["hub:modelgif"] = {**result[t]["modelgif"], "role": "baseline"}
            result[t]["noise_ceiling"] = {"kind": "readout replicates, the encoders fixed", "mean_rho": 0.9,
                                          "mean_rho_off_diagonal": 0.89}
            result[t]["excluded_targets"] = {"denoising": "tied"} if t == "wins_vs_pixels" else {}
        dest = mini_builds.build_dir(b, root)
        dest.mkdir(parents=True)
        (dest / "correlation_details.json").write_text(json.dumps(result))


def test_the_report_ranks_methods_per_build_and_measures_their_agreement(tmp_path):
    rng = np.random.default_rng(0)
    per_task = {}
    for b in BUILDS:
        base = {"modelgif": -0.3, "cka": -0.6, "static": -0.5}
        if b == 2:
            base = {"modelgif": -0.55, "cka": -0.6, "static": -0.2}  # one build moves modelgif ahead of static
        per_task[b] = {t: {m: np.clip(v * (1 if t == "wins_vs_pixels" else -1) + rng.normal(0, 0.05, len(TASKS)), -1, 1)
                           for m, v in base.items()} for t in ("wins_vs_pixels", "losses")}
    _kept(tmp_path, per_task)
    out = mini_builds.report(BUILDS, tmp_path)
    for t in ("wins_vs_pixels", "losses"):
        entry = out["tables"][t]
        assert entry["rows"] == METHODS  # the hub rows and the ceiling are not rankings
        assert entry["better"] == ("lower" if t == "wins_vs_pixels" else "higher")
        means = np.array([[np.mean(per_task[b][t][m]) for m in METHODS] for b in BUILDS])
        w = entry["kendalls_w"]["mean_rho"]
        assert w["w"] == pytest.approx(kendalls_w(means, entry["better"]))
        # cka first everywhere; modelgif and static swap in build 2: W = 12 S / (m² (n³ − n)) by hand
        ranks = np.array([[3, 1, 2], [3, 1, 2], [2, 1, 3]])  # losses: the signs flipped, higher is better
        s = ((ranks.sum(axis=0) - 3 * 4 / 2) ** 2).sum()
        assert w["w"] == pytest.approx(12 * s / (9 * (27 - 3)))
        lo, hi = w["w_range95_targets"]
        assert lo <= w["w"] <= hi and w["n_builds"] == 3 and w["n_methods"] == 3
        # p_perm against the exact null: every build's 3! orders, all 6³ combinations enumerated
        exact = np.mean([kendalls_w(np.array(orders, dtype=float)) >= w["w"] - 1e-12
                         for orders in itertools.product(itertools.permutations(range(3)), repeat=3)])
        assert w["p_perm"] == pytest.approx(exact, abs=0.02)
        assert entry["per_build"]["1"]["noise_ceiling"]["mean_rho"] == 0.9
        assert entry["per_build"]["0"]["excluded_targets"] == (["denoising"] if t == "wins_vs_pixels" else [])
    # the ground truths between builds: Spearman per target column of the committed tables, by scipy
    truth = {b: ground_truth_tables({"mini": {"build": b, "ground_truth": ["losses"]}}, "mini", TASKS)[0].matrix
             for b in BUILDS}
    direct = np.mean([spearmanr(truth[0][:, j], truth[2][:, j]).statistic for j in range(len(TASKS))])
    assert out["tables"]["losses"]["between_builds"]["0-2"]["mean_rho"] == pytest.approx(direct)
    text = mini_builds.markdown(out)
    assert text.count("| modelgif |") == 2 and "Kendall's W over the 3 builds" in text


def test_a_build_without_kept_results_is_named(tmp_path):
    with pytest.raises(SystemExit, match=r"no metrics/mini_builds/build0/correlation_details.json"):
        mini_builds.report(BUILDS, tmp_path)


def test_a_build_scored_without_a_dead_encoder_is_compared_on_the_common_targets(tmp_path):
    rng = np.random.default_rng(1)
    per_task, names = {}, {}
    for b in BUILDS:
        names[b] = [t for t in TASKS if not (b == 2 and t == "depth_euclidean")]
        per_task[b] = {t: {m: rng.uniform(-1, 1, len(names[b])) for m in METHODS} for t in ("wins_vs_pixels", "losses")}
    _kept(tmp_path, per_task)
    (mini_builds.build_dir(2, tmp_path) / "tasks.json").write_text(json.dumps(names[2]))
    out = mini_builds.report(BUILDS, tmp_path)
    common = [t for t in TASKS if t != "depth_euclidean"]
    assert out["common_targets"] == common and out["tasks"]["2"] == names[2]
    entry = out["tables"]["wins_vs_pixels"]
    means = np.array([[np.mean([per_task[b]["wins_vs_pixels"][m][names[b].index(t)] for t in common]) for m in METHODS]
                      for b in BUILDS])
    assert entry["kendalls_w"]["mean_rho"]["w"] == pytest.approx(kendalls_w(means, "lower"))
    (mini_builds.build_dir(1, tmp_path) / "tasks.json").write_text(json.dumps(common))  # 16 names, 17 values
    with pytest.raises(SystemExit, match="17 per-task values for 16 tasks"):
        mini_builds.report(BUILDS, tmp_path)
