"""Where a zoo's encoder checkpoint comes from: torch hub's folder, a URL, or a local folder.

A manifest (a path or a URL) is JSON ``{"source": ..., "encoders": {task: {"file": name,
"sha256": hex}}}``. :func:`fetch_checkpoint` takes a task's file from, in order:

1. torch hub's checkpoint folder (``torch.hub.get_dir()/checkpoints``, i.e.
   ``$TORCH_HOME/hub/checkpoints``), if it holds the file with the expected sha256 (Taskonomy
   only: the mini zoo is never there);
2. ``<base_url>/<file>``: downloaded (retried, bounded in time, sha256-checked,
   :func:`modelgif.download.download_file`), or copied with a sha256 check where ``base_url``
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

from ._atomic import atomic_path
from .download import ChecksumError, copy_verified, download_file, fetch_bytes, is_url
from .zoos import is_mini, load_zoo_encoder


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
    cached = None if is_mini(zoo) else hub_checkpoint_dir() / name
    what = "a mini-Taskonomy encoder" if is_mini(zoo) else f"a Taskonomy encoder for {task}"
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
