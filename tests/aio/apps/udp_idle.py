"""An unmodified asyncio program that opens one UDP endpoint (so usernet opens its link), says `ready`, and waits.

The tests that do something to a running program (signals, deleting its TAP) run this one.
"""

import asyncio


async def main() -> None:
    await asyncio.get_running_loop().create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("0.0.0.0", 7))
    print("ready", flush=True)
    await asyncio.sleep(60)


asyncio.run(main())
