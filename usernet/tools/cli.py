"""The packet tools' subcommands (`usernet replay`, `usernet respond`), added to usernet's parser.

Kept here rather than in usernet/cli.py so the tools own their options; usernet/cli.py
only calls `add_subcommands`.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import sys
from typing import Any

__all__ = ["add_subcommands"]


def add_subcommands(sub: Any) -> None:
    """Add `replay` (and the tools' other subcommands) to the subparsers `sub`."""
    replay = sub.add_parser(
        "replay",
        help="feed a capture's frames toward one host into a fresh usernet on a virtual clock; "
        "write and summarise what it sends, --diff it against what the host sent",
    )
    replay.add_argument("capture", help="classic pcap file (Ethernet)")
    replay.add_argument(
        "--as",
        dest="endpoint",
        metavar="MAC/IP[/PREFIX]",
        help="the recorded host usernet plays (IP alone: its MAC from the capture); "
        "default: the host answering (SYN-ACK, echo reply, ARP reply)",
    )
    timing = replay.add_mutually_exclusive_group()
    timing.add_argument("--speed", type=float, default=1.0, help="run N times faster than recorded (default 1)")
    timing.add_argument(
        "--virtual", action="store_true", help="as fast as possible: frames 1 µs apart instead of as recorded"
    )
    replay.add_argument("-w", "--write", metavar="OUT.pcap", help="write the frames usernet sent to this pcap")
    replay.add_argument("--diff", action="store_true", help="compare with what the recorded host sent; 1 if differ")
    replay.add_argument(
        "--ignore", default="", metavar="FIELDS", help="also ignore these IPv4 fields in --diff: tos,df,ttl"
    )
    replay.add_argument("--no-pin", action="store_true", help="do not pin TCP ISNs to the recorded ones")
    replay.add_argument("--no-services", action="store_true", help="do not serve echo/discard/chargen/UDP echo")
    replay.add_argument(
        "--app",
        metavar="MODULE:FUNCTION",
        help="user program: FUNCTION(interface) returns handler(socket, now) -> bool, called for sockets with news",
    )
    replay.add_argument("--tail", type=float, default=1.0, help="virtual seconds to run after the last frame")
    replay.add_argument(
        "--live",
        action="store_true",
        help="instead: send the frames the --as host sent onto a TAP in a throwaway namespace whose kernel "
        "takes the other host's MAC and address, paced as recorded, and show what the kernel answers",
    )
    replay.set_defaults(func=cmd_replay)

    respond = sub.add_parser(
        "respond",
        help="answer packets by rule: run the `responder` a RULES.py defines on a TAP, a raw link or a capture",
    )
    respond.add_argument("rules", help="Python file defining responder = Responder([...]); see examples/responders/")
    where = respond.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--sandbox", action="store_true", help="on a TAP in a throwaway namespace (kernel side: --host-address)"
    )
    where.add_argument(
        "--link",
        metavar="URL",
        help="on this link: tap:NAME (created, or attached if it exists), packet:IFNAME (an existing interface "
        "through AF_PACKET, set up as docs/tools.md says) or udp://HOST:PORT?peer=HOST:PORT",
    )
    where.add_argument("--simulate", metavar="CAPTURE.pcap", help="offline, over a capture's frames")
    respond.add_argument("--host-address", default="192.0.2.1/24", help="kernel side of the --sandbox TAP")
    respond.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until ^C)")
    respond.add_argument("-w", "--write", metavar="OUT.pcap", help="with --simulate: write the answers here")
    respond.set_defaults(func=cmd_respond)


def _load_app(spec: str) -> Any:
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"--app {spec!r}: write MODULE:FUNCTION")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--app {spec!r}: {exc}") from None


