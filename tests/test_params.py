"""No setting is ever silently ignored (issues 10.1, 11.1, 11.2, 11.7), through real DVC on a tiny
mini-zoo configuration in one temporary copy of the project:

- every leaf of ``params.yaml`` is changed in turn: every stage that reads it (per ``dvc.yaml``)
  reruns for real (not "cached"; a ``foreach`` stage: its first item), and its output changes
  (where a new value must give a new output); switching back restores everything from the run
  cache and runs nothing;
- no key anywhere in a params file is named ``size`` or ``nfiles`` (DVC's run-cache key drops them);
- after a run, two ``dvc exp run`` and a ``dvc exp apply``, git sees no data file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import copy_project, pipeline_env, serve_directory, write_encoder_checkpoint, write_sample_building
from PIL import Image

from modelgif.io.download import sha256_file
from modelgif.compare.methods import FIELD_METHODS, SET_METHODS

#: the methods params.yaml lists (the estimators need a reference set rendered from mini-scenes)
METHODS = FIELD_METHODS + SET_METHODS

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["normal", "reshading", "depth_zbuffer"]
BASE = {"zoo": "mini", "models": TASKS, "reference.n_images": 4, "reference.image_size": 32, "field.n_steps": 2,
        "bootstrap.n": 5}


def _walk_keys(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{prefix}{k}", v
            yield from _walk_keys(v, f"{prefix}{k}.")


@pytest.mark.parametrize("params_file", ["params.yaml", "mini/params.yaml"])
def test_no_param_is_named_size_or_nfiles(params_file):
    keys = [k for k, _ in _walk_keys(yaml.safe_load((ROOT / params_file).read_text()))]
    assert keys and not [k for k in keys if k.rsplit(".", 1)[-1] in ("size", "nfiles")]


def _leaves(node, prefix=""):
    """Dotted names of the leaves of params.yaml (a list is one leaf)."""
    for k, v in node.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _readers(dvc_yaml: dict, leaf: str, changed_settings: set[str] = frozenset()) -> list[str]:
    """Stages (foreach stages by name, without @item) whose params cover ``leaf`` (a param named
    with ``${item}`` covers it for the item that leaf names, e.g. ``method_options.cka.debiased``),
    or that depend on a file of the settings stage the edit changed (``changed_settings``: names
    under data/settings/). The settings stage itself (it lists every param, and runs always) is
    left out."""
    out = []
    for name, stage in dvc_yaml["stages"].items():
        if name == "settings":
            continue
        body = stage.get("do", stage)
        declared = [p if isinstance(p, str) else next(iter(p)) for p in body.get("params", [])]
        declared = [re.sub(r"\$\{item\}", leaf.split(".")[1], p) if "${item}" in p and "." in leaf else p
                    for p in declared]
        files = [d for d in body.get("deps", []) if isinstance(d, str) and d.startswith("data/settings/")]
        reads_file = any(re.fullmatch(re.escape(d[len("data/settings/"):]).replace(r"\$\{item\}", ".+"), f)
                         for d in files for f in changed_settings)
        if reads_file or any(leaf == p or leaf.startswith(p + ".") for p in declared):
            out.append(name)
    return out


def _settings(project: Path) -> dict:
    """The settings stage's files for the project's current params (computed in the project)."""
    import os

    from modelgif.settings import resolve_settings

    here = os.getcwd()
    os.chdir(project)
    try:
        return resolve_settings(yaml.safe_load((project / "params.yaml").read_text()))
    finally:
        os.chdir(here)


def _first_item(stage: str, leaf: str) -> str:
    """The stage name ``dvc repro --single-item`` runs for a reader of ``leaf``: a foreach over
    tasks at its first task, the one over methods at the method the leaf names (or modelgif)."""
    if stage in ("fetch_reference", "affinity", "correlate", "method_inputs"):
        return stage
    if stage == "distance":
        return f"distance@{leaf.split('.')[1] if leaf.startswith('method_options.') else 'modelgif'}"
    return f"{stage}@normal"


def _run(args, cwd, env, check=True):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _set(project: Path, changes: dict):
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _get(project: Path, dotted: str):
    node = yaml.safe_load((project / "params.yaml").read_text())
    for key in dotted.split("."):
        node = node[key]
    return node


def _outs(project: Path) -> dict[str, list]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {name: [(o["path"], o.get("md5")) for o in s.get("outs", [])] for name, s in lock.items()}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC copy on the mini zoo at a tiny size, run once, committed; a local server with
    a sample building (two commits), and Taskonomy-format checkpoints with two manifests."""
    tmp = tmp_path_factory.mktemp("params")
    project = copy_project(ROOT, tmp / "project")
    env = pipeline_env(tmp)
    mirror = tmp / "mirror"
    for commit, seed in (("c1", 0), ("c2", 1)):
        write_sample_building(mirror / "a", 6, size=(40, 40), commit=commit, seed=seed)
    write_sample_building(mirror / "b", 6, size=(40, 40), commit="c1", seed=2)
    for i, task in enumerate(["normal", "normal_other"]):
        write_encoder_checkpoint(mirror / "ckpt" / f"{task}.pth", seed=i)
    shutil.copytree(mirror / "ckpt", mirror / "ckpt_copy")
    sha = {p.stem: sha256_file(p) for p in (mirror / "ckpt").iterdir()}
    for name, file in (("m1.json", "normal"), ("m2.json", "normal_other")):
        (project / name).write_text(json.dumps({"encoders": {"normal": {"file": f"{file}.pth", "sha256": sha[file]}}}))
    # a mini manifest whose `normal` is reshading's encoder; a copy of the encoder folder
    mini = json.loads((ROOT / "data/manifests/mini_encoders.json").read_text())
    mini["encoders"]["normal"] = mini["encoders"]["reshading"]
    (project / "mini_swapped.json").write_text(json.dumps(mini))
    shutil.copytree(ROOT / "data/mini/encoders", tmp / "encoders_copy")
    images = project / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    base, stop = serve_directory(mirror)
    _set(project, BASE)
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "copy"], project, env)
    out = _run(["dvc", "repro"], project, env).stdout
    assert "Running stage 'correlate'" in out
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "tiny mini run"], project, env)
    yield project, env, {"base": base, "encoders_copy": str(tmp / "encoders_copy")}
    stop()


