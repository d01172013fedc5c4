import numpy as np
import pytest

from modelgif.field.quadrature import RULES, nodes_and_weights


@pytest.mark.parametrize("method", RULES)
@pytest.mark.parametrize("s", [2, 3, 7, 50])
def test_weights_sum_to_one_and_nodes_in_unit_interval(method, s):
    a, w = nodes_and_weights(method, s)
    assert a.shape == w.shape == (s,)
    assert abs(w.sum() - 1.0) < 1e-13
    assert np.all((a >= 0) & (a <= 1)) and np.all(np.diff(a) > 0)


@pytest.mark.parametrize("s", [1, 2, 5, 20])
def test_gauss_legendre_exact_up_to_degree_2s_minus_1(s):
    a, w = nodes_and_weights("gausslegendre", s)
    for degree in range(2 * s):
        # ∫₀¹ α^d dα = 1 / (d + 1)
        assert abs(np.sum(w * a**degree) - 1.0 / (degree + 1)) < 1e-12
    # ... and not beyond: degree 2S has an error (too small to see for large S)
    if s <= 5:
        assert abs(np.sum(w * a ** (2 * s)) - 1.0 / (2 * s + 1)) > 1e-8


def test_riemann_nodes_match_design():
    s = 4
    assert np.allclose(nodes_and_weights("riemann_left", s)[0], [0, 0.25, 0.5, 0.75])
    assert np.allclose(nodes_and_weights("riemann_right", s)[0], [0.25, 0.5, 0.75, 1])
    assert np.allclose(nodes_and_weights("riemann_middle", s)[0], [0.125, 0.375, 0.625, 0.875])
    a, w = nodes_and_weights("riemann_trapezoid", s)
    assert np.allclose(a, [0, 1 / 3, 2 / 3, 1]) and np.allclose(w, [1 / 6, 1 / 3, 1 / 3, 1 / 6])


def test_trapezoid_integrates_linear_functions_exactly():
    a, w = nodes_and_weights("riemann_trapezoid", 5)
    assert abs(np.sum(w * (3 * a + 2)) - 3.5) < 1e-14


@pytest.mark.parametrize("bad", ["simpson", "", "Gausslegendre"])
def test_unknown_method_lists_valid_ones(bad):
    with pytest.raises(ValueError, match="gausslegendre, riemann_left"):
        nodes_and_weights(bad, 5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_step_count(bad):
    with pytest.raises(ValueError, match="n_steps"):
        nodes_and_weights("riemann_left", bad)


def test_old_names_keep_working_for_one_release_with_a_warning():
    """Issue 21.5: the quadrature rules are RULES (``METHODS`` named the distance methods too);
    ``affinity_matrix`` is ``distance_matrix``. The old names give the same, and warn."""
    import numpy as np

    import modelgif
    import modelgif.field.quadrature as q

    with pytest.warns(DeprecationWarning, match="modelgif.field.quadrature.METHODS is deprecated.*use modelgif.field.quadrature.RULES"):
        assert q.METHODS == RULES
    with pytest.warns(DeprecationWarning, match="modelgif.METHODS is deprecated.*modelgif.RULES"):
        assert modelgif.METHODS == modelgif.RULES == RULES
    fields = [np.random.default_rng(k).normal(size=(3, 2, 5)) for k in range(3)]
    with pytest.warns(DeprecationWarning, match="modelgif.affinity_matrix is deprecated.*modelgif.distance_matrix"):
        old = modelgif.affinity_matrix(fields)
    assert np.array_equal(old, modelgif.distance_matrix(fields))
