"""Issue 20, items 4, 10 and 11 (second half): invalid combinations refused up front, and one clear
line, never a traceback, for bad intermediates, hostile checkpoints, user models that exit, negative
seeds, a full disk and a zoo that does not exist. Every stage runs as the pipeline runs it."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fs_faults import full_dir, leftovers  # noqa: F401 - fixtures

import modelgif.zoo.checkpoint as checkpoint
import modelgif.errors as errors
import modelgif.io.storage as storage
from modelgif.io.atomic import temp_name
from modelgif.zoo.checkpoint import load_state_dict_checked
from modelgif.errors import InputError, describe
from modelgif.score.plots import matrix_csv
from modelgif.io.provenance import field_record, write_record
from modelgif.io.storage import save_field
from modelgif.zoo.spec import ZooError, load_zoo_spec
from modelgif.zoo.models import check_zoo_models


def human_size(nbytes):
    return errors.human_size(nbytes)


def field_nbytes(*args):
    return storage.field_nbytes(*args)

STAGES = Path(__file__).resolve().parent.parent / "stages"
TASKS = ["one", "two", "three"]

USERNETS = '''\
import sys
import torch


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(4))


def exits():
    sys.exit(0)


class Exits(torch.nn.Module):
    def forward(self, x):
        raise SystemExit(0)


def exits_in_forward():
    return Exits()


class OneImage(torch.nn.Module):  # reshapes as if every batch held one image
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).view(1, 4, x.shape[-2] - 2, x.shape[-1] - 2)


def one_image():
    return OneImage()


class FirstOnly(torch.nn.Module):  # runs, but keeps the first image of the batch only
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x[:1])


def first_only():
    return FirstOnly()


class Detached(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).detach()


def detached():
    return Detached()


class ThroughNumpy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.from_numpy(self.conv(x).detach().numpy())


def through_numpy():
    return ThroughNumpy()
'''


class Evil:
    """Unpickling this runs ``os.system``: what a hostile checkpoint holds."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def run_stage(script: str, *args, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGES / script), *map(str, args)], cwd=cwd,
                          env={**os.environ, "MODELGIF_DEVICE": "cpu", **env}, capture_output=True, text=True,
                          timeout=300)


def one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed with status 1 and ended with one ``error:`` line holding every fragment;
    no traceback, no temporary file name."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), r.stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    assert ".tmp" not in last, last
    return last


def declare(root: Path, architecture: str = "usernets:build") -> None:
    """A zoo ``mine`` of user models (``usernets.py`` in ``root``, the stages' working directory)."""
    (root / "usernets.py").write_text(USERNETS)
    (root / "zoos").mkdir(exist_ok=True)
    (root / "zoos" / "mine.yaml").write_text(
        f"architecture: {architecture}\ninput_size: 16\nreference: mini-scenes\nmodels: [{', '.join(TASKS)}]\n")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A zoo of user models, a small reference set, a checkpoint and a hostile one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    declare(tmp_path)
    np.save(tmp_path / "images.npy", np.random.default_rng(0).integers(0, 256, (4, 3, 16, 16), dtype=np.uint8))
    sys.modules.pop("usernets", None)
    import usernets

    torch.save({"state_dict": usernets.build().state_dict()}, tmp_path / "one.pth")
    torch.save({"state_dict": usernets.build().state_dict(), "extra": Evil()}, tmp_path / "evil.pth")
    yield tmp_path
    sys.modules.pop("usernets", None)


