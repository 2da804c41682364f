"""An httpx.AsyncClient run unmodified on usernet: how many connections did COUNT GETs need?

    python httpx_client.py URL COUNT [CAFILE] [--pause SECONDS]

Prints the connection numbers the server answered from (see http_counter.py), as
"connections N". With --pause it waits that long after the first request (the server
may close the idle connection meanwhile), then makes the rest.
"""

import asyncio
import ssl
import sys

import httpx

args = sys.argv[1:]
pause = 0.0
if "--pause" in args:
    i = args.index("--pause")
    pause = float(args[i + 1])
    del args[i : i + 2]


async def main() -> None:
    url, count = args[0], int(args[1])
    verify = ssl.create_default_context(cafile=args[2]) if len(args) > 2 else True
    seen = []
    async with httpx.AsyncClient(verify=verify) as client:
        for i in range(count):
            response = await client.get(url)
            assert response.status_code == 200, response
            seen.append(response.text)
            if i == 0 and pause:
                await asyncio.sleep(pause)
    print(f"connections {len(set(seen))} of {len(seen)}", flush=True)


asyncio.run(main())
