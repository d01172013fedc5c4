"""File-system faults for error tests: a read-only folder and a full disk, made for real.

As root, permissions do not stop writes, so a read-only folder is a read-only tmpfs mounted on
it; a full disk is a small tmpfs filled to the last byte. Where mounting is not possible (no
root, no ``mount``, a container without the capability), the tests that need it are skipped.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _mount_tmpfs(where: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path):
    """An empty folder no file can be created in (read-only file system, or mode 0555)."""
    d = tmp_path / "readonly"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    if not _mount_tmpfs(d, "ro,size=64k"):
        pytest.skip("as root a read-only folder needs a read-only mount, and mounting is not possible here")
    yield d
    _umount(d)


@pytest.fixture
def full_dir(tmp_path):
    """A writable folder on a file system with no byte free (a 256 KiB tmpfs filled by ``filler``)."""
    d = tmp_path / "full"
    d.mkdir()
    if not _mount_tmpfs(d, "size=256k"):
        pytest.skip("a full disk needs a small tmpfs, and mounting is not possible here (needs root)")
    try:
        with open(d / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    yield d
    _umount(d)


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` other than the full disk's filler."""
    return sorted(p.name for p in folder.iterdir() if p.name != "filler") if folder.is_dir() else []
