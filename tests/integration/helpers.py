"""Running the daemon and real clients for integration tests.

Rules these helpers enforce (DESIGN.md section 6 and the project rules):
traffic only to loopback or to a network namespace the test created; every
wait bounded; no client is ever run in a mode that sets the clock.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".cache" / "tools"
CHRONYD = TOOLS / "chrony" / "usr" / "sbin" / "chronyd"
DAEMON = [sys.executable, "-m", "simple_ntpd.daemon.cli"]
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root for a network namespace (port 123); CI runs as root"
)

# Options of ntpdig/ntpdate/chronyd that would set or slew this machine's clock.
_CLOCK_SETTING = {"-S", "-s", "-b", "-B", "--step", "--slew"}


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(
            f"{name} is not installed: run `make test-deps` (scripts/install-test-deps.sh)"
        )
    return path


def chronyd() -> str:
    if not CHRONYD.exists():
        raise RuntimeError(
            f"{CHRONYD} missing: run `make test-deps` (scripts/install-test-deps.sh)"
        )
    return str(CHRONYD)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_client(
    argv: Sequence[str], *, netns: str | None = None, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run a client; refuse anything that could touch the clock."""
    args = list(argv)
    bad = _CLOCK_SETTING.intersection(args)
    if bad:
        raise AssertionError(f"refusing to run a clock-setting option {bad}: {args}")
    base = os.path.basename(args[0])
    if base == "ntpdate" and "-q" not in args:
        raise AssertionError("ntpdate only ever runs with -q")
    if base == "chronyd" and "-Q" not in args and "-x" not in args:
        raise AssertionError("chronyd only ever runs with -Q or -x")
    if netns:
        args = ["ip", "netns", "exec", netns, *args]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class NetNs:
    """A network namespace of our own with loopback up; deleted on exit."""

    name: str = field(default_factory=lambda: f"sntpd-{uuid.uuid4().hex[:8]}")

    def __enter__(self) -> NetNs:
        subprocess.run(["ip", "netns", "add", self.name], check=True, timeout=10)
        subprocess.run(
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
            check=True,
            timeout=10,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False, timeout=10)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


def write_config(tmp: Path, text: str, name: str = "simple-ntpd.conf") -> Path:
    path = tmp / name
    path.write_text(text)
    path.chmod(0o644)
    return path


def basic_config(
    port: int,
    *,
    stratum: int = 2,
    refid: str = "TEST",
    workers: int = 2,
    address: str = "127.0.0.1",
    ipv6: bool = True,
    extra: str = "",
    user: str = "root",
    security: str = "",
) -> str:
    # user = "root": the daemon keeps running as root (tests run as root and
    # no "ntp" user exists here); security-related tests pass user/security.
    return f"""
[network]
listen_address = "{address}"
listen_port = {port}
enable_ipv6 = {"true" if ipv6 else "false"}

[ntp_server]
stratum = {stratum}
reference_clock = "LOCAL"
reference_id = "{refid}"

[performance]
worker_threads = {workers}

[logging]
level = "DEBUG"
output = "console"

[security]
user = "{user}"
{security}
{extra}
"""


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    port: int
    address: str
    log_path: Path
    netns: str | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return int(self.proc.returncode)


def sntp_query(address: str, port: int, timeout: float = 1.0, version: int = 4) -> bytes | None:
    """One raw request; the reply bytes or None. Matches the origin timestamp."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    xmt = secrets.randbits(64)
    req = struct.pack("!B47x", (version << 3) | 3)[:40] + struct.pack("!Q", xmt)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(req, (address, port))
        try:
            data, _ = s.recvfrom(2048)
        except TimeoutError:
            return None
    return data if len(data) >= 48 and data[24:32] == struct.pack("!Q", xmt) else None


@contextlib.contextmanager
def running_daemon(
    tmp: Path,
    config_text: str,
    port: int,
    *,
    address: str = "127.0.0.1",
    netns: str | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    ready_timeout: float = 15.0,
) -> Iterator[Daemon]:
    cfg = write_config(tmp, config_text)
    log_path = tmp / f"daemon-{port}.log"
    argv = [*DAEMON, "--config", str(cfg), "--foreground", *extra_args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(
            argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    d = Daemon(proc=proc, port=port, address=address, log_path=log_path, netns=netns)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{d.log()}")
            if _answers(d):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not answer within {ready_timeout} s:\n{d.log()}")
            time.sleep(0.1)
        yield d
    finally:
        d.stop()


def _answers(d: Daemon) -> bool:
    if d.netns is None:
        return sntp_query(d.address, d.port, timeout=0.2) is not None
    probe = (
        "import socket,struct,sys;s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] "
        "else socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(0.3);"
        "s.sendto(b'\\x23'+bytes(47),(sys.argv[1],int(sys.argv[2])));"
        "s.recvfrom(100)"
    )
    r = subprocess.run(
        ["ip", "netns", "exec", d.netns, sys.executable, "-c", probe, d.address, str(d.port)],
        capture_output=True,
        timeout=5,
        check=False,
    )
    return r.returncode == 0


def parse_float(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise AssertionError(f"{pattern!r} not found in:\n{text}")
    return float(m.group(1))