def _edits(ctx) -> dict[str, tuple[dict, object, set[str]]]:
    """leaf -> (context: other settings it needs to apply, new value, stages whose output must change).
    A reader not in the last set must still rerun; its output may stay (e.g. a mirror serving the
    same sha256-pinned file)."""
    server = ctx["base"]
    taskonomy_ckpt = {"zoo": "taskonomy", "checkpoints.base_url": f"{server}/ckpt/", "checkpoints.manifest": "m1.json"}
    sample = {"reference.source": "taskonomy-sample", "reference.base_url": f"{server}/a", "reference.commit": "c1"}
    return {
        "zoo": ({}, "mini_random", {"fetch_checkpoint", "field", "features"}),  # the field of the new encoder
        "models": ({}, list(reversed(TASKS)), {"affinity", "method_inputs", "distance"}),
        "target": ({}, 5, {"field", "features"}),  # features: its attribution maps
        "reference.source": ({}, "images", {"fetch_reference"}),  # a folder of 4 PNGs
        "reference.n_images": ({}, 5, {"fetch_reference"}),
        "reference.image_size": ({}, 48, {"fetch_reference", "correlate"}),  # correlate: the size warning
        "reference.cutmix": ({}, False, {"fetch_reference"}),
        "reference.seed": ({}, 4, {"fetch_reference"}),
        "reference.base_url": (sample, f"{server}/b", {"fetch_reference"}),
        "reference.commit": (sample, "c2", {"fetch_reference"}),
        "reference.first_scene": ({}, 5, {"fetch_reference"}),
        # the set's own checksum: the stage reruns, checks it and writes the same images
        "reference.sha256": ({}, lambda project: json.loads(
            (project / "data" / "reference" / "manifest.json").read_text())["images_sha256"], set()),
        "checkpoints.base_url": (taskonomy_ckpt, f"{server}/ckpt_copy/", set()),  # the same pinned file
        "checkpoints.manifest": (taskonomy_ckpt, "m2.json", {"fetch_checkpoint"}),
        "field.n_steps": ({}, 3, {"field"}),
        "field.method": ({}, "riemann_left", {"field"}),
        "field.baseline": ({}, "zero", {"field"}),
        "field.seed": ({}, 1, {"field"}),
        # per-step fields: ig (their last step) is refused with them, so it leaves the methods first
        "field.cumulative": ({"methods": [m for m in METHODS if m != "ig"]}, False, {"field"}),
        "field.dtype": ({}, "float32", {"field"}),
        "field.precision": ({}, "bf16", {"field"}),
        "field.sketch_dim": ({}, 8, {"field"}),
        "field.sketch_seed": ({"field.sketch_dim": 8}, 1, {"field"}),
        "distance": ({}, "euclidean", {"affinity", "distance"}),
        "methods": ({}, ["modelgif", "cka"], {"method_inputs", "correlate"}),
        "method_options.cka.debiased": ({}, True, {"distance"}),
        "method_options.dds.kernel": ({}, "cosine", {"distance"}),
        "method_options.dds.feature_norm": ({}, "centering", {"distance"}),
        "method_options.dds.debiased": ({}, False, {"distance"}),
        "method_options.dds.bootstrap_refit": ({}, True, {"distance"}),  # resamples exact, not indexed
        # the estimators (not listed by default): listed first; 4 images of 2×2 pixels are 16 rows,
        # so max_samples 8 fits 2 of the images, and a new sample_seed draws other ones
        **{f"method_options.{m}.{key}": ({"methods": ["modelgif", m], **extra}, value, {"distance"})
           for m, opts in (("logme", {}), ("linear_mse", {"alpha": 0.5}), ("knn", {"k": 3}))
           for key, extra, value in (*((k, {}, v) for k, v in opts.items()), ("max_samples", {}, 8),
                                     ("sample_seed", {f"method_options.{m}.max_samples": 8}, 1))},
        "bootstrap.n": ({}, 7, {"distance"}),
        "bootstrap.seed": ({}, 1, {"distance"}),
        "ground_truth": ({"zoo": "taskonomy"}, ["all_affinities"], {"correlate"}),
        # another committed build: other encoders (fetched) and other tables (correlate)
        "mini.build": ({}, 1, {"fetch_checkpoint", "correlate"}),
        "mini.checkpoints.base_url": ({}, ctx["encoders_copy"], set()),  # the same pinned files
        "mini.checkpoints.manifest": ({}, "mini_swapped.json", {"fetch_checkpoint"}),
        "mini.checkpoints.random_seed": ({"zoo": "mini_random"}, 1, {"fetch_checkpoint"}),
        "mini.ground_truth": ({}, ["losses"], {"correlate"}),
        "permutation.n": ({}, 50, {"correlate"}),  # the p-values' floor moves (details JSON)
        # no column of these 3 tasks' tables ties, so only the rule recorded in the details JSON moves
        "degenerate.max_tied_fraction": ({}, 1.0, {"correlate"}),
        "primary.table": ({}, "losses", {"correlate"}),
        "primary.method": ({}, "cka", {"correlate"}),
        # off the diagonal needs 4 tasks: with these 3 the primary family is left out, a note says so
        "primary.score": ({}, "mean_rho_off_diagonal", {"correlate"}),
    }


