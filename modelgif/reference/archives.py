"""Local image sources: a folder, or a ``.zip`` / ``.tar`` / ``.tar.gz`` archive of images.

Both give ``(path inside the source, file bytes)`` for the first ``n_images`` image files,
sorted by that path (plain string order, so ``point_10_…`` sorts before ``point_2_…``).
Archives are read member by member, each refused if it is larger than ``max_member_bytes``,
so memory does not grow with the archive. :func:`read_archive` streams the members of a zip
or an uncompressed tar straight from the archive (nothing is written); a compressed tar,
which cannot be read out of order, goes through a scratch folder, as does
:func:`extract_archive_images`, whose copies are refused past ``max_total_bytes`` in all
(:data:`MAX_EXTRACTED_BYTES`). A damaged archive (truncated, bad CRC, not an archive) is a
``ValueError`` naming it.

Scratch folders are named for their owner, ``modelgif-archive-<host>.<pid>.<random>`` in
the temporary folder (:func:`scratch_dir`); :func:`extract_archive_images` also leaves an
owner marker (``.owner.<host>.<pid>.<random>.tmp``) in the folder it fills. After a SIGKILL,
:func:`sweep_stale_scratch` (called by ``tools/run.py``) removes the scratch folders of dead
processes of this host; those of live ones are kept. An archive URL's download is bounded by
:data:`modelgif.io.download.MAX_DOWNLOAD_BYTES` and :data:`modelgif.io.download.DOWNLOAD_DEADLINE`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..io import atomic as _atomic

#: File name suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"})

#: Largest archive member read as an image (bytes, compressed file size): 64 MiB, eight times a
#: 16-bit 1024×1024 RGB image stored uncompressed.
MAX_MEMBER_BYTES = 64 << 20

#: Largest total a scratch copy of an archive's members may take (bytes, all members
#: together): 2 GiB, 2 MiB per image of a 1000-image set (Taskonomy's 512 px PNGs are about
#: 0.4 MiB). A larger set is better unpacked into a folder and given as ``reference.source``.
MAX_EXTRACTED_BYTES = 2 << 30

#: Name prefix of the scratch folders of archives (:func:`scratch_dir`).
SCRATCH_PREFIX = "modelgif-archive-"

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


def _copy_limited(src, dest: Path, limit: int, where: str, member: str, budget: list[int] | None = None) -> None:
    """Copy a member's stream to ``dest`` in blocks, refusing more than ``limit`` bytes, and
    more than ``budget[0]`` bytes left of the scratch copy's total (decremented)."""
    copied = 0
    with open(dest, "wb") as out:
        while block := src.read(1 << 20):
            copied += len(block)
            if copied > limit:
                raise _too_big(where, member, copied, limit)
            if budget is not None:
                budget[0] -= len(block)
                if budget[0] < 0:
                    raise _too_much(where, member, budget[1])
            out.write(block)


def _read_limited(src, limit: int, where: str, member: str) -> bytes:
    """A member's stream read whole, refusing more than ``limit`` bytes."""
    data = src.read(limit + 1)
    if len(data) > limit:
        raise _too_big(where, member, len(data), limit)
    return data


def _too_much(where: str, member: str, total: int) -> ValueError:
    return ValueError(f"{where}: the images up to member {member} take more than {total} bytes in all "
                      f"(max_total_bytes, modelgif.reference.archives.MAX_EXTRACTED_BYTES); unpack the archive "
                      f"into a folder and give that as reference.source")


def _owner_of(name: str) -> tuple[str, int] | None:
    """(host, pid) of a scratch folder named by :func:`scratch_dir`, or None."""
    if not name.startswith(SCRATCH_PREFIX):
        return None
    parts = name[len(SCRATCH_PREFIX):].split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


