"""Set-level representation similarity between models: CKA, RSA and DDS.

Each method takes K models' features for one reference set — K arrays (N, D_k), one row per
image, in the same image order; D_k may differ between models — and returns a (K, K) float64
*distance* ``1 − similarity``, so that it can be correlated with a transfer affinity exactly
like a ModelGiF distance (:func:`modelgif.score.correlation.per_task_spearman`).

- :func:`cka_distance`: linear centred kernel alignment (Kornblith et al., ICML 2019), or its
  debiased form (Nguyen et al., ICLR 2021) built on the unbiased HSIC estimator (Song et al.,
  JMLR 2012).
- :func:`rsa_distance`: representational similarity analysis as used for transfer learning by
  Dwivedi & Roig (CVPR 2019): per model an RDM ``1 − Pearson(f(x_i), f(x_j))`` over images,
  models compared by Spearman's ρ over the RDMs' upper triangles.
- :func:`dds_distance`: duality diagram similarity (Dwivedi et al., ECCV 2020): a feature
  normalisation, a kernel (or distance) between images, then debiased CKA between the kernel
  matrices.

Every method works through per-model (N, N) matrices between images (Gram, kernel or RDM
matrices), built once; the lower-level ``*_from_*`` functions take such stacked matrices, so
a bootstrap over images can index them instead of recomputing (:mod:`modelgif.score.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

from .registry import SET_METHODS  # noqa: F401 - re-exported (the registry holds the list)

#: Feature normalisations of DDS (``Q, D`` of the duality diagram), named as in the DDS code.
FEATURE_NORMS = ("none", "centering", "znorm", "group_norm", "instance_norm", "layer_norm", "batch_norm")
#: DDS kernels between images (similarities) ...
DDS_KERNELS = ("laplacian", "rbf", "linear")
#: ... and DDS distances between images (RDMs); either kind is compared by CKA.
DDS_RDMS = ("pearson", "euclidean", "cosine")
#: Variance floor of the DDS code's group/instance/layer/batch normalisations.
_NORM_EPS = 1e-9


# ----------------------------------------------------------------------------- inputs
def check_features(features: Sequence, min_images: int = 2) -> list[np.ndarray]:
    """K feature arrays as float64 (N, D_k); ``ValueError`` naming the problem otherwise.

    Accepts arrays or tensors of shape (N, D_k), or (N, ...) which is flattened per image.
    """
    out = []
    for k, f in enumerate(features):
        if hasattr(f, "detach"):
            f = f.detach().cpu().numpy()
        a = np.asarray(f, dtype=np.float64)
        if a.ndim < 2:
            raise ValueError(f"features[{k}] must have shape (N, D); got shape {a.shape}")
        a = a.reshape(a.shape[0], -1)
        if a.shape[1] == 0:
            raise ValueError(f"features[{k}] has no feature dimensions: shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"features[{k}] has NaN or infinite values")
        out.append(a)
    if not out:
        raise ValueError("need the features of at least one model")
    ns = {a.shape[0] for a in out}
    if len(ns) != 1:
        raise ValueError(f"every model needs features of the same N images; got N = {sorted(ns)}")
    if out[0].shape[0] < min_images:
        raise ValueError(f"need at least {min_images} images, got {out[0].shape[0]}")
    return out


# ----------------------------------------------------------------------------- CKA
def center_gram(gram: np.ndarray, unbiased: bool = False) -> np.ndarray:
    """Centre (n, n) Gram matrices (any leading dims): ``H K H`` with ``H = I − 11ᵀ/n``, or,
    with ``unbiased``, the U-centring of Székely & Rizzo (2014) (zero diagonal), whose inner
    products are ``n(n − 3)`` times the unbiased HSIC estimator of Song et al. (2012).
    Needs n ≥ 4 when unbiased."""
    g = np.array(gram, dtype=np.float64, copy=True)
    n = g.shape[-1]
    if unbiased:
        if n < 4:
            raise ValueError(f"the unbiased HSIC estimator needs at least 4 images, got {n}")
        idx = np.arange(n)
        g[..., idx, idx] = 0.0
        col = g.sum(axis=-2) / (n - 2)  # (…, n): column sums / (n − 2)
        col -= col.sum(axis=-1, keepdims=True) / (2 * (n - 1))
        g -= col[..., :, None]
        g -= col[..., None, :]
        g[..., idx, idx] = 0.0
        return g
    col = g.mean(axis=-2)
    col -= col.mean(axis=-1, keepdims=True) / 2
    g -= col[..., :, None]
    g -= col[..., None, :]
    return g


def cka_from_grams(grams: np.ndarray, *, debiased: bool = False) -> np.ndarray:
    """CKA similarity (K, K) between K models' (n, n) Gram matrices, stacked (K, n, n).

    ``CKA(a, b) = ⟨K̃_a, K̃_b⟩_F / (‖K̃_a‖_F ‖K̃_b‖_F)`` with K̃ the centred (or, ``debiased``,
    U-centred) Gram matrix. A model whose centred Gram matrix is zero (constant features) has
    similarity 0 with every model, itself included (as a zero field has cosine 0)."""
    g = np.asarray(grams, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] != g.shape[2]:
        raise ValueError(f"grams must have shape (K, n, n); got {g.shape}")
    v = center_gram(g, unbiased=debiased).reshape(g.shape[0], -1)
    inner = v @ v.T
    norms = np.sqrt(np.clip(np.diag(inner), 0.0, None))
    denom = norms[:, None] * norms[None, :]
    sim = np.divide(inner, denom, out=np.zeros_like(inner), where=denom > 0)
    return (sim + sim.T) / 2


def linear_grams(features: Sequence) -> np.ndarray:
    """Linear-kernel Gram matrices ``X_k X_kᵀ``, stacked (K, N, N), of K feature arrays."""
    feats = check_features(features)
    return np.stack([x @ x.T for x in feats])


def cka_distance(features: Sequence, *, debiased: bool = False) -> np.ndarray:
    """Linear-CKA distance ``1 − CKA`` between K models.

    Linear CKA (Kornblith et al., ICML 2019) is ``HSIC(XXᵀ, YYᵀ) / sqrt(HSIC(XXᵀ, XXᵀ)
    HSIC(YYᵀ, YYᵀ))`` with the biased HSIC estimator ``tr(K H L H) / (n − 1)²``; features
    are thereby centred over images. ``debiased=True`` uses the unbiased HSIC estimator of
    Song et al. (2012), as Nguyen et al. (ICLR 2021) do; it can be negative, so the distance
    can exceed 1. Invariant to orthogonal maps and isotropic scaling of any model's features.

    Args:
        features: K arrays (N, D_k) (or (N, ...), flattened), one row per reference image.
        debiased: use the unbiased HSIC estimator (needs N ≥ 4).

    Returns:
        D, float64 (K, K), symmetric; 0 on the diagonal (1 for a model with constant features).
    """
    grams = linear_grams(features)
    return 1.0 - cka_from_grams(grams, debiased=debiased)


# ----------------------------------------------------------------------------- RSA
def pearson_rdm(x: np.ndarray) -> np.ndarray:
    """RDM (N, N) ``1 − Pearson correlation`` between the rows (images) of features (N, D)."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", xc, xc))
    if np.any(norm == 0):
        bad = np.flatnonzero(norm == 0)[:5].tolist()
        raise ValueError(f"images {bad} have constant features: their Pearson correlation is undefined")
    xc /= norm[:, None]
    rdm = 1.0 - xc @ xc.T
    np.fill_diagonal(rdm, 0.0)
    return (rdm + rdm.T) / 2


