"""The TCP load generator: kernel sockets against echo (7), discard (9) or chargen (19), bounded in count and time.

Modes, each printing one JSON object:
- `send`: one stream to discard for `--seconds`, then a half-close; the clock stops
  at the server's EOF, so bytes still in buffers are counted only once they arrived.
- `receive`: one stream from chargen for `--seconds`, timed from its first byte.
- `rr`: `--connections` connections to echo, each with one 64-byte request in flight
  (lockstep per connection), driven by one epoll loop; p50/p99 round trip per request.
- `connect`: sequential connection setup, one 64-byte request and its answer, close.
- `hold`: `--connections` connections to discard, opened one after another, then held
  idle until the server closes them all (the memory benchmark's server measures itself
  meanwhile); opening and holding together are bounded by `--seconds`.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from typing import Any

from benchmarks.programs.lifetime import raise_open_files

MB = 1_000_000
BLOCK = 256 * 1024
WARMUP_ROUND_TRIPS = 20


def percentile(ordered: list[int], share: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(share * len(ordered)))]) if ordered else 0.0


def connect(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send(args: argparse.Namespace) -> dict[str, Any]:
    sock = connect(args.host, 9, args.timeout)
    block = memoryview(bytes(BLOCK))
    sent = 0
    start = time.perf_counter()
    stop_at = start + args.seconds
    while time.perf_counter() < stop_at and sent < args.max_bytes:
        sent += sock.send(block)
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):  # discard answers our FIN once it has read everything
        pass
    elapsed = time.perf_counter() - start
    sock.close()
    return {"mbytes": sent / MB / elapsed, "bytes": sent, "seconds": elapsed}


def receive(args: argparse.Namespace) -> dict[str, Any]:
    sock = connect(args.host, 19, args.timeout)
    buf = bytearray(BLOCK)
    got = sock.recv_into(buf)
    if not got:
        raise SystemExit("chargen closed the connection without sending anything")
    start = time.perf_counter()
    stop_at = start + args.seconds
    received = 0
    while (now := time.perf_counter()) < stop_at and received < args.max_bytes:
        n = sock.recv_into(buf)
        if not n:
            raise SystemExit(f"chargen closed the connection after {received} bytes")
        received += n
    sock.close()
    return {"mbytes": received / MB / (now - start), "bytes": received, "seconds": now - start}


def rr(args: argparse.Namespace) -> dict[str, Any]:
    socks = [connect(args.host, 7, args.timeout) for _ in range(args.connections)]
    request = bytes(args.size)
    for sock in socks:  # warm up each connection lockstep: handshakes, caches, the server's first-request costs
        for _ in range(WARMUP_ROUND_TRIPS):
            sock.sendall(request)
            pending = args.size
            while pending:
                pending -= len(sock.recv(args.size))
    for sock in socks:
        sock.setblocking(False)
    by_fd = {sock.fileno(): sock for sock in socks}
    pending = dict.fromkeys(by_fd, args.size)
    sent_at = dict.fromkeys(by_fd, 0)
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    clock = time.perf_counter_ns
    rtts: list[int] = []
    start = clock()
    stop_at = start + int(args.seconds * 1e9)
    deadline = start + int((args.seconds + args.timeout) * 1e9)
    for fd, sock in by_fd.items():
        sent_at[fd] = clock()
        sock.send(request)
    outstanding = len(by_fd)
    sending = True
    last = start
    while outstanding:
        if clock() > deadline:
            raise SystemExit(f"{outstanding} requests unanswered {args.timeout:.0f} s after the end")
        for fd, _ in poller.poll(args.timeout):
            data = by_fd[fd].recv(65536)
            if not data:
                raise SystemExit("echo closed a connection in the middle of the run")
            left = pending[fd] - len(data)
            if left > 0:
                pending[fd] = left
                continue
            last = clock()
            rtts.append(last - sent_at[fd])
            pending[fd] = args.size
            if sending and last < stop_at and len(rtts) < args.max_round_trips:
                sent_at[fd] = last
                by_fd[fd].send(request)
            else:
                sending = False
                outstanding -= 1
    elapsed = (last - start) / 1e9
    poller.close()
    for sock in socks:
        sock.close()
    rtts.sort()
    return {
        "rate": len(rtts) / elapsed,
        "p50_us": percentile(rtts, 0.50) / 1e3,
        "p99_us": percentile(rtts, 0.99) / 1e3,
        "round_trips": len(rtts),
        "seconds": elapsed,
    }


def connections(args: argparse.Namespace) -> dict[str, Any]:
    request = bytes(args.size)
    done = 0
    start = time.perf_counter()
    stop_at = start + args.seconds
    while (now := time.perf_counter()) < stop_at and done < args.max_connections:
        with connect(args.host, 7, args.timeout) as sock:
            sock.sendall(request)
            pending = args.size
            while pending:
                chunk = sock.recv(args.size)
                if not chunk:
                    raise SystemExit(f"echo closed connection {done + 1} before answering")
                pending -= len(chunk)
        done += 1
    return {"rate": done / (now - start), "connections": done, "seconds": now - start}


def hold(args: argparse.Namespace) -> dict[str, Any]:
    raise_open_files(args.connections + 256)
    start = time.perf_counter()
    deadline = start + args.seconds
    socks: list[socket.socket] = []
    for _ in range(args.connections):
        if time.perf_counter() > deadline:
            raise SystemExit(f"only {len(socks)} of {args.connections} connections opened in {args.seconds:.0f} s")
        socks.append(connect(args.host, 9, args.timeout))
    opened = time.perf_counter() - start
    poller = select.epoll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    while by_fd:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise SystemExit(f"{len(by_fd)} of {args.connections} connections still open after {args.seconds:.0f} s")
        for fd, _ in poller.poll(min(left, args.timeout)):
            if not by_fd[fd].recv(4096):  # discard sends nothing: this is its close
                poller.unregister(fd)
                by_fd.pop(fd).close()
    poller.close()
    return {"connections": len(socks), "open_seconds": opened, "seconds": time.perf_counter() - start}


MODES = {"send": send, "receive": receive, "rr": rr, "connect": connections, "hold": hold}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=tuple(MODES))
    parser.add_argument("--host", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=1, help="rr, hold: concurrent connections")
    parser.add_argument("--size", type=int, default=64, help="rr, connect: request size in bytes")
    parser.add_argument("--timeout", type=float, default=10.0, help="the longest any single wait may take")
    parser.add_argument("--max-bytes", type=int, default=100_000 * MB)
    parser.add_argument("--max-round-trips", type=int, default=10_000_000)
    parser.add_argument("--max-connections", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    print(json.dumps(MODES[args.mode](args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
