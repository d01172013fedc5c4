"""A zoo declaration: the YAML file that says what a model zoo is, read into a frozen dataclass.

``zoo: <name>`` in ``params.yaml`` selects ``zoos/<name>.yaml`` (in the current directory, the
project root where DVC runs the stages; else the checkout's ``zoos/``); a value ending in
``.yaml`` / ``.yml`` or holding a ``/`` is a path. The built-in zoos ``taskonomy``, ``mini`` and
``mini_random`` are such files. A declaration::

    description: three ResNet-18s              # optional
    architecture: torchvision:resnet18         # default of every model: taskonomy | mini |
                                               #   torchvision:<name> | package.module:function
    layer: layer4                              # the layer whose (B, C, h, w) output the target
                                               #   reads (torchvision / module:function; none:
                                               #   the module's own output)
    input_size: 64                             # the models' input side in pixels (all equal)
    normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
                                               # applied to the images in [0, 1] inside the
                                               #   encoder; none: the images as stored, in [-1, 1]
    reference: mini-scenes                     # what `reference.source: zoo` means
    models:                                    # name -> entry (or a list of names, for a
      a: {checkpoint: weights/a.pt, sha256: <64 hex>}   #   `checkpoints:` source)
      b: {checkpoint: https://host/b.pt, sha256: <64 hex>, layer: layer3}
    ground_truth:                              # optional
      tables:
        transfer: {file: zoos/mine/transfer.csv, higher_is_closer: true, replicate: null}
    void_targets: {b: [6]}                     # optional: targets whose field is identically 0

Paths are relative to the current directory (the project root). A table is a CSV
``source,target,value`` or Taskonomy's JSON (``{"table": {"<source>__<target>": value}}``);
``ground_truth.names: taskonomy`` says the keys are Taskonomy's original task names
(:data:`modelgif.zoo.tasks.OLD_NAMES`) and may name more tasks than the zoo has (the published
tables do). ``ground_truth.select: <params key>`` lets ``params.yaml`` choose among the declared
tables (the built-in zoos: ``ground_truth``, ``mini.ground_truth``); without it every table is
used. ``readouts`` (optional) is a glob pattern of the table's readout replicates, the same
encoders with other readout seeds, of which ``file`` is the mean: the noise ceiling
(:mod:`modelgif.score.ceiling`) is measured from them. A file path in ``file``/``replicate``/``readouts`` may start with ``{taskonomy_tables}`` or
``{mini_tables}`` (the tables of the mini build params ``mini.build`` chooses, :mod:`modelgif.zoo.mini_builds`)
or ``{mini_tables_other}`` (those of the next build: another training of the same encoders), the
folders of the project's own tables: such a table is checked when it is read, and such a replicate
is used where the file exists; every other file is checked on reading the declaration.

Instead of a checkpoint per model, ``checkpoints:`` names a params section the checkpoints come
from: ``{manifest: <params key>, torch_hub: bool}`` (a section with ``base_url`` and
``manifest``, :mod:`modelgif.zoo.checkpoint_source`), or ``{random_init: <params key>}`` (a
section with ``random_seed``: the mini build's initial weights, architecture ``mini`` only).

Every check that needs no model is made here, on reading: each error is one line naming the
declaration file and the entry. What needs the models built (an unknown layer, a layer whose
output is not a (B, C, h, w) map) is :func:`modelgif.zoo.models.check_zoo_models`. No torch here.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import InputError, MissingEntry

#: The folder of the project's zoo declarations (a source checkout).
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "zoos"
#: Architectures that are not a ``prefix:`` form.
#: The built-in architectures: name → the module that defines it, loaded by name
#: (:func:`modelgif.zoo.models.architecture_module`; its protocol is in :data:`modelgif.zoo.models.ARCHITECTURES`).
NAMED_ARCHITECTURES = {"taskonomy": "modelgif.zoo.taskonomy", "mini": "modelgif.mini.encoder"}
#: The built-in reference sources made by the project's code: name → the module that makes them.
SOURCE_MODULES = {"mini-scenes": "modelgif.mini.scenes"}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_TOP_KEYS = {"description", "architecture", "layer", "input_size", "normalize", "reference", "models",
             "checkpoints", "ground_truth", "void_targets"}
_MODEL_KEYS = {"architecture", "layer", "input_size", "checkpoint", "sha256"}
_TABLE_KEYS = {"file", "higher_is_closer", "replicate", "readouts"}


class ZooError(InputError):
    """A zoo declaration that is missing or not what it must be (a ``ValueError``)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a zoo.

    Attributes:
        name: the model's name (a ``tasks`` entry, a row/column of the distance matrix).
        architecture: ``taskonomy``, ``mini``, ``torchvision:<name>`` or ``module:function``.
        layer: the layer whose output the target reads; None: the module's own output.
        input_size: the side, in pixels, of the images the model takes.
        checkpoint: a path or an http(s) URL of its weights, or None (from the zoo's
            ``checkpoints`` source, or none at all for a ``module:function`` model).
        sha256: the checkpoint's expected sha256 (required with ``checkpoint``).
    """

    name: str
    architecture: str
    layer: str | None
    input_size: int
    checkpoint: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """One ground-truth table: ``file`` (CSV or JSON), orientation, optional ``replicate`` file
    (an independent measurement of the table: another build of the zoo, other transfer images)
    and ``readouts``, a glob pattern of the table's readout replicates (the same encoders, other
    readout seeds; ``file`` is their mean): the noise ceiling's input."""

    name: str
    file: Path
    higher_is_closer: bool
    replicate: Path | None = None
    readouts: str | None = None

    def readout_files(self) -> list[Path]:
        """The files ``readouts`` matches, in replicate order (natural sort: r2 before r10)."""
        if self.readouts is None:
            return []
        import glob
        import re

        files = [Path(f) for f in glob.glob(self.readouts)]
        return sorted(files, key=lambda f: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", f.name)])


@dataclass(frozen=True)
class ZooSpec:
    """A zoo declaration, validated (:func:`load_zoo_spec`).

    Attributes:
        name: the zoo's name (the file's stem). path: the declaration file.
        models: name -> :class:`ModelSpec`, in the file's order.
        normalize: ``(mean, std)`` per channel on images in [0, 1], or None (images in [-1, 1]).
        reference: the reference source ``reference.source: zoo`` stands for.
        checkpoints: ``{"manifest": key, "torch_hub": bool}`` / ``{"random_init": key}`` / None.
        tables: ground-truth tables by name (empty: the zoo has no ground truth).
        select: the params key choosing among ``tables``, or None (all of them).
        taskonomy_names: table keys are Taskonomy's original task names.
        void_targets: model -> targets whose field is identically zero.
    """

    name: str
    path: Path
    models: dict[str, ModelSpec]
    input_size: int
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None
    reference: str
    checkpoints: dict | None = None
    tables: dict[str, TableSpec] = field(default_factory=dict)
    select: str | None = None
    taskonomy_names: bool = False
    void_targets: dict[str, frozenset[int]] = field(default_factory=dict)

    def model(self, name: str) -> ModelSpec:
        """``name``'s :class:`ModelSpec`; ``ZooError`` naming the file and the models if it has none."""
        if name not in self.models:
            raise ZooError(f"{self.path}: unknown task {name!r}: not a model of zoo {self.name} (tasks in params.yaml "
                           f"must be among its models); known tasks: {', '.join(self.models)}")
        return self.models[name]

    def check_models(self, names) -> list[str]:
        """``names`` (e.g. ``tasks`` of params.yaml) if each is a model of the zoo, else ``ZooError``."""
        return [self.model(n).name for n in names]


def zoo_path(zoo: str | os.PathLike) -> Path:
    """The declaration file ``zoo`` names (see the module docstring); ``ZooError`` if there is none."""
    text = os.fspath(zoo)
    if not text:
        raise ZooError(f"zoo: empty name; known zoos: {', '.join(known_zoos()) or 'none'}")
    if text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text:
        path = Path(text)
        if not path.is_file():
            what = "a folder, not a declaration file" if path.is_dir() else "no declaration file"
            raise ZooError(f"unknown zoo {text!r}: {what} {path}; known zoos: {', '.join(known_zoos()) or 'none'}")
        return path
    for folder in (Path("zoos"), BUILTIN_DIR):
        if (folder / f"{text}.yaml").is_file():
            return folder / f"{text}.yaml"
    raise ZooError(f"unknown zoo {text!r}: no zoos/{text}.yaml; known zoos: {', '.join(known_zoos()) or 'none'}")


def known_zoos() -> list[str]:
    """The names of the zoo declarations there are: ``zoos/*.yaml`` here and the checkout's own."""
    return sorted({p.stem for d in (Path("zoos"), BUILTIN_DIR) if d.is_dir() for p in d.glob("*.yaml") if p.is_file()})


def _table_path(value, where: str, mini_build: int = 0) -> Path:
    if not isinstance(value, str) or not value:
        raise ZooError(f"{where}: a file path is needed, got {value!r}")
    from .._resources import taskonomy_tables_dir
    from .mini_builds import other_build, tables_dir

    value = (value.replace("{taskonomy_tables}", str(taskonomy_tables_dir()))
             .replace("{mini_tables_other}", str(tables_dir(other_build(mini_build))))
             .replace("{mini_tables}", str(tables_dir(mini_build))))
    return Path(value)


def _builtin_root(value) -> bool:
    return isinstance(value, str) and value.startswith(("{taskonomy_tables}", "{mini_tables}", "{mini_tables_other}"))


def read_table(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """A ground-truth table as ``{(source, target): value}``: CSV with the header
    ``source,target,value``, or Taskonomy's JSON (``{"table": {"<source>__<target>": value}}``).

    Raises:
        ValueError: unreadable, another header, a non-numeric value, a pair given twice.
    """
    path = Path(path)
    out: dict[tuple[str, str], float] = {}
    if path.suffix.lower() == ".json":
        try:
            table = json.loads(path.read_text())["table"]
            items = [(tuple(k.split("__", 1)), v) for k, v in table.items()]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(f"{path}: not a Taskonomy-format table ({{\"table\": {{\"a__b\": value}}}}): {e!r}") from e
        bad = [k for k, _ in items if len(k) != 2]
        if bad:
            raise InputError(f"{path}: key {'__'.join(bad[0])!r} is not '<source>__<target>'")
    else:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or [c.strip() for c in rows[0]] != ["source", "target", "value"]:
            raise InputError(f"{path}: a CSV table needs the header 'source,target,value', got {rows[:1]}")
        items = []
        for i, row in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in row):
                continue
            if len(row) != 3:
                raise InputError(f"{path}: line {i} has {len(row)} fields, expected source,target,value")
            items.append(((row[0].strip(), row[1].strip()), row[2].strip()))
    for key, value in items:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{path}: {key[0]} -> {key[1]}: value {value!r} is not a number") from None
        if key in out:
            raise InputError(f"{path}: {key[0]} -> {key[1]} is given twice")
        out[key] = v
    return out


def table_matrix(table: dict[tuple[str, str], float], names, keys=None, what: str = "table"):
    """``T[i, j] = table[(keys[i], keys[j])]``, float64 (K, K) (``keys``: the table's names of
    ``names``, default the same). ``MissingEntry`` naming the first absent pair."""
    import numpy as np

    keys = list(names) if keys is None else list(keys)
    out = np.empty((len(keys), len(keys)), dtype=np.float64)
    for i, a in enumerate(keys):
        for j, b in enumerate(keys):
            if (a, b) not in table:
                raise MissingEntry(f"{what} has no entry {a} -> {b}")
            out[i, j] = table[(a, b)]
    return out


def _architecture(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ZooError(f"{where}: an architecture is needed (taskonomy, mini, torchvision:<name> or module:function)")
    if value in NAMED_ARCHITECTURES:
        return value
    prefix, _, rest = value.partition(":")
    if prefix == "torchvision" and rest:
        return value
    if prefix and rest and prefix != "torchvision" and all(p.isidentifier() for p in prefix.split(".")) \
            and rest.isidentifier():
        return value
    raise ZooError(f"{where}: unknown architecture {value!r}; valid: taskonomy, mini, torchvision:<name>, "
                   "package.module:function")


def _int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ZooError(f"{where}: a positive integer is needed, got {value!r}")
    return value


def _normalize(value, where: str):
    if value is None:
        return None
    try:
        mean, std = tuple(float(v) for v in value["mean"]), tuple(float(v) for v in value["std"])
    except (TypeError, KeyError, ValueError) as e:
        raise ZooError(f"{where}: needs 'mean' and 'std', 3 numbers each, got {value!r}") from e
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ZooError(f"{where}: 'mean' and 'std' need 3 numbers each, std > 0, got {value!r}")
    return mean, std


def _unknown_keys(entry: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ZooError(f"{where}: unknown key {extra[0]!r}; valid keys: {', '.join(sorted(allowed))}")


def load_zoo_spec(zoo: str | os.PathLike, *, mini_build: int = 0) -> ZooSpec:
    """Read and check the declaration ``zoo`` names (:func:`zoo_path`); ``{mini_tables}`` in its
    table paths is the tables of mini build ``mini_build`` (params ``mini.build``).

    Raises:
        ZooError: no such file, not YAML, or an entry that is not what it must be (an unknown
            architecture, models of different input sizes, a checkpoint without a 64-hex
            sha256, a table that is missing or names a model the zoo lacks, ...). The message
            is one line naming the file and the entry.
    """
    path = zoo_path(zoo)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ZooError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(doc, dict):
        raise ZooError(f"{path}: a zoo declaration is a mapping (architecture, models, ...)")
    _unknown_keys(doc, _TOP_KEYS, str(path))
    default_arch = doc.get("architecture")
    default_layer = doc.get("layer")
    default_size = doc.get("input_size")
    normalize = _normalize(doc.get("normalize"), f"{path}: normalize")
    reference = doc.get("reference")
    if not isinstance(reference, str) or not reference:
        raise ZooError(f"{path}: reference: a reference source is needed (taskonomy-sample, mini-scenes, a folder, an archive or a URL)")

    checkpoints = doc.get("checkpoints")
    if checkpoints is not None:
        ok = isinstance(checkpoints, dict) and (
            (set(checkpoints) <= {"manifest", "torch_hub"} and isinstance(checkpoints.get("manifest"), str))
            or (set(checkpoints) == {"random_init"} and isinstance(checkpoints["random_init"], str)))
        if not ok:
            raise ZooError(f"{path}: checkpoints: needs {{manifest: <params key>, torch_hub: true|false}} "
                           f"or {{random_init: <params key>}}, got {checkpoints!r}")

    raw_models = doc.get("models")
    if isinstance(raw_models, list):
        raw_models = {m: {} for m in raw_models}
    if not isinstance(raw_models, dict) or not raw_models:
        raise ZooError(f"{path}: models: a mapping of model names (or a list of names) is needed")
    models: dict[str, ModelSpec] = {}
    for name, entry in raw_models.items():
        where = f"{path}: models.{name}"
        entry = {} if entry is None else entry
        if not isinstance(name, str) or not name or "/" in name or name != name.strip():
            raise ZooError(f"{path}: models: {name!r} is not a valid model name")
        if not isinstance(entry, dict):
            raise ZooError(f"{where}: a mapping (architecture, layer, checkpoint, sha256) is needed, got {entry!r}")
        _unknown_keys(entry, _MODEL_KEYS, where)
        arch = _architecture(entry.get("architecture", default_arch), f"{where}: architecture")
        layer = entry.get("layer", default_layer)
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ZooError(f"{where}: layer: a layer name is needed, got {layer!r}")
        if layer is not None and arch in NAMED_ARCHITECTURES:
            raise ZooError(f"{where}: layer: architecture {arch} has a fixed output layer; remove 'layer'")
        size = _int(entry.get("input_size", default_size), f"{where}: input_size")
        ckpt, sha = entry.get("checkpoint"), entry.get("sha256")
        if ckpt is not None:
            if not isinstance(ckpt, str) or not ckpt:
                raise ZooError(f"{where}: checkpoint: a path or URL is needed, got {ckpt!r}")
            if not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
                raise ZooError(f"{where}: sha256: the checkpoint's 64-hex sha256 is needed (as a string: quote it "
                               f"if YAML reads it as a number), got {sha!r}")
            sha = sha.lower()
        elif sha is not None:
            raise ZooError(f"{where}: sha256 without a checkpoint")
        elif checkpoints is None and (arch in NAMED_ARCHITECTURES or arch.startswith("torchvision:")):
            raise ZooError(f"{where}: checkpoint: architecture {arch} needs weights (a checkpoint and its sha256)")
        models[name] = ModelSpec(name, arch, layer, size, ckpt, sha)
    sizes = {m.input_size for m in models.values()}
    if len(sizes) > 1:
        by = {s: [m.name for m in models.values() if m.input_size == s] for s in sorted(sizes)}
        raise ZooError(f"{path}: models have different input sizes ({'; '.join(f'{s}: {n[0]}' + (', ...' if len(n) > 1 else '') for s, n in by.items())}); "
                       "one zoo, one reference set: give every model the same input_size")
    if checkpoints and "random_init" in checkpoints and any(m.architecture != "mini" for m in models.values()):
        raise ZooError(f"{path}: checkpoints: random_init is only defined for architecture mini")

    gt = doc.get("ground_truth") or {}
    if not isinstance(gt, dict):
        raise ZooError(f"{path}: ground_truth: a mapping with 'tables' is needed, got {gt!r}")
    _unknown_keys(gt, {"tables", "select", "names"}, f"{path}: ground_truth")
    names_kind = gt.get("names", "models")
    if names_kind not in ("models", "taskonomy"):
        raise ZooError(f"{path}: ground_truth.names: 'models' or 'taskonomy', got {names_kind!r}")
    select = gt.get("select")
    if select is not None and not isinstance(select, str):
        raise ZooError(f"{path}: ground_truth.select: a params key is needed, got {select!r}")
    tables: dict[str, TableSpec] = {}
    raw_tables = gt.get("tables") or {}
    if not isinstance(raw_tables, dict):
        raise ZooError(f"{path}: ground_truth.tables: a mapping of table names is needed")
    for tname, entry in raw_tables.items():
        where = f"{path}: ground_truth.tables.{tname}"
        if not isinstance(entry, dict):
            raise ZooError(f"{where}: a mapping (file, higher_is_closer, replicate) is needed, got {entry!r}")
        _unknown_keys(entry, _TABLE_KEYS, where)
        if not isinstance(entry.get("higher_is_closer"), bool):
            raise ZooError(f"{where}: higher_is_closer: true (affinities, win rates) or false (losses) is needed")
        file = _table_path(entry.get("file"), f"{where}: file", mini_build)
        rep = None if entry.get("replicate") is None else _table_path(entry["replicate"], f"{where}: replicate", mini_build)
        readouts = None if entry.get("readouts") is None else str(_table_path(entry["readouts"], f"{where}: readouts", mini_build))
        for what, p in (("file", file), ("replicate", rep)):
            if p is None or _builtin_root(entry.get(what)):
                continue  # the project's own tables: checked where read (an override folder may hold fewer)
            if not p.is_file():
                raise ZooError(f"{where}: {what}: no table file {p}")
            if names_kind == "models":
                try:
                    table = read_table(p)
                except (OSError, ValueError) as e:
                    raise ZooError(f"{where}: {e}") from e
                lacking = sorted({n for pair in table for n in pair} - set(models))
                if lacking:
                    raise ZooError(f"{where}: {p} names {lacking[0]!r}, which is not a model of the zoo "
                                   f"(models: {', '.join(models)})")
        spec_table = TableSpec(str(tname), file, entry["higher_is_closer"], rep, readouts)
        if readouts is not None and not _builtin_root(entry.get("readouts")) and len(spec_table.readout_files()) < 2:
            raise ZooError(f"{where}: readouts: {readouts!r} matches {len(spec_table.readout_files())} file(s); "
                           "a noise ceiling needs at least 2 readout replicates")
        tables[str(tname)] = spec_table

    void = doc.get("void_targets") or {}
    if not isinstance(void, dict):
        raise ZooError(f"{path}: void_targets: a mapping model -> list of targets is needed")
    void_targets = {}
    for name, targets in void.items():
        if name not in models:
            raise ZooError(f"{path}: void_targets.{name}: not a model of the zoo")
        if not isinstance(targets, list) or not all(isinstance(t, int) and t in (1, 5, 6) for t in targets):
            raise ZooError(f"{path}: void_targets.{name}: a list of targets (1, 5, 6) is needed, got {targets!r}")
        void_targets[name] = frozenset(targets)
    return ZooSpec(name=path.stem, path=path, models=models, input_size=sizes.pop(), normalize=normalize,
                   reference=reference, checkpoints=checkpoints, tables=tables, select=select,
                   taskonomy_names=names_kind == "taskonomy", void_targets=void_targets)


def params_section(params: dict, key: str, spec: ZooSpec):
    """The value of the dotted ``key`` in a params mapping; ``ZooError`` naming it if absent."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ZooError(f"params have no '{key}' (needed by zoo {spec.name!r}, {spec.path})")
        node = node[part]
    return node


__all__ = ["BUILTIN_DIR", "NAMED_ARCHITECTURES", "SOURCE_MODULES", "ModelSpec", "TableSpec", "ZooError", "ZooSpec", "known_zoos", "load_zoo_spec", "params_section",
           "read_table", "table_matrix", "zoo_path"]