def huge_reference(path: Path, shape=(1000, 3, 100_000, 100_000)) -> Path:
    """The header of an ``images.npy`` of ``shape`` (``reference.image_size: 100000``), no pixels:
    nothing may be read before the refusal."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return path


def field(project: Path, *args, checkpoint="one.pth", reference="images.npy", out="fields/one.npy"):
    return run_stage("field.py", "one", "--checkpoint", checkpoint, "--reference", reference, "--n-steps", 3,
                     "--zoo", "mine", "--out", out, *args, cwd=project)


def features(project: Path, *args, checkpoint="one.pth", reference="images.npy", attributions="attr"):
    return run_stage("features.py", "one", "--checkpoint", checkpoint, "--reference", reference, "--zoo", "mine",
                     "--features", "feat", "--attributions", attributions, *args, cwd=project)


# --------------------------------------------------------------------------- item 4: refused up front


def stored_fields(root: Path, cumulative: bool = True) -> Path:
    """Three small fields with their provenance records, as the field stage writes them."""
    rng = np.random.default_rng(0)
    for task in TASKS:
        path = root / "fields" / f"{task}.npy"
        values = rng.standard_normal((6, 3, 40)).astype(np.float32)
        save_field(path, values)
        write_record(path, field_record(task, reference_sha256="0" * 64, checkpoint_sha256=None, zoo="mine", target=1,
                                        n_steps=3, method="gausslegendre", baseline="shuffled", seed=0,
                                        cumulative=cumulative, dtype="float16", precision="float32", sketch_dim=0,
                                        sketch_seed=0, shape=values.shape))
    return root / "fields"


def distance(root: Path, method: str, *args, params="params.yaml"):
    return run_stage("method_distance.py", method, "--params", params, "--n-boot", 10, "--fields", "fields",
                     "--features", "feat", "--attributions", "attr", "--out", f"methods/{method}", *args, cwd=root)


@pytest.mark.slow  # runs stage scripts as processes
def test_ig_is_refused_with_per_step_fields(tmp_path):
    stored_fields(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"models": TASKS, "field": {"cumulative": False}}))
    r = distance(tmp_path, "ig")
    one_line_error(r, "method ig cannot run with field.cumulative: false", "not the Integrated Gradients attribution",
                   "drop ig from methods")
    assert not (tmp_path / "methods").exists()
    assert distance(tmp_path, "modelgif").returncode == 0  # the field itself is fine for modelgif
    # the params say cumulative, the fields' records do not: the records decide
    stored_fields(tmp_path, cumulative=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"models": TASKS, "field": {"cumulative": True}}))
    r = distance(tmp_path, "ig")
    one_line_error(r, "method ig cannot run on the fields in fields: their records say field.cumulative: false")
    assert not (tmp_path / "methods" / "ig").exists()


@pytest.mark.slow  # runs stage scripts as processes
def test_rsa_names_a_model_whose_features_are_constant(tmp_path):
    """A dead encoder (its map 0 on every image, as build 2's depth_euclidean): rsa names it."""
    rng = np.random.default_rng(0)
    for i, task in enumerate(TASKS):
        values = rng.random((6, 8 * 2 * 2)) if i != 1 else np.zeros((6, 32))
        (tmp_path / "feat").mkdir(exist_ok=True)
        np.save(tmp_path / "feat" / f"{task}.npy", values.astype(np.float32))
        (tmp_path / "feat" / f"{task}.json").write_text(json.dumps({"reference_sha256": "0" * 64, "shape": [8, 2, 2]}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"models": TASKS}))
    r = distance(tmp_path, "rsa")
    one_line_error(r, f"rsa: {TASKS[1]}'s features are constant within 6 of the 6 reference images (images [0, 1, 2, 3, 4])",
                   "a dead encoder", f"leave {TASKS[1]} out of tasks")
    assert not (tmp_path / "methods").exists()
    assert distance(tmp_path, "cka").returncode == 0  # cka defines it (distance 1 to every other model)


@pytest.mark.slow  # runs stage scripts as processes
def test_a_reference_set_that_cannot_fit_in_memory_is_refused_before_any_work(project):
    huge_reference(project / "huge.npy")
    values = 1000 * 3 * 100_000 * 100_000
    r = field(project, reference="huge.npy")
    one_line_error(r, "holding 1000 reference images of 3×100000×100000 and their baselines as float32 (the field "
                      f"stage) needs {human_size(values * 9)} of memory and this machine has ",
                   "lower reference.n_images or reference.image_size")
    assert human_size(values * 9) == "245.6 TiB"
    r = features(project, reference="huge.npy")
    one_line_error(r, "holding 1000 reference images of 3×100000×100000 as float32 and their attribution maps (the "
                      f"features stage) needs {human_size(values * 5 + 2 * values // 3 * 4)} of memory")
    assert not (project / "fields").exists() and not (project / "feat").exists() and not (project / "attr").exists()


