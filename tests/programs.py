"""The one way a test asks for an external program: `require("tshark")`.

It returns the program's path, or fails the test with one line naming the Debian
package to install (from usernet.programs, the list `setup.sh` installs). Tests never
skip for a missing program: a skip would hide that the machine is not set up.
"""

from __future__ import annotations

import pytest

from usernet.programs import MissingProgram, find


def require(program: str) -> str:
    """The path of `program`, or a one-line test failure naming the package that installs it."""
    try:
        return find(program)
    except MissingProgram as exc:
        pytest.fail(str(exc), pytrace=False)
