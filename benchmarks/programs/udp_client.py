"""The UDP echo load generator: kernel sockets, `--window` datagrams in flight, bounded in count and time.

Each 64-byte datagram carries its sequence number and send time, so round-trip times
are measured per datagram whatever the window. A window of 1 is lockstep. A datagram
not answered within `--loss-timeout` counts as lost and its slot is refilled. Prints
one JSON object: datagrams/s answered, p50/p99 round trip in µs, sent, received, lost.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

HEADER = struct.Struct("!QQ")  # sequence, send time in ns
WARMUP = 200


def percentile(ordered: list[int], share: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(share * len(ordered)))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=7)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-datagrams", type=int, default=10_000_000)
    parser.add_argument("--loss-timeout", type=float, default=0.2)
    args = parser.parse_args(argv)
    if args.size < HEADER.size:
        parser.error(f"--size must be at least {HEADER.size}")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((args.host, args.port))
    sock.settimeout(args.loss_timeout)
    padding = bytes(args.size - HEADER.size)
    pack, unpack_from, clock = HEADER.pack, HEADER.unpack_from, time.perf_counter_ns
    send, recv = sock.send, sock.recv

    for seq in range(WARMUP):  # ARP, caches, the server's first-datagram costs
        send(pack(seq, clock()) + padding)
        try:
            recv(2048)
        except TimeoutError:
            pass
    while True:  # drop late warm-up answers
        sock.settimeout(0.02)
        try:
            recv(2048)
        except TimeoutError:
            break
    sock.settimeout(args.loss_timeout)

    rtts: list[int] = []
    sent = received = lost = 0
    start = clock()
    stop_at = start + int(args.seconds * 1e9)
    in_flight = 0
    last = start
    while True:
        now = clock()
        if now < stop_at and sent < args.max_datagrams:
            while in_flight < args.window and sent < args.max_datagrams:
                send(pack(sent, clock()) + padding)
                sent += 1
                in_flight += 1
        elif in_flight == 0:
            break
        try:
            reply = recv(2048)
        except TimeoutError:
            lost += in_flight
            in_flight = 0
            continue
        last = clock()
        in_flight = max(0, in_flight - 1)  # an answer that came after its loss was counted
        received += 1
        rtts.append(last - unpack_from(reply)[1])
    elapsed = (last - start) / 1e9
    rtts.sort()
    print(
        json.dumps(
            {
                "rate": received / elapsed if elapsed > 0 else 0.0,
                "p50_us": percentile(rtts, 0.50) / 1e3 if rtts else 0.0,
                "p99_us": percentile(rtts, 0.99) / 1e3 if rtts else 0.0,
                "sent": sent,
                "received": received,
                "lost": lost,
                "seconds": elapsed,
            }
        )
    )
    return 0 if received else 1


if __name__ == "__main__":
    sys.exit(main())