@pytest.mark.slow  # runs stage scripts as processes
def test_a_field_that_cannot_fit_on_disk_is_refused_with_its_estimate(project, full_dir):
    out = full_dir / "one.npy"
    r = field(project, "--n-steps", 50, out=out)
    size = human_size(field_nbytes(4, 50, 256, "float16"))
    one_line_error(r, f"cannot write {out}: it needs {size} and {full_dir} has 0 B free (no space left on device): "
                      "a field of 4 images × 50 steps × 256 values (float16); lower reference.n_images, "
                      "reference.image_size or field.n_steps")
    assert leftovers(full_dir) == []
    # the features stage: its attribution maps, named by path
    r = features(project, attributions=full_dir / "attr")
    one_line_error(r, f"cannot write {full_dir / 'attr' / 'saliency' / 'one.npy'}: it needs "
                      f"{human_size(field_nbytes(4, 1, 256, 'float32'))}")
    assert leftovers(full_dir) == []


@pytest.mark.slow  # runs stage scripts as processes
@pytest.mark.parametrize("architecture, message", [
    ("usernets:one_image", "usernets:one_image cannot take a batch of more than one image: on a (2, 3, 16, 16) input "
                           "it fails with RuntimeError: shape '[1, 4, 14, 14]' is invalid"),
    ("usernets:first_only", "usernets:first_only cannot take a batch of more than one image: a (2, 3, 16, 16) input "
                            "gives (1, 4, 14, 14), not 2 maps"),
    ("usernets:detached", "usernets:detached returns a tensor detached from its input (no grad_fn"),
    ("usernets:through_numpy", "usernets:through_numpy returns a tensor detached from its input (no grad_fn"),
])
def test_a_user_model_that_cannot_batch_or_is_detached_is_refused_at_check_time(project, architecture, message):
    declare(project, architecture)
    with pytest.raises(ZooError) as e:
        check_zoo_models(load_zoo_spec("mine"))
    assert str(e.value).startswith(f"zoos/mine.yaml: models.one: {message}"), str(e.value)
    # the fetch stage, which runs the check, says the same in one line and writes nothing
    r = run_stage("fetch_checkpoint.py", "one", "--zoo", "mine", "--out", "ckpt/one.pth", cwd=project)
    one_line_error(r, f"zoos/mine.yaml: models.one: {message}")
    assert not (project / "ckpt" / "one.pth").exists()
    declare(project, "usernets:build")
    check_zoo_models(load_zoo_spec("mine"))  # a model that batches and keeps the graph passes


# --------------------------------------------------------------------------- item 10: one clear line


def method_folder(root: Path, method: str) -> Path:
    """A distance stage's output, as method_distance.py writes it."""
    folder = root / "methods" / method
    folder.mkdir(parents=True, exist_ok=True)
    d = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0.0]])
    matrix_csv(folder / "distance.csv", d, ["normal", "reshading", "curvature"])
    np.save(folder / "bootstrap.npy", np.stack([d, d * 1.1]))
    (folder / "meta.json").write_text(json.dumps({"method": method, "tasks": ["normal", "reshading", "curvature"],
                                                  "n_images": 6, "bootstrap": {"n": 2, "seed": 0},
                                                  "resamples_sha256": "0" * 64}))
    return folder


def damage_header(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:20] + b"XXXX" + data[24:])


def as_npz(path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, values=np.zeros((2, 3, 3)))


