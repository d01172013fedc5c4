"""Quadrature rules on [0, 1] for the straight-line path of a gradient field.

Kept apart from the method that uses them, as in captum's ``approximation_methods``.
Every rule returns nodes ``alphas`` (the path coordinate α ∈ [0, 1]) and weights ``w``
with ``sum(w) == 1``, so that ``∫₀¹ g(α) dα ≈ Σ_k w_k g(α_k)`` (docs/METHOD.md, step 4).

Note: captum's ``riemann_trapezoid`` weights sum to (S−1)/S; ours sum to 1.
"""

from __future__ import annotations

import numpy as np

#: The quadrature rules, by name (``field.method`` in params.yaml).
RULES = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


def check_method(method: str) -> str:
    """Return ``method`` if it names a rule, else raise ``ValueError`` listing the valid ones."""
    if method not in RULES:
        raise ValueError(f"unknown quadrature method {method!r}; valid methods: {', '.join(RULES)}")
    return method


def check_n_steps(n_steps, method: str = "gausslegendre") -> int:
    """``n_steps`` (S) as an int if ``method`` has a rule with S nodes: S ≥ 1, and S ≥ 2 for
    ``riemann_trapezoid``; else ``ValueError`` naming the problem. Checks ``method`` too."""
    check_method(method)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if method == "riemann_trapezoid" and n_steps < 2:
        raise ValueError(f"riemann_trapezoid needs n_steps >= 2, got {n_steps!r}")
    return int(n_steps)


def nodes_and_weights(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of a quadrature rule on [0, 1].

    Args:
        method: one of :data:`RULES`.
        n_steps: S, the number of nodes (≥ 1; ≥ 2 for ``riemann_trapezoid``).

    Returns:
        ``(alphas, weights)``, two float64 arrays of shape (S,), alphas increasing,
        weights summing to 1.
    """
    s = check_n_steps(n_steps, method)
    k = np.arange(s, dtype=np.float64)
    if method == "gausslegendre":
        xi, omega = np.polynomial.legendre.leggauss(s)
        return (1.0 + xi) / 2.0, omega / 2.0
    if method == "riemann_trapezoid":
        w = np.full(s, 1.0 / (s - 1))
        w[[0, -1]] /= 2.0
        return k / (s - 1), w
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (k + offset) / s, np.full(s, 1.0 / s)


def __getattr__(name: str):
    if name == "METHODS":  # deprecated (0.2): the rules were called methods, like the distance methods
        from .._deprecated import warn

        warn("modelgif.field.quadrature.METHODS", "modelgif.field.quadrature.RULES")
        return RULES
    raise AttributeError(f"module 'modelgif.field.quadrature' has no attribute {name!r}")
