"""The mini zoo's committed builds side by side (issue 23, items 1, 2 and 5): each build's methods
table, how well the builds agree on the ranking of the methods (Kendall's W, with an interval over
target tasks), and how much the ground truth itself moves when the encoders are retrained.

    python tools/mini_builds.py run [--builds 0 1 2] [-S key=value ...]   # the demo on each build
    python tools/mini_builds.py report                                  # metrics/mini_builds.json

``run`` is ``make demo`` (:mod:`tools.run`, params.yaml kept byte for byte) once per build with
``-S mini.build=<b>`` and the settings :data:`RUN_SETTINGS` (then any ``-S`` given), and keeps each
build's ``metrics/correlation.json`` and ``correlation_details.json`` under
``metrics/mini_builds/build<b>/`` (git-tracked, like every file in metrics/). A build whose run
fails stops the loop; what earlier builds kept stays.

``report`` reads the details (every row with its role, the static baseline among them) and writes ``metrics/mini_builds.json`` (atomically) and prints a markdown
table (docs/mini-zoo.md quotes it):

- per table, per build: each method's and the static baseline's ``mean_rho`` and
  ``mean_rho_off_diagonal`` with their primary intervals, the noise ceiling (readout replicates,
  the encoders fixed) and the excluded targets;
- per table and score: Kendall's W of the builds' rankings of the methods (the static baseline
  among them; rank 1 the best, :func:`modelgif.score.agreement.kendalls_w_interval` over the
  per-target ρ of the diagonal-included score on the targets every build scores, the score whose
  per-target values the metrics keep; the off-diagonal W is a point estimate, of each build's own
  mean);
- per table: the agreement of the builds' ground truths with one another (mean over targets of
  the Spearman ρ between two builds' columns): the encoder-retraining variability, which no
  method can be blamed for and which the noise ceiling (readouts only) does not contain.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelgif.io.atomic import write_text  # noqa: E402
from modelgif.score.agreement import concordance_p, kendalls_w, kendalls_w_interval  # noqa: E402
from modelgif.score.bootstrap import noise_ceiling  # noqa: E402
from modelgif.score.ground_truth import ground_truth_tables  # noqa: E402
from modelgif.zoo.mini_builds import BUILDS, check_build  # noqa: E402

#: What every build runs with, after the demo's own settings: the label-free methods, the three estimators and the
#: pre-registered field_cka (docs/preregistration.md), the off-diagonal score as the primary one
#: (the pre-registered endpoint; it moves only the details' primary family, not the scores).
RUN_SETTINGS = ("methods=[modelgif,ig,saliency,gradxinput,rsa,cka,dds,field_cka,logme,linear_mse,knn]",
                "primary.score=mean_rho_off_diagonal")
#: Encoders of a build that are dead (their map is 0 on every reference image: a ReLU collapse in
#: training), so that a set-level method cannot compare them; the build is scored without them, as
#: source and target (docs/mini-zoo.md, "Builds").
DEAD = {2: ("depth_euclidean",)}
KEPT = ("correlation.json", "correlation_details.json")
OUT = ROOT / "metrics" / "mini_builds.json"
SCORES = ("mean_rho", "mean_rho_off_diagonal")


def build_dir(build: int, root: Path = ROOT) -> Path:
    return root / "metrics" / "mini_builds" / f"build{check_build(build)}"


def run(builds, extra) -> int:
    for b in builds:
        tasks = [t for t in _tasks() if t not in DEAD.get(b, ())]
        argv = [sys.executable, str(ROOT / "tools" / "run.py"), "demo", "mini", "-S", f"mini.build={b}",
                *(x for s in RUN_SETTINGS for x in ("-S", s)), "-S", f"models=[{','.join(tasks)}]", *extra]
        print(f"mini build {b}: {' '.join(argv[1:])}", flush=True)
        code = subprocess.run(argv, cwd=ROOT).returncode
        if code != 0:
            print(f"error: the demo on build {b} failed ({code}); the builds before it are kept", file=sys.stderr)
            return code
        dest = build_dir(b)
        dest.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            write_text(dest / name, (ROOT / "metrics" / name).read_text())
        write_text(dest / "tasks.json", json.dumps(tasks) + "\n")  # the order of every per_task list
    return 0


def _rows(result: dict) -> list[str]:
    """The methods and the static baseline of one table's details (the rows with a role; not each
    method's own hub baseline, a target-agnostic copy of it)."""
    return [m for m, row in result.items() if isinstance(row, dict) and "role" in row and not m.startswith("hub:")]