CORRUPT_METHOD = {
    "npz": ("bootstrap.npy", as_npz, "methods/ig/bootstrap.npy is an .npz archive, not a .npy file"),
    "header": ("bootstrap.npy", damage_header, "methods/ig/bootstrap.npy is not a readable .npy file (bootstrap "
                                               "distances (B, K, K)): damaged header"),
    "pickle": ("bootstrap.npy", lambda p: np.save(p, np.array([{}], dtype=object), allow_pickle=True),
               "methods/ig/bootstrap.npy holds pickled objects, not numbers"),
    "truncated": ("bootstrap.npy", lambda p: p.write_bytes(p.read_bytes()[:-9]),
                  "methods/ig/bootstrap.npy is not a readable .npy file"),
    "meta-list": ("meta.json", lambda p: p.write_text("[1, 2]"),
                  "methods/ig/meta.json holds a JSON list, not the object a meta record of a distance stage is"),
    "meta-keys": ("meta.json", lambda p: p.write_text('{"tasks": ["normal", "reshading", "curvature"]}'),
                  "methods/ig/meta.json (meta record of a distance stage) lacks n_images, bootstrap, "
                  "resamples_sha256; rerun its distance stage"),
    "meta-binary": ("meta.json", lambda p: p.write_bytes(b"\xff\xfe{"), "methods/ig/meta.json is not readable JSON"),
}


@pytest.mark.slow  # runs stage scripts as processes
@pytest.mark.parametrize("case", sorted(CORRUPT_METHOD))
def test_correlate_refuses_a_corrupted_distance_output_in_one_line(tmp_path, case):
    name, damage, message = CORRUPT_METHOD[case]
    method_folder(tmp_path, "modelgif")
    damage(method_folder(tmp_path, "ig") / name)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"methods": ["modelgif", "ig"],
                                                          "ground_truth": ["all_affinities"]}))
    r = run_stage("correlate.py", "--params", "params.yaml", "--methods", "methods", "--metrics", "m/c.json",
                  "--plots", "m/plots", cwd=tmp_path)
    one_line_error(r, message)
    assert not (tmp_path / "m" / "c.json").exists()


def features_folder(root: Path) -> Path:
    """Three tasks' encoder features and their records, as the features stage writes them."""
    folder = root / "feat"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for task in TASKS:
        np.save(folder / f"{task}.npy", rng.standard_normal((6, 8 * 2 * 2)).astype(np.float32))
        (folder / f"{task}.json").write_text(json.dumps({"task": task, "zoo": "mine", "shape": [8, 2, 2],
                                                         "reference_sha256": "0" * 64, "checkpoint_sha256": "1" * 64}))
    return folder


CORRUPT_FEATURES = {
    "npz": ("one.npy", as_npz, "feat/one.npy is an .npz archive, not a .npy file (features array of one"),
    "header": ("one.npy", damage_header, "feat/one.npy is not a readable .npy file (features array of one (N, C·h·w)): "
                                         "damaged header"),
    "1-d": ("one.npy", lambda p: np.save(p, np.zeros(3)), "feat/one.npy holds an array of shape (3,), not of 2 "
                                                          "dimensions"),
    "record-list": ("one.json", lambda p: p.write_text("[]"), "feat/one.json holds a JSON list, not the object a "
                                                              "features record of one is; rerun its features stage"),
    "record-keys": ("one.json", lambda p: p.write_text('{"task": "one"}'),
                    "feat/one.json (features record of one) lacks reference_sha256, shape"),
    "record-shape": ("one.json", lambda p: p.write_text('{"reference_sha256": "0", "shape": 3}'),
                     "feat/one.json: shape must be the features' (C, h, w), 3 positive integers, got 3"),
    "mismatch": ("one.json", lambda p: p.write_text('{"reference_sha256": "' + "0" * 64 + '", "shape": [9, 2, 2]}'),
                 "feat/one.npy holds 32 values per image, but its record feat/one.json says shape (9, 2, 2)"),
}


@pytest.mark.slow  # runs stage scripts as processes
@pytest.mark.parametrize("case", sorted(CORRUPT_FEATURES))
def test_method_distance_refuses_corrupted_features_in_one_line(tmp_path, case):
    name, damage, message = CORRUPT_FEATURES[case]
    damage(features_folder(tmp_path) / name)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"models": TASKS}))
    one_line_error(distance(tmp_path, "cka"), message)
    assert not (tmp_path / "methods").exists()


