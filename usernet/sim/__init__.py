"""Simulated networks for asyncio programs: usernet's real TCP/IP, virtual time, one process, no root.

    from usernet import sim

    net = sim.Network(seed=7)
    net.host("server", server_main, address="10.0.0.1/24")
    net.client("client", client_main, address="10.0.0.2/24")
    net.link("server", "client", latency=0.02, loss=0.05, bandwidth=10e6)
    net.run(timeout=600)

See docs/simulation.md for the tutorial and what is and is not simulated.
"""

from __future__ import annotations

from usernet.sim.loop import SimulationDeadlock, current
from usernet.sim.network import SEED_VARIABLE, Network, SimulationTimeout, default_seed

__all__ = ["SEED_VARIABLE", "Network", "SimulationDeadlock", "SimulationTimeout", "current_host", "default_seed"]


def current_host() -> str | None:
    """The name of the simulated host the calling code runs on (None outside every host)."""
    host = current()
    return None if host is None else host.name