def cmd_replay(args: argparse.Namespace) -> int:
    from usernet.tools.replay import Endpoint, load_capture, replay

    frames = load_capture(args.capture)
    if not frames:
        raise ValueError(f"{args.capture} holds no frames")
    endpoint = Endpoint.parse(args.endpoint, frames) if args.endpoint else Endpoint.infer(frames)
    if args.live:
        return _live(args, frames, endpoint)
    result = replay(
        frames,
        endpoint,
        speed=None if args.virtual else args.speed,
        services=not args.no_services,
        attach=_load_app(args.app) if args.app else None,
        pin_isn=not args.no_pin,
        tail=args.tail,
    )
    print(f"replay: usernet as {result.endpoint}: {len(result.fed)} frames in, {len(result.sent)} out", flush=True)
    for line in result.summary():
        print(f"  > {line}")
    if args.write:
        result.write_pcap(args.write)
    if not args.diff:
        return 0
    differences = result.diff([name for name in args.ignore.split(",") if name])
    skipped = f", {result.not_compared} non-IPv4/ARP frames not compared" if result.not_compared else ""
    if not differences:
        print(f"diff: clean ({len(result.recorded)} frames match{skipped})")
        return 0
    print(f"diff: {len(differences)} differences{skipped}")
    for difference in differences:
        print(difference)
    return 1


def _live(args: argparse.Namespace, frames: list[tuple[float, bytes]], sender: Any) -> int:
    from usernet.link.sandbox import Sandbox
    from usernet.tools.replay import live_replay, peer_of, save_capture
    from usernet.wire import describe

    peer = peer_of(frames, sender)
    cidr = f"{ipaddress.IPv4Address(peer.ip)}/{peer.prefix}"
    with Sandbox("replay") as sandbox:
        tap = sandbox.create_tap("usernet0", host_address=cidr)
        result = sandbox.run(
            ["ip", "link", "set", "dev", "usernet0", "address", peer.mac.hex(":")], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise OSError(f"giving the kernel's TAP the recorded MAC {peer.mac.hex(':')} failed: {result.stderr}")
        print(f"replay: sending what {sender} sent to a kernel at {peer} ({sandbox.name})", flush=True)
        received = live_replay(frames, sender.mac, tap, speed=args.speed)
    for t, frame in received:
        print(f"  < {t:.6f} {describe(frame)}")
    if args.write:
        save_capture(args.write, received)
    print(f"replay: {len(received)} frames came back", file=sys.stderr)
    return 0


def _print_counters(counters: dict[str, int]) -> None:
    width = max(map(len, counters))
    for name, count in counters.items():
        print(f"  {name:<{width}}  {count}")


def cmd_respond(args: argparse.Namespace) -> int:
    import contextlib
    import time

    from usernet.link.base import Link
    from usernet.link.packet import PacketLink
    from usernet.link.tap import TapLink
    from usernet.link.udp import UdpLink
    from usernet.link.url import PacketUrl, TapUrl, TunUrl, parse_link_url
    from usernet.tools.responder import load_rules, serve, simulate

    responder = load_rules(args.rules)
    if args.simulate:
        from usernet.tools.replay import load_capture, save_capture
        from usernet.wire import describe

        answers = simulate(responder, load_capture(args.simulate))
        for t, frame in answers:
            print(f"  > {t:.6f} {describe(frame)}")
        if args.write:
            save_capture(args.write, answers)
        print(f"respond: {len(answers)} answers; matches per rule:")
        _print_counters(responder.counters())
        return 0
    end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    with contextlib.ExitStack() as stack:
        link: Link
        if args.sandbox:
            from usernet.link.sandbox import Sandbox

            sandbox = stack.enter_context(Sandbox("respond"))
            link = sandbox.create_tap("usernet0", host_address=args.host_address)
            print(f"respond: TAP usernet0 in namespace {sandbox.name}, kernel side {args.host_address}", flush=True)
        else:
            url = parse_link_url(args.link)
            if isinstance(url, TunUrl):
                raise SystemExit(f"respond: rules match Ethernet frames, and {url} carries bare IP packets")
            if isinstance(url, TapUrl):
                link = TapLink.create(url.name)
            elif isinstance(url, PacketUrl):
                link = PacketLink(url.name)
            else:
                link = UdpLink(url.local, url.peer)
            stack.callback(link.close)
            print(f"respond: on {url}", flush=True)
        try:
            serve(responder, link, until=lambda now: now >= end)
        except KeyboardInterrupt:
            pass
    print("respond: matches per rule:")
    _print_counters(responder.counters())
    return 0
