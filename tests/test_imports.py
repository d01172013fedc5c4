"""modelgif._imports: the files a module reaches through its imports, read from its source, checked
against what Python really imports; and the zoo code fingerprint built on it (issue 21.2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelgif._imports import imported_files, module_files
from modelgif.settings import code_fingerprint, zoo_code
from modelgif.zoo.spec import NAMED_ARCHITECTURES, SOURCE_MODULES, load_zoo_spec

ROOT = Path(__file__).resolve().parents[1]


def _rel(paths, root=ROOT) -> set[str]:
    return {Path(p).resolve().relative_to(root).as_posix() for p in paths}


#: What each module is run for in the oracle: the code path a stage takes through it.
_RUN = {
    "modelgif.zoo.taskonomy": "m.build_zoo_model('normal')",
    "modelgif.mini.encoder": "m.build_zoo_model('normal'); m.random_encoder('normal', 0)",
    "modelgif.mini.scenes": "m.render_scene(1, 16)",
}


@pytest.mark.slow  # a fresh interpreter per module
@pytest.mark.parametrize("module", sorted({*NAMED_ARCHITECTURES.values(), *SOURCE_MODULES.values()}))
def test_the_reader_covers_every_project_file_python_imports(module):
    """Oracle: a fresh interpreter imports the module and runs it (building a model, rendering a
    scene); every project file then in ``sys.modules`` is among what the reader found."""
    code = (f"import importlib, json, sys; m = importlib.import_module({module!r}); {_RUN[module]}; "
            "print(json.dumps(sorted(getattr(v, '__file__', None) or '' for v in list(sys.modules.values()))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                                       text=True).stdout)
    ran = _rel(f for f in loaded if f and Path(f).resolve().is_relative_to(ROOT / "modelgif"))
    found = _rel(module_files(module, [ROOT]))
    assert ran and ran <= found, f"imported but not found: {sorted(ran - found)}"
    if module == "modelgif.zoo.taskonomy":  # and the Taskonomy encoder reaches none of the mini zoo's code
        assert not [p for p in found if p.startswith("modelgif/mini")], found


def test_lazy_tables_type_checking_and_names_given_as_strings(tmp_path):
    """Exact sets on a package made here: a name of a lazy ``_LAZY`` table is its submodule only, an
    import under ``if TYPE_CHECKING:`` never runs, one inside a function does, and a module given as
    a string to importlib is not an import."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('import importlib\n_LAZY = {"f": "a", "g": "b"}\n')
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n"
                              "def f():\n    from .c import h\n    return h\n")
    (pkg / "b.py").write_text("g = 1\n")
    (pkg / "c.py").write_text("import importlib\nh = importlib.import_module('pkg.hidden')\n")
    (pkg / "hidden.py").write_text("")
    user = tmp_path / "user.py"
    user.write_text("from pkg import f\n")
    assert _rel(imported_files(user, [tmp_path]), tmp_path) == {"pkg/__init__.py", "pkg/a.py", "pkg/c.py"}
    (pkg / "a.py").write_text("from . import b\n")  # the same file edited: read again, not from a cache
    assert _rel(module_files("pkg.a", [tmp_path]), tmp_path) == {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}
    assert module_files("pkg.nothing", [tmp_path]) == set()


def test_the_zoo_code_fingerprint_changes_with_that_zoo_s_code_only(tmp_path):
    """Editing the mini trainer changes no zoo's fingerprint, the mini encoder only the mini zoos',
    the Taskonomy encoder's module only Taskonomy's (a copy of the package, edited)."""
    shutil.copytree(ROOT / "modelgif", tmp_path / "modelgif", ignore=shutil.ignore_patterns("__pycache__", "data"))
    modules = {"taskonomy": NAMED_ARCHITECTURES["taskonomy"], "mini": NAMED_ARCHITECTURES["mini"]}

    def prints():
        return {zoo: code_fingerprint(m, tmp_path) for zoo, m in modules.items()}

    before = prints()
    assert "modelgif/zoo/taskonomy.py" in before["taskonomy"] and "modelgif/mini/encoder.py" in before["mini"]
    for rel, changed in (("modelgif/mini/zoo.py", set()), ("modelgif/mini/build.py", set()),
                         ("modelgif/mini/encoder.py", {"mini"}), ("modelgif/zoo/taskonomy.py", {"taskonomy"})):
        with open(tmp_path / rel, "a") as f:
            f.write("\n# edited\n")
        after = prints()
        assert {zoo for zoo in modules if after[zoo] != before[zoo]} == changed, rel
        before = after


def test_zoo_code_of_the_built_in_and_a_user_s_zoo(tmp_path, monkeypatch):
    """``zoo.json``'s code: the project's files for the built-in zoos (the package as imported),
    and a user's ``module:function`` file under the project root; torchvision: nothing."""
    assert set(zoo_code(load_zoo_spec("taskonomy"))) == _rel(module_files("modelgif.zoo.taskonomy", [ROOT]))
    assert zoo_code(load_zoo_spec("mini")) == zoo_code(load_zoo_spec("mini_random"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text("import helper\ndef small():\n    return None\n")
    (tmp_path / "helper.py").write_text("")
    (tmp_path / "zoos").mkdir()
    (tmp_path / "zoos/mine.yaml").write_text(
        "architecture: nets:small\ninput_size: 32\nreference: /nowhere\nmodels:\n"
        "  a: {}\n  b: {architecture: 'torchvision:resnet18', layer: layer3, checkpoint: w.pth, sha256: '"
        + "0" * 64 + "'}\n  c: {}\n")
    code = zoo_code(load_zoo_spec("mine"))
    assert set(code) == {"nets.py", "helper.py"}
    before = code["nets.py"]
    (tmp_path / "nets.py").write_text("import helper\ndef small():\n    return 1\n")
    assert zoo_code(load_zoo_spec("mine"))["nets.py"] != before


def test_the_sub_packages_import_in_one_direction():
    """Issue 21.5: the library's sub-packages (one per pipeline step) form layers: none imports
    one that imports it back (read from the code, function-level imports included), and io,
    the bottom layer, imports no other step."""
    from modelgif._imports import imported_names

    package = ROOT / "modelgif"
    steps = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert {"reference", "zoo", "field", "compare", "score", "io", "mini"} <= steps
    edges = set()
    for f in package.rglob("*.py"):
        rel = f.relative_to(package).parts
        if len(rel) < 2:
            continue
        for name in imported_names(f, (ROOT,)):
            parts = name.split(".")
            if parts[0] == "modelgif" and len(parts) > 1 and parts[1] in steps and parts[1] != rel[0]:
                edges.add((rel[0], parts[1]))
    assert not {(a, b) for a, b in edges if (b, a) in edges}
    assert not {b for a, b in edges if a == "io"}
    assert ("compare", "io") in edges and ("score", "zoo") in edges  # the reader sees the real imports
