"""Field storage: ``.npy`` files written chunk by chunk, read back as memory maps.

Two storage dtypes:

- ``float32``: a plain (N, S, H·W) float32 array.
- ``float16`` (default, half the size): a structured (N, S) array whose record per
  (image, step) row is ``norm`` (float32, the row's L2 norm) and ``unit`` (float16, (H·W,),
  the row divided by its norm). Gradient values can lie far below float16's smallest normal
  number (6e-5); unit rows do not, so nothing underflows and every row keeps float16's
  relative precision (≈ 5e-4 per value) whatever its scale. Cosine needs only ``unit``,
  Euclidean both.

Either kind is one ordinary ``.npy`` file: ``numpy.load(path, mmap_mode="r")`` opens it and
:func:`decode` turns any slice of it into float values.

The stages' other intermediates are read here too, each refused in one line naming the file and
what is wrong with it (a damaged header, an ``.npz`` or pickled objects where a ``.npy`` belongs, a
JSON record that is not an object or lacks keys): :func:`npy_header`, :func:`load_array`,
:func:`read_json_record`.
"""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import atomic as _atomic
from ..errors import InputError

STORAGE_DTYPES = ("float16", "float32")


def storage_dtype(n_pixels: int, dtype: str = "float16") -> np.dtype:
    """The numpy dtype of one (image, step) element of a stored field (see module doc)."""
    if dtype == "float32":
        return np.dtype("<f4")
    if dtype == "float16":
        return np.dtype([("norm", "<f4"), ("unit", "<f2", (int(n_pixels),))])
    raise ValueError(f"unknown field storage dtype {dtype!r}; valid: {', '.join(STORAGE_DTYPES)}")


def field_shape(field: np.ndarray) -> tuple[int, int, int]:
    """(N, S, H·W) of a field array in either storage (or a plain float array)."""
    if field.dtype.names:
        if set(field.dtype.names) != {"norm", "unit"} or field.ndim != 2:
            raise ValueError(f"not a ModelGiF field: structured dtype {field.dtype} of shape {field.shape}")
        return (*field.shape, field.dtype["unit"].shape[0])
    if field.ndim != 3:
        raise ValueError(f"a field must have shape (N, S, H*W); got shape {field.shape}")
    return field.shape


