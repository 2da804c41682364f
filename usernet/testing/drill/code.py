"""The Python snippets of `%{ }%` lines: TCP_INFO assertions, evaluated without `exec`.

packetdrill hands these to a Python interpreter with the socket's `tcp_info` fields bound
to `tcpi_*` names; Linux scripts use them almost only for `assert tcpi_snd_cwnd == 10`
and the like. Running script text with `exec` would give a script the whole interpreter,
so this evaluates the small subset those snippets use — assert, comparisons, arithmetic,
and/or/not, constants, the `tcpi_*` names, `print` — and reports anything else as a
snippet it cannot run (the runner then lists it as skipped, as before).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any


class Unsupported(Exception):
    """The snippet uses something outside the subset: a name, a statement, a call."""


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max, "int": int}


def run_code(code: str, names: dict[str, int]) -> str | None:
    """Run the snippet's statements; the first failing assert's message, or None."""
    try:
        tree = ast.parse(code.strip())
    except SyntaxError as exc:
        raise Unsupported(f"not Python: {exc.msg}") from exc
    for statement in tree.body:
        if isinstance(statement, ast.Assert):
            if not _value(statement.test, names):
                detail = f" ({_value(statement.msg, names)})" if statement.msg is not None else ""
                return f"assertion failed: {ast.unparse(statement.test)}{detail}; {_bound(statement.test, names)}"
        elif isinstance(statement, ast.Expr) and (call := _print_call(statement.value)) is not None:
            for arg in call.args:  # print(...) only shows values: check that they exist
                _value(arg, names)
        else:
            raise Unsupported(f"{type(statement).__name__.lower()} statements are not run")
    return None


def _print_call(node: ast.expr) -> ast.Call | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
        return node
    return None


def _bound(node: ast.expr, names: dict[str, int]) -> str:
    """The values of the names an expression read, for the failure message."""
    used = sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in names})
    return ", ".join(f"{name} = {names[name]}" for name in used)


def _value(node: ast.expr, names: dict[str, int]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise Unsupported(f"{node.id} is not a tcp_info field the runner reports")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_value(node.left, names), _value(node.right, names))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        operand = _value(node.operand, names)
        return -operand if isinstance(node.op, ast.USub) else not operand
    if isinstance(node, ast.BoolOp):
        values = (_value(v, names) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _value(node.left, names)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            compare = _COMPARE.get(type(op))
            if compare is None:
                raise Unsupported(f"the comparison {type(op).__name__} is not run")
            right = _value(right_node, names)
            if not compare(left, right):
                return False
            left = right
        return True
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_value(a, names) for a in node.args))
    raise Unsupported(f"{ast.unparse(node)} is not an expression the runner evaluates")


__all__ = ["Unsupported", "run_code"]
