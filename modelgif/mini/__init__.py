"""The mini-Taskonomy: a small, offline sanity benchmark, not Taskonomy.

Procedurally rendered rooms (:mod:`modelgif.mini.scenes`) with labels for the same tasks,
under Taskonomy's (new) task names, on which the project trains its own small encoders so
that the whole pipeline can be exercised without the Taskonomy weights or data. Results on
it say whether the machinery works, not how Taskonomy's models relate.
"""

from .scenes import TASK_LABELS, VECTOR_LABELS, render_scene, render_scenes

__all__ = ["TASK_LABELS", "VECTOR_LABELS", "render_scene", "render_scenes"]
