"""Verified downloads: sha256-checked, retried, bounded in time, atomic, with a progress bar.

Three limits bound every download (arguments of :func:`fetch_bytes` and
:func:`download_file`):

- ``timeout`` (seconds): how long one socket operation (the connect, or one read) may wait
  for the server. A mirror that stops sending fails that try after ``timeout``.
- ``deadline`` (seconds, ``None``: none): the whole download, every try and every backoff
  included. It is checked before each try and after each block read, so a download that
  trickles (a byte now and then, each read inside ``timeout``) still ends: it fails at the
  latest ``deadline + timeout`` seconds after it started. Default: :data:`FETCH_DEADLINE`
  for :func:`fetch_bytes`, :data:`DOWNLOAD_DEADLINE` for :func:`download_file` (so the
  checkpoint and archive downloads, which pass none, end too).
- ``max_bytes`` (bytes, ``None``: none): the largest body accepted. A larger
  ``Content-Length`` is refused before the body is read, a body that grows past it (no
  ``Content-Length``) as soon as it does; neither is retried. Default:
  :data:`MAX_DOWNLOAD_BYTES`, read when the download starts.

A body shorter than the server's ``Content-Length`` (a dropped connection) is an error of
the try, and is retried like a refused connection or an HTTP 5xx; so is a chunked body cut
short (``http.client.IncompleteRead``). A body without ``Content-Length`` that simply ends
early cannot be told from a complete one, except by its checksum: a sha256 mismatch of such
a body is retried too (a complete body with the wrong sha256 is not). HTTP 404 is not retried.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from .atomic import atomic_path

_BLOCK = 1 << 20

#: Default overall deadline of :func:`download_file` (seconds, every try included): 1 hour,
#: a 1.6 GB checkpoint set at 0.5 MB/s; a trickling mirror fails after it instead of never.
DOWNLOAD_DEADLINE = 3600.0
#: Default overall deadline of :func:`fetch_bytes` (seconds): small files (a sample image, a manifest).
FETCH_DEADLINE = 300.0
#: Default largest body a download accepts (bytes): 4 GiB, 40 times a Taskonomy encoder
#: checkpoint and 80 times the sample building's 1000 images; an untrusted URL cannot fill the disk.
MAX_DOWNLOAD_BYTES = 4 << 30


class _Default:
    """The default of ``deadline`` / ``max_bytes``: the module constant's value when the download starts."""

    def __repr__(self) -> str:
        return "DEFAULT"


#: Stands for a limit's module default (:data:`DOWNLOAD_DEADLINE`, :data:`FETCH_DEADLINE`,
#: :data:`MAX_DOWNLOAD_BYTES`), read when the download starts.
DEFAULT = _Default()


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checksum."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the expected one (the network itself worked)."""


class _Truncated(OSError):
    """The connection closed before ``Content-Length`` bytes arrived (retried)."""


class _DeadlinePassed(Exception):
    """The overall deadline passed (not retried)."""


class TooLarge(DownloadError):
    """The body is larger than the download's ``max_bytes`` (not retried)."""


class _Unverified(OSError):
    """A body without ``Content-Length`` whose sha256 differs: perhaps cut short (retried)."""


def _size(n: int) -> str:
    """Bytes in words: ``4294967296 bytes (4.0 GiB)``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n} bytes ({n / (1 << shift):.1f} {unit})"
    return f"{n} bytes"


def _too_large(url: str, size: int | None, limit: int) -> TooLarge:
    what = f"is {_size(size)}" if size is not None else "is larger"
    return TooLarge(f"refusing {url}: it {what}, over the download limit of {_size(limit)} (max_bytes)")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def is_url(source: str) -> bool:
    return str(source).startswith(("http://", "https://", "file://"))


def _reason(e) -> str:
    return str(getattr(e, "reason", None) or e) or type(e).__name__


def _transfer(url: str, sink: BinaryIO, *, timeout: float, end: float | None, bar=None,
              max_bytes: int | None = None, sized: list | None = None) -> str:
    """Stream ``url``'s body into ``sink``; return its sha256. Raises ``_Truncated`` for a short
    body, ``_DeadlinePassed`` past ``end`` (a ``time.monotonic()`` instant), :class:`TooLarge`
    past ``max_bytes``. ``sized``, if given, gets whether the body's length was announced."""
    h = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as r:
        expected = r.headers.get("Content-Length")
        expected = int(expected) if expected and expected.isdigit() else None
        chunked = "chunked" in (r.headers.get("Transfer-Encoding") or "").lower()  # a cut is IncompleteRead
        if sized is not None:
            sized[:] = [expected is not None or chunked]
        if max_bytes is not None and expected is not None and expected > max_bytes:
            raise _too_large(url, expected, max_bytes)
        if bar is not None:
            bar.reset(total=expected)
        while True:
            if end is not None and time.monotonic() > end:
                raise _DeadlinePassed()
            block = r.read1(_BLOCK)  # what one socket read brings: the deadline is checked between reads
            if not block:
                break
            received += len(block)
            if max_bytes is not None and received > max_bytes:
                raise _too_large(url, None, max_bytes)
            sink.write(block)
            h.update(block)
            if bar is not None:
                bar.update(len(block))
    if expected is not None and received < expected:
        raise _Truncated(f"the connection closed after {received} of {expected} bytes")
    return h.hexdigest()


