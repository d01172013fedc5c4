"""Label-using transferability estimators: how well a source model's features fit a target task.

Each estimator takes one model's features on n target samples, (n, d), and the target task's
labels for the same samples, and returns one float; **higher is better** (the features should
transfer better to the task). They rank candidate source models for one target task.

- :func:`logme`: LogME, the mean per-sample log marginal likelihood (evidence) of a Bayesian
  linear model on the features (You et al., ICML 2021).
- :func:`linear_mse`: minus the leave-one-out MSE of a ridge regression of the standardised
  targets on the features (the linear MSE estimator of Nguyen et al., UAI 2023).
- :func:`knn`: leave-one-out k-nearest-neighbour accuracy (classification) or minus its MSE
  (regression) on standardised features.

Each has a table form, :func:`logme_table`, :func:`linear_mse_table`, :func:`knn_table`: K
models' features on the same n samples against T label sets, (K, T) scores, with each model's
decomposition (SVD, neighbours) done once for all T, and LogME's fixed point iterated for every
(model, label column) at once; ``logme(f, y, kind=...)`` is ``logme_table([f], [(y, kind)])[0, 0]``,
and so on, so the one-pair functions and the tables are one implementation.

Every function checks its input and raises :class:`modelgif.errors.InputError` (a
``ValueError``) naming the problem: NaN or infinite values, mismatched n, fewer than 2 samples,
``k >= n``, an unknown ``kind``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import cdist

from ..errors import InputError

__all__ = ["ESTIMATORS", "KINDS", "knn", "knn_table", "linear_mse", "linear_mse_table", "logme", "logme_table"]

#: What the labels are: integer class labels, or real-valued targets.
KINDS = ("classification", "regression")

#: LogME's fixed point: stop when alpha/beta changes by at most this much (relative) ...
_LOGME_TOL = 1e-10
#: ... or after this many updates.
_LOGME_MAX_ITER = 1000
#: Singular values of the features below this fraction of the largest count as zero.
_RANK_RTOL = 1e-10


# ----------------------------------------------------------------------------- inputs
def _check_features(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise InputError(f"features must have shape (n, d); got shape {f.shape}")
    if f.shape[1] == 0:
        raise InputError(f"features have no feature dimensions: shape {f.shape}")
    if f.shape[0] < 2:
        raise InputError(f"need at least 2 samples, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise InputError("features have NaN or infinite values")
    return f


def _check_feature_sets(features: Sequence) -> list[np.ndarray]:
    """K ≥ 1 models' features, each checked, on the same n samples."""
    fs = [_check_features(f) for f in features]
    if not fs:
        raise InputError("no features: need at least one model's (n, d) features")
    for k, f in enumerate(fs[1:], 1):
        if f.shape[0] != fs[0].shape[0]:
            raise InputError(f"every model's features must be on the same samples: model 0 has n = "
                             f"{fs[0].shape[0]}, model {k} has n = {f.shape[0]}")
    return fs


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def _check_labels(labels, n: int, kind: str, name: str = "labels") -> np.ndarray:
    """Class labels as an int64 (n,) array, or targets as a float64 (n, k) array."""
    y = np.asarray(labels)
    if y.shape[:1] != (n,):
        raise InputError(f"{name} must have one entry per sample: features have n = {n}, "
                         f"{name} have shape {y.shape}")
    if kind == "classification":
        if y.ndim != 1:
            raise InputError(f"class {name} must have shape (n,); got shape {y.shape}")
        if y.dtype.kind not in "biuf":
            raise InputError(f"class {name} must be integers; got dtype {y.dtype}")
        if not np.isfinite(y).all():
            raise InputError(f"{name} have NaN or infinite values")
        if (y != np.round(y)).any():
            raise InputError(f"class {name} must be integers; got non-integral values")
        return y.astype(np.int64)
    if y.ndim not in (1, 2) or y.dtype.kind not in "biuf":
        raise InputError(f"regression {name} must be real numbers of shape (n,) or (n, k); "
                         f"got shape {y.shape}, dtype {y.dtype}")
    y = y.astype(np.float64).reshape(n, -1)
    if y.shape[1] == 0:
        raise InputError(f"regression {name} have no columns: shape {y.shape}")
    if not np.isfinite(y).all():
        raise InputError(f"{name} have NaN or infinite values")
    return y


