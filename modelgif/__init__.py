"""modelgif: ModelGiF gradient fields for model functional distance (Song et al., ICCV 2023).

Typical use::

    import modelgif
    baselines = modelgif.make_baselines(images, "shuffled", seed=0)
    fields = [modelgif.gradient_field(m, images, baselines, target=1, n_steps=50) for m in models]
    D = modelgif.distance_matrix(fields, metric="cosine")

The names below are loaded on first use (PEP 562), so ``import modelgif.score.plots`` does not
import torch, and a pipeline stage imports only the modules it uses (which is what its
``deps`` in ``dvc.yaml`` list; ``tests/test_stage_deps.py`` checks that).
"""

from __future__ import annotations

from ._deprecated import install_moved_modules
from ._lazy import attach

__version__ = "0.1.0"

#: Public name → the submodule that defines it.
_LAZY = {
    "BASELINES": "field.baselines", "derangement": "field.baselines", "make_baselines": "field.baselines",
    "per_task_spearman": "score.correlation",
    "METRICS": "compare.distance", "distance_matrix": "compare.distance", "affinity_matrix": "compare.distance",
    "PRECISIONS": "field.gradients", "gradient_field": "field.gradients", "iter_gradient_field": "field.gradients",
    "write_chunks": "field.gradients",
    "RULES": "field.quadrature", "nodes_and_weights": "field.quadrature",
    "FieldWriter": "io.storage", "load_field": "io.storage", "open_field": "io.storage", "save_field": "io.storage",
    "TARGETS": "field.targets", "target_selector": "field.targets",
    "GROUND_TRUTH_TABLES": "zoo.taskonomy", "TASKS": "zoo.taskonomy", "load_encoder": "zoo.taskonomy",
    "load_ground_truth": "zoo.taskonomy",
    "cka_distance": "compare.similarity", "rsa_distance": "compare.similarity", "dds_distance": "compare.similarity",
    "attribution_map": "field.attribution", "saliency": "field.attribution", "gradxinput": "field.attribution",
    "encoder_features": "field.attribution", "field_end_point": "field.attribution",
    "image_contributions": "compare.resample", "resample_indices": "compare.resample",
    "bootstrap_field_distances": "compare.resample", "bootstrap_set_distances": "compare.resample",
    "summarize": "score.bootstrap", "noise_ceiling": "score.bootstrap", "readout_noise_ceiling": "score.ceiling",
}

__all__ = sorted(_LAZY)

#: Deprecated names (0.2): the old name → (its module, the new name).
_RENAMED = {"METHODS": ("field.quadrature", "RULES")}

__getattr__, __dir__ = attach(__name__, _LAZY, _RENAMED)
install_moved_modules()  # ``import modelgif.storage`` (the flat layout of 0.1) still works, with a warning
