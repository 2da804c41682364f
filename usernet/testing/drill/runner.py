"""Run a packetdrill script against one usernet Interface on a virtual clock.

The script plays the remote end (192.0.2.1 by default) and the program using the
socket; the stack under test is one `Interface` (192.168.0.1). Nothing sleeps: before
each event the clock jumps to the event's time through every timer deadline on the way
(`poll` then `flush` at each, as a driver would), and every frame the stack sends is
queued with the time it left. An outbound line (`>`) takes the next queued frames — or
runs timers until one appears, up to the end of its time window — and compares them.

Timing follows packetdrill: a relative time counts from when the previous event
finished (from the previous line's own time when both are inbound packets); an event
passes if it happens within max(--tolerance_usecs, --tolerance_percent of the gap since
the previous event) of its time. Outbound segments may be split where the script wrote
one (TSO): consecutive segments are joined until the script's length is reached, unless
--strict_segments is given.
"""

from __future__ import annotations

import errno as errno_module
import ipaddress
import math
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.config import TcpConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.isn import IsnGenerator
from usernet.testing.drill.code import Unsupported, run_code
from usernet.testing.drill.model import (
    CodeEvent,
    CommandEvent,
    Direction,
    Event,
    PacketEvent,
    Script,
    SyscallEvent,
    TcpPacket,
    TimeKind,
)
from usernet.testing.drill.packets import (
    ECN_BITS,
    DrillError,
    Endpoints,
    Segment,
    SeqMap,
    build_inbound,
    compare,
    learn_timestamps,
    read_segment,
    script_packet,
)
from usernet.testing.drill.parser import parse_file, parse_script
from usernet.testing.drill.profile import USERNET, Profile, apply_command
from usernet.testing.drill.sockets import Outcome, Sockets, Waiter, resolve, tcp_info
from usernet.wire import emit_arp, emit_ethernet
from usernet.wire.tcp import FIN, PSH, RST, SYN

_OUR_MAC = bytes.fromhex("020000000010")
_PEER_MAC = bytes.fromhex("020000000020")
_MAX_STEPS = 1_000_000
_NEW_FD = ("socket", "accept")  # calls returning a new descriptor, which the script may number differently
_OPTIONS = (
    "tolerance_usecs",
    "tolerance_percent",
    "tcp_ts_tick_usecs",
    "tcp_ts_ecr_scaled",
    "local_ip",
    "remote_ip",
    "bind_port",
    "connect_port",
    "mtu",
    "strict_segments",
    "ip_version",
    "local_isn",
    "remote_isn",
)


class DrillFailure(AssertionError):
    """The stack did not do what the script says; `str()` reads like packetdrill's errors."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        super().__init__(f"{filename}:{line}: {message}")
        self.filename = filename
        self.line = line
        self.message = message


@dataclass
class RunResult:
    """How a run went: what the runner applied, and what it could not map and skipped."""

    filename: str
    events: int = 0
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _Isn:
    """The stack's ISN: fixed by --local_isn (to test wrap-around), else usernet's own."""

    def __init__(self, real: IsnGenerator, fixed: int | None) -> None:
        self.real = real
        self.fixed = fixed

    def isn(self, now: float, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int) -> int:
        if self.fixed is not None:
            return self.fixed
        return self.real.isn(now, local_ip, local_port, remote_ip, remote_port)

    def ts_offset(self, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int) -> int:
        return self.real.ts_offset(local_ip, local_port, remote_ip, remote_port)


@dataclass
class _Pending:
    event: SyscallEvent
    waiter: Waiter
    expected_end: float


def run_file(
    path: str | Path,
    profile: Profile = USERNET,
    options: dict[str, str] | None = None,
    defines: dict[str, str] | None = None,
) -> RunResult:
    """Run a script file; raises DrillFailure on the first unmet expectation."""
    script = parse_file(path, defines)
    return run_script(script, str(path), profile, options)


def run_text(
    source: str, profile: Profile = USERNET, options: dict[str, str] | None = None, filename: str = "<script>"
) -> RunResult:
    return run_script(parse_script(source, filename), filename, profile, options)


def run_script(
    script: Script, filename: str = "<script>", profile: Profile = USERNET, options: dict[str, str] | None = None
) -> RunResult:
    """Run a parsed script. `options` are `--name=value` settings that win over the script's."""
    return _Run(script, filename, profile, options or {}).run()


