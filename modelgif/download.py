"""Verified downloads: sha256-checked, retried, atomic, with a progress bar."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ._atomic import atomic_path

_BLOCK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checksum."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the expected one (the network itself worked)."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def is_url(source: str) -> bool:
    return str(source).startswith(("http://", "https://", "file://"))


def fetch_bytes(url: str, *, retries: int = 3, timeout: float = 60.0, backoff: float = 1.0) -> bytes:
    """The body of ``url`` (small files). HTTP 404 raises :class:`FileNotFoundError` at once."""
    last = None
    for attempt in range(retries):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise FileNotFoundError(f"{url}: HTTP 404 not found") from e
            last = e
        except (urllib.error.URLError, OSError) as e:
            last = e
        if attempt + 1 < retries:
            time.sleep(backoff * 2**attempt)
    raise DownloadError(f"could not reach {url} after {retries} tries: {_reason(last)}")


def _reason(e) -> str:
    return str(getattr(e, "reason", None) or e)


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, verify its sha256, then rename it into place.

    The bytes go to a temporary file beside ``dest``; on any failure (network, HTTP error,
    checksum mismatch) it is removed and ``dest`` is left as it was. Transient failures are
    retried ``retries`` times with exponential backoff.

    Raises:
        DownloadError: unreachable after retries, or HTTP 404.
        ChecksumError: (a DownloadError) the sha256 differs; the message names the URL, the
            expected and the actual hash.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    last = None
    for attempt in range(retries):
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
                total = int(r.headers.get("Content-Length") or 0) or None
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=url.rsplit("/", 1)[-1] or dest.name, leave=False)
                for block in iter(lambda: r.read(_BLOCK), b""):
                    f.write(block)
                    h.update(block)
                    if bar is not None:
                        bar.update(len(block))
                if bar is not None:
                    bar.close()
            actual = h.hexdigest()
            if sha256 is not None and actual != sha256.lower():
                raise ChecksumError(
                    f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}"
                )
            os.replace(tmp, dest)
            return dest
        except DownloadError:
            Path(tmp).unlink(missing_ok=True)
            raise
        except urllib.error.HTTPError as e:
            Path(tmp).unlink(missing_ok=True)
            if e.code == 404:
                raise DownloadError(f"{url}: HTTP 404 not found") from e
            last = e
        except (urllib.error.URLError, OSError) as e:
            Path(tmp).unlink(missing_ok=True)
            last = e
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if attempt + 1 < retries:
            time.sleep(backoff * 2**attempt)
    raise DownloadError(f"could not download {url} after {retries} tries: {_reason(last)}")


def copy_verified(src: str | os.PathLike, dest: str | os.PathLike, *, sha256: str | None = None) -> Path:
    """Place a local file at ``dest`` (hard link, else copy), atomically, after checking its sha256."""
    src, dest = Path(src), Path(dest)
    if sha256 is not None:
        actual = sha256_file(src)
        if actual != sha256.lower():
            raise ChecksumError(f"checksum mismatch for {src}: expected sha256 {sha256.lower()}, got {actual}")
    with atomic_path(dest) as tmp:
        tmp.unlink()  # os.link needs the name free
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dest
