"""The reference set: sources, processing, CutMix, the [-1, 1] mapping (docs/METHOD.md, step 1)."""

from __future__ import annotations

import hashlib
import math
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_sample_building
from PIL import Image

from modelgif.io.download import DownloadError, sha256_file
from modelgif.reference import (
    rendered_reference_set,
    SAMPLE,
    SAMPLE_COMMIT,
    build_reference_set,
    contact_sheet,
    cutmix,
    fetch_taskonomy_sample,
    load_reference_images,
    prepare_image,
    resize_crop,
    sample_name,
    write_contact_sheet,
    write_reference_set,
)


def random_images(n, h=16, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8)


def solid_png(path: Path, value: int, size=(12, 8)) -> Path:
    """A PNG whose every pixel is (value, value, value); size = (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value,) * 3).save(path)
    return path


# --------------------------------------------------------------------------- CutMix


def test_cutmix_is_deterministic_for_a_seed_and_differs_across_seeds():
    images = random_images(24)
    a, rec_a = cutmix(images, seed=3)
    b, rec_b = cutmix(images, seed=3)
    c, rec_c = cutmix(images, seed=4)
    np.testing.assert_array_equal(a, b)
    assert rec_a == rec_b
    assert rec_a != rec_c
    assert not np.array_equal(a, c)


def test_cutmix_first_batch_follows_the_documented_draws():
    images = random_images(8, h=20, w=30)
    _, (rec,) = cutmix(images, seed=3)
    rng = np.random.default_rng(3)
    lam = rng.beta(1.0, 1.0)
    perm = rng.permutation(8)
    cx, cy = rng.integers(30), rng.integers(20)
    r = math.sqrt(1 - lam)
    cut_w, cut_h = int(30 * r), int(20 * r)
    assert rec.lam == lam
    assert rec.perm == tuple(perm)
    assert rec.box == (
        max(cy - cut_h // 2, 0), min(cy + cut_h // 2, 20),
        max(cx - cut_w // 2, 0), min(cx + cut_w // 2, 30),
    )


def test_cutmix_pastes_the_permuted_images_inside_the_box_only():
    images = random_images(21, h=12, w=14, seed=1)
    before = images.copy()
    mixed, records = cutmix(images, batch=8, seed=7)
    np.testing.assert_array_equal(images, before)  # the input is not modified
    assert [r.start for r in records] == [0, 8, 16]
    assert [len(r.perm) for r in records] == [8, 8, 5]
    for r in records:
        y0, y1, x0, x1 = r.box
        assert 0 <= y0 <= y1 <= 12 and 0 <= x0 <= x1 <= 14
        assert sorted(r.perm) == list(range(len(r.perm)))
        for i, j in enumerate(r.perm):
            inside = np.zeros((12, 14), bool)
            inside[y0:y1, x0:x1] = True
            out, src, own = mixed[r.start + i], before[r.start + j], before[r.start + i]
            np.testing.assert_array_equal(out[:, inside], src[:, inside])
            np.testing.assert_array_equal(out[:, ~inside], own[:, ~inside])


def test_cutmix_boxes_stay_inside_the_image_and_match_lambda():
    images = random_images(8 * 50, h=9, w=13)
    _, records = cutmix(images, seed=0)
    for r in records:
        y0, y1, x0, x1 = r.box
        assert 0 <= y0 <= y1 <= 9 and 0 <= x0 <= x1 <= 13
        # before clipping the box is int(side·sqrt(1-λ)) rounded down to even; clipping only shrinks it
        assert y1 - y0 <= int(9 * math.sqrt(1 - r.lam)) and x1 - x0 <= int(13 * math.sqrt(1 - r.lam))
    assert 0 < np.mean([r.lam for r in records]) < 1
    assert any((r.box[1] - r.box[0]) * (r.box[3] - r.box[2]) > 0 for r in records)


# --------------------------------------------------------------------------- processing


@pytest.mark.parametrize(
    "width, height, size, resized, crop",
    [
        (40, 20, 10, (20, 10), (5, 0)),  # wide: shorter side (height) -> 10, centre columns 5:15
        (20, 40, 10, (10, 20), (0, 5)),  # tall
        (30, 7, 4, (17, 4), (6, 0)),  # long side int(4 * 30 / 7) = 17, as torchvision truncates
        (32, 32, 8, (8, 8), (0, 0)),  # square (Taskonomy): nothing cropped
    ],
)
def test_prepare_image_resizes_the_shorter_side_bilinear_then_centre_crops(width, height, size, resized, crop):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    expected = np.asarray(image.resize(resized, Image.BILINEAR))
    left, top = crop
    expected = expected[top : top + size, left : left + size].transpose(2, 0, 1)
    out = prepare_image(image, size)
    assert out.dtype == np.uint8 and out.shape == (3, size, size)
    np.testing.assert_array_equal(out, expected)


def test_prepare_image_converts_grey_and_rgba_to_rgb():
    grey = Image.fromarray(np.full((6, 6), 77, np.uint8), mode="L")
    np.testing.assert_array_equal(prepare_image(grey, 6), np.full((3, 6, 6), 77))
    rgba = Image.new("RGBA", (6, 6), (10, 20, 30, 0))
    np.testing.assert_array_equal(prepare_image(rgba, 3)[:, 0, 0], [10, 20, 30])


def test_folder_images_are_sorted_by_path_and_the_first_n_kept(tmp_path):
    # value encodes the expected position in the sorted order
    for name, value in [("b.png", 20), ("a.png", 10), ("c/a.png", 30), ("d.jpg", 40), ("notes.txt", None)]:
        if value is None:
            (tmp_path / name).write_text("not an image")
        else:
            solid_png(tmp_path / name, value)
    solid_png(tmp_path / ".hidden.png", 99)
    ref = build_reference_set(str(tmp_path), n_images=3, size=4, use_cutmix=False)
    assert ref.manifest["files"] == ["a.png", "b.png", "c/a.png"]
    assert ref.images.shape == (3, 3, 4, 4) and ref.images.dtype == np.uint8
    assert ref.images[:, 0, 0, 0].tolist() == [10, 20, 30]
    files = b"".join((tmp_path / n).read_bytes() for n in ["a.png", "b.png", "c/a.png"])
    assert ref.manifest["sha256"] == hashlib.sha256(files).hexdigest()
    assert ref.manifest["kind"] == "folder" and ref.manifest["cutmix"]["enabled"] is False


def test_load_reference_images_maps_uint8_to_minus_one_one(tmp_path):
    values = np.array([0, 1, 2, 127, 128, 200, 254, 255], np.uint8)
    images = np.tile(values, 6).reshape(2, 3, 2, 4)
    np.save(tmp_path / "images.npy", images)
    for dtype, tol in [(torch.float32, 1e-6), (torch.float64, 1e-12)]:
        x = load_reference_images(tmp_path / "images.npy", dtype=dtype)
        assert x.dtype == dtype and x.shape == (2, 3, 2, 4)
        np.testing.assert_allclose(x.numpy(), 2 * (images.astype(np.float64) / 255) - 1, rtol=0, atol=tol)
        assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert load_reference_images(tmp_path / "images.npy")[0, 0, 0, 0].item() == -1.0


def test_load_reference_images_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        load_reference_images(tmp_path / "nope.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="not a readable .npy"):
        load_reference_images(tmp_path / "junk.npy")
    np.save(tmp_path / "float.npy", np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="float32"):
        load_reference_images(tmp_path / "float.npy")
    np.save(tmp_path / "hwc.npy", np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(1, 4, 4, 3\)"):
        load_reference_images(tmp_path / "hwc.npy")


def test_contact_sheet_lays_out_the_first_images_row_by_row(tmp_path):
    images = random_images(20, h=4, w=5)
    sheet = np.asarray(contact_sheet(images, n=5))  # 5 images -> 3 columns, 2 rows
    assert sheet.shape == (2 * 4, 3 * 5, 3)
    np.testing.assert_array_equal(sheet[0:4, 5:10], images[1].transpose(1, 2, 0))
    np.testing.assert_array_equal(sheet[4:8, 5:10], images[4].transpose(1, 2, 0))
    assert not sheet[4:8, 10:15].any()  # the empty slot stays black
    path = write_contact_sheet(images, tmp_path / "sheet.png")
    assert Image.open(path).size == (4 * 5, 4 * 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]


def test_write_reference_set_writes_three_files_and_no_temporaries(tmp_path):
    ref = build_reference_set(str(_folder_of(tmp_path / "src", 9)), n_images=9, size=6, seed=3)
    paths = write_reference_set(ref, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["contact_sheet.png", "images.npy", "manifest.json"]
    np.testing.assert_array_equal(np.load(paths["images.npy"]), ref.images)
    assert [b["start"] for b in ref.manifest["cutmix"]["batches"]] == [0, 8]


# --------------------------------------------------------------------------- sources


def _folder_of(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(root / f"img_{i:02d}.png")
    return root


def test_sample_fetch_skips_missing_points_and_sorts_by_name(tmp_path, http_server):
    points = write_sample_building(tmp_path, 12, size=(20, 16), missing=(3, 4, 5, 9))
    assert points == [0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 14, 15]
    base = http_server(tmp_path)
    got = fetch_taskonomy_sample(10, base_url=base, progress=False)
    rgb = tmp_path / SAMPLE_COMMIT / "rgb"
    assert [name for name, _ in got] == [sample_name(p) for p in points[:10]]
    assert all(data == (rgb / name).read_bytes() for name, data in got)

    ref = build_reference_set(SAMPLE, n_images=10, size=8, use_cutmix=False, base_url=base, progress=False)
    names = sorted(sample_name(p) for p in points[:10])  # string order: "point_10_" < "point_1_"
    assert names[:6] == [sample_name(p) for p in (0, 10, 11, 12, 13, 1)]
    assert ref.manifest["files"] == names
    assert ref.manifest["sha256"] == hashlib.sha256(b"".join((rgb / n).read_bytes() for n in names)).hexdigest()
    expected = np.stack([prepare_image(Image.open(rgb / n), 8) for n in names])
    np.testing.assert_array_equal(ref.images, expected)


def test_sample_fetch_stops_after_a_long_run_of_missing_points(tmp_path, http_server):
    write_sample_building(tmp_path, 5, missing=(2,))
    base = http_server(tmp_path)
    with pytest.raises(ValueError, match=r"found only 5 of 8 images.*50 in a row"):
        fetch_taskonomy_sample(8, base_url=base, progress=False)
    with pytest.raises(ValueError, match=r"found only 0 of 2 images.*/other-commit/rgb/"):
        fetch_taskonomy_sample(2, base_url=base, commit="other-commit", max_misses=5, progress=False)


def test_sample_fetch_unreachable_raises_download_error():
    from helpers import closed_port

    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(DownloadError, match=f"could not reach {url}/{SAMPLE_COMMIT}/rgb/point_0_"):
        fetch_taskonomy_sample(3, base_url=url, retries=1, progress=False)


def test_folder_zip_tar_and_url_sources_give_the_same_images(tmp_path, http_server):
    folder = _folder_of(tmp_path / "imgs", 6)
    names = sorted(p.name for p in folder.iterdir())
    archives = tmp_path / "archives"
    archives.mkdir()
    with zipfile.ZipFile(archives / "set.zip", "w") as zf:
        for name in reversed(names):  # archive order differs from the sorted order
            zf.write(folder / name, f"imgs/{name}")
    for suffix, mode in [(".tar", "w"), (".tar.gz", "w:gz")]:
        with tarfile.open(archives / f"set{suffix}", mode) as tf:
            for name in reversed(names):
                tf.add(folder / name, f"imgs/{name}")
    url = f"{http_server(archives)}/set.tar.gz"

    reference = build_reference_set(str(folder), n_images=5, size=7, use_cutmix=False)
    assert reference.manifest["files"] == names[:5]
    for source in [archives / "set.zip", archives / "set.tar", archives / "set.tar.gz", url]:
        ref = build_reference_set(str(source), n_images=5, size=7, use_cutmix=False, progress=False)
        assert ref.manifest["files"] == [f"imgs/{n}" for n in names[:5]]
        np.testing.assert_array_equal(ref.images, reference.images)
        archive = archives / "set.tar.gz" if source == url else source
        assert ref.manifest["sha256"] == sha256_file(archive)


def test_bad_sources_fail_with_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder.*does not exist"):
        build_reference_set(str(tmp_path / "no-such-folder"), n_images=2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="has 0 images"):
        build_reference_set(str(tmp_path / "empty"), n_images=2)
    folder = _folder_of(tmp_path / "few", 2)
    with pytest.raises(ValueError, match="has 2 images.*3 were asked"):
        build_reference_set(str(folder), n_images=3)
    (folder / "img_01.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="cannot read image img_01.png"):
        build_reference_set(str(folder), n_images=2)
    (tmp_path / "plain.bin").write_bytes(b"neither zip nor tar" * 100)
    with pytest.raises(ValueError, match="neither a folder nor a .zip/.tar/.tar.gz"):
        build_reference_set(str(tmp_path / "plain.bin"), n_images=2)


def test_rendered_reference_set_is_the_scenes_rgb_then_cutmix():
    from modelgif.mini import render_scenes

    ref = rendered_reference_set(8, 32, first_seed=5, use_cutmix=False)
    rgb = render_scenes(range(5, 13), 32)["rgb"].astype(np.float64)
    assert ref.images.dtype == np.uint8 and ref.images.shape == (8, 3, 32, 32)
    assert np.abs(ref.images - rgb * 255).max() <= 0.5 + 1e-4  # rounded to the nearest uint8 (in float32)
    assert ref.manifest["files"] == [f"scene_{s}" for s in range(5, 13)] and ref.manifest["first_seed"] == 5
    assert ref.manifest["sha256"] == hashlib.sha256(ref.images.tobytes()).hexdigest()
    mixed = rendered_reference_set(8, 32, first_seed=5, use_cutmix=True, seed=3)
    expect, _ = cutmix(ref.images, batch=8, seed=3)
    np.testing.assert_array_equal(mixed.images, expect)
    assert not np.array_equal(mixed.images, ref.images)
    with pytest.raises(ValueError, match="multiple of 16"):
        rendered_reference_set(2, 40)
    with pytest.raises(ValueError, match="at least 1"):
        rendered_reference_set(0, 32)


# --------------------------------------------------------------------------- CutMix at the source resolution


def test_cutmix_is_applied_at_the_source_resolution_before_the_resize(tmp_path):
    """Sources at 4× the output size: the set is resize(cutmix(source)), box drawn in source
    pixels, which is not cutmix(resize(source))."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    source = random_images(10, h=40, w=40, seed=5)
    for i, image in enumerate(source):
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"img_{i:02d}.png")
    ref = build_reference_set(str(folder), n_images=10, size=10, use_cutmix=True, seed=3)
    mixed_source, records = cutmix(source, batch=8, seed=3)
    expected = np.stack([resize_crop(image, 10) for image in mixed_source])
    np.testing.assert_array_equal(ref.images, expected)
    assert [r["box"] for r in ref.manifest["cutmix"]["batches"]] == [list(r.box) for r in records]
    assert max(b for r in records for b in r.box) > 10  # the boxes are in source (40 px) coordinates
    resized_first, _ = cutmix(np.stack([resize_crop(image, 10) for image in source]), batch=8, seed=3)
    assert not np.array_equal(ref.images, resized_first)


