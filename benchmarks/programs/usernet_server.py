"""usernet on its select loop, serving UDP echo and answering ping on a TAP it creates.

The usernet side of the UDP and ICMP echo benchmarks. It creates the TAP in the namespace
it runs in, gives the kernel's side its address, prints `ready`, and serves (with `--packet
IFNAME` instead, on an AF_PACKET link on that existing interface, set up as
usernet.link.packet.prepare_veth does) until SIGTERM or `--max-seconds`. Since it configures
that namespace, it starts only in one a usernet Sandbox made (`usernet-*`, where `python -m
benchmarks` runs it) and refuses anywhere else, the host's own namespace above all.
`--profile FILE` writes cProfile stats of the loop; on exit it prints the datagrams echoed
and the CPU seconds it used.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from usernet.apps.services import ECHO_PORT, UdpEcho
from usernet.drivers.host import Host
from usernet.drivers.selectloop import run
from usernet.link.base import Link
from usernet.link.packet import PacketLink
from usernet.link.tap import TapLink
from usernet.programs import find
from usernet.stack import Interface, InterfaceConfig


def _sandbox_name() -> str | None:
    """The usernet-* namespace this process runs in (as `ip netns identify` names it), or None."""
    found = subprocess.run([find("ip"), "netns", "identify"], capture_output=True, text=True)
    names = found.stdout.split() if found.returncode == 0 else []
    return next((name for name in names if name.startswith("usernet-")), None)


def _bring_up(tap: str, host_address: str) -> None:
    with open(f"/proc/sys/net/ipv6/conf/{tap}/disable_ipv6", "w") as knob:
        knob.write("1")  # no router solicitations or MLD on the measured link
    for cmd in (["ip", "addr", "add", host_address, "dev", tap], ["ip", "link", "set", tap, "up"]):
        subprocess.run(cmd, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tap")
    where.add_argument("--packet", metavar="IFNAME", help="an AF_PACKET link on this existing interface")
    parser.add_argument("--address", required=True, help="usernet's address, CIDR")
    parser.add_argument("--host-address", help="the kernel side's address, CIDR (with --tap)")
    parser.add_argument("--port", type=int, default=ECHO_PORT)
    parser.add_argument("--max-seconds", type=float, required=True, help="stop by itself after this long")
    parser.add_argument("--profile", help="write cProfile stats of the serving loop to this file")
    args = parser.parse_args(argv)
    if _sandbox_name() is None:
        print(
            "usernet_server: not inside a usernet-* network namespace: it would create a TAP and give it an"
            " address in this one (maybe the host's own). Run it through `python -m benchmarks`, which starts"
            " it in a Sandbox.",
            file=sys.stderr,
        )
        return 2

    stop = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    link: Link = PacketLink(args.packet) if args.packet else TapLink.create(args.tap)
    try:
        if args.tap:
            _bring_up(args.tap, args.host_address)
        host = Host(link, Interface(InterfaceConfig.from_strings(link.mac, [args.address])))
        echo = UdpEcho(host.iface, args.port)
        deadline = time.monotonic() + args.max_seconds
        print("ready", flush=True)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        run(host, echo.handle, until=lambda now: stop or now >= deadline)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        times = os.times()
        print(json.dumps({"echoed": echo.echoed, "cpu_seconds": times.user + times.system}), flush=True)
    finally:
        link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
