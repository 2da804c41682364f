"""A redis-py asyncio client, run unmodified on usernet by the network tests.

    python redis_client.py HOST PORT COUNT

Stores COUNT keys from four concurrent tasks, reads them back, prints "<count> ok" or
the number of wrong values.
"""

import asyncio
import sys

import redis.asyncio as redis


async def worker(client: "redis.Redis", keys: range) -> int:
    for i in keys:
        await client.set(f"key{i}", f"value {i} " * (1 + i % 50))
    wrong = 0
    for i in keys:
        if await client.get(f"key{i}") != (f"value {i} " * (1 + i % 50)).encode():
            wrong += 1
    return wrong


async def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = redis.Redis(host=host, port=port, socket_keepalive=True)
    try:
        wrong = sum(await asyncio.gather(*(worker(client, range(k, count, 4)) for k in range(4))))
    finally:
        await client.aclose()
    print(f"{count} ok" if not wrong else f"{wrong} wrong", flush=True)


asyncio.run(main())
