"""Calibration of the correlate stage's uncertainty on the control zoo (issue 22, "Must hold" 2).

    python benchmarks/calibration.py [--draws 8] [--n-images 24] [--n-steps 3] [--n-boot 200]
                                     [--permutations 1000] [--json benchmarks/results-calibration.json]

``mini_random`` (random-init mini encoders, one zoo per ``mini.checkpoints.random_seed``) is
exchangeable across tasks: off the diagonal, the true association between any method's distance
and the mini ground truth is 0. For each draw of the zoo (random seeds 0 … draws − 1) this
computes the 7 methods' distances and image-bootstrap resamples on the same reference images
(the mini zoo's rendered scenes, 64 px), scores them against both mini tables
(``wins_vs_pixels``, ``losses``) with the library the correlate stage uses, and counts, over the
7 × 2 × draws off-diagonal scores:

- how often the **old** interval (images only, percentile: ``mean_rho_off_diagonal_ci95_images``)
  excludes 0,
- how often the **new** interval (two-factor: images × tasks, the tasks drawn as sources and
  targets together, percentile: ``mean_rho_off_diagonal_ci95``) excludes 0, and the BCa interval
  of the same replicates (``mean_rho_off_diagonal_ci95_bca``), and the images × targets interval
  with the sources fixed (``mean_rho_off_diagonal_ci95_targets``),
- the share of ``p_perm_off_diagonal`` < 0.05 (Mantel permutation null),

each of which should be about 5 % (one-sided p: the share of p < 0.05 should be ≤ 5 %; an
interval that excludes 0 on either side counts). Small settings by default (24 images, 3
Gauss–Legendre steps, 200 resamples): CPU time is scarce, and calibration concerns the
variation over tasks, which does not shrink with images. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelgif.field.attribution import attribution_map, encoder_features, field_end_point  # noqa: E402
from modelgif.field.baselines import make_baselines  # noqa: E402
from modelgif.compare.resample import (  # noqa: E402
    bootstrap_field_distances,
    bootstrap_set_distances,
    image_contributions,
    resample_indices,
)
from modelgif.score.bootstrap import summarize  # noqa: E402
from modelgif.field.gradients import gradient_field  # noqa: E402
from modelgif.score.inference import score_method, target_draws, task_permutations  # noqa: E402
from modelgif.reference import rendered_reference_set  # noqa: E402
from modelgif.compare.similarity import cka_distance, dds_distance, rsa_distance  # noqa: E402
from modelgif.score.ground_truth import ground_truth_tables  # noqa: E402
from modelgif.zoo.models import random_encoder  # noqa: E402

FIELD_METHODS = ("modelgif", "ig", "saliency", "gradxinput")
SET_METHODS = ("cka", "rsa", "dds")
TABLES = {"wins_vs_pixels": True, "losses": False}  # higher_is_closer


def method_distances(models, images, n_steps: int, n_boot: int, seed: int) -> dict:
    """{method: (D (K, K), samples (B, K, K))} on one zoo, as tools/methods_mini.py computes them
    (fields kept in memory: they are small at these settings)."""
    baselines = make_baselines(images, "shuffled", 0)
    fields, maps = [], {"saliency": [], "gradxinput": []}
    for model in models:
        fields.append(gradient_field(model, images, baselines, target=1, n_steps=n_steps, method="gausslegendre",
                                     cumulative=True, batch_size=500).numpy())
        for kind in maps:
            maps[kind].append(attribution_map(model, images, kind, target=1).numpy())
    feats = [encoder_features(m, images) for m in models]
    contributions = {"modelgif": image_contributions(fields, device="numpy"),
                     "ig": image_contributions([f[:, -1:] for f in fields], device="numpy"),
                     "saliency": image_contributions(maps["saliency"], device="numpy"),
                     "gradxinput": image_contributions(maps["gradxinput"], device="numpy")}
    idx = resample_indices(images.shape[0], n_boot, seed)
    out = {m: (c.mean(axis=0), bootstrap_field_distances(c, idx)) for m, c in contributions.items()}
    full = {"cka": cka_distance(feats), "rsa": rsa_distance(feats), "dds": dds_distance(feats)}
    for m in SET_METHODS:
        out[m] = (full[m], bootstrap_set_distances(m, feats, idx, device="cpu"))
    return out


def excludes_zero(interval) -> bool:
    lo, hi = interval
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=8, help="zoos: random seeds 0 .. draws-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--n-images", type=int, default=24)
    ap.add_argument("--n-steps", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="bootstrap.seed: image resamples, target draws, permutations")
    ap.add_argument("--json", type=Path, help="write every interval and p-value here")
    ap.add_argument("--mini-table", action="store_true",
                    help="instead: the trained mini zoo's table with baselines, target-specific score and the "
                         "primary endpoint, at the same settings")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    tasks = list(params["models"])
    images_u8 = rendered_reference_set(args.n_images, 64, first_seed=1_000_000, use_cutmix=True, seed=3).images
    images = torch.from_numpy(images_u8).float().div_(255).mul_(2).sub_(1)
    # the tables as the correlate stage scores them: the build params.yaml's mini.build chooses, the
    # degenerate targets' columns constant (left out of every per-target mean)
    tables = {t.name: t for t in ground_truth_tables(params, "mini_random", tasks)}
    truths = {name: tables[name].scored for name in TABLES}
    assert all(tables[name].higher_is_closer == closer for name, closer in TABLES.items())
    draws = target_draws(len(tasks), args.n_boot, seed=(args.seed, 1))
    perms = task_permutations(len(tasks), args.permutations, seed=(args.seed, 2))
    if args.mini_table:
        print(mini_table(tasks, images, truths, draws, perms, args))
        return 0
    rows = []
    for random_seed in range(args.first_seed, args.first_seed + args.draws):
        t0 = time.perf_counter()
        models = [random_encoder(t, random_seed) for t in tasks]
        dist = method_distances(models, images, args.n_steps, args.n_boot, args.seed)
        for table, closer in TABLES.items():
            rows += score_draw(dist, truths[table], draws, perms, closer, random_seed, table)
        print(f"draw {random_seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    summary = summarize_rows(rows)
    print(report(summary, args))
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "summary": summary,
                                         "rows": rows}, indent=1) + "\n")
    return 0


def score_draw(dist: dict, truth: np.ndarray, draws, perms, closer: bool, random_seed: int, table: str) -> list:
    """One row per method on one zoo draw and table: the intervals and p-values whose truth is 0
    off the diagonal on mini_random (mean ρ; the target-specific score; the paired differences
    minus_hub and delta_vs_modelgif), scored as the correlate stage scores them."""
    from modelgif.score.inference import hub_distance, paired_difference

    better = "lower" if closer else "higher"
    scored, reps = {}, {}
    for m in sorted(dist, key=lambda m: m != "modelgif"):  # modelgif first: it pairs the others
        d, samples = dist[m]
        ref = None if m == "modelgif" else (*dist["modelgif"], reps["modelgif"])
        scored[m] = score_method(d, samples, truth, draws, perms, higher_is_closer=closer, reference=ref)
        reps[m] = scored[m].pop("_replicates")
    rows = []
    for m, (d, samples) in dist.items():
        old = summarize(d, samples, truth, better=better)
        new = scored[m]
        hub = (hub_distance(d), hub_distance(samples))  # the method's own target-agnostic version
        mh = paired_difference(d, samples, truth, draws, hub, name="minus_hub", known=reps[m])
        rows.append({"random_seed": random_seed, "table": table, "method": m,
                     "mean_rho_off_diagonal": new["mean_rho_off_diagonal"],
                     "old_ci95": old["mean_rho_off_diagonal_ci95"], "new_ci95": new["mean_rho_off_diagonal_ci95"],
                     "new_bca_ci95": new["mean_rho_off_diagonal_ci95_bca"],
                     "targets_ci95": new["mean_rho_off_diagonal_ci95_targets"],
                     "p_perm_off_diagonal": new["p_perm_off_diagonal"],
                     "chance_level": new["chance_level"], "mean_rho": new["mean_rho"],
                     "p_perm": new["p_perm"],
                     "target_specific": new["mean_rho_target_specific"],
                     "target_specific_ci95": new["mean_rho_target_specific_ci95"],
                     "target_specific_bca_ci95": new["mean_rho_target_specific_ci95_bca"],
                     "p_perm_target_specific": new["p_perm_target_specific"],
                     "minus_hub_off_diagonal": mh["minus_hub_off_diagonal"],
                     "minus_hub_ci95": mh["minus_hub_off_diagonal_ci95"],
                     "minus_hub_bca_ci95": mh["minus_hub_off_diagonal_ci95_bca"],
                     "minus_hub_targets_ci95": mh["minus_hub_off_diagonal_ci95_targets"],
                     "delta_ci95": new.get("delta_vs_modelgif_off_diagonal_ci95")})
    return rows


def mini_table(tasks, images, truths, draws, perms, args) -> str:
    """The trained mini zoo's methods and baselines (static, hub of modelgif) per table, and the
    primary family (modelgif vs each method, per-task ρ on the first table, Wilcoxon + Holm)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from methods_mini import load_models

    from modelgif.score.inference import hub_distance, primary_comparisons, static_distance

    dist = method_distances(load_models("mini", tasks, 0), images, args.n_steps, args.n_boot, args.seed)
    lines = [f"mini (trained), {args.n_images} images, {args.n_steps} steps, {args.n_boot} resamples, "
             f"{args.permutations} permutations"]
    for table, closer in TABLES.items():
        t = truths[table]
        rows = dict(dist)
        stat = static_distance(t, closer)
        rows["static"] = (stat, np.repeat(stat[None], args.n_boot, axis=0))
        rows["hub"] = (hub_distance(dist["modelgif"][0]), hub_distance(dist["modelgif"][1]))
        lines += [f"\n{table} ({'lower' if closer else 'higher'} rho is better)",
                  "| row | mean ρ [95 %] | chance | p_perm | off-diagonal [95 %] | p_perm | target-specific [95 %] "
                  "| top-1 regret | NDCG@3 |", "|---|---|---|---|---|---|---|---|---|"]
        per = {}
        for m, (d, samples) in rows.items():
            r = score_method(d, samples, t, draws, perms, higher_is_closer=closer)
            per[m] = [per_task_spearman_list(d, t)]
            f = lambda k: f"{r[k]:+.3f} [{r[k + '_ci95'][0]:+.3f}, {r[k + '_ci95'][1]:+.3f}]"  # noqa: E731
            lines.append(f"| {m} | {f('mean_rho')} | {r['chance_level']:+.3f} | {r['p_perm']:.3g} | "
                         f"{f('mean_rho_off_diagonal')} | {r['p_perm_off_diagonal']:.3g} | "
                         f"{f('mean_rho_target_specific')} | {r['top1_regret']:.3f} | {r['ndcg_at_3']:.3f} |")
        if table == next(iter(TABLES)):
            family = primary_comparisons({m: per[m][0] for m in dist}, "modelgif")
            lines += ["\nprimary: mean_rho on " + table + ", method − modelgif per task, Wilcoxon, Holm",
                      "| method | median Δ | p | p_holm |", "|---|---|---|---|"]
            lines += [f"| {m} | {c['median_difference']:+.3f} | {c['p']:.3g} | {c['p_holm']:.3g} |"
                      for m, c in family.items()]
    return "\n".join(lines)


