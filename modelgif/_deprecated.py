"""Old names kept for one release (until 0.2), each with a ``DeprecationWarning`` naming its
replacement (issue 21.5: names that said what they are not, and the modules that moved into
the sub-packages by pipeline step)."""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import sys
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


#: Modules moved into the sub-packages by pipeline step (0.1.x → the layout of docs/library.md):
#: old dotted name → new. ``import modelgif.storage`` keeps working until 0.2, with a warning.
MOVED = {
    "modelgif.storage": "modelgif.io.storage", "modelgif._atomic": "modelgif.io.atomic",
    "modelgif.download": "modelgif.io.download", "modelgif.provenance": "modelgif.io.provenance",
    "modelgif.zoo_spec": "modelgif.zoo.spec", "modelgif.zoos": "modelgif.zoo.models",
    "modelgif.checkpoint": "modelgif.zoo.checkpoint", "modelgif.checkpoint_source": "modelgif.zoo.checkpoint_source",
    "modelgif.taskonomy": "modelgif.zoo.taskonomy", "modelgif.tasks": "modelgif.zoo.tasks",
    "modelgif.targets": "modelgif.field.targets", "modelgif.quadrature": "modelgif.field.quadrature",
    "modelgif.baselines": "modelgif.field.baselines", "modelgif.attribution": "modelgif.field.attribution",
    "modelgif.execution": "modelgif.field.execution", "modelgif.distributed": "modelgif.field.distributed",
    "modelgif.sketch": "modelgif.field.sketch",
    "modelgif.distance": "modelgif.compare.distance", "modelgif.similarity": "modelgif.compare.similarity",
    "modelgif.methods": "modelgif.compare.methods", "modelgif.registry": "modelgif.compare.registry",
    "modelgif.correlation": "modelgif.score.correlation", "modelgif.bootstrap": "modelgif.score.bootstrap",
    "modelgif.inference": "modelgif.score.inference", "modelgif.ground_truth": "modelgif.score.ground_truth",
    "modelgif.plots": "modelgif.score.plots",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a module of :data:`MOVED` under its old name: the module at its new place (the same
    object, so ``modelgif.storage is modelgif.io.storage``), with a ``DeprecationWarning``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        warnings.warn(f"module {spec.name} is deprecated and will be removed in modelgif {REMOVED_IN}; "
                      f"import {MOVED[spec.name]}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # already executed at its new place


def install_moved_modules() -> None:
    """Put :class:`MovedModules` on ``sys.meta_path`` once (after the path finders: a module
    that exists under a name is always found first)."""
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.append(MovedModules())
