"""Provenance of a stored field: what it was computed from, so that fields computed on
different reference sets or with different settings are never compared.

A field ``<name>.npy`` has its record in ``<name>.json`` beside it (a ``.npy`` header cannot
hold extra keys: ``numpy.lib.format`` rejects them). The record holds the sha256 of the
reference set file, the task and its checkpoint's sha256, and every setting that changes the
field's values: zoo, target, method, n_steps, baseline (and its seed), cumulative, storage
dtype, precision, sketch (dimension and seed) and the field's shape. Settings without effect
are recorded as ``null`` (the seed of a ``zero`` baseline, the seed of an exact field's
sketch), so they do not make two equal fields differ.

The field stage removes a field's old record before computing and writes the new one only
after the field is in place; a field without a record is refused, so a record never describes
another computation than its field's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .atomic import write_text
from .download import sha256_file
from ..errors import InputError
from .storage import field_shape, open_field

#: Version of the record's layout.
RECORD_FORMAT = 1
#: Keys that name one field's model; every other key must agree across compared fields.
PER_FIELD_KEYS = ("task", "checkpoint_sha256")


#: Hex sha256 of a file's bytes (the reference set's ``images.npy``, a checkpoint): the project's one
#: implementation, :func:`modelgif.io.download.sha256_file`, under the name the records use.
file_sha256 = sha256_file


def record_path(field: str | os.PathLike) -> Path:
    """Where the record of the field file ``field`` lives: ``<name>.json`` beside ``<name>.npy``."""
    if Path(field).suffix == ".json":
        raise InputError(f"a field file cannot be named {field}: .json is its provenance record's suffix")
    return Path(field).with_suffix(".json")


def field_record(
    task: str,
    *,
    reference_sha256: str,
    checkpoint_sha256: str | None,
    zoo: str,
    target: int,
    n_steps: int,
    method: str,
    baseline: str,
    seed: int,
    cumulative: bool,
    dtype: str,
    precision: str,
    sketch_dim: int,
    sketch_seed: int,
    shape: tuple[int, int, int],
) -> dict:
    """The provenance record of one field (see module doc); a JSON-ready dict."""
    return {
        "format": RECORD_FORMAT,
        "task": str(task),
        "checkpoint_sha256": checkpoint_sha256,
        "reference_sha256": str(reference_sha256),
        "zoo": str(zoo),
        "target": int(target),
        "n_steps": int(n_steps),
        "method": str(method),
        "baseline": str(baseline),
        "seed": None if baseline == "zero" else int(seed),
        "cumulative": bool(cumulative),
        "dtype": str(dtype),
        "precision": str(precision),
        "sketch_dim": int(sketch_dim),
        "sketch_seed": int(sketch_seed) if sketch_dim else None,
        "shape": [int(v) for v in shape],
    }


def write_record(field: str | os.PathLike, record: Mapping) -> Path:
    """Write ``record`` beside ``field`` atomically; returns the record's path."""
    return write_text(record_path(field), json.dumps(dict(record), indent=1, sort_keys=True) + "\n")


def read_record(field: str | os.PathLike) -> dict:
    """The record of the field file ``field``.

    Raises:
        InputError: no record beside it, or one that is not a record of this format.
    """
    path = record_path(field)
    if not path.is_file():
        raise InputError(f"field {field} has no provenance record {path}; recompute it with the field stage")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} is not a readable provenance record: {e}") from e
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"{path} is not a provenance record of format {RECORD_FORMAT} (got {got!r}); "
                         f"recompute field {field} with the field stage")
    return record


def _short(value) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    return json.dumps(value)


def check_same_provenance(records: Mapping[str, Mapping]) -> None:
    """Refuse records (field name → record) that disagree on anything but :data:`PER_FIELD_KEYS`.

    Raises:
        InputError: one line naming each differing setting and which fields have which value,
            e.g. ``fields differ in reference_sha256 (3fa2…: normal, reshading; 9b1c…: curvature)``.
    """
    keys = sorted({k for r in records.values() for k in r} - set(PER_FIELD_KEYS))
    differ = []
    for key in keys:
        groups: dict[str, list[str]] = {}
        for name, r in records.items():
            groups.setdefault(json.dumps(r.get(key), sort_keys=True), []).append(name)
        if len(groups) > 1:
            parts = "; ".join(f"{_short(json.loads(v))}: {', '.join(names)}" for v, names in groups.items())
            differ.append(f"{key} ({parts})")
    if differ:
        raise InputError(f"fields computed on different reference sets or settings cannot be compared: "
                         f"they differ in {' and '.join(differ)}; recompute the fields that differ")


def check_fields(fields: Mapping[str, str | os.PathLike]) -> dict:
    """Check that the fields (task → ``.npy`` path) can be compared, before reading their values.

    Each field must be a readable field file with a record that names its task and matches
    the file's shape and storage dtype; all records must agree (:func:`check_same_provenance`).
    Reads only the files' headers and the records.

    Returns:
        The settings the fields share (a record without :data:`PER_FIELD_KEYS`).

    Raises:
        InputError (or FileNotFoundError), naming the field and the problem.
    """
    if not fields:
        raise InputError("no fields to compare")
    records = {}
    for task, path in fields.items():
        record = read_record(path)
        if record.get("task") != task:
            raise InputError(f"{path} is the field of task {record.get('task')!r} (says {record_path(path)}), "
                             f"not of {task!r}")
        arr = open_field(path)
        shape, dtype = list(field_shape(arr)), "float16" if arr.dtype.names else str(arr.dtype)
        del arr
        if record.get("shape") != shape or record.get("dtype") != dtype:
            raise InputError(f"{path} holds a {dtype} field of shape {tuple(shape)} but its record {record_path(path)} "
                             f"describes a {record.get('dtype')} field of shape {tuple(record.get('shape') or ())}; "
                             "recompute it with the field stage")
        records[task] = record
    check_same_provenance(records)
    first = next(iter(records.values()))
    return {k: v for k, v in first.items() if k not in PER_FIELD_KEYS}


__all__ = ["PER_FIELD_KEYS", "RECORD_FORMAT", "check_fields", "check_same_provenance", "field_record",
           "file_sha256", "read_record", "record_path", "write_record"]
