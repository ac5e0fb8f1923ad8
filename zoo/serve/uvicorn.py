"""uvicorn as zoo runs it: HTTP protocols that close a connection whose request headers
do not arrive in time (slowloris: idle sockets with partial headers otherwise stay open
until the file descriptors run out), the settings every zoo server uses, and a server on
a background thread on a loopback port (tests, demo, benches)."""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ServerThread", "run_in_thread", "server_options", "H11WithTimeouts",
           "HttpToolsWithTimeouts", "header_seconds"]


def header_seconds() -> float:
    """How long a connection may take to send a request's headers
    (``ZOO_SERVE_HEADER_SECONDS``, default 10)."""
    try:
        value = float(os.environ.get("ZOO_SERVE_HEADER_SECONDS", "10"))
    except ValueError:
        value = 10.0
    return value if value > 0 else 10.0


class _HeaderTimeout:
    """Arms a timer when a connection opens and after each response: if no new request's
    headers have been read when it fires, the connection is closed. A request whose
    headers arrived is never cut (its body has its own deadline, and the app its own)."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._zoo_arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():  # type: ignore[attr-defined]
            self._zoo_arm()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_zoo_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _zoo_arm(self) -> None:
        timer = getattr(self, "_zoo_timer", None)
        if timer is not None:
            timer.cancel()
        self._zoo_waiting = self.cycle  # type: ignore[attr-defined]  # a new one: headers in
        self._zoo_timer = self.loop.call_later(header_seconds(),  # type: ignore[attr-defined]
                                               self._zoo_expire)

    def _zoo_expire(self) -> None:
        if self.cycle is self._zoo_waiting and \
                not self.transport.is_closing():  # type: ignore[attr-defined]
            self.transport.close()  # type: ignore[attr-defined]


class H11WithTimeouts(_HeaderTimeout, H11Protocol):
    """uvicorn's h11 protocol with a deadline on request headers."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsWithTimeouts(_HeaderTimeout, HttpToolsProtocol):
        """uvicorn's httptools protocol with a deadline on request headers."""
except ImportError:  # httptools not installed: h11 only
    HttpToolsWithTimeouts = None  # type: ignore[assignment,misc]


def server_options() -> dict[str, Any]:
    """What every zoo server passes to uvicorn: the protocol with header deadlines, a
    short keep-alive, and a graceful shutdown for the requests in flight."""
    return {"http": HttpToolsWithTimeouts or H11WithTimeouts, "timeout_keep_alive": 5,
            "timeout_graceful_shutdown": 30}


class ServerThread:
    def __init__(self, server: Any, thread: threading.Thread, url: str) -> None:
        self.server, self.thread, self.url = server, thread, url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0,
                  lifespan: str = "on") -> ServerThread:
    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    opts = server_options()
    opts.pop("timeout_graceful_shutdown")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan=lifespan, backlog=1024, **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    return ServerThread(server, thread, f"http://{host}:{port}")
