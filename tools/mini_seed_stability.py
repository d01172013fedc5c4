"""Compare the mini-Taskonomy transfer tables of two builds (e.g. seeds 0 and 1).

    python tools/mini_seed_stability.py data/mini/tables data/mini/tables_seed1 [--json OUT]

For ``losses`` and ``wins_vs_pixels`` it prints Spearman's rank correlation between the two
builds' 17 × 17 matrices, in two ways:

* ``all pairs``: over the 289 (source, target) entries at once. For ``losses`` this is
  flattered by the targets' different loss scales (metres of depth vs fractions of pixels),
  which any two builds share;
* ``per target``: over the 17 sources of each target column (what ModelGiF is scored on),
  the mean and the minimum over the targets (a column constant in either build, e.g. win
  rates all 1, has no rank correlation and is left out, and counted); the stricter of the two.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from modelgif.mini import TASK_LABELS
from modelgif.zoo.taskonomy import load_ground_truth


def stability(a: np.ndarray, b: np.ndarray) -> dict:
    """Spearman ρ between two K × K tables: over all entries, and per column (mean, min, each)."""
    cols = [float(spearmanr(a[:, j], b[:, j]).statistic) if np.ptp(a[:, j]) and np.ptp(b[:, j]) else float("nan")
            for j in range(a.shape[1])]
    return {"all_pairs": float(spearmanr(a.ravel(), b.ravel()).statistic),
            "per_target_mean": float(np.nanmean(cols)), "per_target_min": float(np.nanmin(cols)),
            "per_target_undefined": int(np.isnan(cols).sum()),
            "per_target": {t: (None if np.isnan(c) else c) for t, c in zip(TASK_LABELS, cols)}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    result = {}
    for name in ("losses", "wins_vs_pixels"):
        a = load_ground_truth(name, TASK_LABELS, args.first)
        b = load_ground_truth(name, TASK_LABELS, args.second)
        result[name] = s = stability(a, b)
        worst = min((t for t, c in s["per_target"].items() if c is not None), key=s["per_target"].get)
        undefined = f", undefined for {s['per_target_undefined']} (a constant column)" if s["per_target_undefined"] else ""
        print(f"{name:15s} all pairs {s['all_pairs']:.3f}   per target: mean {s['per_target_mean']:.3f}, "
              f"min {s['per_target_min']:.3f} ({worst}){undefined}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