def spearman_rows(vectors: np.ndarray) -> np.ndarray:
    """Spearman's ρ (K, K) between the rows of (K, M) (average ranks for ties). A constant row
    has ρ = 0 with every row, itself included."""
    r = rankdata(np.asarray(vectors, dtype=np.float64), axis=-1)
    r -= r.mean(axis=-1, keepdims=True)
    inner = r @ r.T
    norms = np.sqrt(np.diag(inner))
    denom = norms[:, None] * norms[None, :]
    rho = np.divide(inner, denom, out=np.zeros_like(inner), where=denom > 0)
    return (rho + rho.T) / 2


def rsa_from_rdms(rdms: np.ndarray, pairs: np.ndarray | None = None) -> np.ndarray:
    """RSA similarity (K, K): Spearman's ρ between K stacked (n, n) RDMs' upper triangles.

    ``pairs``: optional boolean mask (n, n) of the entries to use (default: i < j); a bootstrap
    drops pairs of an image with its own copy this way."""
    r = np.asarray(rdms, dtype=np.float64)
    if r.ndim != 3 or r.shape[1] != r.shape[2] or r.shape[1] < 3:
        raise ValueError(f"rdms must have shape (K, n, n) with n >= 3; got {r.shape}")
    if pairs is None:
        pairs = np.triu(np.ones(r.shape[1:], dtype=bool), k=1)
    return spearman_rows(r[:, pairs])


