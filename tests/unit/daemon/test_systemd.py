"""Tests for simple_ntpd.daemon.systemd: sd_notify messages and socket activation."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simple_ntpd.daemon import systemd
from simple_ntpd.daemon.systemd import SystemdError


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    with sock:
        yield sock


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_with_status(notify_socket: socket.socket) -> None:
    assert systemd.ready("serving stratum 2\nfrom 3 sources")
    assert _recv(notify_socket) == "READY=1\nSTATUS=serving stratum 2 from 3 sources"


def test_ready_without_status(notify_socket: socket.socket) -> None:
    assert systemd.ready()
    assert _recv(notify_socket) == "READY=1"


def test_simple_messages(notify_socket: socket.socket) -> None:
    assert systemd.stopping()
    assert systemd.watchdog()
    assert systemd.status("reloading configuration")
    assert systemd.notify("EXTEND_TIMEOUT_USEC=5000000")
    assert [_recv(notify_socket) for _ in range(4)] == [
        "STOPPING=1",
        "WATCHDOG=1",
        "STATUS=reloading configuration",
        "EXTEND_TIMEOUT_USEC=5000000",
    ]


def test_reloading_carries_monotonic_usec(notify_socket: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = _recv(notify_socket).split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"simple-ntpd-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.watchdog()
        assert _recv(sock) == "WATCHDOG=1"


def test_notify_without_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready("x") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd.ready() is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert systemd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    with pytest.raises(SystemdError):
        systemd.watchdog_interval()
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    monkeypatch.delenv("WATCHDOG_PID")
    with pytest.raises(SystemdError):
        systemd.watchdog_interval()


def test_listen_fds_absent_or_for_another_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(name, raising=False)
    assert systemd.listen_fds() == []
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert systemd.listen_fds() == []
    assert "LISTEN_PID" not in os.environ and "LISTEN_FDS" not in os.environ


def test_listen_fds_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "many")
    with pytest.raises(SystemdError):
        systemd.listen_fds()
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "2")
    monkeypatch.setenv("LISTEN_FDNAMES", "ntp")
    with pytest.raises(SystemdError, match="names"):
        systemd.listen_fds()


CHILD = textwrap.dedent(
    """
    import json, os, socket, sys
    from simple_ntpd.daemon import systemd
    pairs = systemd.listen_fds_with_names()
    out = {
        "pid": os.getpid(),
        "sockets": [
            {
                "name": name,
                "family": s.family.name,
                "type": s.type.name,
                "address": list(s.getsockname()[:2]),
                "inheritable": s.get_inheritable(),
            }
            for name, s in pairs
        ],
        "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    }
    for _, s in pairs:
        if s.type == socket.SOCK_DGRAM:
            data, peer = s.recvfrom(100) if os.environ.get("ECHO") else (b"", None)
            if peer is not None:
                s.sendto(b"echo:" + data, peer)
    sys.stdout.write(json.dumps(out))
    """
)


def _run_activated(
    script: Path, sockets: list[socket.socket], names: str | None
) -> dict[str, object]:
    """Fork and exec the child with the sockets at fd 3.. and LISTEN_PID = its own pid.

    This is what systemd does between fork and exec: the pid is only known in the child.
    """
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_"))}
    env["LISTEN_FDS"] = str(len(sockets))
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    fds = [s.fileno() for s in sockets]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.dup2(write_end, 1)
            # Move the sockets out of the way first, then into 3, 4, ...
            moved = [os.dup(fd) for fd in fds]
            for i, fd in enumerate(moved):
                os.dup2(fd, systemd.SD_LISTEN_FDS_START + i, inheritable=True)
            env["LISTEN_PID"] = str(os.getpid())
            os.execve(sys.executable, [sys.executable, str(script)], env)
        finally:
            os._exit(127)
    os.close(write_end)
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("activated child did not finish")
    with os.fdopen(read_end, "rb") as f:
        output = f.read()
    assert os.waitstatus_to_exitcode(status) == 0, output
    result: dict[str, object] = json.loads(output)
    result["child_pid"] = pid
    return result


def test_socket_activation_passes_bound_udp_socket(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with udp, udp6:
        udp.bind(("127.0.0.1", 0))
        udp6.bind(("::1", 0))
        result = _run_activated(script, [udp, udp6], "ntp:ntp6")
        port, port6 = udp.getsockname()[1], udp6.getsockname()[1]
    assert result["pid"] == result["child_pid"]
    assert result["sockets"] == [
        {
            "name": "ntp",
            "family": "AF_INET",
            "type": "SOCK_DGRAM",
            "address": ["127.0.0.1", port],
            "inheritable": False,
        },
        {
            "name": "ntp6",
            "family": "AF_INET6",
            "type": "SOCK_DGRAM",
            "address": ["::1", port6],
            "inheritable": False,
        },
    ]
    assert result["env_left"] == []


def test_socket_activation_default_name(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        result = _run_activated(script, [udp], None)
    sockets = result["sockets"]
    assert isinstance(sockets, list) and [s["name"] for s in sockets] == ["unknown"]


def test_with_systemd_socket_activate(tmp_path: Path) -> None:
    """systemd's own tool binds the socket and execs us; the child answers on it."""
    assert shutil.which("systemd-socket-activate"), "systemd missing: run `make test-deps`"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, ECHO="1")
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(k, None)
    proc = subprocess.Popen(
        [
            "systemd-socket-activate",
            "--datagram",
            "--fdname=ntp",
            "-l",
            f"127.0.0.1:{port}",
            "-E",
            "ECHO",
            "-E",
            "PYTHONPATH",
            sys.executable,
            str(script),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.2)
            reply = b""
            for _ in range(50):  # the tool binds after it starts: retry for up to ~10 s
                client.sendto(b"ping", ("127.0.0.1", port))
                try:
                    reply = client.recv(100)
                    break
                except (TimeoutError, ConnectionRefusedError):
                    continue
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert reply == b"echo:ping", err
    result = json.loads(out)
    assert [(s["name"], s["family"], s["type"]) for s in result["sockets"]] == [
        ("ntp", "AF_INET", "SOCK_DGRAM")
    ]
    assert result["sockets"][0]["address"] == ["127.0.0.1", port]


UNITS = Path(__file__).resolve().parents[3] / "deployment" / "systemd"


def test_unit_files_are_hardened_as_designed() -> None:
    service = (UNITS / "simple-ntpd.service").read_text()
    socket_unit = (UNITS / "simple-ntpd.socket").read_text()
    lines = {line.strip() for line in service.splitlines()}
    for expected in (
        "Type=notify",
        "User=ntp",
        "ProtectSystem=strict",
        "PrivateTmp=true",
        "NoNewPrivileges=true",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SYS_TIME",
        "WatchdogSec=30",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ReadWritePaths=/var/log/simple-ntpd /var/lib/simple-ntpd /run/simple-ntpd",
    ):
        assert expected in lines, expected
    assert "CAP_SETUID" not in service.split("[Service]")[1].split("AmbientCapabilities=")[1]
    assert "ListenDatagram=0.0.0.0:123" in socket_unit
    assert "ListenDatagram=[::]:123" in socket_unit
    assert "FileDescriptorName=ntp" in socket_unit


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` on temp copies whose ExecStart names a binary that exists.

    verify refuses a unit whose ExecStart binary is missing, and simple-ntpd is not
    installed in /usr/local/bin on a test machine: the copy points at this venv's
    console script (or the Python interpreter when the package is not installed).
    """
    assert shutil.which("systemd-analyze"), "systemd missing: run `make test-deps`"
    script = Path(sys.executable).with_name("simple-ntpd")
    binary = str(script if script.exists() else Path(sys.executable))
    for name in ("simple-ntpd.service", "simple-ntpd.socket"):
        text = (UNITS / name).read_text().replace("/usr/local/bin/simple-ntpd", binary)
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            str(tmp_path / "simple-ntpd.service"),
            str(tmp_path / "simple-ntpd.socket"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # verify reports unknown keys and bad values as warnings with rc 0: fail on those too
    assert "simple-ntpd" not in output, output


def test_systemd_analyze_verify_catches_mistakes(tmp_path: Path) -> None:
    """The check above can fail: a typo in a copy of the unit is reported."""
    text = (UNITS / "simple-ntpd.service").read_text()
    text = text.replace("/usr/local/bin/simple-ntpd", sys.executable)
    (tmp_path / "simple-ntpd.service").write_text(text.replace("Type=notify", "Type=notfy"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "simple-ntpd.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "notfy" in result.stdout + result.stderr
