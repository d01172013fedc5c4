"""How the field's passes run: arithmetic, batch size, host memory, writing while computing.

The method is :mod:`modelgif.field`; this module is the machinery around it, none of which
changes a field beyond floating-point rounding (except the opt-in precisions):

- :func:`precision_mode` — the arithmetic of the forward/backward passes (``float32``,
  ``tf32``, ``bf16``; see :mod:`modelgif.field`), global TF32 switches set and restored;
- :func:`default_batch_size`, :func:`auto_batch_size`, :func:`fit_batch_size` — path points
  per pass: on CUDA sized from the free memory (``torch.cuda.mem_get_info``) and the memory
  one probe pass takes per path point; :class:`PassSize` halves it when a pass runs out of
  memory (logged once) so the pass is retried instead of failing;
- :func:`keep_freed_cpu_memory` — a glibc ``mallopt`` setting for long CPU jobs;
- :func:`write_chunks` — chunks copied to the host on a side CUDA stream and written by a
  background thread while the next is computed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import queue
import threading
from collections.abc import Callable, Iterable

import torch

log = logging.getLogger("modelgif")

#: Path points per forward/backward pass when ``batch_size`` is not given (CPU).
DEFAULT_BATCH_SIZE = 128
#: The same on CUDA, and the most :func:`auto_batch_size` chooses: 20 images' 50 path points
#: per pass. A ResNet-50 encoder keeps about 30 MB of activations per path point at 128 px in
#: float32 (half in bf16), so about 30 GB: :func:`auto_batch_size` fits a smaller GPU.
DEFAULT_CUDA_BATCH_SIZE = 1024

#: Arithmetic of the forward/backward passes (see module doc).
PRECISIONS = ("float32", "tf32", "bf16")


def default_batch_size(device: torch.device | str) -> int:
    """Path points per pass when ``batch_size`` is None: 1024 on CUDA, 128 elsewhere."""
    return DEFAULT_CUDA_BATCH_SIZE if torch.device(device).type == "cuda" else DEFAULT_BATCH_SIZE


def check_precision(precision) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def precision_mode(precision: str, device: torch.device | str):
    """Run the enclosed passes in ``precision`` on ``device`` (see module doc).

    On CUDA, sets ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``
    to ``precision == "tf32"`` and restores both on exit; ``"bf16"`` enters ``torch.autocast``.
    Nothing global is touched on the CPU.
    """
    precision = check_precision(precision)
    device = torch.device(device)
    with contextlib.ExitStack() as stack:
        if device.type == "cuda":
            saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)

            def restore():
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

            stack.callback(restore)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        if precision == "bf16":
            stack.enter_context(torch.autocast(device_type=device.type, dtype=torch.bfloat16))
        yield


def keep_freed_cpu_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system (process-wide).

    A pass of 100 path points at 128 px allocates about 3 GB of activations in blocks of up
    to a few hundred MB. glibc serves blocks above 32 MB with ``mmap`` and unmaps them when
    freed, so every pass page-faults all of them in again: on the 2-core benchmark machine a
    third of the pass went to the kernel (26 path points/s instead of 39). This sets
    ``M_MMAP_MAX = 0`` (large blocks come from the heap) and ``M_TRIM_THRESHOLD = 2 GiB``
    (free heap memory is kept), so the buffers are reused. The price: the process keeps its
    peak memory until it exits. The field stage calls it when it runs on the CPU; call it
    yourself in a long CPU job. Returns False (and changes nothing) where libc has no
    ``mallopt`` (not glibc). Results are unaffected.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


#: Share of the free GPU memory a pass may take when its size is chosen from it.
CUDA_MEMORY_FRACTION = 0.8
#: Path points of the probe pass that measures memory per path point.
_PROBE_POINTS = 4


def fit_batch_size(free_bytes: int, bytes_per_point: float, n_steps: int, *,
                   cap: int = DEFAULT_CUDA_BATCH_SIZE, fraction: float = CUDA_MEMORY_FRACTION) -> int:
    """Path points per pass that fit ``fraction`` of ``free_bytes`` at ``bytes_per_point`` each:
    at most ``cap``, at least 1, a multiple of ``n_steps`` (whole images per pass) when one fits."""
    n = int(fraction * free_bytes // max(1.0, float(bytes_per_point)))
    n = max(1, min(int(cap), n))
    return n - n % n_steps if n >= n_steps else n


def auto_batch_size(model: torch.nn.Module, images: torch.Tensor, n_steps: int, precision: str = "float32") -> int:
    """Path points per pass for ``model`` on ``images``' device.

    On CUDA: one probe pass of a few path points measures the peak memory per point
    (``torch.cuda.max_memory_allocated``), and :func:`fit_batch_size` fits it into the free
    memory (``torch.cuda.mem_get_info``), at most :data:`DEFAULT_CUDA_BATCH_SIZE`. Elsewhere
    :data:`DEFAULT_BATCH_SIZE`. A size that proves too large is halved by the field itself.
    """
    device = images.device
    if device.type != "cuda":
        return DEFAULT_BATCH_SIZE
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    z = images[:1].expand(_PROBE_POINTS, *images.shape[1:]).clone()
    if precision != "float32":
        z = z.contiguous(memory_format=torch.channels_last)
    z.requires_grad_(True)
    with torch.enable_grad(), precision_mode(precision, device):
        (g,) = torch.autograd.grad(model(z).float().sum(), z)
    del g, z
    torch.cuda.synchronize(device)
    per_point = (torch.cuda.max_memory_allocated(device) - before) / _PROBE_POINTS
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return fit_batch_size(free, per_point, n_steps)


def is_out_of_memory(error: BaseException) -> bool:
    """True for an out-of-memory error of a pass (CUDA's, or a CPU allocator's)."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