def decode(block: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Values of a slice of a stored field, shape (m, S, H·W), as ``dtype``."""
    if block.dtype.names:
        return block["unit"].astype(dtype) * block["norm"].astype(dtype)[..., None]
    return np.asarray(block, dtype=dtype)


#: Bound on the float64 working copy of one slice while encoding (bytes).
ENCODE_SLICE_BYTES = 64 * 2**20


def _image_slices(n_images: int, values_per_image: int, itemsize: int = 8):
    """Ranges of images whose ``values_per_image · itemsize`` bytes stay under ENCODE_SLICE_BYTES."""
    step = max(1, ENCODE_SLICE_BYTES // max(1, values_per_image * itemsize))
    for lo in range(0, n_images, step):
        yield lo, min(n_images, lo + step)


def _encode_into(out: np.ndarray, values: np.ndarray) -> None:
    """Encode float rows ``values`` (m, S, H·W) into structured float16 storage ``out`` (m, S)."""
    v = values.astype(np.float64)
    norm = np.sqrt(np.einsum("...i,...i->...", v, v))
    safe = np.where(norm > 0, norm, 1.0)
    out["norm"] = norm
    v /= safe[..., None]
    out["unit"] = v


def encode(values: np.ndarray, dtype: str = "float16") -> np.ndarray:
    """Rows (m, S, H·W) of field values in storage form (see module doc).

    Encodes a few images at a time, so its float64 working memory is bounded by
    :data:`ENCODE_SLICE_BYTES` whatever m (a float32 input is returned without a copy for
    ``dtype="float32"``).
    """
    values = np.asarray(values)
    np_dtype = storage_dtype(values.shape[2], dtype)
    if dtype == "float32":
        return np.asarray(values, dtype=np.float32)
    out = np.empty(values.shape[:2], dtype=np_dtype)
    for lo, hi in _image_slices(values.shape[0], values.shape[1] * values.shape[2]):
        _encode_into(out[lo:hi], values[lo:hi])
    return out


def npy_header(path: str | os.PathLike, what: str = ".npy array") -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` of the ``.npy`` file at ``path``, from its header alone (no data read,
    so a huge array costs nothing to inspect).

    Raises:
        FileNotFoundError: no file. InputError: an ``.npz`` archive, or not a readable ``.npy``
            header (damaged, truncated); the message names ``path`` and ``what`` it should be.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"no {what} at {path}")
    with open(path, "rb") as f:
        if zipfile.is_zipfile(f):
            raise InputError(f"{path} is an .npz archive, not a .npy file ({what})")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy format version {version}")
            shape, _, dtype = read(f)  # 3.0 differs from 2.0 in the header's encoding only (utf-8: read the same)
        except Exception as e:  # noqa: BLE001 - numpy raises ValueError, EOFError, SyntaxError, ... for bad headers
            raise InputError(f"{path} is not a readable .npy file ({what}): damaged header: "
                             f"{' '.join(str(e).split())[:160]}") from None
    return tuple(shape), dtype


def reference_shape(path: str | os.PathLike) -> tuple[int, int, int, int]:
    """``(N, 3, H, W)`` of a reference set ``images.npy`` from its header alone (no pixel read):
    what a stage's memory and disk are estimated from, before any work."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"no reference images at {path} (run the fetch_reference stage)")
    if zipfile.is_zipfile(path):  # worded as modelgif.reference.load_reference_images words it
        raise InputError(f"{path} is an .npz archive, not a .npy array of images")
    shape, dtype = npy_header(path, "reference image set")
    if dtype != np.uint8 or len(shape) != 4 or shape[1] != 3:
        raise InputError(f"{path} holds {dtype} {shape}; expected uint8 (N, 3, H, W)")
    return shape


def load_array(path: str | os.PathLike, what: str = ".npy array", *, ndim: int | None = None,
               mmap: bool = False) -> np.ndarray:
    """The plain ``.npy`` array at ``path`` (never unpickled), whole or (``mmap``) memory-mapped.

    Raises:
        FileNotFoundError: no file. InputError: one line naming ``path``, ``what`` it should be
            and the problem: an ``.npz`` archive, a damaged or truncated file, pickled objects, a
            structured dtype, or not ``ndim`` dimensions.
    """
    path = Path(path)
    shape, dtype = npy_header(path, what)
    if dtype.hasobject or dtype.names:
        raise InputError(f"{path} holds {'pickled objects' if dtype.hasobject else f'records {dtype}'}, "
                         f"not numbers ({what})")
    if ndim is not None and len(shape) != ndim:
        raise InputError(f"{path} holds an array of shape {shape}, not of {ndim} dimensions ({what})")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # e.g. data shorter than the header says
        raise InputError(f"{path} is not a readable .npy file ({what}): {' '.join(str(e).split())}") from None
    return arr


def read_json_record(path: str | os.PathLike, what: str, keys: Sequence[str] = (),
                     advice: str = "rerun the stage that writes it") -> dict:
    """The JSON object at ``path`` that must hold ``keys`` (a stage's ``meta.json``, a features
    record).

    Raises:
        FileNotFoundError: no file. InputError: one line naming ``path`` and ``what`` it should
            be: not UTF-8 JSON, not an object (a list, a number), or lacking some of ``keys``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"no {what} at {path}; {advice}")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} is not readable JSON ({what}): {e}; {advice}") from None
    if not isinstance(record, dict):
        raise InputError(f"{path} holds a JSON {type(record).__name__}, not the object a {what} is; {advice}")
    missing = [k for k in keys if k not in record]
    if missing:
        raise InputError(f"{path} ({what}) lacks {', '.join(missing)}; {advice}")
    return record


def open_field(path: str | os.PathLike) -> np.ndarray:
    """A stored field as a read-only memory map; checks that it is a field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no field file at {path}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path} is not a readable .npy field: {e}") from e
    if not isinstance(arr, np.ndarray):  # np.load opens an .npz archive as a mapping
        arr.close()
        raise ValueError(f"{path} is an .npz archive, not a .npy field")
    field_shape(arr)
    return arr


