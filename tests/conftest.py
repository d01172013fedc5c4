"""Shared fixtures: a local HTTP server standing in for the network (tests never go online); and
the fast tier's rule (``pytest -m "not slow"``, ``make test-fast``): a test that starts a
project process (a stage script, ``dvc``, ``git``, ``make``, ``torchrun``, another Python) is
marked ``slow``, else it fails saying so (:func:`_fast_tier_starts_no_process`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from faulty_server import serve_faulty
from helpers import serve_directory

import modelgif
from modelgif.zoo.taskonomy import build_encoder

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


def _family(weights, task="normal", base_seed=100):
    """Random-init TaskonomyEncoders with correlated seeds: model k mixes a shared init θ₀ with its
    own θ_k as sqrt(1 − λ_k²) θ₀ + λ_k θ_k (weights of every conv/linear layer). Each is again
    distributed as a random init; their field distances spread from ~0.05 to ~0.9 with λ."""
    torch.manual_seed(base_seed)
    base = build_encoder(task).state_dict()
    models = []
    for k, lam in enumerate(weights):
        torch.manual_seed(k)
        own = build_encoder(task).state_dict()
        mixed = {name: (np.sqrt(1 - lam**2) * v + lam * own[name]) if v.dim() > 1 else v for name, v in base.items()}
        m = build_encoder(task)
        m.load_state_dict(mixed)
        models.append(m.eval())
    return models


@pytest.fixture(scope="session")
def family_fields():
    """Exact fields of 8 random-init encoders at 64 px: 16 images × 8 steps, H·W = 4096."""
    models = _family([0.0, 0.01, 0.02, 0.04, 0.07, 0.12, 0.2, 0.35])
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 64, 64, generator=g) * 2 - 1
    xb = modelgif.make_baselines(x, "shuffled", 0)
    return models, x, xb, [modelgif.gradient_field(m, x, xb, n_steps=8) for m in models]


@pytest.fixture
def faulty():
    """A factory ``faulty(root, fault) -> (base_url, requests)`` (:mod:`faulty_server`); servers stop after the test."""
    stops = []

    def start(root, fault):
        base, requests, stop = serve_faulty(root, fault)
        stops.append(stop)
        return base, requests

    yield start
    for stop in stops:
        stop()


#: Programs whose start makes a test a slow one (the first word of the command, its file name).
PROJECT_PROGRAMS = ("python", "dvc", "git", "make", "torchrun")


def project_process(args) -> str | None:
    """The command line of ``args`` (as given to :class:`subprocess.Popen`) if it starts one of
    :data:`PROJECT_PROGRAMS` or this Python; None for other programs (``mount`` of a fixture)."""
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    if not argv:
        return None
    first = os.fsdecode(argv[0])
    words = first.split() if len(argv) == 1 else [first]
    program = Path(words[0]).name if words else ""
    if first == sys.executable or program.startswith(PROJECT_PROGRAMS):
        return " ".join(os.fsdecode(a) for a in argv)[:200]
    return None


@pytest.fixture(autouse=True)
def _fast_tier_starts_no_process(request, monkeypatch):
    """Fail a test not marked ``slow`` that started a project process (module doc)."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    started = []
    original = subprocess.Popen.__init__

    def init(self, args, *a, **kw):
        if (line := project_process(args)) is not None:
            started.append(line)
        original(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", init)
    yield
    if started:
        pytest.fail(f"this test is in the fast tier but started {len(started)} process(es), the first "
                    f"`{started[0]}`: mark it @pytest.mark.slow (pyproject.toml)", pytrace=False)
