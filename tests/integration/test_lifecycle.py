"""Start, reload (SIGHUP) and stop (SIGTERM) of the real daemon process."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.helpers import (
    basic_config,
    free_udp_port,
    running_daemon,
    sntp_query,
    write_config,
)

pytestmark = pytest.mark.integration
EXE = str(Path(sys.executable).with_name("simple-ntpd"))


def stratum_of(port: int) -> int | None:
    reply = sntp_query("127.0.0.1", port, timeout=1.0)
    return None if reply is None else reply[1]


def wait_for(pred, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def child_pids(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return {int(x) for x in out.stdout.split()}


def test_sighup_reloads_and_the_port_keeps_answering(tmp_path: Path) -> None:
    port = free_udp_port()
    with running_daemon(tmp_path, basic_config(port, stratum=4), port) as d:
        assert stratum_of(port) == 4
        old_workers = child_pids(d.proc.pid)
        assert len(old_workers) == 2

        # Query continuously through the reload: every request must be answered.
        stop = threading.Event()
        results: list[bool] = []

        def hammer() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(1.0)
                i = 0
                while not stop.is_set() and i < 5000:
                    i += 1
                    req = struct.pack("!B39xQ", 0x23, i)
                    s.sendto(req, ("127.0.0.1", port))
                    try:
                        data, _ = s.recvfrom(100)
                        results.append(data[24:32] == struct.pack("!Q", i))
                    except TimeoutError:
                        results.append(False)
                    time.sleep(0.002)

        t = threading.Thread(target=hammer)
        t.start()
        time.sleep(0.3)
        write_config(tmp_path, basic_config(port, stratum=7))
        d.signal(signal.SIGHUP)
        assert wait_for(lambda: stratum_of(port) == 7), d.log()
        time.sleep(0.5)
        stop.set()
        t.join(10)
        assert len(results) > 100
        assert all(results), f"{results.count(False)} of {len(results)} unanswered during reload"
        assert "configuration reloaded" in d.log()
        # a new generation of workers replaced the old one
        assert wait_for(lambda: child_pids(d.proc.pid).isdisjoint(old_workers))
        assert len(child_pids(d.proc.pid)) == 2


def test_invalid_reload_keeps_the_running_configuration(tmp_path: Path) -> None:
    port = free_udp_port()
    with running_daemon(tmp_path, basic_config(port, stratum=4), port) as d:
        write_config(tmp_path, basic_config(port, stratum=99))
        d.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed" in d.log()), d.log()
        assert "stratum" in d.log().split("reload failed", 1)[1]
        assert stratum_of(port) == 4
        assert d.proc.poll() is None


def test_sigterm_stops_cleanly_with_workers(tmp_path: Path) -> None:
    port = free_udp_port()
    pidfile = tmp_path / "d.pid"
    with running_daemon(
        tmp_path, basic_config(port), port, extra_args=["--pid-file", str(pidfile)]
    ) as d:
        assert int(pidfile.read_text()) == d.proc.pid
        workers = child_pids(d.proc.pid)
        assert workers
        t0 = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t0 < 5
        for pid in workers:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
        assert not pidfile.exists()
        assert sntp_query("127.0.0.1", port, timeout=0.3) is None


def test_dead_worker_is_restarted(tmp_path: Path) -> None:
    port = free_udp_port()
    with running_daemon(tmp_path, basic_config(port, workers=1), port) as d:
        (victim,) = child_pids(d.proc.pid)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(child_pids(d.proc.pid) - {victim}) == 1), d.log()
        assert wait_for(lambda: sntp_query("127.0.0.1", port, timeout=0.3) is not None)
        assert "exited unexpectedly" in d.log()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[network]\nlisten_port = "abc"\n', "listen_port"),
        ("[network]\nlisten_port = 70000\n", "listen_port"),
        ('[security]\nallow_query_from = ["10.0.0.0/33"]\n', "allow_query_from"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ('[ntp_server]\nupstream_servers = [\n  "a",\n', "upstream_servers"),
    ],
)
def test_bad_configuration_refuses_to_start(tmp_path: Path, body: str, needle: str) -> None:
    cfg = write_config(tmp_path, body)
    for argv in (
        [EXE, "--config", str(cfg), "--foreground"],
        [EXE, "--config", str(cfg), "--test-config"],
    ):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        assert r.returncode != 0
        assert str(cfg) in r.stderr and needle in r.stderr, r.stderr


def test_missing_configuration_file_is_explained(tmp_path: Path) -> None:
    r = subprocess.run(
        [EXE, "--config", str(tmp_path / "nope.conf"), "--foreground"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert r.returncode != 0
    assert "not found" in r.stderr and "--default-config" in r.stderr


def test_test_config_lists_inactive_keys(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path, basic_config(free_udp_port(), extra="\n[monitoring]\nenable_snmp = false\n")
    )
    r = subprocess.run(
        [EXE, "--config", str(cfg), "--test-config"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
    assert "monitoring.enable_snmp" in r.stdout and "not yet active" in r.stdout


def test_cpu_affinity_is_applied_to_workers(tmp_path: Path) -> None:
    port = free_udp_port()
    cpus = sorted(os.sched_getaffinity(0))
    extra = f"enable_thread_affinity = true\ncpu_affinity = [{cpus[-1]}]\n"
    cfg = basic_config(port).replace("worker_threads = 2\n", "worker_threads = 2\n" + extra)
    with running_daemon(tmp_path, cfg, port) as d:
        workers = child_pids(d.proc.pid)
        assert len(workers) == 2
        for pid in workers:
            assert os.sched_getaffinity(pid) == {cpus[-1]}
        # the main process is not pinned
        assert os.sched_getaffinity(d.proc.pid) == set(cpus)


@pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE needs root (CI runs as root)")
def test_bind_interface_and_buffer_sizes(tmp_path: Path) -> None:
    port = free_udp_port()
    cfg = basic_config(port).replace(
        "enable_ipv6 = true\n",
        'enable_ipv6 = true\nbind_interface = "lo"\n'
        "receive_buffer_size = 4194304\nsend_buffer_size = 1048576\n",
    )
    with running_daemon(tmp_path, cfg, port) as d:
        assert sntp_query("127.0.0.1", port) is not None
        assert sntp_query("::1", port) is not None
        assert "less than the" not in d.log()  # buffers got their configured size
    bad = basic_config(port).replace(
        "enable_ipv6 = true\n", 'enable_ipv6 = true\nbind_interface = "nosuchif0"\n'
    )
    r = subprocess.run(
        [EXE, "--config", str(write_config(tmp_path, bad)), "--foreground"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert r.returncode != 0
    assert "cannot serve" in r.stderr + r.stdout


def test_wildcard_socket_replies_from_the_address_asked(tmp_path: Path) -> None:
    port = free_udp_port()
    cfg = basic_config(port, address="0.0.0.0")
    with running_daemon(tmp_path, cfg, port):
        for dest in ("127.0.0.1", "127.0.0.2", "127.0.0.53"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                # A connected socket only accepts datagrams from dest: the reply
                # must come from the address the request was sent to.
                s.connect((dest, port))
                s.settimeout(2)
                s.send(struct.pack("!B39xQ", 0x23, 99))
                data = s.recv(100)
                assert data[24:32] == struct.pack("!Q", 99)
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.connect(("::1", port))
            s.settimeout(2)
            s.send(struct.pack("!B39xQ", 0x23, 7))
            assert s.recv(100)[24:32] == struct.pack("!Q", 7)


def test_detaches_without_foreground(tmp_path: Path) -> None:
    port = free_udp_port()
    cfg = write_config(tmp_path, basic_config(port))
    pidfile = tmp_path / "detached.pid"
    r = subprocess.run(
        [EXE, "--config", str(cfg), "--pid-file", str(pidfile)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert r.returncode == 0, r.stderr  # the launching process returns at once
    assert "log goes to syslog" in r.stderr
    try:
        assert wait_for(lambda: pidfile.exists() and sntp_query("127.0.0.1", port) is not None)
        pid = int(pidfile.read_text())
        assert os.getsid(pid) != os.getsid(0)  # a session of its own: detached from ours
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
    assert wait_for(lambda: not pidfile.exists())
    assert sntp_query("127.0.0.1", port, timeout=0.3) is None
