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
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

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


def encode(values: np.ndarray, dtype: str = "float16") -> np.ndarray:
    """Rows (m, S, H·W) of field values in storage form (see module doc)."""
    values = np.asarray(values)
    out = np.empty(values.shape[:2], dtype=storage_dtype(values.shape[2], dtype))
    if dtype == "float32":
        return values.astype(np.float32).reshape(out.shape + (values.shape[2],))
    v = values.astype(np.float64)
    norm = np.sqrt(np.einsum("...i,...i->...", v, v))
    safe = np.where(norm > 0, norm, 1.0)
    out["norm"] = norm
    out["unit"] = v / safe[..., None]
    return out


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


class FieldWriter:
    """Writes a field of known shape to ``path`` chunk by chunk, atomically.

    Data go to a temporary file beside ``path``, renamed onto it only when every image has
    been written and :meth:`close` (or leaving the ``with`` block normally) runs. An error,
    a missing chunk or a NaN removes the temporary file, so no half-written field is ever
    found at ``path``.

    Example::

        with FieldWriter("data/fields/normal.npy", n_images=N, n_steps=S, n_pixels=H * W) as w:
            for start, chunk in iter_gradient_field(...):
                w.write(start, chunk)
    """

    def __init__(self, path, n_images: int, n_steps: int, n_pixels: int, dtype: str = "float16"):
        self.path = Path(path)
        self.dtype = dtype
        self.shape = (int(n_images), int(n_steps), int(n_pixels))
        np_dtype = storage_dtype(n_pixels, dtype)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        shape = self.shape if dtype == "float32" else self.shape[:2]
        self._array = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np_dtype, shape=shape)
        self._next = 0

    def write(self, start: int, chunk) -> None:
        """Store the field of images ``start … start + m − 1``; ``chunk`` is (m, S, H·W)."""
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().cpu().numpy()
        chunk = np.asarray(chunk)
        if start != self._next:
            raise ValueError(f"chunks must be written in order: expected image {self._next}, got {start}")
        if chunk.ndim != 3 or chunk.shape[1:] != self.shape[1:] or start + chunk.shape[0] > self.shape[0]:
            raise ValueError(f"chunk of shape {chunk.shape} at image {start} does not fit a field of shape {self.shape}")
        if not np.isfinite(chunk).all():
            raise ValueError(f"field of images {start}..{start + chunk.shape[0] - 1} has NaN or infinite values")
        self._array[start : start + chunk.shape[0]] = encode(chunk, self.dtype)
        self._next = start + chunk.shape[0]

    def close(self) -> Path:
        """Flush and move the finished field onto ``path``; returns ``path``."""
        if self._next != self.shape[0]:
            self.abort()
            raise ValueError(f"field incomplete: {self._next} of {self.shape[0]} images written; nothing saved")
        self._array.flush()
        del self._array
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written; ``path`` is left untouched."""
        self.__dict__.pop("_array", None)
        self._tmp.unlink(missing_ok=True)

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
