"""Gradient fields (docs/METHOD.md, steps 2–5): the input gradients of a target along a path.

- :mod:`.gradients`: the field itself (:func:`gradient_field`, :func:`iter_gradient_field`);
- :mod:`.targets`: the scalar t(z) of a model's output that is differentiated;
- :mod:`.baselines`: the path's start x' per reference image;
- :mod:`.quadrature`: the rules on [0, 1] (:data:`~.quadrature.RULES`);
- :mod:`.execution`: arithmetic, batch size, host memory, writing while computing;
- :mod:`.distributed`: one field computed by several processes;
- :mod:`.sketch`: fields projected to fewer values per row before storage;
- :mod:`.attribution`: attribution maps, encoder features and the IG end point (the inputs of
  the other methods).

``from modelgif.field import gradient_field`` (the module of 0.1) keeps working: the names
below load from :mod:`.gradients` on first use.
"""

from .._lazy import attach

#: The public names of 0.1's ``modelgif.field`` module → the submodule that defines them.
_LAZY = {
    "DEFAULT_BATCH_SIZE": "gradients", "DEFAULT_CUDA_BATCH_SIZE": "gradients", "PRECISIONS": "gradients",
    "PassSize": "gradients", "check_precision": "gradients", "default_batch_size": "gradients",
    "keep_freed_cpu_memory": "gradients", "precision_mode": "gradients", "write_chunks": "gradients",
    "check_method": "gradients", "nodes_and_weights": "gradients", "GaussianSketch": "gradients",
    "check_sketch_dim": "gradients", "check_target": "gradients", "target_selector": "gradients",
    "iter_gradient_field": "gradients", "gradient_field": "gradients", "zero_field_chunks": "gradients",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = attach(__name__, _LAZY)
