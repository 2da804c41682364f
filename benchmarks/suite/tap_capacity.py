"""The raw capacity of a TAP on this machine: the ceiling for any stack that moves 1,514-byte frames through one.

Small C programs (`benchmarks/tapcap/*.c`, compiled at run time into a temporary
directory) write frames into a TAP as fast as one core allows, and read what the kernel
sends towards it. For the read test the kernel's side of the namespace sends UDP with
`sendmmsg` to a static neighbour (a permanent ARP entry for a made-up MAC) behind the TAP,
so every datagram leaves as one frame while the reader counts; it can only show the
smaller of the sender's and the reader's rates, so the sender's offer is reported too.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.harness import Benchmark, Measure, Metric, Settings, variant
from benchmarks.procs import check, run_json, start_server
from usernet.link.sandbox import Sandbox
from usernet.programs import find

SOURCES = Path(__file__).resolve().parent.parent / "tapcap"
TAP = "tapcap0"
KERNEL_IP = "192.0.2.1"
NEIGHBOUR_IP, NEIGHBOUR_MAC = "192.0.2.9", "02:00:00:00:00:09"
FRAME = 1514
PAYLOAD = FRAME - 14 - 20 - 8
MAX_FRAMES = 100_000_000


def compile_programs(into: Path) -> dict[str, str]:
    """Build tapwrite, tapread and udpblast with `cc -O2`; returns name → executable path."""
    cc = find("cc")  # MissingProgram names the package
    built = {}
    for name in ("tapwrite", "tapread", "udpblast"):
        out = into / name
        result = subprocess.run(
            [cc, "-O2", "-Wall", "-o", str(out), str(SOURCES / f"{name}.c")], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"compiling {name}.c failed: {result.stderr.strip()}")
        built[name] = str(out)
    return built


def prepare(sandbox: Sandbox) -> None:
    """A persistent TAP the programs attach to, with the kernel's address and the static neighbour."""
    ns = ["ip", "-n", sandbox.name]
    check([*ns, "tuntap", "add", "mode", "tap", "name", TAP])
    check(["ip", "netns", "exec", sandbox.name, "sysctl", "-qw", f"net.ipv6.conf.{TAP}.disable_ipv6=1"])
    check([*ns, "addr", "add", f"{KERNEL_IP}/24", "dev", TAP])
    check([*ns, "link", "set", TAP, "up"])
    check([*ns, "neigh", "add", NEIGHBOUR_IP, "lladdr", NEIGHBOUR_MAC, "dev", TAP, "nud", "permanent"])
    sink = sandbox.socket()  # receives what tapwrite sends, never read: the kernel drops at its full buffer
    sink.bind((KERNEL_IP, 9))


@contextmanager
def c_programs(settings: Settings) -> Iterator[Measure]:
    with tempfile.TemporaryDirectory(prefix="usernet-tapcap-") as tmp, Sandbox("bench-tapcap") as sandbox:
        programs = compile_programs(Path(tmp))
        prepare(sandbox)
        seconds = settings.seconds
        bound = seconds + 15

        def write() -> dict[str, float]:
            r = run_json(
                sandbox,
                [programs["tapwrite"], TAP, str(seconds), str(MAX_FRAMES), NEIGHBOUR_IP, KERNEL_IP],
                timeout=bound,
            )
            return {"frames": r["frames"] / r["seconds"], "mbytes": r["frames"] * FRAME / r["seconds"] / 1e6}

        def read() -> dict[str, float]:
            reader = start_server(sandbox, [programs["tapread"], TAP, str(seconds)])
            sender = run_json(
                sandbox,
                [programs["udpblast"], NEIGHBOUR_IP, "9", str(PAYLOAD), str(seconds + 1), str(MAX_FRAMES)],
                timeout=bound,
            )
            try:
                out, _ = reader.communicate(timeout=bound)
            except subprocess.TimeoutExpired:
                reader.kill()
                reader.communicate()
                raise RuntimeError(f"tapread overran its {bound:.0f} s bound and was killed") from None
            r = json.loads(out.decode().strip().splitlines()[-1])
            return {
                "frames": r["frames"] / r["seconds"],
                "mbytes": r["bytes"] / r["seconds"] / 1e6,
                "offered": sender["sent"] / sender["seconds"],
            }

        yield lambda case: write() if case == "write" else read()


BENCHMARKS = (
    Benchmark(
        name="tap_capacity",
        title="TAP capacity, 1,514-byte frames, C",
        order=30,
        meaning="Frames per second one C loop moves through a TAP: `write()` runs the kernel's receive "
        "path for each frame; `read()` takes frames the kernel sent (offered: what the kernel's sender "
        "managed; the reader cannot show more). No stack on this TAP at MTU 1500 can beat these.",
        metrics=(Metric("frames", "frames/s"), Metric("mbytes", "MB/s"), Metric("offered", "kernel offered frames/s")),
        cases=("write", "read"),
        variants=(variant("c", c_programs, label="C program"),),
    ),
)
