"""Old names kept for one release (until 0.2), each with a ``DeprecationWarning`` naming its
replacement (issue 21.5: names that said what they are not)."""

from __future__ import annotations

import functools
import warnings

#: The release that removes the old names.
REMOVED_IN = "0.2"


def warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and will be removed in modelgif {REMOVED_IN}; use {new}",
                  DeprecationWarning, stacklevel=3)


def renamed(function, old: str, new: str):
    """``function`` under its old name ``old``: the same call, with a warning naming ``new``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        warn(old, new)
        return function(*args, **kwargs)

    wrapper.__doc__ = f"Deprecated: {old} is {new} (removed in modelgif {REMOVED_IN})."
    return wrapper
