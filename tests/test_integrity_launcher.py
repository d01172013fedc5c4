"""Issue 20, item 7: the ranks of MODELGIF_NPROC die with their launcher and publish nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import write_encoder_checkpoint

STAGES = Path(__file__).resolve().parent.parent / "stages"
ARGS = ["normal", "--checkpoint", "normal.pth", "--reference", "images.npy", "--target", "1", "--n-steps", "2",
        "--dtype", "float32"]
#: How long each rank sleeps before its first chunk (seconds): the run lasts at least this long.
DELAY = 25

# Each rank announces that it has started computing (rank 0 has created the output's temporary
# file by then), then sleeps DELAY s before its first chunk: a run that is still going.
_SLOW = f"""
import os, pathlib, time
if os.environ.get("RANK") is not None:
    import modelgif.field.gradients as field
    original = field.iter_gradient_field

    def slow(*args, **kwargs):
        pathlib.Path(os.environ["MARKERS"], "rank" + os.environ["RANK"]).write_text(str(os.getpid()))
        time.sleep({DELAY})
        yield from original(*args, **kwargs)

    field.iter_gradient_field = slow
"""


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "X")
    return state not in ("Z", "X")


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    write_encoder_checkpoint(tmp_path / "normal.pth", seed=0)
    np.save(tmp_path / "images.npy", np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_SLOW)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "MODELGIF_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "MODELGIF_NPROC": "2",
           "MARKERS": str(markers),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(STAGES / "field.py"), *ARGS, "--out", "out/normal.npy"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, markers, tmp_path / "out" / "normal.npy"


def _wait_for_ranks(proc: subprocess.Popen, markers: Path) -> list[int]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        files = sorted(markers.glob("rank*"))
        if len(files) == 2 and all(f.read_text() for f in files):
            return [int(f.read_text()) for f in files]
        if proc.poll() is not None:
            pytest.fail(f"the launcher exited early: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the ranks did not start within 180 s")


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp")) if folder.exists() else []


@pytest.mark.slow  # starts and kills torchrun ranks
def test_sigkill_of_the_launcher_stops_every_rank_and_publishes_nothing(tmp_path):
    proc, markers, out = _start(tmp_path)
    ranks = _wait_for_ranks(proc, markers)
    assert all(_alive(p) for p in ranks)
    killed = time.monotonic()
    proc.kill()  # SIGKILL: the launcher cannot clean up
    proc.communicate()
    while any(_alive(p) for p in ranks) and time.monotonic() - killed < 20:
        time.sleep(0.1)
    left = [p for p in ranks if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert left == [], f"ranks {left} still running 20 s after their launcher was killed"
    # well past the time the ranks would have needed to finish and rename the field into place
    time.sleep(max(0.0, DELAY + 5 - (time.monotonic() - killed)))
    assert not out.exists()
    assert _temps(out.parent) == []  # rank 0 removed its temporary file on its way out


@pytest.mark.slow  # starts and kills torchrun ranks
def test_sigterm_of_the_launcher_gives_one_line_and_publishes_nothing(tmp_path):
    proc, markers, out = _start(tmp_path)
    ranks = _wait_for_ranks(proc, markers)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    # the ranks' progress bars aside (tqdm on stderr), one line
    lines = [line for line in stderr.splitlines() if line.strip() and not re.match(r"field normal \(.*\|", line)]
    assert "Traceback" not in stderr, stderr
    assert lines[-1] == "error: stopped by SIGTERM; no field written", stderr
    assert len(lines) == 1, stderr
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in ranks) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in ranks)
    assert not out.exists() and _temps(out.parent) == []
