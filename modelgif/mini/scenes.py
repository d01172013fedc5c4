"""Seeded numpy renderer of simple rooms with Taskonomy-style labels (mini-Taskonomy, step 1).

A scene is a closed box room (floor, four walls, ceiling) seen from a pinhole camera standing
near the front wall, with 2–4 objects resting on the floor (spheres and boxes rotated about the
vertical axis) of random size, colour and procedural texture (plain, stripes or checker, a solid
texture in the surface's own coordinates modulating the albedo), lit by one white point light
under the ceiling: Lambertian shading plus ambient, with hard shadows cast by the objects.
Objects are placed without overlap, with their centres inside the field of view and no object
in front of the ray through another's centre, so every object of a scene is visible.
Every pixel is one ray, cast through the pixel centre; all rays of an image are intersected at
once (vectorised over pixels, looped over the ≤ 10 surfaces).

World frame: y up, floor at y = 0, the camera looks roughly along +z. Camera frame (used for
``normal``): x right, y up, z towards the viewer (OpenGL convention). Every visible normal
faces its ray (n · d < 0); its camera-frame z is mostly, not always, > 0 (a side wall seen
near the image border can face slightly away from the optical axis).

Labels (:func:`render_scene`; C×H×W float32 unless said otherwise):

* ``rgb`` (3) in [0, 1]: albedo × shading, clipped. ``autoencoding`` and ``denoising`` are
  copies of it (the targets); ``rgb_noisy`` is the denoising *input*, ``rgb`` plus seeded
  Gaussian noise (σ = :data:`NOISE_SIGMA`), clipped to [0, 1].
* ``depth_euclidean`` (1): distance camera centre → hit point. ``depth_zbuffer`` (1): the hit
  point's depth along the optical axis (≤ the Euclidean depth, equal on the axis).
* ``normal`` (3): unit surface normal in the camera frame, mapped n ↦ (n + 1) / 2 into [0, 1].
* ``reshading`` (1) in [0, 1]: the shading without albedo,
  ``AMBIENT + (1 − AMBIENT) · max(0, n · l) · lit`` with l the unit vector to the light and
  ``lit`` 0 in an object's shadow. ``rgb`` = albedo × reshading (before clipping).
* ``curvature`` (2): analytic principal curvatures (κ1, κ2) of the surface hit, in 1/m:
  1/r for both on a sphere of radius r, 0 on planes and box faces (box edges, a set of
  measure zero, are not sampled specially).
* ``edge_texture`` (1) in [0, 1]: Sobel gradient magnitude of the RGB image (all three
  channels, edge-replicated border), divided by its bound 4√6.
* ``edge_occlusion`` (1) in {0, 1}: 1 at a pixel where some 4-neighbour's Euclidean depth
  differs by more than :data:`OCCLUSION_THRESHOLD` times the smaller of the two depths
  (both sides of a depth discontinuity are marked), else 0.
* ``keypoints2d`` (1) in [0, 1]: Harris corner response R (k = 0.05, Sobel gradients of the
  grey image, 5×5 binomial window), negative values set to 0, as sqrt(R / max R) (the square
  root keeps weaker corners visible; all 0 if there is no positive response).
* ``segment_unsup2d`` (H×W int64): k-means (k = :data:`KMEANS_K`) clusters of the RGB colour.
* ``segment_unsup25d`` (H×W int64): k-means clusters of the features (camera-frame normal,
  2 × Euclidean depth / room diagonal).
  Both k-means use k-means++ seeding from a stream derived from the scene seed and Lloyd
  iterations to convergence; labels are renumbered 0, 1, … in order of first appearance in
  raster order, so at most k distinct labels and the same labels for the same seed.
* ``keypoints3d`` (1) in [0, 1]: the same Harris response as ``keypoints2d`` but of the
  scene's geometry instead of its colours: the structure tensor is summed over the four
  channels of ``segment_unsup25d``'s features (camera-frame normal, 2 × Euclidean depth /
  room diagonal), so corners of shapes and of occlusion contours respond and texture does
  not (Taskonomy's 3D keypoints come from the mesh, not the image).
* ``segment_semantic`` (H×W int64): class id, :data:`SEMANTIC_CLASSES` (0 floor, 1 wall,
  2 ceiling, 3 sphere, 4 box).

Three labels are one vector per image (:data:`VECTOR_LABELS`, float32):

* ``room_layout`` (8): the room box seen from the camera, as Taskonomy's layout task (box
  centre, size and camera orientation): the box centre in the camera frame (3, metres), its
  width, height and depth (3, metres), the camera's pitch and yaw (2, radians; pitch > 0
  looking up, yaw > 0 turned towards +x; the camera never rolls).
* ``vanishing_point`` (9): the room's three axes (world x, y, z; the Manhattan directions
  whose vanishing points Taskonomy labels) as unit vectors in the camera frame, concatenated.
* ``class_object`` (5): the fraction of the image's pixels of each :data:`SEMANTIC_CLASSES`
  class (sums to 1): what the picture shows, a distribution as Taskonomy's object-class
  soft labels are.

Determinism: all randomness comes from ``numpy.random.default_rng`` seeded with the scene seed
(scene layout), ``[seed, 1]`` (noise), ``[seed, 2]`` and ``[seed, 3]`` (the two k-means); no
global state. Geometry is float64 and only uses arithmetic, ``sqrt``, ``floor`` and
comparisons on per-pixel arrays (scalar angles go through :mod:`math`; dot products are
written out instead of ``@``, which would call BLAS), avoiding numpy's CPU-dispatched
transcendental ufuncs and BLAS kernels, so the same seed gives the same arrays on any machine
with the same numpy; outputs are float32 (segmentations int64).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

#: The task labels :func:`render_scene` returns, Taskonomy's new names, in the project's order.
TASK_LABELS = (
    "autoencoding", "curvature", "denoising", "edge_texture", "edge_occlusion", "keypoints2d",
    "keypoints3d", "reshading", "depth_zbuffer", "depth_euclidean", "normal", "room_layout",
    "segment_unsup25d", "segment_unsup2d", "vanishing_point", "segment_semantic", "class_object",
)

#: The labels that are one vector per image (the rest are per-pixel maps).
VECTOR_LABELS = ("room_layout", "vanishing_point", "class_object")

#: Semantic class ids of ``segment_semantic``.
SEMANTIC_CLASSES = {"floor": 0, "wall": 1, "ceiling": 2, "sphere": 3, "box": 4}

AMBIENT = 0.25
NOISE_SIGMA = 0.1
OCCLUSION_THRESHOLD = 0.1
KMEANS_K = 8
FOV_DEG = 60.0
HARRIS_K = 0.05

_EPS = 1e-9
_PLANE_NAMES = ("floor", "ceiling", "wall_left", "wall_right", "wall_back", "wall_front")


# ----------------------------------------------------------------------------- scene sampling
def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the last axis (size 3), written out: no BLAS, fixed rounding."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _mat(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Row vectors times a 3×3 matrix, ``a @ m``, written out like :func:`_dot`."""
    return np.stack([_dot(a, m[:, k]) for k in range(3)], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / math.sqrt(float(_dot(v, v)))


def _material(rng: np.random.Generator, plane_axis: int | None = None) -> dict:
    """A colour and a procedural texture: ``texture`` 0 plain, 1 stripes, 2 checker."""
    colour = rng.uniform(0.15, 0.95, size=3)
    kind = int(rng.integers(0, 3))
    scale = float(rng.uniform(0.15, 0.6))
    phase = rng.uniform(0.0, scale, size=3)
    contrast = float(rng.uniform(0.25, 0.6))
    axes = [a for a in range(3) if a != plane_axis]
    axis = np.zeros(3)
    if plane_axis is None:
        axis = _unit(rng.normal(size=3))
    else:
        axis[axes[int(rng.integers(0, len(axes)))]] = 1.0
    return {"colour": colour, "texture": kind, "scale": scale, "phase": phase,
            "contrast": contrast, "axis": axis}


def _hides(cam_pos: np.ndarray, front: dict, back: dict, margin: float = 0.15) -> bool:
    """Whether ``front``'s bounding sphere (plus margin) meets the ray to ``back``'s centre."""
    v = back["centre"] - cam_pos
    dist = math.sqrt(float(_dot(v, v)))
    w = front["centre"] - cam_pos
    s = float(_dot(w, v)) / dist
    if s <= 0.0 or s >= dist:
        return False
    perp2 = max(float(_dot(w, w)) - s * s, 0.0)
    return perp2 < (front["bound"] + margin) ** 2


def _sample_scene(rng: np.random.Generator) -> dict:
    half_w = float(rng.uniform(2.0, 3.0))  # walls at x = ±half_w
    height = float(rng.uniform(2.5, 3.2))  # ceiling at y = height
    back = float(rng.uniform(5.5, 7.5))  # back wall at z = back
    front = -0.5  # front wall at z = front, behind the camera
    room = {"half_w": half_w, "height": height, "back": back, "front": front}

    cam_pos = np.array([rng.uniform(-0.3, 0.3) * half_w, rng.uniform(1.2, 1.8), 0.0])
    target = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.2, 0.7), 0.55 * back])
    forward = _unit(target - cam_pos)
    right = _unit(np.cross(forward, [0.0, 1.0, 0.0]))
    up = np.cross(right, forward)
    camera = {"position": cam_pos, "forward": forward, "right": right, "up": up,
              "fov_deg": FOV_DEG}

    light = np.array([rng.uniform(-0.7, 0.7) * half_w, height - rng.uniform(0.2, 0.5),
                      rng.uniform(1.0, back - 1.0)])

    # Plane materials: walls share one, floor and ceiling have their own.
    floor_mat = _material(rng, plane_axis=1)
    ceiling_mat = _material(rng, plane_axis=1)
    wall_mat = _material(rng, plane_axis=None)
    wall_mat["axis"] = np.array([0.0, 1.0, 0.0]) if wall_mat["texture"] == 1 else wall_mat["axis"]

    tan_half = math.tan(math.radians(FOV_DEG) / 2)
    n_obj = int(rng.integers(2, 5))
    objects: list[dict] = []
    tries = 0
    while len(objects) < n_obj and tries < 2000:
        tries += 1
        if tries % 100 == 0 and len(objects) < 2:
            objects = []  # a layout that leaves no room for a second object: start over
        if rng.random() < 0.5:
            r = float(rng.uniform(0.3, 0.7))
            obj = {"kind": "sphere", "radius": r, "footprint": r}
            hy = r
        else:
            he = np.array([rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.6)])
            angle = float(rng.uniform(0.0, math.pi / 2))
            obj = {"kind": "box", "half_extents": he, "angle": angle,
                   "footprint": math.hypot(he[0], he[2])}
            hy = float(he[1])
        z = float(rng.uniform(2.0, back - obj["footprint"] - 0.2))
        x = float(cam_pos[0] + rng.uniform(-1.0, 1.0) * 0.45 * z)
        lim = half_w - obj["footprint"] - 0.1
        x = min(max(x, -lim), lim)
        centre = np.array([x, hy, z])
        # Keep the object's centre well inside the field of view.
        v = centre - cam_pos
        depth = float(_dot(v, forward))
        if depth <= 0 or max(abs(float(_dot(v, right))), abs(float(_dot(v, up)))) > 0.8 * tan_half * depth:
            continue
        if any(math.hypot(x - o["centre"][0], z - o["centre"][2])
               < obj["footprint"] + o["footprint"] + 0.05 for o in objects):
            continue
        obj["centre"] = centre
        obj["bound"] = math.hypot(obj["footprint"], hy)  # bounding-sphere radius
        # No object may hide the ray through another's centre (each stays visible).
        if any(_hides(cam_pos, o, obj) or _hides(cam_pos, obj, o) for o in objects):
            continue
        obj["class_id"] = SEMANTIC_CLASSES[obj["kind"]]
        obj.update(_material(rng))
        if obj["kind"] == "box":
            c, s = math.cos(obj["angle"]), math.sin(obj["angle"])
            # Local → world rotation about y.
            obj["rotation"] = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        objects.append(obj)
    return {"room": room, "camera": camera, "light": light, "objects": objects,
            "materials": {"floor": floor_mat, "ceiling": ceiling_mat, "wall": wall_mat}}


