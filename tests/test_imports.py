"""Imports point down only: no import cycle between packages, and no import that goes up the layering.

Every module of the ``judgeforge`` distribution is parsed with :mod:`ast` (imports at module level and
inside functions alike, ``TYPE_CHECKING`` blocks included) and mapped to its package: ``judgeforge.builders``,
``judgeforge.curation`` (with its subpackages), ... and each top-level shell module (``judgeforge.cli``,
``judgeforge.runs``, ...) as a node of its own. The layers are DESIGN.md's drawing
(``cli`` → ``train``/``curation``/``data_cards`` → ``builders`` → ``schemas`` → ``formats`` →
``engines``/``sources``/``verify``) with the shell modules placed in it; a package may import its own layer's
packages or lower ones, never a higher one, and the package graph must have no cycle.
"""

from __future__ import annotations

import ast
import importlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = "judgeforge"
PACKAGES = ("builders", "schemas", "formats", "curation", "train", "data_cards", "engines", "executors")

# Top to bottom. A node imports only nodes of its own layer or a lower one.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),  # click: parsing and printing
    ("publish",),  # the Hub: cards + upload
    ("train", "curation", "data_cards"),  # recipes, eval, loop, score; filters and review; cards
    ("options",),  # click options generated from typed configs; build options → BuildOptions
    ("executors",),  # running builders: local (Ray later); run_build
    ("builders",),
    ("runs",),  # run dirs, typed manifest, shards
    ("schemas",),
    ("formats",),
    ("engines", "sources", "verify", "plots"),
    ("models", "chat"),
    ("files", "errors", "console", ROOT),  # atomic writes and the clock; UserError; the rich console factory; __version__
)
LAYER = {node: depth for depth, layer in enumerate(LAYERS) for node in layer}


def _modules() -> dict[str, Path]:
    """Every module of the distribution, by dotted name (``judgeforge.curation.review.apply`` ...)."""
    found: dict[str, Path] = {}
    for package in (ROOT, *(f"{ROOT}.{p}" for p in PACKAGES)):
        (folder,) = importlib.import_module(package).__path__
        for path in sorted(Path(folder).rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if package == ROOT and parts[0] in PACKAGES:
                continue  # a subpackage that lives under judgeforge/ is walked as its own package
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def node_of(module: str) -> str:
    """The package node a module belongs to: ``judgeforge.curation.review.apply`` → ``curation``."""
    parts = module.split(".")
    assert parts[0] == ROOT, module
    return parts[1] if len(parts) > 1 else ROOT


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported judgeforge module, line) for every import statement of the module, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != ROOT:
                continue
            for name in dict.fromkeys(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names):
                yield name, node.lineno


def edges() -> dict[tuple[str, str], list[str]]:
    """(importer node, imported node) → where: ``module:line`` of every import between two nodes."""
    found: dict[tuple[str, str], list[str]] = {}
    for module, path in MODULES.items():
        for target, line in _imports(module, path):
            a, b = node_of(module), node_of(target)
            if a != b:
                found.setdefault((a, b), []).append(f"{module}:{line} imports {target}")
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_every_node_has_a_layer() -> None:
    unplaced = sorted({node_of(m) for m in MODULES} - set(LAYER))
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


def test_no_import_cycle_between_packages() -> None:
    found = edges()
    graph: dict[str, set[str]] = {}
    for a, b in found:
        graph.setdefault(a, set()).add(b)
    cycle = find_cycle(graph)
    if cycle:
        where = [w for a, b in itertools.pairwise(cycle) for w in found[(a, b)][:2]]
        pytest.fail(f"import cycle {' → '.join(cycle)}:\n  " + "\n  ".join(where))


def test_imports_point_down_only() -> None:
    upward = [
        f"{a} (layer {LAYER[a]}) → {b} (layer {LAYER[b]}): {w}"
        for (a, b), where in sorted(edges().items())
        if a in LAYER and b in LAYER and LAYER[b] < LAYER[a]
        for w in where
    ]
    assert not upward, "imports that go up the layering:\n  " + "\n  ".join(upward)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The parser itself: an import inside a function and a relative import are both found."""
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from judgeforge.cli import main\n\nfrom ..schemas import base\n")
    found = dict(_imports("judgeforge.builders.mod", path))
    assert found == {"judgeforge.cli": 2, "judgeforge.schemas.base": 4}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
