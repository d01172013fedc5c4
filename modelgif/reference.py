"""The reference set: N RGB images every model is probed with (DESIGN §1.1).

A reference set is built once from a *source* and stored as ``images.npy``, uint8
(N, 3, S, S). Sources:

- ``"taskonomy-sample"``: RGB views of Taskonomy's public sample building, fetched file by
  file from ``{base_url}/{commit}/rgb/point_{p}_view_0_domain_rgb.png`` for p = 0, 1, 2, …
  (points without a view 0 are skipped) until ``n_images`` are in hand;
- a local folder of images (searched recursively);
- a local ``.zip`` / ``.tar`` / ``.tar.gz`` archive of images, or an http(s) URL of one.

Processing, per image: images are sorted by their path inside the source (for a flat
folder: the file name; plain string order, so ``point_10_…`` sorts before ``point_2_…``)
and the first ``n_images`` kept; each is converted to RGB, resized with PIL bilinear so
that its shorter side is ``size`` (the longer side becomes ``int(size * long / short)``,
as torchvision's ``Resize(size)`` does), then center-cropped to ``size × size``. Taskonomy
images are square, so for them the crop removes nothing. Optionally, CutMix
(:func:`cutmix`) then mixes each batch of 8 consecutive images, as the original
``reference_data_cutmix_1000`` set did. :func:`load_reference_images` maps the stored
uint8 values v to ``2 * (v / 255) - 1``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import io
import json
import math
import os
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ._atomic import atomic_path
from .download import download_file, fetch_bytes, is_url, sha256_file

#: Source name of Taskonomy's public sample building.
SAMPLE = "taskonomy-sample"
SAMPLE_BASE_URL = "https://raw.githubusercontent.com/alexsax/taskonomy-sample-model-1"
SAMPLE_COMMIT = "eed3233b1338f74b38af6d91b37cd9e03528d5e8"

#: File name suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"})


# --------------------------------------------------------------------------- sources


def sample_url(point: int | str, base_url: str = SAMPLE_BASE_URL, commit: str = SAMPLE_COMMIT) -> str:
    """URL of the view-0 RGB image of ``point`` in the sample building."""
    return f"{base_url.rstrip('/')}/{commit}/rgb/{sample_name(point)}"


def sample_name(point: int | str) -> str:
    return f"point_{point}_view_0_domain_rgb.png"


def fetch_taskonomy_sample(
    n_images: int,
    base_url: str = SAMPLE_BASE_URL,
    commit: str = SAMPLE_COMMIT,
    *,
    workers: int = 8,
    max_misses: int = 50,
    retries: int = 3,
    progress: bool = True,
) -> list[tuple[str, bytes]]:
    """Fetch the first ``n_images`` view-0 RGB images of the sample building.

    Points p = 0, 1, 2, … are requested ``workers`` at a time (a few more are kept in
    flight) and taken in point order; a point that answers HTTP 404 is skipped.

    Returns:
        ``[(file name, file bytes)]`` for ``n_images`` points, in point order.

    Raises:
        ValueError: ``max_misses`` consecutive points are missing before ``n_images`` are
            found (the message says how many were found).
        DownloadError: a URL could not be reached after ``retries`` tries.
    """
    _check_n(n_images)

    def get(point: int) -> bytes | None:
        try:
            return fetch_bytes(sample_url(point, base_url, commit), retries=retries)
        except FileNotFoundError:
            return None

    found: list[tuple[str, bytes]] = []
    misses, next_point = 0, 0
    pending: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool, tqdm(
        total=n_images, desc="reference images", unit="img", disable=not progress
    ) as bar:
        try:
            while len(found) < n_images:
                while len(pending) < 2 * workers:
                    pending.append((next_point, pool.submit(get, next_point)))
                    next_point += 1
                point, future = pending.popleft()
                data = future.result()
                if data is None:
                    misses += 1
                    if misses >= max_misses:
                        raise ValueError(
                            f"{SAMPLE}: found only {len(found)} of {n_images} images under "
                            f"{base_url.rstrip('/')}/{commit}/rgb/; points {point - max_misses + 1}..{point} "
                            f"are all missing ({max_misses} in a row), so the building has no more"
                        )
                    continue
                misses = 0
                found.append((sample_name(point), data))
                bar.update(1)
        finally:
            for _, future in pending:
                future.cancel()
    return found


def _is_image_path(rel: str) -> bool:
    """An image file name, not hidden and not inside macOS metadata folders."""
    path = PurePosixPath(rel)
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
    return path.suffix.lower() in IMAGE_SUFFIXES and not hidden


def read_folder(root: str | os.PathLike, n_images: int) -> Iterator[tuple[str, bytes]]:
    """The first ``n_images`` images under ``root`` (recursive), sorted by relative path.

    Yields ``(relative POSIX path, file bytes)`` lazily, one file at a time.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"reference folder {root} does not exist")
    names = sorted(
        rel for rel in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if _is_image_path(rel)
    )
    for name in names[:n_images]:
        yield name, (root / name).read_bytes()


