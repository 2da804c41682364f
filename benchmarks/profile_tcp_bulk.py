"""Where usernet's time goes in bulk TCP: a cProfile of the select loop moving 100 MB one way.

Run `python -m benchmarks.profile_tcp_bulk {in,out} [--mbytes 100] [--top 14]` (root). `in`:
a kernel socket in the namespace writes to usernet's discard service; `out`: it reads usernet's
chargen. The loop runs in this process's main thread under cProfile (the kernel side is a
thread), so the table shows the stack's own functions; cProfile roughly halves the rate.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import socket
import threading
import time

from benchmarks.netns import KERNEL_IP, USERNET_IP
from usernet import selectloop
from usernet.host import Host
from usernet.sandbox import Sandbox
from usernet.services import CHARGEN_PORT, DISCARD_PORT, Services
from usernet.stack import Interface, InterfaceConfig

BLOCK = 1 << 18


def kernel_side(sandbox: Sandbox, direction: str, total: int, done: threading.Event, result: dict[str, float]) -> None:
    """Move `total` bytes through a kernel socket in the namespace; record MB/s."""
    try:
        with sandbox.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect((USERNET_IP, DISCARD_PORT if direction == "in" else CHARGEN_PORT))
            moved, start = 0, time.monotonic()
            block = bytes(BLOCK)
            while moved < total:
                if direction == "in":
                    sock.sendall(block)
                    moved += BLOCK
                else:
                    n = len(sock.recv(BLOCK))
                    if not n:
                        break
                    moved += n
            result["mbytes"] = moved / (time.monotonic() - start) / 1e6
    finally:
        done.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("direction", choices=("in", "out"), help="in: kernel → usernet; out: usernet → kernel")
    parser.add_argument("--mbytes", type=int, default=100)
    parser.add_argument("--top", type=int, default=14)
    options = parser.parse_args()
    result: dict[str, float] = {}
    done = threading.Event()
    profile = cProfile.Profile()
    with Sandbox("bench-profile") as sandbox:
        tap = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
        host = Host(tap, Interface(InterfaceConfig.from_strings(tap.mac, [f"{USERNET_IP}/24"])))
        services = Services(host.iface)
        peer = threading.Thread(target=kernel_side, args=(sandbox, options.direction, options.mbytes * 1_000_000, done,
                                                           result), daemon=True)
        peer.start()
        profile.enable()
        selectloop.run(host, services.handle, until=lambda now: done.is_set())
        profile.disable()
        tap.close()
    print(f"{options.direction}: {result.get('mbytes', 0.0):.1f} MB/s under cProfile")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(options.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
