"""The field stage sharded over processes by torch.distributed.run (CPU, gloo, 2 processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_encoder_checkpoint

from modelgif.field.distributed import nproc_from_env, shard
from modelgif.io.storage import load_field

STAGES = Path(__file__).resolve().parent.parent / "stages"
ARGS = ["normal", "--checkpoint", "normal.pth", "--reference", "images.npy", "--target", "1", "--n-steps", "2",
        "--dtype", "float32"]


def run_field(cwd: Path, out: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGES / "field.py"), *ARGS, "--out", out], cwd=cwd,
                          env={**os.environ, "MODELGIF_DEVICE": "cpu", "OMP_NUM_THREADS": "1", **env},
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    write_encoder_checkpoint(root / "normal.pth", seed=0)
    np.save(root / "images.npy", np.random.default_rng(0).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8))
    r = run_field(root, "single/normal.npy")
    assert r.returncode == 0, r.stderr
    return root


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp")) if folder.exists() else []


def test_shards_are_contiguous_and_cover_every_image_once():
    for n in (0, 1, 5, 1000):
        for size in (1, 2, 3, 8):
            parts = [shard(n, r, size) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_nproc_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("MODELGIF_NPROC", "3")
    assert nproc_from_env() == 3
    monkeypatch.setenv("WORLD_SIZE", "3")  # already a torchrun worker: no second launch
    assert nproc_from_env() == 0
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("MODELGIF_NPROC", "two")
    with pytest.raises(ValueError, match="MODELGIF_NPROC must be a positive integer"):
        nproc_from_env()


@pytest.mark.slow  # runs the field stage under torchrun
def test_two_processes_write_the_single_process_field(project):
    r = run_field(project, "sharded/normal.npy", MODELGIF_NPROC="2")
    assert r.returncode == 0, r.stderr
    single = load_field(project / "single" / "normal.npy")
    sharded = load_field(project / "sharded" / "normal.npy")
    assert sharded.shape == single.shape == (5, 2, 32 * 32)
    assert np.linalg.norm(sharded - single) <= 1e-5 * np.linalg.norm(single)
    # each process computed only its own contiguous slice (counted from the chunks it wrote)
    assert "rank 0/2: computed images 0..1 (2 of 5)" in r.stdout
    assert "rank 1/2: computed images 2..4 (3 of 5)" in r.stdout
    assert _temps(project / "sharded") == []


# A fault in rank 1 only, while it computes (rank 0 has created the output's temporary file).
_FAULT = """
import os
if os.environ.get("RANK") == "1":
    import modelgif.field.gradients as field

    def failing(*args, **kwargs):
        raise ValueError("simulated fault in rank 1's images")
        yield

    field.iter_gradient_field = failing
"""


@pytest.mark.slow  # runs the field stage under torchrun
def test_a_failing_rank_fails_the_stage_with_its_message_and_leaves_nothing(project, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(_FAULT)
    r = run_field(project, "failed/normal.npy", MODELGIF_NPROC="2",
                  PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last == "error: rank 1: simulated fault in rank 1's images; no field written", r.stderr
    assert "Traceback" not in r.stderr
    assert not (project / "failed" / "normal.npy").exists() and _temps(project / "failed") == []