@pytest.mark.slow  # runs stage scripts as processes
def test_field_stage_reads_a_reference_header_and_refuses_a_damaged_one(project):
    damage_header(project / "images.npy")
    one_line_error(field(project), "images.npy is not a readable .npy file (reference image set): damaged header")
    np.save(project / "images.npy", np.zeros((2, 3, 16, 16), np.float32))
    one_line_error(field(project), "images.npy holds float32 (2, 3, 16, 16); expected uint8 (N, 3, H, W)")


@pytest.mark.slow  # runs stage scripts as processes
def test_a_user_model_that_exits_is_an_error_naming_the_model(project):
    declare(project, "usernets:exits")
    r = field(project)
    one_line_error(r, "architecture usernets:exits raised SystemExit(0) while building model one")
    assert not (project / "fields").exists()
    r = features(project)
    one_line_error(r, "architecture usernets:exits raised SystemExit(0) while building model one")
    with pytest.raises(ZooError, match=r"^zoos/mine.yaml: models.one: architecture usernets:exits raised "
                                       r"SystemExit\(0\) while building model one"):
        check_zoo_models(load_zoo_spec("mine"))
    # an exit inside the forward pass: the check refuses it, and so does the field stage (its weights: none needed)
    declare(project, "usernets:exits_in_forward")
    with pytest.raises(ZooError, match=r"^zoos/mine.yaml: models.one: architecture usernets:exits_in_forward raised "
                                       r"SystemExit\(0\) while running model one"):
        check_zoo_models(load_zoo_spec("mine"))
    torch.save({"state_dict": {}}, project / "none.pth")
    r = field(project, checkpoint="none.pth")
    one_line_error(r, "architecture usernets:exits_in_forward raised SystemExit(0) while running model one")
    assert not (project / "fields" / "one.npy").exists()


@pytest.mark.slow  # runs stage scripts as processes
def test_a_malicious_pickle_is_refused_saying_what_and_why(project):
    refused = f"refused to unpickle {os.system.__module__}.system from evil.pth: checkpoints load with weights_only=True"
    for r in (field(project, checkpoint="evil.pth"), features(project, checkpoint="evil.pth")):
        last = one_line_error(r, refused)
        assert "weights_only` set to `False`" not in r.stderr and "add_safe_globals" not in r.stderr
        assert "Re-running" not in last
    assert not (project / "pwned.txt").exists()
    with pytest.raises(ValueError, match=f"^{refused}"):
        checkpoint.load_weights_only("evil.pth")
    with pytest.raises(ValueError, match=f"^{refused}"):  # the loader of the taskonomy and mini encoders
        load_state_dict_checked(torch.nn.Conv2d(3, 4, 3), "evil.pth")
    (project / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"^checkpoint garbage.pth is not a readable weights-only torch file: "
                                         r"Unsupported operand 110$"):
        checkpoint.load_weights_only("garbage.pth")


@pytest.mark.slow  # runs stage scripts as processes
def test_a_negative_seed_is_refused_naming_its_param(project, tmp_path):
    one_line_error(field(project, "--seed", -1), "field.seed (--seed) must be an integer from 0 to 4294967295, got -1")
    one_line_error(field(project, "--sketch-seed", -2), "field.sketch_seed (--sketch-seed) must be an integer")
    assert not (project / "fields").exists()
    stored_fields(project)
    (project / "params.yaml").write_text(yaml.safe_dump({"models": TASKS}))
    one_line_error(distance(project, "modelgif", "--seed", -5),
                   "bootstrap.seed (--seed) must be an integer from 0 to 4294967295, got -5")
    one_line_error(distance(project, "modelgif", "--n-boot", 0), "bootstrap.n (--n-boot) must be a positive integer")
    assert not (project / "methods").exists()
    assert errors.check_seed(np.int64(3), "x.seed") == 3
    for bad in (-1, 2**32, 1.5, True, "0"):
        with pytest.raises(InputError, match="^x.seed must be an integer from 0 to 4294967295"):
            errors.check_seed(bad, "x.seed")


