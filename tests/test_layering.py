"""The architecture's layering, checked on the source: each package imports only those below it.

docs/architecture.md draws the layers; this test is what keeps the drawing true. It reads
every module's imports with `ast` (also those inside functions and under TYPE_CHECKING: a
lazy import is still a dependency) and fails on an import that goes up or sideways.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "usernet"

#: Each layer and the layers it may import (besides itself). `link` and `stack` do not know
#: each other; the drivers join them. Modules not listed (apps, tools, the CLI) sit at the top.
ALLOWED: dict[str, set[str]] = {
    "programs": set(),
    "interrupts": set(),  # Ctrl-C held or deferred: the sandbox (link) and the loop (aio) both need it
    "_native": set(),
    "native": {"_native"},
    "wire": {"_native", "native"},
    "stack": {"_native", "native", "wire"},
    "link": {"_native", "native", "wire", "programs", "interrupts"},
    "drivers": {"_native", "native", "wire", "stack", "link", "programs", "interrupts"},
    "aio": {"_native", "native", "wire", "stack", "link", "drivers", "programs", "interrupts"},
    "framing": set(),  # on any asyncio transport: it needs nothing of usernet
    "testing": {"_native", "native", "wire", "stack"},
    "sim": {"_native", "native", "wire", "stack", "link", "drivers", "programs", "interrupts", "aio"},
    "socket": {"_native", "native", "wire", "stack", "link", "drivers", "programs", "interrupts", "aio"},
}


def _layer(module: str) -> str:
    """`usernet.stack.tcp.layer` -> `stack`; `usernet` itself -> `usernet`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The usernet modules `path` imports, resolved (relative imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "usernet" or m.startswith("usernet.")}


def _violations() -> list[str]:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        own = _layer(_module_name(path))
        allowed = ALLOWED.get(own)
        if allowed is None:
            continue  # the top: CLI, apps, testing tools may import anything below
        for target in sorted(_imports(path)):
            layer = _layer(target)
            if layer in (own, "usernet") or layer in allowed:
                continue
            if layer not in ALLOWED and not (ROOT / layer).exists() and not (ROOT / f"{layer}.py").exists():
                continue  # `from usernet.x import name` where name is an attribute, not a module
            problems.append(f"{path.relative_to(ROOT.parent)} ({own}) imports {target} ({layer})")
    return problems


def test_each_layer_imports_only_those_below_it() -> None:
    assert _violations() == []


@pytest.mark.parametrize("module", ["usernet.wire.tcp", "usernet.stack.tcp.layer", "usernet.aio.loop"])
def test_the_reader_finds_imports(module: str) -> None:
    """The check would be vacuous if it found no imports: each of these imports something below it."""
    path = ROOT.parent / (module.replace(".", "/") + ".py")
    assert _imports(path)
