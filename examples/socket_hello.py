"""The two-way "HELLO?" server of the gen_tcp talk, on usernet.socket from coroutines, passive mode.

    python -m usernet --sandbox examples/socket_hello.py [PORT]

Each client gets "HELLO?", has 10 seconds to send its name, gets "Hello, <name>!"
and is shut down. Accepting uses NOWAIT: the SelectInfo handle is awaited, then
accept is called again, as in Erlang's socket module.
"""

import asyncio
import socket
import sys

from usernet.socket import NOWAIT, SelectInfo, Socket, Stack


async def greet(conn: Socket) -> None:
    with conn:
        await conn.asend(b"HELLO?", timeout=5)
        try:
            name = await conn.arecv(0, timeout=10)  # whatever arrives: the name
        except TimeoutError:
            return
        assert isinstance(name, bytes)
        await conn.asend(b"Hello, " + name.strip() + b"!\r\n", timeout=5)
        conn.shutdown(socket.SHUT_RDWR)


async def main(port: int) -> None:
    stack = Stack.current()
    with stack.open(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("0.0.0.0", port))
        listener.listen(16)
        print(f"hello listening on {listener.sockname()}", flush=True)
        tasks = set()
        while True:
            conn = listener.accept(timeout=NOWAIT)
            if isinstance(conn, SelectInfo):
                await conn  # notified when a connection may be waiting
                continue
            task = asyncio.create_task(greet(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4001))
    except KeyboardInterrupt:
        pass
