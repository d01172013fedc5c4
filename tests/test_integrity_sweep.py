"""Issue 20, item 8: temporary files and archive scratch folders of killed runs are swept even
when no writer of the same destination runs again (tools/run.py sweeps before and after DVC)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import write_encoder_checkpoint
from PIL import Image

from modelgif.io import atomic as _atomic
from modelgif.reference import archives

ROOT = Path(__file__).resolve().parent.parent
STAGES = ROOT / "stages"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def live_pid():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield p.pid
    p.kill()
    p.wait()


def _temp(dest: Path, pid: int, host: str | None = None) -> Path:
    name = _atomic.temp_name(dest, pid)
    if host is not None:
        name = name.with_name(name.name.replace(f".{_atomic._host()}.", f".{host}.", 1))
    name.parent.mkdir(parents=True, exist_ok=True)
    name.write_bytes(b"x" * 1000)
    return name


@pytest.mark.slow  # starts and kills processes
def test_sweep_stale_tree_removes_only_temporaries_of_dead_processes_of_this_host(tmp_path, live_pid):
    dead = _dead_pid()
    stale = [_temp(tmp_path / "data" / "fields" / "normal.npy", dead),
             _temp(tmp_path / "data" / "reference" / "images.npy", dead)]
    kept = [_temp(tmp_path / "data" / "fields" / "reshading.npy", live_pid),
            _temp(tmp_path / "data" / "fields" / "depth.npy", dead, host="otherhost"),
            _temp(tmp_path / "data" / "fields" / "mine.npy", os.getpid())]
    for name in (".hidden.tmp", ".a.b.tmp", "normal.npy", f".x.{_atomic._host()}.{dead}.nothex00.tmp"):
        (tmp_path / "data" / name).write_text("not a temporary file of ours")
        kept.append(tmp_path / "data" / name)
    removed = _atomic.sweep_stale_tree(tmp_path / "data")
    assert sorted(removed) == sorted((p, 1000) for p in stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert _atomic.sweep_stale_tree(tmp_path / "missing") == []


_SLOW = """
import os, pathlib, time
import modelgif.field.gradients as field
import modelgif.reference.build as build

def slow_field(*args, **kwargs):
    pathlib.Path(os.environ["MARKER"]).write_text("started")
    time.sleep(60)
    yield

def slow_decode(*args, **kwargs):
    pathlib.Path(os.environ["MARKER"]).write_text("started")
    time.sleep(60)