def _standardise_targets(y: np.ndarray, name: str) -> np.ndarray:
    """Each column of (n, k) ``y`` to mean 0 and (population, ddof 0) standard deviation 1."""
    std = y.std(axis=0)
    if (std == 0).any():
        raise InputError(f"{name} column(s) {np.flatnonzero(std == 0).tolist()} are constant; "
                         "cannot standardise them")
    return (y - y.mean(axis=0)) / std


def _label_columns(y: np.ndarray, kind: str) -> np.ndarray:
    """The (n, c) columns the linear estimators fit: one-hot per class present, or the targets."""
    if kind == "classification":
        return (y[:, None] == np.unique(y)[None, :]).astype(np.float64)
    return y


# ----------------------------------------------------------------------------- LogME
def logme(features, labels, *, kind: str) -> float:
    """LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021): the maximised log evidence of Bayesian linear regression of each
    label column on the features, per sample, averaged over the columns.

    For one label column y (n,), the model is ``y = F w + noise`` with prior
    ``w ~ N(0, I/alpha)`` and noise ``N(0, I/beta)``; alpha and beta maximise the evidence
    ``p(y | F, alpha, beta)`` by the paper's fixed-point iteration (its Algorithm 2, on the
    SVD of F): with ``sigma_i`` the eigenvalues of ``FᵀF`` (d of them, zeros included),

    - ``gamma = Σ beta sigma_i / (alpha + beta sigma_i)``, ``m = beta A⁻¹ Fᵀ y`` with
      ``A = alpha I + beta FᵀF``;
    - ``alpha ← gamma / mᵀm``, ``beta ← (n − gamma) / ‖y − F m‖²``,

    from alpha = beta = 1 until alpha/beta changes by at most 1e-10 (relative; the fixed point
    is a function of alpha/beta alone), at most 1000 updates. The score is

        ``(d/2 log alpha + n/2 log beta − 1/2 log det A − beta/2 ‖y − F m‖² − alpha/2 mᵀm
        − n/2 log 2π) / n``

    at the fixed point (``log det A`` over all d eigenvalues, also when n < d). Where the
    evidence has no interior maximum the iteration runs off to a boundary and the score is the
    supremum there, in closed form: alpha → ∞ (w = 0, the column is pure noise:
    ``−1/2 (log(2π ‖y‖²/n) + 1)``), or, only where F has rank n (n ≤ d: any labels fit
    exactly), beta → ∞. The authors' code stops after 11 updates instead, which gives a
    different number in those cases (and, for n < d, it leaves out the zero eigenvalues' terms
    of ``log det A``). Labels that features of rank < n fit exactly (no noise at all) have
    unbounded evidence: the score is then large, set by the iteration limit.

    Args:
        features: (n, d) float, one row per sample, used as given (no centring or scaling,
            as in the paper).
        labels: ``kind="classification"``: (n,) integer class labels; each class present is
            one one-hot column. ``kind="regression"``: (n,) or (n, k) real targets, used as
            given; each column is one label column.
        kind: ``"classification"`` or ``"regression"``.

    Returns:
        The mean over label columns of the log evidence divided by n: nats per sample,
        higher is better.

    Raises:
        InputError: bad input (see the module), or an all-zero regression target column (its
            evidence grows without bound as beta does).
    """
    return float(logme_table([features], [(labels, kind)])[0, 0])


