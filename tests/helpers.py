"""Test data writers: official-format encoder checkpoints and a fake Taskonomy sample building."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modelgif.io.download import sha256_file
from modelgif.reference import SAMPLE_COMMIT, sample_name


def write_encoder_checkpoint(path: str | Path, seed: int = 0) -> str:
    """Save a randomly initialised ``TaskonomyEncoder`` as ``{"state_dict": ...}`` (the
    official checkpoint format, ~95 MB) to ``path``; return the file's sha256."""
    from visualpriors.taskonomy_network import TaskonomyEncoder

    torch.manual_seed(seed)
    model = TaskonomyEncoder(eval_only=True)  # the same keys with or without output GroupNorm
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict()}, path)
    return sha256_file(path)


def write_sample_building(
    root: str | Path,
    n: int,
    size: tuple[int, int] = (24, 16),
    missing: tuple[int, ...] = (),
    commit: str = SAMPLE_COMMIT,
    seed: int = 0,
) -> list[int]:
    """Write ``n`` random RGB PNGs (``size`` = (width, height)) in the sample building's layout.

    Files are ``<root>/<commit>/rgb/point_<p>_view_0_domain_rgb.png`` for p = 0, 1, 2, …,
    skipping the points in ``missing``, until ``n`` are written. Returns the points written.
    """
    rgb = Path(root) / commit / "rgb"
    rgb.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    points, p = [], 0
    while len(points) < n:
        if p not in missing:
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(rgb / sample_name(p))
            points.append(p)
        p += 1
    return points


def closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of parallel connects (1 s SYN retry)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def serve_directory(root: str | Path):
    """Serve ``root`` over HTTP on 127.0.0.1 in a daemon thread: ``(base_url, stop)``."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()
        thread.join()

    return f"http://127.0.0.1:{server.server_address[1]}", stop


def copy_project(root: Path, dest: Path) -> Path:
    """Copy the files git knows of (tracked, and untracked but not ignored) from ``root`` to ``dest``."""
    import shutil
    import subprocess

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        if (root / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dest / rel)
    return dest


def pipeline_env(tmp: Path) -> dict:
    """Environment for `dvc`/`git` in a test copy: the running Python's bin first, CPU, no analytics."""
    import os
    import sys

    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "TORCH_HOME": str(tmp / "torch_home"), "MODELGIF_DEVICE": "cpu",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}