def report(builds=BUILDS, root: Path = ROOT) -> dict:
    """metrics/mini_builds.json's content, from each build's kept results (module doc)."""
    kept, tasks, listed = {}, {}, _tasks()
    for b in builds:
        path = build_dir(b, root) / "correlation_details.json"  # every row with its role: the baselines too
        if not path.is_file():
            raise SystemExit(f"error: no {path.relative_to(root)}: run `python tools/mini_builds.py run --builds {b}` first")
        kept[b] = json.loads(path.read_text())
        names = build_dir(b, root) / "tasks.json"
        tasks[b] = json.loads(names.read_text()) if names.is_file() else listed
    tables = [t for t in kept[builds[0]] if isinstance(kept[builds[0]][t], dict) and "noise_ceiling" in kept[builds[0]][t]]
    common = [t for t in listed if all(t in tasks[b] for b in builds)]  # the targets every build scores
    out = {"builds": list(builds), "settings": list(RUN_SETTINGS), "tasks": {str(b): tasks[b] for b in builds},
           "common_targets": common, "tables": {}}
    for t in tables:
        rows = _rows(kept[builds[0]][t])
        for b in builds:
            if _rows(kept[b][t]) != rows:
                raise SystemExit(f"error: build {b}'s {t} has methods {_rows(kept[b][t])}, build {builds[0]}'s {rows}: "
                                 "rerun them with the same settings")
        per_build = {}
        for b in builds:
            res = kept[b][t]
            per_build[str(b)] = {
                **{m: {k: res[m][k] for k in (*SCORES, "mean_rho_ci95", "mean_rho_off_diagonal_ci95") if k in res[m]}
                   for m in rows},
                "noise_ceiling": {k: res["noise_ceiling"][k] for k in ("kind", "mean_rho", "mean_rho_off_diagonal", "lower",
                                                                       "upper", "ceiling_ci95") if k in res["noise_ceiling"]},
                "excluded_targets": sorted(res.get("excluded_targets", {})),
            }
        truth = {b: ground_truth_tables({"mini": {"build": b, "ground_truth": [t]}}, "mini", listed)[0] for b in builds}
        # a distance against a closeness (win rates): a negative rho is agreement; against losses a positive one
        better = "lower" if truth[builds[0]].higher_is_closer else "higher"
        per_target = np.array([[[_rho(kept[b][t][m]["per_task"], tasks[b], target) for target in common] for m in rows]
                               for b in builds], dtype=np.float64)  # (builds, rows, common targets)
        w = {"mean_rho": kendalls_w_interval(per_target, better=better, n=1000, seed=0),
             "mean_rho_off_diagonal": _w_with_p(np.array([[kept[b][t][m]["mean_rho_off_diagonal"] for m in rows]
                                                          for b in builds]), better)}
        out["tables"][t] = {"rows": rows, "better": better, "per_build": per_build, "kendalls_w": w,
                            "between_builds": between_builds(truth)}
    return out


def _w_with_p(scores: np.ndarray, better: str) -> dict:
    return {"w": kendalls_w(scores, better), "p_perm": concordance_p(scores, better, 10000, 0)}