def _with_retries(url: str, attempt_fn, *, retries: int, backoff: float, deadline: float | None, verb: str):
    """Call ``attempt_fn(end)`` up to ``retries`` times; transient network errors are retried."""
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    end = None if deadline is None else time.monotonic() + deadline
    last: BaseException | None = None
    for attempt in range(retries):
        try:
            return attempt_fn(end)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise FileNotFoundError(f"{url}: HTTP 404 not found") from e
            last = e
        except _DeadlinePassed:
            raise DownloadError(f"could not {verb} {url}: gave up after the {deadline:g} s deadline") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            if isinstance(e, OSError) and not isinstance(e, urllib.error.URLError) and e.filename is not None:
                raise  # a local file error (no space, no permission): retrying will not help
            last = e  # refused, reset, timed out (socket timeout is an OSError), truncated body
        if attempt + 1 < retries:
            pause = backoff * 2**attempt
            if end is not None and time.monotonic() + pause > end:
                raise DownloadError(f"could not {verb} {url}: gave up after the {deadline:g} s deadline "
                                    f"({attempt + 1} tries; last: {_reason(last)})")
            time.sleep(pause)
    raise DownloadError(f"could not {verb} {url} after {retries} tries: {_reason(last)}")


def fetch_bytes(url: str, *, retries: int = 3, timeout: float = 30.0, deadline: float | None = DEFAULT,
                backoff: float = 1.0, max_bytes: int | None = DEFAULT) -> bytes:
    """The body of ``url`` (small files), complete. HTTP 404 raises :class:`FileNotFoundError`
    at once; anything else that fails every try raises :class:`DownloadError` (:class:`TooLarge`
    over ``max_bytes``). Defaults: :data:`FETCH_DEADLINE`, :data:`MAX_DOWNLOAD_BYTES`."""
    limit = MAX_DOWNLOAD_BYTES if max_bytes is DEFAULT else max_bytes
    deadline = FETCH_DEADLINE if deadline is DEFAULT else deadline

    def attempt(end):
        buf = io.BytesIO()
        _transfer(url, buf, timeout=timeout, end=end, max_bytes=limit)
        return buf.getvalue()

    return _with_retries(url, attempt, retries=retries, backoff=backoff, deadline=deadline, verb="reach")


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    deadline: float | None = DEFAULT,
    backoff: float = 1.0,
    progress: bool = True,
    max_bytes: int | None = DEFAULT,
) -> Path:
    """Download ``url`` to ``dest``, verify its sha256, then rename it into place.

    The bytes go to a temporary file beside ``dest``; on any failure (network, HTTP error,
    truncated body, checksum mismatch, the deadline, Ctrl-C) it is removed and ``dest`` is left
    as it was. Transient failures, a body shorter than ``Content-Length`` included, are retried
    ``retries`` times with exponential backoff. Time and size limits (``deadline``, default
    :data:`DOWNLOAD_DEADLINE`; ``max_bytes``, default :data:`MAX_DOWNLOAD_BYTES`): see the module docstring.

    Raises:
        DownloadError: unreachable after retries, HTTP 404, or past the deadline.
        TooLarge: (a DownloadError) the body is over ``max_bytes``; the message names the URL and the limit.
        ChecksumError: (a DownloadError) the sha256 of a complete body differs; the message
            names the URL, the expected and the actual hash.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=url.rsplit("/", 1)[-1] or dest.name, leave=False)

    limit = MAX_DOWNLOAD_BYTES if max_bytes is DEFAULT else max_bytes
    deadline = DOWNLOAD_DEADLINE if deadline is DEFAULT else deadline
    mismatch: list[str] = []

    def attempt(end):
        sized: list = []
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                actual = _transfer(url, f, timeout=timeout, end=end, bar=bar, max_bytes=limit, sized=sized)
            if sha256 is not None and actual != sha256.lower():
                message = f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}"
                if sized == [False]:  # no Content-Length: the connection may have dropped; try again
                    mismatch[:] = [message]
                    raise _Unverified(f"{message} (no Content-Length: perhaps a dropped connection)")
                raise ChecksumError(message)
        return dest

    try:
        return _with_retries(url, attempt, retries=retries, backoff=backoff, deadline=deadline, verb="download")
    except FileNotFoundError as e:
        raise DownloadError(str(e)) from e
    except DownloadError as e:
        if mismatch and "checksum mismatch" in str(e) and not isinstance(e, ChecksumError):
            raise ChecksumError(f"{mismatch[0]} on each of {retries} tries (no Content-Length)") from None
        raise
    finally:
        if bar is not None:
            bar.close()


def copy_verified(src: str | os.PathLike, dest: str | os.PathLike, *, sha256: str | None = None) -> Path:
    """Copy a local file to ``dest``, atomically, and check the copy's sha256.

    Always a copy of its own (``shutil.copyfile``; the kernel may share the blocks where the
    filesystem can, e.g. btrfs or XFS), never a link: ``dest`` is a pipeline output that DVC
    moves into its cache, and a link would make the source (a file git tracks, a user's folder)
    the cache object itself, so that overwriting the source rewrote the cache in place. The hash
    is of the copy, so a source changed while it was copied cannot pass.
    """
    src, dest = Path(src), Path(dest)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        actual = sha256_file(tmp)
        if sha256 is not None and actual != sha256.lower():
            raise ChecksumError(f"checksum mismatch for {src}: expected sha256 {sha256.lower()}, got {actual}")
    return dest
