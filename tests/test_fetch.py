"""The fetch stages, run as the pipeline runs them: ``python stages/<stage>.py ...`` (offline)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import closed_port, write_encoder_checkpoint, write_sample_building
from PIL import Image

from modelgif.io.download import DownloadError, sha256_file
from modelgif.reference import SAMPLE_COMMIT, build_reference_set
from modelgif.zoo.taskonomy import TASKS, official_manifest

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


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
def test_fetch_checkpoint_unknown_task_lists_the_known_ones(tmp_path):
    r = run_stage("fetch_checkpoint.py", "colorization", "--out", tmp_path / "out" / "x.pth",
                  cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 1
    assert "zoos/taskonomy.yaml: unknown task 'colorization': not a model of zoo taskonomy" in r.stderr
    assert f"known tasks: {', '.join(TASKS)}" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
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


@pytest.mark.slow  # runs a fetch stage as a process
def test_fetch_reference_unreachable_says_how_to_use_a_mirror_or_local_files(tmp_path):
    base = f"http://127.0.0.1:{closed_port()}"
    r = run_stage("fetch_reference.py", "--base-url", base, "--n-images", 4, "--retries", 1,
                  "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 1
    assert f"could not reach {base}/" in r.stderr
    assert "reference.base_url" in r.stderr and "reference.source: /path/to/folder-or-archive" in r.stderr
    assert not (tmp_path / "ref").exists()


@pytest.mark.slow  # runs a fetch stage as a process
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


# --------------------------------------------------------------------------- dropped connections, stalls



@pytest.mark.slow  # runs a fetch stage as a process
def test_fetch_checkpoint_retries_a_dropped_connection(tmp_path, faulty, checkpoint):
    path, sha, name = checkpoint
    manifest = serve_checkpoint(tmp_path / "www", path.read_bytes(), name, sha)
    base, requests = faulty(tmp_path / "www", "truncate_once")
    out = tmp_path / "out" / "normal.pth"
    r = run_stage("fetch_checkpoint.py", "normal", "--base-url", base, "--manifest", manifest, "--out", out,
                  cwd=tmp_path, torch_home=tmp_path / "torch")
    assert r.returncode == 0, r.stderr
    assert requests[f"/{name}"] == 2  # the first body was cut at half its Content-Length
    assert sha256_file(out) == sha and sorted(p.name for p in out.parent.iterdir()) == ["normal.pth"]


@pytest.mark.slow  # runs a fetch stage as a process
def test_fetch_reference_retries_dropped_connections_of_the_sample_images(tmp_path, faulty):
    write_sample_building(tmp_path / "www", 4, size=(16, 16))
    base, requests = faulty(tmp_path / "www", "truncate_once")
    r = run_stage("fetch_reference.py", "--base-url", base, "--n-images", 4, "--size", 16, "--cutmix", "false",
                  "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    expected = build_reference_set(SAMPLE_FOLDER_SOURCE(tmp_path / "www"), 4, 16, use_cutmix=False, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "ref" / "images.npy"), expected.images)
    assert all(requests[f"/{SAMPLE_COMMIT}/rgb/point_{p}_view_0_domain_rgb.png"] == 2 for p in range(4))


def SAMPLE_FOLDER_SOURCE(www: Path) -> str:  # noqa: N802 - reads as a constant at the call site
    """The sample building's rgb folder, read as a local folder (the same files, in the same order)."""
    return str(www / SAMPLE_COMMIT / "rgb")


