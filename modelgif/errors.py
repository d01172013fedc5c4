"""What the library raises for bad input, how such an error reads as one line, and the
checks of an output path that can run before any long computation.

The contract with the stage commands (``stages/_cli.py``, ``clean_errors``):

- ``ValueError`` (and its subclass :class:`InputError`): a param, option or input file is not
  what it must be; the message names the problem.
- ``OSError``: the file system refused (missing file, permission denied, read-only file
  system, no space left on device, …); :func:`describe` names the path and the problem.

Everything else (``TypeError``, ``AttributeError``, ``RuntimeError``, …) is a programming
error and keeps its traceback.
"""

from __future__ import annotations

import errno as _errno
import numbers
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

__all__ = ["InputError", "MissingEntry", "USER_ERRORS", "available_memory", "check_memory", "check_output_dir",
           "check_output_file", "check_seed", "describe", "human_size"]


class InputError(ValueError):
    """Bad input: a param, option or file that is not what it must be (a ``ValueError``)."""


class MissingEntry(InputError, KeyError):
    """An input table lacks an entry that is asked for (also a ``KeyError``, as a mapping's miss)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


#: The exceptions that mean bad input or a refusing file system, never a bug.
USER_ERRORS = (ValueError, OSError)

# A temporary file of modelgif.io.atomic (also storage.FieldWriter's) beside <name>:
# ".<name>.<host>.<pid>.<random>.tmp" (modelgif.io.atomic.temp_name).
_TMP = re.compile(r"\.(?P<name>.+)\.[^./]+\.\d+\.[0-9a-f]+\.tmp")
# The same inside a message: a path component (after a separator or the start of a word).
_TMP_IN_TEXT = re.compile(r"(?<![^\s/'\"(\[=:,])\.(?P<name>[^\s/'\"]+?)\.[^\s./'\"]+\.\d+\.[0-9a-f]+\.tmp(?![\w.])")


def _shown(path: str | os.PathLike) -> str:
    """``path`` as the user knows it: a temporary file is shown as the output it was to become."""
    p = Path(os.fsdecode(path))
    m = _TMP.fullmatch(p.name)
    return str(p.with_name(m["name"]) if m else p)


def _untemp(text: str) -> str:
    """``text`` with every temporary file name in it shown as the output it was to become."""
    return _TMP_IN_TEXT.sub(lambda m: m["name"], text)


def describe(e: BaseException, outputs: Sequence[str | os.PathLike] = ()) -> str:
    """One line naming the problem of a :data:`USER_ERRORS` exception.

    An ``OSError`` raised by the operating system reads ``<path>: <problem>`` (e.g.
    ``data/affinity/distance.csv: no space left on device``; a temporary file is named as the
    output it was to become); when the system gave no path (a ``write`` that fails on a full
    disk), it reads ``<problem> while writing <outputs>``. Other errors read as their message.
    Temporary file names never appear: each reads as the output it was to become (in a path
    attribute and in a message's text alike); a message of several lines is folded into one.
    """
    return " ".join(_untemp(_describe(e, outputs)).split())


def _describe(e: BaseException, outputs: Sequence[str | os.PathLike]) -> str:
    if isinstance(e, OSError) and e.errno is not None and e.strerror:
        if e.filename is None and e.strerror != os.strerror(e.errno):
            return e.strerror  # the library's own message, naming its path
        problem = e.strerror[:1].lower() + e.strerror[1:]
        if e.filename is None:
            shown = [_shown(o) for o in outputs]
            return f"{problem} while writing {', '.join(shown)}" if shown else problem
        where = _shown(e.filename)
        if e.filename2 is not None:
            where += f" -> {_shown(e.filename2)}"
        return f"{where}: {problem}"
    if isinstance(e, KeyError) and not isinstance(e, MissingEntry) and e.args:
        return str(e.args[0])
    return str(e) or type(e).__name__


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_writable_folder(folder: Path, what: str) -> None:
    """``folder`` (which exists) must be a folder this process may create files in."""
    if not folder.is_dir():
        raise NotADirectoryError(_errno.ENOTDIR, f"cannot write {what}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        code = _errno.EROFS if read_only else _errno.EACCES
        raise PermissionError(code, f"cannot write {what}: {folder} is "
                              + ("on a read-only file system" if read_only else "not writable (permission denied)"))


def human_size(nbytes: int | float) -> str:
    """``nbytes`` for a person: ``512 B``, ``1.5 KiB``, … ``3.2 TiB``, ``12.0 PiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{int(nbytes)} B" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


_size = human_size


def check_output_file(path: str | os.PathLike, nbytes: int | None = None) -> Path:
    """Check, before computing anything, that a file can be written at ``path``.

    ``path`` must not be a folder; its nearest existing ancestor must be a writable folder
    (not a file, not on a read-only file system); with ``nbytes``, that file system must have
    that many bytes free. Creates nothing.

    Raises:
        InputError: ``path`` is a folder. OSError (NotADirectoryError, PermissionError):
            the folder cannot take the file; the message names both.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a folder; it must name a file")
    folder = _existing_ancestor(path.parent)
    _check_writable_folder(folder, str(path))
    if nbytes is not None:
        free = shutil.disk_usage(folder).free
        if free < nbytes:
            raise OSError(_errno.ENOSPC, f"cannot write {path}: it needs {_size(nbytes)} and {folder} has "
                          f"{_size(free)} free (no space left on device)")
    return path


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check, before computing anything, that files can be written into the folder ``path``
    (which may not exist yet): not a file, not under a file, writable. Creates nothing.

    Raises:
        OSError (NotADirectoryError, PermissionError), naming the path and the problem.
    """
    path = Path(path)
    _check_writable_folder(_existing_ancestor(path), f"into {path}")
    return path


def check_seed(value, param: str) -> int:
    """``value`` if it is a seed numpy and torch accept (an integer in [0, 2**32 - 1]), else an
    ``InputError`` naming the param (``field.seed``, ``bootstrap.seed``, …)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) < 2**32:
        raise InputError(f"{param} must be an integer from 0 to {2**32 - 1}, got {value!r}")
    return int(value)


def check_models(params, where: str = "params.yaml") -> list[str]:
    """The ``models`` list of a params mapping (the zoo's models to compare, one field each), as
    strings; ``InputError`` naming ``where`` unless it is a non-empty list of distinct names, and
    for a params file that still uses the key's old name, ``tasks``."""
    if "tasks" in params:
        raise InputError(f"{where}: 'tasks' is now called 'models' (the zoo's models to compare); rename the key, "
                         f"or pass -S 'models=[...]' instead of -S 'tasks=[...]'")
    models = params.get("models")
    if not models or not isinstance(models, list) or len(set(map(str, models))) != len(models):
        raise InputError(f"{where}: 'models' must be a non-empty list of distinct model names, got {models!r}")
    return [str(m) for m in models]


def _cgroup_limit() -> int | None:
    """The memory this process's cgroup may still take (v2 ``memory.max`` − ``memory.current``,
    or v1's limit − usage), or None where there is no limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 2**60:
            return None
        return max(0, int(limit) - usage)
    return None


def available_memory(device=None) -> int | None:
    """Bytes a new allocation may take on ``device`` (a torch device, or None for the host):
    for CUDA the device's free memory; for the host ``MemAvailable`` of ``/proc/meminfo``, or the
    cgroup's remaining limit if lower. None where it cannot be known."""
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        free = None
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    cgroup = _cgroup_limit()
    if cgroup is not None:
        free = cgroup if free is None else min(free, cgroup)
    return free


def check_memory(nbytes: int, what: str, advice: str = "", device=None) -> None:
    """Refuse, before any work, to hold ``nbytes`` in the memory of ``device`` (None: the host)
    when less is available (:func:`available_memory`).

    Raises:
        InputError: one line ``<what> needs <size> of memory and <where> has <size> available``
            and ``advice`` (e.g. which params to lower).
    """
    free = available_memory(device)
    if free is None or nbytes <= free:
        return
    where = f"{device}" if device is not None and getattr(device, "type", "cpu") != "cpu" else "this machine"
    raise InputError(f"{what} needs {human_size(nbytes)} of memory and {where} has {human_size(free)} available"
                     + (f"; {advice}" if advice else ""))
