"""Stage correlate: every method's per-task Spearman ρ against the zoo's ground-truth tables,
with bootstrap intervals, paired differences to ModelGiF and the noise ceiling.

    python stages/correlate.py --params params.yaml --methods data/methods \
        --metrics metrics/correlation.json --plots data/correlate --zoo taskonomy

Reads ``methods`` from the params file and each one's ``<methods>/<method>/`` (the
``distance@<method>`` stage: ``distance.csv``, ``bootstrap.npy``, ``meta.json``), checks that
all were computed on the same tasks, images and resamples, and the table names (``ground_truth``
for zoo taskonomy, ``mini.ground_truth`` for the mini zoos: :func:`modelgif.ground_truth.ground_truth_tables`).
Writes

- the metrics JSON ``{table: {method: {...}, "noise_ceiling": {...}}}``; per method
  (:func:`modelgif.bootstrap.summarize`): ``mean_rho`` (the paper's protocol, each task's own
  entry included), ``mean_rho_ci95`` ([low, high], 95 % percentile bootstrap interval over
  reference images), ``mean_rho_off_diagonal`` (+ ``_ci95``: each task's own entry left out),
  ``n_tasks`` (tasks whose ρ is defined), ``per_task`` (list of ρ_j in the task order, null where
  undefined) and, for every method but ``modelgif``, ``delta_vs_modelgif`` (mean ρ minus
  modelgif's), ``delta_vs_modelgif_ci95`` and ``delta_vs_modelgif_off_diagonal_ci95`` (the
  paired difference on the same resamples) and ``fraction_better_than_modelgif`` (share of
  resamples where the method's mean ρ is on the better side of modelgif's). The
  noise ceiling (where the zoo has a replicate of the table: Taskonomy's 1k for a 16k table,
  the mini zoo's seed-1 build): ``mean_rho`` and ``mean_rho_off_diagonal`` of the per-column
  Spearman ρ between the table and its replicate, and the replicate's name. DVC's ``metrics
  show`` / ``exp show`` leave list values out, so they show the scalars only;
- ``per_task_rho.csv`` beside it: ``task,table,method,rho`` (``rho`` empty where undefined);
- ``methods_rho.csv`` beside it: ``method,table,protocol,mean_rho,low,high,bootstrap_bias`` (the
  interval chart; ``bootstrap_bias``: the resamples' mean of mean ρ minus the full-data value,
  :func:`modelgif.bootstrap.summarize`: large where the interval sits beside the estimate);
- per table, ``<plots>/<table>_long.csv`` (the table's closeness ranks, for the heatmap).
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

from modelgif._atomic import write_text
from modelgif.bootstrap import add_full_delta, noise_ceiling, summarize
from modelgif.errors import InputError, check_output_dir, check_output_file
from modelgif.ground_truth import ground_truth_tables
from modelgif.plots import ranked_long_csv, read_matrix_csv
from modelgif.settings import read_settings
from modelgif.storage import load_array, read_json_record
from modelgif.zoo_spec import load_zoo_spec

REFERENCE = "modelgif"
#: Key of the metrics JSON beside the tables: what the run's settings warned of (absent when nothing).
PROVENANCE = "provenance"
#: What the metrics JSON keeps per method and table, in this order: the scalars DVC shows
#: (kept few, so that `dvc metrics show` stays readable), then the lists it leaves out.
METRIC_KEYS = ("mean_rho", "mean_rho_off_diagonal", "n_tasks", f"delta_vs_{REFERENCE}",
               f"fraction_better_than_{REFERENCE}", "mean_rho_ci95", "mean_rho_off_diagonal_ci95",
               f"delta_vs_{REFERENCE}_ci95", f"delta_vs_{REFERENCE}_off_diagonal_ci95", "per_task")


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
    for out in (metrics, metrics.parent / "per_task_rho.csv", metrics.parent / "methods_rho.csv"):
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
    reference = loaded[REFERENCE][2] if REFERENCE in loaded else None
    if reference is None:
        typer.echo(f"note: {REFERENCE} is not among the methods: no paired differences", err=True)
    result, per_task_rows, interval_rows = {}, [], []
    for table in tables:
        better = "lower" if table.higher_is_closer else "higher"
        entry = {}
        for m in names:
            d, _, samples, _ = loaded[m]
            try:
                s = summarize(d, samples, table.matrix, better=better,
                              reference=None if m == REFERENCE else reference)
            except ValueError as e:
                raise ValueError(f"{table.name}, {m}: {e}") from e
            defined = [r for r in s["per_task"] if r is not None]
            if not defined:
                raise ValueError(f"{table.name}, {m}: Spearman's rho is undefined for every task")
            s["n_tasks"] = len(defined)
            entry[m] = s
        if reference is not None:
            for m in names:
                if m != REFERENCE:
                    add_full_delta(entry[m], entry[REFERENCE])
        for m in names:  # a stable, readable key order: headline first, lists last
            s = entry[m]
            entry[m] = {k: s[k] for k in METRIC_KEYS if k in s}
            per_task_rows += [(task, table.name, m, "" if r is None else repr(r)) for task, r in zip(tasks, s["per_task"])]
            interval_rows.append((m, table.name, "all sources", s["mean_rho"], *s["mean_rho_ci95"],
                                  s["mean_rho_bootstrap_bias"]))
            if "mean_rho_off_diagonal" in s:
                interval_rows.append((m, table.name, "own task left out", s["mean_rho_off_diagonal"],
                                      *s["mean_rho_off_diagonal_ci95"], np.nan))
        if table.replicate is not None:
            ceiling = noise_ceiling(table.matrix, table.replicate)
            entry["noise_ceiling"] = {"mean_rho": ceiling["mean_rho"]}
            if len(tasks) >= 4:
                entry["noise_ceiling"]["mean_rho_off_diagonal"] = noise_ceiling(
                    table.matrix, table.replicate, diagonal=False)["mean_rho"]
            entry["noise_ceiling"]["replicate"] = table.replicate_name
            entry["noise_ceiling"]["per_task"] = ceiling["per_task"]
        result[table.name] = entry
        closer = "higher" if table.higher_is_closer else "lower"
        ranked_long_csv(plots / f"{table.name}_long.csv", table.matrix, tasks,
                        f"ground truth: {table.name} ({closer}: closer)", table.higher_is_closer)
        ceiling_note = (f"; noise ceiling {entry['noise_ceiling']['mean_rho']:+.4f}" if "noise_ceiling" in entry else "")
        typer.echo(f"{table.name} ({better} rho is better){ceiling_note}:")
        for m in names:
            s = entry[m]
            lo, hi = s["mean_rho_ci95"]
            delta = f", delta vs {REFERENCE} {s[f'delta_vs_{REFERENCE}']:+.4f}" if f"delta_vs_{REFERENCE}" in s else ""
            typer.echo(f"  {m}: mean rho {s['mean_rho']:+.4f} [{lo:+.4f}, {hi:+.4f}] over {s['n_tasks']} tasks{delta}")
    for name, header, rows in (("per_task_rho.csv", ("task", "table", "method", "rho"), per_task_rows),
                               ("methods_rho.csv", ("method", "table", "protocol", "mean_rho", "low", "high", "bootstrap_bias"),
                                [(*r[:3], *(repr(float(v)) for v in r[3:])) for r in interval_rows])):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *rows])
        write_text(metrics.parent / name, buf.getvalue())
    warnings = read_settings(reference_settings)["warnings"] if reference_settings is not None else []
    if warnings:  # e.g. a reference size other than the zoo's declared input_size
        result[PROVENANCE] = {"warnings": "; ".join(warnings)}
        for warning in warnings:
            typer.echo(f"warning: {warning}", err=True)
    write_text(metrics, json.dumps(_json_safe(result), indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