def read_archive(path: str | os.PathLike, n_images: int) -> list[tuple[str, bytes]]:
    """The first ``n_images`` images of a ``.zip`` / ``.tar`` / ``.tar.gz`` archive.

    The archive type is read from its content, not its name. Members are sorted by their
    path in the archive; they are read in archive order (cheap for compressed tars) and
    returned sorted, as ``[(member path, bytes)]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference archive {path} does not exist")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if not n.endswith("/") and _is_image_path(n))[:n_images]
            return [(n, zf.read(n)) for n in names]
    if tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as tf:
            members = [m for m in tf.getmembers() if m.isfile() and _is_image_path(m.name)]
            wanted = set(sorted(m.name for m in members)[:n_images])
            data = {m.name: tf.extractfile(m).read() for m in members if m.name in wanted}
        return sorted(data.items())
    raise ValueError(f"{path} is neither a folder nor a .zip/.tar/.tar.gz archive of images")


# --------------------------------------------------------------------------- processing


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """RGB, bilinear resize of the shorter side to ``size``, center crop ``size × size``.

    Returns:
        uint8 (3, size, size).
    """
    image = image.convert("RGB")
    w, h = image.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    image = image.resize(new, Image.BILINEAR)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def decode_images(files: Iterable[tuple[str, bytes]], size: int, where: str) -> tuple[np.ndarray, list[str], str]:
    """Decode and :func:`prepare_image` every file, in the order given.

    Args:
        files: ``(name, bytes)`` pairs, already sorted.
        size: output side in pixels.
        where: the source, for error messages.

    Returns:
        images uint8 (N, 3, size, size), the names, and the sha256 over the files' bytes
        concatenated in that order.

    Raises:
        ValueError: a file is not a readable image (the message names it).
    """
    digest = hashlib.sha256()
    images, names = [], []
    for name, data in files:
        digest.update(data)
        try:
            with Image.open(io.BytesIO(data)) as image:
                images.append(prepare_image(image, size))
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
            raise ValueError(f"cannot read image {name} in {where}: {e}") from e
        names.append(name)
    stacked = np.stack(images) if images else np.zeros((0, 3, size, size), np.uint8)
    return stacked, names, digest.hexdigest()


# --------------------------------------------------------------------------- CutMix


@dataclass(frozen=True)
class CutMixBatch:
    """One CutMix batch: images ``start .. start + len(perm) - 1``.

    Every image i of the batch gets, inside ``box = (y0, y1, x0, x1)`` (pixel rows
    ``y0:y1``, columns ``x0:x1``), the pixels of the unmodified batch image ``perm[i]``.
    ``lam`` is the Beta(1, 1) draw that set the box size.
    """

    start: int
    lam: float
    box: tuple[int, int, int, int]
    perm: tuple[int, ...]


def cutmix(images: np.ndarray, batch: int = 8, seed: int = 3) -> tuple[np.ndarray, list[CutMixBatch]]:
    """Standard CutMix (Yun et al., ICCV 2019) over consecutive batches of a sorted set.

    For each batch of ``batch`` images (the last may be smaller), drawn from
    ``numpy.random.default_rng(seed)`` in this order: λ ~ Beta(1, 1), a permutation of the
    batch, the box centre (x, then y) uniform over the pixels. The box has sides
    ``int(W·sqrt(1-λ))`` × ``int(H·sqrt(1-λ))`` around the centre, clipped to the image.

    Args:
        images: uint8 (N, 3, H, W).

    Returns:
        A new uint8 (N, 3, H, W) array and one :class:`CutMixBatch` per batch.
    """
    if images.ndim != 4:
        raise ValueError(f"cutmix expects (N, 3, H, W) images, got shape {images.shape}")
    rng = np.random.default_rng(seed)
    out = images.copy()
    _, _, H, W = images.shape
    records = []
    for start in range(0, len(images), batch):
        src = images[start : start + batch]
        lam = float(rng.beta(1.0, 1.0))
        perm = rng.permutation(len(src))
        cx, cy = int(rng.integers(W)), int(rng.integers(H))
        ratio = math.sqrt(1.0 - lam)
        cut_w, cut_h = int(W * ratio), int(H * ratio)
        x0, x1 = int(np.clip(cx - cut_w // 2, 0, W)), int(np.clip(cx + cut_w // 2, 0, W))
        y0, y1 = int(np.clip(cy - cut_h // 2, 0, H)), int(np.clip(cy + cut_h // 2, 0, H))
        out[start : start + len(src), :, y0:y1, x0:x1] = src[perm][:, :, y0:y1, x0:x1]
        records.append(CutMixBatch(start, lam, (y0, y1, x0, x1), tuple(int(i) for i in perm)))
    return out, records


# --------------------------------------------------------------------------- the set


@dataclass
class ReferenceSet:
    """A built reference set: ``images`` uint8 (N, 3, S, S) and its ``manifest`` (JSON-able)."""

    images: np.ndarray
    manifest: dict


def build_reference_set(
    source: str = SAMPLE,
    n_images: int = 1000,
    size: int = 128,
    *,
    use_cutmix: bool = True,
    seed: int = 3,
    batch: int = 8,
    base_url: str = SAMPLE_BASE_URL,
    commit: str = SAMPLE_COMMIT,
    workers: int = 8,
    retries: int = 3,
    progress: bool = True,
) -> ReferenceSet:
    """Read ``source``, keep its first ``n_images`` sorted images, process, optionally CutMix.

    Args:
        source: ``"taskonomy-sample"``, a folder, an archive, or an http(s) URL of an archive.
        n_images: N, the number of images.
        size: S, the output side in pixels.
        use_cutmix: apply :func:`cutmix` with ``batch`` and ``seed``.
        base_url, commit: where the sample building is (only for ``"taskonomy-sample"``).

    Returns:
        The :class:`ReferenceSet`; its manifest records the source, the sha256 of the source
        bytes (an archive's file; otherwise the files' bytes in the set's order), the file
        names, N, S and the CutMix batches.

    Raises:
        FileNotFoundError: a local source that does not exist.
        ValueError: no or too few images, or an unreadable one.
        DownloadError: the network source could not be reached.
    """
    _check_n(n_images)
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    manifest: dict = {"source": source}
    if source == SAMPLE:
        files = sorted(fetch_taskonomy_sample(n_images, base_url, commit, workers=workers, retries=retries, progress=progress))
        manifest.update(kind="taskonomy-sample", url_template=sample_url("{p}", base_url, commit))
        images, names, digest = decode_images(files, size, source)
    elif is_url(source):
        with tempfile.TemporaryDirectory() as tmp:
            archive = download_file(source, Path(tmp) / "archive", retries=retries, progress=progress)
            files = read_archive(archive, n_images)
            digest = sha256_file(archive)
        manifest.update(kind="archive-url")
        images, names, _ = decode_images(files, size, source)
    elif Path(source).is_dir():
        manifest.update(kind="folder")
        images, names, digest = decode_images(read_folder(source, n_images), size, source)
    elif Path(source).is_file():
        manifest.update(kind="archive")
        images, names, _ = decode_images(read_archive(source, n_images), size, source)
        digest = sha256_file(source)
    else:
        raise FileNotFoundError(
            f"reference source {source!r} does not exist; expected {SAMPLE!r}, a folder of images, "
            "a .zip/.tar/.tar.gz archive of images, or an http(s) URL of one"
        )
    if len(names) < n_images:
        raise ValueError(
            f"reference source {source} has {len(names)} images ({'/'.join(sorted(IMAGE_SUFFIXES))} files), "
            f"{n_images} were asked for"
        )
    batches = []
    if use_cutmix:
        images, batches = cutmix(images, batch=batch, seed=seed)
    manifest.update(
        sha256=digest,
        sha256_of="the archive file" if manifest["kind"].startswith("archive") else "the files' bytes, in the order of 'files'",
        n_images=n_images,
        size=size,
        files=names,
        cutmix={"enabled": use_cutmix, "batch": batch, "seed": seed, "batches": [_json_ready(asdict(b)) for b in batches]},
    )
    return ReferenceSet(images, manifest)


def rendered_reference_set(n_images: int = 100, size: int = 64, *, first_seed: int = 1_000_000,
                           use_cutmix: bool = True, seed: int = 3, batch: int = 8) -> ReferenceSet:
    """The mini-Taskonomy's reference set: the ``rgb`` of rendered scenes ``first_seed …
    first_seed + n_images − 1`` (:func:`modelgif.mini.scenes.render_scene`), quantised to uint8
    like any image file, then optionally CutMixed exactly as :func:`build_reference_set` does.
    The manifest records the seeds and the sha256 of the uint8 images."""
    from .mini.scenes import render_scene

    _check_n(n_images)
    if size < 16 or size % 16:
        raise ValueError(f"size must be a positive multiple of 16 (the encoders' stride), got {size}")
    seeds = range(int(first_seed), int(first_seed) + n_images)
    rgb = np.stack([render_scene(s, size)["rgb"] for s in seeds])
    images = np.ascontiguousarray(np.rint(rgb * 255.0).astype(np.uint8))
    digest = hashlib.sha256(images.tobytes()).hexdigest()
    batches = []
    if use_cutmix:
        images, batches = cutmix(images, batch=batch, seed=seed)
    manifest = {
        "source": "mini-scenes", "kind": "rendered", "first_seed": int(first_seed), "sha256": digest,
        "sha256_of": "the rendered uint8 images (N, 3, S, S) before CutMix", "n_images": n_images, "size": size,
        "files": [f"scene_{s}" for s in seeds],
        "cutmix": {"enabled": use_cutmix, "batch": batch, "seed": seed, "batches": [_json_ready(asdict(b)) for b in batches]},
    }
    return ReferenceSet(images, manifest)


def _json_ready(record: dict) -> dict:
    """Tuples as lists, so the manifest equals what ``json`` reads back."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}


def _check_n(n_images: int) -> None:
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")


# --------------------------------------------------------------------------- files


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
