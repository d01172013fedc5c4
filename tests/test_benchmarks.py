"""The GPU benchmark script's logic, as a dry run on the CPU (``--full --tiny``), and the bootstrap
section's smoke run (``--quick``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # three field-stage processes, 17 fields and the bootstrap section: about a minute
def test_full_run_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "performance.py"), "--device", "cpu", "--full", "--tiny",
                        "--sections", "affinity_17,bootstrap", "--out", str(out)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["sections"] == ["affinity_17", "bootstrap", "full"] and result["tiny"]
    # the bootstrap section composes with --full (its own dry run: test_bootstrap_section_dry_run)
    assert list(result["bootstrap"]["shapes"]) == ["mini", "taskonomy"]
    _bootstrap_section_checks(result["bootstrap"], 20)
    full = result["full"]
    assert (full["n_images"], full["steps"], full["px"]) == (4, 4, 32)
    assert [f["precision"] for f in full["fields"]] == ["float32", "tf32", "bf16"]
    # the size np.save gives a (4, 4) array of (norm float32, unit 32·32 float16) records
    np.save(tmp_path / "same.npy", np.zeros((4, 4), [("norm", "<f4"), ("unit", "<f2", (32 * 32,))]))
    for f in full["fields"]:
        assert f["field_file_mb"] * 2**20 == (tmp_path / "same.npy").stat().st_size
        assert f["points_per_s"] == pytest.approx(16 / f["seconds"])
        assert f["extrapolated_17_tasks_s"] == pytest.approx(17 * f["seconds"])
        assert 100 < f["peak_rss_mb"] < 4000 and "peak_gpu_gib" not in f  # a CPU run: no GPU memory line
    assert full["affinity"]["k"] == 17 and full["affinity"]["max_abs_off_diagonal"] < 1e-12  # 17 links to one field
    rows = {(row["function"], row["backend"]): row for row in result["affinity_17"]}
    assert set(rows) == {(f, b) for f in ("affinity_matrix", "image_contributions") for b in ("numpy (CPU)", "torch (CPU)")}
    for row in rows.values():
        assert row["max_abs_diff_vs_numpy"] <= 1e-12
        assert row["extrapolated_seconds"] == pytest.approx(row["seconds"] * 1000 / row["n_images"])
    assert "| float32 |" in result["tables_markdown"] and "Affinity of 17 real-size fields" in result["tables_markdown"]


def _bootstrap_section_checks(bt: dict, n_resamples: int) -> None:
    assert bt["n_resamples"] == n_resamples
    for name, shape in bt["shapes"].items():
        field = shape["field"]
        assert field["seconds"] == pytest.approx(field["measured_seconds"] * field["n_images"] / field["measured_images"])
        rows = {r["method"]: r for r in shape["methods"]}
        assert list(rows) == ["cka", "rsa", "dds (refit=False)", "dds (refit=True)"]  # as the pipeline runs them, then
        assert [r["counted"] for r in rows.values()] == [True, True, True, False]  # the exact DDS, not counted
        assert [r["device"] for r in rows.values()] == ["cpu", "cpu", "cpu", "cpu (numpy)"]
        for r in rows.values():
            assert r["k"] == 17 and r["n_resamples"] == n_resamples
            # what was timed computes the method: a permutation resample is the full-data distance,
            # and CKA's / DDS's first resample is the method on the resampled rows
            assert r["max_abs_diff_permutation"] < 1e-8, (name, r)
            assert r["method"] in ("rsa", "dds (refit=False)") or r["max_abs_diff_resample"] < 1e-8, (name, r)
            assert r["method"] not in ("rsa", "dds (refit=False)") or "max_abs_diff_resample" not in r
            assert r["ratio_to_one_field"] == pytest.approx(r["seconds"] / field["seconds"])
            if r["extrapolated"]:
                (b1, b2), (t1, t2) = r["measured_resamples"], r["measured_seconds"]
                assert r["seconds_per_resample"] == pytest.approx((t2 - t1) / (b2 - b1))
                assert r["seconds"] == pytest.approx(t1 + (t2 - t1) / (b2 - b1) * (n_resamples - b1))
            else:
                assert r["measured_resamples"] == [n_resamples]
        assert shape["all_methods_seconds"] == pytest.approx(sum(r["seconds"] for r in rows.values() if r["counted"]))
        assert shape["all_methods_ratio_to_17_fields"] == pytest.approx(shape["all_methods_seconds"] / field["seconds"] / 17)


@pytest.mark.slow  # runs benchmarks/performance.py as a process
def test_bootstrap_section_dry_run(tmp_path):
    """The bootstrap section's dry run (``--tiny``): the mini zoo's shape (17 mini encoders' outputs
    for 16 images, 20 resamples, measured whole) and Taskonomy's, shrunk (N = 50, a
    TaskonomyEncoder's outputs at 32 px; the counted methods timed whole, the exact DDS at 2 and 6
    resamples, extrapolated to 20), each beside one field of the same shape."""
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "performance.py"), "--device", "cpu", "--tiny",
                        "--sections", "bootstrap", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    bt = result["bootstrap"]
    assert list(bt["shapes"]) == ["mini", "taskonomy"]
    mini, tk = bt["shapes"]["mini"], bt["shapes"]["taskonomy"]
    assert (mini["field"]["n_images"], mini["field"]["px"], mini["field"]["steps"]) == (16, 64, 8)
    assert not mini["field"]["extrapolated"] and not any(m["extrapolated"] for m in mini["methods"])
    assert {(m["n_images"], m["dims"]) for m in mini["methods"]} == {(16, 8 * 4 * 4)}  # the mini encoders' outputs
    assert (tk["field"]["n_images"], tk["field"]["measured_images"], tk["field"]["px"]) == (50, 2, 32)
    assert tk["field"]["extrapolated"]
    assert {(m["n_images"], m["dims"]) for m in tk["methods"]} == {(50, 8 * 2 * 2)}  # 8 channels at 1/16 of 32 px
    assert [(m["extrapolated"], m["measured_resamples"]) for m in tk["methods"]] == [(False, [20])] * 3 + [(True, [2, 6])]
    _bootstrap_section_checks(bt, 20)
    assert result["checks"]["bootstrap_ratio_to_one_field"] == pytest.approx(
        {"mini": mini["all_methods_ratio_to_one_field"], "taskonomy": tk["all_methods_ratio_to_one_field"]})
    assert "| mini | **all three** |" in result["tables_markdown"]
    assert "| taskonomy | dds (refit=True), not counted | cpu (numpy) |" in result["tables_markdown"]
