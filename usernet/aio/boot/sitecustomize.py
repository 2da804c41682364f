"""Put this Python process on usernet before user code runs (`usernet run [options] -- command`).

Python imports `sitecustomize` at start-up, before the program imports asyncio or
uvloop. Settings come from the USERNET_* variables `usernet run` set. A
`sitecustomize` this one shadows (a tracer's, a distribution's) still runs afterwards.
If usernet cannot be installed the process stops: running the program on the kernel
instead would be a silent lie.
"""

import importlib.machinery
import importlib.util
import os
import sys
from typing import NoReturn


def _install() -> None:
    try:
        from usernet.aio.runner import install

        install()
    except ModuleNotFoundError as exc:
        if exc.name != "usernet":
            _stop(f"cannot put this program on usernet: {exc}")
        # A Python that is not the one usernet is installed in: `usernet run` said which that is.
        python = os.environ.get("USERNET_RUN_PYTHON", "the Python that runs `usernet`")
        _stop(
            f"{sys.executable} cannot import usernet, which is installed for {python}: run the program with "
            f"that interpreter (usernet run -- {python} script.py, or {python} -m module), or install usernet "
            f"into {sys.executable}'s environment"
        )
    except Exception as exc:
        _stop(f"cannot put this program on usernet: {exc}")


def _stop(message: str) -> NoReturn:
    sys.stderr.write(f"usernet run: {message}\n")
    sys.stderr.flush()
    os._exit(2)  # SystemExit here would be a "Fatal Python error" with a traceback of site.py


def _run_shadowed() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_install()
_run_shadowed()