def test_cutmix_of_a_source_already_at_the_final_size_is_plain_cutmix(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    source = random_images(9, h=12, w=12, seed=6)
    for i, image in enumerate(source):
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"img_{i:02d}.png")
    ref = build_reference_set(str(folder), n_images=9, size=12, use_cutmix=True, seed=4)
    np.testing.assert_array_equal(ref.images, cutmix(source, batch=8, seed=4)[0])


def test_cutmix_refuses_a_batch_of_images_of_different_sizes(tmp_path):
    folder = tmp_path / "imgs"
    solid_png(folder / "a.png", 10, size=(20, 20))
    solid_png(folder / "b.png", 10, size=(30, 20))
    with pytest.raises(ValueError, match=r"need one size.*a.png 20×20, b.png 30×20.*cutmix: false"):
        build_reference_set(str(folder), n_images=2, size=8, use_cutmix=True)
    assert build_reference_set(str(folder), n_images=2, size=8, use_cutmix=False).images.shape == (2, 3, 8, 8)


# --------------------------------------------------------------------------- 16-bit images


@pytest.mark.parametrize("value", [0, 257, 32768, 65535])
def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_clipped(tmp_path, value):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((6, 6), value, dtype=np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode in ("I;16", "I")  # what PIL decodes a 16-bit grey PNG to
    ref = build_reference_set(str(tmp_path), n_images=1, size=6, use_cutmix=False)
    assert (ref.images == value // 256).all()  # 32768 → 128, mid-grey stays mid-grey


def test_16_bit_grey_and_16_bit_colour_pngs_agree(tmp_path):
    """PIL reads 16-bit colour PNGs by their high byte; 16-bit grey is scaled the same way."""
    import struct
    import zlib

    values = np.array([[1000, 32768], [40000, 65535]], dtype=np.uint16)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + np.repeat(row[:, None], 3, axis=1).astype(">u2").tobytes() for row in values)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    (tmp_path / "rgb48.png").write_bytes(png)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    ref = build_reference_set(str(tmp_path), n_images=2, size=2, use_cutmix=False)
    np.testing.assert_array_equal(ref.images[0], ref.images[1])
    np.testing.assert_array_equal(ref.images[0, 0], values >> 8)


def test_a_floating_point_image_is_refused_by_name(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(ValueError, match="cannot read image float.tif.*floating-point"):
        build_reference_set(str(tmp_path), n_images=1, size=4, use_cutmix=False)
