import numpy as np
import pytest

from modelgif.storage import FieldWriter, decode, load_field, open_field, save_field


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
