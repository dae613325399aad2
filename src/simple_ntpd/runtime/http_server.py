"""The management HTTP listener: ``/metrics``, ``/health`` and ``/status``.

A small HTTP/1.1 server on the main process's asyncio loop, written here rather
than taken from a framework: it serves three GET routes to Prometheus, load
balancers and operators, and the daemon must stay up whatever arrives on the
port. Running on the loop (not the stdlib ``http.server`` in a thread) keeps
every handler on the same thread as the state it reads, so no locks are
needed, and makes the limits easy to hold:

* request line and each header line at most ``max_line`` bytes, the whole head
  at most ``max_head_bytes``, at most ``max_headers`` header lines;
* ``head_timeout`` to send a complete head (slow-loris), ``idle_timeout``
  between keep-alive requests, ``write_timeout`` for a reader that stops reading;
* at most ``max_connections`` at once; request bodies are refused.

Anything malformed gets a 4xx and the connection is closed; an exception in a
handler gets a 500 and is logged. Nothing a client sends ends the server.

Handlers are plain synchronous callables ``(HttpRequest) -> HttpResponse``; the
``metrics_handler``/``health_handler``/``json_handler`` helpers build the
usual ones, and :func:`build_registry` makes the Prometheus registry (the
``ntp_*`` collector plus process metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ALLOWED_METHODS = ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what one client may make the server hold or wait for."""

    max_line: int = 4096
    max_head_bytes: int = 16384
    max_headers: int = 64
    head_timeout: float = 10.0
    idle_timeout: float = 60.0
    write_timeout: float = 10.0
    max_connections: int = 64
    max_requests_per_connection: int = 10000


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A parsed request head. Header names are lower case."""

    method: str
    path: str
    query: str
    version: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[HttpRequest], HttpResponse]


class _BadRequest(Exception):
    """The head cannot be served; answer ``status`` and close."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def json_response(status: int, body: Mapping[str, Any]) -> HttpResponse:
    data = json.dumps(body, sort_keys=True, default=str).encode() + b"\n"
    return HttpResponse(status, data, "application/json")


def _error(status: int, detail: str) -> HttpResponse:
    return json_response(status, {"error": http.HTTPStatus(status).phrase, "detail": detail})


# -- handler builders -------------------------------------------------------


def build_registry(collector: Collector, *, process_metrics: bool = True) -> CollectorRegistry:
    """A registry with the ``ntp_*`` collector and, by default, ``process_*`` metrics
    (of this, the main, process)."""
    registry = CollectorRegistry()
    registry.register(collector)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """Prometheus exposition, OpenMetrics when the scraper asks for it."""

    def handle(request: HttpRequest) -> HttpResponse:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return HttpResponse(200, encoder(registry), content_type)

    return handle


def health_handler(check: Callable[[], tuple[int, Mapping[str, Any]]]) -> Handler:
    """``check`` returns (status, body), e.g. :func:`simple_ntpd.observe.health.health`."""

    def handle(request: HttpRequest) -> HttpResponse:
        status, body = check()
        return json_response(status, body)

    return handle


def json_handler(produce: Callable[[], Mapping[str, Any]]) -> Handler:
    """200 with the JSON of whatever ``produce`` returns (``/status``)."""

    def handle(request: HttpRequest) -> HttpResponse:
        return json_response(200, produce())

    return handle


def standard_routes(
    *,
    registry: CollectorRegistry | None,
    health: Callable[[], tuple[int, Mapping[str, Any]]] | None,
    status: Callable[[], Mapping[str, Any]] | None,
) -> dict[str, Handler]:
    """``/metrics``, ``/health`` and ``/status`` for the parts that are given."""
    routes: dict[str, Handler] = {}
    if registry is not None:
        routes["/metrics"] = metrics_handler(registry)
    if health is not None:
        routes["/health"] = health_handler(health)
    if status is not None:
        routes["/status"] = json_handler(status)
    return routes


# -- the server -------------------------------------------------------------


