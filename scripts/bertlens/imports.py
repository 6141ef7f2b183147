"""The modules a stage script reaches through its imports, followed transitively: its rule lists
them as the ``code`` input (``modules_of`` in rules/common.smk), so that editing a module reruns
exactly the rules whose scripts reach it (Snakemake's own code trigger watches only the script).

Read from the source with ``ast`` (nothing is imported), every import statement counted, those
inside functions included. A module counts when it lives under the scripts folder, where the
stage scripts find it (``bertlens`` and its package ``__init__``); everything else (the standard
library, torch, ...) is left out."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path


def reached_modules(script: str | Path) -> list[str]:
    """The files under the script's folder that ``script`` imports, directly or through them,
    sorted (absolute paths)."""
    script = Path(script).resolve()
    root = script.parent
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_names(todo.pop(), root):
            for path in module_files(name, root):
                if path not in seen:
                    seen.add(path)
                    todo.append(path)
    return sorted(str(p) for p in seen)


@cache
def imported_names(path: Path, root: Path) -> frozenset[str]:
    """Dotted names that ``path`` imports anywhere (``import a.b``: ``a.b``; ``from a import b``:
    ``a`` and ``a.b``, as ``b`` may be a module), relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path, root)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *filter(None, [base])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(n for n in names if n)


def module_files(name: str, root: Path) -> list[Path]:
    """The files under ``root`` that importing ``name`` runs: each package's ``__init__.py`` on
    the way, then the module itself; nothing for a name found elsewhere."""
    files = []
    base = root
    for part in name.split("."):
        base = base / part
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
            break
        else:
            break
    return files


def _package_of(path: Path, root: Path) -> tuple[str, ...]:
    """The dotted package of a file under ``root`` as parts (a package's ``__init__.py`` is in
    the package itself); () for a top-level script."""
    parts = path.relative_to(root).parts[:-1]
    return tuple(parts)
