"""Where usernet's time goes when it echoes UDP: CPU per datagram, and a cProfile of the server loop.

Run `python -m benchmarks.profile_udp_echo [--seconds 5] [--window 32]` (root). It runs the
select-loop server of the UDP echo benchmark twice under the same windowed load: once
plain, for CPU µs per datagram (user + system time of the server process / datagrams
echoed), once under cProfile, for the top functions by own time.
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.netns import TAP_OPTIONS, USERNET_IP
from benchmarks.procs import python_module, run_json, start_server
from usernet.link.sandbox import Sandbox


def serve_under_load(seconds: float, window: int, profile: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(server's report, client's report) of one run of the usernet UDP echo server."""
    with Sandbox("bench-profile") as sandbox:
        extra = ("--profile", str(profile)) if profile else ()
        server = start_server(
            sandbox,
            python_module(
                "benchmarks.programs.usernet_server", *TAP_OPTIONS, "--max-seconds", str(seconds + 30), *extra
            ),
        )
        client = run_json(
            sandbox,
            python_module(
                "benchmarks.programs.udp_client",
                "--host",
                USERNET_IP,
                "--window",
                str(window),
                "--seconds",
                str(seconds),
            ),
            timeout=seconds + 20,
        )
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=10)
        return json.loads(out.decode().strip().splitlines()[-1]), client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    plain, client = serve_under_load(args.seconds, args.window, None)
    echoed = plain["echoed"]
    print(
        f"plain: {client['rate']:,.0f} datagrams/s seen by the client; server echoed {echoed:,} using "
        f"{plain['cpu_seconds']:.2f} CPU s (includes start-up): "
        f"{plain['cpu_seconds'] / echoed * 1e6:.1f} µs per datagram"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "server.prof"
        profiled, client = serve_under_load(args.seconds, args.window, path)
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        total = stats.total_tt  # type: ignore[attr-defined]  # set by pstats at run time, not in its stub
        n = profiled["echoed"]
        print(
            f"profiled: {client['rate']:,.0f} datagrams/s; {n:,} echoed; {total:.2f} s in the loop under cProfile, "
            f"{total / n * 1e6:.1f} µs per datagram (profiler overhead included)"
        )
        stats.sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
