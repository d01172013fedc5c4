"""The functional-distance methods compared by the pipeline (issue 12), by name, with their options.

One call, :func:`method_distances`, gives a method's (K, K) distance on all reference images
and its (B, K, K) distances on the bootstrap resamples (:func:`modelgif.compare.resample.resample_indices`:
every method is given the same indices, so the resamples pair across methods):

============  ==============================================  ===========================================
method        input (per model)                               distance
============  ==============================================  ===========================================
modelgif      the stored field (N, S, H·W)                    :func:`modelgif.compare.distance.distance_matrix`
ig            the field's last step (N, 1, H·W): plain IG     the same, on the end point only
saliency      ∇_x t(x), channel mean (N, 1, H·W)              the same (:mod:`modelgif.field.attribution`)
gradxinput    x ⊙ ∇_x t(x), channel mean (N, 1, H·W)          the same
rsa           encoder output f(x), flattened (N, C·h·w)       :func:`modelgif.compare.similarity.rsa_distance`
cka           the same                                        :func:`modelgif.compare.similarity.cka_distance`
dds           the same                                        :func:`modelgif.compare.similarity.dds_distance`
logme         f(x) of the source, labels of the target        −:func:`modelgif.compare.estimators.logme`
linear_mse    the same                                        −:func:`modelgif.compare.estimators.linear_mse`
knn           the same                                        −:func:`modelgif.compare.estimators.knn`
============  ==============================================  ===========================================

The estimators' D is asymmetric, sources in rows and targets in columns
(:mod:`modelgif.compare.estimator_distances`; labels: :mod:`modelgif.reference.labels`).

Field methods are means over images: their resampled distances are weighted means of the
per-image contributions (N, K, K), returned too, so a resample costs no field read. Set-level
methods are recomputed per resample from per-model (N, N) matrices built once
(:func:`modelgif.compare.resample.set_distances`: CKA's Gram matrices, RSA's RDMs, DDS's kernel
matrices of all N images with ``bootstrap_refit: false``), in torch on the GPU when there is one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .registry import FIELD_METHODS, METHODS, REGISTRY, SET_METHODS, get_method  # noqa: F401 (re-exported)
from .resample import bootstrap_field_distances, image_contributions, set_distances
from ..io.storage import open_field


def __getattr__(name: str):
    if name == "DEFAULT_OPTIONS":  # every registered method's options with their defaults
        return {n: dict(m.options) for n, m in REGISTRY.items()}
    raise AttributeError(f"module 'modelgif.compare.methods' has no attribute {name!r}")


def check_method(method: str, options: Mapping | None = None) -> dict:
    """A method's options, defaults filled in (:mod:`modelgif.compare.registry`); ``ValueError`` naming an
    unknown method, option or value."""
    spec = get_method(method)
    options = dict(options or {})
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise ValueError(f"method {method!r} has no option(s) {', '.join(unknown)}; its options: {valid}")
    out = {**spec.options, **options}
    for key, default in spec.options.items():
        if isinstance(default, bool) and not isinstance(out[key], bool):
            raise ValueError(f"method {method!r}: option {key} must be true or false, got {out[key]!r}")
    for key, valid in spec.choices.items():
        if out[key] not in valid:
            raise ValueError(f"{method}: unknown {key} {out[key]!r}; valid: {', '.join(valid)}")
    return out


def end_point(field) -> np.ndarray:
    """The last step (N, 1, H·W) of a field (a stored field's path: a view of its memory map,
    read on use); for a cumulative field, its Integrated Gradients (the ``ig`` method's input,
    as :func:`modelgif.field.attribution.field_end_point`, without importing torch)."""
    if not hasattr(field, "shape"):
        field = open_field(field)
    return field[:, -1:]


@dataclass(frozen=True)
class MethodDistances:
    """What :func:`method_distances` returns.

    Attributes:
        distance: D (K, K) on all N reference images.
        samples: D (B, K, K) on the B bootstrap resamples.
        contributions: field methods only: per-image contributions (N, K, K) whose mean is D.
    """

    distance: np.ndarray
    samples: np.ndarray
    contributions: np.ndarray | None = None


def method_distances(method: str, inputs: Sequence, indices: np.ndarray, *, metric: str = "cosine",
                     options: Mapping | None = None, feature_shapes: Sequence | None = None,
                     device=None, progress: bool = False) -> MethodDistances:
    """One method's distances between K models, on all images and on every bootstrap resample.

    Args:
        method: a registered method (:data:`modelgif.compare.registry.REGISTRY`).
        inputs: K per-model inputs: for ``modelgif`` and ``ig`` the fields (paths of stored
            fields or arrays (N, S, H·W); ``ig`` takes their last step), for ``saliency`` and
            ``gradxinput`` the maps (N, 1, H·W), for set methods the features (N, D_k), for
            estimators ``(features (N, C·h·w), TaskLabels)`` pairs (the model's own task's labels).
        indices: (B, n) resampled image indices (:func:`modelgif.compare.resample.resample_indices`).
        metric: ``cosine`` or ``euclidean``, for the field methods.
        options: the method's options (:data:`DEFAULT_OPTIONS`).
        feature_shapes: per model (C, h, w) of the features, for DDS's channel-wise normalisations.
        device: where the work runs: the field methods' per-image distances
            (:func:`modelgif.compare.resample.image_contributions`: None, CUDA when torch sees a GPU,
            else numpy) and the set-level methods' bootstrap (:func:`modelgif.compare.resample.set_distances`:
            None, CUDA when torch sees a GPU, else torch on the CPU); a torch device for both.

    Returns:
        :class:`MethodDistances`.
    """
    opts = check_method(method, options)
    spec = REGISTRY[method]
    if spec.compute is not None:  # a method's own code, loaded by name (modelgif.compare.registry.Method.compute)
        module, _, function = spec.compute.partition(":")
        fn = getattr(importlib.import_module(module), function)
        distance, samples = fn(list(inputs), indices, options=opts, feature_shapes=feature_shapes, device=device,
                               progress=progress)
        return MethodDistances(np.asarray(distance, dtype=np.float64), np.asarray(samples, dtype=np.float64))
    if spec.kind == "field":
        fields = [end_point(f) for f in inputs] if spec.reads == "field_end_point" else list(inputs)
        contributions = image_contributions(fields, metric, progress=progress, device=device)
        return MethodDistances(contributions.mean(axis=0), bootstrap_field_distances(contributions, indices),
                               contributions)
    if method == "dds":
        opts = {"kernel": opts["kernel"], "feature_norm": opts["feature_norm"], "debiased": opts["debiased"],
                "refit": opts["bootstrap_refit"], "feature_shapes": feature_shapes}
    return MethodDistances(*set_distances(method, inputs, indices, device=device, progress=progress, **opts))


__all__ = ["DEFAULT_OPTIONS", "FIELD_METHODS", "METHODS", "MethodDistances", "REGISTRY", "SET_METHODS", "check_method",
           "end_point", "method_distances"]
