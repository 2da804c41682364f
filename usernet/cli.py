"""The `usernet` command: bring an interface up and serve on it, ping from it, decode captures, run drill
scripts and the demo."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import ipaddress
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from usernet import __version__
from usernet.drivers.config import UsernetConfig, add_arguments, open_host
from usernet.programs import MissingProgram

if TYPE_CHECKING:
    from usernet.apps.services import ConnectionRecord, Services
    from usernet.drivers.host import Host


@contextlib.contextmanager
def _open_host(args: argparse.Namespace, purpose: str, dump: bool = False) -> Iterator[Host]:
    """The Host the options describe (see usernet.drivers.config), with a tcpdump-style printer when `dump`."""

    config = UsernetConfig.from_args(args)
    with open_host(
        config,
        purpose=purpose,
        observe=_print_frame if dump else None,
        announce=lambda message: print(message, flush=True),
    ) as host:
        yield host


def _print_frame(frame: bytes | bytearray | memoryview, timestamp: float, outgoing: bool) -> None:
    """One line per frame, as tcpdump prints, with the direction seen from usernet."""
    from usernet.wire import describe

    clock = time.strftime("%H:%M:%S", time.localtime(timestamp)) + f"{timestamp % 1:.6f}"[1:]
    print(f"{clock} {'>' if outgoing else '<'} {describe(frame)}", flush=True)


def _print_counters(host: Host) -> None:
    """The stack's counters, then the link's: frames the stack sends outside IPv4 (ARP) count only there."""
    from usernet.link.base import counters_of

    for title, counters in (("counters", host.iface.stats()), ("link counters", counters_of(host.link))):
        shown = ", ".join(f"{k}={v}" for k, v in counters.items() if v)
        print(f"{title}: {shown or 'none'}", flush=True)


def _endpoint(addr: tuple[bytes, int]) -> str:
    """ADDRESS:PORT, an IPv6 address in brackets."""
    ip = ipaddress.ip_address(addr[0])
    return f"[{ip}]:{addr[1]}" if ip.version == 6 else f"{ip}:{addr[1]}"


def _format_record(record: ConnectionRecord) -> str:
    """One line per connection: who, state, and what `TcpConnection.info()` says about the path."""
    info = record.info
    rtt = info["rtt"]
    rtt_text = "-" if rtt is None else f"{rtt * 1000:.2f}ms"
    local = _endpoint(record.local)
    remote = _endpoint(record.remote)
    line = (
        f"  {record.service:<7} {remote} -> {local} {info['state']:<11} rtt={rtt_text} cwnd={info['cwnd']} "
        f"mss={info['mss']} retransmits={info['retransmits']} bytes_sent={info['bytes_sent']} "
        f"bytes_received={info['bytes_received']} segs_in={info['segs_in']} segs_out={info['segs_out']}"
    )
    if record.error is not None:
        line += f" error={errno.errorcode.get(record.error.errno or 0, record.error.errno)}"
    return line


def _print_connections(services: Services) -> None:
    """Per-connection statistics of the TCP services: finished ones (the latest) first, then live ones."""
    records = services.records()
    live = sum(record.live for record in records)
    print(f"tcp connections: {live} live, {len(records) - live} finished (latest kept)", flush=True)
    for record in records:
        print(_format_record(record), flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from usernet.apps.services import Services
    from usernet.drivers import selectloop
    from usernet.drivers.control import Inbox, serving, snapshot
    from usernet.stack.route import format_ip

    flags = {"stop": False, "report": False}
    waker = selectloop.Waker()
    inbox = Inbox(waker.wake)

    def on_signal(signum: int, frame: object) -> None:
        flags["report" if signum == signal.SIGUSR1 else "stop"] = True
        waker.wake()  # select() would otherwise resume its wait after the handler

    old_term = signal.getsignal(signal.SIGTERM)
    old_usr1 = signal.signal(signal.SIGUSR1, on_signal)
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        with _open_host(args, "up", dump=args.dump) as host:
            # Ours only now: a --sandbox hooks SIGTERM to close itself at once, which under a
            # running loop would close the TAP mid-pump; here SIGTERM ends the loop instead,
            # and leaving the `with` closes the sandbox.
            signal.signal(signal.SIGTERM, on_signal)
            services = Services(host.iface)
            iface_config = host.iface.config
            # the leased one with --dhcp; on an IPv6-only link, the first IPv6 one
            address = format_ip((iface_config.addresses or iface_config.addresses6)[0][0])
            link = UsernetConfig.from_args(args).link_url
            print(
                f"usernet up: {address} on {link}, MAC {host.link.mac.hex(':')}; UDP echo on port 7, "
                f"TCP echo 7, discard 9, chargen 19; SIGUSR1 (kill -USR1 {os.getpid()}) prints connections",
                flush=True,
            )

            def until(now: float) -> bool:
                inbox.run()  # control-socket requests (usernet ss, usernet stats)
                if flags["report"]:
                    flags["report"] = False
                    _print_connections(services)
                return flags["stop"] or (deadline is not None and now >= deadline)

            try:
                with serving(lambda request: inbox.call(lambda: snapshot(host.iface, request))):
                    selectloop.run(host, services.handle, until=until, waker=waker)
            except KeyboardInterrupt:
                pass
            finally:
                _print_connections(services)
                _print_counters(host)
                now = time.monotonic()
                services.close(now)  # peers hear a RST instead of waiting for a timeout
                host.flush(now)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGUSR1, old_usr1)
        waker.close()
    return 0


@dataclass
class _PingState:
    """Where `usernet ping` is: the last sequence number used, how many went out, when the last
    went and the next goes, and whether sending failed."""

    seq: int = 0
    transmitted: int = 0
    last: float = 0.0
    next: float = 0.0
    failed: bool = False


def cmd_ping(args: argparse.Namespace) -> int:
    from usernet.drivers import selectloop

    target = ipaddress.ip_address(args.destination)
    payload = bytes((i & 0xFF) for i in range(args.size))
    sent: dict[int, float] = {}
    rtts: list[float] = []
    state = _PingState()
    with _open_host(args, "ping") as host:
        ipv6 = host.iface.ipv6
        if target.version == 6 and ipv6 is None:
            print("ping: usernet runs without IPv6: give --ipv6 or an IPv6 --address", file=sys.stderr, flush=True)
            return 2
        layer = ipv6 if target.version == 6 and ipv6 is not None else host.iface
        sock = layer.open_ping(os.getpid() & 0xFFFF)
        print(f"PING {target} {args.size} data bytes", flush=True)

        def on_ready(s: object, now: float) -> None:
            while (reply := sock.receive()) is not None:
                src, seq, data, ttl = reply
                if seq in sent and data == payload:
                    rtt = (now - sent.pop(seq)) * 1000
                    rtts.append(rtt)
                    print(
                        f"{len(data) + 8} bytes from {ipaddress.ip_address(src)}: icmp_seq={seq} ttl={ttl} "
                        f"time={rtt:.3f} ms",
                        flush=True,
                    )

        def until(now: float) -> bool:
            if ipv6 is not None and target.version == 6 and ipv6.settling:
                return False  # no usable IPv6 source address until DAD is over (1 s)
            if state.seq < args.count and now >= state.next:
                state.seq += 1
                try:
                    sock.send(target.packed, state.seq, payload, now)
                except OSError as exc:
                    print(f"ping: {exc.strerror or exc}", file=sys.stderr, flush=True)
                    state.failed = True
                    return True
                sent[state.seq] = now
                state.transmitted += 1
                host.flush(now)
                state.next = now + args.interval
                state.last = now
            return state.seq >= args.count and (not sent or now - state.last >= args.timeout)

        selectloop.run(host, on_ready, until=until)
    loss = 100.0 * (state.transmitted - len(rtts)) / state.transmitted if state.transmitted else 0.0
    print(f"--- {target} ping statistics ---")
    print(f"{state.transmitted} packets transmitted, {len(rtts)} received, {loss:.0f}% packet loss")
    if rtts:
        print(f"rtt min/avg/max = {min(rtts):.3f}/{sum(rtts) / len(rtts):.3f}/{max(rtts):.3f} ms")
    if state.failed:
        return 2  # as iputils ping: an error, not just no replies
    return 0 if rtts else 1


def cmd_decode(args: argparse.Namespace) -> int:
    from usernet.link import PcapReader
    from usernet.wire import describe

    with PcapReader(args.file) as reader:
        for n, (ts, frame) in enumerate(reader, 1):
            print(f"{n:5d} {ts:.6f} {describe(frame)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.sim or os.geteuid() != 0:  # no root, no TAP: the same demo on a simulated network
        from usernet.apps.demo_sim import run_sim_demo

        return run_sim_demo(not_root=not args.sim)
    from usernet.apps.demo import run_demo

    return run_demo()


def cmd_run(args: argparse.Namespace) -> int:
    """Replace this process with `command`, on usernet through the sitecustomize in BOOT_DIR."""
    from usernet.aio.runner import BOOT_DIR

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("usernet run: give the command to run after --, e.g. usernet run -- uvicorn app:app", file=sys.stderr)
        return 2
    env = dict(os.environ)
    config = UsernetConfig.from_args(args)
    env.update(config.to_env())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (BOOT_DIR, env.get("PYTHONPATH")) if p)
    env["USERNET_RUN_PYTHON"] = sys.executable  # named by the child when its Python lacks usernet
    if config.supervises:
        from usernet.drivers.workers import supervise

        return supervise(config, command, env)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"usernet run: command not found: {command[0]}", file=sys.stderr)
        return 127


def cmd_ss(args: argparse.Namespace) -> int:
    """Print the sockets of running usernet processes, as `ss` prints the kernel's."""
    from usernet.apps.ss import format_sockets
    from usernet.drivers.control import query

    both = not args.tcp and not args.udp
    answers = query("sockets", args.pid)
    for line in format_sockets(
        answers, tcp=args.tcp or both, udp=args.udp or both, listening=args.listening, every=args.all,
        details=args.info,
    ):  # fmt: skip
        print(line)
    return 1 if any("error" in answer for answer in answers) else 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the interface counters of running usernet processes."""
    from usernet.apps.ss import format_stats
    from usernet.drivers.control import query

    answers = query("stats", args.pid)
    for line in format_stats(answers):
        print(line)
    return 1 if any("error" in answer for answer in answers) else 0


DRILL_MODULE = "usernet.testing.drill.__main__"


def cmd_drill(args: argparse.Namespace) -> int:
    """Hand the arguments to the packetdrill-style script runner."""
    try:
        drill = importlib.import_module(DRILL_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (DRILL_MODULE, "usernet.testing.drill"):
            raise
        print(f"usernet drill: this usernet has no script runner ({DRILL_MODULE} is missing)", file=sys.stderr)
        return 2
    return int(drill.main(args.argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usernet", description="A userspace TCP/UDP/IP stack on a TAP device.")
    parser.add_argument("--version", action="version", version=f"usernet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "up",
        help="bring an interface up: answer ARP and ping, serve UDP echo and TCP echo, "
        "discard and chargen until interrupted; SIGUSR1 prints per-connection statistics",
    )
    add_arguments(up)
    up.add_argument("--dump", action="store_true", help="print one line per frame, as tcpdump would")
    up.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: run until interrupted)"
    )
    up.set_defaults(func=cmd_up)

    ping = sub.add_parser("ping", help="ping an address from the usernet side")
    ping.add_argument("destination")
    add_arguments(ping)
    ping.add_argument("-c", "--count", type=int, default=4)
    ping.add_argument("-i", "--interval", type=float, default=1.0)
    ping.add_argument("-s", "--size", type=int, default=56)
    ping.add_argument("-W", "--timeout", type=float, default=2.0, help="seconds to wait for the last replies")
    ping.set_defaults(func=cmd_ping)

    run = sub.add_parser(
        "run",
        help="run a Python command (uvicorn, a console script) on usernet: usernet run [options] -- command args...",
        description="Every event loop the command's Python process creates is a usernet loop; "
        "settings reach it through USERNET_* variables.",
    )
    add_arguments(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    run.set_defaults(func=cmd_run)

    decode = sub.add_parser("decode", help="print a pcap file one line per frame")
    decode.add_argument("file")
    decode.set_defaults(func=cmd_decode)

    drill = sub.add_parser(
        "drill",
        add_help=False,
        prefix_chars="\0",  # every argument goes to the runner
        help="run packetdrill-style scripts against the stack on a virtual clock "
        "(usernet drill --help for its options)",
    )
    drill.add_argument("argv", nargs=argparse.REMAINDER)
    drill.set_defaults(func=cmd_drill)

    ss = sub.add_parser(
        "ss", help="show the sockets of running usernet processes (like ss -tin), through their control sockets"
    )
    ss.add_argument("-t", "--tcp", action="store_true", help="TCP sockets")
    ss.add_argument("-u", "--udp", action="store_true", help="UDP sockets")
    ss.add_argument("-l", "--listening", action="store_true", help="listening (and unconnected UDP) sockets only")
    ss.add_argument("-a", "--all", action="store_true", help="listening and connected sockets")
    ss.add_argument("-i", "--info", action="store_true", help="TCP internals: rtt, cwnd, ssthresh, retransmissions")
    ss.add_argument("-p", "--pid", type=int, help="only the usernet process with this PID")
    ss.set_defaults(func=cmd_ss)

    stats = sub.add_parser("stats", help="show the interface counters of running usernet processes")
    stats.add_argument("-p", "--pid", type=int, help="only the usernet process with this PID")
    stats.set_defaults(func=cmd_stats)

    demo = sub.add_parser("demo", help="run usernet in a throwaway namespace and talk to it from the kernel side")
    demo.add_argument("--sim", action="store_true", help="run it on a simulated network (the default without root)")
    demo.set_defaults(func=cmd_demo)

    from usernet.tools.cli import add_subcommands  # replay, respond: the packet tools own their options

    add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`usernet decode x.pcap | head`): stop quietly, as Unix tools do;
        # stdout goes to /dev/null so the interpreter's last flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except MissingProgram as exc:  # its message names the package to install
        print(f"usernet: {exc}", file=sys.stderr)
        return 127
    except ValueError as exc:  # a bad option or USERNET_* value; the message names it
        print(f"usernet: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"usernet: {exc.strerror or exc}", file=sys.stderr)
        return 77
    except OSError as exc:
        print(f"usernet: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
