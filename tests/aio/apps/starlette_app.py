"""A Starlette app served by uvicorn on usernet's wildcard, run unmodified by the network tests.

python starlette_app.py PORT LOOP
"""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello from starlette")


app = Starlette(routes=[Route("/", hello)])
uvicorn.run(app, host="0.0.0.0", port=int(sys.argv[1]), loop=sys.argv[2], log_level="warning")
