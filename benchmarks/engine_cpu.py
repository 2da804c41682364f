"""CPU time of the engine's per-segment Python: two Interfaces joined frame by frame in this process.

Run `python -m benchmarks.engine_cpu [--repeat 3]` (no root, no TAP). One connection does
64-byte request/response round trips, then a bulk transfer (MTU 1500, no offloads), on a
virtual clock, and two UDP sockets echo 64-byte datagrams; the figure is this process's
CPU time per round trip and per MB, the best of `--repeat` runs. Nothing but the stack
runs, so it moves with the per-packet path and little else: the figure to compare before
and after a change to that path, on a machine whose load makes the end-to-end benchmarks
too noisy to see a few percent.
"""

from __future__ import annotations

import argparse
import time

from usernet.stack import Interface, InterfaceConfig, TcpConnection

A_IP = bytes([192, 0, 2, 1])
B_IP = bytes([192, 0, 2, 2])
TICK = 0.0001


def pair() -> tuple[Interface, Interface]:
    a = Interface(InterfaceConfig.from_strings(b"\x02\0\0\0\0\x01", ["192.0.2.1/24"], secret=b"a" * 16))
    b = Interface(InterfaceConfig.from_strings(b"\x02\0\0\0\0\x02", ["192.0.2.2/24"], secret=b"b" * 16))
    return a, b


def step(a: Interface, b: Interface, now: float) -> None:
    """Each side sends what it has and the other takes it in; then timers."""
    for src, dst in ((a, b), (b, a)):
        src.flush(now)
        for frame in src.take_output():
            dst.receive(frame, now)
    a.poll(now)
    b.poll(now)


def connected() -> tuple[Interface, Interface, TcpConnection, TcpConnection, float]:
    a, b = pair()
    listener = b.tcp.listen((bytes(4), 7))
    client = a.tcp.connect((B_IP, 7), 0.0)
    now = 0.0
    for _ in range(10):
        now += 0.001
        step(a, b, now)
    server = listener.accept()
    assert server is not None, "the handshake did not complete"
    return a, b, client, server, now


def request_response(rounds: int) -> float:
    """CPU seconds for `rounds` 64-byte round trips."""
    a, b, client, server, now = connected()
    message = b"x" * 64
    start = time.process_time()
    for _ in range(rounds):
        client.send(message, now)
        while not server.readable:
            now += TICK
            step(a, b, now)
        server.receive()
        server.send(message, now)
        while not client.readable:
            now += TICK
            step(a, b, now)
        client.receive()
    return time.process_time() - start


def bulk(total: int) -> float:
    """CPU seconds to move `total` bytes one way."""
    a, b, client, server, now = connected()
    chunk = bytes(65536)
    left = total
    start = time.process_time()
    while left > 0 or client.unsent:
        if left > 0:
            left -= client.send(chunk, now)
        now += TICK
        step(a, b, now)
        server.receive()
    return time.process_time() - start


def udp_echo(rounds: int) -> float:
    """CPU seconds for `rounds` 64-byte datagram round trips (after one that resolves ARP)."""
    a, b = pair()
    client = a.open_udp()
    server = b.open_udp((B_IP, 7))
    message = b"x" * 64

    def deliver(src: Interface, dst: Interface) -> None:
        for _ in range(3):  # the first datagram waits for ARP: request, reply, then the datagram
            for frame in src.take_output():
                dst.receive(frame, 0.0)
            src, dst = dst, src

    start = 0.0
    for i in range(rounds + 1):
        if i == 1:
            start = time.process_time()
        client.sendto(message, (B_IP, 7), 0.0)
        deliver(a, b)
        got = server.recvfrom()
        assert got is not None, "the datagram did not arrive"
        server.sendto(got[0], got[1], 0.0)
        deliver(b, a)
        assert client.recvfrom() is not None, "the echo did not arrive"
        a.take_ready()
        b.take_ready()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    rr = min(request_response(args.rounds) for _ in range(args.repeat)) / args.rounds
    mb = min(bulk(args.megabytes * 1_000_000) for _ in range(args.repeat)) / args.megabytes
    udp = min(udp_echo(args.rounds) for _ in range(args.repeat)) / args.rounds
    print(f"TCP request/response: {rr * 1e6:.1f} µs of CPU per round trip (both ends)")
    print(f"TCP bulk: {mb * 1e3:.2f} ms of CPU per MB (both ends)")
    print(f"UDP echo: {udp * 1e6:.1f} µs of CPU per round trip (both ends)")


if __name__ == "__main__":
    main()
