#!/usr/bin/env python3
"""Capture one request from each real NTP client and save it as a hex test vector.

For each client this binds a UDP socket on 127.0.0.1, starts the client
against it, receives the first datagram (bounded timeout), stops the client
and writes ``tests/vectors/<name>.hex`` with a header naming the client, its
version, the command line and the date. It never answers, so no client ever
gets a time to set; and no command here is allowed to touch the clock anyway
(ntpdig without -s/-S, ntpdate with -q, chronyd with -Q).

ntpdig, ntpdate and sntp only talk to port 123, so those captures need root
and a free port 123 on loopback; chronyd and ntplib use a high port.

Usage (from the repository root)::

    sudo .venv/bin/python scripts/capture_client_packets.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"
CHRONYD = Path(os.environ.get("CHRONYD", "/tmp/chr/x/usr/sbin/chronyd"))
PYTHON = Path(os.environ.get("VENV_PYTHON", str(REPO / ".venv" / "bin" / "python")))
# chronyd and ntplib take any port: bind port 0 and let the kernel pick a free one.
EPHEMERAL = 0
RECV_TIMEOUT_S = 8.0
# A test-only symmetric key for the authenticated captures; it protects nothing.
TEST_KEY_ID = 42
TEST_KEY_SHA1_HEX = "00112233445566778899aabbccddeeff00112233"
TEST_KEY_MD5_ASCII = "simplentpdtestkey"
TEST_KEY_SHA256_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


@dataclass(frozen=True)
class Client:
    name: str
    description: str
    port: int
    """123, or EPHEMERAL for a kernel-chosen port."""
    argv_for: Callable[[int], tuple[str, ...]]
    """The client's command line, given the port it must query."""
    version_argv: tuple[str, ...]
    key_lines: tuple[str, ...] = ()
    """The test key the client used, so a test can check the MAC."""


def _ntplib_argv(version: int) -> Callable[[int], tuple[str, ...]]:
    def argv(port: int) -> tuple[str, ...]:
        return (str(PYTHON), "-c", _ntplib_code(version, port))

    return argv


def _ntplib_code(version: int, port: int) -> str:
    # One line, so the command fits the vector's one-line header comment; the
    # client times out with an exception that nobody reads (stderr is discarded).
    return (
        "import ntplib; "
        f"ntplib.NTPClient().request('127.0.0.1', version={version}, port={port}, timeout=2)"
    )


