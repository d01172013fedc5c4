"""Stage distance@<method>: one method's K×K distances, on all reference images and on every
bootstrap resample.

    python stages/method_distance.py cka --params params.yaml --metric cosine --n-boot 1000 --seed 0 \
        --fields data/fields --features data/features --attributions data/attributions --out data/methods/cka

Reads ``tasks`` and ``method_options.<method>`` from the params file, and only the listed tasks'
inputs: the fields (``modelgif``, ``ig``), the attribution maps (``saliency``, ``gradxinput``),
the encoder features (``rsa``, ``cka``, ``dds``), or those and each task's labels of the
reference images (``logme``, ``linear_mse``, ``knn``: ``--reference``, a set rendered from the
mini-scenes source, :mod:`modelgif.reference.labels`); see :mod:`modelgif.compare.methods`. Fields must share
their provenance (:func:`modelgif.io.provenance.check_fields`), features their reference set.
The resamples are ``modelgif.compare.resample.resample_indices(N, n_boot, seed)``: the same for every
method, which the correlate stage checks through their sha256. Writes into ``--out``:

- ``distance.csv``: D (K, K) on all N images (labelled matrix);
- ``bootstrap.npy``: D (B, K, K) float64 on the B resamples;
- ``contributions.npy`` (field methods): per-image contributions (N, K, K), whose mean is D;
- ``meta.json``: method, options, metric, tasks, N, bootstrap n and seed, the resamples' sha256.

``MODELGIF_DEVICE`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) chooses where the set-level
methods' bootstrap runs (torch float64; ``auto``: the GPU when there is one); it does not change
the result beyond rounding, so it is not a param.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import typer
from _cli import clean_errors, read_models, resolve_device
import yaml

from modelgif.io.atomic import save_npy, write_text
from modelgif.compare.resample import resample_indices
from modelgif.errors import InputError, check_output_dir, check_seed
from modelgif.compare.methods import REGISTRY, check_method, get_method, method_distances
from modelgif.score.plots import matrix_csv
from modelgif.io.provenance import check_fields, file_sha256
from modelgif.reference.build import images_sha256
from modelgif.reference.labels import check_labelled, reference_labels
from modelgif.io.settings_file import read_settings
from modelgif.io.storage import field_shape, load_array, open_field, read_json_record


IG_NEEDS_CUMULATIVE = ("a per-step field's last step is not the Integrated Gradients attribution; set "
                       "field.cumulative: true (and rerun the fields) or drop ig from methods")


def _read_params(params: Path, method: str) -> tuple[list[str], dict]:
    tasks = read_models(params)
    p = yaml.safe_load(params.read_text()) or {}
    options = (p.get("method_options") or {}).get(method)
    if options is not None and not isinstance(options, dict):
        raise InputError(f"{params}: 'method_options.{method}' must be a mapping of options, got {options!r}")
    if get_method(method).reads == "field_end_point":
        cumulative = (p.get("field") or {}).get("cumulative", True) if isinstance(p.get("field"), dict) else True
        if str(cumulative).strip().lower() in ("false", "0", "no"):
            raise InputError(f"method ig cannot run with field.cumulative: false ({params}): {IG_NEEDS_CUMULATIVE}")
    return tasks, check_method(method, options)


FEATURE_RECORD_KEYS = ("reference_sha256", "shape")


def _labels(tasks: list[str], reference: Path, reference_sha256, shapes: list[tuple]) -> list:
    """Each task's labels of the reference images (:func:`modelgif.reference.labels.reference_labels`),
    after checking that the reference set is the one the features were computed on."""
    images, manifest_path = reference / "images.npy", reference / "manifest.json"
    for p in (images, manifest_path):
        if not p.is_file():
            raise FileNotFoundError(f"no reference set file {p} (the labels' source; run fetch_reference)")
    if json.dumps(file_sha256(images)) != reference_sha256:
        raise InputError(f"{images} is not the reference set the features were computed on (its sha256 differs "
                         "from their records' reference_sha256); rerun the features stages")
    manifest = json.loads(manifest_path.read_text())
    check_labelled(manifest)
    if images_sha256(load_array(images, "reference images (N, 3, S, S)", ndim=4)) != manifest.get("images_sha256"):
        raise InputError(f"{manifest_path} is not the manifest of {images} (images_sha256 differs); "
                         "rerun fetch_reference")
    labels = reference_labels(manifest, tasks, shapes[0][1:])
    return [labels[t] for t in tasks]


def _inputs(method: str, tasks: list[str], fields: Path, features: Path, attributions: Path, reference: Path):
    """The K per-model inputs of ``method``, for set and estimator methods the features' (C, h, w),
    and N. An estimator's input is the pair (features, labels of the model's own task)."""
    reads = REGISTRY[method].reads  # what the registration says it reads (modelgif.compare.registry)
    if reads in ("fields", "field_end_point"):
        paths = {t: fields / f"{t}.npy" for t in tasks}
    elif reads == "attributions":
        paths = {t: attributions / method / f"{t}.npy" for t in tasks}
    else:
        paths = {t: features / f"{t}.npy" for t in tasks}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{method}: no input {', '.join(missing)}")
    if reads in ("fields", "field_end_point"):
        shared = check_fields(paths)  # same reference set and settings, before reading any values
        if reads == "field_end_point" and shared.get("cumulative") is False:
            raise InputError(f"method ig cannot run on the fields in {fields}: their records say field.cumulative: "
                             f"false; {IG_NEEDS_CUMULATIVE}")
        return list(paths.values()), None, int(open_field(paths[tasks[0]]).shape[0])
    if reads == "attributions":
        for p in paths.values():
            field_shape(open_field(p))
        return list(paths.values()), None, int(open_field(paths[tasks[0]]).shape[0])
    records = {t: read_json_record(features / f"{t}.json", f"features record of {t}", FEATURE_RECORD_KEYS,
                                   "rerun its features stage") for t in tasks}
    for t, r in records.items():
        shape = r["shape"]
        if not (isinstance(shape, list) and len(shape) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise InputError(f"{features / f'{t}.json'}: shape must be the features' (C, h, w), 3 positive integers, "
                             f"got {shape!r}; rerun its features stage")
    refs = {json.dumps(r["reference_sha256"]) for r in records.values()}
    if len(refs) != 1:
        raise InputError(f"{features}: the features of {', '.join(tasks)} come from different reference sets")
    arrays = [load_array(p, f"features array of {t} (N, C·h·w)", ndim=2) for t, p in paths.items()]
    for (t, p), a, r in zip(paths.items(), arrays, records.values()):
        if a.shape[1] != int(np.prod(r["shape"])):
            raise InputError(f"{p} holds {a.shape[1]} values per image, but its record {features / f'{t}.json'} "
                             f"says shape {tuple(r['shape'])}; rerun its features stage")
    shapes = [tuple(records[t]["shape"]) for t in tasks]
    if method == "rsa":  # an image whose features are constant has no Pearson correlation: name the model
        for t, a in zip(tasks, arrays):
            flat = np.flatnonzero(np.ptp(a, axis=1) == 0)
            if flat.size:
                dead = "all of them: the encoder's output does not depend on its input (a dead encoder); " \
                    if flat.size == a.shape[0] else ""
                raise InputError(f"rsa: {t}'s features are constant within {flat.size} of the {a.shape[0]} reference "
                                 f"images (images {flat[:5].tolist()}), so their Pearson correlations are undefined; "
                                 f"{dead}leave {t} out of tasks to compare the others")
    if reads == "features_labels":
        return list(zip(arrays, _labels(tasks, reference, refs.pop(), shapes))), shapes, int(arrays[0].shape[0])
    return arrays, shapes, int(arrays[0].shape[0])


@clean_errors(outputs=("out",))
def main(
    method: str = typer.Argument(..., help="a registered method (modelgif/compare/registry.py): modelgif, ig, saliency, gradxinput, rsa, cka, dds, logme, linear_mse, knn"),
    params: Path = typer.Option(Path("params.yaml"), help="params file holding models and method_options"),
    metric: str = typer.Option("cosine", help="field methods: cosine or euclidean"),
    n_boot: int = typer.Option(1000, help="bootstrap resamples of the reference images"),
    seed: int = typer.Option(0, help="seed of the bootstrap resamples"),
    fields: Path = typer.Option(Path("data/fields"), help="folder of <task>.npy fields"),
    features: Path = typer.Option(Path("data/features"), help="folder of <task>.npy encoder features"),
    attributions: Path = typer.Option(Path("data/attributions"), help="folder of <kind>/<task>.npy maps"),
    reference: Path = typer.Option(Path("data/reference"), help="the reference set (images.npy, manifest.json): "
                                                               "the estimator methods' labels"),
    out: Path = typer.Option(..., help="output folder"),
    device: str = typer.Option("auto", envvar="MODELGIF_DEVICE",
                               help="auto, cpu, cuda, cuda:N: where the set-level methods' bootstrap runs"),
    settings: Path = typer.Option(None, help="the settings stage's method_<METHOD>.json: tasks, options, "
                                             "metric and bootstrap from it instead of --params and the flags"),
) -> None:
    if settings is not None:  # what the pipeline passes (modelgif.settings.method_settings)
        s = read_settings(settings)
        if s["method"] != method:
            raise InputError(f"{settings} holds the settings of method {s['method']!r}, not {method!r}")
        tasks, options = s["tasks"], check_method(method, s["options"])
        metric = s["metric"] or metric
        n_boot, seed = s["bootstrap"]["n"], s["bootstrap"]["seed"]
    else:
        tasks, options = _read_params(params, method)
    check_seed(seed, "bootstrap.seed (--seed)")
    if n_boot < 1:
        raise InputError(f"bootstrap.n (--n-boot) must be a positive integer, got {n_boot}")
    dev = resolve_device(device)
    check_output_dir(out)
    inputs, shapes, n_images = _inputs(method, tasks, fields, features, attributions, reference)
    indices = resample_indices(n_images, n_boot, seed)
    result = method_distances(method, inputs, indices, metric=metric, options=options, feature_shapes=shapes,
                              device=dev, progress=True)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"bootstrap.npy": result.samples}
    if result.contributions is not None:
        arrays["contributions.npy"] = result.contributions
    for name, array in arrays.items():
        save_npy(out / name, np.ascontiguousarray(array, dtype=np.float64))
    matrix_csv(out / "distance.csv", result.distance, tasks)
    meta = {"method": method, "options": options, "metric": metric if REGISTRY[method].kind == "field" else None,
            "tasks": tasks, "n_images": n_images, "bootstrap": {"n": n_boot, "seed": seed},
            "resamples_sha256": hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()}
    write_text(out / "meta.json", json.dumps(meta, indent=1) + "\n")
    typer.echo(f"{method}: distances between {len(tasks)} tasks on {n_images} images, {n_boot} resamples -> {out}")


if __name__ == "__main__":
    typer.run(main)
