"""`make demo` leaves params.yaml byte for byte as it was, and `make show` never waits in a pager
and shows the changed params and the headline metrics (issue 21.6; tools/run.py, Makefile)."""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import copy_project, pipeline_env

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_tool_demo", ROOT / "tools" / "run.py")
run_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_tool)


def test_params_kept_puts_the_bytes_back_after_a_rewrite_and_after_an_error(tmp_path):
    params = tmp_path / "params.yaml"
    original = b"# a comment dvc exp run -S drops\nzoo: taskonomy   # and this one\n"
    params.write_bytes(original)
    with run_tool.params_kept(params):
        params.write_text("zoo: mini\n")
    assert params.read_bytes() == original
    with pytest.raises(KeyboardInterrupt), run_tool.params_kept(params):
        params.unlink()
        raise KeyboardInterrupt
    assert params.read_bytes() == original
    # unchanged: not rewritten (its modification time stays)
    os.utime(params, ns=(1_000_000_000, 1_000_000_000))
    with run_tool.params_kept(params):
        pass
    assert params.stat().st_mtime_ns == 1_000_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no temporary file left


def test_demo_argv_is_the_demo_settings_with_later_values_replacing_earlier_ones(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("zoo: taskonomy\nmethods: [modelgif, cka]\nreference: {source: zoo}\n")
    estimators = ["-S", "methods=[modelgif,cka,logme,linear_mse,knn]"]  # the mini zoos' sets have labels
    assert run_tool.demo_argv([], params) == ["exp", "run", "-S", "reference.n_images=100", "-S",
                                              "reference.image_size=64", "-S", "zoo=mini", *estimators]
    assert run_tool.demo_argv(["mini_random", "-S", "reference.n_images=4", "--set-param", "field.n_steps=2"],
                              params) == [
        "exp", "run", "-S", "reference.image_size=64", "-S", "zoo=mini_random", "-S", "reference.n_images=4",
        "-S", "field.n_steps=2", *estimators]
    assert run_tool.requested_zoo(run_tool.demo_argv(["mini_random"], params)) == "mini_random"
    with pytest.raises(SystemExit, match="usage: tools/run.py demo"):
        run_tool.demo_argv(["mini", "reference.n_images=4"], params)
    # a methods setting given wins; no estimators where the reference set has no labels
    assert run_tool.demo_argv(["mini", "-S", "methods=[cka]"], params)[-2:] == ["-S", "methods=[cka]"]
    assert run_tool.demo_argv(["taskonomy"], params)[-2:] == ["-S", "zoo=taskonomy"]
    assert run_tool.demo_argv(["mini", "-S", "reference.source=/data/photos"], params)[-1] == "reference.source=/data/photos"
    params.write_text("methods: [modelgif, knn]\n")  # listed already: not twice
    assert run_tool.demo_argv([], params)[-1] == "methods=[modelgif,knn,logme,linear_mse]"


def _recipe(target: str) -> list[str]:
    """The commands of ``target``'s recipe in the Makefile."""
    lines = iter((ROOT / "Makefile").read_text().splitlines())
    next(line for line in lines if line.startswith(f"{target}:"))
    out = []
    for line in lines:
        if not line.startswith("\t"):
            break
        out.append(line.strip())
    return out


def test_make_demo_and_show_run_the_tools_commands():
    """The Makefile's demo and show are tools/run.py's (nothing else rewrites params.yaml or pages)."""
    assert _recipe("demo") == ["python tools/run.py demo $(DEMO_ZOO)"]
    assert _recipe("show") == ["python tools/run.py show"]
    assert "\nDEMO_ZOO ?= mini\n" in (ROOT / "Makefile").read_text()


@pytest.mark.slow
def test_demo_leaves_params_yaml_byte_identical(tmp_path):
    """The demo command on a copy of the project with a tiny budget: params.yaml is the same
    bytes after it; the experiment recorded the demo's settings; the workspace has its metrics."""
    project = copy_project(ROOT, tmp_path / "project")
    env = pipeline_env(tmp_path)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    before = (project / "params.yaml").read_bytes()
    assert b"# " in before  # the comments the rewrite would drop
    tiny = ["-S", "models=[normal,reshading,depth_zbuffer]", "-S", "reference.n_images=4", "-S", "field.n_steps=2",
            "-S", "bootstrap.n=5", "-S", "methods=[modelgif,cka]"]
    proc = subprocess.run([sys.executable, "tools/run.py", "demo", "mini", *tiny], cwd=project, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (project / "params.yaml").read_bytes() == before
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("demo: params.yaml is kept as it is") and lines[-1].startswith("summary: ")
    assert "wins_vs_pixels" in json.loads((project / "metrics/correlation.json").read_text())
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=project, env=env, check=True,
                                      capture_output=True, text=True).stdout)
    exps = [e for commit in shown for e in commit.get("experiments") or []]
    assert len(exps) == 1, shown
    params = exps[0]["revs"][0]["data"]["params"]["params.yaml"]["data"]
    assert params["zoo"] == "mini" and params["reference"]["n_images"] == 4 and params["reference"]["image_size"] == 64
    status = subprocess.run(["git", "status", "--porcelain", "params.yaml"], cwd=project, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""


WRITE_METRICS = '''import json, yaml
p = yaml.safe_load(open("params.yaml"))
rho = -0.4 - p["field"]["n_steps"] / 1000
m = {"modelgif": round(rho, 3), "cka": -0.646, "static": -0.5}  # as stages/correlate.py's
json.dump(m, open("metrics/headline.json", "w"))
'''


def _in_a_terminal(cmd, cwd, env, timeout=180):
    """Run ``cmd`` with a terminal as stdin/stdout/stderr (so DVC would page); its output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError(f"no output for {timeout} s (waiting in a pager?): {out.decode(errors='replace')}")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=timeout)
    os.close(master)
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.slow
def test_make_show_never_pages_and_shows_changed_params_and_headline_metrics(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    env = {**pipeline_env(tmp_path), "COLUMNS": "120", "LINES": "10", "TERM": "xterm",
           "DVC_PAGER": f"touch {tmp_path / 'paged'}; cat", "PAGER": f"touch {tmp_path / 'paged'}; cat"}
    (project / "params.yaml").write_text("zoo: mini\nmodels: [a, b]\nfield:\n  n_steps: 50\n  seed: 0\n")
    (project / "write_metrics.py").write_text(WRITE_METRICS)
    (project / "metrics").mkdir()
    (project / "dvc.yaml").write_text("stages:\n  m:\n    cmd: python write_metrics.py\n    deps: [write_metrics.py]\n"
                                      "    params: [field, zoo]\n    metrics:\n      - metrics/headline.json:\n"
                                      "          cache: false\n")
    for cmd in (["git", "init", "-q", "-b", "main"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "base"], ["dvc", "exp", "run", "-q", "-n", "steps10", "-S", "field.n_steps=10"]):
        subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    (project / "tools").mkdir()
    (project / "tools/run.py").write_bytes((ROOT / "tools/run.py").read_bytes())
    rc, out = _in_a_terminal(["make", "-s", "-f", str(ROOT / "Makefile"), "-o", "install", "show"], project, env)
    assert rc == 0, out
    assert not (tmp_path / "paged").exists(), "make show went through the pager"
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["workspace", "main", "steps10", "(" + lines[0][-1][1:]]  # the experiments, side by side
    assert lines[1:] == [["field.n_steps", "10", "50", "10"],  # the changed param first, then the headline
                         ["modelgif", "-0.41", "-0.45", "-0.41"],
                         ["cka", "-0.646", "-0.646", "-0.646"],
                         ["static", "-0.5", "-0.5", "-0.5"]], out
    assert max(len(line) for line in out.splitlines()) <= 120


def test_show_table_puts_changed_params_first_and_splits_experiments_to_fit():
    csv_text = ("Experiment,rev,typ,t.modelgif.mean_rho,t.cka.mean_rho,field.n_steps,reference.n_images\n"
                ",workspace,baseline,-0.41,-0.646,10,100\n,main,baseline,-0.45,-0.646,50,100\n"
                "steps10,0ac0803,branch_base,-0.41,-0.646,10,\n")
    table = run_tool.show_table(csv_text, width=120)
    assert [line.split() for line in table.splitlines()] == [
        ["workspace", "main", "steps10", "(0ac0803)"], ["field.n_steps", "10", "50", "10"],
        ["reference.n_images", "100", "100"], ["t.modelgif.mean_rho", "-0.41", "-0.45", "-0.41"],
        ["t.cka.mean_rho", "-0.646", "-0.646", "-0.646"]]
    assert table.splitlines()[2].endswith("100" + " " * (2 + len("steps10 (0ac0803)")))  # an empty cell stays empty
    narrow = run_tool.show_table(csv_text, width=40)
    blocks = narrow.split("\n\n")
    assert [b.splitlines()[0].split() for b in blocks] == [["workspace", "main"], ["steps10", "(0ac0803)"]]
    assert max(len(line) for line in narrow.splitlines()) <= 40
    assert run_tool.show_table("") == "no experiments"


def test_show_keep_keeps_the_headline_metrics_columns(tmp_path):
    headline = tmp_path / "headline.json"
    headline.write_text(json.dumps({"modelgif": -0.5, "hub:ig": -0.1, "static": -0.4}))
    keep = re.compile(run_tool.show_keep(headline))
    for column in ("modelgif", "hub:ig", "static", "wins_vs_pixels.modelgif.mean_rho"):
        assert keep.match(column), column
    for column in ("method_options.modelgif", "modelgif_x", "hubxig", "zoo", "wins_vs_pixels.modelgif.n_tasks"):
        assert not keep.match(column), column
    assert run_tool.show_keep(tmp_path / "missing.json") == run_tool.SHOW_KEEP
