"""A kernel-side HTTP/1.1 server for the network tests: each answer names the connection it came on.

    python http_counter.py HOST PORT [CERT KEY] [--idle SECONDS]

Keep-alive on; the body of every answer is the number of the connection (1, 2, ...),
so a client can count the connections (and, over TLS, the handshakes) it needed.
With --idle the server closes a connection idle that long. Prints "ready" once listening.
"""

import http.server
import itertools
import ssl
import sys

args = sys.argv[1:]
idle = None
if "--idle" in args:
    i = args.index("--idle")
    idle = float(args[i + 1])
    del args[i : i + 2]
host, port = args[0], int(args[1])
numbers = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = idle
    # The headers and the body go out in two writes; with Nagle the body waits for the ACK of
    # the headers, which a client delays (40 ms on Linux, as on usernet): 50 ms per GET.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.number = next(numbers)

    def do_GET(self) -> None:
        body = str(self.number).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


server = http.server.ThreadingHTTPServer((host, port), Handler)
if len(args) == 4:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args[2], args[3])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
