"""TLS on usernet transports: ssl= servers and clients and start_tls, in memory, on both base loops.

The certificate is self-signed, made in the test with the `cryptography` package.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest

from tests.aio.conftest import A_IP, B_IP, Pair, connect_from_b, serve_on_b
from usernet.aio import tls

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for "usernet.test" and both test addresses."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "usernet.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("usernet.test"), x509.IPAddress(ipaddress.IPv4Address(A_IP)),
            x509.IPAddress(ipaddress.IPv4Address(B_IP)),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip  # arguments grouped a line, compact
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def contexts(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(*certificate)
    client = ssl.create_default_context(cafile=str(certificate[0]))
    return server, client


async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


class Upper(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # connection_made's transport is this kind

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


def test_ssl_client_through_the_loop(pair: Pair, contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        await serve_on_b(pair, Upper, 443, ssl=server_ctx)
        reader, writer = await asyncio.open_connection(B_IP, 443, ssl=client_ctx, server_hostname="usernet.test")
        assert writer.get_extra_info("peercert")["subject"] == ((("commonName", "usernet.test"),),)
        assert writer.get_extra_info("cipher") is not None and writer.get_extra_info("sslcontext") is client_ctx
        assert writer.get_extra_info("ssl_object").version().startswith("TLS")
        assert writer.get_extra_info("peername") == (B_IP, 443)
        big = b"x" * 300_000 + b"\n"
        writer.write(b"hello over tls\n" + big)
        assert await reader.readline() == b"HELLO OVER TLS\n"
        assert await reader.readexactly(len(big)) == big.upper()
        writer.close()
        await writer.wait_closed()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(B_IP, 443, ssl=True)  # the default context does not trust it

    pair.run(main())


def test_ssl_server_through_the_loop(pair: Pair, contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        server = await asyncio.start_server(upper, port=0, ssl=server_ctx, ssl_handshake_timeout=5)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await connect_from_b(pair, Collect, port, ssl=client_ctx, server_hostname=A_IP)
        assert not transport.can_write_eof()  # TLS transports cannot half-close
        transport.write(b"secret\n")
        while proto.data != b"SECRET\n":  # type: ignore[attr-defined]  # the test's own protocol or server class
            await asyncio.sleep(0.001)
        transport.close()
        await proto.done  # type: ignore[attr-defined]  # the test's own protocol or server class
        server.close()
        await server.wait_closed()

    pair.run(main())


def test_the_app_transport_is_read_from_sslprotocol() -> None:
    """`tls.app_transport` reads SSLProtocol's private `_app_transport` (the stdlib has no public way):
    this is the test that names it when a Python changes that field; the ones above go through it too
    (`open_connection(ssl=)` and `start_tls`)."""
    loop = asyncio.new_event_loop()
    try:
        app = asyncio.Protocol()
        ssl_protocol = tls.protocol(
            loop, app, ssl.create_default_context(), None, server_side=False, server_hostname="usernet.test",
            handshake_timeout=None, shutdown_timeout=None,
        )  # fmt: skip  # argument groups a line, as SSLProtocol's signature reads
        transport = tls.app_transport(ssl_protocol)
        assert isinstance(transport, asyncio.Transport)
        assert transport.get_protocol() is app
        assert tls.app_transport(ssl_protocol) is transport  # one object, made with the protocol
    finally:
        loop.close()


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set_result(None)


def test_start_tls_upgrades_a_plain_connection(pair: Pair, contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = contexts

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"go ahead\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        await upper(reader, writer)

    async def main() -> None:
        server = await asyncio.start_server(handle, port=0)
        port = server.sockets[0].getsockname()[1]
        # The client is on the peer stack, also upgraded with loop.start_tls.
        reader = asyncio.StreamReader()
        transport, protocol = await connect_from_b(pair, lambda: asyncio.StreamReaderProtocol(reader), port)
        writer = asyncio.StreamWriter(transport, protocol, reader, pair.loop)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"go ahead\n"
        await writer.start_tls(client_ctx, server_hostname="usernet.test")
        assert writer.get_extra_info("ssl_object") is not None
        writer.write(b"now private\n")
        assert await reader.readline() == b"NOW PRIVATE\n"
        writer.close()
        server.close()
        await server.wait_closed()

    pair.run(main())
