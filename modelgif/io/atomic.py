"""Atomic output: write to a temporary file beside the destination, rename on success.

A temporary file is named ``.<dest name>.<host>.<pid>.<random>.tmp``: hidden, ignored by DVC
(``.dvcignore``: ``.*.tmp``), and naming the process that owns it. Nothing it leaves behind
can be taken for a result:

- an exception, or a failed rename, removes it (``finally``);
- SIGTERM or SIGHUP removes every temporary file of the process before it exits
  (:func:`register_temp` installs the handler; exit status 128 + signal number);
- SIGKILL cannot be caught: the next writer of the same destination removes the temporary
  files of that destination whose owner, on this host, is no longer alive
  (:func:`sweep_stale_temps`), and :func:`sweep_stale_tree` removes those of a whole folder
  tree (``tools/run.py`` sweeps ``data/`` and ``metrics/`` before and after DVC runs, so a
  temporary file whose destination is never written again — the run cache restored it — does
  not stay). A live concurrent writer's temporary file is never touched.

Temporary files are created with mode ``0o666`` minus the user's umask, so the renamed
output has the permissions an ordinary ``open()`` would give it (``tempfile.mkstemp``
gives 0600).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import threading
from pathlib import Path

_SUFFIX = ".tmp"
_LIVE: set[Path] = set()
_LOCK = threading.Lock()
_HANDLED: dict[int, object] = {}
_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("/", "_") or "host"


def temp_name(dest: str | os.PathLike, pid: int | None = None) -> Path:
    """A fresh temporary path beside ``dest``: ``.<name>.<host>.<pid>.<random>.tmp``."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}.{_host()}.{pid or os.getpid()}.{secrets.token_hex(4)}{_SUFFIX}"


def _owner(tmp: Path, dest_name: str) -> tuple[str, int] | None:
    """(host, pid) of a temporary file of ``dest_name``, or None if it is not one."""
    name = tmp.name
    prefix = f".{dest_name}."
    if not (name.startswith(prefix) and name.endswith(_SUFFIX)):
        return None
    parts = name[len(prefix) : -len(_SUFFIX)].split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def parse_temp_name(name: str) -> tuple[str, str, int] | None:
    """(destination name, host, pid) of a temporary file's name (:func:`temp_name`), or None
    if ``name`` is not one."""
    if not (name.startswith(".") and name.endswith(_SUFFIX)):
        return None
    parts = name[1 : -len(_SUFFIX)].rsplit(".", 3)
    if len(parts) != 4 or not parts[0] or not parts[1] or not parts[2].isdigit():
        return None
    if len(parts[3]) != 8 or any(c not in "0123456789abcdef" for c in parts[3]):
        return None
    return parts[0], parts[1], int(parts[2])


def is_stale(name: str) -> bool:
    """Whether ``name`` is a temporary file's name whose owner, on this host, is no longer alive
    (one of another host, or of a live process, is not stale: it may still be written)."""
    owner = parse_temp_name(name)
    return owner is not None and owner[1] == _host() and owner[2] != os.getpid() and not _alive(owner[2])


def sweep_stale_tree(root: str | os.PathLike) -> list[tuple[Path, int]]:
    """Remove every stale temporary file (:func:`is_stale`: of a dead process of this host)
    anywhere under ``root``; return ``[(path, size in bytes)]`` of those removed.

    For a tree no writer may visit again (an output the run cache restored instead of
    rewriting it). Symbolic links are neither followed nor removed; a missing ``root`` is
    nothing to sweep. Stages may call it on their output folder at start.
    """
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in files:
            if not is_stale(name):
                continue
            path = Path(folder) / name
            try:
                if path.is_symlink():
                    continue
                size = path.stat().st_size
                path.unlink()
            except OSError:  # gone meanwhile, or not ours to remove
                continue
            removed.append((path, size))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(dest: str | os.PathLike) -> list[Path]:
    """Remove temporary files of ``dest`` left by dead processes of this host; return them.

    Those of live processes (a concurrent writer) and of other hosts (a shared filesystem:
    their liveness cannot be checked from here) are kept.
    """
    dest = Path(dest)
    removed = []
    if not dest.parent.is_dir():
        return removed
    host = _host()
    for tmp in dest.parent.glob(f".{dest.name}.*{_SUFFIX}"):
        owner = _owner(tmp, dest.name)
        if owner is None or owner[0] != host or owner[1] == os.getpid() and tmp in _LIVE or _alive(owner[1]):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _on_signal(signum, frame):
    remove_registered_temps()
    previous = _HANDLED.get(signum)
    if callable(previous):
        previous(signum, frame)
    raise SystemExit(128 + signum)


def remove_registered_temps() -> None:
    """Remove every temporary file this process registered (:func:`register_temp`)."""
    with _LOCK:
        live = list(_LIVE)
    for tmp in live:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _install_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _SIGNALS:
        if sig in _HANDLED:
            continue
        try:
            _HANDLED[sig] = signal.getsignal(sig)
            signal.signal(sig, _on_signal)
        except (ValueError, OSError):  # not the main interpreter
            _HANDLED.pop(sig, None)


def register_temp(tmp: str | os.PathLike) -> Path:
    """Have SIGTERM/SIGHUP remove ``tmp`` (until :func:`unregister_temp`)."""
    tmp = Path(tmp)
    _install_handlers()
    with _LOCK:
        _LIVE.add(tmp)
    return tmp


def unregister_temp(tmp: str | os.PathLike) -> None:
    with _LOCK:
        _LIVE.discard(Path(tmp))


def create_temp(dest: str | os.PathLike) -> Path:
    """Create an empty temporary file beside ``dest`` (mode 0o666 minus the umask), sweep
    stale ones of ``dest`` first, and register it for removal on SIGTERM/SIGHUP."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(dest)
    while True:
        tmp = temp_name(dest)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return register_temp(tmp)


def discard_temp(tmp: str | os.PathLike) -> None:
    """Remove a temporary file (if still there) and forget it."""
    tmp = Path(tmp)
    tmp.unlink(missing_ok=True)
    unregister_temp(tmp)


def commit_temp(tmp: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Rename ``tmp`` onto ``dest`` atomically; on failure ``tmp`` is removed and the error raised."""
    try:
        os.replace(tmp, dest)
    finally:
        discard_temp(tmp)
    return Path(dest)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path beside ``dest``; on normal exit rename it onto ``dest``.

    On an exception (or a failed rename) the temporary file is removed and ``dest`` is left
    untouched, so a failed step never leaves a half-written file where a later step looks
    for a result. See the module doc for signals and permissions.
    """
    tmp = create_temp(dest)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        discard_temp(tmp)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def save_npy(dest: str | os.PathLike, array) -> Path:
    """Write ``array`` to ``dest`` as ``.npy`` atomically (``np.save``'s bytes, no pickle)."""
    import numpy as np

    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
    return Path(dest)
