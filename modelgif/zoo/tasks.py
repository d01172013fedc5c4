"""The 17 Taskonomy tasks, in the seed's order, and their original names (docs/METHOD.md, "Tasks and
names"): the one list every part of the project takes its tasks from (both zoos have these
17; ``params.yaml``'s ``tasks`` and the mini renderer's ``TASK_LABELS``, which cannot import it
without invalidating the mini build's lock, are checked against it by the tests)."""

from __future__ import annotations

#: New task name → Taskonomy's original name (the keys of the published tables), in the seed's order.
OLD_NAMES = {
    "autoencoding": "autoencoder", "curvature": "curvature", "denoising": "denoise",
    "edge_texture": "edge2d", "edge_occlusion": "edge3d", "keypoints2d": "keypoint2d",
    "keypoints3d": "keypoint3d", "reshading": "reshade", "depth_zbuffer": "rgb2depth",
    "depth_euclidean": "rgb2mist", "normal": "rgb2sfnorm", "room_layout": "room_layout",
    "segment_unsup25d": "segment25d", "segment_unsup2d": "segment2d",
    "vanishing_point": "vanishing_point_well_defined", "segment_semantic": "segmentsemantic_rb",
    "class_object": "class_1000",
}

#: The 17 tasks, in the seed's order.
TASKS = tuple(OLD_NAMES)
