"""modelgif: ModelGiF gradient fields for model functional distance (Song et al., ICCV 2023).

Typical use::

    import modelgif
    baselines = modelgif.make_baselines(images, "shuffled", seed=0)
    fields = [modelgif.gradient_field(m, images, baselines, target=1, n_steps=50) for m in models]
    D = modelgif.distance_matrix(fields, metric="cosine")

The names below are loaded on first use (PEP 562), so ``import modelgif.plots`` does not
import torch, and a pipeline stage imports only the modules it uses (which is what its
``deps`` in ``dvc.yaml`` list; ``tests/test_stage_deps.py`` checks that).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name → the submodule that defines it.
_LAZY = {
    "BASELINES": "baselines", "derangement": "baselines", "make_baselines": "baselines",
    "per_task_spearman": "correlation",
    "METRICS": "distance", "distance_matrix": "distance", "affinity_matrix": "distance",
    "PRECISIONS": "field", "gradient_field": "field", "iter_gradient_field": "field", "write_chunks": "field",
    "RULES": "quadrature", "nodes_and_weights": "quadrature",
    "FieldWriter": "storage", "load_field": "storage", "open_field": "storage", "save_field": "storage",
    "TARGETS": "targets", "target_selector": "targets",
    "GROUND_TRUTH_TABLES": "taskonomy", "TASKS": "taskonomy", "load_encoder": "taskonomy",
    "load_ground_truth": "taskonomy",
    "cka_distance": "similarity", "rsa_distance": "similarity", "dds_distance": "similarity",
    "attribution_map": "attribution", "saliency": "attribution", "gradxinput": "attribution",
    "encoder_features": "attribution", "field_end_point": "attribution",
    "image_contributions": "bootstrap", "resample_indices": "bootstrap", "bootstrap_field_distances": "bootstrap",
    "bootstrap_set_distances": "bootstrap", "summarize": "bootstrap", "noise_ceiling": "bootstrap",
}

__all__ = sorted(_LAZY)


#: Deprecated names (0.2): the old name → (its module, the new name).
_RENAMED = {"METHODS": ("quadrature", "RULES")}


def __getattr__(name: str):
    if name in _RENAMED:  # not cached: every use warns (as modelgif._deprecated.warn words it)
        import warnings

        module, new = _RENAMED[name]
        warnings.warn(f"modelgif.{name} is deprecated and will be removed in modelgif 0.2; use modelgif.{new}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(f".{module}", __name__), new)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelgif' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
