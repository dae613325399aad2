"""The kernel's per-socket drop counts, read from /proc/net/udp and /proc/net/udp6 text.

The fixtures were captured on the development machine (Linux 6.x) after sending 300
datagrams to an IPv4 and an IPv6 socket whose receive buffer was set to 4096 bytes
(inodes 560954 and 560957: 291 drops each); the other rows are quiet sockets.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from simple_ntpd.observe.kernel_udp import socket_drops

PROC = Path(__file__).resolve().parents[2] / "vectors" / "proc"
UDP = (PROC / "udp.txt").read_text()
UDP6 = (PROC / "udp6.txt").read_text()


def test_captured_tables() -> None:
    assert socket_drops([UDP, UDP6], {560954}) == 291
    assert socket_drops([UDP, UDP6], {560957}) == 291
    assert socket_drops([UDP, UDP6], {560954, 560957, 560955}) == 582
    assert socket_drops([UDP, UDP6], {560955, 560956, 560958, 560959}) == 0
    assert socket_drops([UDP, UDP6], set()) == 0
    assert socket_drops([UDP], {560957}) == 0  # an IPv6 socket is listed in udp6 only
    assert socket_drops([], {560954}) == 0


def test_rows_that_do_not_parse_are_skipped() -> None:
    row = UDP.splitlines()[3]  # inode 560954, 291 drops
    broken = [
        row.replace(" 291", " lots"),
        row.replace("560954", "ino"),
        " ".join(row.split()[:12]),  # no drops column
        row.replace("12352:", "12352"),  # not a row
    ]
    assert socket_drops(["\n".join(broken)], {560954}) == 0
    assert socket_drops(["\n".join([*broken, row])], {560954}) == 291


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), max_size=5), st.sets(st.integers(min_value=0, max_value=2**64)))
def test_any_text_is_read_without_raising(texts: list[str], inodes: set[int]) -> None:
    assert socket_drops(texts, inodes) >= 0


def test_a_socket_whose_buffer_overflows() -> None:
    full = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        full.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        full.bind(("127.0.0.1", 0))
        quiet.bind(("127.0.0.1", 0))
        for _ in range(300):
            sender.sendto(bytes(48), full.getsockname())
        sender.sendto(bytes(48), quiet.getsockname())
        time.sleep(0.05)
        text = Path("/proc/net/udp").read_text()
        full_ino, quiet_ino = (os.fstat(s.fileno()).st_ino for s in (full, quiet))
        dropped = socket_drops([text], {full_ino})
        queued = 0
        full.setblocking(False)
        while True:
            try:
                full.recv(100)
            except BlockingIOError:
                break
            queued += 1
        assert dropped > 0
        assert dropped + queued == 300  # every datagram either queued or counted as dropped
        assert socket_drops([text], {quiet_ino}) == 0
    finally:
        for s in (full, quiet, sender):
            s.close()
