"""Verified downloads: sha256-checked, retried, bounded in time, atomic, with a progress bar.

Two limits bound every download (both arguments of :func:`fetch_bytes` and
:func:`download_file`):

- ``timeout`` (seconds): how long one socket operation (the connect, or one read) may wait
  for the server. A mirror that stops sending fails that try after ``timeout``.
- ``deadline`` (seconds, ``None``: none): the whole download, every try and every backoff
  included. It is checked before each try and after each block read, so a download that
  trickles (a byte now and then, each read inside ``timeout``) still ends: it fails at the
  latest ``deadline + timeout`` seconds after it started.

A body shorter than the server's ``Content-Length`` (a dropped connection) is an error of
the try, and is retried like a refused connection or an HTTP 5xx. HTTP 404 is not retried.
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

from ._atomic import atomic_path

_BLOCK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checksum."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the expected one (the network itself worked)."""


class _Truncated(OSError):
    """The connection closed before ``Content-Length`` bytes arrived (retried)."""


class _DeadlinePassed(Exception):
    """The overall deadline passed (not retried)."""


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


def _transfer(url: str, sink: BinaryIO, *, timeout: float, end: float | None, bar=None) -> str:
    """Stream ``url``'s body into ``sink``; return its sha256. Raises ``_Truncated`` for a short
    body, ``_DeadlinePassed`` past ``end`` (a ``time.monotonic()`` instant)."""
    h = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as r:
        expected = r.headers.get("Content-Length")
        expected = int(expected) if expected and expected.isdigit() else None
        if bar is not None:
            bar.reset(total=expected)
        while True:
            if end is not None and time.monotonic() > end:
                raise _DeadlinePassed()
            block = r.read1(_BLOCK)  # what one socket read brings: the deadline is checked between reads
            if not block:
                break
            sink.write(block)
            h.update(block)
            received += len(block)
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


def fetch_bytes(url: str, *, retries: int = 3, timeout: float = 30.0, deadline: float | None = 300.0,
                backoff: float = 1.0) -> bytes:
    """The body of ``url`` (small files), complete. HTTP 404 raises :class:`FileNotFoundError`
    at once; anything else that fails every try raises :class:`DownloadError`."""

    def attempt(end):
        buf = io.BytesIO()
        _transfer(url, buf, timeout=timeout, end=end)
        return buf.getvalue()

    return _with_retries(url, attempt, retries=retries, backoff=backoff, deadline=deadline, verb="reach")


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    deadline: float | None = None,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, verify its sha256, then rename it into place.

    The bytes go to a temporary file beside ``dest``; on any failure (network, HTTP error,
    truncated body, checksum mismatch, the deadline, Ctrl-C) it is removed and ``dest`` is left
    as it was. Transient failures, a body shorter than ``Content-Length`` included, are retried
    ``retries`` times with exponential backoff. Time limits: see the module docstring.

    Raises:
        DownloadError: unreachable after retries, HTTP 404, or past the deadline.
        ChecksumError: (a DownloadError) the sha256 of a complete body differs; the message
            names the URL, the expected and the actual hash.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=url.rsplit("/", 1)[-1] or dest.name, leave=False)

    def attempt(end):
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                actual = _transfer(url, f, timeout=timeout, end=end, bar=bar)
            if sha256 is not None and actual != sha256.lower():
                raise ChecksumError(f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}")
        return dest

    try:
        return _with_retries(url, attempt, retries=retries, backoff=backoff, deadline=deadline, verb="download")
    except FileNotFoundError as e:
        raise DownloadError(str(e)) from e
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
