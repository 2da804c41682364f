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
B_IP6 = bytes.fromhex("20010db8000000000000000000000002")
TICK = 0.0001


def pair(ipv6: bool = False) -> tuple[Interface, Interface]:
    """Two interfaces; with `ipv6`, each also has a static IPv6 address, usable at once (no DAD)."""
    ifaces = []
    for n in (1, 2):
        addresses = [f"192.0.2.{n}/24", *([f"2001:db8::{n}/64"] if ipv6 else [])]
        options: dict[str, object] = {"dad_transmits": 0, "slaac": False} if ipv6 else {}
        config = InterfaceConfig.from_strings(
            bytes((2, 0, 0, 0, 0, n)), addresses, gateway=None, gateway6=None, secret=b"ab"[n - 1 : n] * 16, **options
        )  # the gateways named, so that mypy checks `options` against the config's fields only
        iface = Interface(config)
        if ipv6:
            iface.start(0.0)
            iface.poll(0.0)
            iface.take_output()
        ifaces.append(iface)
    return ifaces[0], ifaces[1]


def peer(ipv6: bool) -> bytes:
    """B's address of the family measured."""
    return B_IP6 if ipv6 else B_IP


def step(a: Interface, b: Interface, now: float) -> None:
    """Each side sends what it has and the other takes it in; then timers."""
    for src, dst in ((a, b), (b, a)):
        src.flush(now)
        for frame in src.take_output():
            dst.receive(frame, now)
    a.poll(now)
    b.poll(now)


def connected(ipv6: bool = False) -> tuple[Interface, Interface, TcpConnection, TcpConnection, float]:
    a, b = pair(ipv6)
    listener = b.tcp.listen((bytes(len(peer(ipv6))), 7))
    client = a.tcp.connect((peer(ipv6), 7), 0.0)
    now = 0.0
    for _ in range(10):
        now += 0.001
        step(a, b, now)
    server = listener.accept()
    assert server is not None, "the handshake did not complete"
    return a, b, client, server, now


def request_response(rounds: int, ipv6: bool = False) -> float:
    """CPU seconds for `rounds` 64-byte round trips."""
    a, b, client, server, now = connected(ipv6)
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


def bulk(total: int, ipv6: bool = False) -> float:
    """CPU seconds to move `total` bytes one way."""
    a, b, client, server, now = connected(ipv6)
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


def udp_echo(rounds: int, ipv6: bool = False) -> float:
    """CPU seconds for `rounds` 64-byte datagram round trips (after one that resolves ARP or NDP)."""
    a, b = pair(ipv6)
    dst = peer(ipv6)
    client = a.open_udp((bytes(len(dst)), 0))
    server = b.open_udp((dst, 7))
    message = b"x" * 64

    def deliver(src: Interface, dst: Interface) -> None:
        for _ in range(3):  # the first datagram waits for ARP (NDP): request, reply, then the datagram
            for frame in src.take_output():
                dst.receive(frame, 0.0)
            src, dst = dst, src

    start = 0.0
    for i in range(rounds + 1):
        if i == 1:
            start = time.process_time()
        client.sendto(message, (dst, 7), 0.0)
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
    parser.add_argument("--ipv6", action="store_true", help="the same over IPv6 (header prediction and all, as IPv4)")
    args = parser.parse_args()
    v6 = args.ipv6
    rr = min(request_response(args.rounds, v6) for _ in range(args.repeat)) / args.rounds
    mb = min(bulk(args.megabytes * 1_000_000, v6) for _ in range(args.repeat)) / args.megabytes
    udp = min(udp_echo(args.rounds, v6) for _ in range(args.repeat)) / args.rounds
    family = " over IPv6" if v6 else ""
    print(f"TCP request/response{family}: {rr * 1e6:.1f} µs of CPU per round trip (both ends)")
    print(f"TCP bulk{family}: {mb * 1e3:.2f} ms of CPU per MB (both ends)")
    print(f"UDP echo{family}: {udp * 1e6:.1f} µs of CPU per round trip (both ends)")


if __name__ == "__main__":
    main()
