"""Transferability estimators against oracles written out here (LogME's fixed point on the
un-decomposed problem) or taken from scikit-learn (ridge and k-NN, refitted per left-out sample)."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from modelgif.errors import InputError
from modelgif.compare.estimators import ESTIMATORS, knn, knn_table, linear_mse, linear_mse_table, logme, logme_table


def _task(seed=0, n=60, d=8, k=2, noise=0.5):
    """Random features (n, d), targets linear in them plus noise (n, k), and 3 classes cut from
    the first target."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, d)) + rng.standard_normal(d)
    targets = features @ rng.standard_normal((d, k)) + noise * rng.standard_normal((n, k))
    classes = np.digitize(targets[:, 0], np.quantile(targets[:, 0], [1 / 3, 2 / 3]))
    return features, targets, classes


# ----------------------------------------------------------------------------- LogME
def _direct_log_evidence(f, y, tol=1e-13, max_iter=100_000):
    """The paper's fixed point on A = alpha I + beta FᵀF itself (no SVD), then its evidence."""
    n, d = f.shape
    ftf, fty = f.T @ f, f.T @ y
    eig = np.linalg.eigvalsh(ftf)
    alpha = beta = 1.0
    for _ in range(max_iter):
        a = alpha * np.eye(d) + beta * ftf
        m = beta * np.linalg.solve(a, fty)
        gamma = np.sum(beta * eig / (alpha + beta * eig))
        new_alpha, new_beta = gamma / (m @ m), (n - gamma) / np.sum((y - f @ m) ** 2)
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    else:
        raise AssertionError("the direct fixed point did not converge")
    a = alpha * np.eye(d) + beta * ftf
    m = beta * np.linalg.solve(a, fty)
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - np.linalg.slogdet(a)[1] / 2
                - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * (m @ m) - n / 2 * np.log(2 * np.pi))
    return evidence / n


def test_logme_regression_matches_direct_fixed_point():
    f, y, _ = _task()
    want = np.mean([_direct_log_evidence(f, y[:, j]) for j in range(y.shape[1])])
    assert logme(f, y, kind="regression") == pytest.approx(want, rel=1e-6)
    assert logme(f, y[:, 0], kind="regression") == pytest.approx(_direct_log_evidence(f, y[:, 0]), rel=1e-6)


def test_logme_classification_matches_direct_fixed_point():
    f, _, c = _task(seed=1)
    want = np.mean([_direct_log_evidence(f, (c == label).astype(float)) for label in range(3)])
    assert logme(f, c, kind="classification") == pytest.approx(want, rel=1e-6)
    assert logme(f, c + 10, kind="classification") == logme(f, c, kind="classification")  # label values


def test_logme_prefers_predictive_features():
    f, y, c = _task(seed=2, noise=0.2)
    rng = np.random.default_rng(3)
    random = rng.standard_normal(f.shape) + rng.standard_normal(f.shape[1])
    assert logme(f, y, kind="regression") > logme(random, y, kind="regression")
    assert logme(f, c, kind="classification") > logme(random, c, kind="classification")


def _profile_log_evidence(f, y, t):
    """max over beta of log N(y; 0, (I + FFᵀ/t) / beta), alpha = t beta, from the (n, n) covariance."""
    n = len(y)
    c = np.eye(n) + f @ f.T / t
    q = y @ np.linalg.solve(c, y)  # the best beta is n / q
    return -(np.linalg.slogdet(c)[1] + n * np.log(q / n) + n * (1 + np.log(2 * np.pi))) / 2


def test_logme_more_dimensions_than_samples():
    """n < d (the features fit any labels exactly): finite, and at least the evidence of every
    alpha / beta on a dense grid (its supremum may lie at a boundary, where the iteration cannot
    converge)."""
    rng = np.random.default_rng(4)
    f = rng.standard_normal((20, 40))
    c = (f[:, 0] + rng.standard_normal(20) > 0).astype(int)
    best = np.mean([max(_profile_log_evidence(f, (c == k).astype(float), t) for t in np.logspace(-8, 8, 321))
                    for k in (0, 1)]) / 20  # each class at its own best alpha / beta
    got = logme(f, c, kind="classification")
    assert np.isfinite(got) and best - 1e-9 <= got <= best + 1e-3


