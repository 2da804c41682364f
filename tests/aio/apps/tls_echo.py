"""A TLS echo server with asyncio streams, run unmodified on usernet by the network tests.

python tls_echo.py CERT KEY [PORT]
"""

import asyncio
import ssl
import sys


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 4433
    server = await asyncio.start_server(echo, "0.0.0.0", port, ssl=context)
    print(f"TLS echo listening on {server.sockets[0].getsockname()}", flush=True)
    await server.serve_forever()


asyncio.run(main())
