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

It is `python -m benchmarks.profile_aio --loop select`, which also takes `--mtu` and
`--offloads` and counts the link's batches, sleeps and page faults (see there).
"""

from __future__ import annotations

import sys

from benchmarks.profile_aio import main

if __name__ == "__main__":
    main(["--loop", "select", "--seconds", "5", "--top", "16", *sys.argv[1:]])