@pytest.mark.slow
def test_every_param_reruns_its_readers_and_changes_their_outputs(project):
    project, env, ctx = project
    dvc_yaml = yaml.safe_load((project / "dvc.yaml").read_text())
    edits = _edits(ctx)
    leaves = list(_leaves(yaml.safe_load((project / "params.yaml").read_text())))
    assert sorted(edits) == sorted(leaves), "a param of params.yaml has no edit here (or an edit no param)"
    base_outs = _outs(project)
    for leaf, (context, value, must_change) in edits.items():
        original = {k: _get(project, k) for k in [*context, leaf]}
        _set(project, context)
        if callable(value):  # a value that depends on the project's current outputs
            value = value(project)
        assert value != _get(project, leaf), leaf
        settings_before = _settings(project)
        _set(project, {leaf: value})
        settings_after = _settings(project)
        # files the edit changed or added (a removed one belongs to a stage that no longer exists)
        changed = {f for f in settings_after if settings_before.get(f) != settings_after[f]}
        readers = _readers(dvc_yaml, leaf, changed)
        assert readers, f"no stage declares param {leaf} or reads a settings file it changes: it cannot have any effect"
        assert must_change <= set(readers), (leaf, readers)
        first = [_first_item(s, leaf) for s in readers]
        if context:  # the settings the edited one applies under: its readers run (and are checked) first
            _set(project, {leaf: context.get(leaf, original[leaf])})
            listed = ["method_inputs"] if "methods" in context else []  # a method listed: its inputs' fingerprint
            _run(["dvc", "repro", "settings", *listed, *first, "--single-item"], project, env)
            _set(project, {leaf: value})
        before = _outs(project)
        out = _run(["dvc", "repro", "settings", *first, "--single-item"], project, env).stdout
        after = _outs(project)
        for stage in first:
            assert f"Running stage '{stage}'" in out, f"{leaf}: {stage} did not run:\n{out}"
            if stage.split("@")[0] in must_change:
                assert after[stage] != before[stage], f"{leaf}={value!r}: {stage}'s output did not change"
            else:
                assert after[stage] == before[stage], f"{leaf}={value!r}: {stage}'s output changed"
        # switching back: everything comes from the run cache, nothing runs
        _set(project, original)
        for added in set(context.get("methods", [])) - set(original.get("methods", [])):
            shutil.rmtree(project / "data" / "methods" / added)  # a method no longer listed: its output, in correlate's folder
        out = _run(["dvc", "repro", "dvc.yaml"], project, env).stdout
        ran = set(re.findall(r"Running stage '([^']+)'", out)) - {"settings"}  # settings: always runs
        assert not ran, f"{leaf}: switching back ran {ran}"
        # (a stage the context added and the switch back removed keeps its entry in dvc.lock)
        assert {s: o for s, o in _outs(project).items() if s in base_outs} == base_outs, leaf
        if set(context.get("methods", [])) - set(original.get("methods", [])):
            # that entry is all that differs from the committed dvc.lock: restore it, so the next
            # edits (and the next test, which starts from a clean git status) see the base state
            _run(["git", "checkout", "--", "dvc.lock"], project, env)
            assert _outs(project) == base_outs, leaf
    status = json.loads(_run(["dvc", "status", "--json"], project, env).stdout)
    assert status == {"settings": ["always changed"]}, status


