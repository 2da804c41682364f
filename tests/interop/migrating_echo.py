"""An asyncio echo server that knows nothing of usernet, for the restart test.

It is run as `python -m usernet --handover PATH migrating_echo.py PORT protocol|streams`. It
reads one line on stdin before it creates its server (the test says when; the takeover
happens at the program's first use of the network), then echoes:

- `protocol`: a Protocol writing back in `data_received`, with flow control (while the
  transport's write buffer is full it stops reading), so every byte is echoed or in the stack;
- `streams`: `asyncio.start_server`, `reader.read` / `writer.write` / `await writer.drain()`,
  while the StreamReader buffers ahead of the loop (what a handover must carry too).
"""

import asyncio
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(port: int, api: str) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    if api == "streams":
        server = await asyncio.start_server(echo, None, port)
    else:
        server = await loop.create_server(Echo, None, port)
    print("serving", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
