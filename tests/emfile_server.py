"""A ConnectionServer with a cap its open-file limit cannot honour: run it under
``prlimit --nofile=N`` (``python -m tests.emfile_server``) and it runs out of file
descriptors before it reaches the cap. Prints its port, then serves ``GET /``."""

from __future__ import annotations

import asyncio

from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from webapp.service.connections import ConnectionServer
from webapp.service.logs import configure_logging


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hello")


async def main() -> None:
    configure_logging("INFO", "text")
    server = ConnectionServer(Application([(r"/", Hello)]), max_connections=1_000_000)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