field.iter_gradient_field = slow_field
build.decode_image = slow_decode
"""


def _kill_when_started(cmd: list[str], cwd: Path, marker: Path, env: dict) -> None:
    (cwd / "site").mkdir(exist_ok=True)
    (cwd / "site" / "sitecustomize.py").write_text(_SLOW)
    env = {**os.environ, "MODELGIF_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join([str(cwd / "site"), os.environ.get("PYTHONPATH", "")]), **env}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the stage did not start: {proc.communicate()[1]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _run_tool(cwd: Path, tmpdir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmpdir),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "run.py"), "version"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # starts and kills processes
def test_the_temporary_field_of_a_killed_run_is_swept_by_the_next_run_tool_call(tmp_path, live_pid):
    write_encoder_checkpoint(tmp_path / "normal.pth", seed=0)
    np.save(tmp_path / "images.npy", np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8))
    _kill_when_started([sys.executable, str(STAGES / "field.py"), "normal", "--checkpoint", "normal.pth",
                        "--reference", "images.npy", "--n-steps", "2", "--out", "data/fields/normal.npy"],
                       tmp_path, tmp_path / "started", {})
    left = list((tmp_path / "data" / "fields").glob(".normal.npy.*.tmp"))
    assert len(left) == 1  # SIGKILL: the stage could not remove it
    live = _temp(tmp_path / "data" / "fields" / "reshading.npy", live_pid)  # a concurrent writer's
    (tmp_path / "tmpdir").mkdir()
    r = _run_tool(tmp_path, tmp_path / "tmpdir")
    assert r.returncode == 0, r.stderr
    assert "swept 1 temporary file(s) (" in r.stdout and "left by killed runs" in r.stdout, r.stdout
    assert not left[0].exists() and live.exists()
    assert not (tmp_path / "data" / "fields" / "normal.npy").exists()


def _image_tar(path: Path, n: int = 3) -> Path:
    src = path.parent / "imgs"
    src.mkdir()
    for i in range(n):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(src / f"{i}.png")
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, arcname="imgs")
    return path


@pytest.mark.slow  # starts and kills processes
def test_the_archive_scratch_of_a_killed_fetch_is_swept_and_a_live_one_kept(tmp_path, live_pid):
    archive = _image_tar(tmp_path / "set.tar.gz")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    _kill_when_started([sys.executable, str(STAGES / "fetch_reference.py"), "--source", str(archive),
                        "--n-images", "3", "--size", "8", "--cutmix", "false", "--out", "ref"],
                       tmp_path, tmp_path / "started", {"TMPDIR": str(tmpdir), "TORCH_HOME": str(tmp_path)})
    left = sorted(tmpdir.glob("modelgif-archive-*"))
    assert len(left) == 1 and any(p.is_file() for p in left[0].rglob("*"))  # the extracted members
    live = tmpdir / f"modelgif-archive-{_atomic._host()}.{live_pid}.abcdefgh"
    live.mkdir()
    (live / "archive").write_bytes(b"x")
    unowned = tmpdir / "modelgif-archive-zzzzzzzz"  # no owner to be found: kept
    unowned.mkdir()
    r = _run_tool(tmp_path, tmpdir)
    assert r.returncode == 0, r.stderr
    assert "1 archive scratch folder(s)" in r.stdout, r.stdout
    assert not left[0].exists() and live.exists() and unowned.exists()


@pytest.mark.slow  # starts and kills processes
def test_scratch_folders_name_their_owner_and_go_when_done(tmp_path):
    with archives.scratch_dir(tmp_path) as scratch:
        assert scratch.name.startswith(f"modelgif-archive-{_atomic._host()}.{os.getpid()}.")
        assert archives.sweep_stale_scratch(tmp_path) == []  # ours, alive
        (scratch / "a").write_bytes(b"x")
    assert not scratch.exists()
    dead = tmp_path / f"modelgif-archive-{_atomic._host()}.{_dead_pid()}.abcdefgh"
    (dead / "members").mkdir(parents=True)
    (dead / "members" / "0").write_bytes(b"y" * 500)
    assert archives.sweep_stale_scratch(tmp_path) == [(dead, 500)]


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_zip_and_plain_tar_members_are_streamed_without_a_scratch_copy(tmp_path, monkeypatch, kind):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(imgs / f"{i}.png")
    archive = tmp_path / f"set.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted(imgs.iterdir()):
                zf.write(p, f"imgs/{p.name}")
    else:
        with tarfile.open(archive, "w") as tf:
            tf.add(imgs, arcname="imgs")
    scratch_parent = tmp_path / "tmpdir"
    scratch_parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_parent))
    seen = []
    for name, data in archives.read_archive(archive, 3):
        assert list(scratch_parent.iterdir()) == []  # nothing spilled to TMPDIR
        seen.append((name, data))
    assert [n for n, _ in seen] == ["imgs/0.png", "imgs/1.png", "imgs/2.png"]
    assert seen[2][1] == (imgs / "2.png").read_bytes()


def test_a_compressed_tar_spills_at_most_max_total_bytes(tmp_path, monkeypatch):
    archive = _image_tar(tmp_path / "set.tar.gz")
    total = sum(p.stat().st_size for p in (tmp_path / "imgs").iterdir())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ValueError) as e:
        list(archives.read_archive(archive, 3, max_total_bytes=total - 1))
    assert str(e.value).startswith(f"{archive}: the images up to member imgs/2.png take more than {total - 1} bytes")
    assert "\n" not in str(e.value)
    assert list(tmp_path.glob("modelgif-archive-*")) == []  # the scratch copy went with the error
    assert [n for n, _ in archives.read_archive(archive, 3, max_total_bytes=total)] == \
        ["imgs/0.png", "imgs/1.png", "imgs/2.png"]
