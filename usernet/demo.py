"""`usernet demo`: usernet in a throwaway namespace, talked to by the kernel's own tools.

It shows the whole path — TAP, ARP, IPv4, ICMP, UDP — with the Linux kernel as the
peer, and cleans up after itself even when interrupted.
"""

from __future__ import annotations

import socket
import threading
import time

from usernet.host import Host
from usernet.sandbox import Sandbox
from usernet.selectloop import run
from usernet.services import UdpEcho
from usernet.stack import Interface, InterfaceConfig

USERNET_IP = "192.0.2.2"
KERNEL_CIDR = "192.0.2.1/24"


def run_demo() -> int:
    with Sandbox("demo") as sandbox:
        link = sandbox.create_tap("usernet0", host_address=KERNEL_CIDR)
        host = Host(link, Interface(InterfaceConfig.from_strings(link.mac, [f"{USERNET_IP}/24"])))
        echo = UdpEcho(host.iface)
        stop = threading.Event()
        thread = threading.Thread(target=run, args=(host, echo.handle), kwargs={"until": lambda now: stop.is_set()}, daemon=True)
        thread.start()
        try:
            print(f"usernet is up at {USERNET_IP} on a TAP inside namespace {sandbox.name}; the kernel side is {KERNEL_CIDR}\n")
            print(f"$ ping -c 3 -i 0.2 {USERNET_IP}   (kernel → usernet)")
            ok = _show(sandbox.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", USERNET_IP], capture_output=True, text=True))
            print(f"$ UDP echo: kernel socket → {USERNET_IP}:7")
            with sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(2.0)
                message = b"hello from the kernel side"
                start = time.monotonic()
                udp.sendto(message, (USERNET_IP, 7))
                reply, peer = udp.recvfrom(2048)
                print(f"  sent {message!r}, got {reply!r} back from {peer[0]}:{peer[1]} in {(time.monotonic() - start) * 1000:.2f} ms\n")
                ok = ok and reply == message
        finally:
            stop.set()
            thread.join(timeout=5)
            link.close()
        counters = {k: v for k, v in host.iface.stats().items() if v}
        print("usernet counters: " + ", ".join(f"{k}={v}" for k, v in counters.items()))
    print(f"namespace {sandbox.name} deleted.")
    return 0 if ok else 1


def _show(result: "object") -> bool:
    out = getattr(result, "stdout", "") or ""
    print("  " + out.strip().replace("\n", "\n  ") + "\n")
    return getattr(result, "returncode", 1) == 0