def test_logme_labels_outside_the_features_span_are_noise():
    """y orthogonal to every feature: the evidence is highest at alpha → ∞ (w = 0), where y is
    N(0, ‖y‖²/n I) noise."""
    rng = np.random.default_rng(5)
    f = rng.standard_normal((30, 4))
    y = rng.standard_normal(30)
    y -= f @ np.linalg.lstsq(f, y, rcond=None)[0]
    want = -(np.log(2 * np.pi * (y @ y) / 30) + 1) / 2
    assert logme(f, y, kind="regression") == pytest.approx(want, rel=1e-12)


# ----------------------------------------------------------------------------- linear MSE
@pytest.mark.parametrize("alpha", [1e-2, 1.0, 30.0])
def test_linear_mse_matches_sklearn_ridge_leave_one_out(alpha):
    f, y, _ = _task(seed=5, n=40, d=6)
    z = (y - y.mean(axis=0)) / y.std(axis=0)
    errors = []
    for i in range(len(f)):
        keep = np.arange(len(f)) != i
        fit = Ridge(alpha=alpha, fit_intercept=True, solver="svd").fit(f[keep], z[keep])
        errors.append((fit.predict(f[i:i + 1])[0] - z[i]) ** 2)
    assert linear_mse(f, y, alpha=alpha) == pytest.approx(-np.mean(errors), rel=1e-8)
    assert linear_mse(f, 3 * y[:, 0] + 7, alpha=alpha) == pytest.approx(-np.mean(np.array(errors)[:, 0]), rel=1e-8)


def test_linear_mse_more_dimensions_than_samples():
    f, y, _ = _task(seed=6, n=15, d=30)
    z = (y - y.mean(axis=0)) / y.std(axis=0)
    errors = [(Ridge(alpha=2.0).fit(np.delete(f, i, 0), np.delete(z, i, 0)).predict(f[i:i + 1])[0] - z[i]) ** 2
              for i in range(len(f))]
    assert linear_mse(f, y, alpha=2.0) == pytest.approx(-np.mean(errors), rel=1e-8)


# ----------------------------------------------------------------------------- k-NN
def _standardised(a):
    return (a - a.mean(axis=0)) / a.std(axis=0)


@pytest.mark.parametrize("k", [1, 4, 5])
def test_knn_classification_matches_sklearn_leave_one_out(k):
    f, _, c = _task(seed=7, n=50, d=5, noise=2.0)  # continuous features: no distance ties
    z = _standardised(f)
    hits = [KNeighborsClassifier(n_neighbors=k).fit(np.delete(z, i, 0), np.delete(c, i)).predict(z[i:i + 1])[0]
            == c[i] for i in range(len(z))]
    assert knn(f, c, k=k, kind="classification") == pytest.approx(np.mean(hits), abs=1e-15)


@pytest.mark.parametrize("k", [1, 5])
def test_knn_regression_matches_sklearn_leave_one_out(k):
    f, y, _ = _task(seed=8, n=50, d=5)
    z, t = _standardised(f), _standardised(y)
    errors = [(KNeighborsRegressor(n_neighbors=k).fit(np.delete(z, i, 0), np.delete(t, i, 0))
               .predict(z[i:i + 1])[0] - t[i]) ** 2 for i in range(len(z))]
    assert knn(f, y, k=k, kind="regression") == pytest.approx(-np.mean(errors), rel=1e-10)


def test_knn_ties_go_to_the_lower_index_and_the_smaller_label():
    f = np.array([[0.0], [1.0], [-1.0], [4.0], [-4.0]])  # sample 0 is as far from 1 as from 2
    # k = 1: 0 -> sample 1 (label 1, right), 1 -> 0 (right), 2 -> 0 (wrong), 3 -> 1 (wrong), 4 -> 2 (right)
    assert knn(f, [1, 1, 2, 2, 2], k=1, kind="classification") == pytest.approx(3 / 5)
    # k = 2, every sample predicts 3: samples 0, 2, 3 by a tied vote (one 3, one 5), 1 and 4 by two 3s
    assert knn(f, [3, 5, 3, 5, 3], k=2, kind="classification") == pytest.approx(3 / 5)


# ----------------------------------------------------------------------------- bad input
# ----------------------------------------------------------------------------- tables
def _models(n=20, seed=11):
    """Models of different width and rank on the same n samples: full rank d < n, rank 2 of
    d = 5 (repeated columns), d > n (spans every sample: LogME's t → 0 end), and one column."""
    rng = np.random.default_rng(seed)
    low = rng.standard_normal((n, 2)) @ rng.standard_normal((2, 5))
    return [rng.standard_normal((n, 4)), low, rng.standard_normal((n, n + 5)), rng.standard_normal((n, 1))]


