"""An aiohttp application served on 127.0.0.1 from its own thread and event loop: the real HTTP server that
the OpenAI-compatible and Hub-like test servers (testsupport/rationale_stub.py, tests/test_data_prep_hub.py)
run in, so a test's client talks to a socket, not a mock."""
from __future__ import annotations

import asyncio
import threading
from typing import Callable, Optional

from aiohttp import web


class ThreadedApp:
    """``with ThreadedApp(add_routes) as srv:`` serves the application ``add_routes(app)`` builds on a free port
    of 127.0.0.1 (``srv.port``, ``srv.base_url`` = ``http://127.0.0.1:PORT``) until the block ends."""

    def __init__(self, add_routes: Callable[[web.Application], None], start_timeout: float = 10.0):
        self._add_routes = add_routes
        self._start_timeout = start_timeout
        self.port: Optional[int] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def __enter__(self) -> 'ThreadedApp':
        ready = threading.Event()
        failure: list = []

        def serve() -> None:
            self.loop = asyncio.new_event_loop()
            app = web.Application()
            self._add_routes(app)
            runner = web.AppRunner(app)
            try:
                self.loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, '127.0.0.1', 0)
                self.loop.run_until_complete(site.start())
                self.port = site._server.sockets[0].getsockname()[1]
            except BaseException as e:  # noqa: BLE001 - reported to the thread that waits for the start
                failure.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())
            self.loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(self._start_timeout):
            raise RuntimeError(f'the test server did not start in {self._start_timeout:.0f} s')
        if failure:
            raise RuntimeError(f'the test server did not start: {failure[0]!r}') from failure[0]
        return self

    def __exit__(self, *exc) -> None:
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
