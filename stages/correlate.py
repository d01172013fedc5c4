"""Stage correlate: every method's per-task Spearman ρ against the zoo's ground-truth tables,
with two-factor bootstrap intervals, permutation nulls, baselines, paired differences to
ModelGiF, the primary endpoint and the noise ceiling.

    python stages/correlate.py --params params.yaml --methods data/methods \
        --metrics metrics/correlation.json --plots data/correlate --zoo taskonomy

Reads ``methods`` from the params file and each one's ``<methods>/<method>/`` (the
``distance@<method>`` stage: ``distance.csv``, ``bootstrap.npy``, ``meta.json``), checks that
all were computed on the same tasks, images and resamples, and the table names (``ground_truth``
for zoo taskonomy, ``mini.ground_truth`` for the mini zoos: :func:`modelgif.score.ground_truth.ground_truth_tables`).
Writes

- the DVC metric ``headline.json`` beside the metrics JSON (:func:`headline`): flat, the
  primary table's (params ``primary.table``) primary score (``primary.score``) per method and
  for ``static``, rounded to 3 decimals, so that ``dvc metrics show`` and
  ``dvc exp show`` fit 120 columns and ``dvc metrics diff`` gives each method's change;
- the metrics JSON ``{table: {method: {...}, "noise_ceiling": {...}}}`` (a cached output, not a
  DVC metric; users' scripts read it): per method ``mean_rho`` (the paper's protocol, each task's own entry included),
  ``mean_rho_off_diagonal`` (each task's own entry left out), their 95 % two-factor intervals
  ``mean_rho_ci95`` / ``mean_rho_off_diagonal_ci95`` (image resamples × task draws, the tasks
  as sources and targets, percentile: :func:`modelgif.score.inference.score_method`) and
  ``per_task`` (ρ_j in the task order, null where undefined or excluded); per table
  ``excluded_targets`` (where any: target → why its column leaves every mean, e.g. "15 of 16
  sources tie at 1": :func:`modelgif.score.ground_truth.degenerate_targets`, params
  ``degenerate.max_tied_fraction``) and the ``noise_ceiling``: where the zoo has readout
  replicates of the table (the mini zoos: the same encoders, other readout seeds), from them
  (:func:`modelgif.score.ceiling.readout_noise_ceiling`: ``mean_rho`` = ``ceiling`` = √ of the
  Spearman–Brown reliability, rsatoolbox's ``lower`` / ``upper`` bounds, each with ``_ci95``
  over target resamples, ``_off_diagonal`` variants), with the agreement with another build
  beside it as ``build_agreement`` (the encoders retrained: not measurement noise); else where
  the zoo has a replicate of the table (Taskonomy's 1k for a 16k table): ``mean_rho`` and
  ``mean_rho_off_diagonal`` of the per-column Spearman ρ between the table and its replicate,
  the replicate's name and ``per_task``;
- the details JSON beside it (``correlation_details.json``, not a DVC metric): per table every
  method and the baselines ``static`` and, per method m, ``hub:<m>`` (``role``), with everything
  :func:`modelgif.score.inference.score_method` and :func:`modelgif.score.bootstrap.summarize` give
  (images-only and BCa intervals, ``p_perm`` and ``chance_level``, the target-specific score,
  ``top1_regret``, ``ndcg_at_3``, ``n_tasks``, ``delta_vs_modelgif`` and its two-factor interval,
  per method ``minus_hub``: mean ρ minus its own ``hub:<m>`` row's, with the same paired intervals),
  the ``noise_ceiling`` again and, at the top, ``primary``:
  the params-declared primary endpoint's paired Wilcoxon tests over tasks, Holm-corrected
  (docs/methods.md);
- ``per_task_rho.csv`` beside it: ``task,table,method,rho`` (``rho`` empty where undefined);
- ``methods_rho.csv`` beside it: ``method,table,protocol,mean_rho,low,high,bootstrap_bias`` (the
  interval chart; ``bootstrap_bias``: the resamples' mean of mean ρ minus the full-data value,
  :func:`modelgif.score.bootstrap.summarize`: large where the interval sits beside the estimate);
- ``<plots>/ground_truth_long.csv``: every table's closeness ranks, one panel each, the
  heatmaps of one figure.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import typer
from _cli import clean_errors
import yaml

from modelgif.io.atomic import write_text
from modelgif.score.bootstrap import add_full_delta, noise_ceiling, summarize
from modelgif.score.ceiling import readout_noise_ceiling
from modelgif.score.inference import (hub_distance, paired_difference, primary_comparisons, score_method, static_distance,
                                target_draws, task_permutations)
from modelgif.score.correlation import per_task_spearman
from modelgif.errors import InputError, check_output_dir, check_output_file
from modelgif.score.ground_truth import ground_truth_tables, max_tied_fraction
from modelgif.score.plots import ranked_long_panels_csv, read_matrix_csv
from modelgif.io.settings_file import read_settings
from modelgif.io.storage import load_array, read_json_record
from modelgif.zoo.spec import load_zoo_spec

REFERENCE = "modelgif"
#: Key of the metrics JSON beside the tables: what the run's settings warned of (absent when nothing).
PROVENANCE = "provenance"
#: What the metrics JSON keeps per method and table, in this order (the rest is in the details JSON):
#: the two scalars DVC shows, the primary (two-factor) intervals and the per-task ρ, lists DVC leaves out.
METRIC_KEYS = ("mean_rho", "mean_rho_off_diagonal", "mean_rho_ci95", "mean_rho_off_diagonal_ci95", "per_task")
#: The baselines, rows of every table beside the methods: ``static`` (the leave-one-target-out
#: source-quality ranker, from the ground truth alone) and, per method m, ``hub:<m>`` (m's distance
#: made target-agnostic: each source's mean distance to the zoo, on m's own image resamples).
BASELINES = ("static",)
#: The row name of a method's hub baseline.
HUB = "hub:{}"
#: Key prefix, in each method's details entry, of mean ρ(method) − mean ρ(hub:method) and its paired intervals.
MINUS_HUB = "minus_hub"
#: The primary endpoint's scores (params ``primary.score``).
PRIMARY_SCORES = ("mean_rho", "mean_rho_off_diagonal")


def read_primary(params: dict, source: Path, tables: list[str], methods: list[str]) -> dict:
    """params ``primary: {table, method, score}`` checked: ``table`` is ``first`` or one of the
    zoo's tables, ``score`` one of :data:`PRIMARY_SCORES`; a method not among ``methods`` leaves
    the primary family out (a note says so)."""
    spec = params.get("primary") or {"table": "first", "method": REFERENCE, "score": "mean_rho"}
    if not isinstance(spec, dict) or set(spec) - {"table", "method", "score"}:
        raise InputError(f"{source}: 'primary' must be a mapping with keys table, method, score; got {spec!r}")
    table = spec.get("table", "first")
    table = tables[0] if table == "first" and tables else table
    if tables and table not in tables:
        raise InputError(f"{source}: primary.table {table!r} is not one of the zoo's tables ({', '.join(tables)}) "
                         "or 'first'")
    score = spec.get("score", "mean_rho")
    if score not in PRIMARY_SCORES:
        raise InputError(f"{source}: primary.score must be one of {', '.join(PRIMARY_SCORES)}, got {score!r}")
    return {"table": table, "method": str(spec.get("method", REFERENCE)), "score": score}


def read_permutations(params: dict, source: Path) -> int:
    n = (params.get("permutation") or {}).get("n", 1000)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"{source}: permutation.n must be a positive integer, got {n!r}")
    return n


def read_methods(params: dict, source: Path) -> list[str]:
    methods = params.get("methods")
    if not methods or not isinstance(methods, list) or len(set(map(str, methods))) != len(methods):
        raise InputError(f"{source}: 'methods' must be a non-empty list of distinct method names, got {methods!r}")
    return [str(m) for m in methods]


#: What correlate reads of a distance stage's ``meta.json`` (the keys that pair the methods' resamples).
PAIRING = ("tasks", "n_images", "bootstrap", "resamples_sha256")


def load_method(folder: Path, keys=PAIRING) -> tuple[np.ndarray, list[str], np.ndarray, dict]:
    """``(D (K, K), tasks, samples (B, K, K), meta)`` of one ``distance@<method>`` output folder;
    each file that is missing, damaged or of another format (a ``meta.json`` that is not an
    object or lacks one of ``keys``) is refused in one line naming it."""
    for name in ("distance.csv", "bootstrap.npy", "meta.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing (run its distance stage)")
    d, tasks = read_matrix_csv(folder / "distance.csv")
    samples = load_array(folder / "bootstrap.npy", "bootstrap distances (B, K, K)", ndim=3)
    meta = read_json_record(folder / "meta.json", "meta record of a distance stage", keys,
                            "rerun its distance stage")
    if samples.shape[1:] != d.shape:
        raise InputError(f"{folder / 'bootstrap.npy'} has shape {samples.shape}; expected (B, {len(tasks)}, {len(tasks)})")
    return d, tasks, samples, meta


def headline_path(metrics: Path) -> Path:
    """The DVC metric beside the metrics JSON: ``correlation.json`` → ``headline.json``."""
    return metrics.with_name("headline.json")


#: Decimals of the headline metric's values: every method's column fits DVC's 120-column tables.
HEADLINE_DECIMALS = 3


def headline(details: dict, primary: dict, names: list[str], decimals: int = HEADLINE_DECIMALS) -> dict:
    """The DVC metric: flat ``{method: score, ..., "static": score}`` of the primary table
    (params ``primary.table``), the score params ``primary.score`` (``mean_rho`` where the
    primary score is not defined for every row: fewer than 4 tasks), rounded to ``decimals``; a
    row whose score is undefined is left out. The noise ceiling, a property of the table, stays
    in the metrics JSON: with it, ``dvc exp show`` of an experiment with a long name passes 120
    columns. ``details``: the details JSON's ``{table: {row: {...}}}``."""
    rows = details[primary["table"]]
    score = primary["score"] if all(primary["score"] in rows[m] for m in names) else "mean_rho"
    out = {}
    for m in [*names, *BASELINES]:
        value = (rows.get(m) or {}).get(score)
        if isinstance(value, float) and np.isfinite(value):
            out[m] = round(value, decimals)
    return out


