"""Tests of the mini-Taskonomy scene renderer (modelgif.mini.scenes): fast, numpy only."""

from __future__ import annotations

import time

import numpy as np
import pytest

from modelgif.mini import scenes as sc

SEEDS = range(6)


@pytest.fixture(scope="module")
def rendered():
    """seed → (labels, geometry) at 64 px."""
    return {s: sc.render_scene(s, 64, return_geometry=True) for s in SEEDS}


def _find_seed(kind: str) -> int:
    for s in range(100):
        _, g = sc.render_scene(s, 16, return_geometry=True)
        if any(o["kind"] == kind for o in g["objects"]):
            return s
    raise AssertionError(f"no scene with a {kind} in seeds 0-99")


def test_task_labels_are_the_17_taskonomy_tasks():
    from modelgif.zoo.taskonomy import TASKS

    assert sc.TASK_LABELS == tuple(TASKS)  # same names, same order: the pipeline's task list
    assert set(sc.VECTOR_LABELS) < set(sc.TASK_LABELS)
    labels = sc.render_scene(0, 16)
    assert set(labels) == set(sc.TASK_LABELS) | {"rgb", "rgb_noisy"}


def test_deterministic_and_seed_dependent():
    a, b = sc.render_scene(7), sc.render_scene(7)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    c = sc.render_scene(8)
    for k in ("rgb", "depth_euclidean", "normal", "segment_semantic"):
        assert not np.array_equal(a[k], c[k]), k
    # render_scenes stacks exactly what render_scene returns
    stacked = sc.render_scenes([7, 8], 64)
    for k in a:
        assert stacked[k].shape == (2,) + a[k].shape
        assert np.array_equal(stacked[k][0], a[k]) and np.array_equal(stacked[k][1], c[k]), k


def test_shapes_dtypes_ranges(rendered):
    H = W = 64
    channels = {"rgb": 3, "rgb_noisy": 3, "autoencoding": 3, "denoising": 3,
                "depth_euclidean": 1, "depth_zbuffer": 1, "normal": 3, "reshading": 1,
                "curvature": 2, "edge_texture": 1, "edge_occlusion": 1, "keypoints2d": 1}
    for labels, geom in rendered.values():
        for k, c in channels.items():
            a = labels[k]
            assert a.shape == (c, H, W) and a.dtype == np.float32, k
            assert np.isfinite(a).all(), k
        for k in ("rgb", "rgb_noisy", "normal", "reshading", "edge_texture", "keypoints2d"):
            assert labels[k].min() >= 0 and labels[k].max() <= 1, k
        assert set(np.unique(labels["edge_occlusion"])) <= {0.0, 1.0}
        assert labels["depth_euclidean"].min() > 0 and labels["depth_zbuffer"].min() > 0
        assert labels["reshading"].min() >= sc.AMBIENT - 1e-6
        assert labels["keypoints2d"].max() == pytest.approx(1.0)
        for k in ("segment_unsup2d", "segment_unsup25d", "segment_semantic"):
            assert labels[k].shape == (H, W) and labels[k].dtype == np.int64, k
        assert np.array_equal(labels["autoencoding"], labels["rgb"])
        assert np.array_equal(labels["denoising"], labels["rgb"])
        noise = labels["rgb_noisy"] - labels["rgb"]
        assert 0.05 < noise.std() < 0.12 and not np.array_equal(labels["rgb_noisy"], labels["rgb"])
        assert labels["keypoints3d"].shape == (1, H, W) and labels["keypoints3d"].max() == pytest.approx(1.0)
        for k, n in (("room_layout", 8), ("vanishing_point", 9), ("class_object", 5)):
            assert labels[k].shape == (n,) and labels[k].dtype == np.float32, k
        # curvature: 1/r on each sphere, 0 elsewhere
        curv = labels["curvature"]
        assert np.array_equal(curv[0], curv[1])
        expect = np.zeros((H, W))
        for i, obj in enumerate(geom["objects"]):
            if obj["kind"] == "sphere":
                expect[geom["surface_id"] == 6 + i] = 1.0 / obj["radius"]
        np.testing.assert_allclose(curv[0], expect, rtol=1e-6)
        # rgb is albedo × reshading (before clipping)
        np.testing.assert_allclose(
            labels["rgb"], np.clip(geom["albedo"] * labels["reshading"], 0, 1), atol=2e-6)
        # the edge-texture map really is the Sobel magnitude of rgb
        assert labels["edge_texture"].max() > 0.05


