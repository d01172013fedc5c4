"""modelgif.settings: what each stage depends on instead of params (issue 20, items 2, 3, 5, 6)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import yaml

from modelgif._resources import mini_tables_dir, taskonomy_tables_dir
from modelgif.errors import InputError
from modelgif.settings import (STAGE_SCRIPTS, checkpoint_settings, field_settings, method_settings, reference_settings,
                               resolve_settings, source_fingerprint)
from modelgif.zoo.spec import load_zoo_spec

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # zoos/ and data/ paths are the project's


def test_settings_without_effect_are_dropped():
    spec = load_zoo_spec("mini")
    base = field_settings(PARAMS, spec)
    assert base["sketch_dim"] == 0 and base["sketch_seed"] is None
    other = {**PARAMS, "field": {**PARAMS["field"], "sketch_seed": 9}}
    assert field_settings(other, spec) == base
    sketched = {**PARAMS, "field": {**PARAMS["field"], "sketch_dim": 8, "sketch_seed": 9}}
    assert field_settings(sketched, spec)["sketch_seed"] == 9
    zero = {**PARAMS, "field": {**PARAMS["field"], "baseline": "zero"}}
    zero_seed = {**PARAMS, "field": {**PARAMS["field"], "baseline": "zero", "seed": 5}}
    assert field_settings(zero, spec) == field_settings(zero_seed, spec) and field_settings(zero, spec)["seed"] is None
    # distance matters to field methods only
    euclid = {**PARAMS, "distance": "euclidean"}
    assert method_settings(euclid, "rsa") == method_settings(PARAMS, "rsa")
    assert method_settings(euclid, "modelgif") != method_settings(PARAMS, "modelgif")
    assert method_settings(euclid, "ig")["metric"] == "euclidean"


def test_the_reference_size_defaults_to_the_zoos_and_another_warns():
    assert PARAMS["reference"]["image_size"] == "zoo"
    mini = load_zoo_spec("mini")
    assert reference_settings(PARAMS, mini)["image_size"] == 64 and reference_settings(PARAMS, mini)["warnings"] == []
    assert reference_settings(PARAMS, load_zoo_spec("taskonomy"))["image_size"] == 128
    explicit = {**PARAMS, "reference": {**PARAMS["reference"], "image_size": 32}}
    s = reference_settings(explicit, mini)
    assert s["image_size"] == 32
    assert s["warnings"] == ["reference.image_size 32 differs from the zoo's declared input_size 64: "
                             "its models are probed at a size they were not made for"]
    same = {**PARAMS, "reference": {**PARAMS["reference"], "image_size": 64}}
    assert reference_settings(same, mini)["warnings"] == []
    for bad in (0, -3, "big", True):
        with pytest.raises(InputError, match="reference.image_size must be a positive number"):
            reference_settings({**PARAMS, "reference": {**PARAMS["reference"], "image_size": bad}}, mini)


def test_a_folder_fingerprint_changes_with_any_image(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.png", "sub/b.png"):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / ".hidden.tmp").write_bytes(b"x")
    fp = source_fingerprint(str(tmp_path))
    assert fp["files"] == [["a.png", 5, hashlib.sha256(b"a.png").hexdigest()],
                           ["sub/b.png", 9, hashlib.sha256(b"sub/b.png").hexdigest()]]
    (tmp_path / "sub/b.png").write_bytes(b"sub/B.png")  # same size, other bytes
    assert source_fingerprint(str(tmp_path)) != fp
    archive = tmp_path / "set.tar"
    archive.write_bytes(b"tar bytes")
    assert source_fingerprint(str(archive))["sha256"] == hashlib.sha256(b"tar bytes").hexdigest()
    with pytest.raises(InputError, match="no such folder, archive or URL"):
        source_fingerprint(str(tmp_path / "missing"))


def test_a_url_fingerprint_follows_the_servers_validators(tmp_path, http_server):
    (tmp_path / "set.zip").write_bytes(b"one")
    base = http_server(tmp_path)
    first = source_fingerprint(f"{base}/set.zip")
    assert first["content_length"] == "3" and first["last_modified"]
    os.utime(tmp_path / "set.zip", (time.time() + 86400,) * 2)
    (tmp_path / "set.zip").write_bytes(b"two!")
    assert source_fingerprint(f"{base}/set.zip") != first
    with pytest.raises(InputError, match="cannot check the URL for changes"):
        source_fingerprint(f"{base}/missing.zip")


def test_a_local_checkpoint_file_is_fingerprinted(tmp_path):
    spec = load_zoo_spec("mini")
    s = checkpoint_settings(PARAMS, spec, "normal")
    entry = yaml.safe_load((ROOT / "data/manifests/mini_encoders.json").read_text())["encoders"]["normal"]
    path = f"data/mini/encoders/{entry['file']}"
    assert s["local_files"][path] == entry["sha256"]  # the committed file is the manifest's
    # params.yaml leaves them null: build 0's (mini.build), as they were before there were builds
    assert s["params_key"] == "mini.checkpoints" and s["section"] == {
        "base_url": "data/mini/encoders", "manifest": "data/manifests/mini_encoders.json", "random_seed": 0}
    # the Taskonomy zoo downloads: nothing local to hash but its manifest
    t = checkpoint_settings(PARAMS, load_zoo_spec("taskonomy"), "normal")
    assert list(t["local_files"]) == [PARAMS["checkpoints"]["manifest"]]


def test_resolve_settings_names_one_file_per_task_and_method():
    files = resolve_settings({**PARAMS, "zoo": "mini"})
    assert set(files) == {"zoo.json", "reference.json", "field.json", "features.json", "affinity.json", "ground_truth.json",
                          *(f"checkpoint_{t}.json" for t in PARAMS["models"]),
                          *(f"method_{m}.json" for m in PARAMS["methods"]),
                          *(f"code_{s}.json" for s in STAGE_SCRIPTS)}
    tables = files["ground_truth.json"]["files"]
    readouts = {f"{t}.readouts.{f.name}" for t in ("wins_vs_pixels", "losses")
                for f in (ROOT / "data/mini/tables/readouts").glob(f"{t}_r*.json")}
    assert len(readouts) >= 6 and set(tables) == {"wins_vs_pixels.file", "wins_vs_pixels.replicate", "losses.file",
                                                  "losses.replicate", *readouts}


def test_no_environment_variable_moves_the_ground_truth(monkeypatch, tmp_path):
    before = (taskonomy_tables_dir(), mini_tables_dir())
    monkeypatch.setenv("MODELGIF_TABLES", str(tmp_path))
    monkeypatch.setenv("MODELGIF_MINI_TABLES", str(tmp_path))
    assert (taskonomy_tables_dir(), mini_tables_dir()) == before
    assert tmp_path not in before


def test_ig_with_a_per_step_field_is_refused_before_any_work():
    per_step = {**PARAMS, "field": {**PARAMS["field"], "cumulative": False}}
    with pytest.raises(InputError, match="method ig cannot run with field.cumulative: false"):
        resolve_settings(per_step)
    assert "method_modelgif.json" in resolve_settings({**per_step, "methods": ["modelgif", "rsa"]})


@pytest.mark.parametrize("change,message", [
    ({"reference": {"image_size": 100000}}, "building 1000 reference images of 3×100000×100000 needs"),
    ({"reference": {"seed": -1}}, "reference.seed must be an integer from 0 to 4294967295, got -1"),
    ({"reference": {"n_images": 0}}, "reference.n_images must be a positive number of images, got 0"),
    ({"field": {"seed": -2}}, "field.seed must be an integer"),
    ({"field": {"sketch_seed": 1.5}}, "field.sketch_seed must be an integer"),
    ({"bootstrap": {"seed": -1}}, "bootstrap.seed must be an integer"),
    ({"zoo": "mini_random", "mini": {"checkpoints": {"random_seed": -4}}}, "mini.checkpoints.random_seed must be"),
])
def test_bad_settings_are_refused_by_the_first_stage_naming_the_param(change, message):
    params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PARAMS.items()}
    for key, value in change.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, dict):
                    params[key][sub] = {**params[key][sub], **v}
                else:
                    params[key][sub] = v
        else:
            params[key] = value
    with pytest.raises(InputError) as e:
        resolve_settings(params)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_task_is_refused_naming_the_zoos_models():
    with pytest.raises(InputError, match=r"zoos/mini.yaml: unknown task 'nope': not a model of zoo mini .*known tasks: autoencoding"):
        resolve_settings({**PARAMS, "zoo": "mini", "models": ["normal", "nope"]})
    with pytest.raises(InputError, match="'models' must be a non-empty list of distinct model names"):
        resolve_settings({**PARAMS, "models": ["normal", "normal"]})


def test_the_old_name_of_models_is_refused_with_the_new_one():
    """``tasks`` was renamed ``models``: an old params file (or ``-S tasks=[...]``, which adds the
    key beside ``models``) is refused, naming both keys, before anything is resolved."""
    old = {k: v for k, v in PARAMS.items() if k != "models"} | {"tasks": PARAMS["models"]}
    for params in (old, {**PARAMS, "tasks": ["normal"]}):
        with pytest.raises(InputError, match=r"params.yaml: 'tasks' is now called 'models'.*-S 'models=\[\.\.\.\]'"):
            resolve_settings(params)
