"""The one-line run summary of `make repro` / `make demo` (tools/run.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("run_tool", Path(__file__).resolve().parents[1] / "tools" / "run.py")
run_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_tool)

OUTPUT = """WARNING: No file hash info found for '/p/data/reference'. It won't be created.
WARNING: No file hash info found for '/p/data/fields/normal.npy'. It won't be created.
Running stage 'fetch_reference':
> python stages/fetch_reference.py ...
Stage 'fetch_checkpoint@normal' is cached - skipping run, checking out outputs
Stage 'fetch_checkpoint@reshading' didn't change, skipping
Running stage 'field@normal':
Stage 'affinity' is cached - skipping run, checking out outputs
"""


def test_summary_counts_stages_and_reads_the_headline(tmp_path):
    metrics = tmp_path / "correlation.json"
    metrics.write_text(json.dumps({"wins_vs_pixels": {"mean_rho": -0.46062, "mean_rho_off_diagonal": -0.41, "n_tasks": 16},
                                   "losses": {"mean_rho": 0.4391, "n_tasks": 17}}))
    line = run_tool.summarize(OUTPUT, 125.4, metrics)
    assert line.startswith("summary: 2 stage(s) ran, 2 restored from the run cache, 1 up to date, 2m05s")
    assert "wins_vs_pixels -0.4606 (off-diagonal -0.4100), losses +0.4391" in line
    assert "first run: 2 output(s) had no dvc.lock entry" in line
    assert "\n" not in line


def test_summary_of_a_failed_run_says_so(tmp_path):
    line = run_tool.summarize("Running stage 'fetch_reference':\nERROR: failed", 3, tmp_path / "none.json", returncode=255)
    assert line == "summary: 1 stage(s) ran, 0 restored from the run cache, 0 up to date, 0m03s; FAILED (exit status 255): see the error above"


def test_summary_reads_modelgif_in_the_per_method_layout(tmp_path):
    metrics = tmp_path / "correlation.json"
    metrics.write_text(json.dumps({
        "wins_vs_pixels": {"modelgif": {"mean_rho": -0.46062, "mean_rho_off_diagonal": -0.41},
                           "cka": {"mean_rho": -0.646}, "noise_ceiling": {"mean_rho": 0.685}},
        "losses": {"modelgif": {"mean_rho": 0.4391}, "cka": {"mean_rho": 0.5}}}))
    line = run_tool.summarize(OUTPUT, 1, metrics)
    assert line.endswith("; mean rho vs wins_vs_pixels -0.4606 (off-diagonal -0.4100), losses +0.4391; "
                         "first run: 2 output(s) had no dvc.lock entry yet (hence DVC's 'No file hash info found' warnings)")


def test_status_summary_counts_never_run_stages_and_names_changed_ones():
    status_summary = run_tool.status_summary
    status = {"settings": ["always changed"],
              "fetch_reference": [{"changed deps": {"modelgif/zoo/models.py": "modified"}}, {"changed outs": {"data/reference": "deleted"}}],
              **{f"field@{t}": [{"changed outs": {f"data/fields/{t}.npy": "deleted"}}] for t in ("a", "b", "c")},
              "correlate": [{"changed deps": {"data/methods": "modified"}}]}
    lock = {"correlate": {}}
    text = status_summary(status, lock)
    lines = text.splitlines()
    assert len(lines) == 3, text
    assert lines[1] == "never run (no dvc.lock entry): 4 stage(s): fetch_reference, field@ x3"
    assert lines[2] == "changed: correlate: deps data/methods modified"
    assert status_summary({"settings": ["always changed"]}, lock).endswith("everything else is up to date")


def test_an_unknown_zoo_is_named_before_dvc_starts(monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert run_tool.requested_zoo(["exp", "run", "-S", "zoo=mini", "-S", "zoo=mine"]) == "mine"
    assert run_tool.requested_zoo(["status"]) is None
    assert run_tool.main(["exp", "run", "-S", "zoo=mine"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown zoo 'mine': no zoos/mine.yaml; known zoos: ") and "mini" in err
