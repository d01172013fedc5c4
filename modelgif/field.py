"""ModelGiF gradient fields (Song et al., ICCV 2023; DESIGN §1.5).

For a model f, a reference image x with baseline x' and a target t (:mod:`modelgif.targets`),
the field at path step k is

    F[k] = mean over colour channels of ( (x − x') ⊙ Σ_{j ≤ k} w_j ∇_z t(z_j) ),
    z_j = x' + α_j (x − x'),

with nodes α and weights w of a quadrature rule (:mod:`modelgif.quadrature`), flattened
to H·W values. Its last step is the Integrated Gradients attribution of t (channel mean).
With ``cumulative=False`` the sum is replaced by its single term j = k.

Speed (``benchmarks/README.md`` has the numbers): path points of several images share one
forward/backward pass (``batch_size``); everything is computed on the images' device;
:func:`write_chunks` copies a finished chunk to the host and writes it in a background
thread while the next chunk is computed; on the CPU, :func:`keep_freed_cpu_memory` stops
glibc from unmapping and page-faulting the passes' activation buffers again every pass. ``precision`` trades float32 arithmetic for speed
only when asked:

- ``"float32"`` (default): IEEE float32 (or float64) throughout. On CUDA, TF32 is switched
  *off* for the call (PyTorch's default lets cuDNN convolutions use it), so a field does not
  depend on the GPU's defaults.
- ``"tf32"``: on CUDA, TF32 tensor cores for convolutions and matrix products; inputs in
  channels_last memory format. TF32 exists only on CUDA: on the CPU this is float32
  arithmetic in channels_last.
- ``"bf16"``: the model's forward and backward passes under ``torch.autocast`` with
  bfloat16 (CUDA or CPU), inputs in channels_last. Targets are still chosen in float32, and
  the weighting, cumulative sum and channel mean are done in float32.

The global TF32 switches are changed only around each pass and restored right after, even
on an error. On the CPU the default mode computes, bit for bit, what it computed before these
options existed; on CUDA it now computes true float32 where cuDNN's TF32 default applied before.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import torch

from .quadrature import check_method, nodes_and_weights
from .sketch import GaussianSketch, check_sketch_dim
from .targets import check_target, target_selector

#: Path points per forward/backward pass when ``batch_size`` is not given (CPU).
DEFAULT_BATCH_SIZE = 128
#: The same on CUDA: 20 images' 50 path points per pass. A ResNet-50 encoder keeps about
#: 30 MB of activations per path point at 128 px in float32 (half in bf16), so about 30 GB;
#: pass a smaller ``batch_size`` on a smaller GPU.
DEFAULT_CUDA_BATCH_SIZE = 1024

#: Images per forward pass when choosing targets; fixed, so targets never depend on batch_size.
_SELECTOR_BATCH = 32
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


def _check_inputs(model: torch.nn.Module, images: torch.Tensor, baselines: torch.Tensor) -> None:
    for name, t in (("images", images), ("baselines", baselines)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor (N, C, H, W); got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if images.shape != baselines.shape:
        raise ValueError(
            f"images and baselines must have the same shape; got {tuple(images.shape)} and {tuple(baselines.shape)}"
        )
    if images.dtype != baselines.dtype or images.device != baselines.device:
        raise ValueError(
            f"images and baselines must share dtype and device; got {images.dtype} on {images.device} "
            f"and {baselines.dtype} on {baselines.device}"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty (N = 0)")
    for name, t in (("images", images), ("baselines", baselines)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contain NaN or infinite values")
    if model.training:
        raise ValueError(
            "model is in training mode; call model.eval() first (batch statistics would make the field "
            "depend on the batch)"
        )


def _selectors(model: torch.nn.Module, images: torch.Tensor, target: int) -> torch.Tensor:
    """Target selectors M (N, C, h, w) at the path end points, in fixed groups of images."""
    with torch.no_grad(), precision_mode("float32", images.device):
        parts = [target_selector(model(images[i : i + _SELECTOR_BATCH]), target)
                 for i in range(0, images.shape[0], _SELECTOR_BATCH)]
    return torch.cat(parts)


def iter_gradient_field(
    model: torch.nn.Module,
    images: torch.Tensor,
    baselines: torch.Tensor,
    *,
    target: int = 1,
    n_steps: int = 50,
    method: str = "gausslegendre",
    cumulative: bool = True,
    batch_size: int | None = None,
    precision: str = "float32",
    sketch_dim: int = 0,
    sketch_seed: int = 0,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Compute a gradient field a few images at a time.

    Same arguments as :func:`gradient_field`. Yields ``(start, chunk)``: ``chunk`` has shape
    (m, n_steps, H·W) — (m, n_steps, sketch_dim) when sketched — and holds the field of
    images ``start … start + m − 1``, on the images' device; chunks come in order and cover
    every image once. Each chunk holds m = max(1, batch_size // n_steps) images, so peak
    memory is bounded by the batch, not by N.
    """
    _check_inputs(model, images, baselines)
    target = check_target(target)
    check_method(method)
    precision = check_precision(precision)
    if precision != "float32" and images.dtype != torch.float32:
        raise ValueError(f"precision {precision!r} needs float32 images, got {images.dtype}; "
                         "use precision='float32' for float64")
    alphas, weights = nodes_and_weights(method, n_steps)
    if batch_size is None:
        batch_size = default_batch_size(images.device)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (path points per pass), got {batch_size!r}")

    n, c, h, w = images.shape
    sketch = GaussianSketch(h * w, sketch_dim, sketch_seed) if check_sketch_dim(sketch_dim, h * w) else None
    s = int(n_steps)
    alpha = torch.as_tensor(alphas, dtype=images.dtype, device=images.device)
    weight = torch.as_tensor(weights, dtype=images.dtype, device=images.device)
    selectors = _selectors(model, images, target)
    per_chunk = max(1, batch_size // s)
    channels_last = precision != "float32"

    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        m = stop - start
        x, xb = images[start:stop], baselines[start:stop]
        delta = x - xb  # (m, c, h, w)
        # Every path point of the chunk, image-major: point p = i * S + k.
        z_all = (xb[:, None] + alpha.view(1, s, 1, 1, 1) * delta[:, None]).reshape(m * s, c, h, w)
        sel_all = selectors[start:stop].repeat_interleave(s, dim=0)
        grads = torch.empty_like(z_all)
        for b in range(0, m * s, batch_size):
            z = z_all[b : b + batch_size]
            if channels_last:
                z = z.contiguous(memory_format=torch.channels_last)
            z = z.detach().requires_grad_(True)
            with torch.enable_grad(), precision_mode(precision, images.device):
                t = (model(z).float() if precision == "bf16" else model(z)) * sel_all[b : b + batch_size]
                (grads[b : b + batch_size],) = torch.autograd.grad(t.sum(), z)
        with precision_mode("float32", images.device):
            grads = grads.view(m, s, c, h, w) * weight.view(1, s, 1, 1, 1)
            if cumulative:
                grads = grads.cumsum(dim=1)
            chunk = (delta[:, None] * grads).mean(dim=2).reshape(m, s, h * w)
            if sketch is not None:
                chunk = sketch(chunk)
        yield start, chunk


def gradient_field(
    model: torch.nn.Module,
    images: torch.Tensor,
    baselines: torch.Tensor,
    *,
    target: int = 1,
    n_steps: int = 50,
    method: str = "gausslegendre",
    cumulative: bool = True,
    batch_size: int | None = None,
    progress: bool = False,
    precision: str = "float32",
    sketch_dim: int = 0,
    sketch_seed: int = 0,
) -> torch.Tensor:
    """The ModelGiF gradient field of ``model`` over a reference set.

    Args:
        model: maps (B, 3, H, W) images to (B, C, h, w) outputs; in eval mode. Its parameters'
            gradients are never computed.
        images: reference images x, (N, 3, H, W), values in [-1, 1], float32 or float64.
        baselines: x', same shape, dtype and device (:func:`modelgif.baselines.make_baselines`).
        target: 1, 5 or 6 (:mod:`modelgif.targets`), chosen at x and fixed along the path.
        n_steps: S, quadrature nodes on the path.
        method: quadrature rule (:data:`modelgif.quadrature.METHODS`).
        cumulative: field step k sums the weighted gradients of steps 1..k (True) or is step k's
            alone (False).
        batch_size: path points per forward/backward pass (default :func:`default_batch_size`:
            128 on the CPU, 1024 on CUDA); path points of several images share a pass. Does not
            change the result beyond floating-point rounding.
        progress: show a progress bar.
        precision: arithmetic of the passes, one of :data:`PRECISIONS` (module doc):
            ``"float32"`` (default, exact float32/float64), or the opt-in ``"tf32"`` (CUDA) and
            ``"bf16"`` (CUDA or CPU), which need float32 images and change the field slightly.
        sketch_dim: 0 (default) for the exact field; d > 0 stores every (image, step) row
            projected by the seeded Gaussian sketch of :mod:`modelgif.sketch` to d < H·W values.
        sketch_seed: seed of the sketch's projection; fields to be compared must share it.

    Returns:
        F, shape (N, S, H·W) — (N, S, sketch_dim) when sketched — same dtype and device as
        ``images``; units of t (output units), per pixel. ``F[:, -1].sum(-1) * 3``
        approximates ``t(x) − t(x')`` (completeness; exact fields only).
    """
    _check_inputs(model, images, baselines)
    n = images.shape[0]
    out = None
    chunks = iter_gradient_field(model, images, baselines, target=target, n_steps=n_steps, method=method,
                                 cumulative=cumulative, batch_size=batch_size, precision=precision,
                                 sketch_dim=sketch_dim, sketch_seed=sketch_seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="img", desc="gradient field")
    for start, chunk in chunks:
        if out is None:
            out = torch.empty((n, *chunk.shape[1:]), dtype=images.dtype, device=images.device)
        out[start : start + chunk.shape[0]] = chunk
        if bar is not None:
            bar.update(chunk.shape[0])
    if bar is not None:
        bar.close()
    return out


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
    :meth:`modelgif.storage.FieldWriter.write` — in the order the chunks came. At most
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