# ----------------------------------------------------------------------------- ray casting
def _camera_rays(camera: dict, size: int) -> np.ndarray:
    """Unit ray directions (N, 3), raster order, through the pixel centres."""
    tan_half = math.tan(math.radians(camera["fov_deg"]) / 2)
    coords = ((np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0) * tan_half
    sy, sx = -coords[:, None], coords[None, :]
    d = (camera["forward"][None, None, :] + sx[..., None] * camera["right"][None, None, :]
         + sy[..., None] * camera["up"][None, None, :])
    d = d.reshape(-1, 3)
    return d / np.sqrt(np.sum(d * d, axis=1, keepdims=True))


def _intersect_sphere(o, d, centre, radius):
    """Nearest t > eps of rays o + t d (o (3,) or (N, 3)) with a sphere; inf where missed."""
    oc = o - centre
    b = np.sum(d * oc, axis=-1)
    c = np.sum(oc * oc, axis=-1) - radius * radius
    disc = b * b - c
    hit = disc > 0
    sq = np.sqrt(np.where(hit, disc, 0.0))
    t0, t1 = -b - sq, -b + sq
    t = np.where(t0 > 1e-7, t0, np.where(t1 > 1e-7, t1, np.inf))
    return np.where(hit, t, np.inf)


def _intersect_box(o, d, obj):
    """Nearest t > eps with a y-rotated box, and the entry face's local axis and sign."""
    rot, he = obj["rotation"], obj["half_extents"]
    ol = _mat(o - obj["centre"], rot)  # world → local is rot.T, applied to row vectors
    dl = _mat(d, rot)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1 = (-he - ol) * inv
        t2 = (he - ol) * inv
    # Rays parallel to a slab: inside it → (−inf, inf), outside → empty.
    par = dl == 0
    inside = np.abs(ol) <= he
    lo = np.where(par, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    hi = np.where(par, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    tmin, tmax = lo.max(axis=-1), hi.min(axis=-1)
    axis = lo.argmax(axis=-1)
    hit = (tmax >= tmin) & (tmin > 1e-7)
    return np.where(hit, tmin, np.inf), axis


def _cast(scene: dict, o: np.ndarray, d: np.ndarray):
    """Primary rays: t, surface id (0–5 planes in _PLANE_NAMES order, 6+ objects), normals."""
    room = scene["room"]
    n = d.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        plane_t = np.stack([
            np.where(d[:, 1] < 0, (0.0 - o[1]) / d[:, 1], np.inf),
            np.where(d[:, 1] > 0, (room["height"] - o[1]) / d[:, 1], np.inf),
            np.where(d[:, 0] < 0, (-room["half_w"] - o[0]) / d[:, 0], np.inf),
            np.where(d[:, 0] > 0, (room["half_w"] - o[0]) / d[:, 0], np.inf),
            np.where(d[:, 2] > 0, (room["back"] - o[2]) / d[:, 2], np.inf),
            np.where(d[:, 2] < 0, (room["front"] - o[2]) / d[:, 2], np.inf),
        ])
    plane_normals = np.array([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, -1],
                              [0, 0, 1]], dtype=np.float64)
    surf = plane_t.argmin(axis=0)
    t = plane_t[surf, np.arange(n)]
    normal = plane_normals[surf]
    for k, obj in enumerate(scene["objects"]):
        if obj["kind"] == "sphere":
            tk = _intersect_sphere(o, d, obj["centre"], obj["radius"])
            closer = tk < t
            t = np.where(closer, tk, t)
            surf = np.where(closer, 6 + k, surf)
            p = o + tk[closer, None] * d[closer]
            normal[closer] = (p - obj["centre"]) / obj["radius"]
        else:
            tk, axis = _intersect_box(o, d, obj)
            closer = tk < t
            t = np.where(closer, tk, t)
            surf = np.where(closer, 6 + k, surf)
            dl = _mat(d[closer], obj["rotation"])
            nl = np.zeros_like(dl)
            idx = np.arange(dl.shape[0])
            nl[idx, axis[closer]] = -np.sign(dl[idx, axis[closer]])
            normal[closer] = _mat(nl, obj["rotation"].T)
    return t, surf, normal


def _shadowed(scene: dict, p: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """True where an object lies between the point and the light (planes cannot occlude)."""
    to_light = scene["light"][None, :] - p
    dist = np.sqrt(np.sum(to_light * to_light, axis=1))
    ld = to_light / dist[:, None]
    origin = p + 1e-6 * normal
    blocked = np.zeros(p.shape[0], dtype=bool)
    for obj in scene["objects"]:
        if obj["kind"] == "sphere":
            tk = _intersect_sphere(origin, ld, obj["centre"], obj["radius"])
        else:
            tk, _ = _intersect_box(origin, ld, obj)
        blocked |= tk < dist
    return blocked


def _texture(mat: dict, q: np.ndarray) -> np.ndarray:
    """Albedo (N, 3) of a material at texture coordinates q (N, 3)."""
    if mat["texture"] == 0:
        pattern = np.zeros(q.shape[0])
    elif mat["texture"] == 1:
        pattern = np.mod(np.floor(_dot(q + mat["phase"], mat["axis"]) / mat["scale"]), 2.0)
    else:
        pattern = np.mod(np.sum(np.floor((q + mat["phase"]) / mat["scale"]), axis=1), 2.0)
    return mat["colour"][None, :] * (1.0 - mat["contrast"] * pattern)[:, None]


def _albedo(scene: dict, surf: np.ndarray, p: np.ndarray) -> np.ndarray:
    albedo = np.zeros_like(p)
    plane_axis = (1, 1, 0, 0, 2, 2)
    plane_mat = ("floor", "ceiling", "wall", "wall", "wall", "wall")
    for s in range(6):
        m = surf == s
        if m.any():
            q = p[m].copy()
            q[:, plane_axis[s]] = 0.0
            albedo[m] = _texture(scene["materials"][plane_mat[s]], q)
    for k, obj in enumerate(scene["objects"]):
        m = surf == 6 + k
        if m.any():
            q = p[m] - obj["centre"]
            if obj["kind"] == "box":
                q = _mat(q, obj["rotation"])
            albedo[m] = _texture(obj, q)
    return albedo


# ----------------------------------------------------------------------------- 2D filters
def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel gradients (x to the right, y down) of an (..., H, W) image, edge-replicated."""
    pad = [(0, 0)] * (img.ndim - 2) + [(1, 1), (1, 1)]
    a = np.pad(img, pad, mode="edge")
    sm_r = a[..., :-2, :] + 2.0 * a[..., 1:-1, :] + a[..., 2:, :]  # smooth along rows
    sm_c = a[..., :, :-2] + 2.0 * a[..., :, 1:-1] + a[..., :, 2:]  # smooth along columns
    gx = sm_r[..., :, 2:] - sm_r[..., :, :-2]
    gy = sm_c[..., 2:, :] - sm_c[..., :-2, :]
    return gx, gy


def _binomial5(img: np.ndarray) -> np.ndarray:
    w = (1.0, 4.0, 6.0, 4.0, 1.0)
    a = np.pad(img, 2, mode="edge")
    h, wd = img.shape
    rows = sum(wi * a[i:i + h, :] for i, wi in enumerate(w)) / 16.0
    return sum(wi * rows[:, i:i + wd] for i, wi in enumerate(w)) / 16.0


def _harris(img: np.ndarray) -> np.ndarray:
    """sqrt(R / max R) of the Harris response R ≥ 0 of an (H, W) or (C, H, W) image; the
    structure tensor of a multi-channel image is the sum of its channels' tensors."""
    img = img[None] if img.ndim == 2 else img
    gx, gy = _sobel(img)
    gx, gy = gx / 8.0, gy / 8.0
    sxx = _binomial5(np.sum(gx * gx, axis=0))
    syy = _binomial5(np.sum(gy * gy, axis=0))
    sxy = _binomial5(np.sum(gx * gy, axis=0))
    r = sxx * syy - sxy * sxy - HARRIS_K * (sxx + syy) ** 2
    r = np.maximum(r, 0.0)
    top = r.max()
    return np.sqrt(r / top) if top > 0 else r


def occlusion_edges(depth: np.ndarray, threshold: float = OCCLUSION_THRESHOLD) -> np.ndarray:
    """1.0 where a 4-neighbour's depth differs by > threshold × the smaller depth, else 0.0."""
    depth = np.asarray(depth, dtype=np.float64)
    out = np.zeros(depth.shape, dtype=bool)
    jump_v = np.abs(depth[1:, :] - depth[:-1, :]) > threshold * np.minimum(depth[1:, :],
                                                                        depth[:-1, :])
    jump_h = np.abs(depth[:, 1:] - depth[:, :-1]) > threshold * np.minimum(depth[:, 1:],
                                                                        depth[:, :-1])
    out[1:, :] |= jump_v
    out[:-1, :] |= jump_v
    out[:, 1:] |= jump_h
    out[:, :-1] |= jump_h
    return out.astype(np.float64)


# ----------------------------------------------------------------------------- k-means
def kmeans_labels(x: np.ndarray, k: int, rng: np.random.Generator,
                  max_iter: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; labels renumbered by first appearance."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    centres = [x[int(rng.integers(0, n))]]
    xt = np.ascontiguousarray(x.T)

    def sqdist(centre: np.ndarray) -> np.ndarray:
        out = np.zeros(n)
        for f in range(x.shape[1]):
            diff = xt[f] - centre[f]
            out += diff * diff
        return out

    d2 = sqdist(centres[0])
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            break  # fewer distinct points than k
        i = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        centres.append(x[min(i, n - 1)])
        d2 = np.minimum(d2, sqdist(centres[-1]))
    c = np.array(centres)
    labels = np.full(n, -1)
    for _ in range(max_iter):
        dist = np.zeros((n, len(c)))
        for f in range(x.shape[1]):  # explicit loop: no BLAS, fixed summation order
            diff = xt[f][:, None] - c[None, :, f]
            dist += diff * diff
        new = dist.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=len(c))
        for f in range(x.shape[1]):
            sums = np.bincount(labels, weights=xt[f], minlength=len(c))
            c[:, f] = np.where(counts > 0, sums / np.maximum(counts, 1), c[:, f])
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(len(c), dtype=np.int64)
    remap[labels[first[order]]] = np.arange(len(order))
    return remap[labels]


# ----------------------------------------------------------------------------- public API
def render_scene(seed: int, size: int = 64, return_geometry: bool = False):
    """Render scene ``seed`` at ``size``×``size`` px; return its image and task labels.

    Returns a dict name → array: ``rgb``, ``rgb_noisy`` and every name of
    :data:`TASK_LABELS` (see the module docstring for each one's definition). With
    ``return_geometry=True`` returns ``(labels, geometry)``; ``geometry`` holds the scene
    description (``room``, ``camera``, ``light``, ``objects`` — each object a dict with
    ``kind``, ``centre``, ``radius`` or ``half_extents``/``angle``/``rotation``, ``class_id``,
    ``colour``…) and per-pixel float64 arrays: ``surface_id`` (H, W; 0–5 the planes
    floor, ceiling, left, right, back, front wall; 6 + i object i), ``hit`` (3, H, W) world
    hit points, ``normal_world`` (3, H, W), ``ray_dir`` (3, H, W) unit ray directions,
    ``albedo`` (3, H, W), ``lit`` (H, W bool, False in shadow) and ``ambient``.
    """
    seed = int(seed)
    size = int(size)
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    rng = np.random.default_rng(seed)
    scene = _sample_scene(rng)
    cam = scene["camera"]
    o = cam["position"]
    d = _camera_rays(cam, size)
    t, surf, n_world = _cast(scene, o, d)
    p = o + t[:, None] * d

    lit = ~_shadowed(scene, p, n_world)
    to_light = scene["light"][None, :] - p
    ldir = to_light / np.sqrt(np.sum(to_light * to_light, axis=1, keepdims=True))
    lambert = np.maximum(np.sum(n_world * ldir, axis=1), 0.0)
    shading = AMBIENT + (1.0 - AMBIENT) * lambert * lit
    albedo = _albedo(scene, surf, p)
    rgb = np.clip(albedo * shading[:, None], 0.0, 1.0)

    hw = (size, size)
    img = lambda a: a.reshape(size, size, -1).transpose(2, 0, 1)  # noqa: E731  (N, C) → (C, H, W)
    rgb_i = img(rgb)
    depth_e = t.reshape(hw)
    depth_z = (t * _dot(d, cam["forward"])).reshape(hw)
    n_cam = np.stack([_dot(n_world, cam["right"]), _dot(n_world, cam["up"]),
                      -_dot(n_world, cam["forward"])],
                     axis=1)

    curv = np.zeros(size * size)
    for k, obj in enumerate(scene["objects"]):
        if obj["kind"] == "sphere":
            curv[surf == 6 + k] = 1.0 / obj["radius"]

    semantic_of_surface = np.array([0, 2, 1, 1, 1, 1] + [o_["class_id"] for o_ in scene["objects"]],
                                   dtype=np.int64)
    semantic = semantic_of_surface[surf].reshape(hw)

    gx, gy = _sobel(rgb_i)
    edge_tex = np.sqrt(np.sum(gx * gx + gy * gy, axis=0)) / (4.0 * math.sqrt(6.0))
    grey = 0.299 * rgb_i[0] + 0.587 * rgb_i[1] + 0.114 * rgb_i[2]

    noise = np.random.default_rng([seed, 1]).standard_normal(rgb_i.shape)
    rgb_noisy = np.clip(rgb_i + NOISE_SIGMA * noise, 0.0, 1.0)

    room = scene["room"]
    diag = math.sqrt((2 * room["half_w"]) ** 2 + room["height"] ** 2
                     + (room["back"] - room["front"]) ** 2)
    seg2d = kmeans_labels(rgb, KMEANS_K, np.random.default_rng([seed, 2]))
    feats25 = np.concatenate([n_cam, 2.0 * t[:, None] / diag], axis=1)
    seg25d = kmeans_labels(feats25, KMEANS_K, np.random.default_rng([seed, 3]))

    centre = np.array([0.0, room["height"] / 2, (room["back"] + room["front"]) / 2]) - o
    fwd = cam["forward"]
    layout = [float(_dot(centre, cam["right"])), float(_dot(centre, cam["up"])), -float(_dot(centre, fwd)),
              2 * room["half_w"], room["height"], room["back"] - room["front"],
              math.asin(float(fwd[1])), math.atan2(float(fwd[0]), float(fwd[2]))]
    axes = [[cam["right"][k], cam["up"][k], -fwd[k]] for k in range(3)]
    counts = np.bincount(semantic.ravel(), minlength=len(SEMANTIC_CLASSES))

    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    labels = {
        "rgb": f32(rgb_i),
        "rgb_noisy": f32(rgb_noisy),
        "autoencoding": f32(rgb_i),
        "denoising": f32(rgb_i),
        "depth_euclidean": f32(depth_e[None]),
        "depth_zbuffer": f32(depth_z[None]),
        "normal": f32(img((n_cam + 1.0) / 2.0)),
        "reshading": f32(shading.reshape(1, size, size)),
        "curvature": f32(np.stack([curv, curv]).reshape(2, size, size)),
        "edge_texture": f32(np.minimum(edge_tex, 1.0)[None]),
        "edge_occlusion": f32(occlusion_edges(depth_e)[None]),
        "keypoints2d": f32(_harris(grey)[None]),
        "keypoints3d": f32(_harris(img(feats25))[None]),
        "segment_unsup2d": seg2d.reshape(hw),
        "segment_unsup25d": seg25d.reshape(hw),
        "segment_semantic": semantic,
        "room_layout": f32(layout),
        "vanishing_point": f32(np.ravel(axes)),
        "class_object": f32(counts / counts.sum()),
    }
    if not return_geometry:
        return labels
    geometry = {
        "room": scene["room"], "camera": cam, "light": scene["light"],
        "objects": scene["objects"], "materials": scene["materials"],
        "surface_id": surf.reshape(hw), "hit": img(p), "normal_world": img(n_world),
        "ray_dir": img(d), "albedo": img(albedo), "lit": lit.reshape(hw), "ambient": AMBIENT,
    }
    return labels, geometry


def render_scenes(seeds: Iterable[int], size: int = 64) -> dict[str, np.ndarray]:
    """Render every seed; return the labels of :func:`render_scene` stacked along axis 0."""
    rendered = [render_scene(s, size) for s in seeds]
    if not rendered:
        raise ValueError("no seeds given")
    return {k: np.stack([r[k] for r in rendered]) for k in rendered[0]}