def _harris_direct(img: np.ndarray, k: float = sc.HARRIS_K) -> np.ndarray:
    """Harris response of a (C, H, W) image with scipy's filters (structure tensor summed over C)."""
    from scipy import ndimage

    gx = np.stack([ndimage.sobel(c, axis=1, mode="nearest") for c in img]) / 8
    gy = np.stack([ndimage.sobel(c, axis=0, mode="nearest") for c in img]) / 8
    w = np.array([1, 4, 6, 4, 1]) / 16

    def smooth(a):
        return ndimage.convolve1d(ndimage.convolve1d(a, w, axis=0, mode="nearest"), w, axis=1, mode="nearest")

    sxx, syy, sxy = smooth((gx * gx).sum(0)), smooth((gy * gy).sum(0)), smooth((gx * gy).sum(0))
    r = np.maximum(sxx * syy - sxy ** 2 - k * (sxx + syy) ** 2, 0)
    return np.sqrt(r / r.max())


def test_keypoints_are_harris_of_colour_and_of_geometry(rendered):
    for labels, geom in rendered.values():
        rgb = labels["rgb"].astype(np.float64)
        grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        np.testing.assert_allclose(labels["keypoints2d"][0], _harris_direct(grey[None]), atol=1e-5)
        room = geom["room"]
        diag = np.sqrt((2 * room["half_w"]) ** 2 + room["height"] ** 2 + (room["back"] - room["front"]) ** 2)
        depth = np.sqrt(((geom["hit"] - geom["camera"]["position"][:, None, None]) ** 2).sum(0))
        feats = np.concatenate([2 * labels["normal"].astype(np.float64) - 1, 2 * depth[None] / diag])
        np.testing.assert_allclose(labels["keypoints3d"][0], _harris_direct(feats), atol=2e-3)
    # geometry, not texture: the two keypoint maps differ
    labels, geom = rendered[0]
    assert not np.allclose(labels["keypoints3d"], labels["keypoints2d"], atol=0.1)


def test_vector_labels_against_the_scene(rendered):
    for labels, geom in rendered.values():
        cam, room = geom["camera"], geom["room"]
        axes = labels["vanishing_point"].astype(np.float64).reshape(3, 3)  # row k: world axis k
        np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-6)  # a rotation …
        assert np.linalg.det(axes) == pytest.approx(1.0, abs=1e-6)  # … of a right-handed frame
        # the floor's normal is the world's y axis: it is what the normal label shows on the floor
        floor = geom["surface_id"] == 0
        seen = 2 * labels["normal"][:, floor].astype(np.float64) - 1
        np.testing.assert_allclose(seen, np.repeat(axes[1][:, None], floor.sum(), axis=1), atol=1e-6)

        layout = labels["room_layout"].astype(np.float64)
        size = [2 * room["half_w"], room["height"], room["back"] - room["front"]]
        np.testing.assert_allclose(layout[3:6], size, rtol=1e-6)
        # the centre in the camera frame, taken back to the world, is the room's centre
        world = cam["position"] + axes @ layout[:3]
        np.testing.assert_allclose(world, [0, room["height"] / 2, (room["back"] + room["front"]) / 2], atol=1e-5)
        pitch, yaw = layout[6:]
        np.testing.assert_allclose([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)],
                                   cam["forward"], atol=1e-6)

        frac = labels["class_object"].astype(np.float64)
        counts = np.array([(labels["segment_semantic"] == c).sum() for c in range(len(sc.SEMANTIC_CLASSES))])
        np.testing.assert_allclose(frac, counts / counts.sum(), atol=1e-7)


