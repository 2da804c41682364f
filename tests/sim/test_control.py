"""Control of a running network: holds, one-way partitions, faults changed mid-run, hosts, captures."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.sim.echo import echo_server
from usernet import sim
from usernet.programs import find


def _network(client: sim.network.Main, seed: int = 0) -> sim.Network:
    net = sim.Network(seed=seed)
    net.host("server", echo_server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    return net


def test_hold_then_release_delivers_late_and_in_order() -> None:
    seen: list[tuple[bytes, float]] = []

    async def client() -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("server", 7)
        net.hold("client", "server", oneway=True)
        net.after(3, net.release, "client", "server", oneway=True)
        writer.write(b"held")
        seen.append((await reader.readexactly(4), loop.time()))

    net = _network(client)
    net.run(timeout=60)
    [(data, at)] = seen
    assert data == b"held" and 3 <= at < 3.1  # arrived on release (or the retransmission right after)


def test_one_way_partition_keeps_the_other_way() -> None:
    seen: dict[str, object] = {}

    async def client() -> None:
        reader, writer = await asyncio.open_connection("server", 7)
        net.partition("server", "client", oneway=True)  # the answers are lost, the requests get through
        writer.write(b"x")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), 2)
        seen["to server"] = net.faults("client", "server")["delivered"]
        seen["cut"] = net.faults("server", "client")["cut"]
        net.repair("server", "client", oneway=True)
        seen["late"] = await reader.readexactly(1)  # the server's retransmission arrives

    net = _network(client)
    net.run(timeout=60)
    assert seen["late"] == b"x"
    assert isinstance(seen["cut"], int) and seen["cut"] > 0
    assert isinstance(seen["to server"], int) and seen["to server"] > 0


def test_faults_change_mid_run() -> None:
    timings: list[float] = []

    async def client() -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("server", 7)
        for latency in (0.001, 0.1):
            net.link("client", "server", latency=latency)
            start = loop.time()
            writer.write(b"ping")
            await reader.readexactly(4)
            timings.append(loop.time() - start)
        net.link("client", "server", bandwidth=1e6)  # 125 kB/s: 250 kB take about two seconds each way
        start = loop.time()
        writer.write(bytes(250_000))
        await reader.readexactly(250_000)
        timings.append(loop.time() - start)

    net = _network(client)
    net.run(timeout=120)
    assert timings[0] == pytest.approx(0.002, abs=1e-6)
    assert timings[1] == pytest.approx(0.2, abs=1e-6)
    assert timings[2] > 2.0


def test_every_task_stays_on_its_host() -> None:
    hosts: list[str | None] = []

    async def client() -> None:
        async def child() -> None:
            hosts.append(sim.current_host())
            reader, writer = await asyncio.open_connection("server", 7)
            writer.write(b"!")
            assert await reader.readexactly(1) == b"!"
            hosts.append(writer.get_extra_info("sockname")[0])

        await asyncio.gather(asyncio.create_task(child()), asyncio.get_running_loop().create_task(child()))

    net = _network(client)
    net.run(timeout=60)
    assert hosts.count("client") == 2 and hosts.count("10.0.0.2") == 2


def test_names_resolve_and_the_kernel_is_out_of_reach() -> None:
    errors: list[BaseException] = []

    async def client() -> None:
        for target in (("127.0.0.1", 7), ("192.0.2.99", 7)):
            try:
                await asyncio.open_connection(*target)
            except OSError as exc:
                errors.append(exc)
        try:
            await asyncio.open_connection("example.com", 80)
        except OSError as exc:
            errors.append(exc)

    net = _network(client)
    net.run(timeout=60)
    assert len(errors) == 3
    assert "not on the simulated network" in str(errors[0])
    assert "not a host of the simulated network" in str(errors[2])


def test_code_outside_a_host_has_no_network() -> None:
    async def client() -> None:
        loop = asyncio.get_running_loop()
        outside = loop.create_task(asyncio.open_connection("server", 7), context=__import__("contextvars").Context())
        with pytest.raises(RuntimeError, match="no simulated host"):
            await outside

    _network(client).run(timeout=10)


def test_capture_is_readable_by_tshark(tmp_path: Path) -> None:
    async def client() -> None:
        reader, writer = await asyncio.open_connection("server", 7)
        writer.write(b"captured")
        await reader.readexactly(8)

    net = _network(client)
    net.capture(tmp_path)
    net.run(timeout=60)
    tshark = find("tshark")
    out = subprocess.run(
        [tshark, "-r", str(tmp_path / "client.pcap"), "-Y", "tcp.port == 7", "-T", "fields", "-e", "tcp.flags.str"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "S" in out and "F" in out  # the handshake and the close, as tshark decodes them
    assert (tmp_path / "server.pcap").stat().st_size > 24


def _echo_through(net: sim.Network, payload: bytes, **faults: float) -> bytes:
    echoed: list[bytes] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("server", 7)
        writer.write(payload)
        echoed.append(await reader.readexactly(len(payload)))

    net.host("server", echo_server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.link("client", "server", **faults)
    net.run(timeout=300)
    return echoed[0]


PAYLOAD = bytes(range(256)) * 2000


def test_corruption_and_duplication_are_caught_by_tcp() -> None:
    net = sim.Network(seed=0)
    assert _echo_through(net, PAYLOAD, corrupt=0.03, duplicate=0.05) == PAYLOAD
    faults = [net.faults("client", "server"), net.faults("server", "client")]
    assert all(f["corrupted"] > 0 and f["duplicated"] > 0 for f in faults), faults
    dropped = sum(v for host in ("client", "server") for k, v in net.stats(host).items() if "checksum" in k)
    assert dropped > 0  # the flipped bits were seen and the frames dropped, not delivered


def test_what_the_internet_checksum_cannot_see_reaches_the_application() -> None:
    """Two opposite flips of the same bit in two 16-bit words leave the checksum unchanged: as on
    a real network, this seed's corruption passes TCP (one bit set at one even offset, cleared at another)."""
    net = sim.Network(seed=5)
    got = _echo_through(net, PAYLOAD, corrupt=0.03)
    diff = [(i, PAYLOAD[i] ^ got[i]) for i in range(len(PAYLOAD)) if got[i] != PAYLOAD[i]]
    assert [bits for _, bits in diff] == [0x20, 0x20] and all(i % 2 == 0 for i, _ in diff)
