"""A reference set on disk: ``images.npy``, ``manifest.json``, ``contact_sheet.png``; and reading it back."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from typing import TYPE_CHECKING

from ..io.atomic import atomic_path

if TYPE_CHECKING:  # a type only: reading images.npy needs none of the builder's code
    from .build import ReferenceSet


def contact_sheet(images: np.ndarray, n: int = 16, columns: int | None = None) -> Image.Image:
    """A grid of the first ``n`` images (uint8 (N, 3, H, W)), row by row, as one RGB image."""
    images = images[:n]
    k, _, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(k))
    rows = math.ceil(k / columns)
    sheet = Image.new("RGB", (columns * w, rows * h))
    for i, image in enumerate(images):
        sheet.paste(Image.fromarray(image.transpose(1, 2, 0)), ((i % columns) * w, (i // columns) * h))
    return sheet


def write_contact_sheet(images: np.ndarray, dest: str | os.PathLike, n: int = 16) -> Path:
    """Write :func:`contact_sheet` of ``images`` to ``dest`` as PNG, atomically."""
    with atomic_path(dest) as tmp:
        contact_sheet(images, n).save(tmp, format="PNG")
    return Path(dest)


def write_reference_set(ref: ReferenceSet, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``images.npy``, ``manifest.json`` and ``contact_sheet.png`` into ``out_dir``.

    Everything is encoded in memory first, then each file is written to a temporary name
    and renamed, so a failure leaves no half-written file.
    """
    out = Path(out_dir)
    npy, sheet = io.BytesIO(), io.BytesIO()
    np.save(npy, np.ascontiguousarray(ref.images, dtype=np.uint8), allow_pickle=False)
    contact_sheet(ref.images).save(sheet, format="PNG")
    contents = {
        "images.npy": npy.getvalue(),
        "contact_sheet.png": sheet.getvalue(),
        "manifest.json": (json.dumps(ref.manifest, indent=1) + "\n").encode(),
    }
    paths = {}
    for name, data in contents.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
        paths[name] = out / name
    return paths


def load_reference_images(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Read a stored reference set and map it to the models' input range.

    Args:
        path: ``images.npy``, uint8 (N, 3, H, W).
        dtype: floating dtype of the result.

    Returns:
        (N, 3, H, W) tensor of ``2 * (v / 255) - 1``, values in [-1, 1].

    Raises:
        FileNotFoundError: no such file. ValueError: not a readable .npy, or not uint8 (N, 3, H, W).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no reference images at {path} (run the fetch_reference stage)")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises several types for a bad file
        raise ValueError(f"{path} is not a readable .npy file: {e}") from e
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive as a mapping
        array.close()
        raise ValueError(f"{path} is an .npz archive, not a .npy array of images")
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(f"{path} holds {array.dtype} {array.shape}; expected uint8 (N, 3, H, W)")
    return torch.from_numpy(array).to(dtype).div_(255).mul_(2).sub_(1)