def _clients(keydir: Path) -> list[Client]:
    ntpsec_keys = keydir / "ntp.keys"
    chrony_keys = keydir / "chrony.keys"
    ntpsec_sha1 = f"{TEST_KEY_ID} SHA1 {TEST_KEY_SHA1_HEX}"
    ntpsec_md5 = f"{TEST_KEY_ID + 1} MD5 {TEST_KEY_MD5_ASCII}"
    chrony_sha1 = f"{TEST_KEY_ID} SHA1 HEX:{TEST_KEY_SHA1_HEX}"
    ntpsec_keys.write_text(f"{ntpsec_sha1}\n{ntpsec_md5}\n")
    chrony_sha256 = f"{TEST_KEY_ID + 2} SHA256 HEX:{TEST_KEY_SHA256_HEX}"
    chrony_keys.write_text(f"{chrony_sha1}\n{chrony_sha256}\n")
    ntplib_version = (
        str(PYTHON),
        "-c",
        "import importlib.metadata as m; print('ntplib', m.version('ntplib'))",
    )

    def chronyd(*directives: str, server_options: str = "") -> Callable[[int], tuple[str, ...]]:
        def argv(port: int) -> tuple[str, ...]:
            server = f"server 127.0.0.1 port {port} iburst maxsamples 1{server_options}"
            # -Q: query only, never touch the clock; -t: exit after 3 s regardless.
            return (str(CHRONYD), "-Q", "-u", "root", "-t", "3", *directives, server)

        return argv

    def fixed(*argv: str) -> Callable[[int], tuple[str, ...]]:
        return lambda _port: argv

    return [
        Client(
            "ntpdig_v4",
            "NTPsec ntpdig, plain NTPv4 client request",
            123,
            fixed("ntpdig", "-t", "1", "127.0.0.1"),
            ("ntpdig", "-V"),
        ),
        Client(
            "ntpdig_v4_sha1_mac",
            f"NTPsec ntpdig, NTPv4 request with a SHA1 MAC (test key {TEST_KEY_ID})",
            123,
            fixed("ntpdig", "-t", "1", "-k", str(ntpsec_keys), "-a", str(TEST_KEY_ID), "127.0.0.1"),
            ("ntpdig", "-V"),
            key_lines=(ntpsec_sha1,),
        ),
        Client(
            "ntpdig_v4_md5_mac",
            f"NTPsec ntpdig, NTPv4 request with an MD5 MAC (test key {TEST_KEY_ID + 1})",
            123,
            fixed(
                "ntpdig",
                "-t",
                "1",
                "-k",
                str(ntpsec_keys),
                "-a",
                str(TEST_KEY_ID + 1),
                "127.0.0.1",
            ),
            ("ntpdig", "-V"),
            key_lines=(ntpsec_md5,),
        ),
        Client(
            "ntpdate_q",
            "NTPsec ntpdate shim (runs ntpdig), query only",
            123,
            fixed("ntpdate", "-q", "127.0.0.1"),
            ("ntpdig", "-V"),
        ),
        Client(
            "sntp",
            "NTPsec sntp (a link to ntpdig)",
            123,
            fixed("sntp", "-t", "1", "127.0.0.1"),
            ("ntpdig", "-V"),
        ),
        Client(
            "ntplib_v3",
            "python ntplib NTPClient.request(version=3)",
            EPHEMERAL,
            _ntplib_argv(3),
            ntplib_version,
        ),
        Client(
            "ntplib_v4",
            "python ntplib NTPClient.request(version=4)",
            EPHEMERAL,
            _ntplib_argv(4),
            ntplib_version,
        ),
        Client(
            "chronyd_v4",
            "chronyd -Q as an NTPv4 client",
            EPHEMERAL,
            chronyd(),
            (str(CHRONYD), "-v"),
        ),
        Client(
            "chronyd_v3",
            "chronyd -Q as a client configured with 'version 3'",
            EPHEMERAL,
            chronyd(server_options=" version 3"),
            (str(CHRONYD), "-v"),
        ),
        Client(
            "chronyd_v4_sha1_mac",
            f"chronyd -Q with a SHA1 key (id {TEST_KEY_ID}): NTPv4 request with a MAC",
            EPHEMERAL,
            chronyd(f"keyfile {chrony_keys}", server_options=f" key {TEST_KEY_ID}"),
            (str(CHRONYD), "-v"),
            key_lines=(chrony_sha1,),
        ),
        Client(
            "chronyd_v3_sha256_mac",
            f"chronyd -Q with a SHA256 key (id {TEST_KEY_ID + 2}): chrony falls back to NTPv3 "
            "so the 32-octet digest is not truncated",
            EPHEMERAL,
            chronyd(f"keyfile {chrony_keys}", server_options=f" key {TEST_KEY_ID + 2}"),
            (str(CHRONYD), "-v"),
            key_lines=(chrony_sha256,),
        ),
    ]


def _version_of(argv: tuple[str, ...]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def capture(client: Client) -> tuple[bytes, int, tuple[str, ...]]:
    """Start ``client`` against a fresh socket; return the first datagram, port and argv."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", client.port))
        port = sock.getsockname()[1]
        argv = client.argv_for(port)
        sock.settimeout(RECV_TIMEOUT_S)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        try:
            data, _addr = sock.recvfrom(2048)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return data, port, argv
    finally:
        sock.close()


def write_vector(
    client: Client, data: bytes, port: int, argv: tuple[str, ...], version: str
) -> Path:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    hexdata = data.hex()
    lines = [hexdata[i : i + 64] for i in range(0, len(hexdata), 64)]
    header = [
        f"# SOURCE: {client.description}",
        f"# client version: {version}",
        f"# command: {shlex.join(argv).replace(chr(10), ' ')}",
        *(f"# key file line: {line}" for line in client.key_lines),
        f"# captured: {now} on 127.0.0.1:{port} by scripts/capture_client_packets.py",
        f"# length: {len(data)} octets; hex below, 32 octets a line",
    ]
    path = VECTORS / f"{client.name}.hex"
    path.write_text("\n".join(header + lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="capture only these names")
    args = parser.parse_args(argv)
    VECTORS.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for client in _clients(Path(tmp)):
            if args.only and client.name not in args.only:
                continue
            started = time.monotonic()
            try:
                data, port, argv_used = capture(client)
            except (OSError, TimeoutError) as exc:
                print(f"{client.name}: FAILED: {exc}", file=sys.stderr)
                failures += 1
                continue
            version = _version_of(client.version_argv)
            path = write_vector(client, data, port, argv_used, version)
            took = time.monotonic() - started
            print(f"{client.name}: {len(data)} octets -> {path.relative_to(REPO)} ({took:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
