"""A pool member that stays unreachable is replaced by another address of the pool.

The runtime shell runs in process on a real event loop with real sockets on
loopback; only name resolution is replaced (the loop's getaddrinfo), so that a
pool name offers two addresses: 127.0.0.1, where nothing answers, and
127.0.0.2, where a test upstream does. No traffic leaves loopback.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from simple_ntpd.config.load import parse_config_text
from simple_ntpd.runtime import timekeeping
from simple_ntpd.served_clock import ServedClockState
from tests.integration.helpers import free_udp_port

pytestmark = pytest.mark.integration
FAKE = str(Path(__file__).with_name("fake_upstream.py"))


def test_unreachable_pool_member_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_udp_port()
    up = subprocess.Popen(
        [sys.executable, FAKE, str(port), "0", "--address", "127.0.0.2", "--lifetime", "60"]
    )
    monkeypatch.setattr(timekeeping, "REPLACE_CHECK_S", 0.5)
    monkeypatch.setattr(timekeeping, "RESOLVER_TICK_S", 0.2)
    cfg = parse_config_text(
        "[ntp_server]\n"
        f'upstream_servers = ["pool pool.test:{port} maxsources 1 noiburst minpoll 0 maxpoll 0"]\n',
        env={},
    ).config
    published: list[ServedClockState] = []
    asked: list[str] = []

    async def fake_getaddrinfo(host: str, p: int, **_kw: Any) -> list[Any]:
        asked.append(host)
        return [
            (socket.AF_INET, socket.SOCK_DGRAM, 17, "", (addr, p))
            for addr in ("127.0.0.1", "127.0.0.2")
        ]

    async def scenario() -> list[dict[str, object]]:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
        runner = timekeeping.TimekeepingRunner(cfg, -20, published.append)
        await runner.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                sources = runner.sources()
                if [s["address"] for s in sources] == ["127.0.0.2"] and published[-1].stratum:
                    return sources
            return runner.sources()
        finally:
            await runner.stop()

    try:
        sources = asyncio.run(scenario())
    finally:
        up.kill()
        up.wait(5)
    assert asked[0] == "pool.test" and len(asked) >= 2  # resolved again for the replacement
    assert [s["address"] for s in sources] == ["127.0.0.2"], sources
    assert published[-1].stratum == 2 and published[-1].reference_id == bytes([127, 0, 0, 2])
