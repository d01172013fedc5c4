"""Every functional-distance method of issue 12 on the mini zoo, with bootstrap intervals.

    python tools/methods_mini.py [--zoo mini|mini_random] [--random-seed K] [--json OUT]

PRE-REGISTERED CONFIGURATION (fixed and committed before the first run; run once, no tuning):

* Models: the 17 encoders of ``zoo`` (``mini``: the committed trained zoo, ``data/mini/encoders``,
  checked against ``data/manifests/mini_encoders.json``; ``mini_random``: the same encoders'
  initial weights, :func:`modelgif.zoo.models.random_encoder` with ``--random-seed``), in the task
  order of ``params.yaml``.
* Reference set: the mini zoo's rendered scenes as ``make demo`` builds them (100 scenes from
  seed 1 000 000, 64 px, CutMix seed 3; ``mini.reference`` of ``params.yaml`` when this was
  fixed, ``reference`` with ``n_images: 100``, ``image_size: 64`` since, so the values are
  pinned here in :data:`REFERENCE`), images mapped to [-1, 1]; shuffled baseline, derangement seed 0.
* ``modelgif``: target 1, 50 Gauss–Legendre steps, cumulative field, stored as float16 (the
  pipeline's storage), cosine distance.
* ``ig``: the last step of the same stored fields (plain Integrated Gradients), cosine.
* ``saliency`` / ``gradxinput``: the target-1 input gradient at x (times x), channel mean, cosine.
* ``cka``: linear CKA on the encoder outputs (8·4·4 = 128 values per image), biased estimator.
* ``rsa``: 1 − Pearson RDMs of the encoder outputs, Spearman between the upper triangles.
* ``dds``: z-scored outputs, Laplacian kernel, debiased CKA (the DDS default,
  :func:`modelgif.compare.similarity.dds_distance`).
* Ground truth: ``data/mini/tables`` (seed-0 build): ``wins_vs_pixels`` (an affinity: negative
  ρ is good) and ``losses`` (positive ρ is good). Per task ρ_j = Spearman(T[:, j], D[:, j]),
  diagonal included, and the same with each task's own entry left out (off-diagonal); means
  over the tasks where ρ is defined.
* Uncertainty: 1000 bootstrap resamples of the 100 reference images (seed 0), the same for
  every method; 95 % percentile intervals of the mean ρ and of the paired difference
  Δ = mean ρ(method) − mean ρ(modelgif); the fraction of resamples where the method is better.
  A difference counts as supported when its 95 % interval excludes 0.
* Noise ceiling: per-column Spearman between the seed-0 and seed-1 tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from modelgif.field.attribution import attribution_map, encoder_features, field_end_point
from modelgif.field.baselines import make_baselines
from modelgif.compare.resample import bootstrap_field_distances, bootstrap_set_distances, image_contributions, resample_indices
from modelgif.score.bootstrap import add_full_delta, noise_ceiling, summarize
from modelgif.compare.distance import distance_matrix
from modelgif.field.gradients import gradient_field
from modelgif.reference import rendered_reference_set
from modelgif.compare.similarity import cka_distance, dds_distance, rsa_distance
from modelgif.io.storage import save_field
from modelgif.zoo.taskonomy import load_ground_truth
from modelgif.zoo.models import load_zoo_encoder, random_encoder

ROOT = Path(__file__).resolve().parent.parent
from modelgif.compare.registry import FIELD_METHODS, SET_METHODS  # noqa: E402
TABLES = {"wins_vs_pixels": "lower", "losses": "higher"}
#: The pre-registered reference set (``mini.reference`` of ``params.yaml`` at commit 1f3c02b).
REFERENCE = {"n_images": 100, "size": 64, "first_seed": 1_000_000, "cutmix": True, "seed": 3}


def load_models(zoo: str, tasks: list[str], random_seed: int) -> list[torch.nn.Module]:
    if zoo == "mini_random":
        return [random_encoder(t, random_seed) for t in tasks]
    manifest = json.loads((ROOT / "data/manifests/mini_encoders.json").read_text())["encoders"]
    return [load_zoo_encoder("mini", t, ROOT / "data/mini/encoders" / manifest[t]["file"], sha256=manifest[t]["sha256"])
            for t in tasks]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=("mini", "mini_random"), default="mini")
    ap.add_argument("--random-seed", type=int, default=0, help="mini_random: seed of the initial weights")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--smoke", action="store_true", help="plumbing check only: 8 images, 3 steps, 20 resamples")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    tasks = list(params["models"])
    ref = dict(REFERENCE)
    n_steps = 3 if args.smoke else 50
    if args.smoke:
        ref = {**ref, "n_images": 8}
        args.n_boot = 20
    images_u8 = rendered_reference_set(int(ref["n_images"]), int(ref["size"]), first_seed=int(ref["first_seed"]),
                                       use_cutmix=bool(ref["cutmix"]), seed=int(ref["seed"])).images
    images = torch.from_numpy(images_u8).float().div_(255).mul_(2).sub_(1)
    baselines = make_baselines(images, "shuffled", 0)
    models = load_models(args.zoo, tasks, args.random_seed)
    n = images.shape[0]
    timing = {}

    with tempfile.TemporaryDirectory(prefix="methods_mini_") as work:
        paths, maps, feats = [], {"saliency": [], "gradxinput": []}, []
        t0 = time.perf_counter()
        for task, model in zip(tasks, models):
            field = gradient_field(model, images, baselines, target=1, n_steps=n_steps, method="gausslegendre",
                                   cumulative=True, batch_size=500)
            paths.append(save_field(Path(work) / f"{task}.npy", field, dtype="float16"))
            print(f"field {task}", file=sys.stderr, flush=True)
        timing["fields_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for model in models:
            for kind in maps:
                maps[kind].append(attribution_map(model, images, kind, target=1).numpy())
        timing["attribution_maps_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        feats = [encoder_features(m, images) for m in models]
        timing["features_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        contributions = {"modelgif": image_contributions(paths),
                         "ig": image_contributions([field_end_point(p) for p in paths]),
                         "saliency": image_contributions(maps["saliency"]),
                         "gradxinput": image_contributions(maps["gradxinput"])}
        timing["contributions_s"] = time.perf_counter() - t0
        check = distance_matrix(paths)
        assert np.allclose(contributions["modelgif"].mean(axis=0), check, atol=1e-10), "contributions != distance"

    distances = {m: c.mean(axis=0) for m, c in contributions.items()}
    distances["cka"] = cka_distance(feats)
    distances["rsa"] = rsa_distance(feats)
    distances["dds"] = dds_distance(feats)

    idx = resample_indices(n, args.n_boot, args.seed)
    samples = {}
    for m in FIELD_METHODS:
        t0 = time.perf_counter()
        samples[m] = bootstrap_field_distances(contributions[m], idx)
        timing[f"bootstrap_{m}_s"] = time.perf_counter() - t0
    for m in SET_METHODS:
        t0 = time.perf_counter()
        samples[m] = bootstrap_set_distances(m, feats, idx)
        timing[f"bootstrap_{m}_s"] = time.perf_counter() - t0

    results = {"zoo": args.zoo, "random_seed": args.random_seed if args.zoo == "mini_random" else None,
               "n_images": n, "n_boot": args.n_boot, "seed": args.seed, "timing": timing, "tables": {}}
    for table, better in TABLES.items():
        truth = load_ground_truth(table, tasks, ROOT / "data/mini/tables")
        truth_seed1 = load_ground_truth(table, tasks, ROOT / "data/mini/tables_seed1")
        rows = {}
        for m in FIELD_METHODS + SET_METHODS:
            rows[m] = summarize(distances[m], samples[m], truth, reference=samples["modelgif"], better=better)
        for m in rows:
            add_full_delta(rows[m], rows["modelgif"])
        results["tables"][table] = {
            "better": better, "methods": rows,
            "noise_ceiling": noise_ceiling(truth, truth_seed1),
            "noise_ceiling_off_diagonal": noise_ceiling(truth, truth_seed1, diagonal=False),
        }

    for table, r in results["tables"].items():
        print(f"\n{args.zoo} vs {table} ({r['better']} is better); noise ceiling {r['noise_ceiling']['mean_rho']:+.3f} "
              f"(off-diagonal {r['noise_ceiling_off_diagonal']['mean_rho']:+.3f})")
        print(f"| method | mean ρ | 95 % CI | off-diagonal | 95 % CI | Δ vs modelgif | 95 % CI | better in |")
        print("|---|---|---|---|---|---|---|---|")
        for m, s in r["methods"].items():
            lo, hi = s["mean_rho_ci95"]
            olo, ohi = s["mean_rho_off_diagonal_ci95"]
            dlo, dhi = s["delta_vs_modelgif_ci95"]
            print(f"| {m} | {s['mean_rho']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | {s['mean_rho_off_diagonal']:+.3f} | "
                  f"[{olo:+.3f}, {ohi:+.3f}] | {s['delta_vs_modelgif']:+.3f} | [{dlo:+.3f}, {dhi:+.3f}] | "
                  f"{s['share_of_resamples_better_than_modelgif']:.1%} |")
    print("\ntiming (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timing.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
