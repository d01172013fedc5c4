"""The functional-distance methods, registered by name: what each reads, its options with their
defaults, and where its code is, without importing that code (no numpy or torch import here).

Everything else follows from a registration: the names valid in params.yaml's ``methods``, each
method's option check (:func:`modelgif.compare.methods.check_method`), which files ``distance@<method>``
reads and fingerprints (:func:`modelgif.settings.method_input_paths`), its settings file with the
sha256 of its code (:func:`modelgif.settings.method_settings`), the computation
(:func:`modelgif.compare.methods.method_distances`), and its rows in the metrics and plots (``correlate``
scores every listed method alike).

Adding a method is one module and one :func:`register` call; docs/methods.md shows the diff::

    # modelgif/procrustes.py
    def procrustes_distances(features, indices, *, options, feature_shapes, device, progress):
        ...  # -> (D (K, K) on all images, D (B, K, K) on the resamples' rows)

    # here
    register(Method("procrustes", kind="set", reads="features", options={"scale": True},
                    compute="modelgif.procrustes:procrustes_distances",
                    summary="orthogonal Procrustes distance between encoder outputs"))

and ``procrustes`` in params.yaml's ``methods`` (with ``method_options.procrustes`` if its
defaults do not suit). A *field method* is a mean over images of per-image distances between
stored fields or attribution maps; a *set method* compares the encoders' outputs over the whole
reference set; an *estimator method* scores how well each source model's encoder outputs fit
each target task's labels of the reference images (asymmetric: rows sources, columns targets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: What a method can read: the stored fields (``data/fields``), one kind of attribution map made
#: by the features stage (``data/attributions/<method>``), the encoders' outputs (``data/features``),
#: or those and the target tasks' labels of the reference images (``features_labels``: the reference
#: set's manifest, rendered from the mini-scenes source; :mod:`modelgif.reference.labels`).
READS = ("fields", "field_end_point", "attributions", "features", "features_labels")

#: What each kind of method reads.
KIND_READS = {"field": ("fields", "field_end_point", "attributions"), "set": ("features",),
              "estimator": ("features_labels",)}


@dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes:
        name: its name in params.yaml (``methods``) and its stage (``distance@<name>``).
        kind: ``field`` (mean over images of per-image distances, bootstrap by reweighting the
            per-image contributions), ``set`` (recomputed from the whole set per resample) or
            ``estimator`` (recomputed per resample too; an asymmetric D, source rows, target
            columns, from its ``compute``).
        reads: one of :data:`READS`: ``fields`` (modelgif), ``field_end_point`` (the fields'
            last step: ig), ``attributions`` (``data/attributions/<name>``), ``features``, or
            ``features_labels`` (an estimator: ``compute`` gets K ``(features, labels)`` pairs,
            the labels a :class:`modelgif.reference.labels.TaskLabels` of the model's own task).
        options: every option with its default (``method_options.<name>`` overrides them); a
            bool default takes only true/false.
        summary: one line: what it measures, and its source.
        compute: ``"module:function"`` of a method's own code, loaded by name: called as
            ``function(inputs, indices, *, options, feature_shapes, device, progress)`` and
            returning ``(D (K, K), samples (B, K, K))``; ``None`` for the built-in methods, which
            :mod:`modelgif.compare.methods` computes (field distances, :func:`modelgif.compare.resample.set_distances`).
        choices: option name → its valid values, checked with the defaults' types.
    """

    name: str
    kind: str
    reads: str
    options: Mapping = field(default_factory=dict)
    summary: str = ""
    compute: str | None = None
    choices: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KIND_READS:
            raise ValueError(f"method {self.name}: kind must be 'field', 'set' or 'estimator', got {self.kind!r}")
        if self.reads not in READS:
            raise ValueError(f"method {self.name}: reads must be one of {', '.join(READS)}, got {self.reads!r}")
        if self.reads not in KIND_READS[self.kind]:
            raise ValueError(f"method {self.name}: a set method reads features, a field method fields or maps, "
                             "an estimator features_labels")
        if self.kind == "estimator" and self.compute is None:
            raise ValueError(f"method {self.name}: an estimator method needs its compute")
        if self.compute is not None and ":" not in self.compute:
            raise ValueError(f"method {self.name}: compute must be 'module:function', got {self.compute!r}")
        unknown = set(self.choices) - set(self.options)
        if unknown:
            raise ValueError(f"method {self.name}: choices for options it does not have: {sorted(unknown)}")


