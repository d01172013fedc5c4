"""Stage correlate: per-task Spearman ρ of the ModelGiF distances against Taskonomy tables.

    python stages/correlate.py --params params.yaml --distance data/affinity/distance.csv \
        --metrics metrics/correlation.json --plots data/correlate

Reads the table names from the params file: ``ground_truth`` (Taskonomy's tables, in
``data/taskonomy``) or, with ``--zoo mini``/``mini_random``, ``mini.ground_truth`` (the
mini-Taskonomy's measured tables, in ``data/mini/tables``). Writes

- the metrics JSON, the headline numbers only, so ``dvc metrics show`` / ``dvc exp show`` read
  at a glance: ``{table: {"mean_rho": ..., "mean_rho_off_diagonal": ..., "n_tasks": ...}}``.
  A task whose ρ is undefined (a constant column) is left out of the mean, which says so in
  ``n_tasks``; ``mean_rho_off_diagonal`` is the same mean with each task's own entry left
  out (:func:`modelgif.correlation.per_task_spearman`);
- ``per_task_rho.csv`` beside it: ``task,table,rho`` for every task (``rho`` empty where
  undefined), the per-task numbers and the bar chart's data;
- per table, ``<plots>/<table>_long.csv`` (``source,target,value,rank,panel,…``: the table's
  value and each source's closeness rank per target, 1 = closest) for the heatmap.
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
from modelgif.correlation import correlation_summary
from modelgif.errors import check_output_dir, check_output_file
from modelgif.plots import ranked_long_csv, read_matrix_csv
from modelgif.ground_truth import ground_truth_tables


@clean_errors(outputs=("metrics", "plots"))
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file holding the ground_truth list"),
    distance: Path = typer.Option(Path("data/affinity/distance.csv"), help="distance matrix from the affinity stage"),
    metrics: Path = typer.Option(Path("metrics/correlation.json"), help="metrics JSON to write"),
    plots: Path = typer.Option(Path("data/correlate"), help="folder for plot data"),
    zoo: str = typer.Option("taskonomy", help="the zoo (zoos/<ZOO>.yaml): whose ground truth"),
) -> None:
    for out in (metrics, metrics.parent / "per_task_rho.csv"):
        check_output_file(out)
    check_output_dir(plots)
    d, tasks = read_matrix_csv(distance)
    tables = ground_truth_tables(yaml.safe_load(params.read_text()) or {}, zoo, tasks)
    if not tables:  # the pipeline stops at distances, the similarity tree and the plots
        plots.mkdir(parents=True, exist_ok=True)
        typer.echo(f"zoo {zoo} declares no ground truth: nothing to correlate; {metrics} is empty ({{}})")
    result, rows = {}, []
    for table in tables:
        name, t = table.name, table.matrix
        try:
            result[name], rho = correlation_summary(d, t)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from e
        defined = np.isfinite(rho)
        rows += [(task, name, repr(float(r)) if ok else "") for task, r, ok in zip(tasks, rho, defined)]
        closer = "higher" if table.higher_is_closer else "lower"
        ranked_long_csv(plots / f"{name}_long.csv", t, tasks, f"ground truth: {name} ({closer}: closer)",
                        table.higher_is_closer)
        undefined = [task for task, ok in zip(tasks, defined) if not ok]
        note = f" (undefined for {', '.join(undefined)})" if undefined else ""
        typer.echo(f"{name}: mean rho {result[name]['mean_rho']:+.4f} over {result[name]['n_tasks']} tasks{note}")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([("task", "table", "rho"), *rows])
    write_text(metrics.parent / "per_task_rho.csv", buf.getvalue())
    write_text(metrics, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
