"""An ordinary aiohttp application, run unmodified on usernet by the network tests.

    python aiohttp_app.py FILE [PORT [HOST]]

HOST is where to listen: 0.0.0.0 by default, "::" for IPv6, "any" for every address of
both families (aiohttp's default, host=None).

GET / says hello; POST /sha256 answers the SHA-256 of the body; GET /chunked streams a
chunked body; GET /file is a FileResponse of FILE.
"""

import hashlib
import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello from aiohttp\n")


async def sha256(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.Response(text=f"{size} {digest.hexdigest()}\n")


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(100):
        await response.write(b"chunk %d\n" % i)
    await response.write_eof()
    return response


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    path = sys.argv[1]
    app.add_routes(
        [
            web.get("/", hello),
            web.post("/sha256", sha256),
            web.get("/chunked", chunked),
            web.get("/file", lambda request: web.FileResponse(path)),
        ]
    )
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
    host = sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0"
    web.run_app(app, host=None if host == "any" else host, port=port, print=lambda text: print(text, flush=True))


if __name__ == "__main__":
    main()
