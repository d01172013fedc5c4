"""`pip install .` (not editable) gives a working modelgif: subpackages and data files included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from helpers import copy_project

REPO = Path(__file__).resolve().parent.parent

CHECK = textwrap.dedent("""
    import json, sys
    import modelgif, modelgif.mini, modelgif.reference, modelgif.zoo.models
    from modelgif.mini.scenes import render_scene
    from modelgif.zoo.taskonomy import TABLES_DIR
    from modelgif.zoo.tasks import TASKS
    t = modelgif.load_ground_truth("all_affinities")
    m = modelgif.load_ground_truth("wins_vs_pixels", TASKS, modelgif.zoo.models.ground_truth_dir("mini"))
    from modelgif.zoo.mini_builds import BUILDS, tables_dir  # what {mini_tables} is for each mini.build
    builds = {b: str(tables_dir(b) / "losses.json") for b in BUILDS}
    print(json.dumps({
        "file": modelgif.__file__, "tables": str(TABLES_DIR), "mini_tables": str(modelgif.zoo.models.ground_truth_dir("mini")),
        "shape": list(t.shape), "t01": t[0, 1], "mini_shape": list(m.shape), "mini01": m[0, 1],
        "rgb": list(render_scene(1, 16)["rgb"].shape), "builds": builds,
        "builds_exist": [(tables_dir(b) / "losses.json").is_file() for b in BUILDS],
        "sys_path_has_repo": any(p.rstrip("/") == %r for p in sys.path),
    }))
""")


@pytest.mark.slow  # builds and installs a wheel
def test_the_built_wheel_installs_a_working_package_with_its_data(tmp_path):
    # build from a clean copy of the tracked files (a stale build/ folder could leak old modules)
    src = copy_project(REPO, tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), "-q"], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("modelgif-*.whl")
    # a fresh venv that sees this venv's dependencies (torch, numpy, ...) through a .pth line,
    # but not its editable modelgif (the .pth files of an added path are not run)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MODELGIF_TABLES", "MODELGIF_MINI_TABLES")}
    r = subprocess.run([str(python), "-c", CHECK % str(REPO)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(site)) and not got["sys_path_has_repo"]  # the wheel, not the checkout
    assert got["tables"] == str(site / "modelgif" / "data" / "taskonomy")
    assert got["mini_tables"] == str(site / "modelgif" / "data" / "mini" / "tables")
    assert got["shape"] == [17, 17] and got["t01"] == json.loads(
        (REPO / "modelgif/data/taskonomy/all_affinities.json").read_text())["table"]["autoencoder__curvature"]
    mini = json.loads((REPO / "data/mini/tables/wins_vs_pixels.json").read_text())["table"]
    assert got["mini_shape"] == [17, 17] and got["mini01"] == mini["autoencoder__curvature"]
    assert got["rgb"] == [3, 16, 16]
    # every committed build's tables are in the wheel, where mini.build finds them
    mini_data = site / "modelgif" / "data" / "mini"
    assert got["builds"] == {"0": str(mini_data / "tables" / "losses.json"), "1": str(mini_data / "tables_seed1" / "losses.json"),
                             "2": str(mini_data / "tables_seed2" / "losses.json")}
    assert got["builds_exist"] == [True, True, True]
    assert (mini_data / "tables_seed2" / "readouts" / "losses_r1.json").is_file()


def test_the_modules_of_the_flat_layout_import_under_their_old_names_with_a_warning():
    """Issue 21.5: every module moved into a sub-package is importable by its 0.1 name until 0.2,
    as the same module object, with a DeprecationWarning naming the new place; the package's
    own names are untouched, and a name that never existed still fails."""
    import importlib
    import sys

    import modelgif
    from modelgif._deprecated import MOVED

    assert len(MOVED) == 26
    for old, new in MOVED.items():
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=rf"module {old} is deprecated .*; import {new}$"):
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__name__ == new  # the module keeps its own name (pickles, tracebacks)
    sys.modules.pop("modelgif.zoos")
    with pytest.warns(DeprecationWarning, match="modelgif.zoos is deprecated"):
        from modelgif.zoos import ARCHITECTURES  # noqa: F401 - the form users wrote
    from modelgif.field import gradient_field  # 0.1's modelgif.field module is now the package: no warning
    assert gradient_field is modelgif.gradient_field
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("modelgif.no_such_module")
