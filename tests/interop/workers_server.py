"""An asyncio server that knows nothing of usernet, for the workers test: run as
`python -m usernet --workers N workers_server.py PORT`.

Each connection sends one line and gets one line back:
- `pid`: the serving process's PID (so a client can tell which worker answered);
- `out HOST PORT [WORD]`: the server opens a connection of its own to HOST:PORT, sends WORD
  (default `hello`), and answers with its PID and the line it read back (a worker-initiated
  connection).
"""

import asyncio
import os
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    words = (await reader.readline()).decode().split()
    if words[:1] == ["out"]:
        out_reader, out_writer = await asyncio.open_connection(words[1], int(words[2]))
        out_writer.write(f"{words[3] if len(words) > 3 else 'hello'}\n".encode())
        answer = (await out_reader.readline()).decode().strip()
        out_writer.close()
        writer.write(f"{os.getpid()} {answer}\n".encode())
    else:
        writer.write(f"{os.getpid()}\n".encode())
    await writer.drain()
    writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, None, port)
    # One write of the whole line: the workers share the pipe, and print() writes in pieces that interleave.
    os.write(sys.stdout.fileno(), f"serving {os.getpid()}\n".encode())
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
