"""The effective settings of each pipeline step, resolved once from params.yaml (stage ``settings``).

DVC reruns a stage when a param it lists, its command line, or a dependency's content changes.
Three things that decide a result are none of those by themselves, so the ``settings`` stage
(``always_changed``: it runs on every ``dvc repro``, in well under a second) writes them as small
JSON files under ``data/settings/``, and each stage depends on its own file instead of on params:

- **settings without effect are dropped** (:func:`field_settings`): ``field.sketch_seed`` when
  ``sketch_dim`` is 0, ``field.seed`` with a ``zero`` baseline, ``distance`` for a method that
  is not a field method (:func:`method_settings`). Changing them rewrites the same bytes, so
  nothing downstream reruns;
- **what lies outside the repository is fingerprinted** (:func:`source_fingerprint`): a folder
  of reference images (every image file's name, size and sha256), an archive (its sha256), an
  http(s) URL (its ``ETag``, ``Last-Modified`` and ``Content-Length``), and the ground-truth
  table files a zoo declaration names (:func:`ground_truth_settings`). A changed image is a
  changed fingerprint: ``fetch_reference`` and what follows it rerun;
- **what the zoo declares is applied** (:func:`reference_settings`): ``reference.image_size:
  zoo`` is the zoo's ``input_size``; an explicit size that differs from it is kept, with a
  warning that the settings file, the reference set's manifest and the metrics carry;
- **a stage's code is fingerprinted** (``code_<script>.json``, :func:`stage_code`): the sha256 of
  every project file its script imports, transitively. The stage depends on that one file (and
  its script) instead of listing twenty modules in ``dvc.yaml``, and reruns exactly when one of
  them changes;
- **a zoo's own code is fingerprinted, for that zoo only** (``zoo.json``,
  :func:`modelgif.zoo.models.zoo_code`): the files the zoo's architecture module reaches. Every stage
  that builds a model depends on it, so editing the mini zoo's encoder reruns the mini fields
  and no Taskonomy field, and a user's ``module:function`` is a dependency of its zoo's stages.

Every function takes the params mapping (``yaml.safe_load`` of params.yaml) and returns a plain
JSON-able dict; :func:`resolve_settings` gives them all, keyed by file name. No torch import.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from ._imports import imported_files, module_files
from .io.download import sha256_file
from .io.settings_file import SETTINGS_FORMAT, read_settings  # noqa: F401 (read_settings: re-exported)
from .errors import InputError, check_memory, check_models, check_seed
from .compare.registry import REGISTRY
from .zoo.mini_builds import resolve_mini_params, selected_build
from .zoo.spec import NAMED_ARCHITECTURES, SOURCE_MODULES, ZooSpec, load_zoo_spec, params_section

#: ``reference.source`` values that name a built-in source rather than a path or URL.
BUILTIN_SOURCES = ("zoo", "taskonomy-sample", "mini-scenes")


def _section(params: Mapping, key: str) -> dict:
    value = params.get(key)
    if not isinstance(value, Mapping):
        raise InputError(f"params.yaml: '{key}' must be a mapping, got {value!r}")
    return dict(value)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def source_fingerprint(source: str, *, timeout: float = 30.0) -> dict:
    """What identifies the content of a reference ``source`` that is a path or a URL.

    - a folder: ``{"kind": "folder", "files": [[relative name, size in bytes, sha256], ...]}``
      over every file in it but hidden ones (any depth, sorted by name: a changed file that is
      not an image reruns the reference stage, which then writes the same images);
    - a file (an archive): ``{"kind": "file", "size": bytes, "sha256": hex}``;
    - an http(s) URL: ``{"kind": "url", "etag", "last_modified", "content_length"}`` from a HEAD
      request (what the server says identifies the body; ``None`` where it says nothing).

    Raises:
        InputError: the path does not exist, or the URL cannot be reached.
    """
    if _is_url(source):
        request = urllib.request.Request(source, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                headers = r.headers
        except (OSError, ValueError) as e:
            raise InputError(f"reference.source {source}: cannot check the URL for changes: {getattr(e, 'reason', e)}") from e
        return {"kind": "url", "url": source, "etag": headers.get("ETag"),
                "last_modified": headers.get("Last-Modified"), "content_length": headers.get("Content-Length")}
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return {"kind": "folder", "path": str(path.resolve()),
                "files": [[p.relative_to(path).as_posix(), p.stat().st_size, sha256_file(p)] for p in files]}
    if path.is_file():
        return {"kind": "file", "path": str(path.resolve()), "size": path.stat().st_size, "sha256": sha256_file(path)}
    raise InputError(f"reference.source {source}: no such folder, archive or URL "
                     f"(or one of {', '.join(BUILTIN_SOURCES)})")


#: Where the project's own modules are imported from (the folder above the package).
PROJECT = Path(__file__).resolve().parents[1]


def code_fingerprint(module: str, root: str | os.PathLike = PROJECT) -> dict[str, str]:
    """``{file: sha256}`` of ``module``'s file and every file under ``root`` it reaches through
    its imports (:func:`modelgif._imports.module_files`; read from the source, nothing imported),
    paths relative to ``root``; ``{}`` where ``root`` has no such module."""
    root = Path(root).resolve()
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(module_files(module, [root]))}


#: The scripts (``stages/<name>.py``) of the main pipeline's stages besides ``settings``: each
#: gets its code fingerprint ``code_<name>.json`` (:func:`stage_code`), its stage's code dep.
STAGE_SCRIPTS = ("fetch_reference", "fetch_checkpoint", "field", "affinity", "features", "method_inputs",
                 "method_distance", "correlate")


def stage_code(script: str | os.PathLike, root: str | os.PathLike = PROJECT) -> dict[str, str]:
    """``{file: sha256}`` of every file under ``root`` that the stage script ``script`` (a path
    under ``root``) imports, transitively, package ``__init__`` files included, read from the
    source (:func:`modelgif._imports.imported_files`, with the script's folder first on the path
    as Python puts it); the script itself is not among them (its stage lists it)."""
    root = Path(root).resolve()
    script = (root / script).resolve()
    if not script.is_file():
        raise InputError(f"no stage script {script}")
    files = imported_files(script, [script.parent, root])
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(files)}


def zoo_code(spec: ZooSpec) -> dict[str, str]:
    """The code that builds ``spec``'s models, fingerprinted (``zoo.json``): for each distinct
    architecture, a built-in's module (:data:`modelgif.zoo.spec.NAMED_ARCHITECTURES`) under the
    project, or a user's ``package.module:function`` under the current folder (the project root,
    where DVC runs the stages); ``torchvision:<name>`` is an installed package: nothing."""
    out: dict[str, str] = {}
    for architecture in sorted({m.architecture for m in spec.models.values()}):
        if architecture in NAMED_ARCHITECTURES:
            out.update(code_fingerprint(NAMED_ARCHITECTURES[architecture]))
        elif not architecture.startswith("torchvision:") and ":" in architecture:
            out.update(code_fingerprint(architecture.partition(":")[0], Path.cwd()))
    return dict(sorted(out.items()))


def reference_settings(params: Mapping, spec: ZooSpec) -> dict:
    """The reference set's settings: the source resolved (``zoo``: the declaration's own) and
    fingerprinted, the image size resolved (``zoo``: the declared ``input_size``), and the
    settings of the other sources dropped. ``warnings``: a size other than the declared one."""
    ref = _section(params, "reference")
    requested = str(ref.get("source", "zoo"))
    source = spec.reference if requested == "zoo" else requested
    size = ref.get("image_size", "zoo")
    warnings = []
    if size == "zoo":
        size = spec.input_size
    elif isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError(f"params.yaml: reference.image_size must be a positive number of pixels or 'zoo', got {size!r}")
    elif size != spec.input_size:
        warnings.append(f"reference.image_size {size} differs from the zoo's declared input_size "
                        f"{spec.input_size}: its models are probed at a size they were not made for")
    n = ref.get("n_images")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"params.yaml: reference.n_images must be a positive number of images, got {n!r}")
    check_seed(ref.get("seed"), "reference.seed")
    # the set as uint8 plus a float32 working copy (CutMix, the resize) and the stored copy
    check_memory(n * 3 * size * size * 6, f"building {n} reference images of 3×{size}×{size}",
                 "lower reference.n_images or reference.image_size")
    out = {"zoo": spec.name, "source": source, "n_images": n, "image_size": size,
           "zoo_input_size": spec.input_size, "cutmix": ref.get("cutmix"), "seed": ref.get("seed"),
           "sha256": ref.get("sha256") or ""}
    if source == "taskonomy-sample":
        out.update(base_url=ref.get("base_url"), commit=ref.get("commit"))  # the commit pins the files
    elif source == "mini-scenes":
        # the renderer is the mini zoo's code: fingerprinted here, for this source only
        out.update(first_scene=ref.get("first_scene"), renderer_code=code_fingerprint(SOURCE_MODULES[source]))
    else:
        out["fingerprint"] = source_fingerprint(source)
    out["warnings"] = warnings
    return out


def field_settings(params: Mapping, spec: ZooSpec) -> dict:
    """Everything that changes a field's values (``field`` and ``target``), settings without
    effect as ``None``: the baseline seed of a ``zero`` baseline, the sketch seed of an exact
    field (``sketch_dim`` 0)."""
    field = _section(params, "field")
    check_seed(field.get("seed"), "field.seed")
    check_seed(field.get("sketch_seed"), "field.sketch_seed")
    out = {"zoo": spec.name, "target": params.get("target"), **field}
    if field.get("baseline") == "zero":
        out["seed"] = None
    if field.get("sketch_dim") == 0:
        out["sketch_seed"] = None
    return out


def checkpoint_settings(params: Mapping, spec: ZooSpec, task: str) -> dict:
    """Where model ``task``'s checkpoint comes from, with the sha256 of every local file it is
    taken from (the manifest, and the checkpoint in a local folder or at a local path): a file
    overwritten in place (``cp`` onto a git-tracked encoder) reruns ``fetch_checkpoint@task``,
    which then refuses it by its manifest sha256 instead of DVC calling the old copy current."""
    import json

    model = spec.model(task)
    params = resolve_mini_params(params)  # the mini sections' nulls: the chosen build's
    out: dict = {"zoo": spec.name, "task": task, "checkpoint": model.checkpoint, "sha256": model.sha256}
    local: dict[str, str] = {}
    if model.checkpoint is not None and not _is_url(model.checkpoint) and Path(model.checkpoint).is_file():
        local[model.checkpoint] = sha256_file(Path(model.checkpoint))
    source = spec.checkpoints or {}
    key = source.get("manifest") or source.get("random_init")
    if model.checkpoint is None and key is not None:
        section = params_section(params, key, spec)
        if isinstance(section, Mapping) and "random_seed" in section:
            check_seed(section["random_seed"], f"{key}.random_seed")
        out.update(params_key=key, section=section)
        manifest = section.get("manifest") if isinstance(section, Mapping) else None
        if isinstance(manifest, str) and not _is_url(manifest) and Path(manifest).is_file():
            local[manifest] = sha256_file(Path(manifest))
            base = str(section.get("base_url", ""))
            try:
                entry = json.loads(Path(manifest).read_text())["encoders"][task]
            except (ValueError, KeyError, TypeError):
                entry = None  # the fetch stage names what is wrong with the manifest
            if isinstance(entry, dict) and not _is_url(base) and (Path(base) / str(entry.get("file"))).is_file():
                path = Path(base) / str(entry["file"])
                local[path.as_posix()] = sha256_file(path)
    out["local_files"] = local
    return out


def method_settings(params: Mapping, method: str) -> dict:
    """What ``distance@<method>`` computes with: the models (under the key ``tasks``, as before), its options, the bootstrap, and the
    field distance (``distance``) only for a field method."""
    options = (params.get("method_options") or {}).get(method)
    check_seed((params.get("bootstrap") or {}).get("seed"), "bootstrap.seed")
    spec = REGISTRY.get(method)
    if spec is not None and spec.reads == "field_end_point" and (params.get("field") or {}).get("cumulative") is False:
        raise InputError("method ig cannot run with field.cumulative: false: a per-step field's last step is not "
                         "the Integrated Gradients attribution; set field.cumulative: true or drop ig from methods")
    out = {"method": method, "tasks": params.get("models"), "options": options or {},
           "metric": params.get("distance") if spec is not None and spec.kind == "field" else None,
           "bootstrap": params.get("bootstrap")}
    if spec is not None and spec.compute is not None:  # a method's own module, loaded by name: its code
        module = spec.compute.partition(":")[0]  # the project's, or a user's under the project root
        out["code"] = code_fingerprint(module) or code_fingerprint(module, Path.cwd())
    if spec is not None and spec.reads == "features_labels":  # the labels' renderer, loaded by name
        out["labels_code"] = code_fingerprint(SOURCE_MODULES["mini-scenes"])
    return out


def ground_truth_settings(params: Mapping, spec: ZooSpec) -> dict:
    """The zoo's ground-truth tables the params select, each file with its sha256 (tables live
    outside the pipeline: a user's CSV beside the declaration, the package's JSON)."""
    tables = dict(spec.tables)
    if spec.select is not None:
        chosen = params_section(params, spec.select, spec)
        if not isinstance(chosen, list):
            raise InputError(f"params.yaml: '{spec.select}' must be a list of table names, got {chosen!r}")
        tables = {name: tables[name] for name in chosen if name in tables}
    files = {}
    for name, table in tables.items():
        for role, path in (("file", table.file), ("replicate", table.replicate)):
            if path is not None and Path(path).is_file():
                files[f"{name}.{role}"] = sha256_file(Path(path))
        for path in table.readout_files():  # the noise ceiling's input: a replicate added or replaced reruns correlate
            files[f"{name}.readouts.{path.name}"] = sha256_file(path)
    return {"zoo": spec.name, "tables": sorted(tables), "files": files}


def resolve_settings(params: Mapping) -> dict[str, dict]:
    """Every settings file, ``{file name: content}``: ``zoo.json`` (the sha256 of the code that
    builds the zoo's models, :func:`zoo_code`), ``reference.json``, ``field.json``, ``features.json``
    (zoo, target), ``affinity.json`` (the models, under the key ``tasks``, and distance),
    ``ground_truth.json``, ``checkpoint_<task>.json`` per listed task, ``method_<name>.json``
    per listed method and ``code_<script>.json`` per stage script (:data:`STAGE_SCRIPTS`)."""
    params = resolve_mini_params(params)  # mini.checkpoints' nulls: those of the build mini.build chooses
    zoo = params.get("zoo", "taskonomy")
    spec = load_zoo_spec(str(zoo), mini_build=selected_build(params))
    out = {"zoo.json": {"zoo": spec.name, "code": zoo_code(spec)},
           "reference.json": reference_settings(params, spec), "field.json": field_settings(params, spec),
           "ground_truth.json": ground_truth_settings(params, spec)}
    tasks = check_models(params)  # the models to compare (the Taskonomy zoos': its tasks' encoders)
    # the encoder outputs and attribution maps (features@<task>) and the field distances (affinity)
    out["features.json"] = {"zoo": spec.name, "target": params.get("target")}
    out["affinity.json"] = {"tasks": tasks, "metric": params.get("distance")}
    for task in spec.check_models(tasks):  # an unknown task: ZooError naming the zoo's models
        out[f"checkpoint_{task}.json"] = checkpoint_settings(params, spec, task)
    methods = params.get("methods") or []
    for method in methods:
        out[f"method_{method}.json"] = method_settings(params, str(method))
    for name in STAGE_SCRIPTS:
        out[f"code_{name}.json"] = {"script": f"stages/{name}.py", "code": stage_code(f"stages/{name}.py")}
    return {name: {"format": SETTINGS_FORMAT, **content} for name, content in out.items()}


def method_input_paths(method: str, tasks, *, fields: str | os.PathLike = "data/fields",
                       features: str | os.PathLike = "data/features",
                       attributions: str | os.PathLike = "data/attributions",
                       reference: str | os.PathLike = "data/reference") -> list[Path]:
    """The files ``distance@<method>`` reads for ``tasks``, in order: each field and its record
    (``reads: fields``: modelgif, ig), each attribution map (``attributions``: saliency,
    gradxinput), or each encoder output and its record (``features``: rsa, cka, dds; and
    ``features_labels``: logme, linear_mse, knn, with the reference set's images and manifest,
    whose labels they fit)."""
    if method not in REGISTRY:
        raise InputError(f"unknown method {method!r}; valid methods: {', '.join(REGISTRY)}")
    reads = REGISTRY[method].reads
    if reads in ("fields", "field_end_point"):
        return [Path(fields) / f"{t}{ext}" for t in tasks for ext in (".npy", ".json")]
    if reads == "attributions":
        return [Path(attributions) / method / f"{t}.npy" for t in tasks]
    paths = [Path(features) / f"{t}{ext}" for t in tasks for ext in (".npy", ".json")]
    if reads == "features_labels":
        paths += [Path(reference) / "images.npy", Path(reference) / "manifest.json"]
    return paths


def inputs_fingerprint(paths, cache: dict | None = None) -> dict:
    """``{"files": [[path, size in bytes, sha256], ...]}`` of ``paths`` (a method's inputs);
    ``InputError`` naming the first that is missing. ``cache``: path -> sha256 of files already
    hashed in this run (``modelgif`` and ``ig`` read the same fields)."""
    cache = {} if cache is None else cache
    files = []
    for p in map(Path, paths):
        if not p.is_file():
            raise InputError(f"no input {p} (its stage has not run)")
        if p not in cache:
            cache[p] = sha256_file(p)
        files.append([p.as_posix(), p.stat().st_size, cache[p]])
    return {"format": SETTINGS_FORMAT, "files": files}
