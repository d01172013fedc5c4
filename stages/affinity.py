"""Stage affinity: the K×K ModelGiF distance matrix over the fields of the listed tasks.

    python stages/affinity.py --settings data/settings/affinity.json --fields data/fields --out data/affinity

Reads ``models`` from the params file and only those tasks' fields (a stale field of a
removed task is never read). Refuses, before reading any values, fields whose provenance
records (``<task>.json`` beside ``<task>.npy``, :mod:`modelgif.io.provenance`) show another
reference set or other settings, naming the fields that differ. Writes ``distance.csv``
(labelled matrix), ``distance_long.csv`` (``source,target,value,rank,panel,…`` for the heatmap:
the distance and, per target, each source's closeness rank, 1 = closest) and
``similarity_tree.png`` (average-linkage dendrogram).
"""

from __future__ import annotations

from pathlib import Path

import typer
from _cli import clean_errors, read_models

from modelgif.compare.distance import distance_matrix, check_metric
from modelgif.errors import check_output_dir
from modelgif.score.plots import matrix_csv, ranked_long_csv, similarity_tree
from modelgif.io.provenance import check_fields
from modelgif.io.settings_file import read_settings


@clean_errors(outputs=("out",))
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file holding the model list"),
    metric: str = typer.Option("cosine", help="cosine or euclidean"),
    fields: Path = typer.Option(Path("data/fields"), help="folder of <task>.npy fields"),
    out: Path = typer.Option(Path("data/affinity"), help="output folder"),
    settings: Path = typer.Option(None, help="the settings stage's affinity.json: tasks and metric from it "
                                             "instead of --params and --metric"),
) -> None:
    if settings is not None:  # what the pipeline passes (modelgif.settings.resolve_settings)
        s = read_settings(settings)
        tasks, metric = [str(t) for t in s["tasks"]], str(s["metric"])
    else:
        tasks = read_models(params)
    check_metric(metric)
    missing = [t for t in tasks if not (fields / f"{t}.npy").is_file()]
    if missing:
        raise FileNotFoundError(f"no field for task(s) {', '.join(missing)} in {fields}")
    check_output_dir(out)
    paths = {t: fields / f"{t}.npy" for t in tasks}
    check_fields(paths)  # same reference set and settings, before reading any values
    d = distance_matrix(list(paths.values()), metric, progress=True)
    matrix_csv(out / "distance.csv", d, tasks)
    ranked_long_csv(out / "distance_long.csv", d, tasks, f"ModelGiF {metric} distance (lower: closer)")
    similarity_tree(out / "similarity_tree.png", d, tasks, title=f"ModelGiF similarity tree ({metric})")
    typer.echo(f"{metric} distances between {len(tasks)} tasks -> {out}")


if __name__ == "__main__":
    typer.run(main)
