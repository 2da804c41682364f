"""An ordinary aiohttp client, run unmodified on usernet by the network tests.

    python aiohttp_fetch.py BASE_URL SIZE

Fetches BASE_URL/file and posts SIZE bytes (a fixed pattern) to BASE_URL/sha256 (the
routes of aiohttp_app.py), retrying the first request while the server comes up, and
prints one line: the size and SHA-256 of what it fetched, then the server's answer for
what it posted.
"""

import asyncio
import hashlib
import sys

import aiohttp


async def main(base: str, size: int) -> None:
    async with aiohttp.ClientSession() as session:
        for attempt in range(50):
            try:
                response = await session.get(f"{base}/file")
                break
            except aiohttp.ClientConnectionError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        digest = hashlib.sha256()
        fetched = 0
        async with response:
            async for chunk in response.content.iter_any():
                digest.update(chunk)
                fetched += len(chunk)
        body = bytes(range(256)) * (size // 256)
        async with session.post(f"{base}/sha256", data=body) as posted:
            answer = (await posted.text()).strip()
    print(f"{fetched} {digest.hexdigest()} {answer}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