def per_task_spearman_list(d, t) -> list:
    from modelgif.score.correlation import per_task_spearman

    return [None if np.isnan(r) else float(r) for r in per_task_spearman(d, t)]


COUNTS = {  # column: (what excludes the true 0, row key)
    "old: images only": ("interval", "old_ci95"),
    "new: images x tasks (percentile, primary)": ("interval", "new_ci95"),
    "same, BCa": ("interval", "new_bca_ci95"),
    "images x targets, sources fixed": ("interval", "targets_ci95"),
    "p_perm_off_diagonal < 0.05": ("p", "p_perm_off_diagonal"),
    "p_perm < 0.05 (diagonal in)": ("p", "p_perm"),
}
SECONDARY = {  # the secondary scores, truth 0 off the diagonal as well
    "minus_hub: images x tasks (primary)": ("interval", "minus_hub_ci95"),
    "minus_hub: BCa": ("interval", "minus_hub_bca_ci95"),
    "minus_hub: sources fixed": ("interval", "minus_hub_targets_ci95"),
    "target-specific: sources fixed (primary)": ("interval", "target_specific_ci95"),
    "target-specific: BCa": ("interval", "target_specific_bca_ci95"),
    "p_perm_target_specific < 0.05": ("p", "p_perm_target_specific"),
    "delta_vs_modelgif: images x tasks": ("interval", "delta_ci95"),
}


