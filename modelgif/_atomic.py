"""Atomic output: write to a temporary file beside the destination, rename on success."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path beside ``dest``; on normal exit rename it onto ``dest``.

    On an exception the temporary file is removed and ``dest`` is left untouched, so a
    failed step never leaves a half-written file where a later step looks for a result.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)
