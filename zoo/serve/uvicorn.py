"""Run an ASGI app with uvicorn in a background thread on a loopback port (tests, demo,
benches)."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

__all__ = ["ServerThread", "run_in_thread"]


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
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan=lifespan, backlog=1024))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    return ServerThread(server, thread, f"http://{host}:{port}")
