"""Issue 20, item 9: bounded resources on untrusted sources — a size cap on a download (an
archive URL), a decoded-pixel cap per image, an overall deadline by default, and a retry of a
connection dropped without Content-Length."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelgif.io import download
from modelgif.io.download import ChecksumError, DownloadError, TooLarge, download_file, fetch_bytes
from modelgif.reference import build_reference_set
from modelgif.reference import images as images_module
from modelgif.reference.images import MAX_IMAGE_PIXELS, decode_image

BODY = bytes(range(256)) * 4000  # 1 024 000 bytes


@pytest.fixture
def server():
    """``server(mode) -> (url, requests)``: ``eof`` answers without Content-Length, the first
    time with half the body and a clean close (indistinguishable from a complete body but for
    its checksum); ``big`` announces Content-Length and sends the body; ``unsized`` sends the
    body without Content-Length."""
    requests = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            requests["n"] += 1
            mode = self.path.strip("/").split("/")[0]
            self.send_response(200)
            if mode == "big":
                self.send_header("Content-Length", str(len(BODY)))
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                self.wfile.write(BODY[: len(BODY) // 2] if mode == "eof" and requests["n"] == 1 else BODY)
                self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield lambda mode: (f"http://127.0.0.1:{srv.server_address[1]}/{mode}", requests)
    srv.shutdown()
    srv.server_close()


def test_a_body_dropped_without_content_length_is_retried_when_its_checksum_says_so(tmp_path, server):
    url, requests = server("eof")
    dest = download_file(url, tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest(), backoff=0.05,
                         progress=False)
    assert dest.read_bytes() == BODY
    assert requests["n"] == 2


def test_a_wrong_checksum_without_content_length_is_still_a_checksum_error(tmp_path, server):
    url, requests = server("unsized")
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*/unsized: expected sha256 0{64}"):
        download_file(url, tmp_path / "f.bin", sha256="0" * 64, backoff=0.01, progress=False)
    assert requests["n"] == 3 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["big", "unsized"])
def test_a_download_over_max_bytes_is_refused_with_one_line_naming_the_url_and_the_limit(tmp_path, server, mode):
    url, requests = server(mode)
    with pytest.raises(TooLarge) as e:
        download_file(url, tmp_path / "f.bin", max_bytes=100_000, progress=False)
    message = str(e.value)
    size = f"is {len(BODY)} bytes (1000.0 KiB)" if mode == "big" else "is larger"
    assert message == f"refusing {url}: it {size}, over the download limit of 100000 bytes (97.7 KiB) (max_bytes)"
    assert requests["n"] == 1  # not retried
    assert list(tmp_path.iterdir()) == []  # nothing kept
    with pytest.raises(TooLarge):
        fetch_bytes(url, max_bytes=100_000)


def test_an_archive_url_is_capped_by_default(tmp_path, monkeypatch, http_server):
    (tmp_path / "www").mkdir()
    archive = tmp_path / "www" / "set.tar"
    with tarfile.open(archive, "w") as tf:
        for i in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(buf, "PNG")
            info = tarfile.TarInfo(f"imgs/{i}.png")
            info.size = len(buf.getvalue())
            tf.addfile(info, io.BytesIO(buf.getvalue()))
    url = f"{http_server(tmp_path / 'www')}/set.tar"
    assert download.MAX_DOWNLOAD_BYTES == 4 << 30
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", 4096)  # the library default, read at call time
    with pytest.raises(TooLarge, match=rf"^refusing {url}: it is {archive.stat().st_size} bytes .*, over the "
                                       r"download limit of 4096 bytes \(4.0 KiB\)"):
        build_reference_set(url, n_images=3, size=8, use_cutmix=False, progress=False)
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", archive.stat().st_size)
    assert build_reference_set(url, n_images=3, size=8, use_cutmix=False, progress=False).images.shape == (3, 3, 8, 8)


def test_downloads_have_a_finite_overall_deadline_by_default(tmp_path, monkeypatch, faulty):
    assert 0 < download.DOWNLOAD_DEADLINE < float("inf") and 0 < download.FETCH_DEADLINE < float("inf")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "set.tar").write_bytes(b"x" * 1000)
    base, _ = faulty(tmp_path / "www", "trickle")  # a byte every 0.2 s, each read inside the timeout
    monkeypatch.setattr(download, "DOWNLOAD_DEADLINE", 1.0)  # the default the callers get, read at call time
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"gave up after the 1 s deadline"):
        build_reference_set(f"{base}/set.tar", n_images=1, size=8, progress=False)  # passes no deadline
    assert time.monotonic() - t0 < 20


def _png(path: Path, size: tuple[int, int]) -> bytes:
    Image.new("1", size).save(path)  # 1-bit: a small file, many pixels
    return path.read_bytes()


def test_an_image_over_the_pixel_cap_is_refused_before_decoding(tmp_path):
    assert MAX_IMAGE_PIXELS == 4096 * 4096
    data = _png(tmp_path / "huge.png", (5000, 4000))  # 20 megapixels: 60 MB as RGB
    assert len(data) < 100_000
    with pytest.raises(ValueError) as e:
        decode_image(data, "huge.png", "imgs")
    assert str(e.value) == ("image huge.png in imgs is 5000×4000 = 20000000 pixels, over the limit of 16777216 "
                            "pixels per image (modelgif.reference.images.MAX_IMAGE_PIXELS); downscale it first")
    ok = decode_image(_png(tmp_path / "ok.png", (4096, 4096)), "ok.png", "imgs")
    assert ok.shape == (3, 4096, 4096) and ok.dtype == np.uint8


def test_a_folder_with_an_oversized_image_fails_with_its_name(tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16)).save(tmp_path / "imgs" / f"{i}.png")
    _png(tmp_path / "imgs" / "2.png", (64, 64))
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"^image 2\.png in .*imgs is 64×64 = 4096 pixels, over the limit of 1000"):
        build_reference_set(str(tmp_path / "imgs"), n_images=3, size=8, use_cutmix=False, progress=False)
