"""usernet: a userspace TCP/UDP/IP stack for asyncio on a Linux TAP device."""

__version__ = "0.1.0"
