"""What the stack under test looks like to a script: addresses, ports and TCP defaults.

`USERNET` is usernet as shipped. `LINUX` is what scripts written for Linux assume: the
kernel's defaults, and — because packetdrill's own suites start with
`../common/defaults.sh` — the handful of sysctls that script sets, applied when a script
runs it. Shell commands are not run: `apply_command` maps the settings usernet has a knob
for (timestamps, SACK, buffers and the window scale they imply, retries, congestion
control, `ip route ... initcwnd/rto_min`) onto a `TcpConfig` and reports the rest as skipped.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace

from usernet.stack.tcp.config import TcpConfig


@dataclass(frozen=True)
class Profile:
    """Addresses and defaults of one run; scripts' `--local_ip=...` lines override them."""

    name: str
    tcp: TcpConfig = field(default_factory=TcpConfig)
    local_ip: str = "192.168.0.1"
    remote_ip: str = "192.0.2.1"
    bind_port: int = 8080  # bind(fd, ..., ...) binds here (packetdrill's default)
    connect_port: int = 8080  # connect(fd, ..., ...) goes to remote_ip:connect_port
    first_remote_port: int = 48000  # the script's port for connections it opens, one per new connection
    mtu: int = 1500
    # Linux's rmem max when no sysctl says otherwise: it decides the window scale offered.
    rmem_max: int = 6 * 1024 * 1024


USERNET = Profile("usernet")

# Linux 6.x defaults a script can see: IW10, SYN options <mss 1460,sackOK,TS val ecr 0,nop,wscale 7>
# (wscale from tcp_rmem[2] = 6 MB), delayed ACK from 40 ms, RTO min 200 ms / initial 1 s,
# the RTO floor on the variance term, TIME_WAIT 60 s, SYN and SYN-ACK retries 6 and 5,
# tcp_retries2 15, CUBIC, F-RTO. The send buffer
# stays usernet's 256 KB: Linux grows its own (from tcp_wmem[1] = 16 KB) as the window opens.
LINUX = Profile(
    "linux",
    tcp=TcpConfig(
        rcvbuf=131072,
        window_scale=7,
        sack=True,
        timestamps=True,
        delayed_ack=0.04,
        quickack=16,
        initial_window=10,
        congestion="cubic",
        rto_min=0.2,
        rto_min_variance=True,  # tcp_set_rto: SRTT + max(4*RTTVAR, rto_min)
        rto_initial=1.0,
        syn_retries=6,
        synack_retries=5,
        retries=15,
        msl=30.0,
    ),
)

# Linux as packetdrill's own suites see it: their environment raises tcp_rmem to
# "4096 540000 15728640", so the window scale offered is 8 even in scripts that do not run
# defaults.sh themselves.
PACKETDRILL = replace(
    LINUX, name="packetdrill", tcp=replace(LINUX.tcp, rcvbuf=540000, window_scale=8), rmem_max=15 * 1024 * 1024
)

PROFILES = {p.name: p for p in (USERNET, LINUX, PACKETDRILL)}

# The sysctls packetdrill's gtests/net/common/defaults.sh sets that usernet has a knob for
# (facts about that environment, so Linux scripts that start by running it see the same stack).
PACKETDRILL_DEFAULTS = {
    "tcp_rmem": "4096 540000 15728640",
    "tcp_wmem": "4096 262144 4194304",
    "tcp_timestamps": "1",
    "tcp_sack": "1",
    "tcp_syn_retries": "5",
    "tcp_synack_retries": "5",
    "tcp_congestion_control": "cubic",
    "tcp_syncookies": "1",
}

_SYSCTL = re.compile(r"(?:net[./]ipv4[./])(tcp_\w+)\s*=\s*\"?([^\"\n#]*?)\"?\s*(?:#.*)?$")
# The same setting written to /proc: `echo "4096 87380 6291456" > /proc/sys/net/ipv4/tcp_rmem`.
_PROC = re.compile(r"\becho\s+(?:-n\s+)?\"?([^\">]*?)\"?\s*>\s*/proc/sys/net/ipv4/(tcp_\w+)\s*$")
_ROUTE = re.compile(r"\bip\s+route\b.*")


def window_scale_for(space: int) -> int:
    """Linux's tcp_select_initial_window: halve the largest buffer until it fits 16 bits."""
    shift = 0
    while space > 65535 and shift < 14:
        space >>= 1
        shift += 1
    return shift