def _npy_header(shape: tuple[int, ...], np_dtype: np.dtype) -> bytes:
    """The ``.npy`` (version 1.0) header of a C-ordered array; data follow it directly."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np_dtype), "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _layout(n_images: int, n_steps: int, n_pixels: int, dtype: str):
    """(numpy dtype, array shape, header bytes, bytes per image) of a stored field."""
    np_dtype = storage_dtype(n_pixels, dtype)
    shape = (n_images, n_steps, n_pixels) if dtype == "float32" else (n_images, n_steps)
    per_image = int(np.prod(shape[1:], dtype=np.int64)) * np_dtype.itemsize
    return np_dtype, shape, _npy_header(shape, np_dtype), per_image


def field_nbytes(n_images: int, n_steps: int, n_pixels: int, dtype: str = "float16") -> int:
    """Bytes of the ``.npy`` file of a stored field of (N, S, H·W) values (header included)."""
    _, _, header, per_image = _layout(int(n_images), int(n_steps), int(n_pixels), dtype)
    return len(header) + int(n_images) * per_image


def allocate_field(path, n_images: int, n_steps: int, n_pixels: int, dtype: str = "float16") -> Path:
    """Create the temporary file of a field to be written at ``path``: the ``.npy`` header and
    the space of every value, reserved on disk now (``posix_fallocate``), so that a full disk
    fails here with "no space left on device" instead of a SIGBUS or a short file later.

    Returns the temporary path (beside ``path``, see :mod:`modelgif.io.atomic`: removed on
    SIGTERM, swept by the next writer after SIGKILL). :class:`FieldWriter` writes into it;
    several writers (one per process) may write disjoint images of it.
    """
    path = Path(path)
    _, _, header, per_image = _layout(int(n_images), int(n_steps), int(n_pixels), dtype)
    total = len(header) + int(n_images) * per_image
    tmp = _atomic.create_temp(path)
    try:
        fd = os.open(tmp, os.O_WRONLY)
        try:
            try:
                os.posix_fallocate(fd, 0, total)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise OSError(errno.ENOSPC, f"no space left on device: a field of {total / 2**20:.1f} MiB "
                                                f"does not fit beside {path}") from None
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                os.ftruncate(fd, total)  # a filesystem without fallocate
            os.pwrite(fd, header, 0)
        finally:
            os.close(fd)
    except BaseException:
        _atomic.discard_temp(tmp)
        raise
    return tmp


def commit_field(tmp, path) -> Path:
    """Rename a finished temporary field onto ``path`` atomically (on failure, remove it)."""
    return _atomic.commit_temp(tmp, path)


class FieldWriter:
    """Writes a field of known shape to ``path`` chunk by chunk, atomically.

    Data go to a temporary file beside ``path`` (:func:`allocate_field`: its space reserved
    up front), written with ordinary file writes (so the process's resident memory does not
    grow with the field), renamed onto ``path`` only when every image has been written and
    :meth:`close` (or leaving the ``with`` block normally) runs. An error, a missing chunk or
    a NaN removes the temporary file, so no half-written field is ever found at ``path``.

    Sharded writing (several processes, one file): one process calls :func:`allocate_field`;
    each process opens a writer with ``tmp=`` that file and ``rows=(lo, hi)``, its images;
    its :meth:`close` only flushes; the allocating process then calls :func:`commit_field`.

    Example::

        with FieldWriter("data/fields/normal.npy", n_images=N, n_steps=S, n_pixels=H * W) as w:
            for start, chunk in iter_gradient_field(...):
                w.write(start, chunk)
    """

    def __init__(self, path, n_images: int, n_steps: int, n_pixels: int, dtype: str = "float16", *,
                 tmp=None, rows: tuple[int, int] | None = None):
        self.path = Path(path)
        self.dtype = dtype
        self.shape = (int(n_images), int(n_steps), int(n_pixels))
        self._np_dtype, _, header, self._per_image = _layout(*self.shape, dtype)
        self._offset = len(header)
        lo, hi = rows if rows is not None else (0, self.shape[0])
        if not 0 <= lo <= hi <= self.shape[0]:
            raise ValueError(f"rows {rows} outside a field of {self.shape[0]} images")
        self.rows = (int(lo), int(hi))
        self._owner = tmp is None
        self._tmp = allocate_field(self.path, *self.shape, dtype) if tmp is None else Path(tmp)
        try:
            self._fd = os.open(self._tmp, os.O_WRONLY)
        except BaseException:
            if self._owner:
                _atomic.discard_temp(self._tmp)
            raise
        self._next = self.rows[0]

    @property
    def tmp(self) -> Path:
        """The temporary file being written."""
        return self._tmp

    def _pwrite(self, data: memoryview, offset: int) -> None:
        while len(data):
            n = os.pwrite(self._fd, data, offset)
            data, offset = data[n:], offset + n

    def write(self, start: int, chunk) -> None:
        """Store the field of images ``start … start + m − 1``; ``chunk`` is (m, S, H·W)."""
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().cpu().numpy()
        chunk = np.asarray(chunk)
        if start != self._next:
            raise ValueError(f"chunks must be written in order: expected image {self._next}, got {start}")
        if chunk.ndim != 3 or chunk.shape[1:] != self.shape[1:] or start + chunk.shape[0] > self.rows[1]:
            raise ValueError(f"chunk of shape {chunk.shape} at image {start} does not fit a field of shape "
                             f"{self.shape}" + (f" (rows {self.rows[0]}..{self.rows[1] - 1})" if
                                                 self.rows != (0, self.shape[0]) else ""))
        m = chunk.shape[0]
        for lo, hi in _image_slices(m, self.shape[1] * self.shape[2]):
            part = chunk[lo:hi]
            if not np.isfinite(part).all():
                raise ValueError(f"field of images {start}..{start + m - 1} has NaN or infinite values")
            data = np.ascontiguousarray(encode(part, self.dtype), dtype=self._np_dtype)
            self._pwrite(memoryview(data).cast("B"), self._offset + (start + lo) * self._per_image)
        self._next = start + m

    def close(self) -> Path:
        """Flush and move the finished field onto ``path``; returns ``path``. A writer of
        shared rows (``tmp=`` given) only flushes its rows and returns the temporary path."""
        if self._next != self.rows[1]:
            done, todo = self._next - self.rows[0], self.rows[1] - self.rows[0]
            self.abort()
            raise ValueError(f"field incomplete: {done} of {todo} images written; nothing saved")
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if not self._owner:
            return self._tmp
        return commit_field(self._tmp, self.path)

    def abort(self) -> None:
        """Discard everything written; ``path`` is left untouched (a shared file is left to its
        allocating process)."""
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)
        if self._owner:
            _atomic.discard_temp(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def save_field(path, field, dtype: str = "float16") -> Path:
    """Write a whole (N, S, H·W) field (array or tensor) to ``path`` atomically."""
    if hasattr(field, "detach"):
        field = field.detach().cpu().numpy()
    with FieldWriter(path, *field.shape, dtype=dtype) as w:
        w.write(0, field)
    return Path(path)


def load_field(path, dtype=np.float32) -> np.ndarray:
    """A stored field decoded whole into memory, (N, S, H·W)."""
    return decode(open_field(path), dtype)
