"""Which source files a Python file imports, read from its code (``ast``), never run.

Two users: a zoo's code fingerprint (:func:`modelgif.zoo.models.zoo_code`: the files an architecture's
module reaches, whose sha256 the ``settings`` stage writes to ``data/settings/zoo.json``, the
dependency that stands for them in every stage that builds a model), and
``tests/test_stage_deps.py`` (every file a stage's script imports is among its DVC deps).

Every ``import`` statement counts, also those inside functions (a lazy import still runs when
that code path does), but not those under ``if TYPE_CHECKING:`` (annotations only); a name imported from a package whose ``__init__`` declares a lazy table
(``_LAZY = {name: submodule}``, PEP 562) counts as its submodule. A module given by a string
(``importlib.import_module("...")``) is not seen: that is how a zoo's code stays out of the
stages of other zoos, and why ``zoo.json`` fingerprints it instead.
"""

from __future__ import annotations

import ast
import functools
import os
from pathlib import Path


def _parse(path: Path) -> ast.Module:
    st = path.stat()
    return _parse_version(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=None)
def _parse_version(path: Path, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def lazy_table(init: Path) -> dict[str, str]:
    """The ``_LAZY`` dict literal of a package ``__init__.py`` (``{}`` where there is none)."""
    for node in _parse(init).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets):
                return {k: v for k, v in ast.literal_eval(node.value).items()}
    return {}


def _module_files(dotted: str, roots: tuple[Path, ...]) -> tuple[list[Path], Path | None]:
    """``(package __init__ files on the way, the module's file or None)`` of ``dotted`` under the
    first root that has its top package or module."""
    parts = dotted.split(".")
    for root in roots:
        top = root / parts[0]
        if not ((top / "__init__.py").is_file() or top.with_suffix(".py").is_file()):
            continue
        inits = [p for i in range(1, len(parts) + 1) if (p := root.joinpath(*parts[:i], "__init__.py")).is_file()]
        base = root.joinpath(*parts)
        file = base / "__init__.py" if (base / "__init__.py").is_file() else (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else None)
        return inits, file
    return [], None


def _package_of(path: Path, roots: tuple[Path, ...]) -> str:
    """Dotted package of the file ``path`` (for its relative imports): its folder under a root."""
    for root in roots:
        try:
            rel = path.parent.relative_to(root)
        except ValueError:
            continue
        return ".".join(rel.parts)
    return ""


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` but the bodies of ``if TYPE_CHECKING:`` (imports for type
    annotations only, which never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo += [node.test, *node.orelse]
            continue
        todo += list(ast.iter_child_nodes(node))


def imported_names(path: Path, roots: tuple[Path, ...]) -> set[str]:
    """Dotted names of every module ``path`` imports (``from m import n`` also tries ``m.n``)."""
    package = _package_of(path, roots)
    names: set[str] = set()
    for node in _runtime_nodes(_parse(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = parts[: len(parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            inits, file = _module_files(module, roots) if module else ([], None)
            lazy = lazy_table(file) if file is not None and file.name == "__init__.py" else {}
            for alias in node.names:
                names.add(f"{module}.{alias.name}")
                if alias.name in lazy:
                    names.add(f"{module}.{lazy[alias.name]}")
    return names


def imported_files(path: str | os.PathLike, roots) -> set[Path]:
    """Every file under ``roots`` that ``path`` imports, transitively (package ``__init__``
    files included, ``path`` itself excluded). ``roots``: folders on ``sys.path``, in order
    (a stage script's own folder first, then the project root)."""
    path, roots = Path(path).resolve(), tuple(Path(r).resolve() for r in roots)
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        for name in imported_names(current, roots):
            inits, file = _module_files(name, roots)
            for f in inits + ([file] if file else []):
                if f not in seen and f != path:
                    seen.add(f)
                    todo.append(f)
    return seen


def module_files(module: str, roots) -> set[Path]:
    """The file of the importable ``module`` (dotted) under ``roots`` and every file it imports
    there, transitively, package ``__init__`` files included; empty when no root has it."""
    roots = tuple(Path(r).resolve() for r in roots)
    inits, file = _module_files(module, roots)
    if file is None:
        return set()
    out = set(inits) | {file}
    for f in list(out):
        out |= imported_files(f, roots)
    return out
