"""The folder tree is the architecture: imports only go down the layers, and no module imports itself back.

    core → nn / envs / data → rewards / rl / policies → algorithms (and evaluation, stats) → presets →
    train (loop, specs, sweep) → analysis / video → cli

Every ``import`` of an ``imitation_fn`` module counts, also those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "imitation_fn"
LAYERS = {
    "core": 0,
    "nn": 1,
    "envs": 1,
    "data": 1,
    "rewards": 2,
    "rl": 2,
    "policies": 2,
    "algorithms": 3,
    "evaluation": 3,
    "evaluation_gym": 3,
    "stats": 3,
    "presets": 4,
    "train": 5,
    "analysis": 6,
    "video": 6,
    "cli": 7,
}


def _modules() -> dict[str, set[str]]:
    """``{module: the imitation_fn modules it imports}`` (``from pkg import name`` counts ``pkg.name`` if a module)."""
    files = {
        ".".join(("imitation_fn", *f.relative_to(PACKAGE).with_suffix("").parts)): f for f in PACKAGE.rglob("*.py")
    }
    files = {name.removesuffix(".__init__"): f for name, f in files.items()}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("imitation_fn"):
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in files)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("imitation_fn"))
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_top_level_module_has_a_layer() -> None:
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    tops -= {"__init__", "__pycache__", "py"}
    assert tops <= set(LAYERS), f"give these a layer: {sorted(tops - set(LAYERS))}"


def test_imports_only_go_down() -> None:
    upward = [
        f"{a} imports {b}"
        for a, targets in _modules().items()
        for b in targets
        if (la := _layer(a)) is not None and (lb := _layer(b)) is not None and lb > la
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _modules()
    # A package's __init__ re-exports its children: an edge package -> child is not a dependency back.
    edges = {a: {b for b in bs if not b.startswith(a + ".")} for a, bs in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
