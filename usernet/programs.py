"""The external programs usernet's demo, tests and benchmarks run, and the Debian package of each.

This is the one list: `setup.sh` installs the packages it names (run as root on a
Debian-family system) or prints them for the user to install, the demo names the
package of a program it cannot find, and the tests' `require()` fails naming it.
It imports nothing but the standard library, so `setup.sh` can run it with any
`python3` before usernet is installed (`python3 usernet/programs.py packages`).
"""

from __future__ import annotations

import shutil
import sys

#: program -> the Debian package that installs it.
PROGRAMS: dict[str, str] = {
    "ip": "iproute2",
    "ping": "iputils-ping",
    "arping": "arping",
    "nft": "nftables",
    "tshark": "tshark",
    "nc": "netcat-openbsd",
    "socat": "socat",
    "memcached": "memcached",
    "redis-server": "redis-server",
    "curl": "curl",
    "openssl": "openssl",
    "wrk": "wrk",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "setpriv": "util-linux",
    "cc": "gcc",  # builds the C core at install time, and the TAP capacity benchmark's programs
    "dnsmasq": "dnsmasq",
    "nstat": "iproute2",
}


class MissingProgram(RuntimeError):
    """An external program usernet needs is not installed; the message names its package."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.package = PROGRAMS.get(program, program)
        super().__init__(
            f"`{program}` is not installed: install the Debian package {self.package} "
            f"(apt-get install {self.package}, or run ./setup.sh as root)"
        )


def find(program: str) -> str:
    """The path of `program`, or MissingProgram naming the package to install."""
    path = shutil.which(program)
    if path is None:
        raise MissingProgram(program)
    return path


def missing() -> list[str]:
    """The programs of the list that are not on PATH."""
    return [program for program in PROGRAMS if shutil.which(program) is None]


def packages() -> list[str]:
    """The Debian packages of the list, each once, in order."""
    return list(dict.fromkeys(PROGRAMS.values()))


def main(argv: list[str]) -> int:
    """`packages`: every package, one per line; `missing`: the packages of programs not on PATH."""
    if argv in (["packages"], ["missing"]):
        # One line per package and none when there is none: setup.sh reads lines (mapfile).
        names = packages() if argv == ["packages"] else list(dict.fromkeys(PROGRAMS[p] for p in missing()))
        for name in names:
            print(name)
        return 0
    print("usage: python3 usernet/programs.py packages|missing", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