def test_temporary_file_names_never_appear_in_a_message(tmp_path):
    dest = tmp_path / "data" / "fields" / "normal.npy"
    tmp = temp_name(dest)
    assert describe(ValueError(f"cannot read {tmp}: truncated")) == f"cannot read {dest}: truncated"
    assert describe(OSError(errno.ENOSPC, f"no space left on device: {tmp} does not fit")) == \
        f"no space left on device: {dest} does not fit"
    assert describe(ValueError(f"'{tmp}' and ({tmp.name})")) == f"'{dest}' and (normal.npy)"
    assert describe(ValueError("a.b.host.12.ab.tmp stays: no leading dot")) == "a.b.host.12.ab.tmp stays: no leading dot"
    assert describe(ValueError("first line\n\nsecond line")) == "first line second line"


def test_memory_check_and_sizes():
    assert [human_size(v) for v in (0, 1023, 1024, 1536, 2**30, 3 * 2**40, 5 * 2**50)] == \
        ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "1.0 GiB", "3.0 TiB", "5.0 PiB"]
    errors.check_memory(1, "one byte")
    with pytest.raises(InputError, match=r"^a test needs 8\.0 PiB of memory and this machine has .* available; "
                                         r"lower it$"):
        errors.check_memory(8 * 2**50, "a test", "lower it")


def test_intermediates_read_by_header_and_json(tmp_path):
    huge_reference(tmp_path / "huge.npy")
    assert storage.npy_header(tmp_path / "huge.npy") == ((1000, 3, 100_000, 100_000), np.dtype("uint8"))
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(storage.load_array(tmp_path / "a.npy", ndim=2), np.arange(6.0).reshape(2, 3))
    with pytest.raises(FileNotFoundError, match="no meta record at"):
        storage.read_json_record(tmp_path / "missing.json", "meta record")
    (tmp_path / "r.json").write_text('{"a": 1, "b": 2}')
    assert storage.read_json_record(tmp_path / "r.json", "record", ("a", "b")) == {"a": 1, "b": 2}
    (tmp_path / "r.json").write_text("3")
    with pytest.raises(InputError, match=r"r\.json holds a JSON int, not the object a record is; rerun"):
        storage.read_json_record(tmp_path / "r.json", "record", ("a",))


# --------------------------------------------------------------------------- item 11: a zoo that does not exist


@pytest.mark.slow  # runs stage scripts as processes
@pytest.mark.parametrize("script, args", [
    ("field.py", ["one", "--checkpoint", "one.pth", "--reference", "images.npy", "--out", "fields/one.npy"]),
    ("features.py", ["one", "--checkpoint", "one.pth", "--reference", "images.npy"]),
    ("fetch_reference.py", ["--out", "ref"]),
    ("fetch_checkpoint.py", ["one", "--out", "ckpt/one.pth"]),
    ("correlate.py", ["--methods", "methods", "--metrics", "m/c.json", "--plots", "m/plots"]),
])
def test_every_stage_names_the_zoos_there_are_for_a_zoo_not_written_yet(project, script, args):
    r = run_stage(script, *args, "--zoo", "ours", cwd=project)
    one_line_error(r, "unknown zoo 'ours': no zoos/ours.yaml; known zoos: mine, mini, mini_random, taskonomy")
    assert "Errno" not in r.stderr
    r = run_stage(script, *args, "--zoo", "zoos/ours.yaml", cwd=project)
    one_line_error(r, "unknown zoo 'zoos/ours.yaml': no declaration file zoos/ours.yaml; known zoos: mine, mini, "
                      "mini_random, taskonomy")


def test_a_zoo_path_that_is_a_folder_is_unknown(project):
    (project / "zoos" / "dir.yaml").mkdir()
    with pytest.raises(ZooError, match=r"^unknown zoo 'zoos/dir.yaml': a folder, not a declaration file zoos/dir.yaml; "
                                       r"known zoos: mine, mini, mini_random, taskonomy$"):
        load_zoo_spec("zoos/dir.yaml")
    with pytest.raises(ZooError, match=r"^unknown zoo 'dir': no zoos/dir.yaml; known zoos: mine, mini"):
        load_zoo_spec("dir")
