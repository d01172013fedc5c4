import numpy as np
import pytest

from modelgif.io.storage import FieldWriter, decode, encode, load_field, open_field, save_field


def _field(rng, shape=(5, 3, 64), scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def test_float32_round_trip_is_exact(tmp_path):
    f = _field(np.random.default_rng(0))
    save_field(tmp_path / "f.npy", f, dtype="float32")
    assert np.array_equal(load_field(tmp_path / "f.npy"), f)
    assert np.load(tmp_path / "f.npy").dtype == np.float32  # a plain .npy


@pytest.mark.parametrize("scale", [1.0, 1e-7, 1e-12, 1e4])
def test_float16_keeps_relative_precision_at_any_scale(tmp_path, scale):
    f = _field(np.random.default_rng(1), scale=scale)
    save_field(tmp_path / "f.npy", f)  # float16 default
    back = load_field(tmp_path / "f.npy")
    rel = np.linalg.norm(back - f, axis=-1) / np.linalg.norm(f, axis=-1)
    assert rel.max() < 1e-3
    # a plain float16 cast would flush such values to zero or subnormals
    if scale <= 1e-7:
        naive = f.astype(np.float16).astype(np.float32)
        assert (np.linalg.norm(naive - f, axis=-1) / np.linalg.norm(f, axis=-1)).max() > 1e-2


def test_float16_file_is_half_the_size_and_memory_mapped(tmp_path):
    f = _field(np.random.default_rng(2), shape=(4, 2, 1024))
    save_field(tmp_path / "a.npy", f, "float16")
    save_field(tmp_path / "b.npy", f, "float32")
    ratio = (tmp_path / "a.npy").stat().st_size / (tmp_path / "b.npy").stat().st_size
    assert 0.5 < ratio < 0.51
    m = open_field(tmp_path / "a.npy")
    assert isinstance(m, np.memmap) and decode(m[1:3]).shape == (2, 2, 1024)


def test_zero_rows_stay_zero(tmp_path):
    f = np.zeros((2, 2, 8), np.float32)
    f[1, 1] = 1.0
    save_field(tmp_path / "f.npy", f)
    back = load_field(tmp_path / "f.npy")
    assert np.array_equal(back[0], f[0]) and np.array_equal(back[1, 0], f[1, 0])
    assert np.allclose(back[1, 1], 1.0, rtol=1e-3)


def test_writer_streams_chunks(tmp_path):
    f = _field(np.random.default_rng(3), shape=(7, 2, 16))
    with FieldWriter(tmp_path / "f.npy", 7, 2, 16, dtype="float32") as w:
        for start in range(0, 7, 3):
            w.write(start, f[start : start + 3])
    assert np.array_equal(load_field(tmp_path / "f.npy"), f)


def test_failure_leaves_nothing_behind(tmp_path):
    out = tmp_path / "f.npy"
    f = _field(np.random.default_rng(4), shape=(4, 2, 8))
    with pytest.raises(RuntimeError, match="boom"):
        with FieldWriter(out, 4, 2, 8) as w:
            w.write(0, f[:2])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="incomplete: 2 of 4"):
        with FieldWriter(out, 4, 2, 8) as w:
            w.write(0, f[:2])
    assert list(tmp_path.iterdir()) == []


def test_nan_is_refused_and_an_old_field_survives(tmp_path):
    out = tmp_path / "f.npy"
    good = _field(np.random.default_rng(5), shape=(2, 2, 8))
    save_field(out, good)
    bad = good.copy()
    bad[1, 0, 3] = np.inf
    with pytest.raises(ValueError, match="images 0..1 has NaN or infinite"):
        save_field(out, bad)
    assert np.allclose(load_field(out), good, rtol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy"]


def test_bad_chunks_and_files(tmp_path):
    w = FieldWriter(tmp_path / "f.npy", 4, 2, 8)
    with pytest.raises(ValueError, match="in order"):
        w.write(2, np.zeros((2, 2, 8)))
    with pytest.raises(ValueError, match="does not fit"):
        w.write(0, np.zeros((2, 3, 8)))
    w.abort()
    with pytest.raises(FileNotFoundError, match="no field file"):
        open_field(tmp_path / "missing.npy")
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="not a readable .npy field"):
        open_field(tmp_path / "junk.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(N, S, H\*W\)"):
        open_field(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match="storage dtype"):
        FieldWriter(tmp_path / "g.npy", 1, 1, 1, dtype="bfloat16")


# --------------------------------------------------------------------------- nothing left behind (issue 10.3)

import errno  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from modelgif.io import atomic as _atomic  # noqa: E402
from modelgif.io.storage import allocate_field  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _temps(folder):
    return sorted(p.name for p in Path(folder).glob(".*.tmp"))


def test_outputs_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        save_field(tmp_path / "f.npy", np.zeros((1, 1, 4), np.float32))
        _atomic.write_text(tmp_path / "t.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.npy").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o644


def test_a_failed_rename_leaves_no_temporary_file(tmp_path):
    dest = tmp_path / "f.npy"
    (dest / "occupied").mkdir(parents=True)  # a non-empty folder where the field should go
    with pytest.raises(OSError):
        save_field(dest, np.ones((2, 1, 4), np.float32))
    assert _temps(tmp_path) == []
    with pytest.raises(OSError):
        _atomic.write_text(dest, "x")
    assert _temps(tmp_path) == []


