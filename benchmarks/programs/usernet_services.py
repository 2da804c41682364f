"""usernet's built-in services on its select loop, on a TAP it creates: the usernet side of the TCP benchmarks.

TCP echo on 7, discard on 9, chargen on 19 (and UDP echo), as `usernet up` serves them
(usernet/apps/services.py, on the sans-IO API, no asyncio). Takes `usernet up`'s link
options; run it inside a namespace. Prints `ready`, serves until SIGTERM or
`--max-seconds`, then prints one JSON object: connections accepted and CPU seconds used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from types import FrameType

from usernet.apps.services import Services
from usernet.drivers.config import UsernetConfig, add_arguments, open_host
from usernet.drivers.selectloop import Waker, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--max-seconds", type=float, required=True, help="stop by itself after this long")
    args = parser.parse_args(argv)

    waker = Waker()
    stop = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True
        waker.wake()

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + args.max_seconds
    with open_host(UsernetConfig.from_args(args), purpose="bench") as host:
        services = Services(host.iface)
        print("ready", flush=True)
        run(host, services.handle, until=lambda now: stop or now >= deadline, waker=waker)
        now = time.monotonic()
        services.close(now)
        host.flush(now)
    waker.close()
    times = os.times()
    print(
        json.dumps({"accepted": sum(s.accepted for s in services.tcp), "cpu_seconds": times.user + times.system}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
