"""The layers, checked on the source: imports point down the stack only and form no circle,
counting the imports written inside functions.

The stack, lowest first (a package may import its own modules and any package of a lower
layer, never one of its own layer or above)::

    plumbing   errors, _redact, _quiet, _interrupts, _reachable
    trial      the vocabulary: space, records, recorder, seeds, keys
    networks   data
    config
    stats      engines
    tracking
    report
    backends
    study      the study verb (and load_study_dataset, which the other verbs reuse)
    verbs      bench, sweep, replay, export
    cli        cli, the package's __init__
    __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bnsearch"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("_redact", "_quiet", "_interrupts", "_reachable"),
    ("trial",),
    ("networks", "data"),
    ("config",),
    ("stats", "engines"),
    ("tracking",),
    ("report",),
    ("backends",),
    ("study",),
    ("bench", "sweep", "replay", "export"),
    ("cli", "__init__"),
    ("__main__",),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _part(path: Path) -> str:
    """The top-level part of bnsearch a source file belongs to (``backends``, ``study``...)."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _import_targets(path: Path) -> list[str]:
    """Every dotted name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``), at
    module level or inside functions."""
    targets = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            targets += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
    return targets


def _imported_parts(path: Path) -> set[str]:
    """Top-level parts of bnsearch that ``path`` imports."""
    found = set()
    for name in _import_targets(path):
        parts = name.split(".")
        if parts[0] == "bnsearch" and len(parts) > 1 and parts[1] in RANK:
            found.add(parts[1])
    return found


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        edges.setdefault(part, set()).update(_imported_parts(path) - {part})
    return edges


def test_every_part_of_the_package_has_a_layer():
    assert set(_edges()) <= set(RANK), set(_edges()) - set(RANK)


def test_imports_point_down_the_layers_only():
    upward = sorted(
        f"{part} (layer {RANK[part]}) imports {other} (layer {RANK[other]})"
        for part, others in _edges().items()
        for other in others
        if RANK[other] >= RANK[part]
    )
    assert upward == []


def _module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        out = graph.setdefault(name, set())
        for target in _import_targets(path):
            found = owner(target) if target.startswith("bnsearch.") else None
            # A module may import its own package (that is how siblings are reached).
            if found and found != name and not name.startswith(found + "."):
                out.add(found)
    return graph


def test_no_import_circle_between_modules():
    """Tarjan's strongly connected components over every import, functions' included."""
    graph, index, low, stack, on_stack, circles = _module_graph(), {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_top_level_holds_few_modules():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 13, modules