class _Run:
    def __init__(self, script: Script, filename: str, profile: Profile, overrides: dict[str, str]) -> None:
        self.script = script
        self.result = RunResult(filename)
        settings: dict[str, str | None] = {o.name: o.value for o in script.options}
        settings.update(overrides)
        for name in settings:
            if name not in _OPTIONS and name != "define":
                self.result.skipped.append(f"--{name}")
        if (settings.get("ip_version") or "ipv4") != "ipv4":
            raise DrillError(f"--ip_version={settings['ip_version']}: usernet's runner speaks IPv4 only")
        self.tolerance = float(settings.get("tolerance_usecs") or 4000) / 1e6
        self.tolerance_percent = float(settings.get("tolerance_percent") or 12.5)
        self.ts_tick_usecs = int(settings.get("tcp_ts_tick_usecs") or 0)
        self.strict_segments = "strict_segments" in settings
        local_ip = settings.get("local_ip") or profile.local_ip
        self.local_ip = ipaddress.IPv4Address(local_ip).packed
        self.remote_ip = ipaddress.IPv4Address(settings.get("remote_ip") or profile.remote_ip).packed
        self.remote_offset = int(settings.get("remote_isn") or "0", 0)
        local_isn = settings.get("local_isn")
        self.profile = profile
        tcp = profile.tcp
        if script.init_command is not None:
            tcp = self._command(script.init_command.command, tcp)
        net = ipaddress.IPv4Network(f"{local_ip}/24", strict=False)
        gateway = net.network_address + (2 if ipaddress.IPv4Address(local_ip) == net.network_address + 1 else 1)
        self.gateway = gateway.packed
        self.iface = Interface(
            InterfaceConfig.from_strings(
                _OUR_MAC,
                [f"{local_ip}/24"],
                gateway=str(gateway),
                secret=b"usernet-drill-01",
                arp_timeout=1e9,
                mtu=int(settings.get("mtu") or profile.mtu),
                tcp=tcp,
            )
        )
        fixed = None if local_isn is None else int(local_isn, 0)
        # _Isn has IsnGenerator's two methods; the stack declares no protocol for an ISN source.
        self.iface.tcp.isn_source = _Isn(self.iface.tcp.isn_source, fixed)  # type: ignore[assignment]  # see above
        self._seed_arp()
        self.sockets = Sockets(
            self.iface,
            self.local_ip,
            (self.remote_ip, int(settings.get("connect_port") or profile.connect_port)),
            int(settings.get("bind_port") or profile.bind_port),
            self,
        )
        self.now = 0.0
        self.outq: deque[tuple[float, bytes]] = deque()
        self.pending: _Pending | None = None
        self.seqmap = SeqMap(self.remote_offset)
        self.under_test: str | None = None  # "listen", "passive" or "active"
        self.local_port = self.sockets.bind_port
        self.remote_port = profile.first_remote_port
        self.next_remote_port = profile.first_remote_port
        self.line = 0
        self.prev: Event | None = None
        self.prev_time = 0.0
        self.ident = 0

    # -- setup ---------------------------------------------------------------------------

    def _seed_arp(self) -> None:
        """The gateway's MAC is known before the script starts: no ARP appears in it."""
        frame = bytearray(42)
        emit_ethernet(frame, 0, b"\xff" * 6, _PEER_MAC, 0x0806)
        emit_arp(frame, 14, 1, _PEER_MAC, self.gateway, bytes(6), self.local_ip)
        self.iface.receive(frame, 0.0)
        self.iface.take_output()

    def _command(self, command: str, tcp: TcpConfig) -> TcpConfig:
        effect = apply_command(command, tcp, self.profile)
        self.result.applied.extend(effect.applied)
        self.result.skipped.extend(f"`{line}`" for line in effect.skipped)
        return effect.tcp

    # -- Watcher: which connection the script talks to -------------------------------------

    def listening(self, port: int) -> None:
        self.under_test = "listen"
        self.local_port = port

    def connecting(self, conn: TcpConnection) -> None:
        self.under_test = "active"
        self.seqmap = SeqMap(self.remote_offset)
        self.local_port = conn.local[1]
        self.remote_port = conn.remote[1]

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> RunResult:
        events = self.script.events
        if events and events[0].time is not None and events[0].time.kind is TimeKind.ABSOLUTE and events[0].time.start:
            raise DrillError(f"{self.result.filename}:{events[0].line}: the first event must be at time 0")
        for event in events:
            self.line = event.line
            self._event(event)
            self.prev = event
            self.result.events += 1
        if self.pending is not None:
            self._fail(
                f"the blocking call on line {self.pending.event.line} never returned: {self.pending.event}",
                self.pending.event.line,
            )
        if self.script.cleanup_command is not None:
            self.result.skipped.append(f"`{self.script.cleanup_command.command}` (cleanup)")
        return self.result

    def _event(self, event: Event) -> None:
        start, end = self._window(event)
        if isinstance(event, PacketEvent) and event.direction is Direction.OUTBOUND:
            self._expect(event, start, end)
            self.prev_time = self.now if start is None else start
            return
        assert start is not None
        self._advance(start)
        self._check_start(event, start)
        self.prev_time = start
        if isinstance(event, PacketEvent):
            self._inject(event)
        elif isinstance(event, SyscallEvent):
            self._syscall(event, start)
        elif isinstance(event, CommandEvent):
            self.iface.tcp.config = self._command(event.command, self.iface.tcp.config)
        elif isinstance(event, CodeEvent):
            self._code(event)

    def _window(self, event: Event) -> tuple[float | None, float | None]:
        time = event.time
        assert time is not None
        if time.kind is TimeKind.ANY:
            return None, None
        assert time.start is not None
        base = 0.0
        if time.kind in (TimeKind.RELATIVE, TimeKind.RELATIVE_RANGE):
            base = self.prev_time if _inbound(self.prev) and _inbound(event) else self.now
        start = base + time.start
        return start, (base + time.end if time.end is not None else start)

    def _tolerance(self, when: float) -> float:
        return max(self.tolerance, self.tolerance_percent / 100 * max(0.0, when - self.prev_time))

    def _check_start(self, event: Event, start: float) -> None:
        tolerance = self._tolerance(start)
        if self.now > start + tolerance:
            self._fail(
                f"timing error: expected {_describe(event)} at {start:.6f} sec but happened at "
                f"{self.now:.6f} sec; tolerance {tolerance:.6f} sec"
            )

    def _fail(self, message: str, line: int | None = None) -> NoReturn:
        raise DrillFailure(self.result.filename, self.line if line is None else line, message)

    def _code(self, event: CodeEvent) -> None:
        """A `%{ }%` snippet: its TCP_INFO assertions on the socket of the latest call."""
        sock = self.sockets.current
        if sock is None:
            self.result.skipped.append(f"line {event.line}: %{{ }}% code before any socket")
            return
        try:
            problem = run_code(event.code, tcp_info(sock))
        except Unsupported as exc:
            self.result.skipped.append(f"line {event.line}: %{{ }}% code not run: {exc}")
            return
        if problem is not None:
            self._fail(f"{problem}\n    script: %{{{event.code}}}%")

    # -- the clock -------------------------------------------------------------------------------

    def _advance(self, until: float) -> None:
        """Run every timer due up to `until`, in order, then stop the clock there."""
        for _ in range(_MAX_STEPS):
            deadline = self.iface.next_deadline()
            if deadline is None or deadline > until:
                self.now = max(self.now, until)
                return
            self._step(deadline)
        raise DrillError(f"timers did not advance past {self.now:.6f} s: the stack re-arms a timer in the past")

    def _step(self, when: float) -> None:
        self.now = max(self.now, when)
        self.iface.poll(self.now)
        self._settle()

    def _settle(self) -> None:
        """Send what the stack has to send now, and let a blocked call return if it can."""
        iface = self.iface
        for _ in range(100):
            iface.flush(self.now)
            for frame in iface.take_output():
                self.outq.append((self.now, bytes(frame)))
            iface.take_ready()
            pending = self.pending
            if pending is None:
                return
            outcome = pending.waiter(self.now)
            if outcome is None:
                return
            self.pending = None
            self._returned(pending.event, outcome, pending.expected_end)

    # -- inbound -----------------------------------------------------------------------------------

    def _inject(self, event: PacketEvent) -> None:
        packet = event.packet
        if not isinstance(packet, TcpPacket):
            raise DrillError(f"line {event.line}: the runner injects TCP segments only, not {packet}")
        if self.under_test in (None, "listen"):  # a new connection from the script (packetdrill's rule)
            self.under_test = "passive"
            self.seqmap = SeqMap(self.remote_offset)
            self.remote_port = self.next_remote_port
            self.next_remote_port += 1
        remote_port = event.src.port if event.src is not None and event.src.port else self.remote_port
        local_port = event.dst.port if event.dst is not None and event.dst.port else self.local_port
        ends = Endpoints(_OUR_MAC, _PEER_MAC, self.remote_ip, self.local_ip, remote_port, local_port)
        self.ident = (self.ident + 1) & 0xFFFF
        ecn = ECN_BITS.get(event.ip.ecn or "noecn", 0) if event.ip is not None else 0
        frame = build_inbound(packet, ends, self.seqmap, self.ident, ecn)
        self.iface.receive(frame, self.now)
        self._settle()

    # -- outbound ------------------------------------------------------------------------------------

    def _expect(self, event: PacketEvent, start: float | None, end: float | None) -> None:
        packet = event.packet
        if not isinstance(packet, TcpPacket):
            raise DrillError(f"line {event.line}: the runner checks TCP segments only, not {packet}")
        tolerance = self._tolerance(start) if start is not None else 0.0
        low = -math.inf if start is None else start - tolerance
        high = math.inf if end is None else end + tolerance
        parts: list[Segment] = []
        while True:
            if self.outq:
                time, frame = self.outq.popleft()
                seg = read_segment(frame, time)
                if isinstance(seg, str):
                    self._fail(f"error handling packet: expected {packet} but the stack sent {seg}")
                if parts and not self._continues(parts, seg):
                    self.outq.appendleft((time, frame))
                    break
                parts.append(seg)
                if sum(p.payload_len for p in parts) >= packet.length or self.strict_segments:
                    break
                continue
            deadline = self.iface.next_deadline()
            if deadline is None or deadline > high:
                if parts:
                    break
                when = "at any time" if start is None else f"at {start:.6f} sec (tolerance {tolerance:.6f} sec)"
                self._fail(
                    f"error handling packet: expected outbound packet {when} but the stack sent nothing "
                    f"until {min(high, max(self.now, deadline or self.now)):.6f} sec\n"
                    f"script packet: {_at(start)} {packet}"
                )
            self._step(deadline)
        seg = _joined(parts)
        if "S" in packet.flags and seg.flags & SYN and not self.seqmap.local_known:
            self.seqmap.local_live, self.seqmap.local_script = seg.seq, packet.seq
            self.seqmap.local_known = True
        learn_timestamps(packet, seg, self.seqmap)
        problem = compare(packet, event.ip, seg, self.seqmap, self.ts_tick_usecs, self.tolerance * 1e6)
        if problem is None and not low <= parts[0].time <= high:
            problem = (
                f"timing error: expected outbound packet at {_at(start)} sec but happened at "
                f"{parts[0].time:.6f} sec; tolerance {tolerance:.6f} sec"
            )
        if problem is not None:
            self._fail(
                f"error handling packet: {problem}\n"
                f"script packet: {_at(start)} {packet}\n"
                f"actual packet: {parts[0].time:9.6f} {script_packet(seg, self.seqmap)}"
            )

    def _continues(self, parts: list[Segment], seg: Segment) -> bool:
        """Can `seg` be the next piece of one TSO segment the script wrote as a whole?"""
        last = parts[-1]
        return (
            not self.strict_segments
            and last.payload_len > 0
            and not last.flags & (FIN | SYN | RST)  # PSH ends a GSO skb, not the script's segment (packetdrill)
            and seg.seq == (last.seq + last.payload_len) & 0xFFFFFFFF
            and seg.ack == last.ack
            and seg.src_port == last.src_port
        )

    # -- system calls ------------------------------------------------------------------------------------

    def _syscall(self, event: SyscallEvent, start: float) -> None:
        if self.pending is not None:
            self._fail(
                f"a system call starts while the blocking call on line {self.pending.event.line} "
                f"({self.pending.event.name}) has not returned"
            )
        end = start
        if event.block_end is not None:
            relative = event.time.kind is TimeKind.RELATIVE
            end = (
                (start - event.time.start + event.block_end)
                if relative and event.time.start is not None
                else event.block_end
            )
        outcome = self.sockets.call(event.name, event.args, self.now)
        if isinstance(outcome, Outcome):
            self._returned(event, outcome, end)
            self._settle()
        else:
            self.pending = _Pending(event, outcome, end)
            self._settle()

    def _returned(self, event: SyscallEvent, outcome: Outcome, expected_end: float) -> None:
        expected = resolve(event.result)
        got = _result_text(outcome)
        wanted_errno = event.errno
        if event.name in _NEW_FD and isinstance(expected, int) and expected >= 0 and outcome.value >= 0:
            if expected != outcome.value:  # packetdrill maps the script's descriptor numbers onto the live ones
                self.sockets.alias(expected, outcome.value)
            expected = outcome.value
        if expected is not None and expected != outcome.value:
            self._fail(
                f"{event.name}: expected result {expected}{' ' + wanted_errno if wanted_errno else ''} "
                f"but got {got}\n    script: {event}",
                event.line,
            )
        if wanted_errno is not None and outcome.errno and errno_module.errorcode.get(outcome.errno) != wanted_errno:
            self._fail(f"{event.name}: expected errno {wanted_errno} but got {got}\n    script: {event}", event.line)
        if outcome.mismatch is not None:
            self._fail(f"{event.name}: {outcome.mismatch}\n    script: {event}", event.line)
        tolerance = self._tolerance(expected_end)
        if abs(self.now - expected_end) > tolerance:
            self._fail(
                f"timing error: expected system call return at {expected_end:.6f} sec but happened at "
                f"{self.now:.6f} sec; tolerance {tolerance:.6f} sec\n    script: {event}",
                event.line,
            )


def _inbound(event: Event | None) -> bool:
    return isinstance(event, PacketEvent) and event.direction is Direction.INBOUND


def _describe(event: Event) -> str:
    if isinstance(event, PacketEvent):
        return "inbound packet" if event.direction is Direction.INBOUND else "outbound packet"
    if isinstance(event, SyscallEvent):
        return "system call start"
    return "command" if isinstance(event, CommandEvent) else "code"


def _at(time: float | None) -> str:
    return "*" if time is None else f"{time:9.6f}"


def _joined(parts: list[Segment]) -> Segment:
    """TSO pieces as the one segment the script wrote: PSH and FIN from the last piece."""
    first, last = parts[0], parts[-1]
    flags = (first.flags & ~(PSH | FIN)) | (last.flags & (PSH | FIN))
    return replace(first, flags=flags, payload_len=sum(p.payload_len for p in parts))


def _result_text(outcome: Outcome) -> str:
    if not outcome.errno:
        return str(outcome.value)
    name = errno_module.errorcode.get(outcome.errno, str(outcome.errno))
    note = f" ({outcome.note})" if outcome.note else ""
    return f"{outcome.value} {name}{note}"


__all__ = ["DrillError", "DrillFailure", "RunResult", "run_file", "run_script", "run_text"]
