"""The fetch stages, run as the pipeline runs them: ``python stages/<stage>.py ...`` (offline)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import closed_port, write_encoder_checkpoint, write_sample_building
from PIL import Image

from modelgif.download import sha256_file
from modelgif.reference import build_reference_set
from modelgif.taskonomy import TASKS, official_manifest

REPO = Path(__file__).resolve().parent.parent
STAGES = REPO / "stages"


def run_stage(script: str, *args: str, cwd: Path, torch_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    return subprocess.run(
        [sys.executable, str(STAGES / script), *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-init encoder checkpoint in the official format: (path, sha256, official-style name)."""
    path = tmp_path_factory.mktemp("ckpt") / "encoder.pth"
    sha = write_encoder_checkpoint(path, seed=0)
    return path, sha, f"normal_encoder-{sha}.pth"


def serve_checkpoint(root: Path, data: bytes, name: str, sha: str) -> Path:
    """Write ``name`` (bytes ``data``) and a manifest ``{"normal": name/sha}`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(data)
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({"source": "test", "encoders": {"normal": {"file": name, "sha256": sha}}}))
    return manifest


# --------------------------------------------------------------------------- fetch_checkpoint


def test_fetch_checkpoint_downloads_and_verifies(tmp_path, http_server, checkpoint):
    path, sha, name = checkpoint
    serve_checkpoint(tmp_path / "www", path.read_bytes(), name, sha)
    base = http_server(tmp_path / "www")
    out = tmp_path / "work" / "data" / "checkpoints" / "normal.pth"
    (tmp_path / "work").mkdir()
    r = run_stage("fetch_checkpoint.py", "normal", "--base-url", base, "--manifest", f"{base}/manifest.json",
                  "--out", "data/checkpoints/normal.pth", cwd=tmp_path / "work", torch_home=tmp_path / "torch")
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == sha
    assert sorted(p.name for p in out.parent.iterdir()) == ["normal.pth"]
    assert f"{base}/{name}" in r.stdout


def test_fetch_checkpoint_takes_a_verified_copy_from_the_torch_hub_folder(tmp_path, checkpoint):
    path, sha, name = checkpoint
    manifest = serve_checkpoint(tmp_path / "www", b"", name, sha)  # only the manifest matters here
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / name).write_bytes(path.read_bytes())
    out = tmp_path / "out" / "normal.pth"
    r = run_stage("fetch_checkpoint.py", "normal", "--base-url", f"http://127.0.0.1:{closed_port()}",
                  "--manifest", manifest, "--out", out, "--retries", "1", cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == sha
    assert str(hub / name) in r.stdout
    assert sha256_file(hub / name) == sha  # the hub copy is left as it was


def test_fetch_checkpoint_ignores_a_corrupt_hub_copy_and_downloads(tmp_path, http_server, checkpoint):
    path, sha, name = checkpoint
    serve_checkpoint(tmp_path / "www", path.read_bytes(), name, sha)
    base = http_server(tmp_path / "www")
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / name).write_bytes(b"corrupt")
    out = tmp_path / "out" / "normal.pth"
    r = run_stage("fetch_checkpoint.py", "normal", "--base-url", base, "--manifest", tmp_path / "www" / "manifest.json",
                  "--out", out, cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 0, r.stderr
    assert "ignoring the torch hub copy" in r.stderr and hashlib.sha256(b"corrupt").hexdigest() in r.stderr
    assert sha256_file(out) == sha


def test_fetch_checkpoint_refuses_a_corrupted_download_and_leaves_nothing(tmp_path, http_server, checkpoint):
    path, sha, name = checkpoint
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    serve_checkpoint(tmp_path / "www", bytes(data), name, sha)
    base = http_server(tmp_path / "www")
    out_dir = tmp_path / "out"
    r = run_stage("fetch_checkpoint.py", "normal", "--base-url", base, "--manifest", tmp_path / "www" / "manifest.json",
                  "--out", out_dir / "normal.pth", cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 1
    assert f"checksum mismatch for {base}/{name}" in r.stderr
    assert f"expected sha256 {sha}, got {hashlib.sha256(data).hexdigest()}" in r.stderr
    assert list(out_dir.iterdir()) == []  # no output and no temporary file


def test_fetch_checkpoint_refuses_a_file_that_is_not_an_encoder(tmp_path, http_server):
    junk = b"this has the right sha256 but is not a checkpoint"
    sha = hashlib.sha256(junk).hexdigest()
    manifest = serve_checkpoint(tmp_path / "www", junk, f"normal_encoder-{sha}.pth", sha)
    base = http_server(tmp_path / "www")
    out_dir = tmp_path / "out"
    r = run_stage("fetch_checkpoint.py", "normal", "--base-url", base, "--manifest", manifest,
                  "--out", out_dir / "normal.pth", cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 1
    assert "is not a Taskonomy encoder for normal" in r.stderr
    assert list(out_dir.iterdir()) == []


def test_fetch_checkpoint_unknown_task_lists_the_known_ones(tmp_path):
    r = run_stage("fetch_checkpoint.py", "colorization", "--out", tmp_path / "out" / "x.pth",
                  cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 1
    assert "task 'colorization' is not in the manifest" in r.stderr
    assert f"known tasks: {', '.join(TASKS)}" in r.stderr
    assert not (tmp_path / "out").exists()


def test_fetch_checkpoint_unreachable_server_says_what_and_how(tmp_path, checkpoint):
    _, sha, name = checkpoint
    manifest = serve_checkpoint(tmp_path / "www", b"", name, sha)
    base = f"http://127.0.0.1:{closed_port()}"
    out_dir = tmp_path / "out"
    r = run_stage("fetch_checkpoint.py", "normal", "--base-url", base, "--manifest", manifest,
                  "--out", out_dir / "normal.pth", "--retries", "1", cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 1
    assert f"could not download {base}/{name} after 1 tries" in r.stderr
    assert "--base-url" in r.stderr and str(tmp_path / "torch" / "hub" / "checkpoints") in r.stderr
    assert list(out_dir.iterdir()) == []


def test_shipped_manifest_lists_the_17_official_encoders():
    doc = json.loads((REPO / "data" / "manifests" / "taskonomy_encoders.json").read_text())
    encoders = doc["encoders"]
    assert list(encoders) == list(TASKS) and len(encoders) == 17
    for task, entry in encoders.items():
        m = re.fullmatch(rf"{task}_encoder-([0-9a-f]{{64}})\.pth", entry["file"])
        assert m and m.group(1) == entry["sha256"], task
    assert encoders == official_manifest()


# --------------------------------------------------------------------------- fetch_reference


def test_fetch_reference_writes_images_manifest_and_sheet(tmp_path, http_server):
    points = write_sample_building(tmp_path / "www", 12, size=(20, 24), missing=(1,))
    base = http_server(tmp_path / "www")
    r = run_stage("fetch_reference.py", "--source", "taskonomy-sample", "--base-url", base, "--n-images", 10,
                  "--size", 16, "--cutmix", "true", "--seed", 3, "--out", "data/reference", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "data" / "reference"
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "images.npy", "manifest.json"]
    images = np.load(out / "images.npy")
    assert images.dtype == np.uint8 and images.shape == (10, 3, 16, 16)
    expected = build_reference_set("taskonomy-sample", 10, 16, use_cutmix=True, seed=3, base_url=base, progress=False)
    np.testing.assert_array_equal(images, expected.images)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == expected.manifest
    assert manifest["n_images"] == 10 and manifest["size"] == 16 and manifest["cutmix"]["seed"] == 3
    assert sorted(manifest["files"]) == sorted(f"point_{p}_view_0_domain_rgb.png" for p in points[:10])
    assert Image.open(out / "contact_sheet.png").size == (4 * 16, 3 * 16)  # 10 images: 4 columns, 3 rows


@pytest.mark.parametrize("off", [["--no-cutmix"], ["--cutmix", "false"]])
def test_fetch_reference_from_a_local_folder_without_cutmix(tmp_path, off):
    src = tmp_path / "imgs"
    src.mkdir()
    for i, value in enumerate([50, 150, 250]):
        Image.new("RGB", (30, 20), (value, 0, 255 - value)).save(src / f"{i}.png")
    r = run_stage("fetch_reference.py", "--source", src, "--n-images", 3, "--size", 8, *off,
                  "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    images = np.load(tmp_path / "ref" / "images.npy")
    assert images.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(images[:, :, 4, 4], [[50, 0, 205], [150, 0, 105], [250, 0, 5]])
    assert json.loads((tmp_path / "ref" / "manifest.json").read_text())["cutmix"]["batches"] == []


def test_fetch_reference_unreachable_says_how_to_use_a_mirror_or_local_files(tmp_path):
    base = f"http://127.0.0.1:{closed_port()}"
    r = run_stage("fetch_reference.py", "--base-url", base, "--n-images", 4, "--retries", 1,
                  "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 1
    assert f"could not reach {base}/" in r.stderr
    assert "reference.base_url" in r.stderr and "reference.source: /path/to/folder-or-archive" in r.stderr
    assert not (tmp_path / "ref").exists()


def test_fetch_reference_bad_source_fails_cleanly(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "a.png")
    (src / "b.png").write_bytes(b"garbage")
    r = run_stage("fetch_reference.py", "--source", src, "--n-images", 2, "--out", tmp_path / "ref",
                  cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 1
    assert "cannot read image b.png" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ref").exists()
