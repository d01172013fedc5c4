"""Write a PNG of a few mini-Taskonomy scenes and their labels, to eyeball the renderer.

    python tools/mini_scenes_figure.py OUT.png [--seeds 0 1 2] [--size 64]

One row per scene: the RGB image, the noisy denoising input, then every label of
``modelgif.mini.scenes.render_scene`` (depths, normals, reshading, curvature, edges,
keypoints, the three segmentations) and, as text, the three vector labels.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from modelgif.mini.scenes import SEMANTIC_CLASSES, render_scene  # noqa: E402

PANELS = (
    ("rgb", "rgb"), ("rgb_noisy", "rgb_noisy (denoising in)"),
    ("depth_euclidean", "depth_euclidean"), ("depth_zbuffer", "depth_zbuffer"),
    ("normal", "normal (camera)"), ("reshading", "reshading"), ("curvature", "curvature k1"),
    ("edge_texture", "edge_texture"), ("edge_occlusion", "edge_occlusion"),
    ("keypoints2d", "keypoints2d (Harris)"), ("keypoints3d", "keypoints3d (geometry)"),
    ("segment_unsup2d", "segment_unsup2d"), ("segment_unsup25d", "segment_unsup25d"),
    ("segment_semantic", "segment_semantic"), ("vectors", "room_layout, vanishing_point,\nclass_object"),
)


def _vectors_text(labels: dict) -> str:
    lay, vp, cls = labels["room_layout"], labels["vanishing_point"], labels["class_object"]
    return (f"room {lay[3]:.1f}×{lay[4]:.1f}×{lay[5]:.1f} m\n"
            f"pitch {np.degrees(lay[6]):+.0f}° yaw {np.degrees(lay[7]):+.0f}°\n"
            f"up axis ({vp[3]:+.2f},{vp[4]:+.2f},{vp[5]:+.2f})\n"
            + "\n".join(f"{name} {f:.0%}" for name, f in zip(SEMANTIC_CLASSES, cls)))


def _show(ax, name: str, a) -> None:
    if name == "vectors":
        ax.text(0.02, 0.98, a, fontsize=5.5, va="top", ha="left", family="monospace", transform=ax.transAxes)
    elif name.startswith("segment"):
        vmax = 4 if name == "segment_semantic" else 7
        ax.imshow(a, cmap="tab10" if name == "segment_semantic" else "tab20",
                  vmin=0, vmax=vmax if name == "segment_semantic" else 19,
                  interpolation="nearest")
    elif a.shape[0] == 3:
        ax.imshow(np.clip(a.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    else:
        cmap = "viridis" if name.startswith("depth") else "gray"
        ax.imshow(a[0], cmap=cmap, interpolation="nearest")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="PNG path to write")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    fig, axes = plt.subplots(len(args.seeds), len(PANELS),
                             figsize=(1.5 * len(PANELS), 1.7 * len(args.seeds)), squeeze=False)
    for row, seed in enumerate(args.seeds):
        labels = render_scene(seed, args.size)
        for col, (key, title) in enumerate(PANELS):
            ax = axes[row, col]
            _show(ax, key, _vectors_text(labels) if key == "vectors" else labels[key])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=6)
        axes[row, 0].set_ylabel(f"seed {seed}", fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
