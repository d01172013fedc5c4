"""What Kendall's W over the mini zoo's builds can claim (issue 23, item 5), on simulations whose
truth is known.

    python benchmarks/kendalls_w_coverage.py [--reps 100] [--resamples 300] [--json benchmarks/results-kendalls-w.json]

Each simulated benchmark has m = 3 builds scoring n = 9 methods on K = 17 targets, as the mini
zoo's report does: per-target score = method effect μ_i + build-by-method effect u_bi (encoder
retraining) + target-by-method effect t_ik shared by every build (the same target tasks in every
build) + noise e_bik. The truth is W of the builds' population means (μ_i + u_bi: infinitely
many targets). For each scenario, over ``--reps`` draws of the targets and the noise, this
counts how often :func:`modelgif.score.agreement.kendalls_w_interval`'s target-resampling range
(``w_range95_targets``) holds the truth, and, under the null (no method effect, no build
agreement), how often its ``p_perm`` falls below 0.05. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelgif.score.agreement import kendalls_w, kendalls_w_interval  # noqa: E402

M, N, K = 3, 9, 17
#: name: (sd of μ, sd of u, sd of t, sd of e); the mini zoo's per-target ρ have sd ≈ 0.3
SCENARIOS = {
    "strong method effect, independent noise": (0.15, 0.03, 0.0, 0.3),
    "weak method effect, independent noise": (0.05, 0.03, 0.0, 0.3),
    "builds only (no method effect)": (0.0, 0.05, 0.0, 0.3),
    "strong method effect, shared targets": (0.15, 0.03, 0.25, 0.1),
    "weak method effect, shared targets": (0.05, 0.03, 0.25, 0.1),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=300)
    ap.add_argument("--null-reps", type=int, default=400)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "scenarios": {}}
    lines = [f"m = {M} builds, n = {N} methods, K = {K} targets; {args.reps} benchmarks per scenario, "
             f"{args.resamples} target resamples each",
             "| scenario | true W | mean estimate | range holds the truth |", "|---|---|---|---|"]
    for name, (sd_mu, sd_u, sd_t, sd_e) in SCENARIOS.items():
        t0 = time.perf_counter()
        mu, u = rng.normal(0, sd_mu, N), rng.normal(0, sd_u, (M, N))
        truth = kendalls_w(mu[None] + u)
        held, est = 0, []
        for r in range(args.reps):
            p = (mu[None] + u)[:, :, None] + rng.normal(0, sd_t, (N, K))[None] + rng.normal(0, sd_e, (M, N, K))
            res = kendalls_w_interval(p, n=args.resamples, seed=r, permutations=1)
            lo, hi = res["w_range95_targets"]
            held += bool(lo <= truth <= hi)
            est.append(res["w"])
        out["scenarios"][name] = {"sd": [sd_mu, sd_u, sd_t, sd_e], "true_w": truth, "mean_w": float(np.mean(est)),
                                  "held": held, "reps": args.reps}
        lines.append(f"| {name} | {truth:.3f} | {np.mean(est):.3f} | {held}/{args.reps} ({held / args.reps:.0%}) |")
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    below = 0
    for r in range(args.null_reps):  # the null of p_perm: no method effect and no build agreement
        p = rng.normal(0, 0.3, (M, N, K))
        below += kendalls_w_interval(p, n=1, seed=r, permutations=args.permutations)["p_perm"] < 0.05
    out["null"] = {"reps": args.null_reps, "p_perm_below_0.05": int(below)}
    lines += ["", f"null (no method effect, no build agreement): p_perm < 0.05 in {below}/{args.null_reps} "
                  f"({below / args.null_reps:.1%}) of the benchmarks, {args.permutations} permutations each"]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