@pytest.mark.slow  # runs a fetch stage as a process
def test_fetch_reference_retries_a_dropped_connection_of_an_archive_url(tmp_path, faulty):
    src = tmp_path / "imgs"
    for i in range(3):
        src.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(src / f"{i}.png")
    (tmp_path / "www").mkdir()
    with tarfile.open(tmp_path / "www" / "set.tar.gz", "w:gz") as tf:
        tf.add(src, arcname="imgs")
    base, requests = faulty(tmp_path / "www", "truncate_once")
    r = run_stage("fetch_reference.py", "--source", f"{base}/set.tar.gz", "--n-images", 3, "--size", 8,
                  "--cutmix", "false", "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert requests["/set.tar.gz"] == 2
    np.testing.assert_array_equal(np.load(tmp_path / "ref" / "images.npy")[:, 0, 4, 4], [0, 40, 80])


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A suite started as a background job of a
    non-interactive shell (`make test &`) inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler: Ctrl-C could not be tested at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow  # runs a fetch stage as a process
def test_ctrl_c_against_a_stalled_mirror_exits_within_seconds(tmp_path, faulty):
    write_sample_building(tmp_path / "www", 16, size=(16, 16))
    base, requests = faulty(tmp_path / "www", "stall")
    env = {**os.environ, "TORCH_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, str(STAGES / "fetch_reference.py"), "--base-url", base,
                             "--n-images", "16", "--out", str(tmp_path / "ref")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 60
        while sum(requests.values()) < 8 and time.monotonic() < deadline:  # all 8 workers are stuck
            time.sleep(0.05)
        assert sum(requests.values()) >= 8
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - start
    finally:
        proc.kill()
    assert proc.returncode != 0 and "Traceback" not in err
    assert elapsed < 5, f"took {elapsed:.1f} s to exit after Ctrl-C (socket timeout is 30 s)"
    assert not (tmp_path / "ref").exists()


CTRL_C_ON_ANOTHER_THREAD = """
import concurrent.futures, signal, threading, time
from modelgif.reference.sample import _result

future, waiting, release = concurrent.futures.Future(), threading.Event(), threading.Event()

def fetch():  # a fetch thread that receives the process's SIGINT, then stays stuck
    waiting.wait(60)
    time.sleep(0.2)  # the main thread is in its wait by now (if not, it is interrupted all the same)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    release.wait(60)
    future.set_result(b"image")

threading.Thread(target=fetch, daemon=True).start()
try:
    waiting.set()
    _result(future)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted; fetch done:", future.done())
"""


@pytest.mark.slow  # runs a fetch stage as a process
def test_ctrl_c_delivered_to_a_fetch_thread_still_interrupts_the_wait():
    # The kernel may deliver a process's SIGINT to any thread; Python runs the handler only in the
    # main thread, which must therefore not sit in one long lock wait (the flaky-CI hang above).
    r = subprocess.run([sys.executable, "-c", CTRL_C_ON_ANOTHER_THREAD], capture_output=True, text=True,
                       timeout=120, preexec_fn=_default_sigint)
    assert r.stdout.strip() == "interrupted; fetch done: False", r.stdout + r.stderr


@pytest.mark.slow  # runs a fetch stage as a process
def test_fetch_reference_stalled_mirror_fails_within_its_timeout(tmp_path, faulty):
    write_sample_building(tmp_path / "www", 2, size=(16, 16))
    base, _ = faulty(tmp_path / "www", "stall")
    r = run_stage("fetch_reference.py", "--base-url", base, "--n-images", 2, "--retries", 1, "--timeout", 0.5,
                  "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 1
    assert "after 1 tries: timed out" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ref").exists()


# --------------------------------------------------------------------------- damaged and hostile inputs


def _image_tar(path: Path, n: int = 3, mode: str = "w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tf:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
            info = tarfile.TarInfo(f"imgs/{i}.png")
            info.size = len(buf.getvalue())
            tf.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def _truncated(path: Path) -> Path:
    """The archive cut inside its last member's data (a plain tar is padded to 10 kB records,
    so cutting at a fraction of the file could keep every member whole)."""
    data = path.read_bytes()
    if path.suffix == ".tar":
        with tarfile.open(path) as tf:
            last = tf.getmembers()[-1]
        cut = last.offset_data + last.size // 2
    else:
        cut = int(len(data) * 0.6)
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[:cut])
    return out


def _bad_crc_zip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (16, 16), (i, i, i)).save(buf, "PNG")
            zf.writestr(f"{i}.png", buf.getvalue())
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 8  # inside the first image's pixel data, stored uncompressed
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.slow  # runs a fetch stage as a process
@pytest.mark.parametrize("make", ["tar", "tar.gz", "zip-crc"])
def test_damaged_archives_fail_with_one_line_naming_the_file(tmp_path, make):
    if make == "tar":
        archive = _truncated(_image_tar(tmp_path / "a.tar"))
    elif make == "tar.gz":
        archive = _truncated(_image_tar(tmp_path / "a.tar.gz", mode="w:gz"))
    else:
        archive = _bad_crc_zip(tmp_path / "a.zip")
    r = run_stage("fetch_reference.py", "--source", archive, "--n-images", 3, "--size", 8,
                  "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {archive}: damaged archive"), r.stderr
    assert not (tmp_path / "ref").exists()


@pytest.mark.slow  # runs a fetch stage as a process
def test_an_archive_member_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("imgs/huge.png")
        info.size = 5 << 20  # 5 MiB of zeros: compresses to a few kB
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    assert archive.stat().st_size < 100_000
    r = run_stage("fetch_reference.py", "--source", archive, "--n-images", 1, "--max-member-mb", 1,
                  "--out", tmp_path / "ref", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"error: {archive}: member imgs/huge.png is {5 << 20} bytes, over the limit of "
                                f"{1 << 20} bytes per image (max_member_bytes); is this archive what it claims to be?")


@pytest.mark.slow  # runs a fetch stage as a process
def test_fetch_reference_sha256_checks_the_written_images(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        Image.new("RGB", (10, 10), (60 * i, 7, 200)).save(src / f"{i}.png")
    args = ["--source", src, "--n-images", 3, "--size", 8, "--cutmix", "false"]
    r = run_stage("fetch_reference.py", *args, "--out", tmp_path / "a", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    # the documented definition, computed independently from the written file
    digest = hashlib.sha256(np.load(tmp_path / "a" / "images.npy").tobytes()).hexdigest()
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["images_sha256"] == digest
    r = run_stage("fetch_reference.py", *args, "--sha256", digest.upper(), "--out", tmp_path / "b",
                  cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 0, r.stderr
    wrong = hashlib.sha256(b"other").hexdigest()
    r = run_stage("fetch_reference.py", *args, "--sha256", wrong, "--out", tmp_path / "c", cwd=tmp_path, torch_home=tmp_path)
    assert r.returncode == 1
    assert f"has images sha256 {digest}, expected {wrong}" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_fetch_checkpoint_library_copies_a_verified_mini_encoder_from_a_folder(tmp_path):
    from modelgif.zoo.checkpoint_source import fetch_checkpoint, read_manifest

    manifest = REPO / "data" / "manifests" / "mini_encoders.json"
    entry = read_manifest(manifest)["normal"]
    out = tmp_path / "out" / "normal.pth"
    origin = fetch_checkpoint("normal", out, REPO / "data" / "mini" / "encoders", manifest, zoo="mini")
    assert origin == f"{REPO / 'data' / 'mini' / 'encoders'}/{entry['file']}"
    assert sha256_file(out) == entry["sha256"]
    doc = json.loads(manifest.read_text())
    doc["encoders"]["normal"]["sha256"] = "0" * 64
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(DownloadError, match=f"checksum mismatch .* expected sha256 {'0' * 64}, got {entry['sha256']}"):
        fetch_checkpoint("normal", tmp_path / "out2" / "normal.pth", REPO / "data" / "mini" / "encoders",
                         tmp_path / "bad.json", zoo="mini")
    assert list((tmp_path / "out2").iterdir()) == []
