"""The RFC 867 daytime server of the gen_tcp talk, on usernet.socket with plain blocking calls.

    python -m usernet --sandbox examples/socket_daytime.py [PORT] [COUNT]

It accepts a connection, sends the date and time, shuts the connection down and
accepts the next (COUNT of them, or forever when 0), from a plain thread: each call
crosses to the stack's loop and blocks, with a timeout, for its answer.
"""

import socket
import sys
import time

from usernet.socket import Stack


def serve(port: int, count: int) -> None:
    with Stack.start() as stack, stack.open(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setopt(("socket", "reuseaddr"), True)
        listener.bind(("0.0.0.0", port))
        listener.listen(16)
        print(f"daytime listening on {listener.sockname()}", flush=True)
        served = 0
        while count == 0 or served < count:
            with listener.accept(timeout=None) as conn:
                conn.send(time.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode(), timeout=5)
                conn.shutdown(socket.SHUT_RDWR)
            served += 1


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 13, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
