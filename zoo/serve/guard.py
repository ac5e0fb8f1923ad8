"""The ASGI middleware every request passes: API key, declared body size, never a 500
without a message, and the request metrics. Plain ASGI (Starlette's BaseHTTPMiddleware
costs a task, a stream and a response copy per request)."""
from __future__ import annotations

import hmac
import time
from typing import Any

__all__ = ["Guard", "authorized", "error"]


def error(status: int, msg: str, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": msg}, status_code=status, headers=headers)


def authorized(headers: Any, expected: bytes) -> bool:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared in constant time."""
    auth = headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else \
        headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), expected)


class Guard:
    """Wraps the app: ``api_key`` on every route but ``/health``; a declared
    Content-Length over ``max_body`` is refused before reading (a chunked body is bounded
    while read, by :mod:`zoo.serve.inputs`); an exception becomes a one-line 500."""

    def __init__(self, app: Any, *, api_key: str | None, max_body: int, metrics: Any) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body
        self.expected = api_key.encode() if api_key else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers

        t = time.perf_counter()
        path = scope["path"]
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        status = [500, False]  # the status sent, whether the response started

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[:] = [message["status"], True]
            await send(message)

        if self.expected is not None and path != "/health" and \
                not authorized(headers, self.expected):
            await error(401, "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                             "'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"})(
                scope, receive, sending)
        elif length and length.isdigit() and int(length) > self.max_body:
            await error(413, f"request body over {self.max_body} bytes")(scope, receive,
                                                                          sending)
        else:
            try:
                await self.app(scope, receive, sending)
            except Exception as e:  # never a 500 without a message, never a dead server
                if status[1]:
                    raise
                await error(500, f"internal error: {type(e).__name__}")(scope, receive,
                                                                        sending)
        self.metrics.observe(path, status[0], time.perf_counter() - t)