@dataclass
class CommandEffect:
    """What one backquoted command did: the new config, and what could not be mapped."""

    tcp: TcpConfig
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def apply_command(command: str, tcp: TcpConfig, profile: Profile) -> CommandEffect:
    """Map the settings of a shell command onto `tcp`; everything else is skipped."""
    effect = CommandEffect(tcp)
    for raw in command.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.split()[0].endswith("defaults.sh"):
            for name, value in PACKETDRILL_DEFAULTS.items():
                _sysctl(effect, name, value, profile)
            effect.applied.append(f"{line} (packetdrill's defaults)")
            continue
        match = _SYSCTL.search(line)
        if match:
            _sysctl(effect, match.group(1), match.group(2).strip(), profile)
            continue
        match = _PROC.search(line)
        if match:
            _sysctl(effect, match.group(2), match.group(1).strip(), profile)
            continue
        if _ROUTE.search(line):
            _route(effect, line)
            continue
        effect.skipped.append(line)
    return effect


def _sysctl(effect: CommandEffect, name: str, value: str, profile: Profile) -> None:
    tcp = effect.tcp
    words = value.split()
    try:
        if name == "tcp_timestamps":
            tcp = replace(tcp, timestamps=value != "0")
        elif name == "tcp_sack":
            tcp = replace(tcp, sack=value != "0")
        elif name == "tcp_rmem" and len(words) == 3:
            tcp = replace(
                tcp, rcvbuf=int(words[1]), window_scale=window_scale_for(max(int(words[2]), profile.rmem_max))
            )
        elif name == "tcp_wmem" and len(words) == 3:
            tcp = replace(tcp, sndbuf=int(words[1]))
        elif name == "tcp_syn_retries":
            tcp = replace(tcp, syn_retries=int(value))
        elif name == "tcp_synack_retries":
            tcp = replace(tcp, synack_retries=int(value))
        elif name == "tcp_retries2":
            tcp = replace(tcp, retries=int(value))
        elif name == "tcp_congestion_control" and value in ("cubic", "reno", "newreno"):
            tcp = replace(tcp, congestion="cubic" if value == "cubic" else "newreno")
        elif name == "tcp_rto_min_us":
            tcp = replace(tcp, rto_min=int(value) / 1e6)
        elif name == "tcp_syncookies":
            tcp = replace(tcp, syn_cookies=value != "0")
        elif name == "tcp_fin_timeout":
            tcp = replace(tcp, fin_timeout=float(value))
        elif name == "tcp_keepalive_time":
            tcp = replace(tcp, keepalive_idle=float(value))
        elif name == "tcp_keepalive_intvl":
            tcp = replace(tcp, keepalive_interval=float(value))
        elif name == "tcp_keepalive_probes":
            tcp = replace(tcp, keepalive_count=int(value))
        elif name == "tcp_recovery":  # bit 0x1: RACK, 0x2: static reordering window
            bits = int(value, 0)
            tcp = replace(tcp, rack=bool(bits & 1), rack_static_reo_wnd=bool(bits & 2))
        elif name == "tcp_early_retrans":  # 3 and 4 enable tail loss probes
            tcp = replace(tcp, tlp=int(value) >= 3)
        elif name == "tcp_frto":
            tcp = replace(tcp, frto=value != "0")
        elif name == "tcp_dsack":
            tcp = replace(tcp, dsack=value != "0")
        elif name == "tcp_slow_start_after_idle":
            tcp = replace(tcp, slow_start_after_idle=value != "0")
        elif name == "tcp_ecn":
            tcp = replace(tcp, ecn=int(value))
        elif name == "tcp_fastopen":
            bits = int(value, 0)
            tcp = replace(tcp, fastopen=bits & 3)
            if bits & ~3:  # Linux's cookie-less and socket-option-less modes (0x200, 0x400...)
                effect.skipped.append(f"sysctl {name} bits {bits & ~3:#x} (usernet has client 1 and server 2)")
        else:
            effect.skipped.append(f"sysctl {name}={value}")
            return
    except ValueError:
        effect.skipped.append(f"sysctl {name}={value} (not a value usernet takes)")
        return
    effect.tcp = tcp
    effect.applied.append(f"sysctl {name}={value}")


def _route(effect: CommandEffect, line: str) -> None:
    words = line.split()
    tcp = effect.tcp
    for key, value in itertools.pairwise(words):
        if key == "initcwnd":
            tcp = replace(tcp, initial_window=int(value))
        elif key == "rto_min":
            tcp = replace(tcp, rto_min=_duration(value))
    if tcp == effect.tcp:
        effect.skipped.append(line)
        return
    effect.tcp = tcp
    effect.applied.append(line)


def _duration(text: str) -> float:
    """`ip route`'s times: 200ms, 1s, or plain milliseconds."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    return float(text) / 1000


__all__ = [
    "LINUX",
    "PACKETDRILL",
    "PACKETDRILL_DEFAULTS",
    "PROFILES",
    "USERNET",
    "CommandEffect",
    "Profile",
    "apply_command",
    "window_scale_for",
]