def test_normals_unit_and_facing_the_ray(rendered):
    for labels, geom in rendered.values():
        n = 2.0 * labels["normal"].astype(np.float64) - 1.0
        np.testing.assert_allclose(np.linalg.norm(n, axis=0), 1.0, atol=1e-5)
        nw = geom["normal_world"]
        np.testing.assert_allclose(np.linalg.norm(nw, axis=0), 1.0, atol=1e-12)
        cam = geom["camera"]
        n_cam = np.stack([np.einsum("chw,c->hw", nw, cam["right"]),
                          np.einsum("chw,c->hw", nw, cam["up"]),
                          -np.einsum("chw,c->hw", nw, cam["forward"])])
        np.testing.assert_allclose(n, n_cam, atol=1e-6)
        # normals face the ray: n · d < 0 everywhere
        assert (np.sum(nw * geom["ray_dir"], axis=0) < 0).all()


def test_depths(rendered):
    for labels, geom in rendered.values():
        e = labels["depth_euclidean"][0].astype(np.float64)
        z = labels["depth_zbuffer"][0].astype(np.float64)
        assert (e >= z * (1 - 1e-6)).all()
        assert (e > z * 1.001).mean() > 0.5  # off-axis rays really differ
        cam = geom["camera"]
        rel = geom["hit"] - cam["position"][:, None, None]
        np.testing.assert_allclose(e, np.linalg.norm(rel, axis=0), rtol=1e-6)
        np.testing.assert_allclose(z, np.einsum("chw,c->hw", rel, cam["forward"]), rtol=1e-6)
    # odd size: the centre pixel's ray is the optical axis, where both depths agree
    for seed in (0, 1, 2):
        labels = sc.render_scene(seed, 33)
        e, z = labels["depth_euclidean"][0, 16, 16], labels["depth_zbuffer"][0, 16, 16]
        assert abs(float(e) - float(z)) <= 1e-5
        assert abs(float(labels["depth_euclidean"][0, 0, 0] - labels["depth_zbuffer"][0, 0, 0])) > 1e-2


def test_hits_on_surfaces(rendered):
    """Every hit point lies on the surface its id names, inside the room."""
    for labels, geom in rendered.values():
        room, surf, hit = geom["room"], geom["surface_id"], geom["hit"]
        x, y, zz = hit
        assert (np.abs(x) <= room["half_w"] + 1e-9).all() and (y >= -1e-9).all()
        assert (y <= room["height"] + 1e-9).all() and (zz <= room["back"] + 1e-9).all()
        np.testing.assert_allclose(y[surf == 0], 0.0, atol=1e-9)
        np.testing.assert_allclose(y[surf == 1], room["height"], atol=1e-9)
        np.testing.assert_allclose(x[surf == 2], -room["half_w"], atol=1e-9)
        np.testing.assert_allclose(x[surf == 3], room["half_w"], atol=1e-9)
        np.testing.assert_allclose(zz[surf == 4], room["back"], atol=1e-9)
        for i, obj in enumerate(geom["objects"]):
            m = surf == 6 + i
            p = hit[:, m].T - obj["centre"]
            if obj["kind"] == "sphere":
                np.testing.assert_allclose(np.linalg.norm(p, axis=1), obj["radius"], rtol=1e-9)
            else:
                local = np.abs(p @ obj["rotation"])
                assert (local <= obj["half_extents"] + 1e-9).all()
                on_face = np.abs(local - obj["half_extents"]).min(axis=1)
                assert (on_face < 1e-9).all()