def details_path(metrics: Path) -> Path:
    """The details JSON beside the metrics JSON: ``correlation.json`` → ``correlation_details.json``."""
    return metrics.with_name(metrics.stem + "_details.json")


def _json_safe(node):
    """NaN (an interval over resamples whose ρ are all undefined) as null: JSON has no NaN."""
    if isinstance(node, dict):
        return {k: _json_safe(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_safe(v) for v in node]
    if isinstance(node, float) and not np.isfinite(node):
        return None
    return node


@clean_errors(outputs=("metrics", "plots"))
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file holding methods and the ground_truth lists"),
    methods: Path = typer.Option(Path("data/methods"), help="folder of the distance stages' <method>/ outputs"),
    metrics: Path = typer.Option(Path("metrics/correlation.json"), help="metrics JSON to write"),
    plots: Path = typer.Option(Path("data/correlate"), help="folder for plot data"),
    zoo: str = typer.Option("taskonomy", help="the zoo (zoos/<ZOO>.yaml): whose ground truth"),
    reference_settings: Path = typer.Option(None, help="the settings stage's reference.json: its warnings "
                                                       "go into the metrics as provenance.warnings"),
) -> None:
    load_zoo_spec(zoo)  # an unknown zoo or a bad declaration: refused before anything is read
    for out in (metrics, headline_path(metrics), details_path(metrics), metrics.parent / "per_task_rho.csv",
                metrics.parent / "methods_rho.csv"):
        check_output_file(out)
    check_output_dir(plots)
    p = yaml.safe_load(params.read_text()) or {}
    names = read_methods(p, params)
    # the keys that pair the methods' resamples are needed where there is something to pair
    loaded = {m: load_method(methods / m, PAIRING if len(names) > 1 else ()) for m in names}
    first = names[0]
    tasks = loaded[first][1]
    for m in names[1:]:
        differ = [k for k in PAIRING if loaded[m][3].get(k) != loaded[first][3].get(k)]
        if differ:
            raise InputError(f"{methods / m} and {methods / first} differ in {', '.join(differ)}: "
                             "their bootstrap resamples do not pair (rerun their distance stages)")
    tables = ground_truth_tables(p, zoo, tasks)
    if not tables:  # the pipeline stops at distances, the similarity tree and the plots
        plots.mkdir(parents=True, exist_ok=True)
        typer.echo(f"zoo {zoo} declares no ground truth: nothing to correlate; {metrics} is empty ({{}})")
    reference = loaded[REFERENCE] if REFERENCE in loaded else None
    if reference is None:
        typer.echo(f"note: {REFERENCE} is not among the methods: no paired differences to it", err=True)
    primary = read_primary(p, params, [t.name for t in tables], names)
    tie_rule = {"max_tied_fraction": max_tied_fraction(p)}  # the degenerate-target rule the tables were read with
    n_perm = read_permutations(p, params)
    # the seed the distance stages drew their image resamples with (their meta.json; checked to
    # pair above): so correlate depends on it through its inputs, not on a param of its own
    seed = (loaded[first][3].get("bootstrap") or {}).get("seed", (p.get("bootstrap") or {}).get("seed", 0))
    n_boot = loaded[first][2].shape[0]
    # the same target draws (paired with image resample b) and permutations for every method and table
    if tables:  # (a zoo without ground truth may have fewer tasks than a permutation test needs)
        draws = target_draws(len(tasks), n_boot, seed=(seed, 1))
        perms = task_permutations(len(tasks), n_perm, seed=(seed, 2))
    result, details, per_task_rows, interval_rows, heatmaps = {}, {}, [], [], []
    for table in tables:
        better = "lower" if table.higher_is_closer else "higher"
        truth = table.scored  # the degenerate targets' columns constant: left out of every per-target mean
        rows = {m: loaded[m][::2] for m in names}  # (D, samples)
        stat = static_distance(table.matrix, table.higher_is_closer)
        rows["static"] = (stat, np.repeat(stat[None], n_boot, axis=0))  # no images: targets only
        for m in names:  # each method's own target-agnostic version, on its own image resamples
            rows[HUB.format(m)] = (hub_distance(loaded[m][0]), hub_distance(loaded[m][2]))
        entry, ref_reps, reps = {}, {}, {}
        order = sorted(rows, key=lambda m: m != REFERENCE)  # the reference first: its resamples pair the others
        for m in order:
            d, samples = rows[m]
            is_method = m in names
            try:
                s = summarize(d, samples, truth, better=better)
                inf = score_method(d, samples, truth, draws, perms, higher_is_closer=table.higher_is_closer,
                                   reference=None if (reference is None or m == REFERENCE or not is_method)
                                   else (reference[0], reference[2], ref_reps))
            except ValueError as e:
                raise ValueError(f"{table.name}, {m}: {e}") from e
            if m == REFERENCE:
                ref_reps = inf["_replicates"]
            reps[m] = inf.pop("_replicates")
            defined = [r for r in s["per_task"] if r is not None]
            if not defined:
                raise ValueError(f"{table.name}, {m}: Spearman's rho is undefined for every task")
            row = {"role": "method" if is_method else "baseline"}
            for key in ("mean_rho", "mean_rho_off_diagonal"):  # the images-only interval, under its own name
                if key in s:
                    row[key] = s[key]
                    inf[key + "_ci95_images"] = s[key + "_ci95"]
            row.update({k: v for k, v in inf.items() if k not in row})
            row.update(n_tasks=len(defined), n_resamples=s["n_resamples"],
                       mean_rho_bootstrap_bias=s["mean_rho_bootstrap_bias"], per_task=s["per_task"])
            entry[m] = row
        entry = {m: entry[m] for m in rows}  # the params' order, baselines last
        if reference is not None:
            for m in names:
                if m != REFERENCE:
                    add_full_delta(entry[m], entry[REFERENCE])
        for m in names:  # how much each method beats its own hub baseline, paired as the delta to modelgif
            hub = HUB.format(m)
            entry[m].update(paired_difference(*rows[m], truth, draws, (*rows[hub], reps[hub]), name=MINUS_HUB,
                                              known=reps[m]))
        for m, row in entry.items():
            per_task_rows += [(task, table.name, m, "" if r is None else repr(r)) for task, r in zip(tasks, row["per_task"])]
            interval_rows.append((m, table.name, "all sources", row["mean_rho"], *row["mean_rho_ci95"],
                                  row["mean_rho_bootstrap_bias"]))
            if "mean_rho_off_diagonal" in row:
                interval_rows.append((m, table.name, "own task left out", row["mean_rho_off_diagonal"],
                                      *row["mean_rho_off_diagonal_ci95"], np.nan))
        result[table.name] = {m: {k: row[k] for k in METRIC_KEYS if k in row} for m, row in entry.items()
                              if m in names}
        details[table.name] = dict(entry)
        details[table.name]["degenerate_rule"] = tie_rule
        if table.excluded:  # in the metrics, beside the scores they change
            result[table.name]["excluded_targets"] = {t: e["reason"] for t, e in table.excluded.items()}
            details[table.name]["excluded_targets"] = table.excluded
        excluded_idx = [tasks.index(t) for t in table.excluded]
        agreement = None
        if table.replicate is not None:
            ceiling = noise_ceiling(truth, table.replicate)
            agreement = {"mean_rho": ceiling["mean_rho"]}
            if len(tasks) >= 4:
                agreement["mean_rho_off_diagonal"] = noise_ceiling(truth, table.replicate, diagonal=False)["mean_rho"]
            agreement = {**agreement, "replicate": table.replicate_name, "per_task": ceiling["per_task"]}
        if table.readouts is not None and table.readouts.shape[0] >= 2:
            # the noise ceiling proper: the readout replicates, the encoders fixed (modelgif.score.ceiling)
            nc = readout_noise_ceiling(table.readouts, exclude=excluded_idx, seed=seed)
            if len(tasks) >= 4:
                off = readout_noise_ceiling(table.readouts, diagonal=False, exclude=excluded_idx, seed=seed)
                nc.update({f"{k}_off_diagonal": v for k, v in off.items() if not k.startswith(("per_task", "replicates"))})
            nc = {"kind": "readout replicates, the encoders fixed", "mean_rho": nc["ceiling"],
                  **({"mean_rho_off_diagonal": nc["ceiling_off_diagonal"]} if "ceiling_off_diagonal" in nc else {}), **nc}
            result[table.name]["noise_ceiling"] = nc
            details[table.name]["noise_ceiling"] = nc
            if agreement is not None:  # another build: the encoders retrained too, reported as what it is
                agreement = {"kind": "another build of the zoo (encoders retrained)", **agreement}
                result[table.name]["build_agreement"] = agreement
                details[table.name]["build_agreement"] = agreement
        elif agreement is not None:  # Taskonomy: the same transfers measured on other images
            result[table.name]["noise_ceiling"] = agreement  # unchanged from before issue 22: users read it
            details[table.name]["noise_ceiling"] = agreement
        closer = "higher" if table.higher_is_closer else "lower"
        heatmaps.append((table.matrix, tasks, f"ground truth: {table.name} ({closer}: closer)", table.higher_is_closer))
        nc = details[table.name].get("noise_ceiling")
        ceiling_note = "" if nc is None else f"; noise ceiling {nc['mean_rho']:+.4f}" + (
            f" (√ Spearman–Brown reliability of {nc['replicates']} readout replicates; rsatoolbox bounds "
            f"[{nc['lower']:+.4f}, {nc['upper']:+.4f}])" if "lower" in nc else f" (vs {nc['replicate']})")
        typer.echo(f"{table.name} ({better} rho is better){ceiling_note}:")
        for t, e in table.excluded.items():
            typer.echo(f"  excluded target {t}: {e['reason']}")
        for m, row in entry.items():
            lo, hi = row["mean_rho_ci95"]
            delta = f", delta vs {REFERENCE} {row[f'delta_vs_{REFERENCE}']:+.4f}" if f"delta_vs_{REFERENCE}" in row else ""
            delta += f", minus its hub {row[MINUS_HUB]:+.4f}" if MINUS_HUB in row else ""
            label = m if row["role"] == "method" else f"{m} (baseline)"
            typer.echo(f"  {label}: mean rho {row['mean_rho']:+.4f} [{lo:+.4f}, {hi:+.4f}] over {row['n_tasks']} tasks, "
                       f"chance {row['chance_level']:+.4f}, p_perm {row['p_perm']:.3g}{delta}")
    too_few = primary["score"] == "mean_rho_off_diagonal" and len(tasks) < 4
    if too_few and tables:
        typer.echo(f"note: primary score {primary['score']} needs at least 4 tasks (got {len(tasks)}): no primary family",
                   err=True)
    if tables and primary["method"] in names and len(names) > 1 and not too_few:
        key = "per_task" if primary["score"] == "mean_rho" else "per_task_off_diagonal"
        # the family: the primary method against every other method and the static baseline (a
        # target-agnostic ranker that beats a method is part of what the primary result says)
        table = next(t for t in tables if t.name == primary["table"])
        family_rows = [*names, *BASELINES]
        if key == "per_task_off_diagonal":  # the off-diagonal per-task ρ: recomputed from the table's distances
            dists = {m: loaded[m][0] for m in names}
            dists.update(static=static_distance(table.matrix, table.higher_is_closer))
            per = {m: [None if np.isnan(r) else float(r) for r in per_task_spearman(dists[m], table.scored,
                                                                                   diagonal=False)] for m in family_rows}
        else:
            per = {m: details[primary["table"]][m]["per_task"] for m in family_rows}
        try:
            family = primary_comparisons(per, primary["method"])
        except ValueError as e:
            raise ValueError(f"primary endpoint ({primary['table']}, {primary['score']}): {e}") from e
        details["primary"] = {**primary, "test": "paired Wilcoxon signed-rank over target tasks (two-sided), "
                                                 "Holm-corrected across the family (every other method and the "
                                                 "static baseline)",
                              "comparisons": family,
                              "note": "everything else in this file is secondary (no multiplicity control)"}
        typer.echo(f"primary endpoint: {primary['score']} on {primary['table']}, {primary['method']} vs each method "
                   "(Wilcoxon over tasks, Holm):")
        for m, r in family.items():
            typer.echo(f"  {m} - {primary['method']}: median {r['median_difference']:+.4f}, p {r['p']:.3g}, "
                       f"Holm {r['p_holm']:.3g}")
    elif tables and not too_few:
        typer.echo(f"note: primary method {primary['method']} is not among the methods (or alone): no primary family",
                   err=True)
    if heatmaps:
        ranked_long_panels_csv(plots / "ground_truth_long.csv", heatmaps)
    for name, header, rows in (("per_task_rho.csv", ("task", "table", "method", "rho"), per_task_rows),
                               ("methods_rho.csv", ("method", "table", "protocol", "mean_rho", "low", "high", "bootstrap_bias"),
                                [(*r[:3], *(repr(float(v)) for v in r[3:])) for r in interval_rows])):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *rows])
        write_text(metrics.parent / name, buf.getvalue())
    warnings = read_settings(reference_settings)["warnings"] if reference_settings is not None else []
    if warnings:  # e.g. a reference size other than the zoo's declared input_size
        result[PROVENANCE] = {"warnings": "; ".join(warnings)}
        details[PROVENANCE] = result[PROVENANCE]
        for warning in warnings:
            typer.echo(f"warning: {warning}", err=True)
    write_text(details_path(metrics), json.dumps(_json_safe(details), indent=2) + "\n")
    write_text(metrics, json.dumps(_json_safe(result), indent=2) + "\n")
    write_text(headline_path(metrics), json.dumps(headline(details, primary, names) if tables else {}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