#: Every registered method, by name, in registration order (the order of the docs and tables).
REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`REGISTRY`; ``ValueError`` if its name is taken."""
    if method.name in REGISTRY:
        raise ValueError(f"a method named {method.name!r} is already registered")
    REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def field_methods() -> tuple[str, ...]:
    return tuple(n for n, m in REGISTRY.items() if m.kind == "field")


def set_methods() -> tuple[str, ...]:
    return tuple(n for n, m in REGISTRY.items() if m.kind == "set")


def estimator_methods() -> tuple[str, ...]:
    return tuple(n for n, m in REGISTRY.items() if m.kind == "estimator")


register(Method("modelgif", "field", "fields", summary="gradient fields along the path (Song et al., ICCV 2023)"))
register(Method("ig", "field", "field_end_point",
                summary="the fields' last step only: plain Integrated Gradients (Sundararajan et al., 2017)"))
register(Method("saliency", "field", "attributions",
                summary="input gradient at x (attribution maps, Song et al., NeurIPS 2019)"))
register(Method("gradxinput", "field", "attributions", summary="input gradient times x (Shrikumar et al., 2016)"))
register(Method("rsa", "set", "features", summary="encoder outputs: RSA (Dwivedi & Roig, CVPR 2019)"))
register(Method("cka", "set", "features", {"debiased": False},
                summary="encoder outputs: linear CKA (Kornblith et al., ICML 2019)"))
# DDS's best published configuration (z-score, Laplacian, debiased CKA: similarity.dds_distance);
# bootstrap_refit false: resamples index the kernel matrices of all N images (cheap, approximate)
register(Method("dds", "set", "features",
                {"kernel": "laplacian", "feature_norm": "znorm", "debiased": True, "bootstrap_refit": False},
                summary="encoder outputs: duality diagram similarity (Dwivedi et al., ECCV 2020)",
                choices={"kernel": ("laplacian", "rbf", "linear", "pearson", "euclidean", "cosine"),
                         "feature_norm": ("none", "centering", "znorm", "group_norm", "instance_norm",
                                          "layer_norm", "batch_norm")}))

# The transferability estimators (modelgif.compare.estimators), D[i, j] = -score(source i's features,
# target j's labels): modelgif.compare.estimator_distances; max_samples rows per fit, drawn with sample_seed
_SAMPLE = {"max_samples": 256, "sample_seed": 0}
register(Method("logme", "estimator", "features_labels", _SAMPLE,
                summary="encoder outputs vs target labels: LogME evidence (You et al., ICML 2021)",
                compute="modelgif.compare.estimator_distances:logme_distances"))
register(Method("linear_mse", "estimator", "features_labels", {"alpha": 1.0, **_SAMPLE},
                summary="encoder outputs vs target labels: leave-one-out ridge MSE (Nguyen et al., UAI 2023)",
                compute="modelgif.compare.estimator_distances:linear_mse_distances"))
register(Method("knn", "estimator", "features_labels", {"k": 5, **_SAMPLE},
                summary="encoder outputs vs target labels: leave-one-out k-NN accuracy or MSE",
                compute="modelgif.compare.estimator_distances:knn_distances"))

#: The built-in methods' names, by kind (kept as constants: users import them).
FIELD_METHODS = field_methods()
SET_METHODS = set_methods()
ESTIMATOR_METHODS = estimator_methods()
METHODS = FIELD_METHODS + SET_METHODS + ESTIMATOR_METHODS

# A candidate variant of ModelGiF under its pre-registered test (docs/preregistration.md): registered
# so that `methods: [..., field_cka]` runs it, and kept out of the built-in lists above (and of the
# default methods) until its result on build 2 decides.
register(Method("field_cka", "field", "fields", {"debiased": False, "per_step": False},
                summary="gradient fields compared by linear CKA over the images (pre-registered variant)",
                compute="modelgif.compare.field_cka:field_cka_distances"))
