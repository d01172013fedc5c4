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
    import modelgif, modelgif.mini, modelgif.reference, modelgif.zoos
    from modelgif.mini.scenes import render_scene
    from modelgif.taskonomy import TABLES_DIR
    from modelgif.tasks import TASKS
    t = modelgif.load_ground_truth("all_affinities")
    m = modelgif.load_ground_truth("wins_vs_pixels", TASKS, modelgif.zoos.ground_truth_dir("mini"))
    print(json.dumps({
        "file": modelgif.__file__, "tables": str(TABLES_DIR), "mini_tables": str(modelgif.zoos.ground_truth_dir("mini")),
        "shape": list(t.shape), "t01": t[0, 1], "mini_shape": list(m.shape), "mini01": m[0, 1],
        "rgb": list(render_scene(1, 16)["rgb"].shape),
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
