"""Results are never stale (issue 9.5): every project file a stage's script imports, directly or
through other project modules (package ``__init__`` files included), is among that stage's
``deps`` in ``mini/dvc.yaml`` (the file itself or a folder above it), or, for a stage of the main
``dvc.yaml``, in the code fingerprint it depends on (``data/settings/code_<script>.json``, which
the settings stage writes: :func:`modelgif.settings.stage_code`).

The imports are read from the code (``ast``: every ``import`` statement, also those inside
functions), followed through the project's own modules transitively; nothing is listed by hand.
A zoo's own code is loaded by name (``modelgif.zoo.models.ARCHITECTURES``), so it is no import here:
``data/settings/zoo.json`` fingerprints it, and every stage that builds a model depends on that.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import yaml

import modelgif
from modelgif._imports import imported_files
from modelgif.settings import STAGE_SCRIPTS, resolve_settings, stage_code

ROOT = Path(__file__).resolve().parents[1]


def project_imports(script: Path) -> set[Path]:
    """Every project file ``script`` imports, transitively (``script`` itself excluded): read by
    :func:`modelgif._imports.imported_files` (checked against what Python really imports in
    tests/test_imports.py), with a stage's own folder first on the path as Python puts it."""
    return imported_files(script, [script.parent, ROOT] if script.parent.name == "stages" else [ROOT])


def _stages(dvc_yaml: Path):
    """``(name, script, deps)`` of every stage of a dvc.yaml (``foreach`` stages once, deps as
    repository-relative paths, ``${...}`` left unexpanded)."""
    spec = yaml.safe_load(dvc_yaml.read_text())
    for name, stage in spec["stages"].items():
        stage = stage.get("do", stage)
        wdir = (dvc_yaml.parent / stage.get("wdir", ".")).resolve()
        script = re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
        deps = [(wdir / d).resolve().relative_to(ROOT).as_posix() for d in stage.get("deps", [])]
        yield name, (wdir / script).resolve(), deps


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


PIPELINES = ["dvc.yaml", "mini/dvc.yaml"]
STAGES = [(p, name, script, deps) for p in PIPELINES for name, script, deps in _stages(ROOT / p)]


@pytest.mark.parametrize("pipeline,name,script,deps", STAGES, ids=[f"{p}:{n}" for p, n, _, _ in STAGES])
def test_every_imported_project_file_is_a_dependency(pipeline, name, script, deps):
    """A main-pipeline stage depends on its script and on its code fingerprint
    ``data/settings/code_<script>.json``, which the settings stage writes from the same closure
    (and lists no module itself); the settings stage and the mini build list their modules."""
    assert _covered(script.relative_to(ROOT).as_posix(), deps), f"{pipeline}:{name} does not depend on its script"
    needed = sorted(p.relative_to(ROOT).as_posix() for p in project_imports(script))
    if pipeline == "dvc.yaml" and name != "settings":
        assert script.stem in STAGE_SCRIPTS
        assert f"data/settings/code_{script.stem}.json" in deps, f"{name} does not depend on its code fingerprint"
        assert not [d for d in deps if d.startswith(("modelgif", "stages/_"))], f"{name} lists modules beside its fingerprint"
        deps = sorted(stage_code(script.relative_to(ROOT)))
    missing = [p for p in needed if not _covered(p, deps)]
    assert not missing, f"{pipeline}:{name} imports {missing} but its deps lack them; add to its deps: {missing}"


def test_every_stage_script_of_the_pipeline_has_its_code_fingerprint():
    """settings.STAGE_SCRIPTS is exactly the main pipeline's scripts besides settings', and the
    settings stage writes a ``code_<script>.json`` for each."""
    scripts = {script.stem for p, _, script, _ in STAGES if p == "dvc.yaml"} - {"settings"}
    assert scripts == set(STAGE_SCRIPTS)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings = resolve_settings(params)
    assert {n for n in settings if n.startswith("code_")} == {f"code_{s}.json" for s in STAGE_SCRIPTS}
    assert settings["code_field.json"]["script"] == "stages/field.py"


def test_a_stage_s_code_fingerprint_changes_exactly_with_the_code_it_imports(tmp_path):
    """Editing a module changes the fingerprint of the stages that import it, and only theirs:
    the set methods' resampling is method_distance's code, not correlate's."""
    for folder in ("modelgif", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "data"))
    before = {s: stage_code(f"stages/{s}.py", tmp_path) for s in STAGE_SCRIPTS}
    assert before == {s: stage_code(f"stages/{s}.py") for s in STAGE_SCRIPTS}  # a copy is the same code
    with open(tmp_path / "modelgif/compare/resample.py", "a") as f:
        f.write("\n# an edit\n")
    after = {s: stage_code(f"stages/{s}.py", tmp_path) for s in STAGE_SCRIPTS}
    changed = {s for s in STAGE_SCRIPTS if after[s] != before[s]}
    assert changed == {s for s in STAGE_SCRIPTS if "modelgif/compare/resample.py" in before[s]}
    assert "method_distance" in changed and "correlate" not in changed and "field" not in changed
    assert {k for k in after["method_distance"] if after["method_distance"][k] != before["method_distance"][k]} == {
        "modelgif/compare/resample.py"}


