"""The mini-Taskonomy: a small, offline sanity benchmark, not Taskonomy.

Procedurally rendered rooms (:mod:`modelgif.mini.scenes`) with labels for the same tasks,
under Taskonomy's (new) task names, on which the project trains its own small encoders so
that the whole pipeline can be exercised without the Taskonomy weights or data. Results on
it say whether the machinery works, not how Taskonomy's models relate.
"""

from .._lazy import attach

#: Public name → the submodule that defines it, loaded on first use (PEP 562): importing
#: ``modelgif.mini.encoder`` (the zoo's architecture) does not run the renderer or the trainer.
_LAZY = {"TASK_LABELS": "scenes", "VECTOR_LABELS": "scenes", "render_scene": "scenes", "render_scenes": "scenes"}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = attach(__name__, _LAZY)