def logme_table(features: Sequence, labels: Sequence) -> np.ndarray:
    """:func:`logme` of each of K models' features for each of T label sets: (K, T).

    Args:
        features: K arrays (n, d_k), the same n samples (d_k may differ).
        labels: T pairs ``(labels, kind)`` as :func:`logme` takes them, on those n samples.

    Returns:
        float64 (K, T): entry (k, t) is ``logme(features[k], *labels[t])``. Each model's SVD is
        computed once, and the fixed point runs for all K × (label columns) at once, each
        column stopping where it would alone (:func:`_max_log_evidence`).
    """
    fs = _check_feature_sets(features)
    n = fs[0].shape[0]
    ys = []
    for y, kind in labels:
        cols = _label_columns(_check_labels(y, n, _check_kind(kind)), kind)
        norms = np.einsum("ij,ij->j", cols, cols)
        if not (norms > 0).all():
            raise InputError(f"label column {int(np.flatnonzero(~(norms > 0))[0])} is all zeros; "
                             "LogME is unbounded for it")
        ys.append((cols, norms))
    if not ys:
        return np.zeros((len(fs), 0))
    widths = [y.shape[1] for y, _ in ys]
    allcols, allnorms = np.concatenate([y for y, _ in ys], axis=1), np.concatenate([m for _, m in ys])
    bases = []
    for f in fs:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        keep = s > _RANK_RTOL * s[0]
        bases.append((u[:, keep], s[keep] ** 2))  # sigma: the nonzero eigenvalues of FᵀF
    r_max, m = max(sigma.size for _, sigma in bases), allcols.shape[1]
    # every (model, column) pair is one column of the fixed point; rows past a model's rank are 0
    x2 = np.zeros((r_max, len(fs) * m))
    sigma = np.zeros((r_max, len(fs) * m))
    outside = np.zeros(len(fs) * m)
    rank = np.zeros(len(fs) * m, dtype=np.int64)
    for k, (u, sig) in enumerate(bases):
        cols = slice(k * m, (k + 1) * m)
        proj = (u.T @ allcols) ** 2  # (r, m): each column's squared coordinates along F's left singular vectors
        x2[:sig.size, cols] = proj
        sigma[:sig.size, cols] = sig[:, None]
        rank[cols] = sig.size
        # each column's squared norm off F's column span (none where F spans all n samples)
        outside[cols] = np.maximum(allnorms - proj.sum(axis=0), 0.0) if sig.size < n else 0.0
    evidence = (_max_log_evidence(x2, outside, sigma, rank, n) / n).reshape(len(fs), m)
    edges = np.cumsum([0] + widths)
    return np.stack([evidence[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


def _max_log_evidence(x2: np.ndarray, outside: np.ndarray, sigma: np.ndarray, rank: np.ndarray,
                      n: int) -> np.ndarray:
    """The log evidence of each label column maximised over alpha, beta by the fixed point (m,).

    ``x2`` (R, m): the m columns' squared coordinates along the left singular vectors of their
    model's F, ``sigma`` (R, m) the matching nonzero eigenvalues of FᵀF, both 0 in the rows past
    the column's ``rank`` (m,) (the number of nonzero eigenvalues of its F: columns of models of
    different rank side by side), ``outside`` (m,) their squared norms off F's column span. Every
    column iterates on its own (all at once, each stopping where it would alone). The fixed point
    depends on ``t = alpha / beta`` alone, and so does the evidence once it is maximised over beta
    at that t (:func:`_profile_log_evidence`, equal to the paper's formula at the fixed point).
    Where the evidence has no interior maximum the iteration drives t to a boundary: t → ∞
    (alpha → ∞, w = 0: the column is noise) or, only where F spans all n samples (rank = n),
    t → 0 (beta → ∞: an exact fit); the limit there is taken where it is higher.
    """
    t = np.ones(x2.shape[1])  # alpha = beta = 1
    active = np.ones(x2.shape[1], dtype=bool)
    n_minus_rank = (n - rank).astype(np.float64)
    for _ in range(_LOGME_MAX_ITER):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        ta, xa, s = t[idx], x2[:, idx], sigma[:, idx]
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            shrink = ta / (s + ta)  # 1 in the rows past the rank (s = 0)
            gamma = np.sum(s / (s + ta), axis=0)
            # term by term, no cancellation near n; the rows past the rank add no term
            n_minus_gamma = n_minus_rank[idx] + np.sum(np.where(s > 0, shrink, 0.0), axis=0)
            m2 = np.sum(s * xa / (s + ta) ** 2, axis=0)  # mᵀm
            res2 = np.sum(xa * shrink ** 2, axis=0) + outside[idx]  # ‖y − F m‖² (x2 = 0 past the rank)
            new_t = (gamma / m2) / (n_minus_gamma / res2)  # alpha / beta after the update
        moved = (new_t > 0) & (new_t < np.inf)  # otherwise t under- or overflowed on its way to a boundary
        t[idx[moved]] = new_t[moved]
        converged = moved & (np.abs(new_t - ta) <= _LOGME_TOL * ta)
        active[idx[~moved | converged]] = False
    ends = [_profile_log_evidence(t, x2, outside, sigma, n),
            _profile_log_evidence(np.full_like(t, np.inf), x2, outside, sigma, n)]
    spans = rank == n
    if spans.any():  # t → 0: only where F spans all n samples
        zero = np.full_like(t, -np.inf)
        zero[spans] = _profile_log_evidence(np.zeros(int(spans.sum())), x2[:, spans], outside[spans],
                                            sigma[:, spans], n)
        ends.append(zero)
    return np.max(ends, axis=0)


def _profile_log_evidence(t: np.ndarray, x2: np.ndarray, outside: np.ndarray, sigma: np.ndarray,
                          n: int) -> np.ndarray:
    """``max over beta of log p(y | F, alpha = t beta, beta)`` per column (m,), also at t = 0
    (only for columns whose F spans all n samples) and ∞; ``x2``, ``sigma`` (R, m) as in
    :func:`_max_log_evidence` (0 past a column's rank: those rows add no term).

    With ``Q(t) = Σ x2 t / (t + sigma) + outside = beta yᵀ(I/beta + FFᵀ/alpha)⁻¹y``, the best
    beta is ``n / Q`` and the evidence ``−1/2 [Σ log(1 + sigma/t) + n log(Q/n) + n (1 + log 2π)]``.
    """
    logdet, q = np.empty_like(t), np.empty_like(t)
    inf, zero = t == np.inf, t == 0
    mid = ~(inf | zero)
    logdet[inf], q[inf] = 0.0, x2[:, inf].sum(axis=0) + outside[inf]
    sz, positive = sigma[:, zero], sigma[:, zero] > 0
    with np.errstate(divide="ignore", invalid="ignore"):  # the n log t terms cancel
        logdet[zero] = np.sum(np.where(positive, np.log(sz), 0.0), axis=0)
        q[zero] = np.sum(np.where(positive, x2[:, zero] / sz, 0.0), axis=0)
    tm, sm = t[mid], sigma[:, mid]
    logdet[mid] = np.sum(np.log1p(sm / tm), axis=0)
    q[mid] = np.sum(x2[:, mid] * tm / (tm + sm), axis=0) + outside[mid]
    return -(logdet + n * np.log(q / n) + n * (1 + np.log(2 * np.pi))) / 2


# ----------------------------------------------------------------------------- linear MSE
def linear_mse(features, targets, alpha: float = 1.0) -> float:
    """Minus the leave-one-out mean squared error of a ridge regression of the targets on the
    features: the linear MSE transferability estimator for regression (Nguyen et al., "A Simple
    Yet Effective Transferability Estimator for Regression Tasks", UAI 2023), with a ridge
    penalty and an exact leave-one-out error in place of a held-out split (deterministic).

    The model is ``y ≈ b + F w`` with an unpenalised intercept b and penalty ``alpha ‖w‖²``
    (scikit-learn's ``Ridge(alpha, fit_intercept=True)``). Leave-one-out residuals come from the
    closed form ``(y_i − ŷ_i) / (1 − H_ii)``, H the hat matrix of the fit on all n samples,
    which equals refitting without sample i. Each target column is standardised (mean 0,
    population standard deviation 1, over all n samples) first, so the score is unit-free and
    comparable between tasks: 0 would be a perfect fit, about −1 no better than the mean.

    Args:
        features: (n, d) float, used as given (``alpha`` is in the squared units of the
            features: scale matters).
        targets: (n,) or (n, k) real targets; the MSE is averaged over samples and columns.
        alpha: the ridge penalty, a finite number > 0.

    Returns:
        Minus the leave-one-out MSE in units of the targets' variance: higher is better.

    Raises:
        InputError: bad input (see the module), ``alpha`` not > 0, or a constant target column.
    """
    return float(linear_mse_table([features], [targets], alpha)[0, 0])


def linear_mse_table(features: Sequence, targets: Sequence, alpha: float = 1.0) -> np.ndarray:
    """:func:`linear_mse` of each of K models' features for each of T target sets: (K, T).

    Args:
        features: K arrays (n, d_k), the same n samples.
        targets: T arrays (n,) or (n, k_t) of real targets on those samples.
        alpha: the ridge penalty, as for :func:`linear_mse`.

    Returns:
        float64 (K, T): entry (k, t) is ``linear_mse(features[k], targets[t], alpha)``; each
        model's SVD (and so its hat matrix) is computed once for all T.
    """
    fs = _check_feature_sets(features)
    n = fs[0].shape[0]
    ys = [_standardise_targets(_check_labels(y, n, "regression", "targets"), "targets") for y in targets]
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (0 < alpha < np.inf):
        raise InputError(f"alpha must be a finite number > 0, got {alpha!r}")
    out = np.empty((len(fs), len(ys)))
    for k, f in enumerate(fs):
        u, s, _ = np.linalg.svd(f - f.mean(axis=0), full_matrices=False)
        shrink = s ** 2 / (s ** 2 + alpha)  # the ridge fit on the centred features, per direction
        leverage = 1 / n + (u ** 2) @ shrink  # H_ii, the intercept's 1/n included
        for t, y in enumerate(ys):
            fitted = u @ (shrink[:, None] * (u.T @ y))  # + the mean of y, which is 0
            loo_residuals = (y - fitted) / (1 - leverage)[:, None]
            out[k, t] = -np.mean(loo_residuals ** 2)
    return out


# ----------------------------------------------------------------------------- k-NN
def knn(features, labels, k: int = 5, *, kind: str) -> float:
    """Leave-one-out k-nearest-neighbour score of the features for the labels.

    Features are standardised per column (mean 0, population standard deviation 1, over all n
    samples; a constant column is left at 0 and so ignored); each sample's k nearest other
    samples by Euclidean distance predict its label: by majority vote (classification) or by
    their mean (regression). Ties are broken deterministically: among equally distant samples
    the one with the lower index is nearer; among equally voted classes the smallest label
    wins (scikit-learn's ``KNeighborsClassifier`` does the same for votes).

    Args:
        features: (n, d) float.
        labels: ``kind="classification"``: (n,) integer class labels.
            ``kind="regression"``: (n,) or (n, c) real targets, each column standardised as in
            :func:`linear_mse` (mean 0, population standard deviation 1).
        k: neighbours per sample, an integer from 1 to n − 1.
        kind: ``"classification"`` or ``"regression"``.

    Returns:
        Classification: the leave-one-out accuracy, a fraction in [0, 1]. Regression: minus
        the leave-one-out MSE of the neighbours' mean, in units of the targets' variance,
        averaged over samples and columns. Higher is better either way.

    Raises:
        InputError: bad input (see the module), ``k`` not an integer from 1 to n − 1, or a
            constant regression target column.
    """
    return float(knn_table([features], [(labels, kind)], k)[0, 0])


def knn_table(features: Sequence, labels: Sequence, k: int = 5) -> np.ndarray:
    """:func:`knn` of each of K models' features for each of T label sets: (K, T).

    Args:
        features: K arrays (n, d_k), the same n samples.
        labels: T pairs ``(labels, kind)`` as :func:`knn` takes them, on those samples.
        k: neighbours per sample, an integer from 1 to n − 1.

    Returns:
        float64 (K, T): entry (k, t) is ``knn(features[k], *labels[t], k=k)``; each model's
        neighbours are found once for all T.
    """
    fs = _check_feature_sets(features)
    n = fs[0].shape[0]
    ys = []
    for y, kind in labels:
        kind = _check_kind(kind)
        ys.append((_check_labels(y, n, kind), kind))
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k < n:
        raise InputError(f"k must be an integer from 1 to n - 1 = {n - 1}, got {k!r}")
    ys = [(np.unique(y, return_inverse=True), kind) if kind == "classification" else
          (_standardise_targets(y, "labels"), kind) for y, kind in ys]
    out = np.empty((len(fs), len(ys)))
    for m, f in enumerate(fs):
        std = f.std(axis=0)
        z = (f - f.mean(axis=0)) / np.where(std > 0, std, 1.0)
        dist = cdist(z, z, "sqeuclidean")
        np.fill_diagonal(dist, np.inf)  # leave each sample out of its own neighbours
        neighbours = np.argsort(dist, axis=1, kind="stable")[:, :k]  # (n, k); ties: lower index first
        for t, (y, kind) in enumerate(ys):
            if kind == "classification":
                classes, codes = y
                votes = np.bincount((np.arange(n)[:, None] * classes.size + codes[neighbours]).ravel(),
                                    minlength=n * classes.size).reshape(n, classes.size)
                out[m, t] = np.mean(np.argmax(votes, axis=1) == codes)  # argmax: the smallest label
            else:
                out[m, t] = -np.mean((y[neighbours].mean(axis=1) - y) ** 2)
    return out


#: The estimators by name (each: higher is better).
ESTIMATORS = {"logme": logme, "linear_mse": linear_mse, "knn": knn}