def test_a_failed_constructor_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    real_open = os.open
    calls = []

    def open_twice_then_fail(path, flags, *args):
        calls.append(path)
        if len(calls) == 3:  # the writer's own open, after allocating the file
            refuse()
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_twice_then_fail)
    with pytest.raises(OSError, match="Too many open files"):
        FieldWriter(tmp_path / "f.npy", 2, 1, 4)
    assert len(calls) == 3 and _temps(tmp_path) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.slow  # starts and kills writer processes
def test_the_next_writer_sweeps_stale_temporaries_but_not_a_live_writers(tmp_path):
    dest = tmp_path / "f.npy"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = _atomic.temp_name(dest, pid=_dead_pid())
        alive = _atomic.temp_name(dest, pid=live.pid)
        other = _atomic.temp_name(tmp_path / "g.npy", pid=_dead_pid())  # another output's
        for p in (stale, alive, other):
            p.write_bytes(b"x" * 1000)
        save_field(dest, np.ones((1, 1, 4), np.float32))
        assert not stale.exists() and alive.exists() and other.exists()
    finally:
        live.kill()
        live.wait()


_SLOW_WRITER = """
import sys, time
import numpy as np
from modelgif.io.storage import FieldWriter
with FieldWriter(sys.argv[1], 100, 2, 64) as w:
    w.write(0, np.ones((1, 2, 64), np.float32))
    print("started", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow  # starts and kills writer processes
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_writer_leaves_nothing_for_long(tmp_path, sig):
    dest = tmp_path / "fields" / "normal.npy"
    p = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(dest)], stdout=subprocess.PIPE, text=True,
                         cwd=ROOT)
    assert p.stdout.readline().strip() == "started"
    assert len(_temps(dest.parent)) == 1
    p.send_signal(sig)
    code = p.wait(timeout=30)
    if sig == signal.SIGTERM:  # the handler removes it at once
        assert code == 128 + signal.SIGTERM
        assert _temps(dest.parent) == []
    else:  # SIGKILL cannot be caught: the next run of the same output sweeps it
        assert code == -signal.SIGKILL and len(_temps(dest.parent)) == 1
        save_field(dest, np.ones((1, 1, 4), np.float32))
        assert _temps(dest.parent) == []
    assert not dest.exists() or sig == signal.SIGKILL


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root; skipped elsewhere)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.slow  # starts and kills writer processes
def test_a_full_disk_says_so_up_front_and_leaves_nothing(tiny_disk):
    # 40 images of 2 × 4096 float32 = 1.25 MiB > 1 MiB: refused before anything is computed
    with pytest.raises(OSError, match="no space left on device") as e:
        FieldWriter(tiny_disk / "f.npy", 40, 2, 4096, dtype="float32")
    assert e.value.errno == errno.ENOSPC
    assert list(tiny_disk.iterdir()) == []
    # and a field that fits is written whole
    f = np.random.default_rng(0).standard_normal((10, 2, 4096)).astype(np.float32)
    save_field(tiny_disk / "f.npy", f, dtype="float32")
    assert np.array_equal(load_field(tiny_disk / "f.npy"), f)


@pytest.mark.slow  # starts and kills writer processes
def test_temporary_files_are_ignored_by_dvc():
    tmp = _atomic.temp_name(ROOT / "data" / "fields" / "normal.npy")
    r = subprocess.run([str(Path(sys.executable).parent / "dvc"), "check-ignore", "-q",
                        str(tmp.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr  # 0: ignored


def test_sharded_writers_fill_one_file(tmp_path):
    f = _field(np.random.default_rng(6), shape=(7, 3, 32))
    dest = tmp_path / "f.npy"
    tmp = allocate_field(dest, 7, 3, 32)
    for lo, hi in ((4, 7), (0, 4)):  # any order of shards
        w = FieldWriter(dest, 7, 3, 32, tmp=tmp, rows=(lo, hi))
        for start in range(lo, hi, 2):
            w.write(start, f[start : min(hi, start + 2)])
        assert w.close() == tmp and not dest.exists()
    with pytest.raises(ValueError, match=r"does not fit .* \(rows 0..3\)"):
        FieldWriter(dest, 7, 3, 32, tmp=tmp, rows=(0, 4)).write(0, f[:5])
    from modelgif.io.storage import commit_field

    commit_field(tmp, dest)
    assert np.allclose(load_field(dest), f, rtol=1e-3) and _temps(tmp_path) == []


def test_encode_works_in_bounded_slices(monkeypatch):
    import modelgif.io.storage as storage

    f = _field(np.random.default_rng(7), shape=(9, 3, 64))
    whole = encode(f)
    monkeypatch.setattr(storage, "ENCODE_SLICE_BYTES", 2 * 3 * 64 * 8)  # two images per slice
    sliced = encode(f)
    assert np.array_equal(sliced["norm"], whole["norm"]) and np.array_equal(sliced["unit"], whole["unit"])
    assert list(storage._image_slices(9, 3 * 64)) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]
