"""memcached `get` the gen_tcp way: read the header line, switch to raw, read exactly the value.

    python -m usernet examples/memcached_get.py HOST KEY [PORT]

The reply to `get KEY` is `VALUE KEY FLAGS BYTES\\r\\n`, the value, `\\r\\nEND\\r\\n` (or just
`END\\r\\n`). The value may hold "\\r\\n" itself, so lines cannot carry it: after the
header the socket switches to raw mode and reads BYTES + 2 bytes, then back to lines
for END — without losing what was already buffered. Prints the value as a Python bytes
literal (the talk's IO.inspect); exit status 1 when the key is absent.
"""

import asyncio
import sys

from usernet.framing import RAW, Framed, Line

CRLF = Line(b"\r\n", max_length=1024)


async def get(host: str, port: int, key: bytes) -> bytes | None:
    loop = asyncio.get_running_loop()
    _, framed = await loop.create_connection(lambda: Framed(CRLF), host, port)
    try:
        framed.send(b"get " + key + b"\r\n")
        header = await framed.recv(timeout=5)
        if header == b"END\r\n":
            return None
        _, name, _, size = header.split()
        assert name == key, header
        framed.setopts(packet=RAW)
        value = await framed.recv(int(size) + 2, timeout=5)
        framed.setopts(packet=CRLF)
        end = await framed.recv(timeout=5)
        assert end == b"END\r\n", end
        return value[:-2]
    finally:
        framed.close()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    found = asyncio.run(get(sys.argv[1], int(sys.argv[3]) if len(sys.argv) > 3 else 11211, sys.argv[2].encode()))
    if found is None:
        print("not found", flush=True)
        sys.exit(1)
    print(repr(found), flush=True)
