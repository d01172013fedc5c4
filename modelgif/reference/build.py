"""Building a reference set from a source: read, decode, CutMix at the source resolution, resize.

Per image, in the order of the sorted source (:mod:`.archives`, :mod:`.sample`): decode to
uint8 RGB at the file's own resolution (:func:`.images.decode_image`; 16-bit images scaled
to 8 bits); with CutMix on, mix each batch of ``batch`` consecutive images at that
resolution (:mod:`.cutmix`, as the authors' ``cut_mix.py`` did before their loader resized);
then resize the shorter side to ``size`` (PIL bilinear) and centre-crop ``size × size``
(:func:`.images.resize_crop`). Work goes one batch at a time, so memory holds one batch of
source-resolution images, not the whole source.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..io.download import download_file, is_url, sha256_file
from ..zoo.spec import SOURCE_MODULES
from .archives import IMAGE_SUFFIXES, MAX_MEMBER_BYTES, read_archive, read_folder, scratch_dir
from .cutmix import CutMixBatch, cutmix, cutmix_batch
from .images import decode_image, resize_crop
from .sample import SAMPLE, SAMPLE_BASE_URL, SAMPLE_COMMIT, fetch_taskonomy_sample, sample_url

#: What :func:`images_sha256` hashes, in words (recorded in every manifest).
IMAGES_SHA256_OF = "sha256 of images.npy's array data: the uint8 (N, 3, S, S) images in C order, without the .npy header"


@dataclass
class ReferenceSet:
    """A built reference set: ``images`` uint8 (N, 3, S, S) and its ``manifest`` (JSON-able)."""

    images: np.ndarray
    manifest: dict


def images_sha256(images: np.ndarray) -> str:
    """The reference set's checksum: sha256 of the uint8 (N, 3, S, S) array's bytes in C order
    (what ``np.load("images.npy").tobytes()`` gives; the .npy header is not hashed)."""
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def check_images_sha256(ref: ReferenceSet, expected: str | None, where: str = "the reference set") -> None:
    """Raise ``ValueError`` unless ``images_sha256(ref.images)`` is ``expected`` (skipped when empty)."""
    if not expected:
        return
    actual = ref.manifest["images_sha256"]
    if actual != expected.strip().lower():
        raise ValueError(f"{where} has images sha256 {actual}, expected {expected.strip().lower()} "
                         f"(reference.sha256: the {IMAGES_SHA256_OF}); the source's images differ from the ones checked in")


def process_images(files: Iterable[tuple[str, bytes]], size: int, where: str, *, use_cutmix: bool = True,
                   batch: int = 8, seed: int = 3) -> tuple[np.ndarray, list[str], str, list[CutMixBatch]]:
    """Decode, CutMix at the source resolution (optional), resize and crop, batch by batch.

    Args:
        files: ``(name, bytes)`` pairs, already sorted.
        size: output side S in pixels.
        where: the source, for error messages.
        use_cutmix, batch, seed: CutMix each ``batch`` consecutive images, draws from
            ``numpy.random.default_rng(seed)`` (:func:`.cutmix.cutmix_batch`); boxes in source pixels.

    Returns:
        images uint8 (N, 3, S, S), the names, the sha256 over the files' bytes concatenated in
        order, and the CutMix records.

    Raises:
        ValueError: an unreadable image, or (CutMix on) a batch whose images differ in size.
    """
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    out, names, records = [], [], []
    it = iter(files)
    while group := list(itertools.islice(it, batch if use_cutmix else 1)):
        decoded = []
        for name, data in group:
            digest.update(data)
            decoded.append(decode_image(data, name, where))
            names.append(name)
        if use_cutmix:
            shapes = {d.shape for d in decoded}
            if len(shapes) > 1:
                sizes = ", ".join(f"{n} {d.shape[2]}×{d.shape[1]}" for (n, _), d in zip(group, decoded))
                raise ValueError(f"CutMix mixes each batch of {batch} images at their source resolution, so they need "
                                 f"one size; in {where}: {sizes}. Use same-size images or reference.cutmix: false")
            mixed, record = cutmix_batch(np.stack(decoded), rng, len(names) - len(group))
            decoded = list(mixed)
            records.append(record)
        out.extend(resize_crop(d, size) for d in decoded)
    stacked = np.stack(out) if out else np.zeros((0, 3, size, size), np.uint8)
    return stacked, names, digest.hexdigest(), records


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
    timeout: float = 30.0,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    sha256: str | None = None,
    progress: bool = True,
) -> ReferenceSet:
    """Read ``source``, keep its first ``n_images`` sorted images, and :func:`process_images` them.

    Args:
        source: ``"taskonomy-sample"``, a folder, an archive, or an http(s) URL of an archive.
        n_images: N, the number of images.
        size: S, the output side in pixels.
        use_cutmix: CutMix at the source resolution with ``batch`` and ``seed``.
        base_url, commit: where the sample building is (only for ``"taskonomy-sample"``).
        timeout: seconds one socket read may wait (downloads; see :mod:`modelgif.io.download`).
        max_member_bytes: the largest archive member read as an image.
        sha256: if given, the expected :func:`images_sha256` of the result.

    Returns:
        The :class:`ReferenceSet`; its manifest records the source, the sha256 of the source
        bytes (an archive's file; otherwise the files' bytes in the set's order), the
        ``images_sha256`` of the result, the file names, N, S and the CutMix batches.

    Raises:
        FileNotFoundError: a local source that does not exist.
        ValueError: no or too few images, an unreadable one, a damaged archive, an oversized
            member, or a ``sha256`` mismatch.
        DownloadError: the network source could not be reached.
    """
    _check_n(n_images)
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    manifest: dict = {"source": source}
    kwargs = dict(use_cutmix=use_cutmix, batch=batch, seed=seed)
    if source == SAMPLE:
        files = sorted(fetch_taskonomy_sample(n_images, base_url, commit, workers=workers, retries=retries,
                                              timeout=timeout, progress=progress))
        manifest.update(kind="taskonomy-sample", url_template=sample_url("{p}", base_url, commit))
        images, names, digest, batches = process_images(files, size, source, **kwargs)
    elif is_url(source) or Path(source).is_file():
        with contextlib.ExitStack() as stack:
            if is_url(source):  # a scratch folder named by its owner: swept after a SIGKILL (sweep_stale_scratch)
                tmp = stack.enter_context(scratch_dir())
                archive = download_file(source, tmp / "archive", retries=retries, timeout=timeout, progress=progress)
                manifest.update(kind="archive-url")
            else:
                archive = Path(source)
                manifest.update(kind="archive")
            # members read one at a time, straight from a zip or plain tar (a compressed tar: a capped scratch copy)
            files = read_archive(archive, n_images, max_member_bytes=max_member_bytes, name=source)
            images, names, _, batches = process_images(files, size, source, **kwargs)
            digest = sha256_file(archive)
    elif Path(source).is_dir():
        manifest.update(kind="folder")
        images, names, digest, batches = process_images(read_folder(source, n_images), size, source, **kwargs)
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
    manifest.update(
        sha256=digest,
        sha256_of="the archive file" if manifest["kind"].startswith("archive") else "the files' bytes, in the order of 'files'",
        images_sha256=images_sha256(images),
        images_sha256_of=IMAGES_SHA256_OF,
        n_images=n_images,
        size=size,
        files=names,
        cutmix=_cutmix_record(use_cutmix, batch, seed, batches, "source pixels, before the resize"),
    )
    ref = ReferenceSet(images, manifest)
    check_images_sha256(ref, sha256, f"reference set from {source}")
    return ref


def rendered_reference_set(n_images: int = 100, size: int = 64, *, first_seed: int = 1_000_000,
                           use_cutmix: bool = True, seed: int = 3, batch: int = 8,
                           sha256: str | None = None) -> ReferenceSet:
    """The mini-Taskonomy's reference set: the ``rgb`` of rendered scenes ``first_seed …
    first_seed + n_images − 1`` (:func:`modelgif.mini.scenes.render_scene`), quantised to uint8
    like any image file, then optionally CutMixed. The scenes are rendered at their final
    size, so there is no resize: CutMix is applied at the rendered (= source = final)
    resolution, exactly as :func:`build_reference_set` does for a source already at ``size``.
    The manifest records the seeds, the sha256 of the uint8 renders before CutMix and the
    ``images_sha256`` of the result, checked against ``sha256`` if given."""
    # by name: the renderer is the mini zoo's code, fingerprinted in data/settings/reference.json
    # for this source only (modelgif.settings.reference_settings), not a dependency of the others
    render_scene = importlib.import_module(SOURCE_MODULES["mini-scenes"]).render_scene

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
        "sha256_of": "the rendered uint8 images (N, 3, S, S) before CutMix",
        "images_sha256": images_sha256(images), "images_sha256_of": IMAGES_SHA256_OF,
        "n_images": n_images, "size": size,
        "files": [f"scene_{s}" for s in seeds],
        "cutmix": _cutmix_record(use_cutmix, batch, seed, batches, "rendered pixels (rendered at the final size)"),
    }
    ref = ReferenceSet(images, manifest)
    check_images_sha256(ref, sha256, "the rendered mini reference set")
    return ref


def _cutmix_record(enabled: bool, batch: int, seed: int, batches: list[CutMixBatch], box_units: str) -> dict:
    return {"enabled": enabled, "batch": batch, "seed": seed, "box_in": box_units,
            "batches": [_json_ready(asdict(b)) for b in batches]}


def _json_ready(record: dict) -> dict:
    """Tuples as lists, so the manifest equals what ``json`` reads back."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}


def _check_n(n_images: int) -> None:
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
