"""Where a zoo's encoder checkpoint comes from: the declaration's own file or URL, a manifest
(torch hub's folder, a URL, or a local folder), or the mini build's initial weights.

:func:`fetch_model_checkpoint` follows a zoo declaration (:mod:`modelgif.zoo.spec`): a model's
own ``checkpoint`` (a path or an http(s) URL, with its sha256), else the zoo's ``checkpoints``
source, a params section holding ``base_url`` and ``manifest`` (:func:`fetch_checkpoint`) or
``random_seed`` (the untrained mini control, :func:`modelgif.zoo.models.random_encoder`).

A manifest (a path or a URL) is JSON ``{"source": ..., "encoders": {task: {"file": name,
"sha256": hex}}}``. :func:`fetch_checkpoint` takes a task's file from, in order:

1. torch hub's checkpoint folder (``torch.hub.get_dir()/checkpoints``, i.e.
   ``$TORCH_HOME/hub/checkpoints``), if it holds the file with the expected sha256 (where the
   declaration says ``torch_hub: true``: Taskonomy's; the mini zoo is never there);
2. ``<base_url>/<file>``: downloaded (retried, bounded in time, sha256-checked,
   :func:`modelgif.io.download.download_file`), or copied with a sha256 check where ``base_url``
   is a folder.

The result must then load as the zoo's encoder for the task (weights only). Nothing is left
at ``out`` (nor any temporary file beside it) unless every check passed.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import torch

from ..io.atomic import atomic_path
from ..io.download import ChecksumError, copy_verified, download_file, fetch_bytes, is_url
from .spec import ZooError, ZooSpec, load_zoo_spec, params_section
from .models import ARCHITECTURES, _is_user_function, architecture_module, load_zoo_encoder


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoint folder, where the original README had users unzip the encoders."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_manifest(manifest: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The ``encoders`` table of a manifest file or URL, checked for shape.

    Raises:
        ValueError: unreadable, not JSON, no ``encoders``, or an entry without a ``file`` name
            and a 64-hex ``sha256``.
    """
    manifest = str(manifest)
    try:
        text = fetch_bytes(manifest).decode() if is_url(manifest) else Path(manifest).read_text()
        encoders = json.loads(text)["encoders"]
        items = encoders.items()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"cannot read the checkpoint manifest {manifest}: {e!r}") from e
    for task, entry in items:
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
                and re.fullmatch(r"[0-9a-fA-F]{64}", str(entry.get("sha256")))):
            raise ValueError(f"manifest {manifest}: entry {task!r} needs a 'file' name and a 64-hex 'sha256', got {entry!r}")
    return encoders


def fetch_checkpoint(task: str, out: str | os.PathLike, base_url: str, manifest: str | os.PathLike, *,
                     zoo: str = "taskonomy", retries: int = 3, timeout: float = 30.0,
                     progress: bool = True) -> str:
    """Place ``task``'s verified encoder checkpoint of ``zoo`` at ``out``; return where it came from.

    Raises:
        ValueError: the task is not in the manifest, the file is not there, or it has the
            expected sha256 but does not load as the zoo's encoder for ``task``.
        ChecksumError, DownloadError: the download failed or its sha256 differs.
    """
    encoders = read_manifest(manifest)
    if task not in encoders:
        raise ValueError(f"task {task!r} is not in the manifest {manifest}; known tasks: {', '.join(encoders)}")
    name, sha256 = encoders[task]["file"], encoders[task]["sha256"].lower()
    spec = load_zoo_spec(zoo)
    cached = hub_checkpoint_dir() / name if (spec.checkpoints or {}).get("torch_hub") else None
    arch = spec.model(task).architecture
    what = {"taskonomy": f"a Taskonomy encoder for {task}", "mini": "a mini-Taskonomy encoder"}.get(
        arch, f"a {arch} model for {task}")
    with atomic_path(out) as tmp:
        origin = None
        if cached is not None and cached.is_file():
            try:
                copy_verified(cached, tmp, sha256=sha256)
                origin = str(cached)
            except ChecksumError as e:
                warnings.warn(f"ignoring the torch hub copy: {e}", stacklevel=2)
        if origin is None:
            origin = f"{str(base_url).rstrip('/')}/{name}"
            if is_url(str(base_url)):
                download_file(origin, tmp, sha256=sha256, retries=retries, timeout=timeout, progress=progress)
            elif Path(origin).is_file():
                copy_verified(origin, tmp, sha256=sha256)
            else:
                raise ValueError(f"no checkpoint {origin}: {base_url} is neither a URL nor a folder holding {name}")
        try:
            load_zoo_encoder(zoo, task, tmp)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{name} from {origin} has the expected sha256 but is not {what}: {e}") from e
    return origin


def fetch_model_checkpoint(spec: ZooSpec, task: str, out: str | os.PathLike, params: dict, *, retries: int = 3,
                           timeout: float = 30.0, progress: bool = True) -> str:
    """Place model ``task``'s verified checkpoint of the zoo ``spec`` at ``out``, as its
    declaration says (the module docstring); ``params``: the params.yaml mapping, for a
    ``checkpoints`` source. Returns where it came from.

    Raises:
        ValueError: no such model, a source that is not there, or a file with the expected
            sha256 that does not load as the model.
        ChecksumError, DownloadError: the download failed or its sha256 differs.
    """
    model = spec.model(task)
    if model.checkpoint is not None:
        origin = model.checkpoint
        with atomic_path(out) as tmp:
            if is_url(origin):
                download_file(origin, tmp, sha256=model.sha256, retries=retries, timeout=timeout, progress=progress)
            elif Path(origin).is_file():
                copy_verified(origin, tmp, sha256=model.sha256)
            else:
                raise ZooError(f"{spec.path}: models.{task}: no checkpoint file {origin}")
            try:
                load_zoo_encoder(str(spec.path), task, tmp)
            except (ValueError, RuntimeError) as e:
                raise ValueError(f"{origin} has the expected sha256 but is not {task}'s {model.architecture} "
                                 f"model: {e}") from e
        return origin
    source = spec.checkpoints or {}
    if not source and _is_user_function(model.architecture):
        from .models import build_architecture  # module:function without a file: the weights it builds

        with atomic_path(out) as tmp:
            torch.save({"state_dict": build_architecture(model).state_dict()}, tmp)
        return f"{model.architecture}() (the weights the function builds)"
    if "random_init" in source:
        seed = params_section(params, f"{source['random_init']}.random_seed", spec)
        module = architecture_module(model.architecture) if model.architecture in ARCHITECTURES else None
        if module is None or not hasattr(module, "write_random_checkpoint"):
            raise ZooError(f"{spec.path}: checkpoints.random_init needs an architecture that makes random "
                           f"checkpoints (mini), not {model.architecture}")
        module.write_random_checkpoint(task, int(seed), out)
        return f"untrained {model.architecture} encoder (random_seed {seed})"
    if "manifest" in source:
        section = params_section(params, source["manifest"], spec)
        if not isinstance(section, dict) or not {"base_url", "manifest"} <= set(section):
            raise ZooError(f"params '{source['manifest']}' needs base_url and manifest (zoo {spec.name}, {spec.path})")
        return fetch_checkpoint(task, out, section["base_url"], section["manifest"], zoo=str(spec.path),
                                retries=retries, timeout=timeout, progress=progress)
    raise ZooError(f"{spec.path}: models.{task}: no checkpoint and the zoo declares no 'checkpoints' source")