def _rho(per_task: list, tasks: list[str], target: str) -> float:
    if len(per_task) != len(tasks):
        raise SystemExit(f"error: {len(per_task)} per-task values for {len(tasks)} tasks: a kept tasks.json from another run")
    r = per_task[tasks.index(target)]
    return np.nan if r is None else float(r)


def between_builds(truth: dict) -> dict:
    """Mean over targets of Spearman's ρ between two builds' ground-truth tables (``{build:
    GroundTruth}``) column by column, per pair of builds (with and without each target's own
    entry): the encoder-retraining variability."""
    builds = list(truth)
    out = {}
    for a, b in combinations(builds, 2):
        out[f"{a}-{b}"] = {"mean_rho": noise_ceiling(truth[a].matrix, truth[b].matrix)["mean_rho"],
                           "mean_rho_off_diagonal": noise_ceiling(truth[a].matrix, truth[b].matrix, diagonal=False)["mean_rho"]}
    return out


def _tasks() -> list[str]:
    import yaml

    return yaml.safe_load((ROOT / "params.yaml").read_text())["models"]


def markdown(result: dict) -> str:
    lines = []
    for t, entry in result["tables"].items():
        builds = list(entry["per_build"])
        lines.append(f"**{t}** (better: {entry['better']} ρ); off-diagonal mean ρ [95 % two-factor interval] per build")
        lines.append("")
        lines.append("| method | " + " | ".join(f"build {b}" for b in builds) + " |")
        lines.append("|---|" + "---|" * len(builds))
        for m in entry["rows"]:
            cells = []
            for b in builds:
                r = entry["per_build"][b][m]
                lo, hi = r.get("mean_rho_off_diagonal_ci95", [float("nan")] * 2)
                cells.append(f"{r['mean_rho_off_diagonal']:+.3f} [{lo:+.2f}, {hi:+.2f}]")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("| noise ceiling | " + " | ".join(
            f"{entry['per_build'][b]['noise_ceiling'].get('mean_rho_off_diagonal', float('nan')):.3f}" for b in builds) + " |")
        lines.append("| excluded targets | " + " | ".join(", ".join(entry["per_build"][b]["excluded_targets"]) or "none"
                                                       for b in builds) + " |")
        w = entry["kendalls_w"]
        lo, hi = w["mean_rho"]["w_range95_targets"]
        lines.append("")
        lines.append(f"Kendall's W over the {len(builds)} builds, {len(entry['rows'])} rankings: mean ρ "
                     f"{w['mean_rho']['w']:.3f} (p_perm {w['mean_rho']['p_perm']:.2g}; range {lo:.3f} to {hi:.3f} with the "
                     f"targets resampled, not a confidence interval), off the diagonal "
                     f"{w['mean_rho_off_diagonal']['w']:.3f} (p_perm {w['mean_rho_off_diagonal']['p_perm']:.2g}). Ground truths between builds (mean ρ over targets, "
                     "off the diagonal): " + ", ".join(f"{p} {v['mean_rho_off_diagonal']:.3f}"
                                                       for p, v in entry["between_builds"].items()) + ".")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return 0
    if not argv or argv[0] not in ("run", "report"):
        raise SystemExit("usage: tools/mini_builds.py run [--builds 0 1 2] [-S key=value ...] | report")
    if argv[0] == "report":
        result = report()
        write_text(OUT, json.dumps(result, indent=1) + "\n")
        print(markdown(result))
        return 0
    rest, builds, extra = argv[1:], list(BUILDS), []
    while rest:
        flag = rest.pop(0)
        if flag == "--builds":
            builds = []
            while rest and not rest[0].startswith("-"):
                builds.append(check_build(int(rest.pop(0)), "--builds"))
        elif flag in ("-S", "--set-param") and rest:
            extra += ["-S", rest.pop(0)]
        else:
            raise SystemExit(f"usage: tools/mini_builds.py run [--builds 0 1 2] [-S key=value ...]; got {flag!r}")
    return run(builds, extra)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
