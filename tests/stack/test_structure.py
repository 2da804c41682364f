"""The engine's structure, checked from its source: no import circle, no reaching into others' private fields.

Every `import` in usernet/stack counts, also those inside functions and `if TYPE_CHECKING:`
blocks: a circle that only type checkers follow is still a circle for the next engineer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import usernet.stack

STACK = Path(usernet.stack.__file__).parent
PACKAGE = "usernet.stack"


def module_name(path: Path) -> str:
    parts = path.relative_to(STACK.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(STACK.rglob("*.py"))}


def packages() -> set[str]:
    return {module_name(p) for p in STACK.rglob("__init__.py")}


def stack_imports(name: str, tree: ast.Module, modules: set[str]) -> set[str]:
    """The usernet.stack modules `name` imports anywhere in its source."""
    found: set[str] = set()
    # What a relative import is relative to: a package itself, a module's package.
    anchor = name.split(".") if name in packages() else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            # `from package import module` imports the module; `from module import name` the module.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    trees = sources()
    modules = set(trees)
    return {name: stack_imports(name, tree, modules) for name, tree in trees.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_the_imports_it_must() -> None:
    graph = import_graph()
    assert "usernet.stack.tcp.layer" in graph["usernet.stack.interface"]
    assert "usernet.stack.tcp.connection" in graph["usernet.stack.tcp.layer"]
    assert "usernet.stack.tcp.core" in graph["usernet.stack.tcp.output"]


def test_no_module_in_the_stack_imports_one_that_imports_it_back() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle in usernet/stack: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_reads_of_other_objects_private_fields() -> None:
    """`x._field` only on `self`: what one object needs from another is a method or a public attribute."""
    offenders = []
    for name, tree in sources().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                offenders.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
