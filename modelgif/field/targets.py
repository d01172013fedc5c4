"""Targets: the scalar t(z) of a model's output whose input gradient makes the field.

A target is chosen once, at the end point x of the path, and held fixed along it
(docs/METHOD.md, step 3). It is represented as a 0/1 *selector* ``M`` with the shape of the model's
output, so that ``t(z) = Σ M ⊙ f(z)`` for every z on the path of x.

- ``1``: for each channel c, the spatial position p_c of its maximum in f(x).
- ``5``: for each spatial position p, the channel c_p of its maximum in f(x).
- ``6``: every output.

Ties are broken by the first index in row-major order (``torch.argmax``).
"""

from __future__ import annotations

import torch

TARGETS = (1, 5, 6)


def check_target(target) -> int:
    """Return ``target`` as an int if it is one of :data:`TARGETS`, else raise ``ValueError``."""
    try:
        value = int(target)
    except (TypeError, ValueError):
        value = None
    if value is None or value not in TARGETS or isinstance(target, bool) or str(target).strip() != str(value):
        raise ValueError(f"unknown target {target!r}; valid targets: {', '.join(map(str, TARGETS))}")
    return value


def target_selector(output: torch.Tensor, target: int) -> torch.Tensor:
    """The selector ``M`` of a target, from the outputs at the path end points.

    Args:
        output: f(x), shape (B, C, h, w) (any shape (B, C, ...) works).
        target: one of :data:`TARGETS`.

    Returns:
        ``M``, same shape, dtype and device as ``output``, entries 0 or 1.
    """
    target = check_target(target)
    if output.dim() < 3:
        raise ValueError(f"target {target} needs outputs of shape (B, C, h, w); got shape {tuple(output.shape)}")
    flat = output.detach().flatten(2)  # (B, C, P)
    sel = torch.zeros_like(flat)
    if target == 1:
        sel.scatter_(2, flat.argmax(dim=2, keepdim=True), 1.0)
    elif target == 5:
        sel.scatter_(1, flat.argmax(dim=1, keepdim=True), 1.0)
    else:
        sel.fill_(1.0)
    return sel.view_as(output)