@contextlib.contextmanager
def scratch_dir(parent: str | os.PathLike | None = None):
    """A scratch folder ``modelgif-archive-<host>.<pid>.<random>`` in ``parent`` (default: the
    temporary folder, ``TMPDIR``), removed with its contents when the block ends (an error
    and SIGTERM included); after a SIGKILL, :func:`sweep_stale_scratch` removes it."""
    host = _atomic._host()
    path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{host}.{os.getpid()}.", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def mark_owner(folder: str | os.PathLike) -> Path:
    """Leave an owner marker (``.owner.<host>.<pid>.<random>.tmp``) in ``folder``, so that
    :func:`sweep_stale_scratch` can tell whether the process filling it is alive."""
    marker = _atomic.temp_name(Path(folder) / "owner")
    marker.touch()
    return marker


def _owners_inside(folder: Path, depth: int = 2) -> set[tuple[str, int]]:
    """(host, pid) of every owner-named file (temporary files, markers) in ``folder``, ``depth`` levels down."""
    owners = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            parsed = _atomic.parse_temp_name(entry.name)
            if parsed is not None:
                owners.add(parsed[1:])
            elif depth > 1 and entry.is_dir(follow_symlinks=False):
                owners |= _owners_inside(Path(entry.path), depth - 1)
    return owners


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def sweep_stale_scratch(parent: str | os.PathLike | None = None) -> list[tuple[Path, int]]:
    """Remove the archive scratch folders (``modelgif-archive-*`` in ``parent``, default the
    temporary folder) whose owner, a process of this host, is dead; return
    ``[(folder, bytes freed)]``.

    The owner is read from the folder's name (:func:`scratch_dir`), else from the owner-named
    files inside it (a download's temporary file, :func:`mark_owner`'s marker): a folder is
    removed only when every owner found is a dead process of this host. A folder of a live
    process, of another host, or with no owner to be found is kept.
    """
    parent = Path(parent or tempfile.gettempdir())
    host = _atomic._host()
    removed, candidates = [], []
    with contextlib.suppress(OSError):
        candidates = [Path(e.path) for e in os.scandir(parent)
                      if e.name.startswith(SCRATCH_PREFIX) and e.is_dir(follow_symlinks=False)]
    for folder in candidates:
        owner = _owner_of(folder.name)
        owners = {owner} if owner is not None else _owners_inside(folder)
        if not owners or any(h != host or pid == os.getpid() or _atomic._alive(pid) for h, pid in owners):
            continue
        size = _tree_size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append((folder, size))
    return removed


def extract_archive_images(path: str | os.PathLike, n_images: int, scratch: str | os.PathLike, *,
                           max_member_bytes: int = MAX_MEMBER_BYTES, name: str | None = None,
                           max_total_bytes: int | None = None) -> list[tuple[str, Path]]:
    """Copy the first ``n_images`` sorted image members of an archive into ``scratch``.

    The archive type is read from its content, not its name. Members are copied in archive
    order (one pass, cheap for a compressed tar) to ``scratch/<k>`` (never to the member's
    own path), at most ``max_total_bytes`` in all (default :data:`MAX_EXTRACTED_BYTES`, read
    at call time). ``scratch`` gets an owner marker (:func:`mark_owner`) first, so that a
    sweep after a SIGKILL can tell the folder is abandoned.

    Returns:
        ``[(member path, file on disk)]`` sorted by member path.

    Args:
        name: how messages name the archive (default: ``path``; e.g. the URL it came from).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a zip/tar archive, a damaged one (truncated, bad CRC), a member
            over ``max_member_bytes``, or members over ``max_total_bytes`` in all; the message
            names the archive (and the member).
    """
    path, scratch = Path(path), Path(scratch)
    where = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference archive {where} does not exist")
    total = MAX_EXTRACTED_BYTES if max_total_bytes is None else max_total_bytes
    budget = [total, total]
    scratch.mkdir(parents=True, exist_ok=True)
    mark_owner(scratch)
    try:
        if zipfile.is_zipfile(path):
            members = _extract_zip(path, n_images, scratch, max_member_bytes, where, budget)
        elif tarfile.is_tarfile(path):
            members = _extract_tar(path, n_images, scratch, max_member_bytes, where, budget)
        else:
            raise ValueError(f"{where} is neither a folder nor a .zip/.tar/.tar.gz archive of images "
                             "(or it is damaged: truncated, or not an archive at all)")
    except _DAMAGE as e:
        raise ValueError(f"{where}: damaged archive ({type(e).__name__}: {e or 'unexpected end of data'})") from None
    return members


