"""modelgif.zoo.mini_builds: the committed builds of the mini zoo, chosen by params mini.build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from modelgif.errors import InputError
from modelgif.io.download import sha256_file
from modelgif.score.ground_truth import ground_truth_tables
from modelgif.settings import checkpoint_settings, resolve_settings
from modelgif.zoo.mini_builds import (BUILDS, check_build, encoders_dir, manifest_path, other_build, resolve_mini_params,
                                      tables_dir)
from modelgif.zoo.spec import load_zoo_spec

ROOT = Path(__file__).resolve().parent.parent
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
TASKS = PARAMS["models"]


def _params(build: int, **checkpoints) -> dict:
    return {**PARAMS, "zoo": "mini", "mini": {**PARAMS["mini"], "build": build,
                                             "checkpoints": {**PARAMS["mini"]["checkpoints"], **checkpoints}}}


def test_params_yaml_chooses_build_0_and_leaves_the_paths_to_it():
    assert PARAMS["mini"]["build"] == 0
    assert PARAMS["mini"]["checkpoints"] == {"base_url": None, "manifest": None, "random_seed": None}


@pytest.mark.parametrize("build", BUILDS)
def test_the_nulls_follow_the_build_and_a_set_value_overrides_it(build):
    original = _params(build)
    resolved = resolve_mini_params(original)
    assert resolved["mini"]["checkpoints"] == {"base_url": encoders_dir(build), "manifest": manifest_path(build),
                                               "random_seed": build}
    assert original["mini"]["checkpoints"]["base_url"] is None  # a copy: the caller's params are left alone
    assert {k: v for k, v in resolved.items() if k != "mini"} == {k: v for k, v in original.items() if k != "mini"}
    mirror = resolve_mini_params(_params(build, base_url="https://mirror.example/mini/", random_seed=7))
    assert mirror["mini"]["checkpoints"] == {"base_url": "https://mirror.example/mini/",
                                             "manifest": manifest_path(build), "random_seed": 7}
    assert resolve_mini_params({"zoo": "taskonomy"}) == {"zoo": "taskonomy"}


@pytest.mark.parametrize("bad", [3, -1, "1", 1.0, True, None])
def test_an_unknown_build_is_refused_naming_the_param_and_the_builds(bad):
    with pytest.raises(InputError, match=r"'mini\.build' must be one of the committed mini builds 0, 1, 2"):
        resolve_mini_params(_params(0) | {"mini": {"build": bad}})
    with pytest.raises(InputError, match="mini.build"):
        resolve_settings(_params(0) | {"mini": {**PARAMS["mini"], "build": bad}})


def test_the_folders_of_each_build():
    assert [encoders_dir(b) for b in BUILDS] == ["data/mini/encoders", "data/mini/encoders_seed1", "data/mini/encoders_seed2"]
    assert [manifest_path(b) for b in BUILDS] == ["data/manifests/mini_encoders.json",
                                                  "data/manifests/mini_encoders_seed1.json",
                                                  "data/manifests/mini_encoders_seed2.json"]
    assert [tables_dir(b).name for b in BUILDS] == ["tables", "tables_seed1", "tables_seed2"]
    assert [other_build(b) for b in BUILDS] == [1, 2, 0]
    assert check_build(2) == 2


@pytest.mark.parametrize("build", BUILDS)
def test_every_build_is_committed_whole_and_pinned(build):
    """17 encoders, each the file its build's manifest pins; the build's seed in the manifest."""
    manifest = json.loads((ROOT / manifest_path(build)).read_text())
    assert f"seed {build}," in manifest["source"]
    assert sorted(manifest["encoders"]) == sorted(TASKS)
    for task, entry in manifest["encoders"].items():
        assert sha256_file(ROOT / encoders_dir(build) / entry["file"]) == entry["sha256"], (build, task)
    files = sorted(p.name for p in (ROOT / encoders_dir(build)).glob("*.pth"))
    assert files == sorted(e["file"] for e in manifest["encoders"].values())


def test_the_builds_are_independent_trainings():
    """No encoder is shared between two builds, and their tables differ."""
    sha = {b: {t: e["sha256"] for t, e in json.loads((ROOT / manifest_path(b)).read_text())["encoders"].items()}
           for b in BUILDS}
    for task in TASKS:
        assert len({sha[b][task] for b in BUILDS}) == len(BUILDS), task
    tables = [ground_truth_tables(_params(b), "mini", TASKS) for b in BUILDS]
    for a in range(len(BUILDS)):
        for b in range(a + 1, len(BUILDS)):
            for ta, tb in zip(tables[a], tables[b]):
                assert not np.array_equal(ta.matrix, tb.matrix), (ta.name, a, b)


@pytest.mark.parametrize("build", BUILDS)
def test_mini_build_chooses_the_tables_their_readouts_and_the_other_build(build):
    spec = load_zoo_spec("mini", mini_build=build)
    for name in ("wins_vs_pixels", "losses"):
        table = spec.tables[name]
        assert table.file == tables_dir(build) / f"{name}.json"
        assert table.replicate == tables_dir(other_build(build)) / f"{name}.json"
        files = table.readout_files()
        assert len(files) >= 2 and all(f.parent == tables_dir(build) / "readouts" for f in files)
    for gt in ground_truth_tables(_params(build), "mini", TASKS):  # each is the mean of its readouts (checked there)
        raw = json.loads((tables_dir(build) / f"{gt.name}.json").read_text())
        assert raw["replicates"] == gt.readouts.shape[0] >= 2
        np.testing.assert_allclose(gt.readouts.mean(axis=0), gt.matrix, rtol=1e-12)
        other = ground_truth_tables(_params(other_build(build)), "mini", TASKS)
        np.testing.assert_array_equal(gt.replicate, next(o.matrix for o in other if o.name == gt.name))


@pytest.mark.parametrize("build", BUILDS)
def test_the_settings_of_a_build_pin_its_files(build):
    spec = load_zoo_spec("mini", mini_build=build)
    s = checkpoint_settings(_params(build), spec, "normal")
    entry = json.loads((ROOT / manifest_path(build)).read_text())["encoders"]["normal"]
    assert s["section"] == {"base_url": encoders_dir(build), "manifest": manifest_path(build), "random_seed": build}
    assert s["local_files"] == {manifest_path(build): sha256_file(ROOT / manifest_path(build)),
                                f"{encoders_dir(build)}/{entry['file']}": entry["sha256"]}
    gt = resolve_settings(_params(build))["ground_truth.json"]["files"]
    assert gt["losses.file"] == sha256_file(tables_dir(build) / "losses.json")
    assert gt["losses.replicate"] == sha256_file(tables_dir(other_build(build)) / "losses.json")


def test_mini_random_follows_the_build_unless_its_seed_is_set():
    spec = load_zoo_spec("mini_random")
    seeds = [checkpoint_settings(_params(b) | {"zoo": "mini_random"}, spec, "normal")["section"]["random_seed"]
             for b in BUILDS]
    assert seeds == list(BUILDS)
    assert checkpoint_settings(_params(2, random_seed=0), spec, "normal")["section"]["random_seed"] == 0