class PassSize:
    """Path points per pass, halved on an out-of-memory error (logged once).

    Use::

        size = PassSize(batch_size)
        while b < total:
            try:
                run pass of points b … b + size.value − 1
            except Exception as e:
                size.shrink(e)   # re-raises what is not an OOM, or an OOM at 1 point
                continue
            b += size.value
    """

    def __init__(self, value: int):
        self.value = int(value)
        self.halvings = 0

    def shrink(self, error: BaseException) -> None:
        if not is_out_of_memory(error) or self.value <= 1:
            raise error
        old, self.value = self.value, max(1, self.value // 2)
        if self.halvings == 0:
            log.warning("out of memory at %d path points per pass; halving to %d and retrying "
                        "(set MODELGIF_BATCH_SIZE to choose the size)", old, self.value)
        self.halvings += 1
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _to_host(chunk, copy_stream):
    """Start copying a chunk to (pinned) host memory; returns (tensor, event or None)."""
    if not isinstance(chunk, torch.Tensor):
        return chunk, None
    chunk = chunk.detach()
    if chunk.device.type != "cuda":
        return chunk.cpu(), None
    host = torch.empty(chunk.shape, dtype=chunk.dtype, pin_memory=True)
    copy_stream.wait_stream(torch.cuda.current_stream(chunk.device))  # the chunk is finished first
    with torch.cuda.stream(copy_stream):
        host.copy_(chunk, non_blocking=True)
        chunk.record_stream(copy_stream)  # its memory is not reused before the copy is done
        done = torch.cuda.Event()
        done.record(copy_stream)
    return host, done


def write_chunks(
    chunks: Iterable[tuple[int, torch.Tensor]],
    write: Callable[[int, object], None],
    *,
    depth: int = 2,
    on_written: Callable[[int, int], None] | None = None,
) -> None:
    """Write ``(start, chunk)`` pairs (from :func:`iter_gradient_field`) while the next is computed.

    The calling thread keeps computing chunks; each finished chunk is copied to the host
    (on CUDA: into pinned memory, on a side stream, without waiting) and handed to one
    background thread, which waits for the copy and calls ``write(start, array)`` — e.g.
    :meth:`modelgif.io.storage.FieldWriter.write` — in the order the chunks came. At most
    ``depth`` chunks wait for the writer, which bounds host memory. ``on_written(start, m)``
    runs in the writer thread after each write (a progress bar, say).

    An error in ``write`` stops the computation at the next chunk and is raised here; an
    error while computing stops the writer after the chunks already handed over.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    pending: queue.Queue = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []
    stop = object()

    def writer_loop():
        while True:
            item = pending.get()
            if item is stop:
                return
            if failure:
                continue  # keep draining so the computing thread never blocks on a dead writer
            start, host, done = item
            try:
                if done is not None:
                    done.synchronize()
                array = host.numpy() if isinstance(host, torch.Tensor) else host
                write(start, array)
                if on_written is not None:
                    on_written(start, array.shape[0])
            except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                failure.append(e)

    copy_stream = None  # made for the first CUDA chunk, on its device
    thread = threading.Thread(target=writer_loop, name="modelgif-field-writer", daemon=True)
    thread.start()
    try:
        for start, chunk in chunks:
            if failure:
                break
            if isinstance(chunk, torch.Tensor) and chunk.device.type == "cuda" and \
                    (copy_stream is None or copy_stream.device != chunk.device):
                copy_stream = torch.cuda.Stream(chunk.device)
            pending.put((start, *_to_host(chunk, copy_stream)))
    finally:
        pending.put(stop)
        thread.join()
    if failure:
        raise failure[0]
