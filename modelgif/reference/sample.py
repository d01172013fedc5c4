"""Taskonomy's public sample building, fetched image by image.

RGB views are at ``{base_url}/{commit}/rgb/point_{p}_view_0_domain_rgb.png`` for
p = 0, 1, 2, …; points without a view 0 answer HTTP 404 and are skipped.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading

from tqdm.auto import tqdm

from ..io.download import fetch_bytes

#: Source name of Taskonomy's public sample building.
SAMPLE = "taskonomy-sample"
SAMPLE_BASE_URL = "https://raw.githubusercontent.com/alexsax/taskonomy-sample-model-1"
SAMPLE_COMMIT = "eed3233b1338f74b38af6d91b37cd9e03528d5e8"


def sample_name(point: int | str) -> str:
    return f"point_{point}_view_0_domain_rgb.png"


def sample_url(point: int | str, base_url: str = SAMPLE_BASE_URL, commit: str = SAMPLE_COMMIT) -> str:
    """URL of the view-0 RGB image of ``point`` in the sample building."""
    return f"{base_url.rstrip('/')}/{commit}/rgb/{sample_name(point)}"


def _in_daemon_thread(fn, arg) -> concurrent.futures.Future:
    """Run ``fn(arg)`` in a daemon thread: a fetch stuck on a stalled mirror never holds up the
    interpreter's exit (a ``ThreadPoolExecutor`` joins its threads at exit, so Ctrl-C would
    wait out every socket timeout)."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run():
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(arg))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            future.set_exception(e)

    threading.Thread(target=run, daemon=True, name=f"fetch-{arg}").start()
    return future


def _result(future: concurrent.futures.Future, poll: float = 0.25):
    """``future.result()``, waited for in short slices. A signal (Ctrl-C) that the kernel
    delivers to another thread of the process (a fetch thread, torch's workers) does not
    interrupt a main thread blocked in one long lock wait, and Python runs signal handlers only
    in the main thread: without the slices, Ctrl-C waited for a stalled socket's timeout."""
    while not concurrent.futures.wait([future], timeout=poll).done:
        pass
    return future.result()


def fetch_taskonomy_sample(
    n_images: int,
    base_url: str = SAMPLE_BASE_URL,
    commit: str = SAMPLE_COMMIT,
    *,
    workers: int = 8,
    max_misses: int = 50,
    retries: int = 3,
    timeout: float = 30.0,
    deadline: float | None = 300.0,
    progress: bool = True,
) -> list[tuple[str, bytes]]:
    """Fetch the first ``n_images`` view-0 RGB images of the sample building.

    Points p = 0, 1, 2, … are requested ``workers`` at a time and taken in point order; a
    point that answers HTTP 404 is skipped. Each image is one :func:`~modelgif.io.download.fetch_bytes`
    (``retries``, ``timeout`` per socket read, ``deadline`` per image; a truncated body is retried).

    Returns:
        ``[(file name, file bytes)]`` for ``n_images`` points, in point order.

    Raises:
        ValueError: ``max_misses`` consecutive points are missing before ``n_images`` are
            found (the message says how many were found).
        DownloadError: a URL could not be fetched after ``retries`` tries or within ``deadline``.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")

    def get(point: int) -> bytes | None:
        try:
            return fetch_bytes(sample_url(point, base_url, commit), retries=retries, timeout=timeout, deadline=deadline)
        except FileNotFoundError:
            return None

    found: list[tuple[str, bytes]] = []
    misses, next_point = 0, 0
    pending: collections.deque = collections.deque()
    with tqdm(total=n_images, desc="reference images", unit="img", disable=not progress) as bar:
        try:
            while len(found) < n_images:
                while len(pending) < max(1, workers):
                    pending.append((next_point, _in_daemon_thread(get, next_point)))
                    next_point += 1
                point, future = pending.popleft()
                data = _result(future)
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
