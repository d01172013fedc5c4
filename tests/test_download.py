"""Downloads against a misbehaving local server: dropped connections are retried, stalls end."""

from __future__ import annotations

import hashlib
import time

import pytest

from modelgif.io.download import DownloadError, download_file, fetch_bytes



@pytest.fixture
def payload(tmp_path):
    data = bytes(range(256)) * 4099  # ~1 MiB, not a multiple of the 1 MiB read block
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "file.bin").write_bytes(data)
    return data


def test_download_file_retries_a_body_shorter_than_content_length(tmp_path, faulty, payload):
    base, requests = faulty(tmp_path / "www", "truncate_once")
    dest = tmp_path / "out" / "file.bin"
    download_file(f"{base}/file.bin", dest, sha256=hashlib.sha256(payload).hexdigest(), retries=2, backoff=0,
                  progress=False)
    assert dest.read_bytes() == payload
    assert requests["/file.bin"] == 2
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]


def test_download_file_without_a_checksum_still_refuses_a_short_body(tmp_path, faulty, payload):
    base, requests = faulty(tmp_path / "www", "truncate_once")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match=rf"after 1 tries: the connection closed after {len(payload) // 2} "
                                            rf"of {len(payload)} bytes"):
        download_file(f"{base}/file.bin", dest, retries=1, progress=False)
    assert list(dest.parent.iterdir()) == []  # no partial file, no temporary


def test_fetch_bytes_retries_a_body_shorter_than_content_length(tmp_path, faulty, payload):
    base, requests = faulty(tmp_path / "www", "truncate_once")
    assert fetch_bytes(f"{base}/file.bin", retries=2, backoff=0) == payload
    assert requests["/file.bin"] == 2


def test_a_stalled_download_fails_after_its_socket_timeout(tmp_path, faulty, payload):
    base, requests = faulty(tmp_path / "www", "stall")
    dest = tmp_path / "out" / "file.bin"
    start = time.monotonic()
    with pytest.raises(DownloadError, match="after 2 tries: timed out"):
        download_file(f"{base}/file.bin", dest, retries=2, timeout=0.5, backoff=0, progress=False)
    elapsed = time.monotonic() - start
    assert requests["/file.bin"] == 2
    assert elapsed < 10  # 2 tries × 0.5 s; without the timeout it would wait forever
    assert list(dest.parent.iterdir()) == []


def test_a_trickling_download_fails_at_its_overall_deadline(tmp_path, faulty, payload):
    base, _ = faulty(tmp_path / "www", "trickle")
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"gave up after the 1 s deadline"):
        fetch_bytes(f"{base}/file.bin", retries=3, timeout=5, deadline=1.0, backoff=0)
    # each read returns within 0.2 s, so only the deadline (+ at most one read's timeout) ends it
    assert time.monotonic() - start < 10


def test_http_404_is_not_retried(tmp_path, faulty, payload):
    base, requests = faulty(tmp_path / "www", "truncate_once")
    with pytest.raises(FileNotFoundError, match="HTTP 404"):
        fetch_bytes(f"{base}/missing.bin", retries=3, backoff=0)
    assert requests["/missing.bin"] == 1