@pytest.mark.slow
def test_a_switch_back_restores_every_stage_from_the_run_cache(project):
    project, env, _ = project
    base_outs = _outs(project)
    _set(project, {"target": 6})
    out = _run(["dvc", "repro"], project, env).stdout
    assert {f"{s}@{t}" for s in ("field", "features") for t in TASKS} | {"affinity", "correlate"} <= set(
        re.findall(r"Running stage '([^']+)'", out))
    _set(project, {"target": 1})
    out = _run(["dvc", "repro"], project, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", out)) == {"settings"}
    cached = set(re.findall(r"Stage '([^']+)' is cached - skipping run", out))
    # the features (target-dependent maps) and the field methods' distances come back too; the
    # set methods read the encoder outputs alone, which the target does not change: they never reran
    assert cached == {f"{s}@{t}" for s in ("field", "features") for t in TASKS} | {
        f"distance@{m}" for m in FIELD_METHODS} | {"affinity", "method_inputs", "correlate"}
    assert _outs(project) == base_outs


@pytest.mark.slow
def test_git_never_sees_data_after_experiments(project):
    project, env, _ = project
    assert _run(["git", "status", "--porcelain"], project, env).stdout == ""
    _run(["dvc", "exp", "run", "-n", "steps3", "-S", "field.n_steps=3"], project, env)
    _run(["dvc", "exp", "run", "-n", "euclid", "-S", "distance=euclidean"], project, env)
    shown = _run(["dvc", "exp", "show", "--csv"], project, env).stdout
    assert "steps3" in shown and "euclid" in shown and "modelgif" in shown.splitlines()[0].split(",")
    _run(["dvc", "exp", "apply", "steps3"], project, env)
    status = _run(["git", "status", "--porcelain", "--untracked-files=all"], project, env).stdout.splitlines()
    changed = {line[3:] for line in status}
    assert not [line for line in status if line.startswith("??")], status
    assert changed <= {"params.yaml", "dvc.lock", "metrics/headline.json", "metrics/per_task_rho.csv",
                       "metrics/methods_rho.csv"}, changed
    for folder in ("data/reference", "data/checkpoints", "data/fields", "data/affinity", "data/correlate",
                   "data/features", "data/attributions", "data/methods"):
        assert (project / folder).is_dir() and any((project / folder).iterdir()), folder
    # per-method deltas: the applied experiment's headline against the committed one
    diff = json.loads(_run(["dvc", "metrics", "diff", "--all", "--json"], project, env).stdout)["metrics/headline.json"]
    now = json.loads((project / "metrics/headline.json").read_text())
    assert set(METHODS) <= set(diff) and all(diff[m]["new"] == now[m] for m in diff)
    assert all(diff[m]["diff"] == pytest.approx(diff[m]["new"] - diff[m]["old"]) for m in diff)


@pytest.mark.slow  # runs git and dvc
def test_fresh_clone_status_is_coherent(tmp_path):
    """A fresh clone: no warning (no frozen stage), the mini build up to date, and the main
    pipeline's stages listed only as not run yet (what the README says the first status means)."""
    project = copy_project(ROOT, tmp_path / "clone")
    env = pipeline_env(tmp_path)
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-qm", "clone"], project, env)
    proc = _run(["dvc", "status", "--json"], project, env)
    assert "WARNING" not in proc.stderr + proc.stdout
    status = json.loads(proc.stdout)
    stages = set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    assert status and all(name.split("@")[0] in stages for name in status), sorted(status)
    assert "up to date" in _run(["dvc", "status", "mini/dvc.yaml"], project, env).stdout
    # make status: a few lines, not DVC's one line per dependency of each of the 62 stages
    summary = _run([sys.executable, "tools/run.py", "status"], project, env).stdout.splitlines()
    assert len(summary) == 2 and summary[1].startswith("never run (no dvc.lock entry): 62 stage(s): "), summary
    assert "field@ x17" in summary[1]