def _hit(kind: str, value) -> bool | None:
    """Whether a score rejects the true 0: an interval that excludes it, a p-value below 0.05;
    None where the row has no such score (modelgif's delta to itself, a p-value left undefined)."""
    if value is None:
        return None
    if kind == "interval":
        return excludes_zero(value) if np.all(np.isfinite(value)) else None
    return bool(value < 0.05) if np.isfinite(value) else None


def summarize_rows(rows: list[dict], columns: dict | None = None) -> dict:
    """{group: {"n": rows, column: [hits, scored]}}: for each column, how many of the group's rows
    reject the true 0 out of how many have the score."""
    columns = COUNTS | SECONDARY if columns is None else columns

    def share(sel):
        sel = list(sel)
        out = {"n": len(sel)}
        for name, (kind, key) in columns.items():
            hits = [h for h in (_hit(kind, r.get(key)) for r in sel) if h is not None]
            out[name] = [sum(hits), len(hits)]
        return out

    out = {"all": share(rows)}
    out["field methods"] = share(r for r in rows if r["method"] in FIELD_METHODS)
    out["set methods"] = share(r for r in rows if r["method"] in SET_METHODS)
    for table in TABLES:
        out[table] = share(r for r in rows if r["table"] == table)
    return out


def report(summary: dict, args) -> str:
    head = (f"mini_random, {args.draws} draws (random seeds {args.first_seed}..{args.first_seed + args.draws - 1}), "
            f"{args.n_images} images, {args.n_steps} steps, {args.n_boot} resamples, {args.permutations} permutations")
    lines = [head]
    for title, columns in (("mean rho, off the diagonal (and p_perm with the diagonal in)", COUNTS),
                           ("secondary scores, off the diagonal", SECONDARY)):
        lines += ["", title, "| scores | n | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
        for name, s in summary.items():
            cells = []
            for c in columns:
                hits, n = s[c]
                cells.append(f"{hits}/{n} ({hits / n:.1%})" if n else "-")
            lines.append(f"| {name} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
