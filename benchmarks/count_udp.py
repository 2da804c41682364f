"""Instructions per echoed 64-byte UDP datagram through the stack, counted by valgrind.

Run `python -m benchmarks.count_udp [--ipv6] [--small 500] [--large 2000]` (no root, needs
valgrind). It runs `engine_cpu.udp_echo` (two Interfaces joined frame by frame: the client's
`sendto`, the server's `receive` and `recvfrom`, its `sendto` back, the client's `receive`
and `recvfrom`) under `callgrind` with `PYTHONHASHSEED=0` at two round counts, and reports
the difference of the two totals divided by the difference of the counts: the interpreter's
start-up, the imports and the first datagram's ARP (NDP) drop out, and what is left is one
round trip: two datagrams, each sent once and received once (with the harness's own
`take_output`, `recvfrom` and `take_ready` calls); half of it is the figure per datagram.
Instruction counts, unlike CPU time, do not move with the load of a shared machine:
the figure to compare before and after a change to UDP's per-datagram path.

`--rounds N` runs the echo once, without valgrind (what the counted runs do).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

from benchmarks.engine_cpu import udp_echo

_SUMMARY = re.compile(rb"^summary:\s*(\d+)", re.MULTILINE)


def instructions(rounds: int, ipv6: bool) -> int:
    """The instructions callgrind counts for a whole run of `rounds` echoes in a child interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.count_udp",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ipv6", action="store_true", help="over IPv6 (header prediction and all, as IPv4)")
    parser.add_argument("--small", type=int, default=500, help="round trips of the run subtracted")
    parser.add_argument("--large", type=int, default=2000, help="round trips of the run measured")
    parser.add_argument("--rounds", type=int, help="run this many echoes once, uncounted, and exit")
    args = parser.parse_args()
    if args.rounds is not None:
        udp_echo(args.rounds, args.ipv6)
        return
    small = instructions(args.small, args.ipv6)
    large = instructions(args.large, args.ipv6)
    family = "IPv6" if args.ipv6 else "IPv4"
    per = (large - small) / (args.large - args.small)
    print(
        f"UDP echo over {family}: {per:,.0f} instructions per round trip, {per / 2:,.0f} per datagram"
        f" (sent once and received once; {args.large} less {args.small} round trips)"
    )


if __name__ == "__main__":
    main()
