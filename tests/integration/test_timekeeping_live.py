"""The daemon synchronizes to real upstream servers on loopback (issue: timekeeping).

Upstreams are chronyd (``local stratum 1``, run with -x so it never touches
the clock) and test servers that serve the system clock shifted by +250 ms.
Nothing here changes this machine's clock: the daemon serves system time
plus a correction.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from simple_ntpd.runtime.control_socket import request
from tests.integration.helpers import (
    IS_ROOT,
    chronyd,
    free_udp_port,
    parse_float,
    run_client,
    running_daemon,
)

pytestmark = pytest.mark.integration
EXE = str(Path(sys.executable).with_name("simple-ntpd"))
FAKE = str(Path(__file__).with_name("fake_upstream.py"))
SHIFT = 0.250


@contextmanager
def fake_upstreams(n: int, offset: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    ports = []
    try:
        for _ in range(n):
            port = free_udp_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, FAKE, str(port), str(offset), "--lifetime", "120"]
                )
            )
            ports.append(port)
        time.sleep(0.3)
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait(5)


def upstream_config(port: int, ctl: Path, upstreams: list[str], extra: str = "") -> str:
    entries = ", ".join(f'"{u}"' for u in upstreams)
    return f"""
[network]
listen_address = "127.0.0.1"
listen_port = {port}
enable_ipv6 = false

[ntp_server]
stratum = 10
reference_clock = "LOCAL"
reference_id = "LOCL"
upstream_servers = [{entries}]
min_poll = 1
max_poll = 1
{extra}

[performance]
worker_threads = 1

[security]
user = "root"
group = "root"