def test_the_import_reader_follows_project_imports(tmp_path):
    """The reader itself: the field stage reaches the method's modules through its imports,
    the package's __init__ included, and no module outside the project."""
    got = {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / "stages/field.py")}
    assert {"modelgif/__init__.py", "modelgif/field/gradients.py", "modelgif/field/quadrature.py", "modelgif/field/targets.py",
            "stages/_cli.py"} <= got
    assert all(p.startswith(("modelgif/", "stages/")) for p in got)
    # `import modelgif` reaches only the package's __init__ (its exports are lazy) and the two
    # stdlib-only helpers it runs (the lazy loader, the finder of moved modules), plus what is named
    probe = tmp_path / "probe.py"
    probe.write_text("import modelgif\nfrom modelgif._imports import imported_files\n")
    assert {p.relative_to(ROOT).as_posix() for p in project_imports(probe)} == {
        "modelgif/__init__.py", "modelgif/_lazy.py", "modelgif/_deprecated.py", "modelgif/_imports.py"}
    # a name of a lazy package table is its submodule only: reading images.npy is not building a set
    got = {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / "stages/field.py")}
    assert "modelgif/reference/store.py" in got and "modelgif/reference/build.py" not in got


@pytest.mark.slow  # imports the package in fresh Python processes
def test_lazy_package_keeps_its_api_and_imports_only_what_is_used():
    """``import modelgif`` loads no submodule (so no torch) until a name is used, only its two
    stdlib-only helpers (the lazy loader, the finder of moved modules); every name of
    ``__all__`` resolves to its module's object."""
    import subprocess
    import sys

    code = ("import sys, modelgif; assert 'torch' not in sys.modules, 'torch'; "
            "assert sorted(m for m in sys.modules if m.startswith('modelgif.')) == ['modelgif._deprecated', 'modelgif._lazy']; "
            "import modelgif.score.plots, modelgif.score.correlation, modelgif.zoo.models, modelgif.zoo.taskonomy, modelgif.compare.distance; "
            "assert 'torch' not in sys.modules, 'torch via a library module'; "
            "f = modelgif.gradient_field; import modelgif.field as m; assert f is m.gradient_field")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    import importlib

    for name in modelgif.__all__:
        module = importlib.import_module(f"modelgif.{modelgif._LAZY[name]}")
        assert getattr(modelgif, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        modelgif.nope  # noqa: B018


MODEL_STAGES = ("fetch_reference", "fetch_checkpoint", "field", "features")


@pytest.mark.parametrize("name", MODEL_STAGES)
def test_a_zoo_s_own_code_is_a_dependency_of_its_stages_only(name):
    """Issue 21.2: a stage that builds models depends on the zoo's code fingerprint, never on the
    mini zoo's code (its trainer, encoder, renderer) or the Taskonomy encoder's module directly,
    so editing one zoo's code leaves the other zoos' fields up to date."""
    deps = {n: d for p, n, _, d in STAGES if p == "dvc.yaml"}[name]
    assert "data/settings/zoo.json" in deps
    assert not [d for d in deps if d.startswith("modelgif/mini") or d == "modelgif/zoo/taskonomy.py"], deps


@pytest.mark.parametrize("name", [s for s in STAGE_SCRIPTS if s != "settings"])
def test_a_stage_reads_its_settings_without_the_resolver(name):
    """A stage reads its settings file through ``modelgif.io.settings_file``; the resolver
    (``modelgif/settings.py``: params.yaml → settings files) is in no code fingerprint but the
    settings stage's (and method_inputs', which uses its input lists), so editing it reruns the
    settings stage and, where no settings file's content changes, nothing else: no field."""
    code = stage_code(f"stages/{name}.py")
    if name == "method_inputs":
        assert "modelgif/settings.py" in code
    else:
        assert "modelgif/settings.py" not in code and "modelgif/io/settings_file.py" in code, sorted(code)


def test_the_committed_mini_build_lock_matches_the_code_it_lists():
    """mini/dvc.lock is committed (the mini build is shipped, not rerun): every project file it
    records as a dependency has the md5 it records there. A module edited without
    ``dvc commit -f mini/dvc.yaml`` shows the build as stale in every clone; this says so here,
    where the fast tier sees it, instead of only in the slow pipeline tests."""
    import hashlib

    lock = yaml.safe_load((ROOT / "mini/dvc.lock").read_text())
    stale = set()
    for name, stage in lock["stages"].items():
        for dep in stage.get("deps", []):
            path = ROOT / dep["path"]
            if dep.get("md5", "").endswith(".dir") or not path.is_file() or path.suffix != ".py":
                continue  # a folder's hash (DVC's listing) and the build's data are DVC's to check
            if hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]:
                stale.add(dep["path"])
    assert not stale, f"mini/dvc.lock records other versions of {sorted(stale)}: run dvc commit -f mini/dvc.yaml"
