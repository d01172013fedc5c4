"""The transferability estimators' bootstrap at the mini demo's shape: per-pair calls against the table
form, side by side, on the same resamples (issue 23: what a run of logme, linear_mse and knn costs).

    python benchmarks/estimators.py                       # 100 images, 64 px, build 0, 10 resamples
    python benchmarks/estimators.py --resamples 3 --json benchmarks/results-estimators.json

The inputs are the demo's: ``make demo``'s reference set (100 ``mini-scenes`` renders at 64 px,
CutMix seed 3), the chosen build's 17 trained encoders' outputs on it, and each task's labels of
those images (:func:`modelgif.reference.labels.reference_labels`), with the estimators' default
options (params.yaml's ``method_options``). For each estimator and each resample
(:func:`modelgif.compare.resample.resample_indices`, seed 0), the (17, 17) D is computed twice, in
alternation:

- **per pair**: :func:`modelgif.compare.estimator_distances.estimator_matrix`'s rows and targets,
  then one call of the one-pair function (``logme``, ``linear_mse``, ``knn``) per (source, target):
  each pair's own SVD or neighbour search, and LogME's fixed point per pair (what the method did
  before the table form);
- **table**: ``estimator_matrix`` itself: each source's decomposition once per row set, LogME's
  fixed point for every (source, label column) at once.

It prints each one's seconds per resample, their ratio (median of the per-resample ratios) and the
largest difference between the two D (they are one computation in another order: it should be at
rounding level), and the minutes that a ``bootstrap.n: 1000`` run of the method takes at the table
form's speed. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelgif.compare.estimator_distances import _target, estimator_matrix, sample_rows  # noqa: E402
from modelgif.compare.estimators import knn, linear_mse, logme  # noqa: E402
from modelgif.compare.methods import check_method  # noqa: E402
from modelgif.compare.resample import resample_indices  # noqa: E402
from modelgif.field.attribution import encoder_features  # noqa: E402
from modelgif.reference import rendered_reference_set  # noqa: E402
from modelgif.reference.labels import reference_labels  # noqa: E402
from modelgif.zoo.mini_builds import encoders_dir, manifest_path  # noqa: E402
from modelgif.zoo.models import load_zoo_encoder  # noqa: E402

ESTIMATORS = ("logme", "linear_mse", "knn")


def per_pair(estimator, features, labels, images, options, rng) -> np.ndarray:
    """D as ``estimator_matrix`` computes it (the same rows, the same targets), from one call of the
    one-pair estimator per (source, target)."""
    n, _, h, w = features[0].shape
    rows = {True: sample_rows(images, h * w, options["max_samples"], rng),
            False: sample_rows(images, 1, options["max_samples"], rng)}
    d = np.zeros((len(features), len(labels)))
    for j, lab in enumerate(labels):
        if lab.dense:
            flat = lab.values.reshape(n * h * w) if lab.kind == "classification" else \
                lab.values.transpose(0, 2, 3, 1).reshape(n * h * w, -1)
        else:
            flat = lab.values
        target = _target(estimator, flat[rows[lab.dense]], lab.kind)
        if target is None:
            continue
        for i, f in enumerate(features):
            x = (f.transpose(0, 2, 3, 1).reshape(n * h * w, -1) if lab.dense else f.reshape(n, -1))[rows[lab.dense]]
            if estimator == "logme":
                d[i, j] = -logme(x, target[0], kind=target[1])
            elif estimator == "knn":
                d[i, j] = -knn(x, target[0], min(options["k"], len(x) - 1), kind=target[1])
            else:
                d[i, j] = -linear_mse(x, target[0], options["alpha"])
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-images", type=int, default=100, help="reference images (the demo's: 100)")
    ap.add_argument("--build", type=int, default=0, help="the mini zoo build whose encoders give the features")
    ap.add_argument("--resamples", type=int, default=10, help="bootstrap resamples timed, per estimator")
    ap.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated: logme,linear_mse,knn")
    ap.add_argument("--json", type=Path, help="write the timings and the machine here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tasks = list(yaml.safe_load((ROOT / "params.yaml").read_text())["models"])
    ref = rendered_reference_set(args.n_images, 64, first_seed=1_000_000, use_cutmix=True, seed=3)
    images = torch.from_numpy(ref.images).float().div_(255).mul_(2).sub_(1)
    manifest = json.loads((ROOT / manifest_path(args.build)).read_text())["encoders"]
    models = [load_zoo_encoder("mini", t, ROOT / encoders_dir(args.build) / manifest[t]["file"],
                               sha256=manifest[t]["sha256"]) for t in tasks]
    with torch.no_grad():
        grid = tuple(models[0](images[:1]).shape[1:])  # (C, h, w)
    feats = [np.asarray(encoder_features(m, images), dtype=np.float64).reshape(-1, *grid) for m in models]
    labels_by_task = reference_labels(ref.manifest, tasks, feats[0].shape[2:])
    labels = [labels_by_task[t] for t in tasks]
    indices = resample_indices(args.n_images, args.resamples, 0)
    rows = {}
    for est in args.estimators.split(","):
        options = check_method(est)
        times = {"per_pair": [], "table": []}
        diff = 0.0
        for b, idx in enumerate(indices):
            images_b = np.unique(idx)
            t0 = time.perf_counter()
            old = per_pair(est, feats, labels, images_b, options, np.random.default_rng([options["sample_seed"], b + 1]))
            t1 = time.perf_counter()
            new = estimator_matrix(est, feats, labels, images_b, options, np.random.default_rng([options["sample_seed"], b + 1]))
            t2 = time.perf_counter()
            times["per_pair"].append(t1 - t0)
            times["table"].append(t2 - t1)
            diff = max(diff, float(np.abs(old - new).max()))
        ratio = float(np.median(np.divide(times["per_pair"], times["table"])))
        rows[est] = {"per_pair_s": float(np.median(times["per_pair"])), "table_s": float(np.median(times["table"])),
                     "speedup": ratio, "max_abs_difference": diff,
                     "minutes_per_1000_resamples": float(np.median(times["table"])) * 1000 / 60, "times": times}
    print(f"{args.n_images} images, build {args.build}, {args.resamples} resamples, {len(tasks)} sources × "
          f"{len(tasks)} targets (median seconds per resample)")
    print("| estimator | per pair | table | speedup | max |D_pair − D_table| | table: min per 1000 resamples |")
    print("|---|---|---|---|---|---|")
    for est, r in rows.items():
        print(f"| {est} | {r['per_pair_s']:.3f} | {r['table_s']:.3f} | {r['speedup']:.1f}× | "
              f"{r['max_abs_difference']:.1e} | {r['minutes_per_1000_resamples']:.1f} |")
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "commit": commit,
                                         "dirty": dirty, "machine": platform.platform(),
                                         "numpy": np.__version__, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
