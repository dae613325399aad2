"""Bad input at the running daemon: nothing answered, every datagram counted, service goes on."""

from __future__ import annotations

import json
import random
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simple_ntpd.runtime.control_socket import request
from tests.integration.helpers import basic_config, free_udp_port, running_daemon, sntp_query

pytestmark = pytest.mark.integration

HDR = struct.Struct("!BBbbII4sQQQQ")


def valid(version: int = 4) -> bytes:
    return HDR.pack((version << 3) | 3, 0, 6, 0, 0, 0, b"\0" * 4, 0, 0, 0, 12345)


def malformed_corpus(rng: random.Random) -> dict[str, list[bytes]]:
    """Datagrams by the drop reason they must be counted under."""
    v = valid()
    ef_bad_len = v + struct.pack("!HH", 0x1234, 30) + b"\0" * 28  # not a multiple of 4
    ef_overrun = v + struct.pack("!HH", 0x1234, 64) + b"\0" * 28  # runs past the end
    return {
        "too_short": [
            bytes(rng.randrange(256) for _ in range(rng.randrange(48))) for _ in range(500)
        ],
        "too_long": [v + bytes(3000) for _ in range(50)],
        "bad_version": [bytes([(ver << 3) | 3]) + v[1:] for ver in (0, 5, 6, 7)] * 100,
        "bad_mode": [bytes([(4 << 3) | m]) + v[1:] for m in (0, 1, 2, 4, 5)] * 100,
        "mode_control": [bytes([(2 << 3) | 6]) + v[1:]] * 200,
        "mode_private": [bytes([(2 << 3) | 7]) + v[1:]] * 200,
        "bad_extension": [ef_bad_len, ef_overrun] * 150,
        # 4 zero bytes would be a crypto-NAK, a well-formed trailer
        "bad_mac": [v + bytes(rng.choice((1, 2, 3, 5, 7, 9, 11))) for _ in range(300)],
    }


def counters(sock_path: Path) -> dict[str, dict[str, int]]:
    exe = Path(sys.executable).with_name("simple-ntpd")
    out = subprocess.run(
        [str(exe), "counters", "--socket", str(sock_path), "--json"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_malformed_flood_is_counted_and_never_answered(tmp_path: Path) -> None:
    port = free_udp_port()
    ctl = tmp_path / "ctl.sock"
    cfg = basic_config(port, extra=f'\n[monitoring]\ncontrol_socket = "{ctl}"\n')
    rng = random.Random(20261204)
    corpus = malformed_corpus(rng)
    with running_daemon(tmp_path, cfg, port) as d:
        before = counters(ctl)
        base_received = before["counters"]["received"]
        sent = 0

        def wait_received(expected: int) -> None:
            # Pace by what the daemon has seen, so no datagram is lost in a full
            # socket buffer on a busy machine (bounded wait).
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = request(str(ctl), "counters")["counters"]["received"]  # type: ignore[index]
                if got - base_received >= expected:
                    return
                time.sleep(0.02)
            raise AssertionError(f"daemon saw fewer than {expected} datagrams")

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            for reason, packets in corpus.items():
                for i, pkt in enumerate(packets):
                    s.sendto(pkt, ("127.0.0.1", port))
                    sent += 1
                    if i % 20 == 19:  # 20 datagrams of 3 KB fit any socket buffer
                        wait_received(sent)
                wait_received(sent)
                # a valid request in between is still answered
                assert sntp_query("127.0.0.1", port) is not None, reason
                sent += 1
            time.sleep(0.3)
            answers = 0
            try:
                while True:
                    s.recvfrom(2048)
                    answers += 1
            except BlockingIOError:
                pass
        assert answers == 0, "a malformed datagram was answered"
        after = counters(ctl)
        for reason, packets in corpus.items():
            got = after["drops"][reason] - before["drops"][reason]
            assert got == len(packets), (reason, got, len(packets))
        assert after["counters"]["received"] - base_received == sent
        assert after["counters"]["responded"] - before["counters"]["responded"] == len(corpus)
        assert d.proc.poll() is None


def test_random_bytes_never_crash_the_daemon(tmp_path: Path) -> None:
    port = free_udp_port()
    rng = random.Random(7)
    with (
        running_daemon(tmp_path, basic_config(port, workers=1), port) as d,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
    ):
        for i in range(3000):
            n = rng.choice((rng.randrange(0, 48), rng.randrange(48, 600)))
            s.sendto(bytes(rng.randrange(256) for _ in range(n)), ("127.0.0.1", port))
            if i % 100 == 99:
                time.sleep(0.005)
        time.sleep(0.3)
        assert sntp_query("127.0.0.1", port) is not None
        assert d.proc.poll() is None
        assert "Traceback" not in d.log()


def test_bad_control_requests_get_errors_and_the_daemon_goes_on(tmp_path: Path) -> None:
    port = free_udp_port()
    ctl = tmp_path / "ctl.sock"
    cfg = basic_config(port, extra=f'\n[monitoring]\ncontrol_socket = "{ctl}"\n')
    with running_daemon(tmp_path, cfg, port) as d:
        for payload in (
            b"not json\n",
            b"[1, 2, 3]\n",
            b'{"command": "rm -rf /"}\n',
            b'{"command": "nosuch"}\n',
            b"\xff\xfe\x00garbage\n",
            b'{"command": "status"' + b" " * 10_000 + b"}\n",
            b"",
        ):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(ctl))
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            if reply:
                obj = json.loads(reply)
                assert obj["ok"] is False and obj["error"], (payload[:20], obj)
        # still serving, still answering control requests
        assert sntp_query("127.0.0.1", port) is not None
        assert request(str(ctl), "status")["ok"] is True
        assert d.proc.poll() is None
