"""TLS over usernet transports with the stdlib's `asyncio.sslproto.SSLProtocol`.

SSLProtocol works on any loop given a raw transport with BufferedProtocol support and
`_force_close`; StreamTransport has both. uvloop's own `start_tls` refuses transports
that are not uvloop's, so the usernet loops start TLS here, on both base loops.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from asyncio import sslproto
from typing import Any

__all__ = ["app_transport", "check_client_options", "protocol", "start_tls"]


def check_client_options(
    ssl: Any,
    host: str | None,
    server_hostname: str | None,
    handshake_timeout: float | None,
    shutdown_timeout: float | None,
) -> str | None:
    """The stdlib's argument checks of `create_connection`; returns the server_hostname to use."""
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    if handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    return server_hostname


def protocol(
    loop: asyncio.AbstractEventLoop,
    app_protocol: asyncio.BaseProtocol,
    context: ssl_module.SSLContext | None,
    waiter: asyncio.Future[None] | None,
    *,
    server_side: bool,
    server_hostname: str | None,
    handshake_timeout: float | None,
    shutdown_timeout: float | None,
    call_connection_made: bool = True,
) -> sslproto.SSLProtocol:
    """The SSLProtocol to put under `app_protocol` (context None: the stdlib's default for the side)."""
    # The stub is narrower than the stdlib, which takes None for the context (its default) and the
    # waiter, and seconds as a float.
    return sslproto.SSLProtocol(
        loop, app_protocol, context, waiter, server_side, server_hostname,  # type: ignore[arg-type]  # stub: above
        call_connection_made=call_connection_made,
        ssl_handshake_timeout=handshake_timeout, ssl_shutdown_timeout=shutdown_timeout,  # type: ignore[arg-type]  # same
    )  # fmt: skip  # argument groups a line, as the stdlib's signature reads


def app_transport(ssl_protocol: sslproto.SSLProtocol) -> asyncio.Transport:
    """The transport the application protocol gets from `ssl_protocol`: what create_connection and start_tls return.

    SSLProtocol offers it only as the private `_app_transport` (made in its `__init__`,
    dropped at connection_lost). The stdlib's own loops read that field for the same
    purpose (the selector and proactor loops' `_make_ssl_transport`, `start_tls`), on
    3.11 to 3.13 alike, so it is as stable as asyncio's TLS itself. It is read here and
    nowhere else, so a Python that renames it breaks one line, and tests/aio/test_tls.py
    checks it on every Python the tests run on.
    """
    return ssl_protocol._app_transport


async def start_tls(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.BaseTransport,
    app_protocol: asyncio.BaseProtocol,
    context: ssl_module.SSLContext,
    *,
    server_side: bool,
    server_hostname: str | None,
    handshake_timeout: float | None,
    shutdown_timeout: float | None,
) -> asyncio.Transport:
    """`loop.start_tls` for a usernet transport, as the stdlib does it for its own."""
    if not isinstance(context, ssl_module.SSLContext):
        raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, got {context!r}")
    waiter = loop.create_future()
    ssl_protocol = protocol(
        loop, app_protocol, context, waiter, server_side=server_side, server_hostname=server_hostname,
        handshake_timeout=handshake_timeout, shutdown_timeout=shutdown_timeout, call_connection_made=False,
    )  # fmt: skip  # argument groups a line, as SSLProtocol's signature reads
    transport.pause_reading()  # type: ignore[attr-defined]  # a usernet StreamTransport, checked by the caller
    transport.set_protocol(ssl_protocol)
    made = loop.call_soon(ssl_protocol.connection_made, transport)
    resumed = loop.call_soon(transport.resume_reading)  # type: ignore[attr-defined]  # as above
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    return app_transport(ssl_protocol)