def test_sphere_normals():
    seed = _find_seed("sphere")
    labels, geom = sc.render_scene(seed, 64, return_geometry=True)
    checked = 0
    for i, obj in enumerate(geom["objects"]):
        if obj["kind"] != "sphere":
            continue
        m = geom["surface_id"] == 6 + i
        assert m.sum() > 5
        expect = (geom["hit"][:, m] - obj["centre"][:, None]) / obj["radius"]
        np.testing.assert_allclose(geom["normal_world"][:, m], expect, atol=1e-9)
        # and the camera-frame label of those pixels
        cam = geom["camera"]
        expect_cam = np.stack([cam["right"] @ expect, cam["up"] @ expect,
                               -(cam["forward"] @ expect)])
        np.testing.assert_allclose(2.0 * labels["normal"][:, m] - 1.0, expect_cam, atol=1e-6)
        checked += 1
    assert checked


def test_box_normals_are_face_axes():
    seed = _find_seed("box")
    _, geom = sc.render_scene(seed, 64, return_geometry=True)
    for i, obj in enumerate(geom["objects"]):
        if obj["kind"] != "box":
            continue
        m = geom["surface_id"] == 6 + i
        local = (geom["normal_world"][:, m].T @ obj["rotation"])
        assert np.allclose(np.sort(np.abs(local), axis=1), [0, 0, 1], atol=1e-9)


def test_reshading_is_lambertian_with_shadows(rendered):
    rng = np.random.default_rng(0)
    n_shadow = 0
    for labels, geom in rendered.values():
        light = geom["light"]
        for _ in range(40):
            i, j = rng.integers(0, 64, size=2)
            p = geom["hit"][:, i, j]
            n = geom["normal_world"][:, i, j]
            ldir = (light - p) / np.linalg.norm(light - p)
            lit = bool(geom["lit"][i, j])
            expect = sc.AMBIENT + (1 - sc.AMBIENT) * max(0.0, float(n @ ldir)) * lit
            assert labels["reshading"][0, i, j] == pytest.approx(expect, abs=1e-6)
        # shadows: a pixel whose segment to the light passes through an object is not lit
        s = np.linspace(0.02, 0.98, 200)
        for i in range(0, 64, 3):
            for j in range(0, 64, 3):
                p = geom["hit"][:, i, j]
                pts = p[None, :] + s[:, None] * (light - p)[None, :]
                inside = False
                for obj in geom["objects"]:
                    q = pts - obj["centre"]
                    if obj["kind"] == "sphere":
                        inside |= bool((np.linalg.norm(q, axis=1) < obj["radius"] * 0.999).any())
                    else:
                        local = np.abs(q @ obj["rotation"])
                        inside |= bool((local < obj["half_extents"] * 0.999).all(axis=1).any())
                if inside:
                    assert not geom["lit"][i, j]
                    n_shadow += 1
    assert n_shadow > 0


def test_edge_occlusion_marks_depth_jumps(rendered):
    thr = sc.OCCLUSION_THRESHOLD
    total = 0
    for labels, _ in rendered.values():
        d = labels["depth_euclidean"][0].astype(np.float64)
        edge = labels["edge_occlusion"][0]
        H, W = d.shape
        for i in range(H):
            for j in range(W):
                sure, maybe = False, False
                for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    a, b = i + di, j + dj
                    if 0 <= a < H and 0 <= b < W:
                        jump = abs(d[i, j] - d[a, b])
                        bound = thr * min(d[i, j], d[a, b])
                        if jump > bound * (1 + 1e-5):
                            sure = True
                        elif jump > bound * (1 - 1e-5):
                            maybe = True  # too close to call in float32
                if sure:
                    assert edge[i, j] == 1.0, (i, j)
                elif not maybe:
                    assert edge[i, j] == 0.0, (i, j)
        total += int(edge.sum())
    assert total > 0


