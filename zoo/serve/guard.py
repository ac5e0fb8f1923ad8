"""The ASGI middleware every request passes: API key, declared body size, never a 500
without a message, and the request metrics. Plain ASGI (Starlette's BaseHTTPMiddleware
costs a task, a stream and a response copy per request)."""
from __future__ import annotations

import hmac
import time
from typing import Any

__all__ = ["Guard", "allow_lists", "authorized", "error", "refusal", "LOOPBACK_HOSTS"]


def error(status: int, msg: str, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": msg}, status_code=status, headers=headers)


def authorized(headers: Any, expected: bytes) -> bool:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared in constant time."""
    auth = headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else \
        headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), expected)


#: the names a server bound to loopback answers to by default (DNS rebinding: a web page's
#: own domain made to resolve to 127.0.0.1 arrives with its own name in Host)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _hostname(value: str) -> str:
    """``"[::1]:8000"`` -> ``"::1"``, ``"Example.com:80"`` -> ``"example.com"``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allow_lists(hosts: Any, origins: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Host and Origin allow-lists as :func:`refusal` compares them (lower case, no port
    on a host, no trailing slash on an origin; ``"*"`` kept)."""
    return (tuple(_hostname(h) if h != "*" else h for h in hosts),
            tuple(o.lower().rstrip("/") for o in origins))


def refusal(headers: Any, hosts: tuple[str, ...], origins: tuple[str, ...],
            path: str, method: str) -> tuple[int, str] | None:
    """Why a request is refused before the app sees it (Host, Origin, a browser's simple
    content type), or None. ``hosts`` and ``origins`` as :func:`allow_lists` gives them."""
    host = _hostname(headers.get("host", ""))
    if "*" not in hosts and host not in hosts:
        return 421, (f"Host {host[:60]!r} is not served here (zoo serve --allow-host NAME, "
                     f"or ZOO_SERVE_ALLOWED_HOSTS)")
    origin = headers.get("origin")
    if origin is not None and "*" not in origins and origin.lower() not in origins:
        from urllib.parse import urlsplit

        if _hostname(urlsplit(origin).netloc) != host or not urlsplit(origin).netloc:
            return 403, (f"cross-site request from {origin[:80]!r} refused (zoo serve "
                         f"--allow-origin ORIGIN, or ZOO_SERVE_ALLOWED_ORIGINS)")
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if method == "POST" and path.endswith("/feedback") and kind != "application/json":
        return 415, "POST /feedback takes Content-Type: application/json"
    if method == "POST" and kind == "text/plain":
        return 415, ("text/plain is not an accepted body: send JSON (application/json), a "
                     "multipart form or a raw file")
    return None


class Guard:
    """Wraps the app: the Host must be one served (``hosts``; ``"*"`` any) and a browser's
    cross-site request one of ``origins``; ``api_key`` on every route but ``/health``; a
    declared Content-Length over ``max_body`` is refused before reading (a chunked body is
    bounded while read, by :mod:`zoo.serve.inputs`); an exception becomes a one-line 500."""

    def __init__(self, app: Any, *, api_key: str | None, max_body: int, metrics: Any,
                 hosts: tuple[str, ...] = LOOPBACK_HOSTS, origins: tuple[str, ...] = ()
                 ) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body
        self.expected = api_key.encode() if api_key else None
        self.hosts, self.origins = allow_lists(hosts, origins)

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

        refused = refusal(headers, self.hosts, self.origins, path, scope["method"])
        if refused is not None:
            await error(*refused)(scope, receive, sending)
        elif self.expected is not None and path != "/health" and \
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
