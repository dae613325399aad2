"""Tests for simple_ntpd.runtime.http_server: routes, limits, and garbage on loopback."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from simple_ntpd.observe.health import health
from simple_ntpd.observe.prometheus import NtpCollector
from simple_ntpd.runtime.http_server import (
    HttpLimits,
    HttpRequest,
    HttpResponse,
    HttpServer,
    build_registry,
    standard_routes,
    start_http_server,
)
from simple_ntpd.served_clock import LEAP_NONE, ServedClockState
from simple_ntpd.stats import COUNTERS_PER_SLOT, Counter

STATE = {"value": ServedClockState()}


@pytest.fixture(autouse=True)
def _unsynchronized() -> None:
    STATE["value"] = ServedClockState()


def _counters() -> list[int]:
    values = [0] * COUNTERS_PER_SLOT
    values[Counter.RESPONDED] = 42
    return values


def _routes() -> dict[str, Callable[[HttpRequest], HttpResponse]]:
    registry = build_registry(NtpCollector(counters=_counters, served_state=lambda: STATE["value"]))

    def check() -> tuple[int, Mapping[str, Any]]:
        return health(
            STATE["value"], 0, maintenance=False, self_check_ok=None, max_root_distance=1.5
        )

    routes = standard_routes(
        registry=registry, health=check, status=lambda: {"stratum": STATE["value"].stratum}
    )

    def boom(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("handler bug")

    routes["/boom"] = boom
    return routes


FAST = HttpLimits(head_timeout=0.5, idle_timeout=0.5, write_timeout=1.0, max_connections=8)


def run(body: Callable[[HttpServer], Awaitable[None]], limits: HttpLimits = FAST) -> None:
    async def main() -> None:
        server = await start_http_server("127.0.0.1", 0, _routes(), limits=limits)
        try:
            await asyncio.wait_for(body(server), 20)
        finally:
            await server.stop()

    asyncio.run(main())


def get(
    port: int, path: str, method: str = "GET", headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


async def aget(
    port: int, path: str, method: str = "GET", headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(get, port, path, method, headers)


async def raw(port: int, data: bytes, *, read_timeout: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout)
    finally:
        writer.close()


def test_metrics_health_status() -> None:
    async def body(server: HttpServer) -> None:
        code, headers, data = await aget(server.port, "/metrics")
        assert code == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(data.decode())}
        assert {"ntp_responses", "ntp_synchronized", "process_cpu_seconds"} <= names
        assert b"ntp_responses_total 42.0" in data

        code, headers, data = await aget(server.port, "/health")
        assert code == 503 and json.loads(data)["reason"] == "unsynchronized"
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-store"

        STATE["value"] = ServedClockState(leap=LEAP_NONE, stratum=2, root_dispersion=0.001)
        code, _, data = await aget(server.port, "/health")
        assert code == 200 and json.loads(data)["status"] == "ok"

        code, _, data = await aget(server.port, "/status?verbose=1")
        assert code == 200 and json.loads(data) == {"stratum": 2}

    run(body)


def test_openmetrics_negotiation_and_head() -> None:
    async def body(server: HttpServer) -> None:
        code, headers, data = await aget(
            server.port, "/metrics", headers={"Accept": "application/openmetrics-text"}
        )
        assert code == 200
        assert headers["content-type"].startswith("application/openmetrics-text")
        assert data.endswith(b"# EOF\n")
        code, headers, data = await aget(server.port, "/health", method="HEAD")
        assert code == 503 and data == b"" and int(headers["content-length"]) > 0

    run(body)


def test_404_405_500() -> None:
    async def body(server: HttpServer) -> None:
        code, _, data = await aget(server.port, "/nope")
        assert code == 404 and json.loads(data)["error"] == "Not Found"
        code, headers, _ = await aget(server.port, "/metrics", method="POST")
        assert code == 405 and headers["allow"] == "GET, HEAD"
        code, _, _ = await aget(server.port, "/health", method="DELETE")
        assert code == 405
        code, _, data = await aget(server.port, "/boom")
        assert code == 500 and json.loads(data)["detail"] == "handler failed"
        code, _, _ = await aget(server.port, "/health")  # still serving
        assert code in (200, 503)

    run(body)


def test_keep_alive_serves_several_requests() -> None:
    async def body(server: HttpServer) -> None:
        def three() -> list[int]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                out = []
                for path in ("/health", "/status", "/metrics"):
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    resp.read()
                    out.append(resp.status)
                return out
            finally:
                conn.close()

        assert await asyncio.to_thread(three) == [503, 200, 200]

    run(body)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /health HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /health FTP/1.0\r\n\r\n", b"400"),
        (b"GET health HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /\xff HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"400"),
        (b"GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
        (b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", b"431"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n", b"408"),  # head never finished
        (b"GET /health", b"408"),
    ],
)
def test_malformed_requests_get_4xx_and_close(data: bytes, status: bytes) -> None:
    async def body(server: HttpServer) -> None:
        reply = await raw(server.port, data)
        assert reply.startswith(b"HTTP/1.1 " + status), reply[:80]
        assert b"Connection: close" in reply
        code, _, _ = await aget(server.port, "/status")
        assert code == 200

    run(body)


def test_bare_newlines_and_http10_and_absolute_form() -> None:
    async def body(server: HttpServer) -> None:
        reply = await raw(server.port, b"GET /status HTTP/1.0\n\n")
        assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in reply
        reply = await raw(
            server.port, b"GET http://localhost:8080/status HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.1 200 OK")

    run(body)


def test_idle_keep_alive_connection_is_closed() -> None:
    async def body(server: HttpServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /status HTTP/1.1\r\n\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 3.0)  # EOF after idle_timeout
        finally:
            writer.close()
        assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: keep-alive" in data
        assert data.count(b"HTTP/1.1") == 1

    run(body)


def test_connection_limit() -> None:
    limits = HttpLimits(head_timeout=2.0, idle_timeout=2.0, max_connections=2)

    async def body(server: HttpServer) -> None:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        try:
            await asyncio.sleep(0.1)  # let the server accept them
            reply = await raw(server.port, b"GET /status HTTP/1.1\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 503")
        finally:
            for _, w in held:
                w.close()
        await asyncio.sleep(0.1)
        code, _, _ = await aget(server.port, "/status")
        assert code == 200

    run(body, limits)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.builds(lambda b: b + b"\r\n\r\n", st.binary(max_size=300)),
            st.builds(lambda b: b"GET /status HTTP/1.1\r\n" + b, st.binary(max_size=300)),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_random_bytes_never_break_the_server(chunks: list[bytes]) -> None:
    limits = HttpLimits(head_timeout=0.1, idle_timeout=0.1, write_timeout=0.5)

    async def body(server: HttpServer) -> None:
        replies = await asyncio.gather(*(raw(server.port, c, read_timeout=2.0) for c in chunks))
        for reply in replies:
            assert reply == b"" or reply.startswith(b"HTTP/1.1 "), reply[:80]
        code, _, _ = await aget(server.port, "/status")
        assert code == 200

    run(body, limits)


def test_stop_closes_open_connections() -> None:
    async def main() -> None:
        server = await start_http_server("127.0.0.1", 0, _routes(), limits=HttpLimits())
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /status HTTP/1.1\r\n")  # unfinished head: a held connection
        await writer.drain()
        await asyncio.sleep(0.05)
        await asyncio.wait_for(server.stop(), 5)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        assert server.addresses == []

    asyncio.run(main())
