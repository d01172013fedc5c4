"""What DVC calls up to date is right (issue 20, items 1-3 and 6), through real DVC on a tiny
mini-zoo configuration in one temporary git copy of the project:

- overwriting a git-tracked encoder with ``cp`` leaves every cache object hashing to its name;
  the next repro refuses the file in one line, and restoring it gives the original outputs back;
- a field edited in place is reported by ``dvc status`` and restored by ``dvc checkout``;
- a changed image in a folder source, and a new archive at the same path, rerun the reference
  stage and what follows; nothing reruns when nothing changed;
- the zoo's declared input size is used unless the user asks otherwise, with a warning that
  reaches the metrics;
- only what a setting changes reruns (a sketch seed of an exact field, ``distance`` for the set
  methods, ``field.n_steps`` for the set methods, a new zoo file for another zoo).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import copy_project, pipeline_env
from PIL import Image
from test_params import _run, _set

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["normal", "reshading", "depth_zbuffer"]
BASE = {"zoo": "mini", "models": TASKS, "methods": ["modelgif", "ig", "rsa"], "reference.n_images": 4,
        "field.n_steps": 2, "bootstrap.n": 5}


def _ran(out: str) -> set[str]:
    """Stages that ran, the always-run settings stage left out."""
    return set(re.findall(r"Running stage '([^']+)'", out)) - {"settings"}


def _lock_md5(project: Path, stage: str, path: str) -> str:
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"][stage]
    return next(o["md5"] for o in lock["outs"] if o["path"] == path)


def _corrupt_cache_objects(project: Path) -> list[str]:
    """Cache objects whose md5 is not their name (a ``.dir`` listing is hashed as DVC lists it)."""
    bad = []
    for p in (project / ".dvc" / "cache" / "files" / "md5").rglob("*"):
        if p.is_file() and not p.name.endswith(".dir"):
            if hashlib.md5(p.read_bytes()).hexdigest() != p.parent.name + p.name:
                bad.append(str(p))
    return bad


def _pngs(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("integrity")
    project = copy_project(ROOT, tmp / "project")
    env = pipeline_env(tmp)
    _set(project, BASE)
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "copy"], project, env)
    out = _run(["dvc", "repro"], project, env).stdout
    assert "Running stage 'correlate'" in out
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "tiny mini run"], project, env)
    return project, env, tmp


def test_the_zoo_input_size_is_the_default_size(project):
    project, env, _ = project
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["reference"]["image_size"] == "zoo"
    assert np.load(project / "data/reference/images.npy").shape == (4, 3, 64, 64)  # zoos/mini.yaml: input_size 64
    assert "provenance" not in json.loads((project / "metrics/correlation.json").read_text())


def test_nothing_reruns_when_nothing_changed(project):
    project, env, _ = project
    out = _run(["dvc", "repro"], project, env).stdout
    assert _ran(out) == set(), out
    # dvc status names the one stage that always looks (the settings), nothing else
    status = json.loads(_run(["dvc", "status", "dvc.yaml", "--json"], project, env).stdout)
    assert status == {"settings": ["always changed"]}, status


def test_a_copy_over_a_tracked_encoder_leaves_the_cache_intact_and_is_refused(project):
    project, env, _ = project
    field_md5 = _lock_md5(project, "field@normal", "data/fields/normal.npy")
    ckpt = project / "data/checkpoints/normal.pth"
    ckpt_bytes = ckpt.read_bytes()
    tracked = project / "data/mini/encoders/normal.pth"
    shutil.copyfile(project / "data/mini/encoders/reshading.pth", tracked)  # cp reshading.pth normal.pth
    assert _corrupt_cache_objects(project) == []
    assert ckpt.read_bytes() == ckpt_bytes  # the pipeline's copy is its own file
    proc = _run(["dvc", "repro"], project, env, check=False)
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "checksum mismatch for data/mini/encoders/normal.pth" in errors[0], errors
    assert "Traceback" not in proc.stdout + proc.stderr
    # DVC removes a stage's outputs before running it; the wrong encoder never took their place
    assert (not ckpt.exists() or ckpt.read_bytes() == ckpt_bytes) and _corrupt_cache_objects(project) == []
    _run(["git", "checkout", "--", "data/mini/encoders/normal.pth"], project, env)
    out = _run(["dvc", "repro"], project, env).stdout
    assert _ran(out) == set(), out  # the checkpoint comes back from the run cache
    assert ckpt.read_bytes() == ckpt_bytes
    assert _lock_md5(project, "field@normal", "data/fields/normal.npy") == field_md5
    assert hashlib.md5((project / "data/fields/normal.npy").read_bytes()).hexdigest() == field_md5


def test_an_output_edited_in_place_is_reported_and_restored(project):
    project, env, _ = project
    field = project / "data/fields/normal.npy"
    md5 = _lock_md5(project, "field@normal", "data/fields/normal.npy")
    with open(field, "r+b") as f:  # an in-place write, as numpy's memmap or a user's script does
        f.seek(200)
        f.write(b"\x00" * 64)
    assert hashlib.md5(field.read_bytes()).hexdigest() != md5
    assert _corrupt_cache_objects(project) == []
    status = json.loads(_run(["dvc", "status", "dvc.yaml", "--json"], project, env).stdout)
    assert {"changed outs": {"data/fields/normal.npy": "modified"}} in status["field@normal"], status
    _run(["dvc", "checkout", "--force", "field@normal"], project, env)
    assert hashlib.md5(field.read_bytes()).hexdigest() == md5


def test_a_changed_image_in_a_folder_source_reruns_the_reference(project):
    project, env, tmp = project
    folder = tmp / "my_images"
    _pngs(folder, 4, seed=0)
    _set(project, {"reference.source": str(folder)})
    out = _run(["dvc", "repro"], project, env).stdout
    assert "fetch_reference" in _ran(out)
    first = np.load(project / "data/reference/images.npy")
    _pngs(folder, 1, seed=1)  # 0.png now has other pixels
    out = _run(["dvc", "repro"], project, env).stdout
    assert {"fetch_reference", "field@normal", "distance@rsa", "correlate"} <= _ran(out), out
    second = np.load(project / "data/reference/images.npy")
    assert not np.array_equal(first, second)
    assert _ran(_run(["dvc", "repro"], project, env).stdout) == set()

    # an archive: a new archive at the same path is a new reference set
    archive = tmp / "images.tar"
    for seed in (2, 3):
        _pngs(tmp / f"a{seed}", 4, seed=seed)
        with tarfile.open(archive, "w") as tar:
            tar.add(tmp / f"a{seed}", arcname="images")
        _set(project, {"reference.source": str(archive)})
        out = _run(["dvc", "repro"], project, env).stdout
        assert "fetch_reference" in _ran(out), out
        images = np.load(project / "data/reference/images.npy")
        assert not np.array_equal(images, second)
        second = images
    _set(project, {"reference.source": "zoo"})
    assert _ran(_run(["dvc", "repro"], project, env).stdout) == set()  # all from the run cache


def test_an_image_size_other_than_the_zoos_warns_into_the_metrics(project):
    project, env, _ = project
    _set(project, {"reference.image_size": 32})
    proc = _run(["dvc", "repro"], project, env)
    assert "warning: reference.image_size 32 differs from the zoo's declared input_size 64" in proc.stderr + proc.stdout
    manifest = json.loads((project / "data/reference/manifest.json").read_text())
    assert any("input_size 64" in w for w in manifest["warnings"])
    metrics = json.loads((project / "metrics/correlation.json").read_text())
    assert "declared input_size 64" in metrics["provenance"]["warnings"]
    _set(project, {"reference.image_size": "zoo"})
    _run(["dvc", "repro"], project, env)
    assert "provenance" not in json.loads((project / "metrics/correlation.json").read_text())


@pytest.mark.parametrize("change,expected", [
    ({"field.sketch_seed": 5}, set()),  # sketch_dim 0: an exact field has no sketch seed
    ({"field.seed": 7, "field.baseline": "zero"}, None),  # checked below against baseline alone
    ({"distance": "euclidean"}, {"distance@modelgif", "distance@ig", "affinity", "correlate"}),
    ({"field.n_steps": 3}, {f"field@{t}" for t in TASKS} | {"affinity", "method_inputs", "distance@modelgif",
                                                             "distance@ig", "correlate"}),
])
def test_only_what_a_setting_changes_reruns(project, change, expected):
    project, env, _ = project
    before = (project / "params.yaml").read_text()
    if expected is None:  # a zero baseline has no seed: changing both reruns what the baseline alone does
        _set(project, {"field.baseline": "zero"})
        alone = _ran(_run(["dvc", "repro"], project, env).stdout)
        (project / "params.yaml").write_text(before)
        _run(["dvc", "repro"], project, env)
        _set(project, change)
        assert _ran(_run(["dvc", "repro"], project, env).stdout) <= alone
    else:
        _set(project, change)
        out = _run(["dvc", "repro"], project, env).stdout
        assert _ran(out) == expected, out
    (project / "params.yaml").write_text(before)
    assert _ran(_run(["dvc", "repro"], project, env).stdout) == set()  # back: all from the run cache


def test_a_new_zoo_file_reruns_nothing_of_another_zoo(project):
    project, env, _ = project
    (project / "zoos/other.yaml").write_text((project / "zoos/mini.yaml").read_text())
    try:
        assert _ran(_run(["dvc", "repro"], project, env).stdout) == set()
    finally:
        (project / "zoos/other.yaml").unlink()
