"""Results are never stale (issue 9.5): every project file a stage's script imports, directly or
through other project modules (package ``__init__`` files included), is among that stage's
``deps`` in ``dvc.yaml`` / ``mini/dvc.yaml`` (the file itself or a folder above it).

The imports are read from the code (``ast``: every ``import`` statement, also those inside
functions), followed through the project's own modules transitively; nothing is listed by hand.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import modelgif

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "modelgif"


def _module_file(dotted: str) -> Path | None:
    """The project file of module ``dotted`` (``modelgif.x.y`` or a stage helper), or None."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package_inits(dotted: str) -> list[Path]:
    """``__init__.py`` of every package on the way to ``dotted`` (Python runs each of them)."""
    parts = dotted.split(".")
    return [p for i in range(1, len(parts) + 1) if (p := ROOT.joinpath(*parts[:i], "__init__.py")).is_file()]


def _imported_modules(path: Path) -> set[str]:
    """Dotted names of every module ``path`` imports (``from m import n`` also tries ``m.n``, and
    a name of the package's lazy table, ``modelgif._LAZY``, its defining module)."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(ROOT)
    package = ".".join(rel.parent.parts) if rel.parts[0] == PACKAGE else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            for alias in node.names:
                names.add(f"{module}.{alias.name}")
                if module == PACKAGE and alias.name in modelgif._LAZY:
                    names.add(f"{PACKAGE}.{modelgif._LAZY[alias.name]}")
    return names


def project_imports(script: Path) -> set[Path]:
    """Every project file ``script`` imports, transitively (``script`` itself excluded)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        for name in _imported_modules(path):
            if path.parent.name == "stages" and (ROOT / "stages" / f"{name}.py").is_file():
                found = [ROOT / "stages" / f"{name}.py"]  # sys.path[0] of a stage is stages/
            else:
                file = _module_file(name)
                found = _package_inits(name) + ([file] if file else [])
            for f in found:
                if f not in seen and f != script:
                    seen.add(f)
                    todo.append(f)
    return seen


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
    assert _covered(script.relative_to(ROOT).as_posix(), deps), f"{pipeline}:{name} does not depend on its script"
    needed = sorted(p.relative_to(ROOT).as_posix() for p in project_imports(script))
    missing = [p for p in needed if not _covered(p, deps)]
    assert not missing, f"{pipeline}:{name} imports {missing} but its deps lack them; add to its deps: {missing}"


def test_the_import_reader_follows_project_imports():
    """The reader itself: the field stage reaches the method's modules through its imports,
    the package's __init__ included, and no module outside the project."""
    got = {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / "stages/field.py")}
    assert {"modelgif/__init__.py", "modelgif/field.py", "modelgif/quadrature.py", "modelgif/targets.py",
            "stages/_cli.py"} <= got
    assert all(p.startswith(("modelgif/", "stages/")) for p in got)
    # `import modelgif` alone reaches only the package's __init__ (its exports are lazy)
    assert {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / "tests/test_stage_deps.py")} == {
        "modelgif/__init__.py"}


@pytest.mark.slow  # imports the package in fresh Python processes
def test_lazy_package_keeps_its_api_and_imports_only_what_is_used():
    """``import modelgif`` loads no submodule (so no torch) until a name is used; every name of
    ``__all__`` resolves to its module's object."""
    import subprocess
    import sys

    code = ("import sys, modelgif; assert 'torch' not in sys.modules, 'torch'; "
            "assert not [m for m in sys.modules if m.startswith('modelgif.')]; "
            "import modelgif.plots, modelgif.correlation, modelgif.zoos, modelgif.taskonomy, modelgif.distance; "
            "assert 'torch' not in sys.modules, 'torch via a library module'; "
            "f = modelgif.gradient_field; import modelgif.field as m; assert f is m.gradient_field")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    import importlib

    for name in modelgif.__all__:
        module = importlib.import_module(f"modelgif.{modelgif._LAZY[name]}")
        assert getattr(modelgif, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        modelgif.nope  # noqa: B018