[monitoring]
control_socket = "{ctl}"
"""


def best_query(port: int, n: int = 5) -> dict[str, object]:
    out = subprocess.run(
        [EXE, "query", f"127.0.0.1:{port}", "--json", "-c", str(n), "-i", "0.05", "-t", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert rows, out.stderr
    return min(rows, key=lambda r: float(r["delay"]))  # type: ignore[arg-type]


def wait_until(pred, timeout: float, step: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def test_synchronizes_to_shifted_upstreams_then_holdover_then_local(tmp_path: Path) -> None:
    port = free_udp_port()
    ctl = tmp_path / "ctl.sock"
    with fake_upstreams(3, SHIFT) as ups:
        upstreams = [f"127.0.0.1:{p.args[2]}" for p in ups]  # type: ignore[index]
        drift = tmp_path / "drift"
        cfg = upstream_config(
            port, ctl, upstreams, extra=f'max_holdover = 3\ndrift_file = "{drift}"'
        )
        with running_daemon(tmp_path, cfg, port) as d:
            t0 = time.monotonic()
            # Until the first synchronization: leap 3, never a made-up stratum.
            assert wait_until(lambda: best_query(port, 1)["stratum"] == 2, 15), d.log()
            assert time.monotonic() - t0 < 15
            # Within 1 ms of the upstreams' time, soon after: the first samples can carry a
            # scheduling delay of the test upstreams (Python processes on a loaded two-core
            # machine), which the clock filter weeds out as better samples come in.
            last: list[dict[str, object]] = []

            def converged() -> bool:
                last[:] = [best_query(port)]
                return abs(float(last[0]["offset"]) - SHIFT) < 0.001  # type: ignore[arg-type]

            assert wait_until(converged, 10), last
            r = last[0]
            assert r["refid"] == "127.0.0.1" and r["leap"] == 0

            # A client nobody here wrote agrees.
            cr = run_client(
                [
                    chronyd(),
                    "-Q",
                    "-u",
                    "root",
                    "-t",
                    "15",
                    "-f",
                    "/dev/null",
                    f"server 127.0.0.1 port {port} iburst minpoll -6 maxpoll -6 maxsamples 4",
                    f"pidfile {tmp_path}/chronyd-q.pid",
                ],
                timeout=30,
            )
            wrong = parse_float(
                r"System clock wrong by ([-+0-9.e]+) seconds", cr.stdout + cr.stderr
            )
            assert abs(abs(wrong) - SHIFT) < 0.001, wrong

            tracking = request(str(ctl), "tracking")["tracking"]
            assert tracking["mode"] == "synchronized"  # type: ignore[index]
            assert tracking["reference_address"] == "127.0.0.1"  # type: ignore[index]
            sources = request(str(ctl), "sources")["sources"]
            assert len(sources) == 3  # type: ignore[arg-type]
            # The chronyc-like tables of the CLI.
            table = subprocess.run(
                [EXE, "sources", "--socket", str(ctl)],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            assert table.splitlines()[0].split()[:3] == ["S", "Address", "St"]
            assert sum(line.startswith("*") for line in table.splitlines()) == 1
            tracking_text = subprocess.run(
                [EXE, "tracking", "--socket", str(ctl)],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            assert "Reference ID    : 7F000001 (127.0.0.1)" in tracking_text
            assert "Stratum         : 2" in tracking_text
            assert {s["state"] for s in sources} <= {"selected", "combined", "outlier"}  # type: ignore[union-attr,index]

            # Upstreams gone: holdover (same stratum, growing dispersion), then LOCAL.
            for p in ups:
                p.kill()
            assert best_query(port)["stratum"] == 2
            assert wait_until(lambda: best_query(port, 1)["stratum"] == 10, 40), d.log()
            r = best_query(port)
            assert r["refid"] == "76.79.67.76"  # "LOCL"
            tracking = request(str(ctl), "tracking")["tracking"]
            assert tracking["mode"] == "local"  # type: ignore[index]
            assert "holdover" in d.log()
        # The frequency estimate is kept across restarts (chrony's two-number format).
        freq, skew = (float(x) for x in drift.read_text().split())
        assert abs(freq) < 500 and skew >= 0


@pytest.mark.skipif(
    not IS_ROOT, reason="chronyd as an upstream is run as root here (CI runs as root)"
)
def test_synchronizes_to_chronyd(tmp_path: Path) -> None:
    up_port = free_udp_port()
    conf = tmp_path / "chrony-up.conf"
    conf.write_text(
        f"local stratum 1\nallow 127.0.0.1\nport {up_port}\ncmdport 0\n"
        f"pidfile {tmp_path}/chrony-up.pid\ndriftfile {tmp_path}/chrony-up.drift\n"
    )
    up = subprocess.Popen(
        [chronyd(), "-x", "-d", "-u", "root", "-f", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        port = free_udp_port()
        ctl = tmp_path / "ctl.sock"
        cfg = upstream_config(port, ctl, [f"127.0.0.1:{up_port}"])
        with running_daemon(tmp_path, cfg, port) as d:
            assert wait_until(lambda: best_query(port, 1)["stratum"] == 2, 15), d.log()
            time.sleep(1)
            r = best_query(port)
            assert abs(float(r["offset"])) < 0.001, r  # type: ignore[arg-type]
            assert r["refid"] == "127.0.0.1"
            sources = request(str(ctl), "sources")["sources"]
            assert sources[0]["state"] == "selected" and sources[0]["stratum"] == 1  # type: ignore[index]
    finally:
        up.kill()
        up.wait(5)


def test_host_names_are_resolved(tmp_path: Path) -> None:
    """A name (here localhost, from /etc/hosts: no network) resolves to its addresses."""
    port = free_udp_port()
    ctl = tmp_path / "ctl.sock"
    with fake_upstreams(1, SHIFT) as ups:
        up_port = ups[0].args[2]  # type: ignore[index]
        cfg = upstream_config(port, ctl, [f"pool localhost:{up_port} maxsources 2"])
        with running_daemon(tmp_path, cfg, port) as d:
            assert wait_until(lambda: best_query(port, 1)["stratum"] == 2, 15), d.log()
            sources = request(str(ctl), "sources")["sources"]
            addresses = {s["address"] for s in sources}  # type: ignore[union-attr,index]
            assert "127.0.0.1" in addresses
            assert "upstream localhost: polling 127.0.0.1" in d.log()
