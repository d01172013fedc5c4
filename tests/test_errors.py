"""One-line errors (modelgif.errors, stages/_cli.clean_errors) and field provenance (modelgif.io.provenance)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from fs_faults import full_dir, readonly_dir  # noqa: F401 - fixtures

from modelgif.io.atomic import temp_name
from modelgif.io import provenance
from modelgif.errors import InputError, MissingEntry, check_output_dir, check_output_file, describe
from modelgif.field.quadrature import check_n_steps, nodes_and_weights
from modelgif.io.storage import open_field, save_field

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stages"))
from _cli import clean_errors  # noqa: E402


# --------------------------------------------------------------------------- describe / clean_errors


def test_describe_names_the_path_and_the_problem(tmp_path):
    with pytest.raises(OSError) as e:
        open(tmp_path / "missing" / "x.csv")
    assert describe(e.value) == f"{tmp_path / 'missing' / 'x.csv'}: no such file or directory"
    # a failed write on a full disk carries no path: the command's outputs are named instead
    with pytest.raises(OSError) as e:
        with open("/dev/full", "w") as f:
            f.write("x")
    assert e.value.filename is None and e.value.errno == errno.ENOSPC
    assert describe(e.value, ["data/affinity"]) == "no space left on device while writing data/affinity"
    # a temporary file is named as the output it was to become
    tmp = OSError(errno.EACCES, os.strerror(errno.EACCES), str(temp_name("data/affinity/distance.csv")))
    assert describe(tmp) == "data/affinity/distance.csv: permission denied"
    assert describe(MissingEntry("table t has no entry 'a__b'")) == "table t has no entry 'a__b'"
    assert isinstance(MissingEntry("x"), KeyError) and isinstance(MissingEntry("x"), ValueError)


def test_clean_errors_words_user_errors_and_keeps_programming_errors(tmp_path, capsys):
    @clean_errors(outputs=("out",))
    def write(out: Path, error: BaseException | None = None):
        if error is not None:
            raise error
        with open("/dev/full", "w") as f:
            f.write("x")

    with pytest.raises(typer.Exit) as e:
        write(out=tmp_path / "o.csv")
    assert e.value.exit_code == 1
    assert capsys.readouterr().err == f"error: no space left on device while writing {tmp_path / 'o.csv'}\n"
    with pytest.raises(typer.Exit):
        write(out=tmp_path, error=InputError("n_steps must be a positive integer, got 0"))
    assert capsys.readouterr().err == "error: n_steps must be a positive integer, got 0\n"
    for bug in (TypeError("unsupported operand"), AttributeError("no .dtype"), KeyError("state_dict"),
                RuntimeError("CUDA error")):
        with pytest.raises(type(bug)):
            write(out=tmp_path, error=bug)


# --------------------------------------------------------------------------- output checks


def test_check_output_file_and_dir(tmp_path, readonly_dir):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    assert check_output_file(tmp_path / "new" / "deeper" / "f.npy") == tmp_path / "new" / "deeper" / "f.npy"
    assert not (tmp_path / "new").exists()  # checks create nothing
    with pytest.raises(InputError, match="is a folder; it must name a file"):
        check_output_file(tmp_path / "folder")
    with pytest.raises(NotADirectoryError, match=f"{tmp_path / 'file'} is a file, not a folder"):
        check_output_file(tmp_path / "file" / "sub" / "f.npy")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(PermissionError, match=f"cannot write {readonly_dir / 'f.npy'}: {readonly_dir} is "):
        check_output_file(readonly_dir / "f.npy")
    with pytest.raises(PermissionError, match="read-only file system|permission denied"):
        check_output_dir(readonly_dir / "plots")
    check_output_dir(tmp_path / "folder" / "new")


def test_check_output_file_needs_the_space(full_dir):
    check_output_file(full_dir / "empty.npy", nbytes=0)
    with pytest.raises(OSError, match=r"needs 1\.0 MiB .* \(no space left on device\)") as e:
        check_output_file(full_dir / "f.npy", nbytes=2**20)
    assert e.value.errno == errno.ENOSPC
    assert describe(e.value).startswith(f"cannot write {full_dir / 'f.npy'}: it needs 1.0 MiB")


# --------------------------------------------------------------------------- n_steps, .npz fields


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_trapezoid"])
@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_n_steps_must_be_a_positive_integer(method, bad):
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        check_n_steps(bad, method)
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        nodes_and_weights(method, bad)


def test_n_steps_per_method():
    assert check_n_steps(np.int64(1), "gausslegendre") == 1 and len(nodes_and_weights("riemann_left", 1)[0]) == 1
    with pytest.raises(ValueError, match="riemann_trapezoid needs n_steps >= 2, got 1"):
        check_n_steps(1, "riemann_trapezoid")
    with pytest.raises(ValueError, match="unknown quadrature method 'simpson'"):
        check_n_steps(4, "simpson")


def test_an_npz_is_not_a_field_nor_a_reference_set(tmp_path):
    from modelgif.reference import load_reference_images

    with open(tmp_path / "f.npy", "wb") as f:  # an .npz under a .npy name
        np.savez(f, field=np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"f\.npy is an \.npz archive, not a \.npy field"):
        open_field(tmp_path / "f.npy")
    np.savez(tmp_path / "images.npz", images=np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"images\.npz is an \.npz archive, not a \.npy array of images"):
        load_reference_images(tmp_path / "images.npz")


# --------------------------------------------------------------------------- provenance


SETTINGS = dict(zoo="taskonomy", target=1, n_steps=3, method="gausslegendre", baseline="shuffled", seed=0,
                cumulative=True, dtype="float16", precision="float32", sketch_dim=0, sketch_seed=0)


def stored_field(folder: Path, task: str, **changes) -> Path:
    """A random float16-stored (4, 3, 10) field with its provenance record; ``changes`` override settings."""
    path = folder / f"{task}.npy"
    save_field(path, np.random.default_rng(len(task)).standard_normal((4, 3, 10)).astype(np.float32))
    settings = {**SETTINGS, "reference_sha256": "a" * 64, "checkpoint_sha256": hashlib.sha256(task.encode()).hexdigest(),
                "shape": (4, 3, 10), **changes}
    provenance.write_record(path, provenance.field_record(task, **settings))
    return path


def test_record_round_trip_and_neutral_settings(tmp_path):
    path = stored_field(tmp_path, "normal", baseline="zero", seed=7, sketch_seed=5)
    record = provenance.read_record(path)
    assert provenance.record_path(path) == tmp_path / "normal.json"
    assert record == json.loads((tmp_path / "normal.json").read_text())
    assert record["task"] == "normal" and record["reference_sha256"] == "a" * 64 and record["n_steps"] == 3
    assert record["seed"] is None and record["sketch_seed"] is None  # no effect on a zero baseline / exact field
    assert record["shape"] == [4, 3, 10] and record["dtype"] == "float16"
    # a zero-baseline field with another seed is the same field: nothing differs
    other = stored_field(tmp_path, "reshading", baseline="zero", seed=3, sketch_seed=9)
    shared = provenance.check_fields({"normal": path, "reshading": other})
    assert shared["baseline"] == "zero" and "task" not in shared and "checkpoint_sha256" not in shared


def test_fields_from_different_reference_sets_or_settings_are_refused(tmp_path):
    paths = {t: stored_field(tmp_path, t) for t in ("normal", "reshading")}
    paths["curvature"] = stored_field(tmp_path, "curvature", reference_sha256="b" * 64, n_steps=3)
    with pytest.raises(InputError) as e:
        provenance.check_fields(paths)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"reference_sha256 ({'a' * 12}…: normal, reshading; {'b' * 12}…: curvature)" in msg
    assert "n_steps" not in msg and "task" not in msg.split("differ in")[1]
    paths["curvature"] = stored_field(tmp_path, "curvature", method="riemann_middle", precision="bf16")
    with pytest.raises(InputError, match=r'differ in method \("gausslegendre": normal, reshading; "riemann_middle": '
                                         r'curvature\) and precision \("float32": normal, reshading; "bf16": curvature\)'):
        provenance.check_fields(paths)


def test_record_must_exist_name_its_task_and_match_its_field(tmp_path):
    path = stored_field(tmp_path, "normal")
    with pytest.raises(InputError, match="is the field of task 'normal'.*not of 'reshading'"):
        provenance.check_fields({"reshading": path})
    save_field(path, np.zeros((4, 2, 10), np.float32), dtype="float32")  # field replaced, record stale
    with pytest.raises(InputError, match=r"holds a float32 field of shape \(4, 2, 10\) but its record .* describes "
                                         r"a float16 field of shape \(4, 3, 10\)"):
        provenance.check_fields({"normal": path})
    provenance.record_path(path).unlink()
    with pytest.raises(InputError, match=f"field {path} has no provenance record {tmp_path / 'normal.json'}"):
        provenance.check_fields({"normal": path})
    provenance.record_path(path).write_text("{not json")
    with pytest.raises(InputError, match="is not a readable provenance record"):
        provenance.read_record(path)
    provenance.record_path(path).write_text('{"format": 99}')
    with pytest.raises(InputError, match="not a provenance record of format 1"):
        provenance.read_record(path)
    with pytest.raises(InputError, match="cannot be named"):
        provenance.record_path(tmp_path / "normal.json")


# --------------------------------------------------------------------------- atomic copies


def test_copy_verified_goes_through_a_temporary_file(tmp_path):
    from modelgif.io.download import copy_verified

    src, dest = tmp_path / "src.bin", tmp_path / "out" / "dest.bin"
    src.write_bytes(b"weights")
    assert copy_verified(src, dest, sha256=hashlib.sha256(b"weights").hexdigest()) == dest
    assert dest.read_bytes() == b"weights" and sorted(p.name for p in dest.parent.iterdir()) == ["dest.bin"]
    with pytest.raises(FileNotFoundError):
        copy_verified(tmp_path / "missing.bin", dest)
    assert dest.read_bytes() == b"weights" and sorted(p.name for p in dest.parent.iterdir()) == ["dest.bin"]
