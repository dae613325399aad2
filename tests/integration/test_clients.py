"""Real clients nobody here wrote accept the server (issue: core server).

ntplib and `simple-ntpd query` and chronyd talk to a high port on loopback;
ntpdig, ntpdate and sntp only use port 123, so the daemon runs on
127.0.0.1:123 inside a network namespace the test creates (root only; CI
runs as root).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ntplib
import pytest

from tests.integration.helpers import (
    IS_ROOT,
    NetNs,
    basic_config,
    chronyd,
    free_udp_port,
    needs_root,
    parse_float,
    run_client,
    running_daemon,
    tool,
)

pytestmark = pytest.mark.integration


REFID = "TEST"
REFID_DOTTED = ".".join(str(b) for b in REFID.encode())


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("clients")
    port = free_udp_port()
    with running_daemon(tmp, basic_config(port, stratum=3, refid=REFID), port) as d:
        yield d


def best_of(host: str, port: int, version: int, n: int = 5) -> ntplib.NTPStats:
    """The sample with the smallest delay, as ntpdate and chrony's filter choose.

    On a loaded two-core machine one exchange can be delayed on the client
    side between its timestamp and the send; the minimum-delay sample is not.
    """
    client = ntplib.NTPClient()
    samples = [client.request(host, version=version, port=port, timeout=2) for _ in range(n)]
    return min(samples, key=lambda r: r.delay)


@pytest.mark.parametrize("version", [3, 4])
def test_ntplib_accepts_server(daemon, version: int) -> None:  # type: ignore[no-untyped-def]
    r = best_of("127.0.0.1", daemon.port, version)
    assert r.version == version and r.mode == 4
    assert r.stratum == 3 and r.leap == 0
    assert r.ref_id == int.from_bytes(REFID.encode(), "big")
    assert abs(r.offset) < 0.001
    assert 0 <= r.delay < 0.01


def test_ntplib_over_ipv6(daemon) -> None:  # type: ignore[no-untyped-def]
    r = best_of("::1", daemon.port, 4)
    assert r.stratum == 3 and abs(r.offset) < 0.001


@pytest.mark.parametrize("version", [3, 4])
def test_own_query_command(daemon, version: int) -> None:  # type: ignore[no-untyped-def]
    exe = Path(sys.executable).with_name("simple-ntpd")
    out = subprocess.run(
        [
            str(exe),
            "query",
            f"127.0.0.1:{daemon.port}",
            "-V",
            str(version),
            "--json",
            "-c",
            "5",
            "-i",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == 5
    result = min(results, key=lambda r: r["delay"])
    assert result["stratum"] == 3 and result["leap"] == 0 and result["version"] == version
    assert result["refid"] == REFID_DOTTED
    assert abs(result["offset"]) < 0.001


def test_query_exits_nonzero_when_unreachable() -> None:
    exe = Path(sys.executable).with_name("simple-ntpd")
    port = free_udp_port()  # nothing listens there
    out = subprocess.run(
        [str(exe), "query", f"127.0.0.1:{port}", "-t", "0.5"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert out.returncode != 0
    assert "no reply" in out.stderr or "refused" in out.stderr.lower()


def test_chronyd_as_client_accepts_server(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logdir = tmp_path / "chronylog"
    logdir.mkdir()
    r = run_client(
        [
            chronyd(),
            "-Q",
            "-u",
            "root" if IS_ROOT else str(os.getuid()),
            "-t",
            "15",
            "-f",
            "/dev/null",
            f"server 127.0.0.1 port {daemon.port} iburst minpoll -6 maxpoll -6 maxsamples 4",
            f"pidfile {tmp_path}/chronyd.pid",
            f"logdir {logdir}",
            "log measurements",
        ],
        timeout=30,
    )
    text = r.stdout + r.stderr
    offset = parse_float(r"System clock wrong by ([-+0-9.e]+) seconds", text)
    assert abs(offset) < 0.001
    rows = [
        ln.split()
        for ln in (logdir / "measurements.log").read_text().splitlines()
        if ln and ln[0].isdigit()
    ]
    assert rows, "chronyd logged no measurement"
    # columns: date time ip leap stratum ... (chrony's measurements.log format)
    for row in rows:
        assert row[2] == "127.0.0.1"
        assert row[3] == "N"  # leap: normal
        assert int(row[4]) == 3  # stratum
    assert any(REFID.encode().hex().upper() in " ".join(row) for row in rows)


@needs_root
def test_ntpsec_clients_on_port_123(tmp_path: Path) -> None:
    with (
        NetNs() as ns,
        running_daemon(tmp_path, basic_config(123, stratum=2, refid=REFID), 123, netns=ns.name),
    ):
        r = run_client([tool("ntpdig"), "-j", "-t", "2", "127.0.0.1"], netns=ns.name)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["stratum"] == 2 and res["leap"] == "no-leap"
        assert abs(float(res["offset"])) < 0.001

        r = run_client([tool("ntpdate"), "-q", "127.0.0.1"], netns=ns.name)
        assert r.returncode == 0, r.stderr
        assert abs(parse_float(r"([-+]?[0-9.]+) \+/-", r.stdout + r.stderr)) < 0.001

        r = run_client([tool("sntp"), "-t", "2", "127.0.0.1"], netns=ns.name)
        assert r.returncode == 0, r.stderr
        assert " s2 " in r.stdout or "s2" in r.stdout
        assert abs(parse_float(r"([-+][0-9.]+) \+/-", r.stdout)) < 0.001

        r = run_client([tool("ntpdig"), "-j", "-t", "2", "::1"], netns=ns.name)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["stratum"] == 2
