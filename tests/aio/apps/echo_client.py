"""An ordinary asyncio client: send SIZE bytes to HOST PORT, read the echo, print names and hashes.

python echo_client.py HOST PORT SIZE
"""

import asyncio
import hashlib
import random
import sys


async def main(host: str, port: int, size: int) -> None:
    data = random.Random(size).randbytes(size)
    reader, writer = await asyncio.open_connection(host, port)
    print("sockname", writer.get_extra_info("sockname"), "peername", writer.get_extra_info("peername"), flush=True)

    async def send() -> None:
        for at in range(0, size, 1 << 16):
            writer.write(data[at : at + (1 << 16)])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = hashlib.sha256()
    received = 0
    while chunk := await reader.read(1 << 16):
        got.update(chunk)
        received += len(chunk)
    await sender
    writer.close()
    print("received", received, "same" if got.digest() == hashlib.sha256(data).digest() else "DIFFERENT", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