def test_edge_texture_is_sobel_of_rgb(rendered):
    labels, _ = rendered[0]
    rgb = labels["rgb"].astype(np.float64)
    a = np.pad(rgb, ((0, 0), (1, 1), (1, 1)), mode="edge")
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    gx = np.zeros_like(rgb)
    gy = np.zeros_like(rgb)
    for u in range(3):
        for v in range(3):
            win = a[:, u:u + 64, v:v + 64]
            gx += kx[u, v] * win
            gy += kx.T[u, v] * win
    mag = np.sqrt((gx ** 2 + gy ** 2).sum(axis=0)) / (4 * np.sqrt(6))
    np.testing.assert_allclose(labels["edge_texture"][0], mag, atol=1e-5)


def test_semantic_segmentation(rendered):
    for labels, geom in rendered.values():
        sem = labels["segment_semantic"]
        assert set(np.unique(sem)) <= set(sc.SEMANTIC_CLASSES.values())
        assert {0, 1} <= set(np.unique(sem))  # floor and walls always seen
        present = set(np.unique(sem).tolist())
        assert 2 <= len(geom["objects"]) <= 4
        for i, obj in enumerate(geom["objects"]):
            assert obj["class_id"] == sc.SEMANTIC_CLASSES[obj["kind"]]
            assert obj["class_id"] in present
            assert (sem[geom["surface_id"] == 6 + i] == obj["class_id"]).all()
            assert (geom["surface_id"] == 6 + i).any()  # every object is visible
        plane_class = {0: 0, 1: 2, 2: 1, 3: 1, 4: 1, 5: 1}
        for sid, cls in plane_class.items():
            assert (sem[geom["surface_id"] == sid] == cls).all()


def test_every_object_visible_over_many_scenes():
    for s in range(100, 160):
        labels, geom = sc.render_scene(s, 32, return_geometry=True)
        ids = set(np.unique(geom["surface_id"]).tolist())
        assert 2 <= len(geom["objects"]) <= 4
        assert all(6 + i in ids for i in range(len(geom["objects"]))), s


def test_unsupervised_segmentations(rendered):
    for seed, (labels, _) in rendered.items():
        for k in ("segment_unsup2d", "segment_unsup25d"):
            seg = labels[k]
            u = np.unique(seg)
            assert len(u) <= sc.KMEANS_K and len(u) >= 2
            assert np.array_equal(u, np.arange(len(u)))  # compact, renumbered labels
            # renumbered in order of first appearance in raster order
            flat = seg.ravel()
            _, first = np.unique(flat, return_index=True)
            assert np.all(np.diff(first) > 0)
        # identical colours get the same 2D segment (a function of colour only)
        rgb = labels["rgb"].reshape(3, -1).T
        colours, inv = np.unique(rgb, axis=0, return_inverse=True)
        seg = labels["segment_unsup2d"].ravel()
        for c in range(len(colours)):
            assert len(np.unique(seg[inv.ravel() == c])) == 1
    again = sc.render_scene(3)
    assert np.array_equal(again["segment_unsup2d"], rendered[3][0]["segment_unsup2d"])
    assert np.array_equal(again["segment_unsup25d"], rendered[3][0]["segment_unsup25d"])


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    truth = np.repeat(np.arange(3), 50)
    x = centres[truth] + 0.1 * rng.standard_normal((150, 2))
    labels = sc.kmeans_labels(x, 3, np.random.default_rng(0))
    # same partition as the truth (labels renumbered by first appearance: 0, 1, 2)
    assert np.array_equal(labels, truth)
    # fewer distinct points than k: at most that many labels
    labels = sc.kmeans_labels(np.array([[1.0], [1.0], [2.0]]), 8, np.random.default_rng(0))
    assert np.array_equal(labels, [0, 0, 1])


def test_fast_enough():
    sc.render_scene(0)
    t0 = time.perf_counter()
    sc.render_scenes(range(20), 64)
    per_scene = (time.perf_counter() - t0) / 20
    assert per_scene < 0.2, per_scene  # ~15 ms on a laptop core; generous for CI noise
