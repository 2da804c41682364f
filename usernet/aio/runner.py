"""Entry points: `usernet.run`, `usernet.loop_factory`, `install`, and `python -m usernet`.

`run` and `loop_factory` are for programs that know about usernet. `install` is for
programs that do not: it makes every way of creating a loop produce a usernet loop —
the policy (`asyncio.run`, `asyncio.new_event_loop`), `asyncio.SelectorEventLoop`, and
`uvloop.Loop` (which `uvloop.new_event_loop`, `uvloop.run` and uvicorn construct
without consulting any policy). `python -m usernet script.py` calls it and runs the
script; `usernet run -- command` gets it called by a `sitecustomize` in the child.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import runpy
import socket
import sys
import warnings
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from usernet.aio import shared
from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.aio.sockets import bind_anywhere
from usernet.drivers.config import LoopKind, UsernetConfig, add_arguments
from usernet.drivers.host import Host

if TYPE_CHECKING:
    from usernet.aio.uv import UsernetUvloop

__all__ = ["BOOT_DIR", "install", "loop_factory", "main", "run"]

T = TypeVar("T")

#: The directory `usernet run` puts first on PYTHONPATH: its sitecustomize calls `install()`.
BOOT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot")


def _loop_class(kind: LoopKind) -> type[UsernetSelectorEventLoop | UsernetUvloop]:
    if kind == "uvloop":
        from usernet.aio.uv import UsernetUvloop

        return UsernetUvloop
    return UsernetSelectorEventLoop


def loop_factory(
    config: UsernetConfig | None = None, *, host: Host | None = None, **options: Any
) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory for `asyncio.run(..., loop_factory=...)` (3.12+) and `asyncio.Runner(loop_factory=...)`.

    `options` are UsernetConfig fields (`tap="usernet1", address="192.0.2.2/24",
    loop="uvloop", only=True`...), over USERNET_* variables, over the defaults; or pass
    a whole `config`. Each loop opens its own link on first use and closes it with
    itself. `host=` drives an existing Host instead (not closed by the loop). With no
    arguments at all, loops use the stack `python -m usernet` installed, if any.
    """
    if options:
        config = config.replace(**options) if config is not None else UsernetConfig.from_env(**options)

    def factory() -> asyncio.AbstractEventLoop:
        chosen = config
        if chosen is None:
            installed = shared.current()
            chosen = installed.config if installed is not None else UsernetConfig.from_env()
        return _loop_class(chosen.loop)(config=config, host=host)

    return factory


def run(
    main: Coroutine[Any, Any, T],
    *,
    debug: bool | None = None,
    config: UsernetConfig | None = None,
    host: Host | None = None,
    **options: Any,
) -> T:
    """Like `asyncio.run(main)`, on a usernet loop built from `config`/`options` (see `loop_factory`)."""
    with asyncio.Runner(debug=debug, loop_factory=loop_factory(config, host=host, **options)) as runner:
        return runner.run(main)


def install(config: UsernetConfig | None = None) -> None:
    """Make loops created anywhere in this process usernet loops sharing one stack from `config`.

    `config` defaults to USERNET_* variables. Code that asks for uvloop gets usernet's
    uvloop; code that asks for no loop in particular gets `config.loop`.
    """
    from usernet.aio.policy import EventLoopPolicy

    config = config if config is not None else UsernetConfig.from_env()
    shared.install(config)
    socket.socket = bind_anywhere([str(a.ip) for a in config.addresses])  # type: ignore[misc]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # policies are deprecated from 3.14
        asyncio.set_event_loop_policy(EventLoopPolicy())
    asyncio.SelectorEventLoop = UsernetSelectorEventLoop
    try:
        import uvloop
    except ImportError:
        return
    from usernet.aio.uv import UsernetUvloop

    uvloop.Loop = UsernetUvloop  # type: ignore[misc]  # uvloop.Loop is a class to mypy: replacing it is the point


_PROG = "python -m usernet"


def _split(argv: Sequence[str], valued: set[str]) -> tuple[list[str], str | None, list[str]]:
    """(usernet options, module or None, [script, args...] or module args): options stop at the program."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return list(argv[:i]), None, list(argv[i + 1 :])
        if token == "-m":
            if i + 1 >= len(argv):
                break
            return list(argv[:i]), argv[i + 1], list(argv[i + 2 :])
        if not token.startswith("-"):
            return list(argv[:i]), None, list(argv[i:])
        i += 2 if token in valued else 1
    return list(argv), None, []


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m usernet [options] script.py [args]` or `python -m usernet [options] -m module [args]`."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        usage=f"{_PROG} [options] (script.py | -m module) [args ...]",
        description="Run an unmodified asyncio program on usernet: every event loop it creates "
        "(asyncio, uvloop) is a usernet loop.",
    )
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    valued = {flag for action in parser._actions if action.nargs is None for flag in action.option_strings}
    options, module, rest = _split(argv, valued)
    args = parser.parse_args(options)
    if module is None and not rest:
        parser.error("give the program to run: a script path, or -m module")
    config = UsernetConfig.from_args(args)
    if config.supervises:  # each worker runs this same command line, on its own queue
        from usernet.drivers.workers import supervise

        try:
            return supervise(config, [sys.executable, "-m", "usernet", *argv], os.environ)
        except OSError as exc:  # the TAP's queues could not be opened: the message says why
            print(f"{_PROG}: {exc.strerror or exc}", file=sys.stderr)
            return 77 if isinstance(exc, PermissionError) else 1
    install(config)
    if module is not None:
        problem = _unrunnable_module(module)
        if problem is not None:
            print(f"{_PROG}: {problem}", file=sys.stderr)
            return 1
        sys.argv = [module, *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = rest[0]
        if not os.path.exists(script):
            print(
                f"{_PROG}: can't open file {os.path.abspath(script)!r}: [Errno 2] No such file or directory",
                file=sys.stderr,
            )
            return 2
        sys.argv = rest
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")
    return 0


def _unrunnable_module(module: str) -> str | None:
    """Why `-m module` cannot run, in `python -m`'s words (one line, no traceback), or None if it can.

    Checked before running it, so that an ImportError the module itself raises while it
    runs keeps its traceback.
    """
    try:
        spec = importlib.util.find_spec(module)
        package = spec is not None and spec.submodule_search_locations is not None  # runs its __main__
        if package and importlib.util.find_spec(f"{module}.__main__") is None:
            return f"No module named {module}.__main__; {module!r} is a package and cannot be directly executed"
    except (ImportError, ValueError) as exc:  # a parent package missing, an empty or relative name
        return f"Error while finding module specification for {module!r} ({type(exc).__name__}: {exc})"
    return f"No module named {module}" if spec is None else None