def _parse_request_line(line: bytes) -> tuple[str, str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise _BadRequest(400, "malformed method")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        if version.startswith(b"HTTP/"):
            raise _BadRequest(505, "only HTTP/1.0 and HTTP/1.1")
        raise _BadRequest(400, "malformed version")
    try:
        text = target.decode("ascii")
    except UnicodeDecodeError:
        raise _BadRequest(400, "non-ASCII request target") from None
    if text.startswith(("http://", "https://")):
        # absolute-form (RFC 9112 section 3.2.2): keep the path
        rest = text.split("://", 1)[1]
        text = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    if not text.startswith("/") or any(c <= " " or c == "\x7f" for c in text):
        raise _BadRequest(400, "malformed request target")
    path, _, query = text.partition("?")
    return method.decode(), path, query, version.decode()


def _parse_header(line: bytes) -> tuple[str, str]:
    name, sep, value = line.partition(b":")
    if not sep or not _TOKEN.fullmatch(name):
        raise _BadRequest(400, "malformed header line")
    try:
        return name.decode().lower(), value.strip(b" \t").decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequest(400, "malformed header value") from None


@dataclass
class HttpServer:
    """The listener; :meth:`start` binds, :meth:`stop` closes it and every connection."""

    routes: Mapping[str, Handler]
    limits: HttpLimits = field(default_factory=HttpLimits)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _connections: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    async def start(
        self, host: str | None = None, port: int = 0, *, sock: socket.socket | None = None
    ) -> None:
        """Listen on ``host:port`` or on an already bound ``sock`` (socket activation)."""
        if sock is not None:
            self._server = await asyncio.start_server(
                self._accept, sock=sock, limit=self.limits.max_line
            )
        else:
            self._server = await asyncio.start_server(
                self._accept, host, port, limit=self.limits.max_line, reuse_address=True
            )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [s.getsockname()[:2] for s in self._server.sockets]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if len(self._connections) > self.limits.max_connections:
                await self._send_and_close(writer, _error(503, "too many connections"), None)
            else:
                await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _read_head(
        self, reader: asyncio.StreamReader, first: bool
    ) -> tuple[bytes, list[bytes]] | None:
        """Request line and header lines, or None on a clean close before a request."""
        limits = self.limits
        loop = asyncio.get_running_loop()
        # The whole head must arrive within head_timeout of its first byte; a kept-alive
        # connection may wait idle_timeout for that first byte.
        wait = limits.head_timeout if first else limits.idle_timeout
        deadline = loop.time() + wait
        lines: list[bytes] = []
        total = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _BadRequest(408, "request head not received in time")
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), remaining)
            except TimeoutError:
                if not lines and not first:
                    return None  # idle keep-alive connection: just close
                raise _BadRequest(408, "request head not received in time") from None
            except asyncio.IncompleteReadError as exc:
                if not lines and not exc.partial:
                    return None
                raise _BadRequest(400, "connection closed inside the request head") from None
            except asyncio.LimitOverrunError:
                raise _BadRequest(
                    414 if not lines else 431, "request line or header line too long"
                ) from None
            if not lines:
                deadline = loop.time() + limits.head_timeout
            total += len(line)
            if total > limits.max_head_bytes:
                raise _BadRequest(431, "request head too large")
            line = line.rstrip(b"\r\n")
            if not line:
                if not lines:
                    continue  # RFC 9112 section 2.2: ignore empty lines before a request
                break
            lines.append(line)
            if len(lines) > limits.max_headers + 1:
                raise _BadRequest(431, "too many header lines")
        return lines[0], lines[1:]

    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        handler = self.routes.get(request.path)
        if handler is None:
            return _error(404, "no such path")
        if request.method not in _ALLOWED_METHODS:
            return HttpResponse(
                405,
                json.dumps({"error": "Method Not Allowed"}).encode() + b"\n",
                headers=(("Allow", ", ".join(_ALLOWED_METHODS)),),
            )
        try:
            return handler(request)
        except Exception:
            log.exception("HTTP handler for %s failed", request.path)
            return _error(500, "handler failed")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for count in range(self.limits.max_requests_per_connection):
            try:
                head = await self._read_head(reader, first=count == 0)
                if head is None:
                    return
                request_line, header_lines = head
                method, path, query, version = _parse_request_line(request_line)
                headers: dict[str, str] = {}
                for raw in header_lines:
                    name, value = _parse_header(raw)
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
                if "transfer-encoding" in headers:
                    raise _BadRequest(400, "request bodies are not accepted")
                length = headers.get("content-length", "0").strip()
                if not length.isdigit():
                    raise _BadRequest(400, "malformed Content-Length")
                if int(length) > 0 and method in _ALLOWED_METHODS:
                    raise _BadRequest(400, "request bodies are not accepted")
            except _BadRequest as bad:
                await self._send_and_close(writer, _error(bad.status, bad.detail), None)
                return
            request = HttpRequest(method, path, query, version, headers)
            response = self._dispatch(request)
            connection = headers.get("connection", "").lower()
            keep_alive = (
                method in _ALLOWED_METHODS
                and int(length) == 0
                and (
                    "keep-alive" in connection
                    if version == "HTTP/1.0"
                    else "close" not in connection
                )
                and count + 1 < self.limits.max_requests_per_connection
            )
            await self._write(writer, response, request, keep_alive)
            if not keep_alive:
                return

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        response: HttpResponse,
        request: HttpRequest | None,
        keep_alive: bool,
    ) -> None:
        status = http.HTTPStatus(response.status)
        lines = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Cache-Control: no-store",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{k}: {v}" for k, v in response.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if request is not None and request.method == "HEAD" else response.body
        writer.write(head + body)
        await asyncio.wait_for(writer.drain(), self.limits.write_timeout)

    async def _send_and_close(
        self, writer: asyncio.StreamWriter, response: HttpResponse, request: HttpRequest | None
    ) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self._write(writer, response, request, keep_alive=False)


async def start_http_server(
    host: str | None,
    port: int,
    routes: Mapping[str, Handler],
    *,
    limits: HttpLimits | None = None,
    sock: socket.socket | None = None,
) -> HttpServer:
    """Start serving ``routes`` on ``host:port`` (or ``sock``); ``await server.stop()`` ends it."""
    server = HttpServer(routes, limits or HttpLimits())
    await server.start(host, port, sock=sock)
    return server
