"""The GPU benchmark script's logic, as a dry run on the CPU (``--full --tiny``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # three field-stage processes and 17 fields: about a minute
def test_full_run_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--device", "cpu", "--full", "--tiny",
                        "--sections", "affinity_17", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["sections"] == ["affinity_17", "full"] and result["tiny"]
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
    rows = {row["backend"]: row for row in result["affinity_17"]}
    assert set(rows) == {"numpy (CPU)", "torch (CPU)"}
    for row in rows.values():
        assert row["max_abs_diff_vs_numpy"] <= 1e-12
        assert row["extrapolated_seconds"] == pytest.approx(row["seconds"] * 1000 / row["n_images"])
    assert "| float32 |" in result["tables_markdown"] and "Affinity of 17 real-size fields" in result["tables_markdown"]
