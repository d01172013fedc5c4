"""One field computed by several processes (GPUs, nodes) through PyTorch's own launcher.

Under ``torchrun`` (``torch.distributed.run``), every process reads ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` from its environment (:func:`world`), joins the process group (NCCL on
CUDA, gloo on the CPU: :func:`process_group`), takes a contiguous slice of the images
(:func:`shard`) and writes its rows into the one output file (:func:`write_sharded`):

1. rank 0 sweeps stale temporary files of the output and creates the temporary file, its
   space reserved for the whole field (:func:`modelgif.io.storage.allocate_field`), and sends
   its name to every rank (a shared filesystem across nodes);
2. each rank writes its images' rows into it (ordinary positioned writes, no overlap);
3. a barrier: when every rank has finished, rank 0 renames the file onto the output.

A rank that fails exits with its error; the launcher then stops the others (SIGTERM), and
rank 0's signal handler removes the temporary file (:mod:`modelgif.io.atomic`; after a SIGKILL
the next run sweeps it). So a failed run leaves nothing at the output path.

Every rank dies with its launcher (:func:`watch_launcher`, called by :func:`process_group`):
the kernel sends it SIGTERM when its parent exits (``PR_SET_PDEATHSIG``), and a watchdog
thread checks every :data:`LAUNCHER_POLL` seconds that the parent is still the launcher,
stopping the rank itself (SIGTERM, then after :data:`LAUNCHER_GRACE` seconds a hard exit,
its temporary files removed) should the signal not arrive or not be handled. Rank 0 checks
that the launcher is alive just before it renames the field into place, so a run whose
launcher was killed (even by SIGKILL) publishes nothing.

:func:`launch` is ``MODELGIF_NPROC=G``: the calling command relaunches itself through
``torch.distributed.run`` with G local processes and reports the first failing rank's
message (each rank records it in torchelastic's error file: :func:`record_failure`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from ..io import atomic as _atomic
from .execution import write_chunks
from ..io.storage import FieldWriter, allocate_field, commit_field

#: Environment variable: run the field stage on this many local processes (torch.distributed.run).
NPROC_ENV = "MODELGIF_NPROC"
#: How long a rank waits for the others at the final barrier (the slowest rank's remaining work).
BARRIER_TIMEOUT = datetime.timedelta(hours=24)
#: Environment variable :func:`launch` sets for its ranks: the launcher's process id.
LAUNCHER_PID_ENV = "MODELGIF_LAUNCHER_PID"
#: How often a rank's watchdog checks that its launcher is alive (seconds).
LAUNCHER_POLL = 0.5
#: How long a rank whose launcher died may take to stop on SIGTERM before it exits hard (seconds).
LAUNCHER_GRACE = 5.0

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_launcher: int | None = None  # the pid :func:`watch_launcher` watches (None: not watching)
_launcher_gone = threading.Event()


class LauncherGone(RuntimeError):
    """The process that launched this rank is gone: its run is abandoned, nothing is published."""


def _set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux
    ``prctl(PR_SET_PDEATHSIG)``); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def launcher_alive() -> bool:
    """False once the launcher this rank watches (:func:`watch_launcher`) has exited; True when
    not watching."""
    if _launcher is None:
        return True
    if _launcher_gone.is_set() or os.getppid() != _launcher:
        _launcher_gone.set()
        return False
    return True


def _stop_orphan() -> None:
    """The launcher is gone: SIGTERM this rank (its handlers remove its temporary files), and
    if it is still running after :data:`LAUNCHER_GRACE` seconds, remove them and exit hard."""
    with contextlib.suppress(Exception):  # the launcher's stderr may be a closed pipe now
        sys.stderr.write(f"rank {os.environ.get('RANK', '?')}: the launcher (pid {_launcher}) is gone; stopping\n")
        sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(LAUNCHER_GRACE)
    _atomic.remove_registered_temps()
    os._exit(128 + signal.SIGTERM)


def _watchdog() -> None:
    while launcher_alive():
        time.sleep(LAUNCHER_POLL)
    _stop_orphan()


def watch_launcher(launcher: int | None = None) -> int | None:
    """Make this process die with ``launcher`` (default: ``MODELGIF_LAUNCHER_PID``, set by
    :func:`launch`, else the parent process: torchrun's agent), its parent.

    Sets the parent-death signal to SIGTERM, then checks that the parent is still
    ``launcher`` (it may have died before the signal was set), and starts a daemon thread
    that stops the rank should the parent change later (module doc). A parent that is
    already gone stops the rank at once. Returns the launcher's pid; None (nothing done)
    outside a launched run (WORLD_SIZE 1) or when already watching.
    """
    global _launcher
    _, size, _ = world()
    if size == 1 or _launcher is not None:
        return None
    if launcher is None:
        value = os.environ.get(LAUNCHER_PID_ENV, "")
        launcher = int(value) if value.isdigit() else os.getppid()
        if launcher != os.getppid() and _atomic._alive(launcher):
            launcher = os.getppid()  # a stale value inherited from elsewhere: the parent is the launcher
    _set_parent_death_signal(signal.SIGTERM)
    _launcher = launcher
    threading.Thread(target=_watchdog, daemon=True, name="modelgif-launcher-watchdog").start()
    return launcher


def world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {e}") from None
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK {rank} outside WORLD_SIZE {size}")
    return rank, size, local


def shard(n_images: int, rank: int, world_size: int) -> tuple[int, int]:
    """Images ``lo … hi − 1`` of ``rank``: contiguous, in rank order, sizes differing by at most 1."""
    return n_images * rank // world_size, n_images * (rank + 1) // world_size


def rank_device(device: torch.device, local_rank: int, world_size: int) -> torch.device:
    """The device of a rank: ``cuda`` without an index becomes ``cuda:LOCAL_RANK`` when several
    processes run; anything else is kept."""
    if device.type == "cuda" and device.index is None and world_size > 1:
        return torch.device("cuda", local_rank)
    return device


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join torchrun's process group (NCCL on CUDA, gloo otherwise) for the block, the rank
    tied to its launcher's life (:func:`watch_launcher`); nothing when WORLD_SIZE is 1."""
    import torch.distributed as dist

    _, size, _ = world()
    if size == 1 or dist.is_initialized():
        yield
        return
    watch_launcher()  # a rank never outlives its launcher
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


class RankFailed(RuntimeError):
    """Another rank failed (its process stopped) before the output could be written."""


@contextlib.contextmanager
def _collective():
    """A collective whose peer died raises (gloo: "Connection closed by peer"): that is
    another rank's failure, which that rank reports."""
    try:
        yield
    except RankFailed:
        raise
    except RuntimeError as e:  # torch.distributed.DistError and gloo/NCCL errors
        raise RankFailed(f"another rank stopped: {str(e).strip().splitlines()[-1] if str(e).strip() else e}") from None


def _barrier() -> None:
    """A barrier waited for in short sleeps, so that signal handlers (SIGTERM: remove the
    temporary file) run meanwhile."""
    import torch.distributed as dist

    with _collective():
        work = dist.barrier(async_op=True)
        while not work.is_completed():
            time.sleep(0.05)
        work.wait()


def write_sharded(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    dtype: str,
    rows: tuple[int, int],
    chunks: Iterable[tuple[int, torch.Tensor]],
    *,
    on_written: Callable[[int, int], None] | None = None,
) -> Path:
    """Write this rank's rows of a field of ``shape`` (N, S, values) to ``path``.

    ``chunks`` yields ``(start, chunk)`` with ``start`` counted from ``rows[0]`` — what
    :func:`modelgif.field.gradients.iter_gradient_field` yields for the rank's slice of images. With
    one process this is :class:`FieldWriter` + :func:`write_chunks`. With several, see the
    module doc; returns ``path`` on every rank once rank 0 has renamed the file.
    """
    import torch.distributed as dist

    rank, size, _ = world()
    lo, hi = rows
    shifted = ((lo + start, chunk) for start, chunk in chunks)
    if size == 1 or not dist.is_initialized():
        with FieldWriter(path, *shape, dtype=dtype) as w:
            write_chunks(shifted, w.write, on_written=on_written)
        return Path(path)

    tmp = None
    committed = False
    try:
        if rank == 0:
            try:
                tmp = allocate_field(path, *shape, dtype)
                name = [str(tmp)]
            except BaseException:
                name = [None]
                with _collective():
                    dist.broadcast_object_list(name, src=0)
                raise
        else:
            name = [None]
        with _collective():
            dist.broadcast_object_list(name, src=0)
        if name[0] is None:
            raise RankFailed("rank 0 could not create the output file")
        writer = FieldWriter(path, *shape, dtype=dtype, tmp=name[0], rows=(lo, hi))
        try:
            write_chunks(shifted, writer.write, on_written=on_written)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        _barrier()  # every rank's rows are on disk
        if rank == 0:
            if not launcher_alive():  # the launcher was killed: its run is abandoned, publish nothing
                raise LauncherGone(f"the launcher (pid {_launcher}) is gone; {path} not written")
            commit_field(tmp, path)
            committed = True
        _barrier()  # the output exists before any rank reports success
    finally:
        if rank == 0 and tmp is not None and not committed:
            _atomic.discard_temp(tmp)
    return Path(path)


def record_failure(message: str) -> None:
    """Record this rank's one-line failure where torchelastic's launcher reads it
    (``TORCHELASTIC_ERROR_FILE``), so :func:`launch` can report it. Nothing outside torchrun."""
    file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not file:
        return
    with contextlib.suppress(OSError):
        Path(file).write_text(json.dumps({"message": message, "timestamp": int(time.time())}))


def nproc_from_env() -> int:
    """``MODELGIF_NPROC`` as a positive int, or 0 when unset (or when already under torchrun)."""
    value = os.environ.get(NPROC_ENV, "").strip()
    if not value or "WORLD_SIZE" in os.environ:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{NPROC_ENV} must be a positive integer (processes), got {value!r}")
    return int(value)


#: The message torchelastic gives a rank that it stopped (after another rank failed).
_TERMINATED = re.compile(r"Signal \d+ \(SIG\w+\) received by PID")


def launch(nproc: int, script: str, args: Sequence[str]) -> str | None:
    """Run ``python script *args`` in ``nproc`` local processes through ``torch.distributed.run``
    (as ``torchrun --standalone``: a free local port). Returns None on success, else the message of the
    first failing rank (``"rank r: message"``), or ``"stopped by SIGTERM"`` (SIGHUP, SIGINT) when
    this process was signalled: its ranks are then stopped too, and nothing is published."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if "OMP_NUM_THREADS" not in os.environ:  # torchrun would set 1; share the cores instead
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    # torchrun --standalone: a c10d rendezvous on a free local port
    parsed = torchrun.parse_args(["--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0", f"--rdzv-id={uuid.uuid4()}",
                                  f"--nproc-per-node={nproc}", "--max-restarts=0",
                                  "--no-python", sys.executable, script, *args])
    config, cmd, cmd_args = torchrun.config_from_args(parsed)
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())  # the ranks die with this process (watch_launcher)
    # the ranks' own messages are the report, not the agent's: its loggers (each with its own level) quiet
    quiet = [logging.getLogger("torch.distributed.elastic")]
    quiet += [logger for name, logger in logging.Logger.manager.loggerDict.items()
              if name.startswith("torch.distributed.elastic.") and isinstance(logger, logging.Logger)]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        from torch.distributed.launcher.api import elastic_launch

        elastic_launch(config=config, entrypoint=cmd)(*cmd_args)
    except SignalException as e:  # the agent has stopped the ranks (SIGTERM) before re-raising
        return f"stopped by {signal.Signals(e.sigval).name}"
    except ChildFailedError as e:
        failures = sorted(e.failures.items(), key=lambda kv: (kv[1].timestamp, kv[0]))
        own = [(r, f) for r, f in failures if isinstance(f.message, str) and f.error_file_data.get("message")]
        # A rank the launcher stopped because another failed reports the signal, often within the same
        # second (timestamps are whole seconds): the rank that failed on its own comes first.
        own.sort(key=lambda rf: _TERMINATED.match(rf[1].message) is not None)
        rank, failure = (own or failures)[0]
        message = failure.message if isinstance(failure.message, str) else json.dumps(failure.message)
        if not own:
            message = f"exit code {failure.exitcode} ({message})"
        return f"rank {rank}: {message}"
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return None
