"""The import graph of the package: no cycles, and no module imports a layer above its own.

The layers are the architecture in the README: a module may use its own layer and those
below it. The graph is read from the source with ``ast`` (imports inside functions count,
a lazy import is still a dependency), so the check needs no import of the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import autotranscode

PACKAGE = Path(autotranscode.__file__).parent

#: Lowest first. A module name matches the longest entry that is it or its package.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "text", "procs", "files", "db", "keys", "stages", "hours"),
    ("media", "story", "journal", "filelog"),
    ("messages", "settings", "outbox", "sidecars"),
    ("backends",),
    ("engines",),
    (
        *("pipeline", "listener", "scheduler", "identity", "jobs", "sources", "outcomes"),
        *("recovery", "watcher", "progress", "deploy", "status", "notify", "waiting"),
        *("delivery", "inventory", "library", "plan", "parts"),
    ),
    ("service",),
    ("cli", "web", "__main__"),
]


def layer_of(module: str) -> int | None:
    parts = module.split(".")[1:]  # without "autotranscode"
    if not parts:
        return None  # the package's own __init__: version only
    for depth in range(len(parts), 0, -1):
        name = ".".join(parts[:depth])
        for level, names in enumerate(LAYERS):
            if name in names:
                return level
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package's modules that ``name`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names]
            targets = [m for m in submodules if m in known] or [module]
        else:
            continue
        for target in targets:
            if target in known and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports(name, path, known)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in modules() if m != "autotranscode" and layer_of(m) is None]
    assert not unplaced, f"add these modules to a layer in {__name__}.LAYERS: {unplaced}"


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for module, targets in graph().items():
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{module} (layer {here}) imports {target} (layer {there})")
    assert not upward, "\n".join(upward)


#: "About 600": a module past this holds more than one thing; split it, do not trim it.
MAX_LINES = 630


def test_no_module_is_over_about_600_lines() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules: {long}"


def test_every_folder_says_what_lives_in_it() -> None:
    silent = [
        str(init.relative_to(PACKAGE))
        for init in PACKAGE.rglob("__init__.py")
        if ast.get_docstring(ast.parse(init.read_text())) is None
    ]
    assert not silent, f"give these a docstring: {silent}"


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(
    edges: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert cycles(edges) == expected


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    edges = graph()
    assert "autotranscode.errors" in edges["autotranscode.journal"]
    assert "autotranscode.media.probe" in edges["autotranscode.messages"]
