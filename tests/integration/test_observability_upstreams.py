"""/health and the per-source metrics follow the upstreams of a running daemon.

Upstreams are the test servers of ``fake_upstream.py`` on loopback (the system
clock, unshifted). With ``reference_clock = "NONE"`` the daemon has nothing to
fall back to: losing every upstream must make it unsynchronized and /health
503; their return must bring back 200. Nothing here touches this machine's clock.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.helpers import free_udp_port, running_daemon
from tests.integration.test_observability import free_tcp_port, health, http_up, scrape, wait_for

pytestmark = pytest.mark.integration
FAKE = str(Path(__file__).with_name("fake_upstream.py"))


def start_upstreams(ports: list[int]) -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen([sys.executable, FAKE, str(p), "0", "--lifetime", "60"]) for p in ports
    ]
    time.sleep(0.3)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
        p.wait(5)


def test_health_turns_503_when_upstreams_are_lost_and_200_when_they_return(
    tmp_path: Path,
) -> None:
    port, http_port = free_udp_port(), free_tcp_port()
    up_ports = [free_udp_port() for _ in range(3)]
    entries = ", ".join(f'"127.0.0.1:{p}"' for p in up_ports)
    cfg = f"""
[network]
listen_address = "127.0.0.1"
listen_port = {port}
enable_ipv6 = false

[ntp_server]
reference_clock = "NONE"
upstream_servers = [{entries}]
min_poll = 0
max_poll = 0
max_holdover = 1

[performance]
worker_threads = 1

[monitoring]
enable_metrics = true
metrics_port = {http_port}
control_socket = ""

[security]
user = "root"
group = "root"
"""
    ups = start_upstreams(up_ports)
    try:
        with running_daemon(tmp_path, cfg, port) as d:
            assert wait_for(lambda: http_up(http_port)), d.log()
            assert wait_for(lambda: health(http_port)[0] == 200, timeout=20.0), d.log()
            live = scrape(http_port)
            assert live[("ntp_sources", ())] == 3
            # One series per source: same host, told apart by the port.
            for p in up_ports:
                label = (("source", f"127.0.0.1:{p}"),)
                assert live[("ntp_source_reachability", label)] > 0
                assert ("ntp_source_offset_seconds", label) in live
            selected = [
                labels
                for (name, labels), value in live.items()
                if name == "ntp_source_selected" and value == 1
            ]
            assert len(selected) == 1 and ("state", "selected") in selected[0]
            assert live[("ntp_stratum", ())] == 2

            stop(ups)
            t_lost = time.monotonic()
            assert wait_for(lambda: health(http_port)[0] == 503, timeout=30.0), d.log()
            lost_after = time.monotonic() - t_lost
            _, body = health(http_port)
            assert body["reason"] == "unsynchronized"
            assert scrape(http_port)[("ntp_synchronized", ())] == 0

            ups = start_upstreams(up_ports)
            assert wait_for(lambda: health(http_port)[0] == 200, timeout=30.0), d.log()
            assert scrape(http_port)[("ntp_synchronized", ())] == 1
            assert lost_after < 30.0
    finally:
        stop(ups)