def rsa_distance(features: Sequence) -> np.ndarray:
    """RSA distance ``1 − ρ`` between K models (Dwivedi & Roig, CVPR 2019).

    Each model's RDM is ``1 − Pearson(f(x_i), f(x_j))`` between the features of images i and j
    (N, N); two models' similarity is Spearman's ρ between their RDMs' upper triangles
    (the N(N − 1)/2 pairs i < j).

    Args:
        features: K arrays (N, D_k), N ≥ 3.

    Returns:
        D, float64 (K, K), symmetric, 0 on the diagonal, in [0, 2].

    Raises:
        ValueError: an image whose features are constant (its correlations are undefined).
    """
    feats = check_features(features, min_images=3)
    return 1.0 - rsa_from_rdms(np.stack([pearson_rdm(x) for x in feats]))


# ----------------------------------------------------------------------------- DDS
def normalize_features(x: np.ndarray, norm: str = "znorm", feature_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """A DDS feature normalisation of features (N, D) (``utils.py`` of the DDS code).

    - ``none``; ``centering``: subtract each feature's mean over images;
    - ``znorm``: subtract the mean and divide by the standard deviation over images (population
      std, as scikit-learn's ``StandardScaler``; a constant feature is only centred);
    - ``group_norm`` (2 channel groups), ``instance_norm`` (one group per channel),
      ``layer_norm`` (one group): per image, mean and variance over each group's channels and
      all positions; ``batch_norm``: per channel, over images and positions. These need
      ``feature_shape = (C, h, w)`` of the channel-first flattened features; variance + 1e-9.
    """
    if norm not in FEATURE_NORMS:
        raise ValueError(f"unknown feature normalisation {norm!r}; valid: {', '.join(FEATURE_NORMS)}")
    x = np.asarray(x, dtype=np.float64)
    if norm == "none":
        return x
    if norm == "centering":
        return x - x.mean(axis=0, keepdims=True)
    if norm == "znorm":
        std = x.std(axis=0, keepdims=True)
        return (x - x.mean(axis=0, keepdims=True)) / np.where(std > 0, std, 1.0)
    if feature_shape is None or int(np.prod(feature_shape)) != x.shape[1]:
        raise ValueError(f"feature normalisation {norm!r} needs feature_shape (C, h, w) with C*h*w = {x.shape[1]}; "
                         f"got {feature_shape}")
    c, h, w = (int(v) for v in feature_shape)
    n = x.shape[0]
    if norm == "batch_norm":
        t = x.reshape(n, c, h, w)
        axes = (0, 2, 3)
    else:
        groups = {"group_norm": 2, "instance_norm": c, "layer_norm": 1}[norm]
        if c % groups:
            raise ValueError(f"{norm} needs the channel count {c} divisible by {groups} groups")
        t = x.reshape(n, groups, c // groups, h, w)
        axes = (2, 3, 4)
    t = (t - t.mean(axis=axes, keepdims=True)) / np.sqrt(t.var(axis=axes, keepdims=True) + _NORM_EPS)
    return t.reshape(n, -1)


def dds_matrix(x: np.ndarray, kernel: str = "laplacian") -> np.ndarray:
    """The (N, N) matrix between images of DDS's ``kernel`` (similarity) or RDM (distance).

    Kernels: ``laplacian`` ``exp(−γ ‖x_i − x_j‖₁)`` with γ = 1/D (scikit-learn's
    ``laplacian_kernel`` default, which the DDS code calls); ``rbf``
    ``exp(−‖x_i − x_j‖² / (2 · 0.5² · median of all squared distances))`` (Kornblith et al.'s
    ``gram_rbf`` with the DDS code's threshold 0.5; the median over all N² entries, diagonal
    included); ``linear`` ``x_i · x_j``. RDMs: ``pearson`` ``1 − corr``, ``euclidean``
    ``‖x_i − x_j‖₂``, ``cosine`` ``1 − cos``.
    """
    x = np.asarray(x, dtype=np.float64)
    if kernel == "laplacian":
        return np.exp(-cdist(x, x, "cityblock") / x.shape[1])
    if kernel == "rbf":
        dot = x @ x.T
        sq = np.diag(dot)
        d2 = -2 * dot + sq[:, None] + sq[None, :]
        med = np.median(d2)
        if med <= 0:
            raise ValueError("rbf kernel: the median squared distance between images is 0")
        return np.exp(-d2 / (2 * 0.5**2 * med))
    if kernel == "linear":
        return x @ x.T
    if kernel == "pearson":
        return 1.0 - np.corrcoef(x)
    if kernel == "euclidean":
        return cdist(x, x, "euclidean")
    if kernel == "cosine":
        norm = np.linalg.norm(x, axis=1)
        u = x / np.where(norm > 0, norm, 1.0)[:, None]
        return 1.0 - u @ u.T
    raise ValueError(f"unknown DDS kernel {kernel!r}; valid: {', '.join(DDS_KERNELS + DDS_RDMS)}")


def dds_matrices(features: Sequence, *, kernel: str = "laplacian", feature_norm: str = "znorm",
                 feature_shapes: Sequence | None = None) -> np.ndarray:
    """Per-model DDS matrices (K, N, N): ``feature_norm`` then ``kernel`` (see :func:`dds_distance`)."""
    feats = check_features(features, min_images=4)
    if kernel not in DDS_KERNELS + DDS_RDMS:
        raise ValueError(f"unknown DDS kernel {kernel!r}; valid: {', '.join(DDS_KERNELS + DDS_RDMS)}")
    shapes = list(feature_shapes) if feature_shapes is not None else [None] * len(feats)
    if len(shapes) != len(feats):
        raise ValueError(f"feature_shapes has {len(shapes)} entries for {len(feats)} models")
    mats = np.stack([dds_matrix(normalize_features(x, feature_norm, s), kernel) for x, s in zip(feats, shapes)])
    if not np.isfinite(mats).all():
        raise ValueError(f"DDS {kernel} matrices have NaN values (an image with constant features?)")
    return mats


def dds_distance(features: Sequence, *, kernel: str = "laplacian", feature_norm: str = "znorm",
                 debiased: bool = True, feature_shapes: Sequence | None = None) -> np.ndarray:
    """Duality-diagram-similarity distance ``1 − DDS`` between K models (Dwivedi et al., ECCV 2020).

    DDS = CKA between per-model (N, N) matrices: the features are normalised (``Q, D`` of the
    duality diagram, :func:`normalize_features`), a kernel or distance between images is taken
    (``f``, :func:`dds_matrix`), and the matrices are compared by CKA (``g``) — by default the
    debiased CKA (U-centred matrices).

    Default: z-score normalisation, Laplacian kernel, debiased CKA — the configuration the
    paper reports as its Taskonomy result (mean ρ 0.86 against the affinities). Where the paper
    leaves details open we follow the authors' code (github.com/cvai-roig-lab/
    duality-diagram-similarity, ``utils.py`` and ``computeDDS_taskonomy.py``): ``get_similarity``
    is called with its defaults ``debiased=True, centered=True``; the Laplacian kernel is
    scikit-learn's with γ = 1/D on the L1 distance; z-scoring is ``StandardScaler`` (population
    std); the RBF bandwidth is 0.5 · the median distance. In the authors' notebook
    ``CVPR2020_Table3_Taskonomy_SOTA_comparison.ipynb`` this configuration ("cka lap
    debiased_centered znorm") gives 0.860; their other notebook finds the cosine RDM with z-scoring
    marginally higher (0.862), available as ``kernel="cosine"``.

    Args:
        features: K arrays (N, D_k), N ≥ 4.
        kernel: one of :data:`DDS_KERNELS` (similarity kernels) or :data:`DDS_RDMS` (distances).
        feature_norm: one of :data:`FEATURE_NORMS`.
        debiased: U-centring (debiased CKA) instead of ordinary centring.
        feature_shapes: per model (C, h, w), needed by the group/instance/layer/batch norms.

    Returns:
        D, float64 (K, K), symmetric, 0 on the diagonal.
    """
    mats = dds_matrices(features, kernel=kernel, feature_norm=feature_norm, feature_shapes=feature_shapes)
    return 1.0 - cka_from_grams(mats, debiased=debiased)


__all__ = [
    "DDS_KERNELS", "DDS_RDMS", "FEATURE_NORMS", "SET_METHODS", "center_gram", "check_features", "cka_distance",
    "cka_from_grams", "dds_distance", "dds_matrices", "dds_matrix", "linear_grams", "normalize_features",
    "pearson_rdm", "rsa_distance", "rsa_from_rdms", "spearman_rows",
]
