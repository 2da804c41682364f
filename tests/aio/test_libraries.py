"""Popular libraries, unmodified, on usernet in memory: aiohttp's server and client on both base loops.

aiohttp's client connects a kernel socket with `loop.sock_connect` and hands it to
`create_connection(sock=...)`; its FileResponse uses `loop.sendfile`. Both must stay on usernet.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.aio.conftest import B_IP, Pair, serve_on_b
from usernet.aio.stream import StreamTransport

web = pytest.importorskip("aiohttp.web")
aiohttp = pytest.importorskip("aiohttp")


def test_aiohttp_client_and_server(pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = os.urandom(3_000_000)
    (tmp_path / "file").write_bytes(content)
    sent: list[int] = []
    usernet_sendfile = StreamTransport.sendfile

    async def counting_sendfile(transport: StreamTransport, *args: object) -> int:
        sent.append(await usernet_sendfile(transport, *args))  # type: ignore[arg-type]  # as the loop passes them
        return sent[-1]

    monkeypatch.setattr(StreamTransport, "sendfile", counting_sendfile)

    async def file_response(request: web.Request) -> web.FileResponse:
        return web.FileResponse(tmp_path / "file")

    async def echo_hash(request: web.Request) -> web.Response:
        return web.Response(text=hashlib.sha256(await request.read()).hexdigest())

    async def main() -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.add_routes([web.post("/hash", echo_hash), web.get("/file", file_response)])
        runner = web.AppRunner(app)
        await runner.setup()
        await serve_on_b(pair, runner.server, 8080)  # type: ignore[arg-type]  # aiohttp's server is a protocol factory
        body = os.urandom(2_000_000)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://{B_IP}:8080/hash", data=body) as response:
                assert await response.text() == hashlib.sha256(body).hexdigest()
            async with session.get(f"http://{B_IP}:8080/file") as response:
                assert await response.read() == content
        assert sent == [len(content)]  # FileResponse went through usernet's loop.sendfile
        await runner.cleanup()

    pair.run(main())
