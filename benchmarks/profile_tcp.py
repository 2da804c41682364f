"""Where usernet's time goes in TCP: its select loop under cProfile, driven by the benchmark's load generator.

Run `python -m benchmarks.profile_tcp {send,receive,rr} [--seconds 5] [--connections 50]
[--top 16] [--no-profile]` (root). The load generator is the one `python -m benchmarks`
uses (`programs/tcp_client`, kernel sockets, a separate process in the namespace):
`send` writes to usernet's discard service, `receive` reads its chargen, `rr` runs 64-byte
request/response against its echo on `--connections` connections. usernet's services run
on the select loop in this process, so the table shows the stack's own functions;
cProfile roughly halves the rate, so read shares, not absolute times. `--no-profile`
instead reports the rate and this process's CPU time per unit of work (per MB, per round
trip), which is the figure a lever has to move.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import subprocess
import time

from benchmarks.netns import KERNEL_IP, USERNET_IP
from benchmarks.procs import REPO, child_env, python_module
from usernet.apps.services import Services
from usernet.drivers import selectloop
from usernet.drivers.host import Host, offload_options
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        choices=("send", "receive", "rr"),
        help="send: kernel → usernet; receive: usernet → kernel; rr: 64-byte request/response",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=1, help="rr only")
    parser.add_argument("--top", type=int, default=16)
    parser.add_argument("--no-profile", action="store_true", help="measure CPU per unit of work instead")
    options = parser.parse_args()
    extra = ["--connections", str(options.connections)] if options.mode == "rr" else []
    profile = cProfile.Profile()
    with Sandbox("bench-profile") as sandbox:
        tap = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
        host = Host(tap, Interface(InterfaceConfig.from_strings(tap.mac, [f"{USERNET_IP}/24"], **offload_options(tap))))
        services = Services(host.iface)
        client = sandbox.popen(
            python_module(
                "benchmarks.programs.tcp_client",
                options.mode,
                "--host",
                USERNET_IP,
                "--seconds",
                str(options.seconds),
                *extra,
            ),
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_env(),
            start_new_session=True,
        )
        deadline = time.monotonic() + options.seconds + 30
        cpu = time.process_time()
        if not options.no_profile:
            profile.enable()
        try:
            selectloop.run(
                host, services.handle, until=lambda now: client.poll() is not None or time.monotonic() > deadline
            )
        finally:
            profile.disable()
            cpu = time.process_time() - cpu
            if client.poll() is None:
                client.kill()
            out, _ = client.communicate()
            tap.close()
    if client.returncode != 0:
        raise SystemExit(f"the load generator failed ({client.returncode}); its output: {out.strip()[-400:]}")
    result = json.loads(out.strip().splitlines()[-1])
    if options.mode == "rr":
        work, unit = result["round_trips"], "round trip"
        print(
            f"rr on {options.connections} connection(s): {result['rate']:,.0f} round trips/s, "
            f"p50 {result['p50_us']:.0f} µs"
        )
    else:
        work, unit = result["bytes"] / 1e6, "MB"
        print(f"{options.mode}: {result['mbytes']:.1f} MB/s")
    print(
        f"server CPU: {cpu:.2f} s, {cpu / work * 1e6:.1f} µs per {unit}"
        + (" (under cProfile)" if not options.no_profile else "")
    )
    if not options.no_profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(options.top)
        print(text.getvalue())


if __name__ == "__main__":
    main()
