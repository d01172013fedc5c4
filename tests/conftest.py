"""Shared fixtures: a local HTTP server standing in for the network (tests never go online)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import serve_directory

# A proxy configured in the environment must not intercept the local test servers
# (this also reaches the stage scripts the tests run as subprocesses).
os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(
    filter(None, [os.environ.get("no_proxy"), "127.0.0.1", "localhost"])
)


@pytest.fixture
def http_server():
    """A factory ``http_server(root: Path) -> base_url``: serve ``root`` on 127.0.0.1.

    Each call starts a server (:func:`helpers.serve_directory`) and returns its base URL
    (``http://127.0.0.1:<port>``, no trailing slash); a missing file answers HTTP 404.
    Every server is shut down at the end of the test.
    """
    stops = []

    def serve(root: Path) -> str:
        base, stop = serve_directory(root)
        stops.append(stop)
        return base

    yield serve
    for stop in stops:
        stop()
