"""Instructions per round trip through the stack, counted by valgrind: UDP echo or TCP request/response.

Run `python -m benchmarks.count_engine {udp,rr} [--ipv6] [--small 500] [--large 2000]` (no
root, needs valgrind). It runs one of `engine_cpu`'s workloads (two Interfaces joined frame
by frame) under `callgrind` with `PYTHONHASHSEED=0` at two round counts and reports the
difference of the two totals divided by the difference of the counts: the interpreter's
start-up, the imports, the handshake and the first datagram's ARP (NDP) drop out, and what
is left is one round trip at both ends.

- `udp` (`engine_cpu.udp_echo`): the client's `sendto`, the server's `receive` and
  `recvfrom`, its `sendto` back, the client's `receive` and `recvfrom`: two datagrams, each
  sent once and received once; half of it is the figure per datagram.
- `rr` (`engine_cpu.request_response`): a 64-byte request and a 64-byte response on one
  established connection, with the flushes, polls and delayed ACKs `engine_cpu.step`
  drives between them: the established per-segment path of issue 16's item 1.
- `aio` (`aio_face.request_response`): the same round trip made by unchanged asyncio
  programs (a `start_server` echo, an `open_connection` client's write, drain and
  readexactly) on two simulated hosts in virtual time: the engine plus usernet's asyncio
  face (`usernet/aio`, `usernet/drivers`), asyncio itself and the simulated link. Less
  `rr`, it is what the face costs above the engine (issue 16's item 2).

Instruction counts, unlike CPU time, do not move with the load of a shared machine:
the figure to compare before and after a change to the per-packet path.

`--rounds N` runs the workload once, without valgrind (what the counted runs do).
`--bytecodes` (Python 3.12+, no valgrind) counts instead the bytecode instructions each
Python function executes per round trip, through `sys.monitoring`: where the Python that
the C path of issue 16's item 1 would replace is, function by function. For `aio` it
counts two runs (`--small` and `--large` round trips) and subtracts them, as the counted
runs do, since each run builds its network and connects afresh; it also splits the
total by area (engine, face, asyncio, simulated link, the programs).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from types import CodeType

from benchmarks import aio_face
from benchmarks.engine_cpu import request_response, udp_echo

_SUMMARY = re.compile(rb"^summary:\s*(\d+)", re.MULTILINE)
_CASES: dict[str, tuple[Callable[[int, bool], float], str]] = {
    "udp": (udp_echo, "UDP echo"),
    "rr": (request_response, "TCP 64-byte request/response"),
    "aio": (aio_face.request_response, "TCP 64-byte request/response through the asyncio face"),
}
#: Where a function's bytecodes go in the `aio` split, by the start of its file's path (first match).
_AREAS = (
    ("engine", ("usernet/stack/", "usernet/wire/", "usernet/native", "usernet/_native/")),
    ("face", ("usernet/aio/", "usernet/drivers/")),
    ("simulated link", ("usernet/sim/", "usernet/link/")),
    ("asyncio", ("asyncio/",)),
    ("programs", ("benchmarks/",)),
)


def area(filename: str) -> str:
    """The `_AREAS` name of a function's file (`other` for the rest: the standard library but asyncio)."""
    path = filename.replace("\\", "/")
    for name, starts in _AREAS:
        if any(start in path for start in starts):
            return name
    return "other"


def instructions(case: str, rounds: int, ipv6: bool) -> int:
    """The instructions callgrind counts for a whole run of `rounds` round trips in a child interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.count_engine",
            case,
            "--rounds",
            str(rounds),
            *(["--ipv6"] if ipv6 else []),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out, "rb") as f:
            found = _SUMMARY.search(f.read())
    if found is None:
        raise RuntimeError("callgrind wrote no summary line")
    return int(found.group(1))


def bytecodes(case: str, rounds: int, ipv6: bool, top: int, small: int = 0) -> None:
    """Print the bytecode instructions per round trip, in all and for the `top` functions.

    With `small`, a run of `small` round trips is counted too and subtracted (what building
    the network and connecting cost drops out); else one warm-up run goes uncounted first.
    """
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        raise SystemExit("--bytecodes needs Python 3.12 or later (sys.monitoring)")
    workload, title = _CASES[case]
    if not small:
        workload(50, ipv6)  # the handshake, first datagrams and imports out of the count
    else:
        workload(small, ipv6)  # the imports out of both counts
    counts: Counter[CodeType] = Counter()

    def count(code: CodeType, offset: int) -> None:
        counts[code] += 1

    def counted(n: int) -> Counter[CodeType]:
        counts.clear()
        tool = monitoring.PROFILER_ID
        monitoring.use_tool_id(tool, "count_engine")
        monitoring.register_callback(tool, monitoring.events.INSTRUCTION, count)
        monitoring.set_events(tool, monitoring.events.INSTRUCTION)
        try:
            workload(n, ipv6)
        finally:
            monitoring.set_events(tool, 0)
            monitoring.free_tool_id(tool)
        counts.pop(count.__code__, None)
        return Counter(counts)

    found = counted(rounds)
    if small:
        found.subtract(counted(small))
        rounds -= small
        found = +found  # what is left positive: functions of the set-up and handshake drop out
    total = sum(found.values())
    family = "IPv6" if ipv6 else "IPv4"
    print(f"{title} over {family}: {total / rounds:,.0f} bytecode instructions per round trip ({rounds} round trips)")
    if small:
        areas: Counter[str] = Counter()
        for code, n in found.items():
            areas[area(code.co_filename)] += n
        print("  " + ", ".join(f"{name} {n / rounds:,.0f}" for name, n in areas.most_common()))
    for code, n in found.most_common(top):
        where = code.co_filename.rsplit("usernet/", 1)[-1]
        print(f"{n / rounds:9.1f} {100 * n / total:5.1f}%  {where}:{code.co_firstlineno} {code.co_name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "case", choices=sorted(_CASES), help="udp: datagram echo; rr: TCP request/response; aio: rr through asyncio"
    )
    parser.add_argument("--ipv6", action="store_true", help="over IPv6 (header prediction and all, as IPv4)")
    parser.add_argument("--small", type=int, default=500, help="round trips of the run subtracted")
    parser.add_argument("--large", type=int, default=2000, help="round trips of the run measured")
    parser.add_argument("--rounds", type=int, help="run this many round trips once, uncounted, and exit")
    parser.add_argument("--bytecodes", action="store_true", help="bytecodes per function (3.12+), not valgrind")
    parser.add_argument("--top", type=int, default=30, help="with --bytecodes: how many functions to list")
    args = parser.parse_args()
    if args.bytecodes:
        small = args.small if args.case == "aio" else 0
        bytecodes(args.case, args.rounds or args.large, args.ipv6, args.top, small)
        return
    workload, title = _CASES[args.case]
    if args.rounds is not None:
        workload(args.rounds, args.ipv6)
        return
    small = instructions(args.case, args.small, args.ipv6)
    large = instructions(args.case, args.large, args.ipv6)
    family = "IPv6" if args.ipv6 else "IPv4"
    per = (large - small) / (args.large - args.small)
    print(f"{title} over {family}: {per:,.0f} instructions per round trip ({args.large} less {args.small} round trips)")


if __name__ == "__main__":
    main()
