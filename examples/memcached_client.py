"""A memcached client with aiomcache: a plain program that knows nothing of usernet.

    python examples/memcached_client.py HOST [PORT] [COUNT]
    python -m usernet examples/memcached_client.py 192.0.2.1      # the same file, on usernet

It stores COUNT keys (default 1000), reads them back, checks every value and prints
one summary line; the exit status is 0 when all came back intact.
"""

import asyncio
import sys
import time

import aiomcache


async def main(host: str, port: int, count: int) -> int:
    client = aiomcache.Client(host, port, pool_size=4)
    start = time.monotonic()
    try:
        for i in range(count):
            await client.set(b"key%d" % i, b"value %d " % i * (1 + i % 50))
        wrong = 0
        for i in range(count):
            if await client.get(b"key%d" % i) != b"value %d " % i * (1 + i % 50):
                wrong += 1
    finally:
        await client.close()
    elapsed = time.monotonic() - start
    print(f"{count} set/get pairs against {host}:{port} in {elapsed:.2f} s, {wrong} wrong", flush=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 11211
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    sys.exit(asyncio.run(main(sys.argv[1], port, count)))
