"""Names a package loads on first use (PEP 562), one helper for every ``__init__`` that has them.

A package declares ``_LAZY = {public name: submodule}`` (a dict literal, which
:mod:`modelgif._imports` reads to tell which file a stage's ``from package import name``
reaches) and binds ``__getattr__, __dir__ = attach(__name__, _LAZY)``: ``import package``
imports none of the submodules, and a name, once looked up, is cached in the package.
"""

from __future__ import annotations

import importlib
import sys


def attach(package: str, lazy: dict[str, str], renamed: dict[str, tuple[str, str]] | None = None):
    """``(__getattr__, __dir__)`` for the package named ``package``.

    ``lazy``: name → its submodule, relative to ``package`` (dotted: ``"field.gradients"``).
    ``renamed``: old name → ``(submodule, new name)``: the new object, with a
    ``DeprecationWarning`` on every use (not cached, so every use warns)."""
    renamed = renamed or {}

    def __getattr__(name: str):
        if name in renamed:
            from ._deprecated import warn

            module, new = renamed[name]
            warn(f"{package}.{name}", f"{package}.{new}")
            return getattr(importlib.import_module(f".{module}", package), new)
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(lazy))

    return __getattr__, __dir__