def test_tables_are_the_one_pair_estimators():
    """Each table entry is the one-pair estimator on that (model, labels) pair (the one-pair
    functions are checked against the direct oracles above), for models whose ranks differ,
    so that LogME's fixed point runs columns of different ranks side by side."""
    f = _models()
    rng = np.random.default_rng(12)
    classes, targets = rng.integers(0, 3, 20), rng.standard_normal((20, 2))
    fit = f[0] @ rng.standard_normal((4, 1)) + 0.1 * rng.standard_normal((20, 1))  # an interior maximum
    labels = [(classes, "classification"), (targets, "regression"), (fit, "regression")]
    got = logme_table(f, labels)
    want = np.array([[logme(x, y, kind=kind) for y, kind in labels] for x in f])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert len(np.unique(got[:, 0].round(6))) == len(f)  # the classes score each model differently
    assert got[0, 2] > got[1:, 2].max() + 1  # the target made from model 0's features: model 0 far ahead
    got = linear_mse_table(f, [targets, fit], alpha=0.7)
    np.testing.assert_array_equal(got, [[linear_mse(x, y, 0.7) for y in (targets, fit)] for x in f])
    got = knn_table(f, labels, k=3)
    np.testing.assert_array_equal(got, [[knn(x, y, 3, kind=kind) for y, kind in labels] for x in f])


def test_tables_need_models_on_the_same_samples():
    f = _models()
    for call in (lambda fs: logme_table(fs, [(_C, "classification")]), lambda fs: linear_mse_table(fs, [_Y]),
                 lambda fs: knn_table(fs, [(_C, "classification")])):
        with pytest.raises(InputError, match="model 0 has n = 20, model 1 has n = 12"):
            call([f[0], _F])
        with pytest.raises(InputError, match="no features"):
            call([])


def test_registry():
    assert ESTIMATORS == {"logme": logme, "linear_mse": linear_mse, "knn": knn}


_F, _Y, _C = _task(seed=9, n=12, d=3)
_NAN_F = _F.copy()
_NAN_F[2, 1] = np.nan
_INF_Y = _Y.copy()
_INF_Y[0, 0] = np.inf


@pytest.mark.parametrize("call, match", [
    (lambda: logme(_NAN_F, _C, kind="classification"), "NaN or infinite"),
    (lambda: linear_mse(_NAN_F, _Y), "NaN or infinite"),
    (lambda: knn(_NAN_F, _C, kind="classification"), "NaN or infinite"),
    (lambda: logme(_F, _INF_Y, kind="regression"), "NaN or infinite"),
    (lambda: linear_mse(_F, _INF_Y), "NaN or infinite"),
    (lambda: knn(_F, np.where(_C == 0, np.nan, _C), kind="classification"), "NaN or infinite"),
    (lambda: logme(_F, _C[:-1], kind="classification"), "one entry per sample"),
    (lambda: linear_mse(_F, _Y[:-1]), "one entry per sample"),
    (lambda: knn(_F[:-1], _Y, kind="regression"), "one entry per sample"),
    (lambda: logme(_F[:1], _C[:1], kind="classification"), "at least 2 samples"),
    (lambda: linear_mse(_F[:1], _Y[:1]), "at least 2 samples"),
    (lambda: knn(_F[:1], _C[:1], k=1, kind="classification"), "at least 2 samples"),
    (lambda: knn(_F, _C, k=12, kind="classification"), "k must be an integer from 1 to n - 1 = 11"),
    (lambda: knn(_F, _C, k=0, kind="classification"), "k must be"),
    (lambda: knn(_F, _C, k=2.5, kind="classification"), "k must be"),
    (lambda: logme(_F, _C, kind="ranking"), "unknown kind 'ranking'"),
    (lambda: knn(_F, _C, kind="Classification"), "unknown kind"),
    (lambda: logme(_F, _Y[:, 0] + 0.5, kind="classification"), "must be integers"),
    (lambda: logme(_F, np.array(list("abcdefghijkl")), kind="classification"), "must be integers"),
    (lambda: logme(_F[:, 0], _C, kind="classification"), r"shape \(n, d\)"),
    (lambda: logme(_F, np.zeros(12), kind="regression"), "label column 0 is all zeros"),
    (lambda: linear_mse(_F, np.ones(12)), "constant"),
    (lambda: knn(_F, np.ones(12), kind="regression"), "constant"),
    (lambda: linear_mse(_F, _Y, alpha=0.0), "alpha must be a finite number > 0"),
    (lambda: linear_mse(_F, _Y, alpha=np.inf), "alpha must be"),
])
def test_bad_input_raises_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert isinstance(info.value, InputError)
