"""Local image sources: a folder, or a ``.zip`` / ``.tar`` / ``.tar.gz`` archive of images.

Both give ``(path inside the source, file bytes)`` for the first ``n_images`` image files,
sorted by that path (plain string order, so ``point_10_…`` sorts before ``point_2_…``).
Archives are read member by member: the wanted members are copied one at a time to a
scratch folder, each refused if it is larger than ``max_member_bytes``, so memory does not
grow with the archive. A damaged archive (truncated, bad CRC, not an archive) is a
``ValueError`` naming it.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

#: File name suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"})

#: Largest archive member read as an image (bytes, compressed file size): 64 MiB, eight times a
#: 16-bit 1024×1024 RGB image stored uncompressed.
MAX_MEMBER_BYTES = 64 << 20

_DAMAGE = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def is_image_path(rel: str) -> bool:
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
        rel for rel in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if is_image_path(rel)
    )
    for name in names[:n_images]:
        try:
            data = (root / name).read_bytes()
        except OSError as e:
            raise ValueError(f"cannot read image {name} in {root}: {e.strerror or e}") from e
        yield name, data


def _too_big(where: str, member: str, size: int, limit: int) -> ValueError:
    return ValueError(f"{where}: member {member} is {size} bytes, over the limit of {limit} bytes per image "
                      f"(max_member_bytes); is this archive what it claims to be?")


def _copy_limited(src, dest: Path, limit: int, where: str, member: str) -> None:
    """Copy a member's stream to ``dest`` in blocks, refusing more than ``limit`` bytes."""
    copied = 0
    with open(dest, "wb") as out:
        while block := src.read(1 << 20):
            copied += len(block)
            if copied > limit:
                raise _too_big(where, member, copied, limit)
            out.write(block)


def extract_archive_images(path: str | os.PathLike, n_images: int, scratch: str | os.PathLike, *,
                           max_member_bytes: int = MAX_MEMBER_BYTES, name: str | None = None
                           ) -> list[tuple[str, Path]]:
    """Copy the first ``n_images`` sorted image members of an archive into ``scratch``.

    The archive type is read from its content, not its name. Members are copied in archive
    order (one pass, cheap for a compressed tar) to ``scratch/<k>`` (never to the member's
    own path).

    Returns:
        ``[(member path, file on disk)]`` sorted by member path.

    Args:
        name: how messages name the archive (default: ``path``; e.g. the URL it came from).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a zip/tar archive, a damaged one (truncated, bad CRC), or a member
            over ``max_member_bytes``; the message names the archive (and the member).
    """
    path, scratch = Path(path), Path(scratch)
    where = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference archive {where} does not exist")
    try:
        if zipfile.is_zipfile(path):
            members = _extract_zip(path, n_images, scratch, max_member_bytes, where)
        elif tarfile.is_tarfile(path):
            members = _extract_tar(path, n_images, scratch, max_member_bytes, where)
        else:
            raise ValueError(f"{where} is neither a folder nor a .zip/.tar/.tar.gz archive of images "
                             "(or it is damaged: truncated, or not an archive at all)")
    except _DAMAGE as e:
        raise ValueError(f"{where}: damaged archive ({type(e).__name__}: {e or 'unexpected end of data'})") from None
    return members


def _extract_zip(path: Path, n_images: int, scratch: Path, limit: int, where: str) -> list[tuple[str, Path]]:
    with zipfile.ZipFile(path) as zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir() and is_image_path(i.filename)),
                       key=lambda i: i.filename)[:n_images]
        out = []
        for k, info in enumerate(infos):
            if info.file_size > limit:
                raise _too_big(where, info.filename, info.file_size, limit)
            with zf.open(info) as src:  # checks the CRC when the member is read to its end
                _copy_limited(src, scratch / str(k), limit, where, info.filename)
            out.append((info.filename, scratch / str(k)))
    return out


def _extract_tar(path: Path, n_images: int, scratch: Path, limit: int, where: str) -> list[tuple[str, Path]]:
    with tarfile.open(path, "r:*") as tf:
        names = sorted(m.name for m in tf if m.isfile() and is_image_path(m.name))  # headers only
    wanted = {n: k for k, n in enumerate(names[:n_images])}
    with tarfile.open(path, "r:*") as tf:
        for member in tf:
            k = wanted.get(member.name)
            if k is None or not member.isfile():
                continue
            if member.size > limit:
                raise _too_big(where, member.name, member.size, limit)
            with tf.extractfile(member) as src:
                _copy_limited(src, scratch / str(k), limit, where, member.name)
                if (scratch / str(k)).stat().st_size != member.size:
                    raise EOFError(f"member {member.name} ends early")
    return [(n, scratch / str(k)) for n, k in wanted.items()]


def read_archive(path: str | os.PathLike, n_images: int, *, max_member_bytes: int = MAX_MEMBER_BYTES,
                 name: str | None = None) -> Iterator[tuple[str, bytes]]:
    """The first ``n_images`` images of an archive, sorted by member path, as ``(path, bytes)``,
    read lazily from a scratch copy (:func:`extract_archive_images`)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="modelgif-archive-") as scratch:
        members = extract_archive_images(path, n_images, scratch, max_member_bytes=max_member_bytes, name=name)
        for member, file in members:
            yield member, file.read_bytes()


__all__ = ["IMAGE_SUFFIXES", "MAX_MEMBER_BYTES", "extract_archive_images", "is_image_path", "read_archive",
           "read_folder"]