def _zip_infos(zf: zipfile.ZipFile, n_images: int) -> list[zipfile.ZipInfo]:
    return sorted((i for i in zf.infolist() if not i.is_dir() and is_image_path(i.filename)),
                  key=lambda i: i.filename)[:n_images]


def _extract_zip(path: Path, n_images: int, scratch: Path, limit: int, where: str,
                 budget: list[int]) -> list[tuple[str, Path]]:
    with zipfile.ZipFile(path) as zf:
        infos = _zip_infos(zf, n_images)
        out = []
        for k, info in enumerate(infos):
            if info.file_size > limit:
                raise _too_big(where, info.filename, info.file_size, limit)
            with zf.open(info) as src:  # checks the CRC when the member is read to its end
                _copy_limited(src, scratch / str(k), limit, where, info.filename, budget)
            out.append((info.filename, scratch / str(k)))
    return out


def _extract_tar(path: Path, n_images: int, scratch: Path, limit: int, where: str,
                 budget: list[int]) -> list[tuple[str, Path]]:
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
                _copy_limited(src, scratch / str(k), limit, where, member.name, budget)
                if (scratch / str(k)).stat().st_size != member.size:
                    raise EOFError(f"member {member.name} ends early")
    return [(n, scratch / str(k)) for n, k in wanted.items()]


def _compressed(path: Path) -> bool:
    """A gzip, bzip2 or xz file (by its magic number): a tar inside cannot be read out of order."""
    with open(path, "rb") as f:
        head = f.read(6)
    return head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))


def read_archive(path: str | os.PathLike, n_images: int, *, max_member_bytes: int = MAX_MEMBER_BYTES,
                 name: str | None = None, max_total_bytes: int | None = None) -> Iterator[tuple[str, bytes]]:
    """The first ``n_images`` images of an archive, sorted by member path, as ``(path, bytes)``,
    read lazily, one member in memory at a time.

    A zip or an uncompressed tar is read member by member straight from the archive (nothing
    written); a compressed tar through a scratch copy (:func:`scratch_dir`,
    :func:`extract_archive_images`, ``max_total_bytes`` in all), removed when the iteration
    ends. Errors as :func:`extract_archive_images`.
    """
    path = Path(path)
    where = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference archive {where} does not exist")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for info in _zip_infos(zf, n_images):
                    if info.file_size > max_member_bytes:
                        raise _too_big(where, info.filename, info.file_size, max_member_bytes)
                    with zf.open(info) as src:
                        data = _read_limited(src, max_member_bytes, where, info.filename)
                    yield info.filename, data
            return
        if tarfile.is_tarfile(path) and not _compressed(path):
            with tarfile.open(path, "r:") as tf:
                members = sorted((m for m in tf if m.isfile() and is_image_path(m.name)), key=lambda m: m.name)
                for member in members[:n_images]:
                    if member.size > max_member_bytes:
                        raise _too_big(where, member.name, member.size, max_member_bytes)
                    with tf.extractfile(member) as src:
                        data = _read_limited(src, max_member_bytes, where, member.name)
                    if len(data) != member.size:
                        raise EOFError(f"member {member.name} ends early")
                    yield member.name, data
            return
    except _DAMAGE as e:
        raise ValueError(f"{where}: damaged archive ({type(e).__name__}: {e or 'unexpected end of data'})") from None
    with scratch_dir() as scratch:
        members = extract_archive_images(path, n_images, scratch, max_member_bytes=max_member_bytes, name=name,
                                         max_total_bytes=max_total_bytes)
        for member, file in members:
            yield member, file.read_bytes()


__all__ = ["IMAGE_SUFFIXES", "MAX_EXTRACTED_BYTES", "MAX_MEMBER_BYTES", "extract_archive_images", "is_image_path",
           "mark_owner", "read_archive", "read_folder", "scratch_dir", "sweep_stale_scratch"]
