"""`usernet ss` and `usernet stats`: the control socket's answers printed as `ss -tin` and counters."""

from __future__ import annotations

from typing import Any

__all__ = ["format_sockets", "format_stats"]

#: ss's names for the TCP states.
_STATES = {
    "ESTABLISHED": "ESTAB", "SYN_SENT": "SYN-SENT", "SYN_RECEIVED": "SYN-RECV", "FIN_WAIT_1": "FIN-WAIT-1",
    "FIN_WAIT_2": "FIN-WAIT-2", "TIME_WAIT": "TIME-WAIT", "CLOSED": "UNCONN", "CLOSE_WAIT": "CLOSE-WAIT",
    "LAST_ACK": "LAST-ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING", "UNCONN": "UNCONN",
}  # fmt: skip  # a table: several pairs a line
_HEADER = (
    f"{'Netid':<6}{'State':<11}{'Recv-Q':>7} {'Send-Q':>7} {'Local Address:Port':<22} {'Peer Address:Port':<22} Process"
)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3f}".rstrip("0").rstrip(".")


def _tcp_details(info: dict[str, Any]) -> str:
    """The second line `ss -i` prints, with the fields TcpConnection.info() has."""
    parts = []
    if info.get("sack"):
        parts.append("sack")
    if info.get("timestamps"):
        parts.append("ts")
    snd, rcv = info.get("wscale", (0, 0))
    parts += [
        f"wscale:{snd},{rcv}",
        f"rto:{_ms(info['rto'])}",
        f"rtt:{_ms(info['rtt'])}/{_ms(info['rttvar'])}",
        f"mss:{info['mss']}",
        f"cwnd:{info['cwnd'] // max(1, info['mss'])}",  # in segments, as ss counts (the stack counts bytes)
    ]
    if info.get("ssthresh") is not None and info["ssthresh"] < 1 << 30:  # not the initial "infinity"
        parts.append(f"ssthresh:{info['ssthresh'] // max(1, info['mss'])}")
    parts += [
        f"bytes_sent:{info['bytes_sent']}",
        f"bytes_received:{info['bytes_received']}",
        f"segs_out:{info['segs_out']}",
        f"segs_in:{info['segs_in']}",
        f"snd_wnd:{info['snd_wnd']}",
        f"rcv_wnd:{info['rcv_wnd']}",
        f"unacked:{info['unacked']}",
        f"retrans:{info['retransmits']}",
    ]
    return "\t " + " ".join(parts)


def format_sockets(
    answers: list[dict[str, Any]],
    *,
    tcp: bool = True,
    udp: bool = True,
    listening: bool = False,
    every: bool = False,
    details: bool = False,
) -> list[str]:
    """Lines as `ss` prints them: listening sockets only with `listening`, all with `every`, else the others."""
    lines = [_HEADER]
    wanted = {proto for proto, on in (("tcp", tcp), ("udp", udp)) if on}
    for answer in answers:
        if "error" in answer:
            lines.append(f"# pid {answer.get('pid', '?')}: {answer['error']}")
            continue
        argv = answer.get("argv") or ["?"]
        name = (argv[1] if argv[0] in ("-c", "-m") and len(argv) > 1 else argv[0]).rsplit("/", 1)[-1]
        process = f'users:(("{name}",pid={answer["pid"]}))'
        for sock in answer["sockets"]:
            if sock["proto"] not in wanted:
                continue
            is_listening = sock["state"] in ("LISTEN", "UNCONN")
            if not every and is_listening != listening:
                continue
            state = _STATES.get(sock["state"], sock["state"])
            lines.append(
                f"{sock['proto']:<6}{state:<11}{sock['recv_q']:>7} {sock['send_q']:>7} "
                f"{sock['local']:<22} {sock['remote']:<22} {process}"
            )
            if details and sock["proto"] == "tcp" and "info" in sock:
                lines.append(_tcp_details(sock["info"]))
    return lines


def format_stats(answers: list[dict[str, Any]]) -> list[str]:
    """Each process's interface and its non-zero counters, one per line."""
    lines = []
    for answer in answers:
        if "error" in answer:
            lines.append(f"# pid {answer.get('pid', '?')}: {answer['error']}")
            continue
        iface = answer["interface"]
        lines.append(f"pid {answer['pid']} ({' '.join(answer['argv'])}): mac {iface['mac']} mtu {iface['mtu']}")
        lines += [f"  {name:<28}{value}" for name, value in sorted(answer["counters"].items()) if value]
    return lines
